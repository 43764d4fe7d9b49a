"""Bad input at the stage boundary: one error naming file, line and field, no output left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapterflow.data.layouts import PairSet, RetrievalSet, TripletSet, read_layout
from adapterflow.data.prepare import prepare_dataset
from adapterflow.errors import DataError


def write_beir(root: Path, corpus=None, queries=None, qrels=None) -> Path:
    corpus = (
        corpus
        if corpus is not None
        else [
            '{"_id": "d1", "title": "T1", "text": "first document"}',
            '{"_id": "d2", "title": "", "text": "second document"}',
        ]
    )
    queries = queries if queries is not None else ['{"_id": "q1", "text": "first query"}']
    qrels = qrels if qrels is not None else ["query-id\tcorpus-id\tscore", "q1\td1\t1"]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    (root / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return root


def test_valid_beir_roundtrip(tmp_path):
    data = RetrievalSet.read(write_beir(tmp_path / "in"))
    assert list(data.corpus) == ["d1", "d2"]
    assert data.qrels == {"test": {"q1": {"d1": 1}}}
    counts = data.write(tmp_path / "out")
    assert counts == {"corpus": 2, "queries": 1, "qrels/test": 1}
    assert RetrievalSet.read(tmp_path / "out") == data


@pytest.mark.parametrize(
    ("kwargs", "file", "line", "field", "words"),
    [
        (
            {"corpus": ['{"_id": "d1", "text": "ok"}', '{"_id": "d2", "text": "unterminated']},
            "corpus.jsonl",
            2,
            None,
            "malformed JSON",
        ),
        ({"corpus": ['{"_id": "d1", "title": "no text"}']}, "corpus.jsonl", 1, "text", "missing"),
        ({"queries": ['{"_id": 7, "text": "x"}']}, "queries.jsonl", 1, "_id", "expected str"),
        (
            {"corpus": ['{"_id": "d1", "text": "a"}', '{"_id": "d1", "text": "b"}']},
            "corpus.jsonl",
            2,
            "_id",
            "duplicate id 'd1'",
        ),
        (
            {"qrels": ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q1\td9\t1"]},
            "qrels/test.tsv",
            3,
            "corpus-id",
            "unknown document id 'd9'",
        ),
        (
            {"qrels": ["query-id\tcorpus-id\tscore", "q7\td1\t1"]},
            "qrels/test.tsv",
            2,
            "query-id",
            "unknown query id 'q7'",
        ),
        (
            {"qrels": ["query-id\tcorpus-id\tscore", "q1\td1\thigh"]},
            "qrels/test.tsv",
            2,
            "score",
            "expected an integer",
        ),
        (
            {"qrels": ["query-id\tcorpus-id\tscore", "q1"]},
            "qrels/test.tsv",
            2,
            "corpus-id",
            "missing",
        ),
        ({"corpus": [""]}, "corpus.jsonl", None, None, "empty corpus"),
    ],
)
def test_bad_beir_input_names_file_line_field_and_leaves_no_output(
    tmp_path, kwargs, file, line, field, words
):
    raw = write_beir(tmp_path / "raw", **kwargs)
    out = tmp_path / "clean"
    with pytest.raises(DataError) as info:
        prepare_dataset(raw, out, {"format": "beir"})
    err = info.value
    assert Path(err.path) == raw / file
    assert (err.line, err.field) == (line, field)
    assert words in str(err)
    # One line, starting with file:line.
    assert "\n" not in str(err)
    assert str(err).startswith(f"{raw / file}:{line}:" if line else f"{raw / file}:")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [raw]  # no temporary directory left either


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"sentence1": "a", "sentence2": "b"}', "score", "missing"),
        ('{"sentence1": "a", "sentence2": "b", "score": 1.5}', "score", "outside [0, 1]"),
        ('{"sentence1": "a", "sentence2": "b", "score": true}', "score", "expected int or float"),
        ('{"sentence1": "a", "sentence2": "b", "score": 0.5, "label": 2}', "label", "not 0 or 1"),
        ('["a", "b", 0.5]', None, "expected a JSON object"),
    ],
)
def test_bad_pairs(tmp_path, line, field, words):
    (tmp_path / "pairs").mkdir()
    good = '{"sentence1": "x", "sentence2": "y", "score": 0.25}'
    (tmp_path / "pairs" / "test.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError) as info:
        PairSet.read(tmp_path)
    assert (info.value.line, info.value.field) == (2, field)
    assert words in str(info.value)


def test_bad_triplets_and_empty_split(tmp_path):
    (tmp_path / "triplets").mkdir()
    path = tmp_path / "triplets" / "train.jsonl"
    path.write_text('{"anchor": "a", "positive": "p", "negative": ["n", 3]}\n')
    with pytest.raises(DataError, match="negative.*list items must be strings"):
        TripletSet.read(tmp_path)
    path.write_text("\n\n")
    with pytest.raises(DataError, match="empty split"):
        TripletSet.read(tmp_path)
    path.write_text(json.dumps({"anchor": "a", "positive": "p", "negative": ["n1", "n2"]}))
    assert read_layout(tmp_path).splits["train"][0]["negative"] == ["n1", "n2"]


def test_read_layout_rejects_unknown_directory(tmp_path):
    with pytest.raises(DataError, match="not a prepared dataset"):
        read_layout(tmp_path)
