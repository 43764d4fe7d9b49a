"""Training pairs ``{"anchor", "positive"}`` from a prepared dataset (rule ``make_pairs``).

A *strategy* turns one layout into pairs; register a new one with
:func:`adapterflow.data.registry.pair_strategy`, which also holds the defaults of its options
(the registrations below are where they are written):

* ``qrels`` — retrieval: query text → each relevant (grade > 0) document, in qrels order;
* ``title_text`` — retrieval corpus: document title → document text;
* ``heading_section`` — corpus passages: ``"{title}: {section}"`` → passage text;
* ``inverse_cloze`` — one sentence of a passage → the passage without it (ICT, Lee et al. 2019);
* ``first_sentence`` — the first sentence of a passage → the rest of it;
* ``pairs`` — pass-through of a :class:`~adapterflow.data.layouts.PairSet` split;
* ``triplets`` — pass-through of a :class:`~adapterflow.data.layouts.TripletSet` split (the
  rows keep ``"negative"``, always as a list);
* ``llm_queries`` — a question a local LM wrote about a document → the document
  (:mod:`adapterflow.data.synthetic_queries`).

Every strategy then applies the same steps: pairs with an empty text or anchor == positive are
dropped; pairs made from a *held-out* text (any text of an evaluation split, see
:func:`held_out_texts`) are dropped, so training never sees what is evaluated; texts are cut to
``max_chars``; exact duplicate rows are dropped; the rows are shuffled with ``seed`` (unless
``shuffle: false``) and capped at ``max_pairs``. Each drop is counted by reason and logged.
A document is embedded as ``"title text"`` (:func:`adapterflow.data.layouts.document_text`), so
qrels positives are exactly what retrieval evaluation embeds.

Example:
    >>> import tempfile, pathlib
    >>> from adapterflow.data.layouts import RetrievalSet
    >>> from adapterflow.data.pairs import make_pairs
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = RetrievalSet({
    ...     "d1": {"_id": "d1", "title": "Cats", "text": "Cats purr. They sleep a lot."},
    ...     "d2": {"_id": "d2", "title": "", "text": "Untitled notes."},
    ... }).write(root)
    >>> rows, dropped = make_pairs(root, "title_text")
    >>> rows, dict(dropped)
    ([{'anchor': 'Cats', 'positive': 'Cats purr. They sleep a lot.'}], {'no_title': 1})
    >>> make_pairs(root, "first_sentence")[0]
    [{'anchor': 'Cats purr.', 'positive': 'They sleep a lot.'}]
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from tqdm import tqdm

# Importing synthetic_queries registers llm_queries: make_pairs and the config checks know
# every strategy through this module.
from adapterflow.data import synthetic_queries  # noqa: F401
from adapterflow.data.layouts import (
    LAYOUTS,
    PairSet,
    RetrievalSet,
    TripletSet,
    detect_layout,
    document_text,
)
from adapterflow.data.registry import (
    PAIR_STRATEGIES,
    lookup,
    pair_strategy,
    strategy_input,
)
from adapterflow.data.text import format_counts, split_sentences, truncate
from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_file, read_jsonl, write_jsonl
from adapterflow.settings import PairsSettings

logger = logging.getLogger(__name__)

# --- strategies --------------------------------------------------------------------------------


def _document_text(doc: Mapping[str, Any]) -> str:
    return document_text(dict(doc))


def _split(dataset_dir: Path, splits: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    name = str(options["split"])
    if name not in splits:
        have = ", ".join(sorted(splits)) or "none"
        raise DataError(dataset_dir, f"no split {name!r} (splits: {have})", field="split")
    return splits[name]


@pair_strategy("qrels", "retrieval", defaults={"split": "train"})
def _qrels(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """Query → each document judged relevant (grade > 0) in the split."""
    data = strategy_input(dataset_dir, "qrels")
    for qid, docs in _split(dataset_dir, data.qrels, options).items():
        query = data.queries[qid]["text"]
        for did, grade in docs.items():
            if grade <= 0:
                dropped["not_relevant"] += 1
                continue
            doc = data.corpus[did]
            positive = _document_text(doc)
            yield {"anchor": query, "positive": positive}, (query, positive, doc["text"])


@pair_strategy("title_text", "retrieval", text_positives=True)
def _title_text(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """Document title → document text (without the title)."""
    data = strategy_input(dataset_dir, "title_text")
    for doc in data.corpus.values():
        title = (doc.get("title") or "").strip()
        if not title:
            dropped["no_title"] += 1
            continue
        yield {"anchor": title, "positive": doc["text"]}, _doc_sources(doc)


@pair_strategy(
    "heading_section", "retrieval", defaults={"require_section": False}, text_positives=True
)
def _heading_section(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """``"{title}: {section}"`` (the title alone without a section) → passage text; one
    warning counts the passages whose heading fell back to the title."""
    data = strategy_input(dataset_dir, "heading_section")
    require_section = bool(options["require_section"])
    title_only = 0
    for doc in data.corpus.values():
        title = (doc.get("title") or "").strip()
        section = str(doc.get("section") or "").strip()
        if require_section and not section:
            dropped["no_section"] += 1
            continue
        if not title:
            dropped["no_title"] += 1
            continue
        title_only += not section
        heading = f"{title}: {section}" if section else title
        yield {"anchor": heading, "positive": doc["text"]}, _doc_sources(doc)
    if title_only:
        logger.warning(
            "heading_section: %d of %d passages have no section field (or an empty one): "
            "their heading falls back to the title alone (require_section: true drops them)",
            title_only,
            len(data.corpus),
        )


@pair_strategy(
    "inverse_cloze",
    "retrieval",
    defaults={"keep_probability": 0.0},
    text_positives=True,
    anchor_from_document=True,
)
def _inverse_cloze(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """One sentence → the passage without it; with ``keep_probability`` the sentence stays in
    (Lee et al. keep it 10 % of the time, so the model also learns plain word overlap)."""
    data = strategy_input(dataset_dir, "inverse_cloze")
    keep_probability = float(options["keep_probability"])
    if not 0.0 <= keep_probability <= 1.0:
        raise ConfigError(f"inverse_cloze: keep_probability {keep_probability} is not in [0, 1]")
    for position, doc in enumerate(data.corpus.values()):
        sentences = split_sentences(doc["text"])
        if len(sentences) < 2:
            dropped["too_few_sentences"] += 1
            continue
        # One generator per passage: a passage's pair does not depend on the passages before it.
        rng = random.Random(seed + position)
        chosen = rng.randrange(len(sentences))
        kept = keep_probability > 0 and rng.random() < keep_probability
        rest = sentences if kept else sentences[:chosen] + sentences[chosen + 1 :]
        yield {"anchor": sentences[chosen], "positive": " ".join(rest)}, _doc_sources(doc)


@pair_strategy("first_sentence", "retrieval", text_positives=True, anchor_from_document=True)
def _first_sentence(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """First sentence of a passage → the rest of the passage."""
    data = strategy_input(dataset_dir, "first_sentence")
    for doc in data.corpus.values():
        sentences = split_sentences(doc["text"])
        if len(sentences) < 2:
            dropped["too_few_sentences"] += 1
            continue
        yield {"anchor": sentences[0], "positive": " ".join(sentences[1:])}, _doc_sources(doc)


@pair_strategy("pairs", "pairs", {"min_score"}, defaults={"split": "train"})
def _pairs(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """sentence1 → sentence2 of a scored pair split; ``min_score`` keeps pairs scored ≥ it."""
    data = strategy_input(dataset_dir, "pairs")
    min_score = options.get("min_score")
    for row in _split(dataset_dir, data.splits, options):
        if min_score is not None and row["score"] < float(min_score):
            dropped["below_min_score"] += 1
            continue
        texts = (row["sentence1"], row["sentence2"])
        yield {"anchor": texts[0], "positive": texts[1]}, texts


@pair_strategy("triplets", "triplets", defaults={"split": "train"})
def _triplets(dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter):
    """Triplets as they are; ``negative`` becomes a list."""
    data = strategy_input(dataset_dir, "triplets")
    for row in _split(dataset_dir, data.splits, options):
        negatives = row["negative"] if isinstance(row["negative"], list) else [row["negative"]]
        out = {"anchor": row["anchor"], "positive": row["positive"], "negative": list(negatives)}
        yield out, (row["anchor"], row["positive"], *negatives)


def _doc_sources(doc: Mapping[str, Any]) -> tuple[str, ...]:
    return (doc["text"], _document_text(doc))


# --- the common pipeline -----------------------------------------------------------------------


def make_pairs(
    dataset_dir: str | os.PathLike[str],
    strategy: str,
    *,
    options: Mapping[str, Any] | None = None,
    held_out: AbstractSet[str] = frozenset(),
    seed: int = 0,
    max_pairs: int | None = None,
) -> tuple[list[dict[str, Any]], Counter]:
    """Training rows made from the prepared dataset at ``dataset_dir`` with ``strategy``, and
    the number of rows dropped per reason.

    ``options`` are the strategy's own (see the module docstring and each strategy) plus
    ``max_chars`` (cut anchor, positive and negatives to this many characters; absent: no
    cut) and ``shuffle`` (``false`` keeps source order, which positional negative mining
    needs); options left out take the defaults registered with the strategy
    (:meth:`~adapterflow.data.registry.PairStrategy.with_defaults`). ``held_out`` holds texts
    that must not be trained on: a pair whose anchor, positive (or negative) or any text it
    was made from is in it is dropped.
    Rows are shuffled with ``random.Random(seed)`` and capped at ``max_pairs``; the same
    arguments always give the same rows. Raises :class:`~adapterflow.errors.DataError` when no
    row is left.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.data.layouts import PairSet
        >>> from adapterflow.data.pairs import make_pairs
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = PairSet({"train": [{"sentence1": "a cat", "sentence2": "a kitten", "score": 0.9},
        ...                        {"sentence1": "a dog", "sentence2": "tax law", "score": 0.1},
        ...                        {"sentence1": "rain", "sentence2": "a storm", "score": 0.7}]}
        ...             ).write(root)
        >>> rows, dropped = make_pairs(root, "pairs", options={"min_score": 0.5},
        ...                            held_out={"a storm"})
        >>> rows, sorted(dropped.items())
        ([{'anchor': 'a cat', 'positive': 'a kitten'}], [('below_min_score', 1), ('held_out', 1)])
    """
    dataset_dir = Path(dataset_dir)
    registered = lookup(PAIR_STRATEGIES, "pairs", strategy, options or {})
    options = registered.with_defaults(options or {})
    max_chars = options.get("max_chars")
    max_chars = None if max_chars is None else int(max_chars)
    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"pairs: max_chars must be at least 1, got {max_chars}")
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"pairs: max_pairs must be at least 1, got {max_pairs}")

    started = time.perf_counter()
    dropped: Counter = Counter()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    truncated = 0
    candidates = registered.fn(dataset_dir, options, seed, dropped)
    for row, sources in tqdm(candidates, desc=f"make_pairs {strategy}", unit="pair"):
        negatives = row.get("negative", [])
        if not row["anchor"].strip() or not row["positive"].strip():
            dropped["empty"] += 1
            continue
        if row["anchor"] == row["positive"]:
            dropped["same_text"] += 1
            continue
        if held_out and not held_out.isdisjoint(
            (row["anchor"], row["positive"], *negatives, *sources)
        ):
            dropped["held_out"] += 1
            continue
        if max_chars is not None:
            cut = {key: _cut(value, max_chars) for key, value in row.items()}
            truncated += cut != row
            row = cut
        key = (row["anchor"], row["positive"], *row.get("negative", []))
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        rows.append(row)

    shuffle = bool(options["shuffle"])
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(rows)
    if max_pairs is not None and len(rows) > max_pairs:
        dropped["over_max_pairs"] = len(rows) - max_pairs
        if shuffle:
            rows = rows[:max_pairs]
        else:
            # A random subset that keeps source order.
            keep = sorted(rng.sample(range(len(rows)), max_pairs))
            rows = [rows[i] for i in keep]
    seconds = time.perf_counter() - started
    total = len(rows) + sum(dropped.values())
    logger.info(
        "make_pairs %s: %d rows from %s in %.1f s (%.0f candidates/s); dropped: %s; "
        "truncated (max_chars=%s): %d",
        strategy,
        len(rows),
        dataset_dir,
        seconds,
        total / max(seconds, 1e-9),
        format_counts(dropped),
        max_chars,
        truncated,
    )
    if not rows:
        raise DataError(
            dataset_dir,
            f"strategy {strategy!r} left no pairs (dropped: {format_counts(dropped)})",
            field="strategy",
        )
    return rows, dropped


def _cut(value: Any, max_chars: int) -> Any:
    if isinstance(value, list):
        return [truncate(v, max_chars) for v in value]
    return truncate(value, max_chars)


# --- held-out texts ----------------------------------------------------------------------------


def held_out_texts(dataset_dir: str | os.PathLike[str], split: str) -> set[str]:
    """Every text of split ``split`` of a prepared dataset of any layout: retrieval — the
    split's queries and each judged document (any grade) as embedded (``"title text"``) and as
    raw text; pairs — both sentences; triplets — anchor, positive and negatives.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.data.layouts import RetrievalSet
        >>> from adapterflow.data.pairs import held_out_texts
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = RetrievalSet({"d1": {"_id": "d1", "title": "T", "text": "body"},
        ...                   "d2": {"_id": "d2", "title": "", "text": "other"}},
        ...                  {"q1": {"_id": "q1", "text": "query"}},
        ...                  {"test": {"q1": {"d1": 1}}}).write(root)
        >>> sorted(held_out_texts(root, "test"))
        ['T body', 'body', 'query']
    """
    dataset_dir = Path(dataset_dir)
    data = LAYOUTS[detect_layout(dataset_dir)].read(dataset_dir)
    texts: set[str] = set()
    if isinstance(data, RetrievalSet):
        for qid, docs in _split(dataset_dir, data.qrels, {"split": split}).items():
            texts.add(data.queries[qid]["text"])
            for did in docs:
                texts.update(_doc_sources(data.corpus[did]))
    elif isinstance(data, PairSet):
        for row in _split(dataset_dir, data.splits, {"split": split}):
            texts.update((row["sentence1"], row["sentence2"]))
    else:
        for row in _split(dataset_dir, data.splits, {"split": split}):
            negative = row["negative"]
            texts.update((row["anchor"], row["positive"]))
            texts.update(negative if isinstance(negative, list) else [negative])
    return texts


def held_out_from_splits(
    held_out_splits: Iterable[Sequence[str]],
    declared: Iterable[str | os.PathLike[str]] | None = None,
) -> set[str]:
    """The union of :func:`held_out_texts` over ``[dataset_dir, split]`` pairs.

    ``declared`` are the directories a Snakemake rule lists as ``input.held_out``: each
    held-out directory must be one of them, or Snakemake would not wait for it to be prepared
    (and would not rerun the job when it changes).

    Example:
        >>> from adapterflow.data.pairs import held_out_from_splits
        >>> held_out_from_splits([])
        set()
        >>> held_out_from_splits([["results/clean/news", "test"]], declared=[])
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: held-out dataset results/clean/news is not among the \
declared inputs (none)
    """
    declared_dirs = None if declared is None else {os.path.normpath(d) for d in declared}
    texts: set[str] = set()
    for entry in held_out_splits:
        if isinstance(entry, str) or len(entry) != 2:
            raise ConfigError(f"held-out split must be [dataset_dir, split], got {entry!r}")
        directory, split = str(entry[0]), str(entry[1])
        if declared_dirs is not None and os.path.normpath(directory) not in declared_dirs:
            raise ConfigError(
                f"held-out dataset {directory} is not among the declared inputs "
                f"({', '.join(sorted(declared_dirs)) or 'none'})"
            )
        texts |= held_out_texts(directory, split)
    return texts


# --- files -------------------------------------------------------------------------------------


def write_pairs(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as JSONL atomically (complete or absent, even if the job is killed); return
    the row count.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.data.pairs import read_pairs, write_pairs
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs" / "toy.jsonl"
        >>> write_pairs(path, [{"anchor": "a", "positive": "b"}])
        1
        >>> read_pairs(path)
        [{'anchor': 'a', 'positive': 'b'}]
    """
    with atomic_file(path) as tmp:
        return write_jsonl(tmp, rows)


def read_pairs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a pairs/triplets JSONL file: ``anchor`` and ``positive`` strings, optional
    ``negative`` (a string or a list of strings); :class:`DataError` names the first bad line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    rows = []
    for number, row in read_jsonl(path, {"anchor": str, "positive": str}):
        if "negative" in row:
            TripletSet.check_row(path, number, row)
            if not isinstance(row["negative"], (str, list)):
                raise DataError(path, "expected str or list", line=number, field="negative")
        rows.append(row)
    return rows


# --- the step ----------------------------------------------------------------------------------


def make_pairs_file(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    pairs: PairsSettings | Mapping[str, Any],
    *,
    held_out_splits: Iterable[Sequence[str]] = (),
    declared_held_out: Iterable[str | os.PathLike[str]] | None = None,
) -> int:
    """Rule ``make_pairs``: the pairs of the prepared ``dataset`` made as the ``pairs`` block
    says (``strategy``, ``options``, ``max_pairs``, ``seed``; ``dataset`` is not read: the
    rule's input is), none made from a text of the ``held_out_splits`` (``[dataset_dir,
    split]`` pairs, each ``dataset_dir`` one of ``declared_held_out`` when given: see
    :func:`held_out_from_splits`), written to ``out`` atomically; returns the row count.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.data.layouts import PairSet
        >>> from adapterflow.data.pairs import make_pairs_file, read_pairs
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = PairSet({"train": [{"sentence1": "a cat", "sentence2": "a kitten", "score": 1},
        ...                        {"sentence1": "rain", "sentence2": "a storm", "score": 1}],
        ...              "test": [{"sentence1": "rain", "sentence2": "wet", "score": 1}]}
        ...             ).write(root / "sts")
        >>> make_pairs_file(root / "sts", root / "pairs.jsonl", {"strategy": "pairs"},
        ...                 held_out_splits=[[root / "sts", "test"]])
        1
        >>> read_pairs(root / "pairs.jsonl")
        [{'anchor': 'a cat', 'positive': 'a kitten'}]
    """
    settings = PairsSettings.from_block(pairs)
    held_out = held_out_from_splits(held_out_splits, declared_held_out)
    logger.info("%d held-out texts from the evaluation splits", len(held_out))
    rows, _ = make_pairs(
        dataset,
        settings.strategy,
        options=settings.options,
        held_out=held_out,
        seed=settings.seed,
        max_pairs=settings.max_pairs,
    )
    count = write_pairs(out, rows)
    logger.info("wrote %d pairs to %s", count, out)
    return count
