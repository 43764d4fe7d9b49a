"""Shared fixtures and helpers: paths of the repository and of the tools in the active
environment, running Snakemake, the tiny workflow of tests/fixtures/tiny_workflow (one
completed run per session), and the one-node SLURM test cluster (tests/slurm/start_cluster.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY_WORKFLOW = REPO / "tests" / "fixtures" / "tiny_workflow"
LOCAL_PROFILE = REPO / "profiles" / "local"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def snakemake_argv(*args: str) -> list[str]:
    """The command line of the workflow's Snakefile, as a user would type it."""
    return [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args]


def run_snakemake(
    *args: str,
    cwd: Path = REPO,
    timeout: int = 600,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the workflow's Snakefile as a user would, capturing output."""
    result = subprocess.run(
        snakemake_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def run_script_rule(
    directory: Path, snakefile: str, *targets: str, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Write a small Snakefile (dedented) into ``directory`` and run it on one core, as the
    script tests do to check the names a rule passes to its ``script:``."""
    path = directory / "Snakefile"
    path.write_text(textwrap.dedent(snakefile))
    result = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--snakefile", str(path), *targets],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_step(
    *args: str, timeout: int = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m adapterflow STEP ...` (one step outside Snakemake) as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "adapterflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table ({} when nothing is planned)."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def summary_plans(output: str) -> dict[str, str]:
    """`snakemake --summary`: output file -> plan ('no update', 'update pending', ...)."""
    return {
        line.split("\t")[0]: line.split("\t")[-1]
        for line in output.splitlines()[1:]
        if "\t" in line
    }


# --- the tiny workflow -------------------------------------------------------------------------


def tiny_config() -> dict:
    """tests/fixtures/tiny_workflow/config.yaml with its local source paths made absolute."""
    config = yaml.safe_load((TINY_WORKFLOW / "config.yaml").read_text())
    for dataset in config["datasets"].values():
        source = dataset["source"]
        if source["kind"] == "local" and not Path(source["path"]).is_absolute():
            source["path"] = str(TINY_WORKFLOW / source["path"])
    return config


def write_config(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_run_args(workdir: Path, configfile: Path, *extra: str) -> list[str]:
    """A real run of the tiny workflow as `make run` does it (profiles/local, 2 cores)."""
    return [
        "--configfile", str(configfile), "--directory", str(workdir),
        "--workflow-profile", str(LOCAL_PROFILE), "--cores", "2", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny workflow run to completion once per session; tests work on copies
    (:func:`copy_run`). Holds `config.yaml` (its config) and `run/` (the working directory)."""
    base = tmp_path_factory.mktemp("tiny-run")
    configfile = write_config(base / "config.yaml", tiny_config())
    workdir = base / "run"
    workdir.mkdir()
    run_snakemake(*tiny_run_args(workdir, configfile), cwd=workdir, timeout=1800)
    return base


def copy_run(tiny_run: Path, dest: Path) -> tuple[Path, Path]:
    """A copy of the completed tiny run (file times kept, so nothing looks changed):
    (working directory, config file)."""
    shutil.copytree(tiny_run, dest, symlinks=True)
    return dest / "run", dest / "config.yaml"


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started, as a crash of the machine would. Waits for
    the descendants only: the caller reaps `pid` itself (Popen.wait), which would otherwise
    see the exit status already taken and report 0."""
    import psutil

    try:
        parent = psutil.Process(pid)
        descendants = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for process in [parent, *descendants]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(descendants, timeout=30)


def wait_for_file(path: Path, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Wait until `path` exists; fail early when `process` exits first."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process exited ({process.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {seconds} s")
        time.sleep(0.1)


# --- the SLURM test cluster --------------------------------------------------------------------

START_CLUSTER = REPO / "tests" / "slurm" / "start_cluster.sh"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
SLURM_WORKFLOW_TIMEOUT = 600  # seconds; both runs of the small config take about 3 minutes
# The GPU rules of rules/eval.smk: `gpu=1`, 8000 MB on the first attempt.
GPU_RULES = {"embed_corpus", "evaluate"}
GPU_RULE_MEM_MB = 8000


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


def job_rule(job: dict[str, str]) -> str:
    """The rule of a job the SLURM executor plugin submitted (it puts it in the comment)."""
    return re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"])[1]


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


def overlay_profile(directory: Path, node: dict, **overrides) -> Path:
    """profiles/slurm, changed only where this one-node cluster differs from a real one;
    `overrides` replace top-level keys afterwards (e.g. `retries`)."""
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
    profile.update(overrides)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def slurm_snakemake_cmd(
    workdir: Path, configfile: Path, *args: str, snakefile: Path = REPO / "Snakefile"
) -> list[str]:
    """Snakemake bounded by `timeout -s KILL`: a workflow polling a status command that cannot
    answer never exits."""
    return [
        "timeout", "-s", "KILL", str(SLURM_WORKFLOW_TIMEOUT),
        str(BIN / "snakemake"), "--snakefile", str(snakefile),
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
