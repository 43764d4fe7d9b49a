"""Text cleaning for generated long-context data, in two styles.

* ``"minimal"`` — what FlagEmbedding's needle-in-a-haystack evaluation does to a model's
  answer: strip surrounding whitespace and keep the first line only.
* ``"full"`` — for texts that go *into* generation (haystacks, needles, QA contexts): NFC,
  curly quotes to straight ones, every dash to ``-``, Unicode spaces to a plain space,
  invisible and control characters removed, runs of spaces collapsed; line and paragraph
  breaks are kept (one blank line between paragraphs) so tables and lists survive.

Example:
    >>> from adapterflow.generate.cleaning import clean
    >>> clean("  \\u201cMagic\\u201d number \\u2014 42\\u00a0!\\r\\nSecond line", "full")
    '"Magic" number - 42 !\\nSecond line'
    >>> clean("  7481\\nThe rest of the answer", "minimal")
    '7481'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Literal

from adapterflow.errors import ConfigError

Style = Literal["minimal", "full"]

# Typographic variants that make a needle or answer fail an exact substring match against
# the same words typed on a keyboard.
_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b"
_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f"
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_SPACES = "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
_SPACES += "\u202f\u205f\u3000"
# Invisible characters that only affect rendering (soft hyphen, zero-width space, word joiner,
# BOM, bidirectional marks and embeddings). Right-to-left text is stored in logical order, so
# dropping the bidi controls leaves Hebrew or Arabic intact. Zero-width joiner and non-joiner
# are kept on purpose: they build emoji sequences and are part of Persian and Indic spelling.
_INVISIBLE = "\u00ad\u180e\u200b\u200e\u200f\u2060\ufeff\u061c"
_INVISIBLE += "".join(chr(c) for c in range(0x202A, 0x202F))  # LRE..RLO
_INVISIBLE += "".join(chr(c) for c in range(0x2066, 0x206A))  # LRI..PDI

_TABLE: dict[int, str | None] = {}
_TABLE.update({ord(c): "'" for c in _SINGLE_QUOTES})
_TABLE.update({ord(c): '"' for c in _DOUBLE_QUOTES})
_TABLE.update({ord(c): "-" for c in _DASHES})
_TABLE.update({ord(c): " " for c in _SPACES})
_TABLE.update({ord(c): None for c in _INVISIBLE})
# Line and page separators other than "\n": a form feed or paragraph separator starts a new
# paragraph, the rest a new line.
_TABLE.update({ord(c): "\n" for c in "\r\x0b\x85\u2028"})
_TABLE.update({ord(c): "\n\n" for c in "\x0c\u2029"})
# Remaining C0/C1 controls (tab and line breaks were mapped above) carry no text.
_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
_TABLE.update({c: None for c in _CONTROLS if c not in _TABLE and c != ord("\n")})

# Lone surrogates come from bytes decoded with errors="surrogateescape"; they cannot be
# written as UTF-8 later, so they go before anything else.
_SURROGATES = re.compile("[\ud800-\udfff]")
_SPACE_RUN = re.compile(" {2,}")


def clean_minimal(text: str) -> str:
    """Strip surrounding whitespace and keep the first line (FlagEmbedding's NIAH answers).

    Only ``"\\n"`` ends a line, as upstream; the kept line is right-stripped as well so a
    ``"\\r"`` of CRLF text does not stay behind.

    Example:
        >>> clean_minimal("\\n  Paris\\r\\nis the capital")
        'Paris'
        >>> clean_minimal(" \\t\\n ")
        ''
    """
    return text.strip().split("\n", 1)[0].rstrip()


def clean_full(text: str, *, join_lines: bool = False) -> str:
    """Normalise text that goes into generation; see the module docstring for what changes.

    Within a line, runs of spaces (tabs, NBSP and other Unicode spaces included) become one
    space and the line is stripped. Blank or whitespace-only lines separate paragraphs, which
    come out separated by exactly one blank line. ``join_lines=True`` also turns the single
    line breaks inside a paragraph into spaces (prose that was hard-wrapped).

    Example:
        >>> clean_full("a\\u200b b\\t\\tc\\n\\n\\n  d\\u2013e \\u00a0")
        'a b c\\n\\nd-e'
        >>> clean_full("one\\ntwo\\n\\nthree", join_lines=True)
        'one two\\n\\nthree'
    """
    text = _SURROGATES.sub("", text)
    text = text.replace("\r\n", "\n").translate(_TABLE)
    # After the removals: a deleted control character may have stood between a letter and
    # its combining accent, and the result must not change when cleaned twice.
    text = unicodedata.normalize("NFC", text)
    separator = " " if join_lines else "\n"
    paragraphs: list[str] = []
    lines: list[str] = []
    for raw in text.split("\n"):
        line = _SPACE_RUN.sub(" ", raw).strip()
        if line:
            lines.append(line)
        elif lines:
            paragraphs.append(separator.join(lines))
            lines = []
    if lines:
        paragraphs.append(separator.join(lines))
    return "\n\n".join(paragraphs)


_STYLES: dict[str, Callable[[str], str]] = {"minimal": clean_minimal, "full": clean_full}
STYLES: tuple[str, ...] = tuple(_STYLES)


def clean(text: str, style: Style = "full") -> str:
    """Clean ``text`` in one of :data:`STYLES`; an unknown style raises :class:`ConfigError`.

    Example:
        >>> clean("x", "loose")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: unknown cleaning style 'loose' (expected one of: ...)
    """
    try:
        cleaner = _STYLES[style]
    except KeyError:
        raise ConfigError(
            f"unknown cleaning style {style!r} (expected one of: {', '.join(STYLES)})"
        ) from None
    return cleaner(text)
