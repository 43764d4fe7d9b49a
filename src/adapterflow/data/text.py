"""Text helpers shared by data preparation and generation: normalisation (NFKC, control
characters, whitespace, markup), a rule-based sentence splitter, cutting at a word boundary,
and drop counts for one-line logs.

Example:
    >>> from adapterflow.data.text import clean_text, split_sentences, strip_html, truncate
    >>> clean_text("ﬁne\\u00a0 print\\x07\\n\\n\\n  here ")
    'fine print\\n\\nhere'
    >>> clean_text(strip_html("<p>Tom &amp; Jerry</p>"))
    'Tom & Jerry'
    >>> split_sentences("Cats purr. They sleep a lot.")
    ['Cats purr.', 'They sleep a lot.']
    >>> truncate("the quick brown fox", 12)
    'the quick'
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping

import mwparserfromhell

# C0/C1 control characters except tab and newline, plus zero-width and BOM characters that
# NFKC keeps but that split otherwise equal texts into "different" duplicates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_HTML_TAG = re.compile(r"<[^>]{0,2000}>")


def clean_text(text: str) -> str:
    """NFKC-normalise, drop control characters, collapse runs of spaces, keep paragraph breaks.

    Newlines inside a paragraph become spaces; two or more line breaks become one blank line,
    so paragraph structure survives for chunking later.
    """
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = _CONTROL.sub("", text)
    paragraphs = []
    for block in _BLANK_LINES.split(text):
        joined = _SPACES.sub(" ", block.replace("\n", " ")).strip()
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def strip_html(text: str) -> str:
    """Remove HTML tags and unescape entities (``&amp;`` → ``&``)."""
    return html.unescape(_HTML_TAG.sub(" ", text))


_WIKI_NON_PROSE_LINKS = ("file:", "image:", "category:", "media:")
_WIKI_DROP_SECTIONS = re.compile(
    r"^(see also|references|external links|further reading|notes|bibliography|sources)$",
    re.IGNORECASE,
)


def strip_wikitext(wikitext: str) -> list[tuple[str, str]]:
    """Turn MediaWiki markup into ``[(section heading, plain text), ...]``.

    Templates, tables, references, files and categories are dropped; links keep their label.
    Back-matter sections (References, External links, ...) are dropped since they are lists of
    citations, not prose. The lead section has heading ``""``.
    """
    code = mwparserfromhell.parse(wikitext)
    sections = []
    for section in code.get_sections(levels=[2], include_lead=True, flat=False):
        headings = section.filter_headings(recursive=False)
        title = headings[0].title.strip_code().strip() if headings else ""
        if title and _WIKI_DROP_SECTIONS.match(title):
            continue
        for heading in section.filter_headings(recursive=False):
            section.remove(heading)
        for tag in section.filter_tags(recursive=True):
            # <ref>, tables and galleries carry citations and layout, not prose.
            if str(tag.tag).lower() in {"ref", "table", "gallery", "math", "references"}:
                try:
                    section.remove(tag)
                except ValueError:
                    pass
        for link in section.filter_wikilinks(recursive=True):
            # File/Image/Category links render as captions or nothing, never as prose.
            if str(link.title).strip().lower().startswith(_WIKI_NON_PROSE_LINKS):
                try:
                    section.remove(link)
                except ValueError:
                    pass
        plain = section.strip_code(normalize=True, collapse=True, keep_template_params=False)
        plain = _strip_wiki_leftovers(plain)
        if plain.strip():
            sections.append((title, plain))
    return sections


_WIKI_TABLE = re.compile(r"\{\|.*?\|\}", re.DOTALL)
_WIKI_LEFTOVER_LINE = re.compile(r"^\s*(\||!|\{\||\|\}|\[\[|thumb\||__\w+__).*$", re.MULTILINE)
_BULLET = re.compile(r"^[*#:;]+\s*", re.MULTILINE)


def _strip_wiki_leftovers(text: str) -> str:
    # mwparserfromhell leaves table rows and some file/category lines as text.
    text = _WIKI_TABLE.sub("", text)
    text = _WIKI_LEFTOVER_LINE.sub("", text)
    text = _BULLET.sub("", text)
    return strip_html(text)


# --- sentences ---------------------------------------------------------------------------------

# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by whitespace, at a danda
# or a CJK full stop (no space needed), or at a line break.
_BOUNDARY = re.compile(r"""([.!?…]+["'”’)\]]*)\s+|([।॥。！？]+["'”’」』)]*)\s*|\s*\n\s*""")
_NEXT_STARTS_SENTENCE = re.compile(r"""["'“‘(\[]*[^\W_a-z]""")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs e.g i.e cf fig no nos vol pp al approx ca".split()
)


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with a small rule-based splitter (no model, no download).

    A boundary is ``. ! ? …`` (with any closing quotes or brackets) followed by whitespace and
    a word that does not start in lower case, a danda or CJK full stop, or a line break.
    Known limits: abbreviations outside a short list (``Dr.``, ``e.g.``, ``vs.``, ...) and
    initials (``J. R. R. Tolkien``, caught only as single capitals) may split a sentence;
    sentences that start in lower case or without terminal punctuation are not split; decimal
    numbers and URLs are safe (no whitespace after the dot).

    Example:
        >>> from adapterflow.data.text import split_sentences
        >>> split_sentences('Dr. Smith arrived. "Hello!" he said. It was 3.5 km away.\\nNew line')
        ['Dr. Smith arrived.', '"Hello!" he said.', 'It was 3.5 km away.', 'New line']
        >>> split_sentences("Rāma went. सीता गता। वनं गता।")
        ['Rāma went.', 'सीता गता।', 'वनं गता।']
    """
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group(1):
            before = text[start : match.start(1)].rsplit(None, 1)
            word = before[-1].lower() if before else ""
            if (
                not _NEXT_STARTS_SENTENCE.match(text, match.end())
                or word in _ABBREVIATIONS
                or (len(word) == 1 and word.isalpha() and match.group(1) == ".")
            ):
                continue
            end = match.end(1)
        elif match.group(2):
            end = match.end(2)
        else:
            end = match.start()
        if piece := text[start:end].strip():
            sentences.append(piece)
        start = match.end()
    if tail := text[start:].strip():
        sentences.append(tail)
    return sentences


# --- cutting and counting -----------------------------------------------------------------------


def truncate(text: str, max_chars: int | None) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, at a word boundary when one lies in the
    second half of the cut.

    Example:
        >>> from adapterflow.data.text import truncate
        >>> truncate("the quick brown fox", 12), truncate("abcdef", 3), truncate("short", None)
        ('the quick', 'abc', 'short')
    """
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip()


def format_counts(counts: Mapping[str, int]) -> str:
    """``reason=count`` pairs, sorted, for one-line logs (``none`` when empty).

    Example:
        >>> from adapterflow.data.text import format_counts
        >>> format_counts({"held_out": 2, "duplicate": 1}), format_counts({})
        ('duplicate=1, held_out=2', 'none')
    """
    items = [f"{key}={value}" for key, value in sorted(counts.items()) if value]
    return ", ".join(items) or "none"
