"""Export to datasets on disk (round trip through load_from_disk) and the guarded Hub push."""

from __future__ import annotations

import json

import datasets
import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.export import (
    SUBSETS,
    build_subsets,
    export_dataset,
    push_to_hub,
)

TRAIN = [
    {
        "id": "q1",
        "question": "When does the Sil flood?",
        "answer": "Every April.",
        "dataset": "wiki",
        "cluster": 0,
        "citations": ["The Sil river floods every April."],
    },
    {
        "id": "q2",
        "question": "What do farmers plant?",
        "answer": "Rice.",
        "dataset": "wiki",
        "cluster": 1,
        "citations": ["Farmers plant rice."],
        "difficulty": 3,  # only in later rows: must not be dropped
    },
]
EVAL = [
    {
        "id": "q3",
        "question": "After what do farmers plant?",
        "answer": "After the flood.",
        "dataset": "news",
        "cluster": 1,
        "citations": [],
    }
]
CHUNKS = [
    {
        "_id": "d1-c0",
        "doc_id": "d1",
        "start": 0,
        "end": 33,
        "text": "The Sil river floods every April.",
    },
    {"_id": "d1-c1", "doc_id": "d1", "start": 34, "end": 53, "text": "Farmers plant rice."},
]
CORPUS = [
    {"_id": "d1", "title": "Sil", "text": "The Sil river floods every April. Farmers plant rice."},
    {"_id": "d2", "title": "Empty", "text": ""},
]


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def inputs(tmp_path):
    split_dir = tmp_path / "qa_split"
    write(split_dir / "splits" / "train.jsonl", TRAIN)
    write(split_dir / "splits" / "eval.jsonl", EVAL)
    write(tmp_path / "chunks" / "chunks.jsonl", CHUNKS)
    write(tmp_path / "clean" / "corpus.jsonl", CORPUS)
    return split_dir, tmp_path / "chunks", tmp_path / "clean"


def test_round_trip_through_load_from_disk(tmp_path, inputs):
    out = tmp_path / "hf"
    manifest = export_dataset(*inputs, out)
    assert sorted(p.name for p in out.iterdir()) == ["chunks", "manifest.json", "qa", "raw"]
    qa = datasets.load_from_disk(str(out / "qa"))
    assert isinstance(qa, datasets.DatasetDict) and list(qa) == ["train", "eval"]
    assert qa["train"].features == qa["eval"].features
    assert qa["train"].to_list() == [{**TRAIN[0], "difficulty": None}, TRAIN[1]]
    assert qa["eval"].to_list() == [{**EVAL[0], "difficulty": None}]
    chunks = datasets.load_from_disk(str(out / "chunks"))
    assert list(chunks) == ["train"] and chunks["train"].to_list() == CHUNKS
    assert chunks["train"].features["start"].dtype == "int64"
    raw = datasets.load_from_disk(str(out / "raw"))
    assert list(raw) == ["train"] and raw["train"].to_list() == CORPUS
    assert manifest["rows"] == {
        "qa": {"train": 2, "eval": 1},
        "chunks": {"train": 2},
        "raw": {"train": 2},
    }
    assert manifest["layout"] == {"qa": ["train", "eval"], "chunks": ["train"], "raw": ["train"]}
    assert set(manifest["inputs"]) == {"qa/train", "qa/eval", "chunks", "raw"}
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # A second export replaces the first.
    export_dataset(*inputs, out)
    assert len(datasets.load_from_disk(str(out / "qa"))["eval"]) == 1


def test_split_dir_files_and_an_empty_eval(tmp_path, inputs):
    split_dir, chunks, corpus = inputs
    write(split_dir / "splits" / "eval.jsonl", [])
    # The splits/ directory itself works too, and the JSONL files instead of their directories.
    export_dataset(
        split_dir / "splits", chunks / "chunks.jsonl", corpus / "corpus.jsonl", tmp_path / "hf"
    )
    qa = datasets.load_from_disk(str(tmp_path / "hf" / "qa"))
    assert len(qa["eval"]) == 0 and qa["eval"].features == qa["train"].features


def test_bad_inputs_name_file_line_field_and_leave_no_output(tmp_path, inputs):
    split_dir, chunks, corpus = inputs
    out = tmp_path / "hf"
    write(chunks / "chunks.jsonl", [CHUNKS[0], {**CHUNKS[1], "start": "34"}])
    with pytest.raises(DataError) as err:
        export_dataset(*inputs, out)
    assert str(err.value) == f"{chunks / 'chunks.jsonl'}:2: field 'start': expected int, got str"
    write(chunks / "chunks.jsonl", CHUNKS)
    write(split_dir / "splits" / "train.jsonl", [{"id": "x", "question": "Q?"}])
    with pytest.raises(DataError, match=r"train.jsonl:1: field 'answer': missing"):
        export_dataset(*inputs, out)
    write(split_dir / "splits" / "train.jsonl", [{**TRAIN[0], "cluster": "zero"}, TRAIN[1]])
    with pytest.raises(DataError, match="rows do not share one type per field"):
        export_dataset(*inputs, out)
    write(split_dir / "splits" / "train.jsonl", [])
    with pytest.raises(DataError, match="train.jsonl: no rows"):
        export_dataset(*inputs, out)
    with pytest.raises(DataError, match="file not found"):
        build_subsets(tmp_path / "nowhere", chunks, corpus)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf")]


def test_push_refuses_without_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    calls = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda *a, **k: calls.append(a))
    with pytest.raises(ConfigError, match="HF_TOKEN; it is not set, so nothing was uploaded"):
        push_to_hub(tmp_path / "missing", "my-lab/qa", private=True)
    monkeypatch.setenv("HF_TOKEN", "  ")
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        push_to_hub(tmp_path / "missing", "my-lab/qa")
    assert calls == []


def test_push_calls_push_to_hub_per_subset(tmp_path, inputs, monkeypatch, caplog):
    out = tmp_path / "hf"
    export_dataset(*inputs, out)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    calls = []

    def fake_push(self, repo_id, **kwargs):
        calls.append((dict(self.num_rows), repo_id, kwargs))

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", fake_push)
    with caplog.at_level("INFO"):
        assert push_to_hub(out, "my-lab/qa-wiki", private=False) == list(SUBSETS)
    assert [(rows, repo, kw["config_name"]) for rows, repo, kw in calls] == [
        ({"train": 2, "eval": 1}, "my-lab/qa-wiki", "qa"),
        ({"train": 2}, "my-lab/qa-wiki", "chunks"),
        ({"train": 2}, "my-lab/qa-wiki", "raw"),
    ]
    for _, _, kwargs in calls:
        assert kwargs["private"] is False and kwargs["token"] == "hf_secret_value"
    assert [kw["set_default"] for _, _, kw in calls] == [True, False, False]
    assert "pushed qa (train 2, eval 1) to my-lab/qa-wiki" in caplog.text
    assert "hf_secret_value" not in caplog.text


def test_push_checks_repo_id_and_export_before_uploading(tmp_path, inputs, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    calls = []
    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", lambda *a, **k: calls.append(a))
    for bad in ("qa-wiki", "a/b/c", "", None, "/x"):
        with pytest.raises(ConfigError, match="repo_id must be 'organisation/name'"):
            push_to_hub(tmp_path, bad)
    with pytest.raises(ConfigError, match="private must be true or false"):
        push_to_hub(tmp_path, "my-lab/qa", private="yes")
    (tmp_path / "partial" / "qa").mkdir(parents=True)
    with pytest.raises(DataError, match="missing subset\\(s\\) chunks, raw"):
        push_to_hub(tmp_path / "partial", "my-lab/qa")
    assert calls == []
