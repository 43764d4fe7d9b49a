"""Converters from raw source formats to the canonical layouts of :mod:`.layouts`.

Each converter reads files under a dataset's raw directory and returns a layout object with
raw (uncleaned) text; :func:`adapterflow.data.prepare.prepare_dataset` then cleans, removes
duplicates, splits and checks leakage the same way for every format. Register a new format
with :func:`adapterflow.data.registry.converter`, with the defaults of its options (the
registrations below are where they are written); the ``hf_*`` formats are in
:mod:`adapterflow.data.hf_converters`, imported here so that :func:`convert` knows them.

Example:
    >>> import tempfile, pathlib
    >>> from adapterflow.data.converters import convert
    >>> raw = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (raw / "pairs.tsv").write_text("# comment\\nold\\tnew\\t1.5\\n")
    >>> convert("word_pairs_tsv", raw, {"file": "pairs.tsv", "score_max": 10}).splits["test"]
    [{'sentence1': 'old', 'sentence2': 'new', 'score': 0.15}]
"""

from __future__ import annotations

import bz2
import csv
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapterflow.data import hf_converters  # noqa: F401  (registers the hf_* formats)
from adapterflow.data.layouts import Dataset, PairSet, RetrievalSet, TripletSet
from adapterflow.data.registry import FORMATS, Format, converter
from adapterflow.data.text import strip_wikitext
from adapterflow.errors import DataError

logger = logging.getLogger(__name__)


def convert(fmt: str, raw_dir: Path, options: Mapping[str, Any]) -> Dataset:
    """Run the converter registered as ``fmt`` on ``raw_dir``, with ``options`` and the
    format's defaults for those left out."""
    registered = find_format(fmt, raw_dir)
    return registered.fn(Path(raw_dir), {**registered.defaults, **options})


def find_format(fmt: str, raw_dir: Path) -> Format:
    """The format registered as ``fmt``; any other name is a :class:`DataError` on ``raw_dir``."""
    if fmt not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise DataError(raw_dir, f"unknown prepare format {fmt!r}; known: {known}", field="format")
    return FORMATS[fmt]


def find_file(raw_dir: Path, pattern: str) -> Path:
    """The one file under ``raw_dir`` whose relative path or name matches ``pattern`` (glob)."""
    matches = sorted(
        p
        for p in Path(raw_dir).rglob("*")
        if p.is_file() and (p.match(pattern) or p.name == pattern)
    )
    matches = [p for p in matches if p.name != "manifest.json" or pattern == "manifest.json"]
    if not matches:
        raise DataError(raw_dir / pattern, "file not found in the raw directory")
    if len(matches) > 1:
        names = ", ".join(str(p.relative_to(raw_dir)) for p in matches[:5])
        raise DataError(raw_dir / pattern, f"pattern matches {len(matches)} files: {names}")
    return matches[0]


def read_text(path: Path, encoding: str) -> str:
    """Read a whole text file; a wrong encoding is reported with the line it fails on."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            path, f"not valid {encoding} ({err.reason}); set options.encoding", line=line
        ) from None


def find_root(raw_dir: Path, marker: str, subdir: str | None = None) -> Path:
    """The directory holding ``marker`` (e.g. ``corpus.jsonl``), searched below ``raw_dir``."""
    if subdir:
        return Path(raw_dir) / subdir
    return find_file(raw_dir, marker).parent


# --- canonical layouts given as raw data (users' own files, BEIR zips) ------------------------


@converter("beir", "retrieval")
def convert_beir(raw_dir: Path, options: Mapping[str, Any]) -> RetrievalSet:
    """A BEIR directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``), e.g. SciFact."""
    return RetrievalSet.read(find_root(raw_dir, "corpus.jsonl", options.get("root")))


@converter("pairs_jsonl", "pairs")
def convert_pairs_jsonl(raw_dir: Path, options: Mapping[str, Any]) -> PairSet:
    """A ``pairs/{split}.jsonl`` directory in the canonical layout."""
    root = Path(raw_dir) / options["root"] if options.get("root") else raw_dir
    return PairSet.read(root)


@converter("triplets_jsonl", "triplets")
def convert_triplets_jsonl(raw_dir: Path, options: Mapping[str, Any]) -> TripletSet:
    """A ``triplets/{split}.jsonl`` directory in the canonical layout."""
    root = Path(raw_dir) / options["root"] if options.get("root") else raw_dir
    return TripletSet.read(root)


# --- the embedded default's sources -----------------------------------------------------------


def _iter_mediawiki_pages(path: Path) -> Iterator[tuple[str, str, str]]:
    """Yield ``(page id, title, wikitext)`` for article pages (namespace 0, not redirects)."""
    try:
        yield from _iter_pages(path)
    except ET.ParseError as err:
        raise DataError(path, f"malformed XML ({err})", line=err.position[0]) from None
    except (OSError, EOFError) as err:  # a truncated or corrupt .bz2 file
        raise DataError(path, f"cannot read the dump: {err}") from None


def _iter_pages(path: Path) -> Iterator[tuple[str, str, str]]:
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rb") as handle:
        for _, elem in ET.iterparse(handle, events=("end",)):
            if elem.tag.rsplit("}", 1)[-1] != "page":
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: child for child in elem}
            ns = fields.get("ns")
            is_article = ns is None or (ns.text or "0").strip() == "0"
            revision = fields.get("revision")
            text = None
            if revision is not None:
                for child in revision:
                    if child.tag.rsplit("}", 1)[-1] == "text":
                        text = child.text or ""
            if is_article and "redirect" not in fields and text is not None:
                title = (fields["title"].text or "").strip() if "title" in fields else ""
                yield (fields["id"].text or "").strip(), title, text
            elem.clear()


def _passages(paragraphs: list[str], max_chars: int) -> Iterator[str]:
    """Greedily pack whole paragraphs into passages of at most ``max_chars`` (a single longer
    paragraph becomes its own passage: chunking proper is a later stage)."""
    current: list[str] = []
    size = 0
    for paragraph in paragraphs:
        if current and size + len(paragraph) > max_chars:
            yield "\n\n".join(current)
            current, size = [], 0
        current.append(paragraph)
        size += len(paragraph) + 2
    if current:
        yield "\n\n".join(current)


@converter(
    "mediawiki_xml",
    "retrieval",
    corpus_only=True,
    defaults={"file": "*.xml*", "max_chars": 1200, "min_chars": 200},
)
def convert_mediawiki_xml(raw_dir: Path, options: Mapping[str, Any]) -> RetrievalSet:
    """A MediaWiki XML dump (optionally .bz2) → passages ``{"_id","title","section","text"}``.

    Options: ``file`` (glob), ``max_chars`` per passage, ``min_chars``: shorter passages
    (stubs, list leftovers) are skipped and counted.
    """
    path = find_file(raw_dir, options["file"])
    max_chars = int(options["max_chars"])
    min_chars = int(options["min_chars"])
    corpus: dict[str, dict[str, Any]] = {}
    pages = short = 0
    for page_id, title, wikitext in _iter_mediawiki_pages(path):
        pages += 1
        index = 0
        for heading, plain in strip_wikitext(wikitext):
            paragraphs = [p.strip() for p in plain.split("\n") if p.strip()]
            for passage in _passages(paragraphs, max_chars):
                if len(passage) < min_chars:
                    short += 1
                    continue
                doc_id = f"{page_id}-{index}"
                index += 1
                corpus[doc_id] = {
                    "_id": doc_id,
                    "title": title,
                    "section": heading,
                    "text": passage,
                }
    logger.info(
        "%s: %d article pages -> %d passages (%d shorter than %d chars skipped)",
        path.name,
        pages,
        len(corpus),
        short,
        min_chars,
    )
    return RetrievalSet(corpus, dropped={"short_passages": short} if short else {})


def _csv_rows(
    path: Path, encoding: str, columns: tuple[str | None, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` of a CSV with a header that must hold every one of ``columns``."""
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for column in filter(None, columns):
            if column not in header:
                raise DataError(path, f"column not in header {header}", line=1, field=column)
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as err:  # e.g. a NUL byte, or a field over the size limit
            raise DataError(path, f"malformed CSV ({err})", line=reader.line_num + 1) from None


@converter(
    "csv_beir", "retrieval", one_split=True, defaults={"split_name": "test", "encoding": "utf-8"}
)
def convert_csv_beir(raw_dir: Path, options: Mapping[str, Any]) -> RetrievalSet:
    """A CSV with one document per row → BEIR: a query from one column, the document from
    another, each query relevant (score 1) to its own row's document.

    Options: ``file``; ``id_column``; ``query_column`` (e.g. the title); ``text_column``;
    optional ``title_column`` for the document title (leave unset when the title is the query,
    or retrieval becomes string matching); ``split_name`` when the prepare step does not
    re-split; ``encoding``. Rows with an empty query or text are skipped and counted.
    """
    path = find_file(raw_dir, options["file"])
    id_col, query_col, text_col = (
        options["id_column"],
        options["query_column"],
        options["text_column"],
    )
    title_col = options.get("title_column")
    corpus: dict[str, dict[str, Any]] = {}
    queries: dict[str, dict[str, Any]] = {}
    qrels: dict[str, dict[str, int]] = {}
    skipped = 0
    csv.field_size_limit(1 << 27)
    encoding = options["encoding"]
    try:
        rows = _csv_rows(path, encoding, (id_col, query_col, text_col, title_col))
        for line, row in rows:
            row_id = (row.get(id_col) or "").strip()
            if not row_id:
                raise DataError(path, "empty id", line=line, field=id_col)
            if row_id in corpus or f"d{row_id}" in corpus:
                raise DataError(path, f"duplicate id {row_id!r}", line=line, field=id_col)
            query, text = (row.get(query_col) or "").strip(), (row.get(text_col) or "").strip()
            if not query or not text:
                skipped += 1
                continue
            doc_id, query_id = f"d{row_id}", f"q{row_id}"
            title = (row.get(title_col) or "").strip() if title_col else ""
            corpus[doc_id] = {"_id": doc_id, "title": title, "text": text}
            queries[query_id] = {"_id": query_id, "text": query}
            qrels[query_id] = {doc_id: 1}
    except UnicodeDecodeError:
        # The reader decodes ahead in blocks; read_text names the exact line.
        read_text(path, encoding)
        raise
    logger.info(
        "%s: %d rows -> %d documents (%d rows with an empty query or text skipped)",
        path.name,
        len(corpus) + skipped,
        len(corpus),
        skipped,
    )
    return RetrievalSet(
        corpus,
        queries,
        {options["split_name"]: qrels},
        dropped={"rows_without_query_or_text": skipped} if skipped else {},
    )


@converter(
    "lee_pairs",
    "pairs",
    one_split=True,
    defaults={
        "documents": "lee.cor",
        "similarities": "similarities0-1.txt",
        "encoding": "utf-8",
        "split_name": "test",
    },
)
def convert_lee_pairs(raw_dir: Path, options: Mapping[str, Any]) -> PairSet:
    """Lee et al. (2005) document similarity: ``lee.cor`` (one document per line) and an
    upper-triangular matrix of mean human scores in [0, 1] → all n·(n−1)/2 document pairs."""
    docs_path = find_file(raw_dir, options["documents"])
    matrix_path = find_file(raw_dir, options["similarities"])
    encoding = options["encoding"]
    docs = [line.strip() for line in read_text(docs_path, encoding).splitlines()]
    docs = [d for d in docs if d]
    matrix: list[list[float]] = []
    for number, line in enumerate(read_text(matrix_path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError as err:
            raise DataError(matrix_path, f"not a number ({err})", line=number) from None
        if len(values) != len(docs):
            raise DataError(
                matrix_path,
                f"{len(values)} columns but {docs_path.name} has {len(docs)} documents",
                line=number,
            )
        matrix.append(values)
    if len(matrix) != len(docs):
        raise DataError(matrix_path, f"{len(matrix)} rows but {len(docs)} documents")
    pairs = []
    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            if not 0.0 <= matrix[i][j] <= 1.0:
                raise DataError(matrix_path, f"score {matrix[i][j]} outside [0, 1]", line=i + 1)
            pairs.append({"sentence1": docs[i], "sentence2": docs[j], "score": matrix[i][j]})
    return PairSet({options["split_name"]: pairs})


@converter(
    "word_pairs_tsv",
    "pairs",
    one_split=True,
    defaults={"score_max": 10.0, "encoding": "utf-8", "split_name": "test"},
)
def convert_word_pairs_tsv(raw_dir: Path, options: Mapping[str, Any]) -> PairSet:
    """Word-similarity TSV (SimLex-999, WordSim-353): ``word1 word2 score``, ``#`` comments;
    scores are divided by ``score_max`` to land in [0, 1]."""
    path = find_file(raw_dir, options["file"])
    score_max = float(options["score_max"])
    pairs = []
    for number, line in enumerate(read_text(path, options["encoding"]).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            field = ["word1", "word2", "score"][len(fields)]
            raise DataError(
                path, "missing (expected 3 tab-separated columns)", line=number, field=field
            )
        try:
            score = float(fields[2]) / score_max
        except ValueError:
            raise DataError(
                path, f"not a number: {fields[2]!r}", line=number, field="score"
            ) from None
        if not 0.0 <= score <= 1.0:
            raise DataError(
                path, f"{fields[2]} outside [0, {score_max}]", line=number, field="score"
            )
        pairs.append(
            {"sentence1": fields[0].strip(), "sentence2": fields[1].strip(), "score": score}
        )
    return PairSet({options["split_name"]: pairs})
