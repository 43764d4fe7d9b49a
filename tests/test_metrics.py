"""Metrics against their references: pytrec_eval, scipy, sklearn, and plain Python loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval
from scipy import stats
from sklearn.metrics import roc_auc_score

from adapterflow.eval.metrics import (
    anisotropy,
    labels_from_threshold,
    mean_ci95,
    retrieval_metrics,
    sample_pairs,
    sts_metrics,
    triplet_accuracy,
)

K_VALUES = (1, 3, 5, 10, 100)
# Our names -> pytrec_eval measure prefixes (mrr is checked separately on truncated runs).
TREC_NAMES = {"ndcg": "ndcg_cut", "recall": "recall", "map": "map_cut", "precision": "P"}
TOL = 1e-6


# --------------------------------------------------------------------------- retrieval


def random_collection(
    seed: int, n_queries: int = 400, decimals: int | None = 1
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Qrels and a run with every awkward case the workflow can meet.

    Doc ids of varying length ("d7" vs "d10") make lexical and numeric order differ; scores
    rounded to ``decimals`` make many exact ties; some runs are empty or shorter than k.
    """
    rng = np.random.default_rng(seed)
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        n_docs = int(rng.choice([0, 1, 3, 8, 30, 150], p=[0.03, 0.07, 0.2, 0.3, 0.3, 0.1]))
        docs = [f"d{d}" for d in rng.choice(400, size=n_docs, replace=False)]
        scores = rng.normal(size=n_docs)
        if decimals is not None:
            scores = np.round(scores, decimals)
        kind = rng.random()
        if kind > 0.05:  # 5 % of judged queries are missing from the run
            run[qid] = {d: float(s) for d, s in zip(docs, scores, strict=True)}
        if kind < 0.03:  # run queries without any judgement
            continue
        judged = set(rng.choice(docs, size=min(len(docs), 6), replace=False)) if docs else set()
        judged |= {f"d{d}" for d in rng.choice(400, size=int(rng.integers(1, 4)))}
        all_zero = rng.random() < 0.1
        qrels[qid] = {d: 0 if all_zero else int(rng.integers(0, 4)) for d in sorted(judged)}
    qrels["q_unjudged"] = {}  # an empty judgement dict: pytrec_eval skips the query
    run["q_unjudged"] = {"d1": 1.0}
    return qrels, run


def trec_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's ranking, written independently: float32 score desc, then doc id desc."""
    with np.errstate(over="ignore"):  # 1e300 becomes inf as a float, as in C
        return sorted(docs, key=lambda d: (np.float32(docs[d]), d), reverse=True)


def reference(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], ks=K_VALUES
) -> dict[str, dict[str, float]]:
    """Per-query metrics as BEIR/MTEB get them from pytrec_eval, renamed to our keys."""
    cut = ",".join(map(str, ks))
    measures = {f"ndcg_cut.{cut}", f"recall.{cut}", f"map_cut.{cut}", f"P.{cut}"}
    scores = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out = {
        qid: {
            f"{ours}_at_{k}": m[f"{theirs}_{k}"] for ours, theirs in TREC_NAMES.items() for k in ks
        }
        for qid, m in scores.items()
    }
    for k in ks:
        top_k = {qid: {d: run[qid][d] for d in trec_order(run[qid])[:k]} for qid in run}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_k)
        for qid in out:
            out[qid][f"mrr_at_{k}"] = rr[qid]["recip_rank"]
    return out


def assert_matches_reference(qrels, run, ks=K_VALUES) -> dict[str, dict[str, float]]:
    mean, per_query = retrieval_metrics(qrels, run, k_values=ks)
    expected = reference(qrels, run, ks)
    assert list(per_query) == list(expected)  # same queries, in run order
    for qid, metrics in expected.items():
        assert set(per_query[qid]) == set(metrics)
        for name, value in metrics.items():
            assert per_query[qid][name] == pytest.approx(value, abs=TOL), (qid, name)
    for name in mean:
        expected_mean = sum(m[name] for m in expected.values()) / len(expected)
        assert mean[name] == pytest.approx(expected_mean, abs=TOL), name
    return per_query


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_equals_pytrec_eval_on_random_tied_runs(seed):
    qrels, run = random_collection(seed)
    per_query = assert_matches_reference(qrels, run)
    # The collection really exercises the conventions the docstring promises.
    all_zero = [q for q in per_query if q in qrels and max(qrels[q].values()) == 0]
    assert all_zero and all(v == 0.0 for q in all_zero for v in per_query[q].values())
    assert any(q in qrels and q not in run for q in qrels)
    assert "q_unjudged" not in per_query
    assert any(len(run[q]) == 0 for q in per_query)


def test_retrieval_equals_pytrec_eval_without_ties_and_with_odd_k():
    qrels, run = random_collection(3, n_queries=300, decimals=None)
    assert_matches_reference(qrels, run, ks=(2, 7, 1000))


def test_retrieval_ties_below_float32_precision_and_unicode_ids():
    # trec_eval keeps scores as C float: 1.0 and 1.0 + 1e-9 are tied and fall back to the
    # (descending) doc id order, and so are 0.0 and -0.0, or 1e300 (inf as a float) and inf;
    # non-ASCII ids sort by code point, like strcmp on UTF-8.
    rng = np.random.default_rng(7)
    ids = ["a", "b", "z", "é", "中", "Z", "a b", "ab", "a10", "a9", "A", "ÿ"]
    qrels, run = {}, {}
    for q in range(200):
        picked = rng.choice(ids, size=int(rng.integers(1, len(ids))), replace=False)
        base = rng.choice([0.5, 1.0, 2.0, 0.0, -0.0, -1.0, 1e300, np.inf, -np.inf], len(picked))
        run[f"q{q}"] = {
            d: float(b + rng.choice([0.0, 1e-9, 1e-12])) for d, b in zip(picked, base, strict=True)
        }
        qrels[f"q{q}"] = {d: int(rng.integers(-1, 4)) for d in rng.choice(ids, size=4)}
    assert_matches_reference(qrels, run)


def test_retrieval_hand_checked():
    qrels = {"q": {"a": 1, "x": 0}}
    run = {"q": {"x": 0.9, "a": 0.5, "c": 0.1}}
    _, per_query = retrieval_metrics(qrels, run, k_values=(1, 10))
    m = per_query["q"]
    assert m["mrr_at_1"] == 0.0 and m["mrr_at_10"] == 0.5
    assert m["ndcg_at_10"] == pytest.approx(1 / math.log2(3))
    assert m["recall_at_1"] == 0.0 and m["recall_at_10"] == 1.0
    assert m["map_at_10"] == 0.5 and m["precision_at_10"] == 0.1

    # Graded gains are linear: ideal order 3, 1 vs retrieved order 1, 3.
    _, per_query = retrieval_metrics({"q": {"a": 1, "b": 3}}, {"q": {"a": 2.0, "b": 1.0}}, (2,))
    assert per_query["q"]["ndcg_at_2"] == pytest.approx(
        (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    )

    # Tied scores: the larger doc id ranks first.
    _, per_query = retrieval_metrics({"q": {"d10": 1}}, {"q": {"d9": 1.0, "d10": 1.0}}, (1,))
    assert per_query["q"]["mrr_at_1"] == 0.0


def test_retrieval_conventions_the_docstring_promises():
    # Scores equal in float32 are tied (1.0 + 1e-9 is 1.0 as a C float): the larger id wins.
    _, per_query = retrieval_metrics({"q": {"b": 1}}, {"q": {"a": 1.0 + 1e-9, "b": 1.0}}, (1,))
    assert per_query["q"]["mrr_at_1"] == 1.0
    # A negative grade is a gain of 0 and not relevant.
    _, per_query = retrieval_metrics({"q": {"a": -1, "b": 1}}, {"q": {"a": 2.0, "b": 1.0}}, (2,))
    assert per_query["q"]["ndcg_at_2"] == pytest.approx(1 / math.log2(3))
    assert per_query["q"]["recall_at_2"] == 1.0 and per_query["q"]["mrr_at_2"] == 0.5
    # MRR@k is cut at k: the first relevant document at rank 3 counts from k = 3 on.
    run = {"q": {"a": 0.9, "b": 0.8, "c": 0.7}}
    _, per_query = retrieval_metrics({"q": {"c": 1}}, run, (1, 2, 3, 10))
    assert [per_query["q"][f"mrr_at_{k}"] for k in (1, 2, 3, 10)] == [0.0, 0.0, 1 / 3, 1 / 3]
    # Judged queries without a relevant document, or with an empty run, score 0 and count.
    qrels = {"hit": {"a": 1}, "all_zero": {"a": 0}, "empty_run": {"a": 1}}
    run = {"hit": {"a": 1.0}, "all_zero": {"a": 1.0}, "empty_run": {}}
    mean, per_query = retrieval_metrics(qrels, run, (1, 10))
    assert list(per_query) == ["hit", "all_zero", "empty_run"]
    assert all(v == 0.0 for q in ("all_zero", "empty_run") for v in per_query[q].values())
    assert mean["ndcg_at_10"] == pytest.approx(1 / 3) and mean["mrr_at_1"] == pytest.approx(1 / 3)
    # NumPy grades and scores are fine (the evaluator itself takes Python ints and floats only).
    _, per_query = retrieval_metrics({"q": {"a": np.int64(1)}}, {"q": {"a": np.float32(0.5)}})
    assert per_query["q"]["ndcg_at_1"] == 1.0


def test_retrieval_query_selection_and_mean():
    qrels = {"judged": {"a": 1}, "all_zero": {"a": 0}, "not_run": {"a": 1}, "empty": {}}
    run = {"judged": {"a": 1.0}, "all_zero": {"a": 1.0}, "empty": {"a": 1.0}, "extra": {}}
    mean, per_query = retrieval_metrics(qrels, run, k_values=(1,))
    assert list(per_query) == ["judged", "all_zero"]
    assert mean["ndcg_at_1"] == 0.5
    assert_matches_reference(qrels, run, ks=(1,))


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError, match="no query of the run has relevance judgements"):
        retrieval_metrics({"q1": {"a": 1}}, {"q2": {"a": 1.0}})
    with pytest.raises(ValueError, match="NaN score"):
        retrieval_metrics({"q": {"a": 1}}, {"q": {"a": float("nan")}})
    with pytest.raises(ValueError, match="integers"):
        retrieval_metrics({"q": {"a": 0.5}}, {"q": {"a": 1.0}})
    with pytest.raises(ValueError, match="positive integers"):
        retrieval_metrics({"q": {"a": 1}}, {"q": {"a": 1.0}}, k_values=(0, 10))


def test_retrieval_scales_to_many_queries():
    # 10k queries x top-100, as a large BEIR split: must stay a vectorised computation.
    rng = np.random.default_rng(11)
    scores = np.round(rng.random((10_000, 100)), 3)
    doc_ids = [f"doc{i}" for i in range(5000)]
    picks = rng.integers(0, 5000, size=(10_000, 100))
    run = {
        f"q{q}": {doc_ids[p]: float(s) for p, s in zip(picks[q], scores[q], strict=True)}
        for q in range(10_000)
    }
    qrels = {f"q{q}": {doc_ids[picks[q, q % 100]]: 1} for q in range(10_000)}
    mean, per_query = retrieval_metrics(qrels, run)
    assert len(per_query) == 10_000
    assert 0.0 < mean["ndcg_at_10"] < mean["ndcg_at_100"] <= 1.0
    assert mean["recall_at_100"] == 1.0


# --------------------------------------------------------------------------- pair scores


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sts_metrics_equal_scipy_and_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 500))
    gold = rng.integers(0, 6, size=n).astype(float)  # many tied gold scores
    scores = np.round(0.1 * gold + rng.normal(scale=0.3, size=n), 1)  # many tied predictions
    labels = labels_from_threshold(gold, 3.0)
    m = sts_metrics(scores, gold, labels)
    assert m["spearman"] == pytest.approx(stats.spearmanr(scores, gold).statistic, abs=TOL)
    assert m["pearson"] == pytest.approx(stats.pearsonr(scores, gold).statistic, abs=TOL)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    discrimination = scores[labels == 1].mean() - scores[labels == 0].mean()
    assert m["discrimination"] == pytest.approx(discrimination, abs=TOL)
    assert set(sts_metrics(scores, gold)) == {"spearman", "pearson"}


def test_labels_from_threshold():
    labels = labels_from_threshold(np.array([1.0, 2.9, 3.0, 5.0]), 3.0)
    assert labels.tolist() == [0, 0, 1, 1] and labels.dtype.kind == "i"


@pytest.mark.parametrize(
    ("scores", "gold", "labels", "message"),
    [
        ([0.1, 0.2, 0.3], [1.0, 2.0], None, "differ in length"),
        ([0.1], [1.0], None, "at least 2 pairs"),
        ([0.1, float("nan"), 0.3], [1.0, 2.0, 3.0], None, "NaN"),
        ([0.1, 0.2, 0.3], [1.0, float("nan"), 3.0], None, "NaN"),
        ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [1, 1, 1], "all 1"),
        ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [0, 1], "one value per pair"),
        ([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [0, 1, 2], "0 or 1"),
        ([0.5, 0.5, 0.5], [1.0, 2.0, 3.0], None, "all equal"),
    ],
)
def test_sts_metrics_rejects_bad_input(scores, gold, labels, message):
    with pytest.raises(ValueError, match=message):
        sts_metrics(np.array(scores), np.array(gold), None if labels is None else np.array(labels))


# --------------------------------------------------------------------------- triplets


def test_triplet_accuracy_equals_a_loop_and_ties_are_wrong():
    rng = np.random.default_rng(0)
    pos = np.round(rng.random(300), 1)
    neg = np.round(rng.random((300, 4)), 1)
    expected = sum(all(p > x for x in row) for p, row in zip(pos, neg, strict=True)) / 300
    assert triplet_accuracy(pos, neg) == pytest.approx(expected, abs=1e-12)
    single = sum(p > x for p, x in zip(pos, neg[:, 0], strict=True)) / 300
    assert triplet_accuracy(pos, neg[:, 0]) == pytest.approx(single, abs=1e-12)
    assert triplet_accuracy(np.array([0.5]), np.array([0.5])) == 0.0
    with pytest.raises(ValueError, match="shape"):
        triplet_accuracy(pos, neg[:10])


# --------------------------------------------------------------------------- anisotropy


def test_anisotropy_equals_brute_force_on_the_sampled_pairs():
    rng = np.random.default_rng(5)
    embeddings = rng.normal(loc=0.3, size=(50, 8)) * rng.uniform(0.1, 10, size=(50, 1))
    result = anisotropy(embeddings, n_pairs=20_000, seed=3)
    i, j = sample_pairs(len(embeddings), 20_000, seed=3)
    assert (i != j).all()
    cosines = [
        float(embeddings[a] @ embeddings[b])
        / (np.linalg.norm(embeddings[a]) * np.linalg.norm(embeddings[b]))
        for a, b in zip(i, j, strict=True)
    ]
    assert result["n_pairs"] == 20_000
    assert result["mean_cosine"] == pytest.approx(np.mean(cosines), abs=1e-9)
    assert result["std_cosine"] == pytest.approx(np.std(cosines), abs=1e-9)
    # Uniform over the ordered pairs i != j: each of the 50 * 49 pairs about equally often.
    counts = np.bincount(i * 50 + j, minlength=2500).reshape(50, 50)
    assert counts.diagonal().sum() == 0
    assert stats.chisquare(counts[~np.eye(50, dtype=bool)]).pvalue > 1e-3
    assert anisotropy(embeddings, 20_000, seed=3) == result  # same seed, same sample


def test_anisotropy_rejects_degenerate_input():
    with pytest.raises(ValueError, match="at least 2"):
        anisotropy(np.ones((1, 4)), 10, seed=0)
    with pytest.raises(ValueError, match="zero"):
        anisotropy(np.zeros((3, 4)), 10, seed=0)


# --------------------------------------------------------------------------- summaries


@pytest.mark.parametrize("n", [2, 3, 5, 30])
def test_mean_ci95_equals_scipy_t_interval(n):
    values = np.random.default_rng(n).normal(0.7, 0.05, size=n)
    mean, half = mean_ci95(list(values))
    low, high = stats.t.interval(0.95, df=n - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx((low + high) / 2, abs=1e-12)
    assert half == pytest.approx((high - low) / 2, abs=1e-12)


def test_mean_ci95_single_value_and_errors():
    assert mean_ci95([0.42]) == (0.42, 0.0)
    assert mean_ci95([0.5, 0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci95([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci95([0.1, float("nan")])
