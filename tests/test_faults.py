"""Faults the workflow survives: a training job killed mid-run, Snakemake itself killed while a
job writes its outputs, a second run started on a directory in use, and, on the SLURM test
cluster, jobs that run out of memory or time and a submit host that dies mid-job.

The local tests work on copies of one completed run of the tiny workflow (the `tiny_run`
fixture of conftest.py), with some outputs removed so that Snakemake redoes them. To kill a
process at an exact point they start Snakemake with tests/fixtures/fault_injection on
PYTHONPATH: its sitecustomize.py holds a process (the job, which inherits the environment) just
before a given `os.replace` or `os.makedirs` and writes a marker with the process id; the test
then SIGKILLs it there, which no handler can soften, as in a real crash or OOM kill.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import (
    REPO,
    SLURM_WORKFLOW_TIMEOUT,
    bounded,
    copy_run,
    job_counts,
    job_env,
    job_rule,
    kill_tree,
    overlay_profile,
    run_snakemake,
    scheduler_jobs,
    slurm_snakemake_cmd,
    snakemake_argv,
    tiny_run_args,
    wait_for_file,
    wait_for_job,
)

FAULT_INJECTION = REPO / "tests" / "fixtures" / "fault_injection"
SLURM_FAULTS = REPO / "tests" / "fixtures" / "slurm_faults" / "Snakefile"
RUN_TIMEOUT = 1800  # seconds for a run of (part of) the tiny workflow on a busy 2-core machine
LOCKED = "Directory cannot be locked"

pytestmark = pytest.mark.slow


def fault_env(tmp_path: Path, at: str, release: Path | None = None) -> tuple[dict, Path]:
    """The environment that holds a process at `at` (see the fixture), and its marker file."""
    marker = tmp_path / "held.pid"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(FAULT_INJECTION), os.environ.get("PYTHONPATH")])
        ),
        "ADAPTERFLOW_FAULT_AT": at,
        "ADAPTERFLOW_FAULT_MARKER": str(marker),
    }
    if release is not None:
        env["ADAPTERFLOW_FAULT_RELEASE"] = str(release)
    return env, marker


def start(args: list[str], workdir: Path, env: dict, log: Path) -> subprocess.Popen:
    """Snakemake in the background, in a session of its own, output to `log`."""
    with open(log, "w") as handle:
        return subprocess.Popen(
            snakemake_argv(*args),
            cwd=workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(process: subprocess.Popen, timeout: int = RUN_TIMEOUT) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """SIGKILL a Snakemake we started, and its jobs, unless it has exited already."""
    if process.poll() is None:
        kill_tree(process.pid)


def scores(run_dir: Path, run: str, task: str) -> dict:
    return json.loads((run_dir / f"results/eval/minilm/{run}/{task}.json").read_text())["scores"]


def temporary_files(directory: Path) -> list[Path]:
    """What atomic_file/atomic_dir leave beside a final path while writing it."""
    return sorted(directory.rglob(".*.tmp"))


# --- a training job killed mid-run -------------------------------------------------------------


def test_a_killed_training_job_resumes_from_its_checkpoint_and_matches_an_unbroken_run(
    tiny_run, tmp_path
):
    """kill -9 of train_adapter after its first checkpoint (step 4 of 12); Snakemake reports the
    failure; the rerun resumes from checkpoint-4 and ends with the same adapter weights, train
    log and scores as the uninterrupted run (same seed, same threads, CPU)."""
    reference = tiny_run / "run"
    workdir, configfile = copy_run(tiny_run, tmp_path / "copy")
    # Everything from training on, as before a first run of the two stages.
    results = workdir / "results"
    for path in ["adapters", "checkpoints", "tables", "figures", "logs/train_adapter"]:
        shutil.rmtree(results / path)
    for path in [*results.glob("embeddings/minilm/s1*"), *results.glob("eval/minilm/s1*")]:
        shutil.rmtree(path)
    checkpoints = workdir / "results/checkpoints/minilm/s1/seed0"
    adapter = workdir / "results/adapters/minilm/s1/seed0"
    # Held when the trainer creates its second checkpoint folder: step 8 done, checkpoint-4
    # complete, the adapter not written.
    env, marker = fault_env(tmp_path, f"makedirs:{checkpoints}/checkpoint-8")
    log = tmp_path / "killed.log"
    process = start(tiny_run_args(workdir, configfile), workdir, env, log)
    try:
        wait_for_file(marker, RUN_TIMEOUT, process)
        assert (checkpoints / "checkpoint-4" / "trainer_state.json").is_file()
        assert not adapter.exists()
        os.kill(int(marker.read_text()), signal.SIGKILL)  # the job's process only
        assert finish(process) != 0
    finally:
        stop(process)
    output = log.read_text()
    assert "Error in rule train_adapter" in output, output[-3000:]
    assert not adapter.exists() and not temporary_files(adapter.parent)

    rerun = run_snakemake(*tiny_run_args(workdir, configfile), cwd=workdir, timeout=RUN_TIMEOUT)
    rerun_output = rerun.stdout + rerun.stderr
    assert job_counts(rerun_output).get("train_adapter") == 2, rerun_output[-3000:]
    train_log = (workdir / "results/logs/train_adapter/minilm/s1/seed0.log").read_text()
    assert f"resuming from {checkpoints.relative_to(workdir)}/checkpoint-4" in train_log
    assert "trained 12 steps (resumed from checkpoint-4)" in train_log

    for stages in ("s1", "s1+s2"):
        got = workdir / f"results/adapters/minilm/{stages}/seed0"
        want = reference / f"results/adapters/minilm/{stages}/seed0"
        got_weights = load_file(str(got / "adapter_model.safetensors"))
        want_weights = load_file(str(want / "adapter_model.safetensors"))
        assert got_weights.keys() == want_weights.keys()
        assert all(torch.equal(got_weights[k], want_weights[k]) for k in want_weights), stages
        rows = [json.loads(line) for line in (got / "train_log.jsonl").read_text().splitlines()]
        ref = [json.loads(line) for line in (want / "train_log.jsonl").read_text().splitlines()]
        # Each step once (the killed attempt's rows after checkpoint-4 were replaced).
        assert [r["step"] for r in rows] == [r["step"] for r in ref]
        assert [r["loss"] for r in rows] == [r["loss"] for r in ref]
    for run in ("s1-seed0", "s1+s2-seed0"):
        for task in ("docs", "sts"):
            assert scores(workdir, run, task) == scores(reference, run, task), (run, task)


# --- Snakemake killed while a job writes its outputs ---------------------------------------------


@pytest.mark.parametrize(
    ("rule", "removed", "held_at", "written_first"),
    [
        (
            # evaluate writes the per-item CSV, then the JSON: killed between the two.
            "evaluate",
            ["results/eval/minilm/base/sts.details.csv", "results/eval/minilm/base/sts.json"],
            "results/eval/minilm/base/sts.json",
            "results/eval/minilm/base/sts.details.csv",
        ),
        (
            # aggregate writes metrics.csv, then summary.md.
            "aggregate",
            ["results/tables/metrics.csv", "results/tables/summary.md"],
            "results/tables/summary.md",
            "results/tables/metrics.csv",
        ),
    ],
)
def test_a_killed_run_leaves_no_partial_output_and_the_rerun_redoes_the_incomplete_job(
    tiny_run, tmp_path, rule, removed, held_at, written_first
):
    """SIGKILL to Snakemake and its job while the job is between its two output files: each
    final path holds a complete file or nothing; the next run is refused until `--unlock`
    (the lock of the dead run stays), then refuses the incomplete output unless
    `rerun-incomplete` (profiles/local) is on, and with it redoes the job."""
    reference = tiny_run / "run"
    workdir, configfile = copy_run(tiny_run, tmp_path / "copy")
    for path in removed:
        (workdir / path).unlink()
    env, marker = fault_env(tmp_path, f"replace:{workdir / held_at}")
    log = tmp_path / "killed.log"
    process = start(tiny_run_args(workdir, configfile), workdir, env, log)
    try:
        wait_for_file(marker, RUN_TIMEOUT, process)
    finally:
        stop(process)  # Snakemake and the job: nothing gets to clean up
    assert process.wait(timeout=60) == -signal.SIGKILL

    # Complete or absent, never partial: the first file is in place and equal to the
    # uninterrupted run's; the second was still under its temporary name.
    assert not (workdir / held_at).exists()
    assert (workdir / written_first).read_bytes() == (reference / written_first).read_bytes()

    args = tiny_run_args(workdir, configfile)
    locked = run_snakemake(*args, cwd=workdir, check=False)
    assert locked.returncode != 0 and LOCKED in locked.stdout + locked.stderr
    run_snakemake("--unlock", "--configfile", str(configfile), "--directory", str(workdir))

    plain = ("--configfile", str(configfile), "--directory", str(workdir), "--cores", "2")
    refused = run_snakemake(*plain, cwd=workdir, check=False)
    refused_output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "IncompleteFilesException" in refused_output
    assert written_first in refused_output

    rerun = run_snakemake(*args, cwd=workdir, timeout=RUN_TIMEOUT)
    rerun_output = rerun.stdout + rerun.stderr
    assert job_counts(rerun_output).get(rule) == 1, rerun_output[-3000:]
    for path in removed:
        if path.endswith(".json"):  # its provenance has the wall time; the scores are equal
            assert scores(workdir, "base", "sts") == scores(reference, "base", "sts")
        else:
            assert (workdir / path).read_bytes() == (reference / path).read_bytes(), path
    # The temporary file the killed job left is gone too.
    assert not temporary_files((workdir / held_at).parent)


# --- two runs on one directory -----------------------------------------------------------------


def snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(workdir)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted((workdir / "results").rglob("*"))
        if path.is_file()
    }


def test_a_second_run_on_a_directory_in_use_is_refused_and_changes_nothing(tiny_run, tmp_path):
    reference = tiny_run / "run"
    workdir, configfile = copy_run(tiny_run, tmp_path / "copy")
    for name in ("metrics.csv", "summary.md"):
        (workdir / "results" / "tables" / name).unlink()
    release = tmp_path / "release"
    env, marker = fault_env(
        tmp_path, f"replace:{workdir}/results/tables/metrics.csv", release=release
    )
    args = tiny_run_args(workdir, configfile)
    log = tmp_path / "first.log"
    first = start(args, workdir, env, log)
    try:
        wait_for_file(marker, RUN_TIMEOUT, first)  # the first run's aggregate job is writing
        before = snapshot(workdir)
        second = run_snakemake(*args, cwd=workdir, check=False)
        assert second.returncode != 0
        assert LOCKED in second.stdout + second.stderr
        assert snapshot(workdir) == before
        release.touch()
        assert finish(first) == 0, log.read_text()[-3000:]
    finally:
        stop(first)
    for name in ("metrics.csv", "summary.md"):
        path = Path("results/tables") / name
        assert (workdir / path).read_bytes() == (reference / path).read_bytes()
    nothing = run_snakemake("-n", "--configfile", str(configfile), "--directory", str(workdir))
    assert "Nothing to be done" in nothing.stdout + nothing.stderr


# --- SLURM: retries with more resources, and a submit host that dies ----------------------------


def slurm_run(
    workdir: Path, configfile: Path, profile: Path, *targets: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        slurm_snakemake_cmd(
            workdir,
            configfile,
            "--workflow-profile",
            str(profile),
            *targets,
            snakefile=SLURM_FAULTS,
        ),
        cwd=workdir,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=SLURM_WORKFLOW_TIMEOUT + 30,
    )


def run_jobs(run_id: str, workdir: Path) -> dict[str, list[dict[str, str]]]:
    """The scheduler's records of one Snakemake run's jobs, by rule, in submission order."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for job in sorted(scheduler_jobs(), key=lambda job: int(job["JobId"])):
        if job.get("JobName") == run_id and job.get("WorkDir") == str(workdir):
            jobs.setdefault(job_rule(job), []).append(job)
    return jobs


def memory_mb(job: dict[str, str]) -> int:
    value = job["MinMemoryNode"]
    units = {"M": 1, "G": 1024, "T": 1024 * 1024}
    return int(float(value[:-1]) * units[value[-1]])


def minutes(job: dict[str, str]) -> int:
    hours, mins, secs = map(int, job["TimeLimit"].split(":"))
    return hours * 60 + mins + (secs > 0)


@pytest.fixture
def slurm_workdir(slurm_cluster, tmp_path) -> tuple[Path, Path, Path]:
    """(working directory, config file, profile) for the fixture workflow on the cluster, with
    the retries of profiles/slurm."""
    retries = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())["retries"]
    assert retries >= 1
    profile = overlay_profile(tmp_path / "profile", slurm_cluster, retries=retries)
    workdir = tmp_path / "work"
    workdir.mkdir()
    configfile = tmp_path / "config.yaml"
    hold = tmp_path / "hold"
    configfile.write_text(yaml.safe_dump({"need_mb": 300, "sleep_s": 75, "hold": str(hold)}))
    return workdir, configfile, profile


@pytest.mark.slurm
def test_slurm_retries_a_job_with_the_memory_and_time_its_attempt_asks_for(slurm_workdir):
    """needs_memory gets 200 MB and needs 300: it fails, and the retry asks for 400 MB;
    needs_time gets 1 minute and runs 75 s: SLURM stops it (TIMEOUT), and the retry asks for 2."""
    workdir, configfile, profile = slurm_workdir
    result = slurm_run(workdir, configfile, profile)
    output = result.stdout + result.stderr
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    if result.returncode != 0 and run_id:
        bounded(["scancel", "--name", run_id.group(1)], 30)
    assert result.returncode == 0, output[-6000:]
    jobs = run_jobs(run_id.group(1), workdir)

    memory = jobs["needs_memory"]
    assert [job["JobState"] for job in memory] == ["FAILED", "COMPLETED"], memory
    assert [memory_mb(job) for job in memory] == [200, 400]
    assert [minutes(job) for job in memory] == [5, 10]
    time_jobs = jobs["needs_time"]
    assert [job["JobState"] for job in time_jobs] == ["TIMEOUT", "COMPLETED"], time_jobs
    assert [minutes(job) for job in time_jobs] == [1, 2]
    for name in ("memory.txt", "time.txt"):
        assert (workdir / "out" / name).read_text() == "ok\n"
    # Each attempt has its own sbatch log (results/logs/slurm, profiles/slurm).
    for rule, attempts in jobs.items():
        for job in attempts:
            assert Path(job["StdOut"]).is_relative_to(workdir / "results" / "logs" / "slurm")
            assert Path(job["StdOut"]).exists(), (rule, job["StdOut"])


def crash_job(jobid: str) -> None:
    """Every process of a SLURM job on its node (this machine) stopped, then killed: as if the
    node went down. Nothing in the job gets to clean up, unlike `scancel`, where the job's own
    Snakemake removes the outputs of the job it was running."""
    listed = bounded(["scontrol", "listpids", jobid], 30)
    assert listed.returncode == 0, listed.stderr
    pids = [int(line.split()[0]) for line in listed.stdout.splitlines()[1:] if line.strip()]
    assert pids
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


@pytest.mark.slurm
def test_slurm_rerun_redoes_the_job_a_killed_snakemake_left_incomplete(slurm_workdir, tmp_path):
    """Snakemake dies (SIGKILL) while its job runs on the cluster, and the job's node dies
    with it: the output is half written and stays marked incomplete. (A job that goes on to
    finish records its own completion: the rerun then rightly trusts it.) The next run is
    refused until `--unlock`; without `rerun-incomplete` it refuses the output; with it
    (profiles/slurm) it submits the job again."""
    workdir, configfile, profile = slurm_workdir
    hold = Path(yaml.safe_load(configfile.read_text())["hold"])
    hold.touch()
    output = workdir / "out" / "held.txt"
    log = tmp_path / "killed.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            slurm_snakemake_cmd(
                workdir,
                configfile,
                "--workflow-profile",
                str(profile),
                "out/held.txt",
                snakefile=SLURM_FAULTS,
            ),
            cwd=workdir,
            env=job_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_file(output, SLURM_WORKFLOW_TIMEOUT, process)
    finally:
        stop(process)
    run_id = re.search(r"SLURM run ID: (\S+)", log.read_text()).group(1)
    orphans = run_jobs(run_id, workdir)["held"]
    assert [job["JobState"] for job in orphans] == ["RUNNING"]  # the cluster runs it on
    orphan = orphans[0]["JobId"]
    crash_job(orphan)
    assert wait_for_job(orphan, 120)["JobState"] != "COMPLETED"
    hold.unlink()
    assert output.read_text() == f"started {orphan}\n"  # half written

    locked = slurm_run(workdir, configfile, profile, "out/held.txt")
    assert locked.returncode != 0 and LOCKED in locked.stdout + locked.stderr
    unlock = slurm_run(workdir, configfile, profile, "--unlock")
    assert unlock.returncode == 0, unlock.stderr
    strict = tmp_path / "strict"  # the same profile without rerun-incomplete
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["rerun-incomplete"] = False
    strict.mkdir()
    (strict / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    refused = slurm_run(workdir, configfile, strict, "out/held.txt")
    assert refused.returncode != 0
    assert "IncompleteFilesException" in refused.stdout + refused.stderr

    rerun = slurm_run(workdir, configfile, profile, "out/held.txt")
    rerun_output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, rerun_output[-6000:]
    new_id = re.search(r"SLURM run ID: (\S+)", rerun_output).group(1)
    redone = run_jobs(new_id, workdir)["held"]
    assert [job["JobState"] for job in redone] == ["COMPLETED"]
    new = redone[0]["JobId"]
    assert output.read_text() == f"started {new}\ndone {new}\n"
