"""The workflow on a real SLURM cluster: one node on this machine, started by
tests/slurm/start_cluster.sh (slurmctld + slurmd + munge, partitions `cpu` and `gpu`, one
schedulable fake GPU, no accounting database).

Outside CI the tests skip when the cluster cannot be set up here (not root, no apt-get); with
CI=true they fail instead. Every scheduler and Snakemake command is bounded by
`timeout -s KILL`: a workflow that polls a status command which cannot answer never exits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import (
    GPU_RULES,
    REPO,
    START_CLUSTER,
    bounded,
    job_env,
    job_rule,
    overlay_profile,
    rule_blocks,
    scheduler_jobs,
    wait_for_job,
)
from conftest import SLURM_WORKFLOW_TIMEOUT as WORKFLOW_TIMEOUT
from conftest import slurm_snakemake_cmd as snakemake_cmd

pytestmark = pytest.mark.slurm


def test_cluster_is_up_and_start_is_idempotent(slurm_cluster):
    assert {"cpu", "gpu"} <= slurm_cluster["partitions"]
    assert slurm_cluster["gres"].startswith("gpu:1")
    again = bounded(["bash", START_CLUSTER], 60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already up" in again.stdout
    hostname = bounded(["srun", "-N1", "hostname"], 60)
    assert hostname.returncode == 0, hostname.stderr
    assert hostname.stdout.strip().split(".")[0] == os.uname().nodename.split(".")[0]


@pytest.mark.parametrize(
    ("request_args", "partition", "gpus"),
    [([], "cpu", "0"), (["--gpus=1", "-p", "gpu"], "gpu", "1")],
    ids=["default-partition", "gpu"],
)
def test_sbatch_job_completes(slurm_cluster, tmp_path, request_args, partition, gpus):
    out = tmp_path / "job.out"
    cmd = ["sbatch", "--parsable", *request_args, "-t", "2", "--mem", "100", "-o", out]
    cmd += ["-J", "adapterflow-smoke", "--wrap", "echo ok gpus=${SLURM_GPUS_ON_NODE:-0}"]
    submitted = bounded(cmd, 30)
    assert submitted.returncode == 0, submitted.stderr
    job = wait_for_job(submitted.stdout.strip().split(";")[0], 120)
    assert job["JobState"] == "COMPLETED", job
    assert job["Partition"] == partition
    assert job.get("TresPerJob", "") == ("gres:gpu:1" if gpus == "1" else "")
    assert out.read_text().strip() == f"ok gpus={gpus}"


# --- the workflow ------------------------------------------------------------------------------


def small_slurm_config() -> dict:
    """Two small datasets and the base model evaluated on them: one STS task (WordSim-353,
    gensim's test data) and one retrieval task on the tiny SciFact stand-in of
    tests/fixtures/presets (which exercises embed_corpus). No training."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    return {
        "datasets": {
            "wordsim": default["datasets"]["wordsim"],
            "scifact": {
                "description": "Tiny BEIR stand-in (invented text) of tests/fixtures/presets.",
                "source": {
                    "kind": "local",
                    "path": str(REPO / "tests" / "fixtures" / "presets" / "scifact"),
                },
                "prepare": {"format": "beir", "on_leak": "drop_from_train"},
            },
        },
        "models": default["models"],
        "tasks": {
            "wordsim": default["tasks"]["wordsim"],
            "scifact": {"dataset": "scifact", "kind": "retrieval", "split": "test"},
        },
        # float32: bf16 autocast rounds differently with the cluster job's thread count, and
        # the scores are compared to 1e-6 below.
        "evaluation": {**default["evaluation"], "bf16": False},
        "experiments": {"base": {"model": "minilm", "evaluate": ["scifact", "wordsim"]}},
    }


@pytest.fixture(scope="module")
def slurm_and_local_runs(slurm_cluster, tmp_path_factory) -> dict:
    """The small config run twice at the same time: on the cluster with the overlay profile,
    and locally with profiles/local. Both bounded by `timeout -s KILL`."""
    base = tmp_path_factory.mktemp("slurm-e2e")
    configfile = base / "small.yaml"
    configfile.write_text(yaml.safe_dump(small_slurm_config()))
    profile = overlay_profile(base / "profile", slurm_cluster)
    runs = {"slurm": base / "slurm", "local": base / "local"}
    for workdir in runs.values():
        workdir.mkdir()
    started = time.monotonic()
    local_profile = str(REPO / "profiles" / "local")
    local = subprocess.Popen(
        snakemake_cmd(
            runs["local"], configfile, "--workflow-profile", local_profile, "--cores", "2"
        ),
        cwd=runs["local"],
        env=job_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    slurm = subprocess.run(
        snakemake_cmd(runs["slurm"], configfile, "--workflow-profile", str(profile)),
        cwd=runs["slurm"],
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=WORKFLOW_TIMEOUT + 30,
    )
    slurm_output = slurm.stdout + slurm.stderr
    run_id = re.search(r"SLURM run ID: (\S+)", slurm_output)
    if slurm.returncode != 0 and run_id:
        bounded(["scancel", "--name", run_id.group(1)], 30)  # jobs of a killed run
    local_output = local.communicate(timeout=WORKFLOW_TIMEOUT + 30)[0]
    assert slurm.returncode == 0, f"SLURM run failed ({slurm.returncode}):\n{slurm_output[-6000:]}"
    assert local.returncode == 0, f"local run failed ({local.returncode}):\n{local_output[-4000:]}"
    return {
        **runs,
        "output": slurm_output,
        "run_id": run_id.group(1),
        "seconds": time.monotonic() - started,
    }


@pytest.mark.slow
def test_every_cluster_rule_is_submitted_with_sbatch(slurm_and_local_runs):
    runs = slurm_and_local_runs
    workdir = runs["slurm"]
    assert "Falling back to 'sacct'" not in runs["output"]
    blocks = rule_blocks(runs["output"])
    submitted = Counter(rule for rule, local, _ in blocks if not local)
    assert {"fetch_raw", "figures"} <= {rule for rule, local, _ in blocks if local}
    assert set(submitted) == {"prepare_dataset", "embed_corpus", "evaluate", "aggregate"}
    # The scheduler's own records: one batch job per non-local job of this run.
    jobs = [
        job
        for job in scheduler_jobs()
        if job.get("JobName") == runs["run_id"] and job.get("WorkDir") == str(workdir)
    ]
    rules = Counter(job_rule(job) for job in jobs)
    assert rules == submitted
    for job in jobs:
        assert job["JobState"] == "COMPLETED" and job["BatchFlag"] == "1", job
        log = Path(job["StdOut"])
        assert log.is_relative_to(workdir / "results" / "logs" / "slurm"), log
        assert log.exists()


@pytest.mark.slow
def test_gpu_rules_request_the_gpu(slurm_and_local_runs):
    runs = slurm_and_local_runs
    gpu_rules = {rule for rule, local, res in rule_blocks(runs["output"]) if "gpu=1" in res}
    assert gpu_rules == GPU_RULES
    jobs = [job for job in scheduler_jobs() if job.get("JobName") == runs["run_id"]]
    assert jobs
    for job in jobs:
        rule = job_rule(job)
        if rule in GPU_RULES:
            assert job["Partition"] == "gpu" and job["TresPerJob"] == "gres:gpu:1", job
        else:
            assert job["Partition"] == "cpu" and "gpu" not in job.get("TresPerJob", ""), job


@pytest.mark.slow
def test_cluster_scores_equal_local_scores(slurm_and_local_runs):
    runs = slurm_and_local_runs
    local_files = sorted((runs["local"] / "results" / "eval").rglob("*.json"))
    assert [f.name for f in local_files] == ["scifact.json", "wordsim.json"]
    for local_file in local_files:
        cluster_file = runs["slurm"] / local_file.relative_to(runs["local"])
        local = json.loads(local_file.read_text())["scores"]["test"][0]
        cluster = json.loads(cluster_file.read_text())["scores"]["test"][0]
        assert 0.0 < local["main_score"] <= 1.0
        # The local profile runs one torch thread per job, the cluster job its rule's threads:
        # the same numbers up to float summation order.
        assert cluster == pytest.approx(local, abs=1e-6), local_file.name
    for name in ("metrics.csv", "summary.md"):
        assert (runs["slurm"] / "results" / "tables" / name).exists()
    assert runs["seconds"] < WORKFLOW_TIMEOUT
