"""Converters for datasets fetched with the ``hf`` source kind.

The ``hf`` fetcher saves what ``datasets.load_dataset`` returned with ``save_to_disk`` under
``{raw_dir}/hf``: a ``DatasetDict`` (one entry per split) or a single ``Dataset``. These
converters read it back with ``datasets.load_from_disk`` and map columns onto the canonical
layouts of :mod:`.layouts`:

- ``hf_pairs``: scored sentence pairs (STS-B) → :class:`~.layouts.PairSet`.
- ``hf_triplets``: ``anchor``/``positive``/``negative`` columns (AllNLI) →
  :class:`~.layouts.TripletSet`.
- ``hf_parallel``: a parallel corpus (Itihāsa) → :class:`~.layouts.RetrievalSet`: every source
  sentence is a query whose one relevant document is its translation.

Options common to all three:

- ``splits``: mapping of source split name → our split name (e.g. ``{dev: validation}``);
  a split not in the mapping keeps its name, one mapped to ``null`` is left out.
- ``split_name``: the split a single saved ``Dataset`` (a source with ``split:`` set) becomes;
  default: the source's ``split`` from the raw manifest when it is a plain name, else ``test``.
- ``root``: the saved directory below ``raw_dir`` (default :data:`HF_ROOT`).

The other options' defaults are registered with each format below.

Column options name a column, or a field inside a struct column with a dotted path
(``translation.sn``). Rows with a missing or ``None`` value are skipped and counted (one log
line); a value of the wrong type stops the run with a :class:`~adapterflow.errors.DataError`
naming the split, the row (``line`` = row index + 1) and the field.

Example:
    >>> import tempfile, pathlib, datasets
    >>> from adapterflow.data.converters import convert
    >>> raw = pathlib.Path(tempfile.mkdtemp())
    >>> rows = {"sentence1": ["a cat", "a dog"], "sentence2": ["the cat", None],
    ...         "score": [4.0, 1.0]}
    >>> datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(
    ...     str(raw / "hf"))
    >>> convert("hf_pairs", raw, {"score_scale": 5}).splits
    {'test': [{'sentence1': 'a cat', 'sentence2': 'the cat', 'score': 0.8}]}
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapterflow.data.layouts import PairSet, RetrievalSet, TripletSet
from adapterflow.data.registry import converter
from adapterflow.errors import DataError

logger = logging.getLogger(__name__)

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MISSING = object()
#: Where the ``hf`` fetcher saves the dataset below ``raw_dir``: option ``root``'s default.
HF_ROOT = "hf"


# --- shared helpers ---------------------------------------------------------------------------


def _default_split_name(raw_dir: Path, options: Mapping[str, Any]) -> str:
    if options.get("split_name"):
        return str(options["split_name"])
    manifest = raw_dir / "manifest.json"
    if manifest.exists():
        source = json.loads(manifest.read_text(encoding="utf-8")).get("source") or {}
        split = source.get("split")
        if isinstance(split, str) and _SPLIT_NAME.match(split):
            return split
    return "test"


def _load_splits(raw_dir: Path, options: Mapping[str, Any]) -> Iterator[tuple[str, Path, Any]]:
    """Yield ``(our split name, path for messages, datasets.Dataset)`` in the saved order."""
    import datasets  # pulls in pyarrow and pandas: only when an hf format is prepared

    root = Path(raw_dir) / options["root"]
    if not root.is_dir():
        raise DataError(
            root, "no saved dataset here; hf_* formats read what a source of kind 'hf' fetched"
        )
    try:
        saved = datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(root, f"not a saved datasets directory: {err}") from None
    if isinstance(saved, datasets.DatasetDict):
        named = [(split, root / split, ds) for split, ds in saved.items()]
    else:
        named = [(_default_split_name(Path(raw_dir), options), root, saved)]

    mapping = options.get("splits") or {}
    if not isinstance(mapping, Mapping):
        raise DataError(root, f"expected a mapping, got {mapping!r}", field="splits")
    unknown = sorted(set(mapping) - {split for split, _, _ in named})
    if unknown:
        known = ", ".join(split for split, _, _ in named)
        raise DataError(root, f"unknown source split(s) {unknown}; found: {known}", field="splits")
    targets: dict[str, str] = {}
    for split, path, ds in named:
        target = mapping.get(split, split)
        if target is None:
            continue
        target = str(target)
        if not _SPLIT_NAME.match(target):
            raise DataError(root, f"{target!r} is not a valid split name", field="splits")
        if target in targets:
            raise DataError(
                root,
                f"source splits {targets[target]!r} and {split!r} both map to {target!r}",
                field="splits",
            )
        targets[target] = split
        yield target, path, ds


def _columns(
    ds: Any, path: Path, fields: Mapping[str, str | list[str]]
) -> dict[str, list[list[Any]]]:
    """Read each field's column(s) as Python lists; ``fields[out] = dotted path(s)``."""
    wanted = {out: [spec] if isinstance(spec, str) else list(spec) for out, spec in fields.items()}
    for out, specs in wanted.items():
        if not specs or not all(isinstance(s, str) and s for s in specs):
            raise DataError(path, f"expected a column name, got {fields[out]!r}", field=out)
    columns = {spec.split(".", 1)[0] for specs in wanted.values() for spec in specs}
    missing = sorted(columns - set(ds.column_names))
    if missing:
        raise DataError(path, f"column not found; columns are {ds.column_names}", field=missing[0])
    table = ds.select_columns(sorted(columns)).to_dict()
    return {
        out: [[_dig(value, spec) for value in table[spec.split(".", 1)[0]]] for spec in specs]
        for out, specs in wanted.items()
    }


def _dig(value: Any, spec: str) -> Any:
    """``translation.sn`` → ``value["sn"]`` (``value`` is the ``translation`` column's cell)."""
    for key in spec.split(".")[1:]:
        if not isinstance(value, Mapping):
            return _MISSING if value is not None else None
        value = value.get(key)
    return value


def _text(value: Any, path: Path, index: int, field: str, many: bool = False) -> Any:
    """``value`` if it is a string (or, with ``many``, a list of strings), else a DataError."""
    if isinstance(value, str):
        return value
    if many and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if value is _MISSING:
        raise DataError(
            path, "not a struct: cannot take a field of it", line=index + 1, field=field
        )
    raise DataError(path, f"expected text, got {type(value).__name__}", line=index + 1, field=field)


def _dropped(skipped: Counter[str]) -> dict[str, int]:
    total = sum(skipped.values())
    return {"rows_with_missing_values": total} if total else {}


def _log_skipped(fmt: str, kept: Mapping[str, int], skipped: Counter[str]) -> None:
    logger.info(
        "%s: %d rows -> %d kept (%d rows with a missing value skipped%s)",
        fmt,
        sum(kept.values()) + sum(skipped.values()),
        sum(kept.values()),
        sum(skipped.values()),
        f": {dict(sorted(skipped.items()))}" if skipped else "",
    )


# --- hf_pairs ---------------------------------------------------------------------------------


@converter(
    "hf_pairs",
    "pairs",
    defaults={
        "sentence1": "sentence1",
        "sentence2": "sentence2",
        "score": "score",
        "score_scale": 1.0,
        "root": HF_ROOT,
    },
)
def convert_hf_pairs(raw_dir: Path, options: Mapping[str, Any]) -> PairSet:
    """Scored sentence pairs, e.g. ``sentence-transformers/stsb``.

    Options: ``sentence1``, ``sentence2``, ``score`` (column names); ``score_scale`` (scores
    are divided by it to land in [0, 1]); ``label`` (optional 0/1 column kept as ``"label"``;
    with ``score: null`` the label is the score).
    """
    score_col = options["score"]
    label_col = options.get("label")
    if score_col is None and not label_col:
        raise DataError(raw_dir, "score: null needs a label column", field="score")
    scale = float(options["score_scale"])
    if not scale > 0:
        raise DataError(raw_dir, f"must be > 0, got {scale}", field="score_scale")
    fields: dict[str, str] = {"sentence1": options["sentence1"], "sentence2": options["sentence2"]}
    if score_col is not None:
        fields["score"] = score_col
    if label_col:
        fields["label"] = label_col

    splits: dict[str, list[dict[str, Any]]] = {}
    skipped: Counter[str] = Counter()
    for split, path, ds in _load_splits(raw_dir, options):
        cols = {out: values[0] for out, values in _columns(ds, path, fields).items()}
        rows = []
        for index in range(len(ds)):
            values = {out: cols[out][index] for out in fields}
            if any(v is None for v in values.values()):
                skipped[split] += 1
                continue
            row: dict[str, Any] = {
                out: _text(values[out], path, index, fields[out])
                for out in ("sentence1", "sentence2")
            }
            if label_col:
                label = values["label"]
                if isinstance(label, bool) or label not in (0, 1):
                    raise DataError(
                        path,
                        f"split {split!r}: label {label!r} is not 0 or 1",
                        line=index + 1,
                        field=label_col,
                    )
            raw_score = values["score"] if score_col is not None else values["label"]
            field = score_col if score_col is not None else label_col
            if isinstance(raw_score, bool) or not isinstance(raw_score, int | float):
                raise DataError(
                    path,
                    f"split {split!r}: expected a number, got {type(raw_score).__name__}",
                    line=index + 1,
                    field=field,
                )
            score = raw_score / scale
            if math.isnan(score) or not 0.0 <= score <= 1.0:
                raise DataError(
                    path,
                    f"split {split!r}: score {raw_score} / score_scale {scale:g} = {score:g} "
                    "is outside [0, 1]; set options.score_scale",
                    line=index + 1,
                    field=field,
                )
            row["score"] = score
            if label_col:
                row["label"] = int(values["label"])
            rows.append(row)
        splits[split] = rows
    _log_skipped("hf_pairs", {s: len(r) for s, r in splits.items()}, skipped)
    return PairSet(splits, dropped=_dropped(skipped))


# --- hf_triplets ------------------------------------------------------------------------------


@converter(
    "hf_triplets",
    "triplets",
    defaults={"anchor": "anchor", "positive": "positive", "negative": "negative", "root": HF_ROOT},
)
def convert_hf_triplets(raw_dir: Path, options: Mapping[str, Any]) -> TripletSet:
    """Training triplets, e.g. ``sentence-transformers/all-nli`` (subset ``triplet``).

    Options: ``anchor``, ``positive``, ``negative`` (column names); ``negative`` may list
    several columns (``[negative_1, negative_2]``), which become a list.
    """
    negative = options["negative"]
    fields: dict[str, str | list[str]] = {
        "anchor": options["anchor"],
        "positive": options["positive"],
        "negative": negative,
    }
    several = not isinstance(negative, str)
    splits: dict[str, list[dict[str, Any]]] = {}
    skipped: Counter[str] = Counter()
    for split, path, ds in _load_splits(raw_dir, options):
        cols = _columns(ds, path, fields)
        specs = {out: [spec] if isinstance(spec, str) else spec for out, spec in fields.items()}
        rows = []
        for index in range(len(ds)):
            values = {out: [c[index] for c in cols[out]] for out in fields}
            if any(v is None for vs in values.values() for v in vs):
                skipped[split] += 1
                continue
            row: dict[str, Any] = {
                out: _text(values[out][0], path, index, specs[out][0])
                for out in ("anchor", "positive")
            }
            negatives = [
                _text(v, path, index, spec, many=True)
                for v, spec in zip(values["negative"], specs["negative"], strict=True)
            ]
            if several:
                flat: list[str] = []
                for item in negatives:
                    flat.extend(item if isinstance(item, list) else [item])
                row["negative"] = flat
            else:
                row["negative"] = negatives[0]
            rows.append(row)
        splits[split] = rows
    _log_skipped("hf_triplets", {s: len(r) for s, r in splits.items()}, skipped)
    return TripletSet(splits, dropped=_dropped(skipped))


# --- hf_parallel ------------------------------------------------------------------------------


@converter("hf_parallel", "retrieval", defaults={"root": HF_ROOT})
def convert_hf_parallel(raw_dir: Path, options: Mapping[str, Any]) -> RetrievalSet:
    """A parallel corpus as BEIR retrieval: query = source sentence, document = its translation.

    Options: ``source`` and ``target`` (dotted field paths, e.g. ``translation.sn`` and
    ``translation.en`` for ``rahular/itihasa``). Row ``i`` of split ``s`` becomes query
    ``{s}-{i}-q`` and document ``{s}-{i}`` with ``qrels[s]["{s}-{i}-q"] = {"{s}-{i}": 1}``.
    Rows keep their source order and index (a skipped row leaves a gap), so a document id
    encodes its position, which positional-distance negative mining relies on.
    """
    if not options.get("source") or not options.get("target"):
        field = "source" if not options.get("source") else "target"
        raise DataError(raw_dir, "required, e.g. 'translation.en'", field=field)
    fields = {"source": str(options["source"]), "target": str(options["target"])}
    corpus: dict[str, dict[str, Any]] = {}
    queries: dict[str, dict[str, Any]] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    skipped: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    for split, path, ds in _load_splits(raw_dir, options):
        cols = {out: values[0] for out, values in _columns(ds, path, fields).items()}
        judged = qrels.setdefault(split, {})
        for index in range(len(ds)):
            source, target = cols["source"][index], cols["target"][index]
            if source is None or target is None:
                skipped[split] += 1
                continue
            _text(source, path, index, fields["source"])
            _text(target, path, index, fields["target"])
            doc_id, query_id = f"{split}-{index}", f"{split}-{index}-q"
            corpus[doc_id] = {"_id": doc_id, "title": "", "text": target}
            queries[query_id] = {"_id": query_id, "text": source}
            judged[query_id] = {doc_id: 1}
            kept[split] += 1
    _log_skipped("hf_parallel", kept, skipped)
    return RetrievalSet(corpus, queries, qrels, dropped=_dropped(skipped))
