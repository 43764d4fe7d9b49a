"""The canonical on-disk layouts every stage exchanges (see DESIGN.md, "Data contracts").

* :class:`RetrievalSet` — BEIR layout: ``corpus.jsonl`` ``{"_id","title","text"}``,
  ``queries.jsonl`` ``{"_id","text"}``, ``qrels/{split}.tsv`` (``query-id corpus-id score``).
  A corpus without queries (general-domain passages) is a RetrievalSet with no qrels.
* :class:`PairSet` — ``pairs/{split}.jsonl`` ``{"sentence1","sentence2","score"}``, score in
  [0, 1], optional binary ``"label"``.
* :class:`TripletSet` — ``triplets/{split}.jsonl`` ``{"anchor","positive","negative"}``;
  ``negative`` may be a list.

Readers are strict: the first bad line raises :class:`~adapterflow.errors.DataError` naming
file, line and field. Writers go through :func:`adapterflow.io.atomic_dir` in the caller.

Example:
    >>> import tempfile, pathlib
    >>> from adapterflow.data.layouts import PairSet, read_layout
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> counts = PairSet({"test": [{"sentence1": "a", "sentence2": "b", "score": 0.5}]}).write(out)
    >>> counts
    {'pairs/test': 1}
    >>> read_layout(out).splits["test"][0]["score"]
    0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from adapterflow.errors import DataError
from adapterflow.io import read_jsonl, read_tsv, write_jsonl, write_tsv

QRELS_COLUMNS = ["query-id", "corpus-id", "score"]


def document_text(doc: dict[str, Any]) -> str:
    """How a BEIR document is embedded and trained on: ``title text`` (BEIR/MTEB convention)."""
    return f"{doc.get('title') or ''} {doc['text']}".strip()


TRAIN_SPLIT = "train"


@dataclass
class RetrievalSet:
    """BEIR retrieval data. ``qrels[split][query_id][doc_id] = graded relevance (int)``."""

    corpus: dict[str, dict[str, Any]]
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    #: Rows the converter skipped, by reason; carried into the clean manifest's "dropped".
    dropped: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    layout: ClassVar[str] = "retrieval"

    def write(self, out: Path) -> dict[str, int]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        counts = {"corpus": write_jsonl(out / "corpus.jsonl", self.corpus.values())}
        if self.queries:
            counts["queries"] = write_jsonl(out / "queries.jsonl", self.queries.values())
        if self.qrels:
            (out / "qrels").mkdir(exist_ok=True)
        for split in sorted(self.qrels):
            rows = (
                (qid, did, score)
                for qid, docs in self.qrels[split].items()
                for did, score in docs.items()
            )
            counts[f"qrels/{split}"] = write_tsv(
                out / "qrels" / f"{split}.tsv", QRELS_COLUMNS, rows
            )
        return counts

    @classmethod
    def read(cls, root: Path) -> RetrievalSet:
        root = Path(root)
        corpus = _read_unique(root / "corpus.jsonl", {"_id": str, "text": str})
        if not corpus:
            raise DataError(root / "corpus.jsonl", "empty corpus: no documents")
        for doc in corpus.values():
            doc.setdefault("title", "")
        queries: dict[str, dict[str, Any]] = {}
        if (root / "queries.jsonl").exists():
            queries = _read_unique(root / "queries.jsonl", {"_id": str, "text": str})
        qrels: dict[str, dict[str, dict[str, int]]] = {}
        for path in sorted((root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []:
            qrels[path.stem] = _read_qrels(path, corpus, queries)
        if qrels and not queries:
            raise DataError(root / "queries.jsonl", "qrels exist but queries.jsonl is missing")
        return cls(corpus, queries, qrels)

    @property
    def splits(self) -> dict[str, dict[str, dict[str, int]]]:
        return self.qrels


def _read_unique(path: Path, required: dict[str, type]) -> dict[str, dict[str, Any]]:
    if not path.exists():
        raise DataError(path, "file not found")
    rows: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for number, row in read_jsonl(path, required):
        key = row["_id"]
        if key in rows:
            raise DataError(
                path,
                f"duplicate id {key!r} (first on line {first_line[key]})",
                line=number,
                field="_id",
            )
        rows[key] = row
        first_line[key] = number
    return rows


def _read_qrels(
    path: Path, corpus: dict[str, Any], queries: dict[str, Any]
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, row in read_tsv(path, QRELS_COLUMNS):
        qid, did = row["query-id"], row["corpus-id"]
        if qid not in queries:
            raise DataError(path, f"unknown query id {qid!r}", line=number, field="query-id")
        if did not in corpus:
            raise DataError(path, f"unknown document id {did!r}", line=number, field="corpus-id")
        try:
            score = int(row["score"])
        except ValueError:
            raise DataError(
                path, f"expected an integer, got {row['score']!r}", line=number, field="score"
            ) from None
        qrels.setdefault(qid, {})[did] = score
    if not qrels:
        raise DataError(path, "empty split: no judgements")
    return qrels


@dataclass
class _SplitRows:
    """Rows per split stored as ``{layout}/{split}.jsonl``; subclasses name the fields and add
    row checks."""

    splits: dict[str, list[dict[str, Any]]]
    #: Rows the converter skipped, by reason; carried into the clean manifest's "dropped".
    dropped: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    layout: ClassVar[str]
    required: ClassVar[dict[str, type | tuple[type, ...]]]

    def write(self, out: Path) -> dict[str, int]:
        folder = Path(out) / self.layout
        folder.mkdir(parents=True, exist_ok=True)
        return {
            f"{self.layout}/{split}": write_jsonl(folder / f"{split}.jsonl", rows)
            for split, rows in sorted(self.splits.items())
        }

    @classmethod
    def read(cls, root: Path) -> Self:
        folder = Path(root) / cls.layout
        splits = {}
        for path in sorted(folder.glob("*.jsonl")):
            rows = []
            for number, row in read_jsonl(path, cls.required):
                cls.check_row(path, number, row)
                rows.append(row)
            if not rows:
                raise DataError(path, f"empty split: no {cls.layout}")
            splits[path.stem] = rows
        if not splits:
            raise DataError(folder, f"no {cls.layout}/{{split}}.jsonl files found")
        return cls(splits)

    @staticmethod
    def check_row(path: Path, line: int, row: dict[str, Any]) -> None:
        """Checks beyond field presence and type; raise :class:`DataError` on a bad row."""


@dataclass
class PairSet(_SplitRows):
    """Scored sentence pairs per split: ``splits[split] = [{"sentence1","sentence2","score"}]``."""

    layout: ClassVar[str] = "pairs"
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "sentence1": str,
        "sentence2": str,
        "score": (int, float),
    }

    @staticmethod
    def check_row(path: Path, line: int, row: dict[str, Any]) -> None:
        if not (0.0 <= row["score"] <= 1.0) or math.isnan(row["score"]):
            raise DataError(path, f"{row['score']} outside [0, 1]", line=line, field="score")
        if "label" in row and row["label"] not in (0, 1):
            raise DataError(path, f"{row['label']!r} is not 0 or 1", line=line, field="label")


@dataclass
class TripletSet(_SplitRows):
    """Training triplets per split: ``splits[split] = [{"anchor","positive","negative"}]``."""

    layout: ClassVar[str] = "triplets"
    required: ClassVar[dict[str, type | tuple[type, ...]]] = {
        "anchor": str,
        "positive": str,
        "negative": (str, list),
    }

    @staticmethod
    def check_row(path: Path, line: int, row: dict[str, Any]) -> None:
        negative = row["negative"]
        if isinstance(negative, list) and not all(isinstance(n, str) for n in negative):
            raise DataError(path, "list items must be strings", line=line, field="negative")


Dataset = RetrievalSet | PairSet | TripletSet
LAYOUTS: dict[str, type[RetrievalSet] | type[PairSet] | type[TripletSet]] = {
    "retrieval": RetrievalSet,
    "pairs": PairSet,
    "triplets": TripletSet,
}


def detect_layout(root: Path) -> str:
    """Name the layout of a prepared directory from the files it holds."""
    root = Path(root)
    if (root / "corpus.jsonl").exists():
        return "retrieval"
    if (root / "pairs").is_dir():
        return "pairs"
    if (root / "triplets").is_dir():
        return "triplets"
    raise DataError(root, "no corpus.jsonl, pairs/ or triplets/: not a prepared dataset")


def read_layout(root: Path) -> Dataset:
    """Read and validate any prepared dataset directory."""
    return LAYOUTS[detect_layout(root)].read(Path(root))
