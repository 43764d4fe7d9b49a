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
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO

START_CLUSTER = REPO / "tests" / "slurm" / "start_cluster.sh"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
WORKFLOW_TIMEOUT = 600  # seconds; both runs of the small config take about 3 minutes
# The GPU rules of rules/eval.smk: `gpu=1`, 8000 MB on the first attempt.
GPU_RULES = {"embed_corpus", "evaluate"}
GPU_RULE_MEM_MB = 8000

pytestmark = pytest.mark.slurm


def bounded(cmd: list[str], seconds: int, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a command killed after `seconds` (SIGKILL: a hung client ignores SIGTERM)."""
    return subprocess.run(
        ["timeout", "-s", "KILL", str(seconds), *map(str, cmd)],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        **kwargs,
    )


def job_env() -> dict[str, str]:
    """The environment sbatch exports to jobs (`--export=ALL`): this venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


def parse_records(text: str) -> list[dict[str, str]]:
    """`scontrol show <entity> -o`: one entity per line, `Key=Value` fields."""
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines() if "=" in line]


def scheduler_jobs() -> list[dict[str, str]]:
    """Every job slurmctld still knows (the test cluster keeps finished jobs an hour)."""
    result = bounded(["scontrol", "show", "job", "-o"], 30)
    assert result.returncode == 0, result.stderr
    return parse_records(result.stdout)


def wait_for_job(jobid: str, seconds: int) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = bounded(["scontrol", "show", "job", "-o", jobid], 30)
        job = parse_records(result.stdout)[0] if result.returncode == 0 else {}
        if job.get("JobState") not in (None, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            return job
        time.sleep(1)
    bounded(["scancel", jobid], 30)
    pytest.fail(f"SLURM job {jobid} did not finish within {seconds}s")


@pytest.fixture(scope="session")
def slurm_cluster() -> dict:
    """Start (or find) the one-node test cluster; its node's CPUs, memory and partitions."""
    missing = [tool for tool in ("bash", "timeout") if shutil.which(tool) is None]
    if missing:
        reason = f"cannot run {START_CLUSTER.name}: {', '.join(missing)} not found"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    cmd = ["bash", str(START_CLUSTER)]
    if os.geteuid() != 0 and IN_CI and shutil.which("sudo"):
        # CI runners often run as a user with passwordless sudo; elsewhere never escalate.
        if subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
            cmd = ["sudo", "-n", *cmd]
    result = bounded(cmd, 900)
    output = (result.stdout + result.stderr).strip()
    if result.returncode == 2 and not IN_CI:
        pytest.skip(f"no SLURM test cluster here: {output.splitlines()[-1]}")
    if result.returncode != 0:
        pytest.fail(f"{START_CLUSTER.name} failed ({result.returncode}):\n{output}")
    node = parse_records(bounded(["scontrol", "show", "node", "-o"], 30).stdout)[0]
    partitions = bounded(["sinfo", "-h", "-o", "%R"], 30).stdout.split()
    return {
        "cpus": int(node["CPUTot"]),
        "mem_mb": int(node["RealMemory"]),
        "partitions": set(partitions),
        "gres": node["Gres"],
    }


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
        "evaluation": default["evaluation"],
        "experiments": {"base": {"model": "minilm", "evaluate": ["scifact", "wordsim"]}},
    }


def overlay_profile(directory: Path, node: dict) -> Path:
    """profiles/slurm, changed only where this one-node cluster differs from a real one."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    defaults = profile["default-resources"]
    # No accounting database, so no accounts: the plugin would try to validate one with
    # sacctmgr/sshare and fail. Partitions keep their names: the test cluster has cpu and gpu.
    defaults.pop("slurm_account", None)
    partitions = {defaults["slurm_partition"]}
    partitions |= {
        r["slurm_partition"] for r in profile["set-resources"].values() if "slurm_partition" in r
    }
    assert partitions <= node["partitions"], (partitions, node["partitions"])
    profile.update(
        {
            # sacct cannot answer without slurmdbd; squeue sees finished jobs for MinJobAge.
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 5,
            "slurm-keep-successful-logs": True,  # the test reads every job's log
            "retries": 0,  # fail fast
            "latency-wait": 5,  # one local filesystem
            # Threads (= --cpus-per-task) that fit the node; the local run uses 2 as well.
            "max-threads": min(node["cpus"], 2),
        }
    )
    # Memory requests that fit the node (sbatch rejects a job no node can hold).
    mem = node["mem_mb"]
    defaults["mem_mb"] = min(defaults.get("mem_mb", mem), mem)
    for resources in profile["set-resources"].values():
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], mem)
    if mem < GPU_RULE_MEM_MB:
        for rule in GPU_RULES:
            profile["set-resources"].setdefault(rule, {})["mem_mb"] = mem
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [
        "timeout", "-s", "KILL", str(WORKFLOW_TIMEOUT),
        str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"),
        "--configfile", str(configfile), "--directory", str(workdir), *args,
    ]  # fmt: skip


def rule_blocks(output: str) -> list[tuple[str, bool, str]]:
    """(rule, local, resources line) of every job Snakemake started, from its output."""
    blocks = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(local)?rule (\w+):$", line)
        if match:
            resources = next(
                (rest.strip() for rest in lines[i + 1 : i + 15] if "resources:" in rest), ""
            )
            blocks.append((match.group(2), bool(match.group(1)), resources))
    return blocks


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
    rules = Counter(re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"])[1] for job in jobs)
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
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"])[1]
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
        assert cluster == pytest.approx(local, abs=1e-9), local_file.name
    for name in ("metrics.csv", "summary.md"):
        assert (runs["slurm"] / "results" / "tables" / name).exists()
    assert runs["seconds"] < WORKFLOW_TIMEOUT
