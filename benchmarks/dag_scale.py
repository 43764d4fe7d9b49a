"""DAG scale: how long Snakemake takes to plan a large grid, and to find nothing to do.

1. **Dry-run of a large grid.** A synthetic config in a temporary directory: ``--models``
   model names (all the same all-MiniLM-L6-v2), ``--datasets`` retrieval datasets (each the
   tiny local fixture tests/fixtures/tiny_workflow/docs, so nothing downloads), one stage 1
   and ``--stage2`` stage-2 experiments per model, each over ``--seeds`` seeds, every run
   evaluated on every dataset. Timed: ``snakemake -n`` (wall seconds, jobs planned).
2. **No-op rerun.** A completed run, re-planned when nothing changed (``snakemake -n``, which
   finds nothing to do after checking every output's times, params, inputs and code). By
   default the completed runs are made with ``snakemake --touch`` over empty outputs (the
   jobs do not run, but Snakemake records their metadata as for real jobs) for the embedded
   default config (config.yaml, 67 jobs) and for the large grid; ``--completed DIR=CONFIG``
   adds a real completed run (e.g. one of tests/fixtures/tiny_workflow/config.yaml).

Targets: dry-run of >= 1,000 jobs in <= 10 s, no-op rerun of the default in <= 5 s.
Writes ``OUT.md`` (command, machine, versions, numbers) and ``OUT.json``.

    python benchmarks/dag_scale.py --repeats 3
    python benchmarks/dag_scale.py --profile /tmp/dag.prof   # cProfile of one dry-run too
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
FIXTURE = REPO / "tests" / "fixtures" / "tiny_workflow"
PACKAGES = ("snakemake", "snakemake-executor-plugin-slurm", "pyyaml", "jsonschema")
TARGET_DRY_RUN_S = 10.0
TARGET_NOOP_S = 5.0
MIN_JOBS = 1000


def grid_config(models: int, datasets: int, stage2: int, seeds: int) -> dict:
    """The synthetic grid: models x (stage 1 + stage2 experiments) x seeds, every run
    evaluated on every dataset's retrieval task."""
    tiny = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    names = [f"ds{i}" for i in range(datasets)]
    config = {
        "datasets": {
            name: {
                "source": {"kind": "local", "path": str(FIXTURE / "docs")},
                "prepare": {"format": "beir"},
            }
            for name in names
        },
        "models": {f"m{i}": dict(tiny["models"]["minilm"]) for i in range(models)},
        "tasks": {name: {"dataset": name, "kind": "retrieval"} for name in names},
        "pairs": {
            name: {"dataset": name, "strategy": "qrels", "options": {"split": "train"}}
            for name in names
        },
        "triplets": {
            name: {"pairs": name, "strategy": "random", "k": 1, "max_length": 32} for name in names
        },
        "stages": {
            f"st{i}": {"triplets": names[i % datasets], "max_steps": 10, "batch_size": 4}
            for i in range(stage2 + 1)
        },
        "experiments": {},
    }
    for m in range(models):
        for e in range(stage2):
            config["experiments"][f"m{m}-e{e}"] = {
                "model": f"m{m}",
                "stage1": "st0",
                "stage2": f"st{e + 1}",
                "evaluate": names,
                "seeds": list(range(seeds)),
            }
    return config


def snakemake(workdir: Path, configfile: Path, *args: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and output of one Snakemake call (a fresh
    process, as a user runs it). On a busy machine the CPU seconds are closer to the wall time
    the call would take on an idle one."""
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--configfile", str(configfile)]
    cmd += ["--directory", str(workdir), *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{output[-4000:]}")
    return seconds, cpu, output


def planned_jobs(output: str) -> int:
    """The 'total' of Snakemake's job stats table (0 when nothing is to be done)."""
    match = re.search(r"^total\s+(\d+)$", output, flags=re.MULTILINE)
    return int(match.group(1)) if match else 0


def timed_dry_runs(workdir: Path, configfile: Path, repeats: int) -> dict:
    seconds, cpu_seconds, jobs = [], [], set()
    snakemake(workdir, configfile, "-n")  # warm-up: file system cache, .pyc files
    for _ in range(repeats):
        elapsed, cpu, output = snakemake(workdir, configfile, "-n")
        seconds.append(elapsed)
        cpu_seconds.append(cpu)
        jobs.add(planned_jobs(output))
    assert len(jobs) == 1, jobs
    return {
        "jobs": jobs.pop(),
        "seconds": [round(s, 2) for s in seconds],
        "median_s": round(statistics.median(seconds), 2),
        "median_cpu_s": round(statistics.median(cpu_seconds), 2),
    }


def complete_by_touch(workdir: Path, configfile: Path) -> int:
    """Make `workdir` a completed run without running a job: every planned output created
    empty (directories for directory outputs), then `snakemake --touch` records each job's
    metadata in DAG order. Returns the number of jobs."""
    _, _, output = snakemake(workdir, configfile, "-n", "--forceall")
    jobs = planned_jobs(output)
    _, _, dag = snakemake(workdir, configfile, "--summary")
    directories = re.compile(
        r"^results/(raw|clean)/[^/]+$|^results/tokenized/[^/]+/[^/]+$|^results/adapters/"
    )
    for line in dag.splitlines()[1:]:
        path = line.split("\t")[0]
        if not path.startswith("results/"):
            continue
        target = workdir / path
        if directories.match(path):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    snakemake(workdir, configfile, "--touch", "--forceall", "--cores", "1", "--quiet", "all")
    return jobs


def noop_reruns(workdir: Path, configfile: Path, repeats: int) -> dict:
    result = timed_dry_runs(workdir, configfile, repeats)
    assert result["jobs"] == 0, f"{workdir} is not complete: {result['jobs']} jobs planned"
    return result


def profile_dry_run(workdir: Path, configfile: Path, out: Path) -> list[str]:
    """cProfile of one dry-run in a subprocess: the 20 costliest functions by cumulative time,
    then the 15 costliest of the workflow's own code (Snakefile, rules/, adapterflow)."""
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), str(SNAKEMAKE)]
    cmd += ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(configfile)]
    cmd += ["--directory", str(workdir), "-n", "--quiet"]
    subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True)
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative")
    ours = re.compile(r"(^|/)(Snakefile|rules/[^/]+\.smk|adapterflow/.+\.py)$")
    functions = stats.fcn_list  # type: ignore[attr-defined]
    lines = ["all code:"]
    for group in (functions[:20], [f for f in functions if ours.search(f[0])][:15]):
        for func in group:
            _, calls, own, cumulative, _ = stats.stats[func]  # type: ignore[attr-defined]
            where = func[0].replace(str(REPO) + "/", "")
            lines.append(
                f"{cumulative:8.2f} s cumulative {own:7.2f} s own {calls:8d} calls  "
                f"{where}:{func[2]}"
            )
        if len(lines) == 21:
            lines.append("the workflow's own code:")
    return lines


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cores} CPU cores, {memory:.0f} GiB"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--datasets", type=int, default=6)
    parser.add_argument("--stage2", type=int, default=4, help="stage-2 experiments per model")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument(
        "--completed",
        action="append",
        default=[],
        metavar="DIR=CONFIG",
        help="also time a no-op rerun of this completed run (repeatable)",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of one grid dry-run here")
    parser.add_argument(
        "--out",
        default="benchmarks/results/dag_scale",
        help="output path without suffix: writes OUT.md and OUT.json",
    )
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    result: dict = {
        "command": " ".join(["python benchmarks/dag_scale.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "grid": {
            "models": args.models,
            "datasets": args.datasets,
            "stage2_experiments_per_model": args.stage2,
            "seeds": args.seeds,
        },
        "targets": {"dry_run_s": TARGET_DRY_RUN_S, "noop_rerun_s": TARGET_NOOP_S},
        "noop_reruns": {},
    }
    with tempfile.TemporaryDirectory(prefix="dag-scale-") as tmp:
        root = Path(tmp)
        grid = root / "grid"
        grid.mkdir()
        grid_file = root / "grid.yaml"
        grid_config_ = grid_config(args.models, args.datasets, args.stage2, args.seeds)
        grid_file.write_text(yaml.safe_dump(grid_config_, sort_keys=False))

        dry = timed_dry_runs(grid, grid_file, args.repeats)
        if dry["jobs"] < MIN_JOBS:
            parser.error(f"the grid plans {dry['jobs']} jobs, fewer than {MIN_JOBS}: enlarge it")
        result["dry_run"] = dry
        print(f"dry-run: {dry['jobs']} jobs in {dry['median_s']} s (median)", flush=True)
        if args.profile:
            result["profile"] = profile_dry_run(grid, grid_file, args.profile)
            print("\n".join(result["profile"]), flush=True)

        default = root / "default"
        default.mkdir()
        default_jobs = complete_by_touch(default, REPO / "config.yaml")
        noop = noop_reruns(default, REPO / "config.yaml", args.repeats)
        result["noop_reruns"]["default config.yaml (touched)"] = {**noop, "jobs_done": default_jobs}
        print(f"no-op rerun, default: {noop['median_s']} s", flush=True)

        grid_jobs = complete_by_touch(grid, grid_file)
        noop = noop_reruns(grid, grid_file, args.repeats)
        result["noop_reruns"]["large grid (touched)"] = {**noop, "jobs_done": grid_jobs}
        print(f"no-op rerun, grid: {noop['median_s']} s", flush=True)

        for spec in args.completed:
            directory, _, config = spec.partition("=")
            copy = root / f"completed-{len(result['noop_reruns'])}"
            shutil.copytree(directory, copy, symlinks=True)
            noop = noop_reruns(copy, Path(config).resolve(), args.repeats)
            result["noop_reruns"][f"completed run {Path(directory).name} ({config})"] = noop
    result["load_average_1min"] = {
        "before": round(load_before, 2),
        "after": round(os.getloadavg()[0], 2),
    }
    write_results(Path(args.out), result)
    print(json.dumps({k: v for k, v in result.items() if k != "profile"}, indent=2))
    return result


def write_results(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())
    grid, dry = result["grid"], result["dry_run"]
    rows = [
        f"| `snakemake -n`, large grid | {dry['jobs']} planned | {dry['median_s']} | "
        f"{dry['median_cpu_s']} | {', '.join(f'{s:.2f}' for s in dry['seconds'])} | "
        f"≤ {result['targets']['dry_run_s']:g} |"
    ]
    for name, noop in result["noop_reruns"].items():
        jobs = f"{noop['jobs_done']} done, 0 planned" if "jobs_done" in noop else "0 planned"
        rows.append(
            f"| no-op rerun (`snakemake -n`), {name} | {jobs} | {noop['median_s']} | "
            f"{noop['median_cpu_s']} | {', '.join(f'{s:.2f}' for s in noop['seconds'])} | "
            f"≤ {result['targets']['noop_rerun_s']:g} |"
        )
    table = "\n".join(rows)
    profile = ""
    if result.get("profile"):
        profile = "\n\ncProfile of one grid dry-run (cumulative):\n\n```\n"
        profile += "\n".join(result["profile"]) + "\n```\n"
    out.with_suffix(".md").write_text(
        f"""# DAG scale: planning a large grid and a no-op rerun

Each number is the wall time of a fresh `snakemake` process (start-up, parsing, config
validation, DAG, output checks), median of the timed runs after one warm-up. The large grid:
{grid["models"]} models x {grid["datasets"]} datasets (tasks) x (1 stage 1 +
{grid["stage2_experiments_per_model"]} stage-2 experiments) x {grid["seeds"]} seeds, local
fixture datasets. "Touched" runs are completed with `snakemake --touch` over empty outputs.

- command: `{result["command"]}`
- machine: {result["machine"]}
- versions: Python {result["python"]}, {versions}

| what | jobs | median wall s | median CPU s | wall seconds per run | target s |
| --- | ---: | ---: | ---: | --- | ---: |
{table}

1-minute load average: {result["load_average_1min"]["before"]} before,
{result["load_average_1min"]["after"]} after; above the core count, other processes shared
the cores and the wall times are longer than on an idle machine, where they come close to the
CPU seconds (user + system time of the Snakemake process).{profile}
"""
    )


if __name__ == "__main__":
    main()
