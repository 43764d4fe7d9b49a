"""Near-duplicate removal of generated QA records by embedding cosine similarity.

Generators repeat themselves: the same question comes back verbatim, or reworded
("When does the Sil flood?" / "In which month does the Sil river flood?"). Duplicates inflate
a training set and, worse, leak between a train and an eval split. This module keeps the
*first* record of every near-duplicate group, in input order, and reports every removed
record with the kept record it duplicates and their cosine, so nothing disappears silently.

Two passes, both greedy in input order:

1. exact duplicates — texts equal after collapsing whitespace and case-folding — are removed
   without embedding them (reason ``"exact"``);
2. near duplicates — a text is removed when its cosine with an *already kept* text reaches
   ``threshold`` (reason ``"near"``); it names the kept text it is closest to.

``duplicate_of`` always names a kept record: an exact copy of a text that was itself removed
as a near duplicate points to the record that one duplicates (with that cosine). Because only
kept texts remove later ones, a chain a ~ b ~ c where a and c are not similar keeps a and c.

The similarity is computed block by block (:func:`near_duplicates`): at most
``block_size`` × ``block_size`` cosines are held at once, never the full n × n matrix, so a
hundred thousand records dedup in bounded memory.

Example:
    >>> import numpy as np
    >>> from adapterflow.generate.dedup import dedup_records
    >>> vectors = {"Who wrote it?": [1, 0], "who wrote  it?": [1, 0],
    ...            "Who is the author?": [0.96, 0.28], "Where is it?": [0, 1]}
    >>> embed = lambda texts: np.array([vectors[t] for t in texts], dtype=np.float32)
    >>> records = [{"id": f"q{i}", "question": q} for i, q in enumerate(vectors)]
    >>> result = dedup_records(records, embed, threshold=0.9)
    >>> [r["id"] for r in result.kept]
    ['q0', 'q3']
    >>> [(r["id"], r["duplicate_of"], r["reason"], r["cosine"]) for r in result.removed]
    [('q1', 'q0', 'exact', 1.0), ('q2', 'q0', 'near', 0.96)]
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import read_jsonl

logger = logging.getLogger(__name__)

#: Embeds a list of texts into an ``(n, dim)`` array, one row per text, in order.
Embedder = Callable[[list[str]], np.ndarray]

DEFAULT_THRESHOLD = 0.95
DEFAULT_BLOCK_SIZE = 2048
# float32 dot products of unit vectors carry ~1e-7 relative error: a cosine this close to the
# threshold counts as reaching it, so threshold 1.0 removes identical embeddings.
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Duplicate:
    """A removed item: its position, the position of the kept item it duplicates, their
    cosine and why it was removed (``"exact"`` text or ``"near"`` embedding)."""

    index: int
    duplicate_of: int
    cosine: float
    reason: Literal["exact", "near"]


@dataclass(frozen=True)
class DedupResult:
    """Kept records (input order), removed rows (input order) and the kept records'
    embeddings (row i belongs to ``kept[i]``), reused for clustering."""

    kept: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    embeddings: np.ndarray

    def counts(self) -> dict[str, int]:
        """Record counts: input, kept, removed by reason.

        Example:
            >>> import numpy as np
            >>> from adapterflow.generate.dedup import DedupResult
            >>> DedupResult([{}], [{"reason": "exact"}], np.zeros((1, 2))).counts()
            {'input': 2, 'kept': 1, 'removed_exact': 1, 'removed_near': 0}
        """
        reasons = Counter(row["reason"] for row in self.removed)
        return {
            "input": len(self.kept) + len(self.removed),
            "kept": len(self.kept),
            "removed_exact": reasons["exact"],
            "removed_near": reasons["near"],
        }


def normalize_text(text: str) -> str:
    """The key under which two texts count as exact duplicates: whitespace runs collapsed to
    one space, ends stripped, case-folded.

    Example:
        >>> from adapterflow.generate.dedup import normalize_text
        >>> normalize_text("  Who  wrote\\nHAMLET? ") == normalize_text("who wrote hamlet?")
        True
    """
    return " ".join(text.split()).casefold()


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a float in (-1, 1]; anything else is a :class:`ConfigError`.

    Example:
        >>> from adapterflow.generate.dedup import check_threshold
        >>> check_threshold(1)
        1.0
        >>> check_threshold(1.5)
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: dedup threshold must be a cosine in (-1, 1], got 1.5
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"dedup threshold must be a number, got {threshold!r}")
    if not -1.0 < float(threshold) <= 1.0:
        raise ConfigError(f"dedup threshold must be a cosine in (-1, 1], got {threshold!r}")
    return float(threshold)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector has no direction: it stays zero and is similar (cosine 0) to nothing.
    return matrix / np.where(norms > 0, norms, 1.0)


def near_duplicates(
    embeddings: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    show_progress: bool = False,
) -> tuple[np.ndarray, list[Duplicate]]:
    """Greedy near-duplicate removal over the rows of ``embeddings``, in row order.

    Row i is removed when its cosine with a row kept before it is at least ``threshold``
    (within 1e-6, for float32 rounding); it is reported with the kept row it is most similar
    to. Rows need not be normalised. Returns the kept row indices (ascending) and the
    removed rows as :class:`Duplicate` (ascending ``index``).

    Rows are processed in blocks of ``block_size``: a block is compared with the kept rows
    ``block_size`` at a time, then within itself, so memory stays at a few
    ``block_size`` × ``block_size`` matrices whatever the number of rows.

    Example:
        >>> import numpy as np
        >>> from adapterflow.generate.dedup import near_duplicates
        >>> x = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]])
        >>> kept, removed = near_duplicates(x, threshold=0.8, block_size=2)
        >>> kept.tolist()
        [0, 2]
        >>> [(d.index, d.duplicate_of, round(d.cosine, 2)) for d in removed]
        [(1, 0, 0.8), (3, 2, 0.8)]
    """
    threshold = check_threshold(threshold)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"dedup block_size must be a positive integer, got {block_size!r}")
    units = _unit_rows(embeddings)
    n = len(units)
    cutoff = threshold - _TOLERANCE
    # The kept rows, packed contiguously so each comparison is one matrix product.
    kept_units = np.empty_like(units)
    kept_index = np.empty(n, dtype=np.int64)
    n_kept = 0
    removed: list[Duplicate] = []
    bar = tqdm(total=n, desc="dedup", unit="text", disable=not show_progress)
    for start in range(0, n, block_size):
        bar.update(min(block_size, n - start))
        block = units[start : start + block_size]
        # Best match of every row of the block among the rows kept before the block.
        best = np.full(len(block), -np.inf, dtype=np.float32)
        best_at = np.full(len(block), -1, dtype=np.int64)
        for k0 in range(0, n_kept, block_size):
            sims = block @ kept_units[k0 : min(k0 + block_size, n_kept)].T
            arg = sims.argmax(axis=1)
            top = sims[np.arange(len(block)), arg]
            better = top > best
            best[better] = top[better]
            best_at[better] = kept_index[k0 + arg[better]]
        # Within the block a row can only be removed by an earlier row that was kept.
        inner = block @ block.T
        in_block = np.empty(len(block), dtype=np.int64)  # the block's kept rows so far
        m = 0
        for i in range(len(block)):
            score, match = float(best[i]), int(best_at[i])
            if m:
                sims = inner[i, in_block[:m]]
                j = int(np.argmax(sims))
                if sims[j] > score:
                    score, match = float(sims[j]), start + int(in_block[j])
            if match >= 0 and score >= cutoff:
                removed.append(Duplicate(start + i, match, min(score, 1.0), "near"))
            else:
                in_block[m] = i
                m += 1
                kept_units[n_kept] = block[i]
                kept_index[n_kept] = start + i
                n_kept += 1
    bar.close()
    return kept_index[:n_kept].copy(), removed


def dedup_texts(
    texts: Sequence[str],
    embed: Embedder,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    show_progress: bool = False,
) -> tuple[list[int], list[Duplicate], np.ndarray]:
    """Exact then near-duplicate removal of ``texts`` (see the module docstring).

    Only texts that are not exact copies are embedded (``embed`` is called once, with them in
    input order). Returns the kept indices, the removed :class:`Duplicate` entries (both in
    input order; ``duplicate_of`` is always a kept index) and the embeddings of the kept texts.

    Example:
        >>> import numpy as np
        >>> from adapterflow.generate.dedup import dedup_texts
        >>> embed = lambda texts: np.eye(len(texts), dtype=np.float32)  # all dissimilar
        >>> kept, removed, vectors = dedup_texts(["a b", "A  b", "c"], embed, 0.9)
        >>> kept, [(d.index, d.duplicate_of, d.reason) for d in removed], vectors.shape
        ([0, 2], [(1, 0, 'exact')], (2, 2))
    """
    threshold = check_threshold(threshold)
    first_of: dict[str, int] = {}
    exact: list[tuple[int, int]] = []  # (index, index of the first occurrence)
    unique: list[int] = []
    for index, text in enumerate(texts):
        key = normalize_text(text)
        if key in first_of:
            exact.append((index, first_of[key]))
        else:
            first_of[key] = index
            unique.append(index)
    vectors = np.asarray(embed([texts[i] for i in unique]), dtype=np.float32)
    if len(unique) and (vectors.ndim != 2 or len(vectors) != len(unique)):
        raise ValueError(
            f"the embedder returned shape {vectors.shape} for {len(unique)} texts; "
            "expected one row per text"
        )
    kept_rows, near = near_duplicates(
        vectors, threshold, block_size=block_size, show_progress=show_progress
    )
    # Positions in `unique` -> input indices.
    resolved: dict[int, Duplicate] = {}
    for dup in near:
        index = unique[dup.index]
        resolved[index] = Duplicate(index, unique[dup.duplicate_of], dup.cosine, "near")
    removed = list(resolved.values())
    for index, first in exact:
        # The first occurrence may itself be a near duplicate: point to what it duplicates.
        target = resolved.get(first)
        if target is None:
            removed.append(Duplicate(index, first, 1.0, "exact"))
        else:
            removed.append(Duplicate(index, target.duplicate_of, target.cosine, "exact"))
    removed.sort(key=lambda dup: dup.index)
    kept = [unique[row] for row in kept_rows]
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    kept_vectors = vectors[kept_rows] if len(kept_rows) else np.zeros((0, dim), np.float32)
    return kept, removed, kept_vectors


def dedup_records(
    records: Sequence[Mapping[str, Any]],
    embed: Embedder,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    field: str = "question",
    id_field: str = "id",
    block_size: int = DEFAULT_BLOCK_SIZE,
    show_progress: bool = False,
) -> DedupResult:
    """Dedup records on their ``field`` text (see the module docstring).

    Removed rows are ``{"id", "duplicate_of", "cosine", "reason", field, "duplicate_text"}``:
    the removed record's id, the id of the kept record it duplicates, their cosine (rounded to
    6 decimals), ``"exact"`` or ``"near"``, the removed text and the kept text. The counts are
    logged.

    Example:
        >>> import numpy as np
        >>> from adapterflow.generate.dedup import dedup_records
        >>> rows = [{"id": "a", "question": "Why?"}, {"id": "b", "question": "why?"}]
        >>> result = dedup_records(rows, lambda t: np.ones((len(t), 3)), threshold=0.99)
        >>> [r["id"] for r in result.kept], result.removed[0]["duplicate_text"]
        (['a'], 'Why?')
    """
    started = time.perf_counter()
    texts = [str(record[field]) for record in records]
    kept, removed, vectors = dedup_texts(
        texts, embed, threshold, block_size=block_size, show_progress=show_progress
    )
    removed_rows = [
        {
            "id": records[dup.index][id_field],
            "duplicate_of": records[dup.duplicate_of][id_field],
            "cosine": round(dup.cosine, 6),
            "reason": dup.reason,
            field: texts[dup.index],
            "duplicate_text": texts[dup.duplicate_of],
        }
        for dup in removed
    ]
    result = DedupResult([dict(records[i]) for i in kept], removed_rows, vectors)
    counts = result.counts()
    logger.info(
        "dedup on %r at cosine >= %s: %d records -> %d kept, %d exact and %d near duplicates "
        "removed in %.1f s",
        field,
        threshold,
        counts["input"],
        counts["kept"],
        counts["removed_exact"],
        counts["removed_near"],
        time.perf_counter() - started,
    )
    return result


def read_qa_records(
    paths: Iterable[str | os.PathLike[str]],
    *,
    id_field: str = "id",
    dataset_field: str = "dataset",
    text_field: str = "question",
) -> list[dict[str, Any]]:
    """Read QA records from JSONL files, in file then line order, checked at the boundary.

    Every record needs a non-empty string ``question`` and a string ``answer`` (``text_field``
    when it is another field), and an ``id_field`` (a string, unique across all files). A
    record without ``dataset_field`` gets its file's name without ``.jsonl`` as its dataset;
    those records are counted and logged. Problems raise :class:`DataError` naming the
    file, line and field.

    Example:
        >>> import json, pathlib, tempfile
        >>> from adapterflow.generate.dedup import read_qa_records
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "wiki_qa.jsonl"
        >>> _ = path.write_text(json.dumps({"id": "q1", "question": "Q?", "answer": "A."}) + "\\n")
        >>> read_qa_records([path])
        [{'id': 'q1', 'question': 'Q?', 'answer': 'A.', 'dataset': 'wiki_qa'}]
        >>> _ = path.write_text(json.dumps({"id": "q1", "question": " ", "answer": "A."}) + "\\n")
        >>> read_qa_records([path])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: .../wiki_qa.jsonl:1: field 'question': empty text
    """
    required: dict[str, type | tuple[type, ...]] = {
        "question": str,
        "answer": str,
        text_field: str,
        id_field: str,
    }
    records: list[dict[str, Any]] = []
    first_seen: dict[str, tuple[Path, int]] = {}
    defaulted: Counter[str] = Counter()
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise DataError(path, "file not found")
        for line, row in read_jsonl(path, required):
            if not row[text_field].strip():
                raise DataError(path, "empty text", line=line, field=text_field)
            record_id = row[id_field]
            if record_id in first_seen:
                where, at = first_seen[record_id]
                raise DataError(
                    path,
                    f"duplicate id {record_id!r} (first in {where}, line {at})",
                    line=line,
                    field=id_field,
                )
            first_seen[record_id] = (path, line)
            if dataset_field not in row:
                name = path.name.removesuffix(".jsonl")
                row[dataset_field] = name
                defaulted[name] += 1
            elif not isinstance(row[dataset_field], str):
                raise DataError(path, "expected a string", line=line, field=dataset_field)
            records.append(row)
    for name, count in sorted(defaulted.items()):
        logger.info("%d records without %r take their file's name %r", count, dataset_field, name)
    return records
