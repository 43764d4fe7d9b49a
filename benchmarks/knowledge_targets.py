"""The knowledge preset's targets: what SmolLM2-135M-Instruct learned and forgot, and how long
the preset took.

Runs ``configs/knowledge.yaml`` in ``--workdir`` (``--skip-run``: reads a finished run there
instead) and compares each stage-1+2 run group with the base model, from the run's
``results/tables/metrics.csv`` (mean and 95 % CI over seeds):

- rephrased-question keyword accuracy of stage 1+2 >= 0.50 (base is near 0 on invented facts);
- mirror (trained questions) keyword accuracy >= 0.90;
- RULER score on the forgetting NIAH set within 5 points of the base model;
- the whole preset in <= 20 min on 2 CPU cores.

Writes ``OUT.md`` (command, machine, versions, the numbers and the verdicts) and ``OUT.json``.

    python benchmarks/knowledge_targets.py --workdir /tmp/knowledge --cores 2
    python benchmarks/knowledge_targets.py --workdir /tmp/knowledge --skip-run --seconds 1500
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "configs" / "knowledge.yaml"
TARGETS = {"rephrased": 0.50, "mirror": 0.90, "ruler_drop": 5.0, "minutes": 20.0}


def run_preset(workdir: Path, cores: int) -> float:
    config = yaml.safe_load(PRESET.read_text())
    for block in config["qa"].values():
        for key in ("facts", "templates"):
            block[key] = str(REPO / block[key])
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "knowledge.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
         str(configfile), "-d", str(workdir), "--cores", str(cores), "--resources",
         f"gpu={cores}"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def group_scores(metrics: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    from adapterflow.eval.metrics import mean_ci95

    rows = metrics[(metrics["task"] == task) & (metrics["metric"] == metric)]
    out = []
    for group, part in rows.groupby("group", sort=False):
        mean, half = mean_ci95(part["value"].to_numpy(dtype=float))
        out.append({"group": group, "mean": mean, "ci95": half, "n": len(part)})
    return pd.DataFrame(out).set_index("group")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--skip-run", action="store_true", help="read a finished run")
    parser.add_argument("--seconds", type=float, help="wall time of a finished run (--skip-run)")
    parser.add_argument("--note", default="", help="a line about the machine's load")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/knowledge")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.skip_run else run_preset(args.workdir, args.cores)
    metrics = pd.read_csv(args.workdir / "results/tables/metrics.csv")
    stage2 = [g for g in metrics["group"].unique() if "+" in g]
    base = next(g for g in metrics["group"].unique() if g.endswith(" base"))

    tables, checks = {}, []
    for task, metric in [("facts-mirror", "keyword"), ("facts-rephrased", "keyword"),
                         ("facts-rephrased", "hybrid"), ("general", "keyword"),
                         ("niah-forget", "main_score")]:  # fmt: skip
        tables[f"{task} {metric}"] = group_scores(metrics, task, metric)
    for group in stage2:
        rephrased = tables["facts-rephrased keyword"].loc[group, "mean"]
        mirror = tables["facts-mirror keyword"].loc[group, "mean"]
        ruler = tables["niah-forget main_score"]
        drop = ruler.loc[base, "mean"] - ruler.loc[group, "mean"]
        checks += [
            (group, "rephrased keyword >= 0.50", round(rephrased, 3), rephrased >= 0.5),
            (group, "mirror keyword >= 0.90", round(mirror, 3), mirror >= 0.9),
            (group, "RULER within 5 points of base", round(drop, 2), drop <= 5.0),
        ]
    if seconds is not None:
        checks.append(("preset", "<= 20 min", round(seconds / 60, 1), seconds <= 1200))

    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "trl", "peft")}
    lines = [
        "# Knowledge preset: targets",
        "",
        f"Command: `python benchmarks/knowledge_targets.py {' '.join(argv or sys.argv[1:])}`",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.cores} cores used; {', '.join(f'{k} {v}' for k, v in versions.items())}.",
        *([args.note] if args.note else []),
        "",
        "| run group | " + " | ".join(tables) + " |",
        "|---|" + "---|" * len(tables),
    ]
    for group in tables["facts-mirror keyword"].index:
        cells = [
            f"{t.loc[group, 'mean']:.3f} ± {t.loc[group, 'ci95']:.3f}" if group in t.index else "—"
            for t in tables.values()
        ]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += ["", "| run group | target | value | met |", "|---|---|---|---|"]
    lines += [f"| {g} | {t} | {v} | {'yes' if ok else 'no'} |" for g, t, v, ok in checks]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "tables": {k: v.reset_index().to_dict("records") for k, v in tables.items()},
                "checks": [
                    dict(zip(("group", "target", "value", "met"), c, strict=True)) for c in checks
                ],  # fmt: skip
            },
            indent=2,
            default=float,
        )
        + "\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
