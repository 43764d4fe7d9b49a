"""The presets in configs/ run end to end on tiny fixtures, and the hf_* converters they use.

Each workflow test loads a preset as a user would, swaps only the dataset's download for a
local stand-in in the same format (tests/fixtures/presets/, invented text), runs the real
Snakefile to results/clean/{dataset}, and checks the clean layout and the raw manifest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

import adapterflow.data.hf_converters  # noqa: F401  (registers the hf_* formats)
from adapterflow.config import load_config
from adapterflow.data.converters import convert
from adapterflow.data.layouts import PairSet, RetrievalSet, TripletSet
from adapterflow.errors import DataError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "presets"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- helpers ----------------------------------------------------------------------------------


def run_preset(tmp_path: Path, preset: str, **source: Any) -> tuple[Path, Path]:
    """Run ``configs/{preset}.yaml`` with its source keys replaced by ``source``; return the
    clean and raw directories of its dataset (the dataset shares the preset's name)."""
    config = load_config(REPO / "configs" / f"{preset}.yaml")
    assert list(config["datasets"]) == [preset]
    assert all(preset in exp["evaluate"] for exp in config["experiments"].values())
    config["datasets"][preset]["source"].update(source)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    env = {
        **os.environ,
        # Nothing here needs the network: keep `datasets` off it and its cache in tmp_path.
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(configfile),
            "--cores",
            "1",
            f"results/clean/{preset}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    logs = "\n".join(
        f"--- {p.relative_to(tmp_path)}\n{p.read_text()}"
        for p in sorted((tmp_path / "results" / "logs").rglob("*.log"))
    )
    assert proc.returncode == 0, f"{proc.stderr[-4000:]}\n{logs}"
    return tmp_path / "results" / "clean" / preset, tmp_path / "results" / "raw" / preset


def check_raw_manifest(raw: Path) -> dict[str, Any]:
    """Every fetched file is listed with its real sha256; return the manifest."""
    manifest = json.loads((raw / "manifest.json").read_text())
    on_disk = sorted(
        p.relative_to(raw).as_posix()
        for p in raw.rglob("*")
        # Snakemake marks directory outputs with .snakemake_timestamp after the fetch.
        if p.is_file() and p.name not in ("manifest.json", ".snakemake_timestamp")
    )
    assert [f["path"] for f in manifest["files"]] == on_disk
    for entry in manifest["files"]:
        assert SHA256.match(entry["sha256"]), entry
        assert entry["sha256"] == hashlib.sha256((raw / entry["path"]).read_bytes()).hexdigest()
    return manifest


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture
def served_zip(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """tests/fixtures/presets/scifact zipped like BEIR's scifact.zip, served over HTTP."""
    site = tmp_path / "site"
    site.mkdir()
    archive = shutil.make_archive(str(site / "scifact"), "zip", FIXTURES, "scifact")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/scifact.zip", Path(archive)
    finally:
        server.shutdown()
        server.server_close()


# --- presets end to end -----------------------------------------------------------------------


def test_scifact_preset(tmp_path: Path, served_zip: tuple[str, Path]) -> None:
    url, archive = served_zip
    work = tmp_path / "work"
    work.mkdir()
    clean, raw = run_preset(work, "scifact", url=url)

    manifest = check_raw_manifest(raw)
    assert {f["path"] for f in manifest["files"]} == {
        "scifact/corpus.jsonl",
        "scifact/queries.jsonl",
        "scifact/qrels/train.tsv",
        "scifact/qrels/test.tsv",
    }
    assert manifest["download"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()

    assert [d["_id"] for d in jsonl(clean / "corpus.jsonl")] == "101 202 303 404 505 606".split()
    assert {q["_id"] for q in jsonl(clean / "queries.jsonl")} == {"1", "2", "3", "4", "5"}
    header = ["query-id", "corpus-id", "score"]
    # Train claim 3 cites abstract 303, which test claim 5 cites too: dropped from train.
    assert tsv(clean / "qrels" / "train.tsv") == [header, ["1", "101", "1"], ["2", "202", "1"]]
    assert tsv(clean / "qrels" / "test.tsv") == [header, ["4", "404", "1"], ["5", "303", "1"]]
    clean_manifest = json.loads((clean / "manifest.json").read_text())
    assert clean_manifest["layout"] == "retrieval"
    assert clean_manifest["counts"] == {
        "corpus": 6,
        "queries": 5,
        "qrels/test": 2,
        "qrels/train": 2,
    }
    assert clean_manifest["dropped"] == {"leaked_train_judgements": 0, "leaked_train_queries": 1}


def test_stsb_preset(tmp_path: Path) -> None:
    clean, raw = run_preset(tmp_path, "stsb", path=str(FIXTURES / "stsb"), name=None)

    manifest = check_raw_manifest(raw)
    assert all(f["path"].startswith("hf/") for f in manifest["files"])
    assert manifest["hf"]["num_rows"] == {"train": 5, "validation": 2, "test": 3}

    assert sorted(p.name for p in (clean / "pairs").iterdir()) == [
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    pairs = {
        split: jsonl(clean / "pairs" / f"{split}.jsonl")
        for split in ("train", "validation", "test")
    }
    assert {split: len(rows) for split, rows in pairs.items()} == {
        "train": 4,
        "validation": 2,
        "test": 3,
    }
    # The test sentence reused by one train pair leaves train, and is counted.
    shared = "A man is playing a wooden flute."
    assert all(shared not in (r["sentence1"], r["sentence2"]) for r in pairs["train"])
    assert pairs["test"][0] == {
        "sentence1": shared,
        "sentence2": "Someone plays a flute.",
        "score": 0.8,
    }
    assert all(
        set(r) == {"sentence1", "sentence2", "score"} for rows in pairs.values() for r in rows
    )
    clean_manifest = json.loads((clean / "manifest.json").read_text())
    assert clean_manifest["layout"] == "pairs"
    assert clean_manifest["dropped"] == {"leaked_train_pairs": 1}


def test_nli_preset(tmp_path: Path) -> None:
    # The fixture declares the hub's config name `triplet`, so the preset's `name` is kept.
    clean, raw = run_preset(tmp_path, "nli", path=str(FIXTURES / "nli"))

    manifest = check_raw_manifest(raw)
    assert manifest["source"]["name"] == "triplet"
    assert manifest["hf"]["num_rows"] == {"train": 3, "dev": 2, "test": 2}

    # The preset renames the hub's "dev" split to "validation".
    assert sorted(p.name for p in (clean / "triplets").iterdir()) == [
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    triplets = {
        s: jsonl(clean / "triplets" / f"{s}.jsonl") for s in ("train", "validation", "test")
    }
    assert {s: len(rows) for s, rows in triplets.items()} == {
        "train": 3,
        "validation": 2,
        "test": 2,
    }
    for rows in triplets.values():
        for row in rows:
            assert set(row) == {"anchor", "positive", "negative"}
            assert all(isinstance(v, str) and v for v in row.values())
    assert triplets["validation"][0]["anchor"] == "Two women jog along a river path."
    assert json.loads((clean / "manifest.json").read_text())["layout"] == "triplets"


def test_itihasa_preset(tmp_path: Path) -> None:
    clean, raw = run_preset(
        tmp_path, "itihasa", path=str(FIXTURES / "itihasa"), name=None, revision=None
    )

    manifest = check_raw_manifest(raw)
    assert manifest["hf"]["num_rows"] == {"train": 4, "validation": 2, "test": 2}

    source = {
        s: [row["translation"] for row in jsonl(FIXTURES / "itihasa" / f"{s}.jsonl")]
        for s in ("train", "validation", "test")
    }
    expected_ids = [
        f"{s}-{i}" for s in ("train", "validation", "test") for i in range(len(source[s]))
    ]
    corpus = jsonl(clean / "corpus.jsonl")
    queries = jsonl(clean / "queries.jsonl")
    # Row order and position survive: document i of a split is row i, in source order.
    assert [d["_id"] for d in corpus] == expected_ids
    assert [q["_id"] for q in queries] == [f"{i}-q" for i in expected_ids]
    texts = [t for s in ("train", "validation", "test") for t in source[s]]
    assert [d["text"] for d in corpus] == [t["en"] for t in texts]  # documents: English
    assert [q["text"] for q in queries] == [t["sn"] for t in texts]  # queries: Sanskrit
    for split, rows in source.items():
        assert tsv(clean / "qrels" / f"{split}.tsv") == [["query-id", "corpus-id", "score"]] + [
            [f"{split}-{i}-q", f"{split}-{i}", "1"] for i in range(len(rows))
        ]
    clean_manifest = json.loads((clean / "manifest.json").read_text())
    assert clean_manifest["layout"] == "retrieval"
    assert clean_manifest["dropped"].get("leaked_train_queries", 0) == 0


# --- the hf converters ------------------------------------------------------------------------


def save_hf(
    raw: Path, splits: dict[str, dict[str, list[Any]]] | None = None, **single: Any
) -> Path:
    """Save a DatasetDict (``splits``) or one Dataset (``single`` columns) like the hf fetcher."""
    import datasets

    if splits is not None:
        data = datasets.DatasetDict({s: datasets.Dataset.from_dict(c) for s, c in splits.items()})
    else:
        data = datasets.Dataset.from_dict(single)
    data.save_to_disk(str(raw / "hf"))
    return raw


def test_hf_pairs_scales_maps_splits_and_skips_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = save_hf(
        tmp_path,
        {
            "train": {
                "s1": ["a", "b", None, "d"],
                "s2": ["w", "x", "y", None],
                "sim": [5, 2.5, 1, 0],
            },
            "dev": {"s1": ["e"], "s2": ["f"], "sim": [0.0]},
        },
    )
    options = {
        "sentence1": "s1",
        "sentence2": "s2",
        "score": "sim",
        "score_scale": 5,
        "splits": {"dev": "validation"},
    }
    with caplog.at_level(logging.INFO, logger="adapterflow.data.hf_converters"):
        data = convert("hf_pairs", raw, options)
    assert isinstance(data, PairSet)
    assert data.splits == {
        "train": [
            {"sentence1": "a", "sentence2": "w", "score": 1.0},
            {"sentence1": "b", "sentence2": "x", "score": 0.5},
        ],
        "validation": [{"sentence1": "e", "sentence2": "f", "score": 0.0}],
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "adapterflow.data.hf_converters"]
    assert len(lines) == 1
    assert "2 rows with a missing value skipped" in lines[0] and "'train': 2" in lines[0]


def test_hf_pairs_score_out_of_range_names_split_line_field(tmp_path: Path) -> None:
    raw = save_hf(
        tmp_path,
        {
            "test": {
                "sentence1": ["a", "b", "c"],
                "sentence2": ["x", "y", "z"],
                "score": [0.2, 0.4, 4.0],
            }
        },
    )
    with pytest.raises(DataError) as info:
        convert("hf_pairs", raw, {})
    err = info.value
    assert (err.line, err.field) == (3, "score")
    assert Path(err.path) == raw / "hf" / "test"
    assert "'test'" in str(err) and "outside [0, 1]" in str(err)


def test_hf_pairs_label_and_single_dataset_split_name(tmp_path: Path) -> None:
    raw = save_hf(tmp_path, sentence1=["a", "b"], sentence2=["x", "y"], label=[1, 0])
    (raw / "manifest.json").write_text(json.dumps({"source": {"kind": "hf", "split": "dev"}}))
    data = convert("hf_pairs", raw, {"score": None, "label": "label"})
    assert data.splits == {
        "dev": [
            {"sentence1": "a", "sentence2": "x", "score": 1.0, "label": 1},
            {"sentence1": "b", "sentence2": "y", "score": 0.0, "label": 0},
        ]
    }
    with pytest.raises(DataError, match="column not found") as info:
        convert("hf_pairs", raw, {"sentence1": "premise"})
    assert info.value.field == "premise"


def test_hf_triplets_columns_and_negative_lists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = save_hf(
        tmp_path,
        {
            "train": {"q": ["a", "b"], "pos": ["p", "p2"], "n1": ["x", "y"], "n2": ["z", None]},
            "test": {"q": ["c"], "pos": ["p3"], "n1": ["w"], "n2": ["v"]},
        },
    )
    with caplog.at_level(logging.INFO, logger="adapterflow.data.hf_converters"):
        data = convert(
            "hf_triplets", raw, {"anchor": "q", "positive": "pos", "negative": ["n1", "n2"]}
        )
    assert isinstance(data, TripletSet)
    assert data.splits == {
        "train": [{"anchor": "a", "positive": "p", "negative": ["x", "z"]}],
        "test": [{"anchor": "c", "positive": "p3", "negative": ["w", "v"]}],
    }
    assert "1 rows with a missing value skipped" in caplog.text
    single = convert(
        "hf_triplets",
        raw,
        {"anchor": "q", "positive": "pos", "negative": "n1", "splits": {"test": None}},
    )
    assert single.splits == {
        "train": [
            {"anchor": "a", "positive": "p", "negative": "x"},
            {"anchor": "b", "positive": "p2", "negative": "y"},
        ]
    }


def test_hf_parallel_ids_order_and_qrels(tmp_path: Path) -> None:
    def rows(*pairs: tuple[str | None, str]) -> dict[str, list[Any]]:
        return {"translation": [{"en": en, "sn": sn} for sn, en in pairs]}

    raw = save_hf(
        tmp_path,
        {
            "train": rows(("ka", "one"), (None, "two"), ("ga", "three")),
            "validation": rows(("gha", "four")),
        },
    )
    data = convert("hf_parallel", raw, {"source": "translation.sn", "target": "translation.en"})
    assert isinstance(data, RetrievalSet)
    # Row 1 (no Sanskrit) is skipped but leaves its index unused: ids encode source position.
    assert list(data.corpus) == ["train-0", "train-2", "validation-0"]
    assert data.corpus["train-2"] == {"_id": "train-2", "title": "", "text": "three"}
    assert data.queries["train-2-q"] == {"_id": "train-2-q", "text": "ga"}
    assert data.qrels == {
        "train": {"train-0-q": {"train-0": 1}, "train-2-q": {"train-2": 1}},
        "validation": {"validation-0-q": {"validation-0": 1}},
    }
    with pytest.raises(DataError, match="column not found") as info:
        convert("hf_parallel", raw, {"source": "text.sn", "target": "translation.en"})
    assert info.value.field == "text"


def test_hf_formats_need_a_saved_dataset_and_known_splits(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="source of kind 'hf'"):
        convert("hf_pairs", tmp_path, {})
    raw = save_hf(tmp_path, {"train": {"anchor": ["a"], "positive": ["b"], "negative": ["c"]}})
    with pytest.raises(DataError, match="unknown source split") as info:
        convert("hf_triplets", raw, {"splits": {"dev": "validation"}})
    assert info.value.field == "splits"
