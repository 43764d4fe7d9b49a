"""Negatives for training pairs: ``{"anchor","positive"}`` → ``{"anchor","positive","negative"}``
(rule ``mine_triplets``), ``negative`` a list of exactly ``k`` texts.

The candidate pool is the set of distinct positives, plus option ``corpus`` (extra candidate
texts: the documents of one or more retrieval corpora, see :func:`corpus_candidates`; the rule
passes the whole corpus of the pairs' own dataset, when it has one, to ``random``, ``bm25`` and
``dense``), minus the held-out texts. A *strategy* ranks or samples candidates for each row;
register a new one with :func:`adapterflow.data.registry.mining_strategy`:

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
false negative), none in ``not_negatives`` of its anchor (e.g. the document an inverse-cloze
anchor was cut from), none in ``held_out``. Rows with a held-out anchor or positive, duplicate
rows and rows left with fewer than ``k`` negatives are dropped and counted. ``k = 0`` passes
the pairs through without negatives (in-batch negatives only). The same ``seed`` gives the
same rows. Options left out take the defaults registered with the strategy (the registrations
below are where they are written).

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
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from adapterflow.data.layouts import RetrievalSet, detect_layout, document_text
from adapterflow.data.pairs import held_out_from_splits, read_pairs, write_pairs
from adapterflow.data.registry import (
    MINING_STRATEGIES,
    PAIR_STRATEGIES,
    lookup,
    mining_strategy,
)
from adapterflow.data.text import format_counts, split_sentences, truncate
from adapterflow.errors import ConfigError, DataError
from adapterflow.settings import PairsSettings, TripletsSettings

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
    #: anchor → more texts that must not be its negatives (its source documents).
    not_negatives: Mapping[str, AbstractSet[str]] = field(default_factory=dict)

    def excluded(self, row: PairRow) -> set[str]:
        """Texts that must not be ``row``'s negatives."""
        excluded = {row.anchor} | self.positives_of.get(row.anchor, {row.positive})
        return excluded | set(self.not_negatives.get(row.anchor, ()))


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


@mining_strategy("positional", defaults={"min_distance": 10}, uses_pool=False)
def _positional(job: MiningJob) -> list[list[str]]:
    """k positives of rows at least ``min_distance`` input rows away.

    Positions are the rows' order in the input file: make the pairs with ``shuffle: false`` so
    that the order is the source's (verse order, for Itihasa).
    """
    if job.options.get("corpus"):
        raise ConfigError("positional mining: corpus texts have no position; leave corpus unset")
    distance = int(job.options["min_distance"])
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


#: Default ranks ``(range_min, range_max)`` of the strategies that rank candidates.
BM25_RANKS, DENSE_RANKS = (0, 100), (0, None)


@mining_strategy(
    "bm25",
    defaults={"range_min": BM25_RANKS[0], "range_max": BM25_RANKS[1], "stopwords": "en"},
    ranks=BM25_RANKS,
)
def _bm25(job: MiningJob) -> list[list[str]]:
    """The pool ranked by BM25 (bm25s) against the anchor; ranks ``range_min`` to
    ``range_max`` count, hits with no term in common (score 0) never do. ``stopwords`` is
    passed to ``bm25s.tokenize``; no stemming."""
    import bm25s

    range_min = int(job.options["range_min"])
    range_max = int(job.options["range_max"])
    _check_range(range_min, range_max, job.k, "bm25")
    stopwords = job.options["stopwords"]
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


@mining_strategy("dense", options=DENSE_OPTIONS, ranks=DENSE_RANKS)
def _dense(job: MiningJob) -> list[list[str]]:
    """sentence-transformers' ``mine_hard_negatives`` with ``job.model`` (a SentenceTransformer).

    Asks for k negatives per anchor in the ``labeled-list`` format (which keeps rows that
    found fewer), one more when the pool holds an anchor and as many more as an anchor has
    ``not_negatives`` in the pool: mine_hard_negatives excludes the positives but not the
    anchor itself or its source documents, which are then dropped here. ``sampling_strategy:
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
    range_min = int(kwargs.get("range_min", DENSE_RANKS[0]))
    pool = set(job.pool)
    # One more when some anchor is itself a candidate (mine_hard_negatives would offer it), and
    # room for the source documents it may offer; otherwise exactly k, so that random sampling
    # draws as mine_hard_negatives itself does.
    sources = max(
        (len(pool.intersection(job.not_negatives.get(row.anchor, ()))) for row in job.rows),
        default=0,
    )
    num_negatives = job.k + any(row.anchor in pool for row in job.rows) + sources
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


@mining_strategy("given", uses_pool=False)
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


# --- corpus candidates -------------------------------------------------------------------------


def _pairs_flag(pairs_strategy: str | None, flag: str) -> bool:
    """A flag of a registered pair strategy (false for an unknown or no strategy)."""
    registered = PAIR_STRATEGIES.get(pairs_strategy or "")
    return bool(registered and getattr(registered, flag))


@dataclass(frozen=True)
class CorpusCandidates:
    """The documents of a retrieval corpus as candidate negatives (:func:`corpus_candidates`)."""

    name: str
    #: One per document, written as the pairs' positives are, so that a document which is also
    #: a positive joins the pool once.
    texts: list[str]
    #: Each document's own text, uncut: where an anchor cut out of it is found.
    documents: list[str]
    #: The texts of documents in an evaluation split (held-out texts): never negatives.
    held_out: frozenset[str]


def corpus_candidates(
    dataset_dir: str | Path,
    *,
    pairs_strategy: str | None = None,
    max_chars: int | None = None,
    held_out: AbstractSet[str] = frozenset(),
    name: str | None = None,
) -> CorpusCandidates:
    """Every document of the retrieval dataset at ``dataset_dir`` written as the pairs made
    with ``pairs_strategy`` write their positives: its text alone for the strategies whose
    positives are a document's text without the title (``text_positives`` in the registry:
    ``title_text``, ``heading_section``, ``inverse_cloze``, ``first_sentence``), else
    ``"title text"``
    (:func:`~adapterflow.data.layouts.document_text`, also when the strategy is unknown), cut
    to the pairs' ``max_chars``. A document whose text, ``"title text"`` or candidate text is
    in ``held_out`` has its candidate text in the result's ``held_out`` (a cut text is no
    longer one of the held-out texts; pass both to :func:`mine_triplets`). ``name``
    (default: the directory's name) names the corpus in the log.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.data.layouts import RetrievalSet
        >>> from adapterflow.data.mining import corpus_candidates
        >>> root = pathlib.Path(tempfile.mkdtemp()) / "news"
        >>> _ = RetrievalSet({"d1": {"_id": "d1", "title": "Rain", "text": "It rained a lot."},
        ...                   "d2": {"_id": "d2", "title": "", "text": "Sun all week."}}
        ...                  ).write(root)
        >>> corpus_candidates(root, pairs_strategy="qrels").texts
        ['Rain It rained a lot.', 'Sun all week.']
        >>> found = corpus_candidates(root, pairs_strategy="title_text", max_chars=9,
        ...                           held_out={"Sun all week."})
        >>> found.name, found.texts, sorted(found.held_out)
        ('news', ['It rained', 'Sun all'], ['Sun all'])
    """
    dataset_dir = Path(dataset_dir)
    max_chars = None if max_chars is None else int(max_chars)
    with_title = not _pairs_flag(pairs_strategy, "text_positives")
    texts: list[str] = []
    documents: list[str] = []
    held: set[str] = set()
    for doc in RetrievalSet.read(dataset_dir).corpus.values():
        whole = document_text(doc)
        text = truncate(whole if with_title else doc["text"], max_chars)
        texts.append(text)
        documents.append(doc["text"])
        if not held_out.isdisjoint((doc["text"], whole, text)):
            held.add(text)
    return CorpusCandidates(name or dataset_dir.name, texts, documents, frozenset(held))


def anchor_sources(
    anchors: Iterable[str], corpora: Sequence[CorpusCandidates], texts: Iterable[str] = ()
) -> dict[str, set[str]]:
    """anchor → the candidate texts that hold it as one of their sentences, for pairs whose
    anchor was cut out of a document (``anchor_from_document`` pair strategies:
    ``inverse_cloze``, ``first_sentence``): its source document and
    any copy of it are false negatives; pass the result to :func:`mine_triplets` as
    ``not_negatives``. The candidates are the documents of ``corpora`` (looked up by their
    whole, uncut text) and ``texts`` (the pairs' positives), split into sentences as
    make_pairs splits them; an anchor that is no whole sentence of any of them (a sentence cut
    by ``max_chars``) is searched for as a substring.

    Example:
        >>> from adapterflow.data.mining import CorpusCandidates, anchor_sources
        >>> docs = ["Cats purr. They sleep.", "Dogs bark. They run."]
        >>> corpus = CorpusCandidates("pets", docs, docs, frozenset())
        >>> anchor_sources(["Cats purr.", "They run", "Fish swim."], [corpus], ["Fish swim."])
        {'Cats purr.': {'Cats purr. They sleep.'}, 'They run': {'Dogs bark. They run.'}, \
'Fish swim.': {'Fish swim.'}}
    """
    candidates = [
        (document, text)
        for corpus in corpora
        for document, text in zip(corpus.documents, corpus.texts, strict=True)
    ]
    candidates += [(text, text) for text in dict.fromkeys(texts)]
    by_sentence: dict[str, set[str]] = {}
    for document, text in candidates:
        for sentence in split_sentences(document):
            by_sentence.setdefault(sentence, set()).add(text)
    found: dict[str, set[str]] = {}
    distinct = list(dict.fromkeys(anchors))
    for anchor in distinct:
        holders = by_sentence.get(anchor)
        if holders is None:
            holders = {text for document, text in candidates if anchor in document}
        if holders:
            found[anchor] = holders
    logger.info(
        "%d of %d anchors are sentences of %d candidate texts (their source documents and "
        "copies): never their negatives",
        len(found),
        len(distinct),
        len({text for holders in found.values() for text in holders}),
    )
    return found


def pool_corpora(
    strategy: str,
    k: int,
    *,
    dataset: str | Path | None = None,
    corpus: str | Path | None = None,
    use_corpus: bool | None = None,
    pairs_strategy: str | None = None,
    max_chars: int | None = None,
    held_out: AbstractSet[str] = frozenset(),
) -> list[CorpusCandidates]:
    """The corpora whose documents join the candidate pool (rule ``mine_triplets``), read with
    :func:`corpus_candidates` (the pairs' ``pairs_strategy`` and ``max_chars``):

    * ``dataset``, the pairs' own prepared dataset, when it is a retrieval dataset (has a
      corpus) and ``strategy`` draws from the pool (``random``, ``bm25``, ``dense``; not
      ``positional`` or ``given``);
    * and ``corpus``, another dataset (the triplets block's ``corpus:``), whatever the
      strategy (``positional`` then refuses it);
    * none when ``k`` is 0 or ``use_corpus`` (option ``corpus``) is false: the pool is the
      positives alone.

    Raises :class:`~adapterflow.errors.ConfigError` when ``use_corpus`` is true and no corpus
    is left.
    """
    if k == 0 or use_corpus is False:
        return []
    dirs: list[Path] = []
    uses_pool = strategy not in MINING_STRATEGIES or MINING_STRATEGIES[strategy].uses_pool
    if dataset is not None and uses_pool and detect_layout(Path(dataset)) == RetrievalSet.layout:
        dirs.append(Path(dataset))
    if corpus is not None and not any(Path(corpus).resolve() == d.resolve() for d in dirs):
        dirs.append(Path(corpus))
    if use_corpus and not dirs:
        raise ConfigError(
            f"mining option corpus is true, but no corpus dataset is given and the pairs' "
            f"dataset has no corpus that strategy {strategy!r} draws from"
        )
    return [
        corpus_candidates(
            path, pairs_strategy=pairs_strategy, max_chars=max_chars, held_out=held_out
        )
        for path in dirs
    ]


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
    not_negatives: Mapping[str, AbstractSet[str]] | None = None,
) -> tuple[list[dict[str, Any]], Counter]:
    """Add ``k`` negatives to each of ``pairs`` with ``strategy``; return the rows (in input
    order) and the number of input rows dropped per reason.

    ``options`` are the strategy's (see the module docstring and each strategy; those left
    out take its registered defaults) plus ``corpus``: extra candidate texts joining the pool
    of positives, a list of strings or a mapping from a corpus name (for the log) to its list
    of strings. ``model`` is the SentenceTransformer for ``dense``. ``held_out`` texts are
    never negatives, and rows with a held-out anchor or positive are dropped.
    ``not_negatives`` maps an anchor to more texts that are never its negatives
    (:func:`anchor_sources`). Input rows may carry a ``negative`` already; only ``given`` uses
    it. One line logs the pool: its size and where it came from.

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
    registered = lookup(MINING_STRATEGIES, "mining", strategy, options or {})
    options = registered.with_defaults(options or {})
    if k < 0:
        raise ConfigError(f"mining: k must be at least 0, got {k}")
    sources = _corpus_sources(options.get("corpus"))

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

    positives = list(dict.fromkeys(r.positive for r in rows))
    offered = positives + [text for _, texts in sources for text in texts]
    distinct = list(dict.fromkeys(offered))
    pool = [t for t in distinct if t not in held_out]
    logger.info(
        "mine_triplets %s: %s",
        strategy,
        _describe_pool(
            len(pool),
            len(positives),
            sources,
            len(offered) - len(distinct),
            len(distinct) - len(pool),
        ),
    )
    job = MiningJob(rows, pool, k, options, seed, model, positives_of, dict(not_negatives or {}))
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


def _corpus_sources(corpus: Any) -> list[tuple[str | None, list[str]]]:
    """Option ``corpus`` as ``(name or None, texts)`` pairs."""
    if not corpus:
        return []
    named = corpus.items() if isinstance(corpus, Mapping) else [(None, corpus)]
    sources = []
    for name, texts in named:
        if isinstance(texts, (str, bool, Mapping)) or not all(isinstance(t, str) for t in texts):
            raise ConfigError(
                "mining option corpus must be a list of texts, or a mapping from a corpus name "
                "to its list of texts (the mine_triplets script fills it from the corpora of "
                "its dataset and corpus inputs)"
            )
        sources.append((None if name is None else str(name), list(texts)))
    return sources


def _describe_pool(
    size: int,
    positives: int,
    sources: Sequence[tuple[str | None, list[str]]],
    duplicates: int,
    held_out: int,
) -> str:
    """``pool 3,722 texts: 2,978 positives + 3,824 corpus documents of 'news', less ...``"""
    parts = [f"{positives:,} positives"] + [
        f"{len(texts):,} corpus documents of {name!r}" if name else f"{len(texts):,} corpus texts"
        for name, texts in sources
    ]
    left_out = [
        f"{count:,} {what}"
        for count, what in ((duplicates, "duplicates"), (held_out, "held out"))
        if count
    ]
    less = f", less {' and '.join(left_out)}" if left_out else ""
    return f"pool {size:,} texts: {' + '.join(parts)}{less}"


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


# --- the step ----------------------------------------------------------------------------------


def mine_triplets_file(
    pairs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    mining: TripletsSettings | Mapping[str, Any],
    *,
    model: Mapping[str, Any] | None = None,
    dataset: str | os.PathLike[str] | None = None,
    corpus: str | os.PathLike[str] | None = None,
    pairs_block: PairsSettings | Mapping[str, Any] | None = None,
    held_out_splits: Iterable[Sequence[str]] = (),
    declared_held_out: Iterable[str | os.PathLike[str]] | None = None,
) -> int:
    """Rule ``mine_triplets``: read the ``pairs`` file, gather the candidate pool and the
    held-out texts, mine as the ``mining`` block (a ``triplets`` block) says (``strategy``,
    ``k``, ``options``, ``seed``; its other keys are the rule's business) and write the rows
    to ``out`` atomically; returns the row count.

    The pool (:func:`pool_corpora`) is the pairs' positives, plus the documents of
    ``dataset`` (the pairs' prepared dataset, when it has a corpus) and of ``corpus`` (another
    prepared retrieval dataset), minus the texts of the ``held_out_splits``
    (``[dataset_dir, split]`` pairs, each ``dataset_dir`` one of ``declared_held_out`` when
    given); option ``corpus: false`` leaves both datasets out. Documents are written as the
    pairs' positives are (``pairs_block``: the pairs block's ``strategy`` and
    ``options.max_chars``; ``"title text"`` without it), and a document an
    ``anchor_from_document`` strategy's anchor was cut from is never that anchor's negative.
    ``model`` (a ``models:`` block) is the encoder of ``dense`` mining. Raises
    :class:`~adapterflow.errors.DataError` when mining leaves no row.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.data.mining import mine_triplets_file
        >>> from adapterflow.data.pairs import read_pairs, write_pairs
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = write_pairs(root / "pairs.jsonl",
        ...                 [{"anchor": f"q{i}", "positive": f"p{i}"} for i in range(4)])
        >>> mine_triplets_file(root / "pairs.jsonl", root / "triplets.jsonl",
        ...                    {"strategy": "random", "k": 2, "seed": 0})
        4
        >>> [len(row["negative"]) for row in read_pairs(root / "triplets.jsonl")]
        [2, 2, 2, 2]
    """
    settings = TripletsSettings.from_block(mining)
    pairs_settings = PairsSettings.from_block(pairs_block)
    strategy, k = settings.strategy, settings.k
    options = dict(settings.options)
    use_corpus = options.pop("corpus", None)
    rows = read_pairs(pairs)
    held_out = set(held_out_from_splits(held_out_splits, declared_held_out))
    logger.info("%d pairs, %d held-out texts", len(rows), len(held_out))
    corpora = pool_corpora(
        strategy,
        k,
        dataset=dataset,
        corpus=corpus,
        use_corpus=use_corpus,
        pairs_strategy=pairs_settings.strategy,
        max_chars=pairs_settings.options.get("max_chars"),
        held_out=held_out,
    )
    not_negatives = None
    if corpora:
        texts: dict[str, list[str]] = {}
        for found in corpora:
            texts.setdefault(found.name, []).extend(found.texts)
            held_out |= found.held_out
        options["corpus"] = texts
        if _pairs_flag(pairs_settings.strategy, "anchor_from_document"):
            not_negatives = anchor_sources(
                [row["anchor"] for row in rows], corpora, [row["positive"] for row in rows]
            )
    encoder = None
    if strategy == "dense" and k > 0:
        if not model:
            raise ConfigError("dense mining needs a model block (params.model)")
        from adapterflow.models import load_encoder

        encoder = load_encoder(model)
    triplets, dropped = mine_triplets(
        rows,
        strategy,
        k=k,
        options=options,
        seed=settings.seed,
        model=encoder,
        held_out=held_out,
        not_negatives=not_negatives,
    )
    if not triplets:
        raise DataError(pairs, f"no rows left after mining (dropped: {format_counts(dropped)})")
    count = write_pairs(out, triplets)
    logger.info("wrote %d rows to %s", count, out)
    return count
