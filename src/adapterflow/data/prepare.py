"""Raw directory → clean canonical dataset: convert, clean, de-duplicate, split, check leakage.

The same steps run for every source format, so every prepared dataset obeys the same
guarantees: NFKC-clean text, no empty or exactly duplicated texts (each removal counted and
logged), splits that are a pure function of the content and the seed, and no text shared by
``train`` and an evaluation split.

Example:
    >>> import tempfile, pathlib
    >>> from adapterflow.data.prepare import prepare_dataset
    >>> raw = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (raw / "words.tsv").write_text("cat\\tdog\\t7\\ncat\\tdog\\t7\\nsun\\tmoon\\t5\\n")
    >>> out = raw.parent / (raw.name + "-clean")
    >>> manifest = prepare_dataset(raw, out, {"format": "word_pairs_tsv",
    ...                                       "options": {"file": "words.tsv"}})
    >>> manifest["counts"], manifest["dropped"]["duplicate_pairs"]
    ({'pairs/test': 2}, 1)
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapterflow.data.converters import convert, find_format
from adapterflow.data.layouts import Dataset, PairSet, RetrievalSet, TripletSet
from adapterflow.data.splits import (
    TRAIN,
    UnionFind,
    check_leakage,
    fractions_from_config,
    hashed_split,
)
from adapterflow.data.text import clean_text, strip_html
from adapterflow.errors import DataError
from adapterflow.io import atomic_dir, sha256_file, write_json
from adapterflow.settings import PrepareSettings

logger = logging.getLogger(__name__)

ON_LEAK = ("fail", "drop_from_train")


class _Cleaner:
    """Applies the text pipeline and counts what it drops."""

    def __init__(self, html: bool, replace: list[tuple[str, str]]) -> None:
        self.html = html
        self.replace = replace
        self.dropped: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        for old, new in self.replace:
            text = text.replace(old, new)
        if self.html:
            text = strip_html(text)
        return clean_text(text)


def prepare_dataset(
    raw_dir: str | Path,
    out_dir: str | Path,
    prepare: Mapping[str, Any],
    name: str | None = None,
    required_splits: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Convert ``raw_dir`` with ``prepare["format"]`` and write the clean layout to ``out_dir``.

    ``prepare`` keys: ``format``, ``options`` (for the converter), ``split`` (fractions such
    as ``{"train": 0.8, "test": 0.2}``: pool all rows and re-split by hashed group; omit to
    keep the source's splits), ``seed``, ``on_leak`` (``fail`` | ``drop_from_train``),
    ``strip_html``, ``replace`` (literal ``[from, to]`` repairs applied before cleaning).
    ``required_splits`` maps a split to the config keys that need it (e.g.
    ``{"test": ["tasks.news.split"]}``): a split the data turns out not to have stops the job
    naming those keys. A data error in a copied ``local`` source names the user's original
    file, not the copy. Returns the manifest written to ``out_dir/manifest.json``.
    """
    raw_dir = Path(raw_dir)
    try:
        return _prepare(raw_dir, Path(out_dir), prepare, name, required_splits or {})
    except DataError as err:
        original = _original_path(raw_dir, err.path)
        if original is None:
            raise
        raise DataError(original, err.message, line=err.line, field=err.field) from None


def _original_path(raw_dir: Path, path: str) -> str | None:
    """Where the file ``path`` of a fetched ``local`` source came from, as the config names
    it; ``None`` for other sources and for paths outside ``raw_dir``."""
    manifest_path = raw_dir / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        given, local = manifest["source"]["path"], manifest["local"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        rel = Path(path).resolve().relative_to(raw_dir.resolve())
    except ValueError:
        return None
    is_dir = local.get("is_dir")
    if is_dir is None:  # fetched before manifests recorded it
        is_dir = Path(local["path"]).is_dir()
    return str(Path(given) / rel) if is_dir else str(given)


def _check_required_splits(
    data: Dataset, required: Mapping[str, list[str]], name: str, raw_dir: Path
) -> None:
    have = sorted(data.qrels if isinstance(data, RetrievalSet) else data.splits)
    for split, keys in sorted(required.items()):
        if split not in have:
            raise DataError(
                raw_dir,
                f"dataset {name!r} has splits {have or 'none'}, not {split!r}, which "
                f"{', '.join(keys)} asks for; name one of its splits there, or give the "
                f"dataset a prepare.split",
                field=keys[0],
            )


def _prepare(
    raw_dir: Path,
    out_dir: Path,
    prepare: Mapping[str, Any],
    name: str | None,
    required_splits: Mapping[str, list[str]],
) -> dict[str, Any]:
    name = name or out_dir.name
    started = time.perf_counter()
    # Checked before the schema is: these name the dataset in a DataError, as they always have.
    if "on_leak" in prepare and prepare["on_leak"] not in ON_LEAK:
        raise DataError(
            out_dir,
            f"on_leak must be one of {ON_LEAK}, got {prepare['on_leak']!r}",
            field="on_leak",
        )
    fractions = fractions_from_config(prepare["split"], name) if prepare.get("split") else None
    find_format(prepare["format"], raw_dir)
    settings = PrepareSettings.from_block(prepare)
    seed, on_leak = settings.seed, settings.on_leak

    data = convert(prepare["format"], raw_dir, settings.options)
    cleaner = _Cleaner(settings.strip_html, [(old, new) for old, new in settings.replace])
    cleaner.dropped.update(data.dropped)
    if isinstance(data, RetrievalSet):
        data = _prepare_retrieval(data, cleaner, fractions, seed, on_leak, name)
    elif isinstance(data, PairSet):
        data = _prepare_rows(data, cleaner, fractions, seed, on_leak, name, _PAIR_FIELDS, "pairs")
    else:
        data = _prepare_rows(
            data, cleaner, fractions, seed, on_leak, name, _TRIPLET_FIELDS, "triplets"
        )
    _check_not_empty(data, name)
    _check_required_splits(data, required_splits, name, raw_dir)

    with atomic_dir(out_dir) as tmp:
        counts = data.write(tmp)
        manifest = {
            "dataset": name,
            "layout": data.layout,
            "format": prepare["format"],
            "counts": counts,
            "dropped": dict(sorted(cleaner.dropped.items())),
            "split": fractions,
            "seed": seed,
            "raw_manifest_sha256": _raw_manifest_sha(raw_dir),
        }
        write_json(tmp / "manifest.json", manifest)
    seconds = time.perf_counter() - started
    logger.info(
        "%s: wrote %s; dropped %s (%.1f s)",
        name,
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        dict(cleaner.dropped) or "nothing",
        seconds,
    )
    return manifest


def _raw_manifest_sha(raw_dir: Path) -> str | None:
    path = raw_dir / "manifest.json"
    return sha256_file(path) if path.exists() else None


def _check_not_empty(data: Dataset, name: str) -> None:
    if isinstance(data, RetrievalSet):
        if not data.corpus:
            raise DataError(name, "empty corpus after cleaning", field="corpus")
        empty = [split for split, qrels in data.qrels.items() if not qrels]
    else:
        empty = [split for split, rows in data.splits.items() if not rows]
    if empty:
        raise DataError(name, "empty after cleaning, de-duplication and splitting", field=empty[0])


# --- retrieval --------------------------------------------------------------------------------


def _merge_duplicates(
    rows: dict[str, dict[str, Any]], clean: _Cleaner, kind: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str | None]]:
    """Clean each row's text (and title), drop empty ones and merge exact duplicates onto the
    first id. Returns the kept rows and ``alias[old id] = kept id`` (None when dropped), so
    relevance judgements can follow the merge."""
    kept: dict[str, dict[str, Any]] = {}
    alias: dict[str, str | None] = {}
    first_with_text: dict[str, str] = {}
    for row_id, row in rows.items():
        text = clean(row["text"])
        if not text:
            clean.dropped[f"empty_{kind}"] += 1
            alias[row_id] = None
        elif text in first_with_text:
            clean.dropped[f"duplicate_{kind}"] += 1
            alias[row_id] = first_with_text[text]
        else:
            first_with_text[text] = alias[row_id] = row_id
            kept[row_id] = {**row, "text": text}
            if "title" in row:
                kept[row_id]["title"] = clean(row["title"] or "")
    return kept, alias


def _prepare_retrieval(
    data: RetrievalSet,
    clean: _Cleaner,
    fractions: dict[str, float] | None,
    seed: int,
    on_leak: str,
    name: str,
) -> RetrievalSet:
    corpus, doc_alias = _merge_duplicates(data.corpus, clean, "documents")
    for doc in corpus.values():
        doc.setdefault("title", "")  # BEIR documents always carry a title, maybe empty
    queries, query_alias = _merge_duplicates(data.queries, clean, "queries")

    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split, judged in data.qrels.items():
        for query_id, docs in judged.items():
            qid = query_alias.get(query_id)
            for doc_id, score in docs.items():
                did = doc_alias.get(doc_id)
                if qid is None or did is None:
                    clean.dropped["judgements_to_dropped_texts"] += 1
                    continue
                target = qrels.setdefault(split, {}).setdefault(qid, {})
                target[did] = max(score, target.get(did, score))

    if fractions:
        qrels = _resplit_qrels(qrels, fractions, seed)

    def texts(split_qrels: dict[str, dict[str, int]]) -> set[str]:
        found = {queries[q]["text"] for q in split_qrels}
        found.update(
            corpus[d]["text"] for docs in split_qrels.values() for d in docs if docs[d] > 0
        )
        return found

    by_split = {split: texts(judged) for split, judged in qrels.items()}
    if on_leak == "drop_from_train" and TRAIN in qrels:
        held_out = set().union(*(t for s, t in by_split.items() if s != TRAIN))
        train = {}
        for qid, docs in qrels[TRAIN].items():
            kept = {d: s for d, s in docs.items() if corpus[d]["text"] not in held_out}
            if queries[qid]["text"] in held_out or not kept:
                clean.dropped["leaked_train_queries"] += 1
                continue
            clean.dropped["leaked_train_judgements"] += len(docs) - len(kept)
            train[qid] = kept
        qrels[TRAIN] = train
        by_split[TRAIN] = texts(train)
    check_leakage(by_split, name)
    return RetrievalSet(corpus, queries, qrels)


def _resplit_qrels(
    qrels: dict[str, dict[str, dict[str, int]]], fractions: dict[str, float], seed: int
) -> dict[str, dict[str, dict[str, int]]]:
    # Queries sharing a relevant document form one group and move together.
    groups = UnionFind()
    pooled: dict[str, dict[str, int]] = {}
    for judged in qrels.values():
        for qid, docs in judged.items():
            pooled.setdefault(qid, {}).update(docs)
            groups.union(f"q:{qid}", *(f"d:{d}" for d in docs))
    out: dict[str, dict[str, dict[str, int]]] = {split: {} for split in sorted(fractions)}
    for qid, docs in pooled.items():
        split = hashed_split(groups.component_key(f"q:{qid}"), fractions, seed)
        out[split][qid] = docs
    return out


# --- pairs and triplets -----------------------------------------------------------------------

_PAIR_FIELDS = ("sentence1", "sentence2")
_TRIPLET_FIELDS = ("anchor", "positive", "negative")


def _row_texts(row: Mapping[str, Any], fields: tuple[str, ...]) -> list[str]:
    texts: list[str] = []
    for field in fields:
        value = row[field]
        texts.extend(value if isinstance(value, list) else [value])
    return texts


def _prepare_rows(
    data: PairSet | TripletSet,
    clean: _Cleaner,
    fractions: dict[str, float] | None,
    seed: int,
    on_leak: str,
    name: str,
    fields: tuple[str, ...],
    kind: str,
) -> PairSet | TripletSet:
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, rows in data.splits.items():
        seen: set[tuple[Any, ...]] = set()
        kept = []
        for row in rows:
            row = dict(row)
            for field in fields:
                value = row[field]
                row[field] = [clean(v) for v in value] if isinstance(value, list) else clean(value)
                if isinstance(row[field], list):
                    row[field] = [v for v in row[field] if v]
            if not all(row[field] for field in fields):
                clean.dropped[f"empty_{kind}"] += 1
                continue
            key = tuple(tuple(row[f]) if isinstance(row[f], list) else row[f] for f in fields)
            if key in seen:
                clean.dropped[f"duplicate_{kind}"] += 1
                continue
            seen.add(key)
            kept.append(row)
        splits[split] = kept

    if fractions:
        groups = UnionFind()
        pooled = [row for split in sorted(splits) for row in splits[split]]
        for row in pooled:
            # Only anchor-side texts link rows: a negative may be shared by unrelated rows.
            groups.union(*_row_texts(row, fields[:2]))
        splits = {split: [] for split in sorted(fractions)}
        for row in pooled:
            key = groups.component_key(row[fields[0]])
            splits[hashed_split(key, fractions, seed)].append(row)

    if on_leak == "drop_from_train" and TRAIN in splits:
        held_out = {
            text
            for split, rows in splits.items()
            if split != TRAIN
            for row in rows
            for text in _row_texts(row, fields)
        }
        before = len(splits[TRAIN])
        splits[TRAIN] = [
            row for row in splits[TRAIN] if held_out.isdisjoint(_row_texts(row, fields))
        ]
        clean.dropped[f"leaked_train_{kind}"] += before - len(splits[TRAIN])
    check_leakage(
        {
            split: {text for row in rows for text in _row_texts(row, fields)}
            for split, rows in splits.items()
        },
        name,
    )
    return type(data)(splits)
