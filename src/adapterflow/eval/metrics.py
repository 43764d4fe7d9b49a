"""Evaluation metrics on plain data: retrieval (trec_eval semantics), pairs, triplets, spread.

The retrieval metrics are computed by ``pytrec_eval`` (trec_eval itself), the pair scores by
``scipy`` and ``sklearn``; this module checks the input, asks for the measures the workflow
reports and names them as MTEB does. ``tests/test_metrics.py`` checks the conventions below
on hand-made cases and the triplet rule against sentence-transformers'.

Example:
    >>> import numpy as np
    >>> from adapterflow.eval.metrics import retrieval_metrics, sts_metrics, triplet_accuracy
    >>> qrels = {"q1": {"d1": 1, "d2": 0}, "q2": {"d9": 2}}
    >>> run = {"q1": {"d2": 0.9, "d1": 0.8, "d3": 0.1}, "q2": {"d9": 0.5}}
    >>> mean, per_query = retrieval_metrics(qrels, run, k_values=(1, 10))
    >>> per_query["q1"]["mrr_at_10"], per_query["q2"]["ndcg_at_1"], mean["recall_at_1"]
    (0.5, 1.0, 0.5)
    >>> sts_metrics(np.array([0.1, 0.5, 0.9]), np.array([1.0, 2.0, 5.0]))["spearman"]
    1.0
    >>> triplet_accuracy(np.array([0.9, 0.2]), np.array([0.1, 0.2]))  # a tie counts as wrong
    0.5
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pytrec_eval
from scipy import stats

RETRIEVAL_METRICS = ("ndcg", "recall", "mrr", "map", "precision")
# Our metric names -> trec_eval's measures (``mrr`` comes from ``recip_rank``, see below).
_TREC_MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "precision": "P"}

# Pairs of cosines computed at once by `anisotropy`: bounds memory to chunk x dim floats.
_PAIR_CHUNK = 8192


# --------------------------------------------------------------------------- retrieval


def retrieval_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    k_values: Iterable[int] = (1, 5, 10, 100),
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """nDCG, recall, MRR, MAP and precision at each k, per query and averaged over queries.

    Computed by ``pytrec_eval`` (i.e. trec_eval), the way BEIR and MTEB call it:
    ``ndcg_at_k`` = ``ndcg_cut_k`` (graded qrels used as linear gains, log2 discount),
    ``recall_at_k`` = ``recall_k``, ``map_at_k`` = ``map_cut_k`` (divided by the number of
    relevant documents, not by k), ``precision_at_k`` = ``P_k`` (divided by k even when the
    run is shorter), and ``mrr_at_k`` = ``recip_rank`` of the run cut to its top k (0 when
    no relevant document is in the top k), which is how BEIR/MTEB define MRR@k: trec_eval's
    ``recip_rank`` of the whole run is 1 / the rank of its first relevant document, kept
    when that rank is at most k.

    Conventions (trec_eval's, checked in ``tests/test_metrics.py``):

    * relevant means a qrels grade >= 1 (trec_eval's default relevance level); the gain of a
      document is its grade, negative grades count as 0 and unjudged documents are 0;
    * ranking is by score descending, the score first rounded to float32 (trec_eval stores
      scores as C ``float``, so scores equal in float32 are tied), ties broken by document id
      in *descending* lexical (code point) order;
    * the queries scored are those in ``run`` that have at least one judgement in ``qrels``
      (any grade, 0 included), in run order; a query whose judgements are all 0 scores 0 on
      every metric and *is* averaged; a query of ``qrels`` missing from ``run`` is *skipped*
      (not scored 0), and so is a run query without judgements; a query present in ``run``
      with no documents scores 0 and is averaged;
    * the mean is the plain average of the per-query values (BEIR/MTEB average what
      pytrec_eval returns).

    Args:
        qrels: query id -> {document id: integer grade}.
        run: query id -> {document id: score}; larger is better.
        k_values: cutoffs (positive integers); a k beyond a run's length is fine.

    Returns:
        ``(mean, per_query)``: ``mean[f"{metric}_at_{k}"]`` and
        ``per_query[query_id][f"{metric}_at_{k}"]`` for metric in ndcg, recall, mrr, map,
        precision.

    Raises:
        ValueError: no query of the run is judged, a score is NaN, a grade is not an
            integer, or a k is not a positive integer.

    Example:
        >>> mean, per_query = retrieval_metrics({"q": {"b": 1}}, {"q": {"a": 0.3, "b": 0.3}})
        >>> per_query["q"]["mrr_at_1"], per_query["q"]["mrr_at_5"]  # tie: "b" ranks first
        (1.0, 1.0)
        >>> mean["precision_at_5"]
        0.2
    """
    ks = _check_k_values(k_values)
    qids = [q for q in run if qrels.get(q)]
    if not qids:
        raise ValueError(
            f"no query of the run has relevance judgements ({len(run)} run queries, "
            f"{len(qrels)} judged queries); are the query ids of run and qrels the same?"
        )
    judged = _trec_qrels(qrels, qids)
    ranked = _trec_run(run, qids)
    cut = ",".join(map(str, ks))
    measures = {f"{measure}.{cut}" for measure in _TREC_MEASURES.values()} | {"recip_rank"}
    evaluated = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(ranked)

    # (our name, trec_eval's name, k) per reported metric; mrr's trec_eval name is None.
    fields = [
        (f"{m}_at_{k}", f"{_TREC_MEASURES[m]}_{k}" if m != "mrr" else None, k)
        for m in RETRIEVAL_METRICS
        for k in ks
    ]
    per_query: dict[str, dict[str, float]] = {}
    for qid in qids:
        # trec_eval reports every judged query of the run, empty ones included; a query it
        # left out could only score 0.
        values = evaluated.get(qid, {})
        reciprocal = values.get("recip_rank", 0.0)
        first_hit = round(1.0 / reciprocal) if reciprocal > 0 else None
        per_query[qid] = {
            ours: float(values.get(theirs, 0.0))
            if theirs is not None
            else (reciprocal if first_hit is not None and first_hit <= k else 0.0)
            for ours, theirs, k in fields
        }
    table = np.array([list(row.values()) for row in per_query.values()], dtype=np.float64)
    mean = {name: float(np.mean(table[:, i])) for i, (name, _, _) in enumerate(fields)}
    return mean, per_query


def _check_k_values(k_values: Iterable[int]) -> list[int]:
    ks = list(dict.fromkeys(k_values))
    if not ks:
        raise ValueError("k_values is empty; give at least one cutoff such as (10,)")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k_values must be positive integers, got {k!r}")
    return [int(k) for k in ks]


def _trec_qrels(
    qrels: Mapping[str, Mapping[str, int]], qids: list[str]
) -> dict[str, dict[str, int]]:
    """The judgements of ``qids`` as the Python ints pytrec_eval takes (bools and NumPy ints
    included); any other grade is a :class:`ValueError`."""
    grades = np.asarray(list(itertools.chain.from_iterable(qrels[q].values() for q in qids)))
    if grades.size and grades.dtype.kind not in "iub":  # bool is an int to pytrec_eval too
        raise ValueError(
            f"grades must be integers (as trec_eval requires), got dtype {grades.dtype}"
        )
    return {q: {str(d): int(g) for d, g in qrels[q].items()} for q in qids}


def _trec_run(
    run: Mapping[str, Mapping[str, float]], qids: list[str]
) -> dict[str, dict[str, float]]:
    """The scores of ``qids`` as the str ids and Python floats pytrec_eval takes (a query's
    dict is passed on as it is when it already is one); NaN is a :class:`ValueError` (trec_eval
    would rank it somewhere)."""
    total = sum(len(run[q]) for q in qids)
    scores = np.fromiter(
        itertools.chain.from_iterable(run[q].values() for q in qids), np.float64, count=total
    )
    if np.isnan(scores).any():
        bad = next(q for q in qids if any(s != s for s in run[q].values()))
        raise ValueError(f"run query {bad!r} has a NaN score; scores must be numbers")
    ranked = {}
    for q in qids:
        docs = run[q]
        plain = type(docs) is dict and all(type(d) is str for d in docs)
        if plain and all(type(s) is float for s in docs.values()):
            ranked[q] = docs
        else:
            ranked[q] = {str(d): float(s) for d, s in docs.items()}
    return ranked


# --------------------------------------------------------------------------- pair scores


def sts_metrics(
    scores: np.ndarray, gold: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, float]:
    """Agreement of predicted similarities with gold scores, and with binary labels if given.

    ``spearman`` and ``pearson`` correlate ``scores`` with ``gold`` (``scipy.stats.spearmanr``,
    ties getting average ranks, and ``scipy.stats.pearsonr``). With ``labels`` (0/1) also
    ``roc_auc`` (``sklearn.metrics.roc_auc_score``: the probability that a label-1 pair
    outscores a label-0 pair, ties counting one half) and ``discrimination``, the mean score of
    label-1 pairs minus that of label-0 pairs.

    Raises:
        ValueError: lengths differ, fewer than 2 pairs, a NaN or infinite value, constant
            scores or gold (correlation undefined), labels not 0/1 or all one class.

    Example:
        >>> import numpy as np
        >>> m = sts_metrics(np.array([0.2, 0.4, 0.3, 0.9]), np.array([1.0, 2.0, 3.0, 4.0]),
        ...                 labels=np.array([0, 0, 1, 1]))
        >>> round(m["spearman"], 3), m["roc_auc"], round(m["discrimination"], 3)
        (0.8, 0.75, 0.3)
    """
    x = _finite_vector(scores, "scores")
    y = _finite_vector(gold, "gold")
    if len(x) != len(y):
        raise ValueError(f"scores and gold differ in length: {len(x)} vs {len(y)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 pairs for a correlation, got {len(x)}")
    for name, v in (("scores", x), ("gold", y)):
        if np.all(v == v[0]):
            raise ValueError(f"{name} are all equal ({v[0]!r}); the correlation is undefined")
    result = {
        "spearman": float(stats.spearmanr(x, y).statistic),
        "pearson": float(stats.pearsonr(x, y).statistic),
    }
    if labels is not None:
        from sklearn.metrics import roc_auc_score  # sklearn takes a second to import

        lab = _binary_labels(labels, len(x))
        result["roc_auc"] = float(roc_auc_score(lab, x))
        result["discrimination"] = float(x[lab == 1].mean() - x[lab == 0].mean())
    return result


def labels_from_threshold(gold: np.ndarray, threshold: float) -> np.ndarray:
    """Binary labels from graded gold: 1 where ``gold >= threshold``, else 0.

    Example:
        >>> import numpy as np
        >>> labels_from_threshold(np.array([0.0, 2.5, 4.0]), 2.5).tolist()
        [0, 1, 1]
    """
    y = _finite_vector(gold, "gold")
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    return (y >= threshold).astype(np.int64)


def _finite_vector(values: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {v.shape}")
    bad = ~np.isfinite(v)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/infinite values (first at {bad.argmax()})"
        )
    return v


def _binary_labels(labels: np.ndarray, n: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise ValueError(f"labels must have one value per pair ({n}), got shape {lab.shape}")
    if lab.dtype.kind == "f" and np.isnan(lab).any():
        raise ValueError("labels have NaN values; they must be 0 or 1")
    if not np.isin(lab, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got values {np.unique(lab)[:5].tolist()}")
    lab = lab.astype(np.int64)
    if lab.min() == lab.max():
        raise ValueError(f"labels are all {lab[0]}; ROC-AUC and discrimination need both classes")
    return lab


# --------------------------------------------------------------------------- triplets


def triplet_accuracy(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """Fraction of anchors whose positive scores strictly above every one of its negatives.

    A tie counts as wrong, as in sentence-transformers' ``TripletEvaluator``
    (``positive_scores > negative_scores + margin`` with margin 0). ``neg_scores`` is either
    one negative per anchor, shape ``(n,)``, or several, shape ``(n, m)``.

    Example:
        >>> import numpy as np
        >>> pos = np.array([0.9, 0.5, 0.7])
        >>> neg = np.array([[0.1, 0.8], [0.4, 0.3], [0.7, 0.1]])  # the last row is a tie
        >>> triplet_accuracy(pos, neg)
        0.6666666666666666
    """
    pos = np.asarray(pos_scores, dtype=np.float64)
    neg = np.asarray(neg_scores, dtype=np.float64)
    if pos.ndim != 1 or len(pos) == 0:
        raise ValueError(f"pos_scores must be a non-empty vector, got shape {pos.shape}")
    if neg.ndim == 1:
        neg = neg[:, None]
    if neg.ndim != 2 or neg.shape[0] != len(pos) or neg.shape[1] == 0:
        raise ValueError(
            f"neg_scores must have shape ({len(pos)},) or ({len(pos)}, m>0), got {neg.shape}"
        )
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("triplet scores contain NaN")
    return float(np.mean(pos > neg.max(axis=1)))


# --------------------------------------------------------------------------- anisotropy


def sample_pairs(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` of ``n_pairs`` uniformly random ordered pairs with ``i != j``.

    ``j`` is drawn from the ``n - 1`` other rows, so no pair is rejected and redrawn: the
    sample depends only on ``(n, n_pairs, seed)``.

    Example:
        >>> i, j = sample_pairs(5, 1000, seed=0)
        >>> bool((i != j).all()), int(i.max()), int(j.max())
        (True, 4, 4)
    """
    if n < 2:
        raise ValueError(f"need at least 2 embeddings to form a pair, got {n}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be positive, got {n_pairs}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=n_pairs)
    j = rng.integers(0, n - 1, size=n_pairs)
    j += j >= i  # skip i itself: j is uniform over the other n - 1 rows
    return i, j


def anisotropy(embeddings: np.ndarray, n_pairs: int, seed: int) -> dict[str, float]:
    """Mean and standard deviation of the cosine between random pairs of distinct rows.

    Near 0 for an isotropic space; near 1 when all embeddings crowd into a narrow cone.
    Pairs come from :func:`sample_pairs`; rows are L2-normalised here, so raw (unnormalised)
    embeddings are fine. ``std_cosine`` is the population standard deviation (ddof 0).

    Example:
        >>> import numpy as np
        >>> result = anisotropy(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]), 500, seed=1)
        >>> 0.0 < result["mean_cosine"] < 1.0, result["n_pairs"]
        (True, 500)
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (rows x dim), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise ValueError("embeddings contain a zero, NaN or infinite row; cosine is undefined")
    i, j = sample_pairs(len(x), n_pairs, seed)
    unit = x / norms[:, None]
    cosines = np.empty(n_pairs, dtype=np.float64)
    for start in range(0, n_pairs, _PAIR_CHUNK):
        a, b = i[start : start + _PAIR_CHUNK], j[start : start + _PAIR_CHUNK]
        cosines[start : start + len(a)] = np.einsum("ij,ij->i", unit[a], unit[b])
    return {
        "mean_cosine": float(cosines.mean()),
        "std_cosine": float(cosines.std()),
        "n_pairs": int(n_pairs),
    }


# --------------------------------------------------------------------------- summaries


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % Student-t confidence interval (e.g. over seeds).

    The half-width is ``t(0.975, n - 1) * s / sqrt(n)`` with the sample standard deviation
    ``s`` (ddof 1); it is 0.0 for a single value, where no spread can be estimated.

    Example:
        >>> mean, half = mean_ci95([0.70, 0.72, 0.74])
        >>> round(mean, 2), round(half, 4)
        (0.72, 0.0497)
        >>> mean_ci95([0.5])
        (0.5, 0.0)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"mean_ci95 needs a non-empty sequence of numbers, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("mean_ci95 values contain NaN or infinity")
    mean = float(v.mean())
    if len(v) == 1:
        return mean, 0.0
    sem = float(v.std(ddof=1)) / np.sqrt(len(v))
    return mean, float(stats.t.ppf(0.975, df=len(v) - 1) * sem)
