"""A user's own local data: an edit of the original file re-prepares exactly that dataset, a
mere touch reruns nothing, and a data error names the user's file and line (not the copy under
results/raw/). Splits that tasks ask for are checked from the files before any job, or by
prepare_dataset naming the task key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from adapterflow.data.fingerprint import local_source_digest, manifest_digest
from adapterflow.data.sources import fetch_raw

from conftest import job_counts, run_snakemake

GOOD = [
    {"sentence1": "a cat sat", "sentence2": "a cat was sitting", "score": 0.9},
    {"sentence1": "a dog ran", "sentence2": "stocks fell", "score": 0.1},
    {"sentence1": "rain today", "sentence2": "it is raining", "score": 0.8},
]


def _write_pairs(path: Path, rows: list[dict], extra: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + extra, encoding="utf-8")


def _config(workdir: Path) -> Path:
    """Two local datasets (prepared only, no models needed) with relative paths."""
    config = {
        "datasets": {
            name: {
                "source": {"kind": "local", "path": f"data/{name}"},
                "prepare": {"format": "pairs_jsonl"},
            }
            for name in ("mine", "other")
        },
        "models": {},
        "tasks": {},
        "experiments": {},
    }
    path = workdir / "my.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _dry_run(workdir: Path, configfile: Path) -> dict[str, int]:
    result = run_snakemake("-n", "--configfile", str(configfile), cwd=workdir)
    return job_counts(result.stdout)


def test_an_edit_of_a_local_source_reprepares_that_dataset_only(tmp_path: Path):
    for name in ("mine", "other"):
        _write_pairs(tmp_path / "data" / name / "pairs" / "test.jsonl", GOOD)
    configfile = _config(tmp_path)
    run_snakemake("--cores", "1", "--configfile", str(configfile), cwd=tmp_path)
    assert _dry_run(tmp_path, configfile) == {}

    source = tmp_path / "data" / "mine" / "pairs" / "test.jsonl"
    os.utime(source)  # a touch is no edit
    assert _dry_run(tmp_path, configfile) == {}

    _write_pairs(source, GOOD, extra='{"sentence1": "broken", "score": 0.5}\n')
    assert _dry_run(tmp_path, configfile) == {
        "fetch_raw": 1,
        "prepare_dataset": 1,
        "all": 1,
        "total": 3,
    }
    failed = run_snakemake(
        "--cores", "1", "--configfile", str(configfile), cwd=tmp_path, check=False
    )
    assert failed.returncode != 0
    # The user's file and line, not results/raw/mine/..., and one line instead of a traceback.
    assert "error: data/mine/pairs/test.jsonl:4: field 'sentence2'" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (tmp_path / "results" / "clean" / "mine").exists()

    _write_pairs(source, GOOD[:2])  # fixed
    run_snakemake("--cores", "1", "--configfile", str(configfile), cwd=tmp_path)
    manifest = json.loads((tmp_path / "results/clean/mine/manifest.json").read_text())
    assert manifest["counts"] == {"pairs/test": 2}
    assert _dry_run(tmp_path, configfile) == {}


def test_a_deleted_original_reruns_nothing(tmp_path: Path):
    _write_pairs(tmp_path / "data" / "mine" / "pairs" / "test.jsonl", GOOD)
    _write_pairs(tmp_path / "data" / "other" / "pairs" / "test.jsonl", GOOD)
    configfile = _config(tmp_path)
    run_snakemake("--cores", "1", "--configfile", str(configfile), cwd=tmp_path)
    (tmp_path / "data" / "mine" / "pairs" / "test.jsonl").unlink()
    (tmp_path / "data" / "mine" / "pairs").rmdir()
    (tmp_path / "data" / "mine").rmdir()
    # The fetched copy stands in for the original: its manifest gives the same digest.
    assert _dry_run(tmp_path, configfile) == {}


def test_digest_of_a_source_equals_the_digest_of_its_fetched_copy(tmp_path: Path):
    _write_pairs(tmp_path / "src" / "pairs" / "test.jsonl", GOOD)
    (tmp_path / "src" / "notes.txt").write_text("hello\n")
    manifest = fetch_raw("toy", {"kind": "local", "path": str(tmp_path / "src")}, tmp_path / "raw")
    assert manifest_digest(manifest) == local_source_digest(tmp_path / "src")
    single = fetch_raw(
        "one", {"kind": "local", "path": str(tmp_path / "src" / "notes.txt")}, tmp_path / "raw1"
    )
    assert manifest_digest(single) == local_source_digest(tmp_path / "src" / "notes.txt")


def test_the_cache_skips_reading_unchanged_files(tmp_path: Path, monkeypatch):
    _write_pairs(tmp_path / "src" / "pairs" / "test.jsonl", GOOD)
    cache = tmp_path / "cache.json"
    first = local_source_digest(tmp_path / "src", cache=cache)
    reads = []
    import adapterflow.data.fingerprint as fingerprint

    monkeypatch.setattr(fingerprint, "sha256_file", lambda path: reads.append(path) or "x")
    assert local_source_digest(tmp_path / "src", cache=cache) == first
    assert reads == []
    _write_pairs(tmp_path / "src" / "pairs" / "test.jsonl", GOOD[:1])  # size changes
    local_source_digest(tmp_path / "src", cache=cache)
    assert len(reads) == 1


def _retrieval_config(workdir: Path, split: str) -> Path:
    data = workdir / "data" / "docs"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": f"d{i}", "title": "", "text": f"doc {i}"}) + "\n" for i in range(3)
        )
    )
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": "doc one"}) + "\n")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td1\t1\n")
    config = {
        "datasets": {
            "docs": {
                "source": {"kind": "local", "path": "data/docs"},
                "prepare": {"format": "beir"},
            }
        },
        "models": {},
        "tasks": {"docs": {"dataset": "docs", "kind": "retrieval", "split": split}},
        "experiments": {},
    }
    path = workdir / "my.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_task_split_the_local_files_lack_stops_before_any_job(tmp_path: Path):
    configfile = _retrieval_config(tmp_path, "test")
    result = run_snakemake("-n", "--configfile", str(configfile), cwd=tmp_path, check=False)
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"error: {configfile}: tasks.docs.split: dataset 'docs' has only 'dev', not 'test' "
        "(the splits of 'data/docs')"
    )


def test_prepare_dataset_names_the_task_key_of_a_missing_split(tmp_path: Path):
    from adapterflow.data.prepare import prepare_dataset
    from adapterflow.errors import DataError

    _retrieval_config(tmp_path, "dev")
    fetch_raw("docs", {"kind": "local", "path": str(tmp_path / "data/docs")}, tmp_path / "raw")
    try:
        prepare_dataset(
            tmp_path / "raw",
            tmp_path / "clean",
            {"format": "beir"},
            name="docs",
            required_splits={"test": ["tasks.docs.split"]},
        )
    except DataError as err:
        message = str(err)
    else:
        raise AssertionError("a missing split must stop prepare_dataset")
    assert "field 'tasks.docs.split'" in message and "not 'test'" in message
    assert message.startswith(str(tmp_path / "data/docs"))  # the user's directory
    assert not (tmp_path / "clean").exists()


def test_a_missing_source_takes_the_digest_of_its_fetched_copy(tmp_path: Path):
    _write_pairs(tmp_path / "src" / "pairs" / "test.jsonl", GOOD)
    original = local_source_digest(tmp_path / "src")
    fetch_raw("toy", {"kind": "local", "path": str(tmp_path / "src")}, tmp_path / "raw")
    manifest = tmp_path / "raw" / "manifest.json"
    gone = tmp_path / "gone"
    assert local_source_digest(gone, fetched=manifest) == original
    assert local_source_digest(gone, fetched=tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{}")
    assert local_source_digest(gone, fetched=tmp_path / "bad.json") is None
