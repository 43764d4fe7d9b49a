"""Text normalisation for every prepared dataset: NFKC, control characters, whitespace, markup.

Example:
    >>> from adapterflow.data.text import clean_text, strip_html
    >>> clean_text("ﬁne\\u00a0 print\\x07\\n\\n\\n  here ")
    'fine print\\n\\nhere'
    >>> clean_text(strip_html("<p>Tom &amp; Jerry</p>"))
    'Tom & Jerry'
"""

from __future__ import annotations

import html
import re
import unicodedata

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
