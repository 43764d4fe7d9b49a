"""Negatives for training pairs: ``{"anchor","positive"}`` → ``{"anchor","positive","negative"}``
(rule ``mine_triplets``), ``negative`` a list of exactly ``k`` texts.

The candidate pool is the set of distinct positives, plus option ``corpus`` (extra candidate
texts, e.g. the documents of a BEIR corpus the caller passes). A *strategy* ranks or samples
candidates for each row; register a new one with :func:`mining_strategy`:

* ``random`` — uniformly random candidates;
* ``positional`` — random candidates at least ``min_distance`` rows away in the input order
  (the Itihasa recipe: neighbouring verses are too similar to be negatives);
* ``bm25`` — the lexically closest candidates to the anchor (bm25s), ranks ``range_min`` to
  ``range_max``;
* ``dense`` — sentence-transformers' :func:`~sentence_transformers.util.mine_hard_negatives`
  with a model (ranks, margins, maximum score, top or random sampling);
* ``given`` — the row's own ``negative`` texts (triplets passed through by ``make_pairs``).

Whatever the strategy, every kept row has exactly ``k`` distinct negatives, none equal to its
anchor or to any positive of its anchor (a positive of another row with the same anchor is a
false negative), none in ``held_out``. Rows with a held-out anchor or positive, duplicate
rows and rows left with fewer than ``k`` negatives are dropped and counted. ``k = 0`` passes
the pairs through without negatives (in-batch negatives only). The same ``seed`` gives the
same rows.

Example:
    >>> from adapterflow.data.mining import mine_triplets
    >>> pairs = [{"anchor": f"q{i}", "positive": f"p{i}"} for i in range(5)]
    >>> rows, dropped = mine_triplets(pairs, "random", k=2, seed=1)
    >>> len(rows), all(len(set(r["negative"])) == 2 for r in rows), dict(dropped)
    (5, True, {})
    >>> all(r["positive"] not in r["negative"] for r in rows)
    True
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from adapterflow.data.pairs import format_counts
from adapterflow.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairRow:
    """One input pair: its texts, its position in the input and its own negatives, if any."""

    anchor: str
    positive: str
    position: int
    given: tuple[str, ...] = ()


@dataclass
class MiningJob:
    """What a strategy sees: the rows to mine for, the candidate pool and the settings."""

    rows: list[PairRow]
    pool: list[str]
    k: int
    options: Mapping[str, Any]
    seed: int
    model: Any = None
    #: anchor → every positive it has in the input: none of them may be its negative.
    positives_of: dict[str, set[str]] = field(default_factory=dict)

    def excluded(self, row: PairRow) -> set[str]:
        """Texts that must not be ``row``'s negatives."""
        return {row.anchor} | self.positives_of.get(row.anchor, {row.positive})


#: ``fn(job) -> candidates per row``, best first; may hold too many or invalid ones: the
#: caller removes excluded texts and duplicates and keeps the first ``k``.
MiningStrategy = Callable[[MiningJob], list[list[str]]]


@dataclass(frozen=True)
class _Registered:
    fn: MiningStrategy
    options: frozenset[str]


STRATEGIES: dict[str, _Registered] = {}
#: Options every strategy accepts.
COMMON_OPTIONS = frozenset({"corpus"})


def mining_strategy(
    name: str, options: Iterable[str] = ()
) -> Callable[[MiningStrategy], MiningStrategy]:
    """Register ``fn(job) -> candidates per row`` under a strategy name used in config;
    ``options`` names its option keys (any other key is a config error)."""

    def register(fn: MiningStrategy) -> MiningStrategy:
        STRATEGIES[name] = _Registered(fn, frozenset(options))
        return fn

    return register


# --- strategies --------------------------------------------------------------------------------


def sample_valid(
    rng: random.Random,
    n: int,
    text_at: Callable[[int], str],
    excluded: AbstractSet[str],
    k: int,
) -> list[str]:
    """Up to ``k`` distinct texts not in ``excluded``, drawn uniformly without replacement from
    the ``n`` candidates ``text_at(0..n-1)``.

    Example:
        >>> import random
        >>> from adapterflow.data.mining import sample_valid
        >>> pool = ["a", "b", "b", "c"]
        >>> sorted(sample_valid(random.Random(0), 4, pool.__getitem__, {"a"}, k=5))
        ['b', 'c']
    """
    chosen: list[str] = []
    seen: set[str] = set()
    tried: set[int] = set()
    # A first draw a little larger than k almost always suffices (O(k) for any pool size);
    # the full permutation is the fallback for small pools crowded with excluded texts.
    first = min(n, 2 * k + len(excluded) + 8)
    for size in (first, n):
        for index in rng.sample(range(n), size):
            if index in tried:
                continue
            tried.add(index)
            text = text_at(index)
            if text in excluded or text in seen:
                continue
            seen.add(text)
            chosen.append(text)
            if len(chosen) == k:
                return chosen
        if size == n:
            break
    return chosen


@mining_strategy("random")
def _random(job: MiningJob) -> list[list[str]]:
    """k candidates drawn uniformly from the pool."""
    rng = random.Random(job.seed)
    return [
        sample_valid(rng, len(job.pool), job.pool.__getitem__, job.excluded(row), job.k)
        for row in tqdm(job.rows, desc="mine random", unit="pair")
    ]


@mining_strategy("positional", options={"min_distance"})
def _positional(job: MiningJob) -> list[list[str]]:
    """k positives of rows at least ``min_distance`` (default 10) input rows away.

    Positions are the rows' order in the input file: make the pairs with ``shuffle: false`` so
    that the order is the source's (verse order, for Itihasa).
    """
    if job.options.get("corpus"):
        raise ConfigError("positional mining: corpus texts have no position; leave corpus unset")
    distance = int(job.options.get("min_distance", 10))
    if distance < 1:
        raise ConfigError(f"positional mining: min_distance must be at least 1, got {distance}")
    rng = random.Random(job.seed)
    rows = sorted(job.rows, key=lambda r: r.position)
    positions = [r.position for r in rows]
    found: dict[int, list[str]] = {}
    for row in tqdm(job.rows, desc="mine positional", unit="pair"):
        # Rows [lo, hi) are closer than min_distance; candidates are the rows outside.
        lo = bisect.bisect_right(positions, row.position - distance)
        hi = bisect.bisect_left(positions, row.position + distance)

        def text_at(index: int, lo: int = lo, hi: int = hi) -> str:
            return rows[index if index < lo else index - lo + hi].positive

        n = lo + len(rows) - hi
        found[row.position] = sample_valid(rng, n, text_at, job.excluded(row), job.k)
    return [found[row.position] for row in job.rows]


@mining_strategy("bm25", options={"range_min", "range_max", "stopwords"})
def _bm25(job: MiningJob) -> list[list[str]]:
    """The pool ranked by BM25 (bm25s) against the anchor; ranks ``range_min`` (default 0) to
    ``range_max`` (default 100) count, hits with no term in common (score 0) never do.
    ``stopwords`` (default ``"en"``) is passed to ``bm25s.tokenize``; no stemming."""
    import bm25s

    range_min = int(job.options.get("range_min", 0))
    range_max = int(job.options.get("range_max", 100))
    _check_range(range_min, range_max, job.k, "bm25")
    stopwords = job.options.get("stopwords", "en")
    anchors = list(dict.fromkeys(row.anchor for row in job.rows))
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(job.pool, stopwords=stopwords, show_progress=False))
    hits, scores = retriever.retrieve(
        bm25s.tokenize(anchors, stopwords=stopwords, show_progress=False),
        k=min(range_max, len(job.pool)),
        show_progress=True,
    )
    ranked = {
        anchor: [
            job.pool[i]
            for i, s in zip(hits[a, range_min:], scores[a, range_min:], strict=True)
            if s > 0
        ]
        for a, anchor in enumerate(anchors)
    }
    return [ranked[row.anchor] for row in job.rows]


#: Options passed to sentence-transformers' mine_hard_negatives as they are (``margin`` is its
#: ``absolute_margin``).
DENSE_OPTIONS = {
    "range_min": "range_min",
    "range_max": "range_max",
    "margin": "absolute_margin",
    "relative_margin": "relative_margin",
    "max_score": "max_score",
    "min_score": "min_score",
    "sampling_strategy": "sampling_strategy",
    "batch_size": "batch_size",
    "query_prompt": "query_prompt",
    "corpus_prompt": "corpus_prompt",
}


@mining_strategy("dense", options=DENSE_OPTIONS)
def _dense(job: MiningJob) -> list[list[str]]:
    """sentence-transformers' ``mine_hard_negatives`` with ``job.model`` (a SentenceTransformer).

    Asks for k negatives per anchor in the ``labeled-list`` format (which keeps rows that
    found fewer), k + 1 when the pool holds an anchor: mine_hard_negatives excludes the
    positives but not the anchor itself, which is then dropped here. ``sampling_strategy:
    random`` draws from Python's global ``random``, seeded here with the job's seed and
    restored afterwards.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    if job.model is None:
        raise ConfigError("dense mining needs a model (a SentenceTransformer)")
    kwargs = {
        DENSE_OPTIONS[key]: value for key, value in job.options.items() if key in DENSE_OPTIONS
    }
    range_min = int(kwargs.get("range_min", 0))
    pool = set(job.pool)
    # One more when some anchor is itself a candidate (mine_hard_negatives would offer it);
    # otherwise exactly k, so that random sampling draws as mine_hard_negatives itself does.
    num_negatives = job.k + any(row.anchor in pool for row in job.rows)
    if kwargs.get("range_max") is not None:
        _check_range(range_min, int(kwargs["range_max"]), job.k, "dense")
        num_negatives = min(num_negatives, int(kwargs["range_max"]) - range_min)
    dataset = Dataset.from_dict(
        {"anchor": [r.anchor for r in job.rows], "positive": [r.positive for r in job.rows]}
    )
    positives = {r.positive for r in job.rows}
    extra = [text for text in job.pool if text not in positives]
    with _seeded_global_random(job.seed):
        mined = mine_hard_negatives(
            dataset,
            job.model,
            anchor_column_name="anchor",
            positive_column_name="positive",
            corpus=extra or None,
            num_negatives=num_negatives,
            output_format="labeled-list",
            verbose=False,
            **kwargs,
        )
    found: dict[tuple[str, str], list[str]] = {}
    for anchor, documents in zip(mined["anchor"], mined["positive"], strict=True):
        # labeled-list: documents = [positive, negative_1, ..., negative_n], best first.
        found[(anchor, documents[0])] = list(documents[1:])
    return [found.get((row.anchor, row.positive), []) for row in job.rows]


@mining_strategy("given")
def _given(job: MiningJob) -> list[list[str]]:
    """The row's own ``negative`` texts, in their order."""
    return [list(row.given) for row in job.rows]


def _check_range(range_min: int, range_max: int, k: int, strategy: str) -> None:
    if range_min < 0 or range_max - range_min < k:
        raise ConfigError(
            f"{strategy} mining: ranks range_min={range_min} to range_max={range_max} leave "
            f"fewer than k={k} candidates"
        )


@contextlib.contextmanager
def _seeded_global_random(seed: int) -> Iterator[None]:
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


# --- the common pipeline -----------------------------------------------------------------------


def mine_triplets(
    pairs: Sequence[Mapping[str, Any]],
    strategy: str,
    *,
    k: int = 1,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    model: Any = None,
    held_out: AbstractSet[str] = frozenset(),
) -> tuple[list[dict[str, Any]], Counter]:
    """Add ``k`` negatives to each of ``pairs`` with ``strategy``; return the rows (in input
    order) and the number of input rows dropped per reason.

    ``options`` are the strategy's (see the module docstring and each strategy) plus
    ``corpus``: extra candidate texts (a list of strings) joining the pool of positives.
    ``model`` is the SentenceTransformer for ``dense``. ``held_out`` texts are never
    negatives, and rows with a held-out anchor or positive are dropped. Input rows may carry a
    ``negative`` already; only ``given`` uses it.

    Example:
        >>> from adapterflow.data.mining import mine_triplets
        >>> pairs = [{"anchor": "cheap cat food", "positive": "kibble for cats"},
        ...          {"anchor": "cheap dog food", "positive": "kibble for dogs"},
        ...          {"anchor": "tax law", "positive": "the income tax act"}]
        >>> corpus = ["cat food bowls", "dog food bowls"]
        >>> rows, dropped = mine_triplets(pairs, "bm25", options={"corpus": corpus})
        >>> [row["negative"] for row in rows]
        [['cat food bowls'], ['dog food bowls']]
        >>> dict(dropped)  # "tax law" shares no word with another candidate
        {'too_few_negatives': 1}
    """
    options = dict(options or {})
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown mining strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}"
        )
    registered = STRATEGIES[strategy]
    unknown = set(options) - registered.options - COMMON_OPTIONS
    if unknown:
        allowed = ", ".join(sorted(registered.options | COMMON_OPTIONS))
        raise ConfigError(
            f"mining strategy {strategy!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"allowed: {allowed}"
        )
    if k < 0:
        raise ConfigError(f"mining: k must be at least 0, got {k}")
    extra = options.get("corpus") or []
    if isinstance(extra, (str, bool)) or not all(isinstance(t, str) for t in extra):
        raise ConfigError(
            "mining option corpus must be a list of texts (the mine_triplets script fills it "
            "from its corpus input)"
        )

    started = time.perf_counter()
    dropped: Counter = Counter()
    rows: list[PairRow] = []
    seen: set[tuple[str, str]] = set()
    positives_of: dict[str, set[str]] = {}
    for position, pair in enumerate(pairs):
        anchor, positive = pair["anchor"], pair["positive"]
        positives_of.setdefault(anchor, set()).add(positive)
        if anchor in held_out or positive in held_out:
            dropped["held_out"] += 1
        elif anchor == positive:
            dropped["same_text"] += 1
        elif (anchor, positive) in seen:
            dropped["duplicate"] += 1
        else:
            seen.add((anchor, positive))
            given = pair.get("negative", ())
            rows.append(PairRow(anchor, positive, position, tuple(_as_list(given))))

    if k == 0:
        out = [{"anchor": r.anchor, "positive": r.positive} for r in rows]
        _log_summary(strategy, k, len(pairs), out, 0, dropped, started)
        return out, dropped

    pool = [t for t in dict.fromkeys([r.positive for r in rows] + list(extra)) if t not in held_out]
    job = MiningJob(rows, pool, k, options, seed, model, positives_of)
    # A strategy never sees an empty job (bm25s and mine_hard_negatives reject one).
    candidates = registered.fn(job) if rows else []
    out: list[dict[str, Any]] = []
    for row, ranked in zip(rows, candidates, strict=True):
        excluded = job.excluded(row)
        negatives = [
            text for text in dict.fromkeys(ranked) if text not in excluded and text not in held_out
        ][:k]
        if len(negatives) < k:
            dropped["too_few_negatives"] += 1
            continue
        out.append({"anchor": row.anchor, "positive": row.positive, "negative": negatives})
    _log_summary(strategy, k, len(pairs), out, len(pool), dropped, started)
    return out, dropped


def _as_list(negative: Any) -> list[str]:
    if isinstance(negative, str):
        return [negative]
    return list(negative)


def _log_summary(
    strategy: str,
    k: int,
    n_pairs: int,
    rows: list[dict[str, Any]],
    pool_size: int,
    dropped: Counter,
    started: float,
) -> None:
    seconds = time.perf_counter() - started
    logger.info(
        "mine_triplets %s: %d rows with k=%d negatives from %d pairs (pool %d texts) in %.1f s "
        "(%.0f pairs/s); dropped: %s",
        strategy,
        len(rows),
        k,
        n_pairs,
        pool_size,
        seconds,
        n_pairs / max(seconds, 1e-9),
        format_counts(dropped),
    )
