"""Retrieval metrics: adapterflow's ``retrieval_metrics`` (pytrec_eval) against its NumPy past.

``retrieval_metrics`` computes nDCG, recall, MRR, MAP and precision at k with pytrec_eval
(trec_eval). Until it did, adapterflow had its own vectorised NumPy implementation of the same
trec_eval semantics; this measures whether pytrec_eval is fast enough to replace it. Both run in
one process on the same qrels and run: the shape of the default config's news retrieval task
(754 test queries, each with its top 100 of 3,722 documents and one relevant document) and of a
large BEIR split (10,000 queries x top 100). Scores are float32 cosines, as the workflow's exact
search returns them. The NumPy implementation is read from git (``--baseline-rev``, the last
commit that had it); the bare ``pytrec_eval`` call (no input checks or renaming) is timed too.

Writes ``OUT.md`` (a table with the command, machine, versions and numbers) and ``OUT.json``.

    python benchmarks/retrieval_metrics.py --repeats 7
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytrec_eval

from adapterflow.eval.metrics import retrieval_metrics

K_VALUES = (1, 5, 10, 100)
#: The last commit whose ``retrieval_metrics`` was adapterflow's own NumPy implementation.
BASELINE_REV = "9560134f3503c564e115f77ed533823e5c838e1a"
PACKAGES = ("pytrec_eval-terrier", "numpy", "scipy")
SHAPES = {"default news task": (754, 100, 3722), "large BEIR split": (10_000, 100, 50_000)}


def collection(n_queries: int, depth: int, n_docs: int, seed: int = 0) -> tuple[dict, dict]:
    """Qrels (one relevant document per query, in its top ``depth`` two times in three) and a
    run of ``depth`` float32 scores per query."""
    rng = np.random.default_rng(seed)
    ids = [f"doc{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        picks = rng.choice(n_docs, size=depth, replace=False)
        scores = np.sort(rng.random(depth, dtype=np.float32))[::-1]
        run[f"q{q}"] = {ids[p]: float(s) for p, s in zip(picks, scores, strict=True)}
        relevant = picks[rng.integers(depth)] if rng.random() < 2 / 3 else rng.integers(n_docs)
        qrels[f"q{q}"] = {ids[relevant]: 1}
    return qrels, run


def baseline(rev: str) -> Callable | None:
    """``retrieval_metrics`` of ``src/adapterflow/eval/metrics.py`` at git revision ``rev``."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:src/adapterflow/eval/metrics.py"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("adapterflow_numpy_metrics")
    exec(compile(source, f"{rev[:7]}:metrics.py", "exec"), module.__dict__)
    return module.retrieval_metrics


def bare_pytrec_eval(qrels: dict, run: dict, ks=K_VALUES) -> dict:
    cut = ",".join(map(str, ks))
    measures = {f"ndcg_cut.{cut}", f"recall.{cut}", f"map_cut.{cut}", f"P.{cut}", "recip_rank"}
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cores} CPU cores, {memory:.0f} GiB"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each (median)")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--out", default="benchmarks/results/retrieval_metrics")
    args = parser.parse_args(argv)

    candidates: dict[str, Callable[[dict, dict], Any]] = {
        "adapterflow retrieval_metrics (pytrec_eval)": lambda q, r: retrieval_metrics(
            q, r, K_VALUES
        ),
        "bare pytrec_eval evaluate": bare_pytrec_eval,
    }
    numpy_version = baseline(args.baseline_rev)
    if numpy_version is not None:
        candidates[f"NumPy implementation ({args.baseline_rev[:7]})"] = lambda q, r: numpy_version(
            q, r, K_VALUES
        )

    load_before = os.getloadavg()[0]
    shapes: dict[str, Any] = {}
    for shape, (n_queries, depth, n_docs) in SHAPES.items():
        qrels, run = collection(n_queries, depth, n_docs)
        seconds: dict[str, list[float]] = {name: [] for name in candidates}
        means: dict[str, dict[str, float]] = {}
        for repeat in range(args.repeats + 1):  # the first is a warm-up
            names = list(candidates) if repeat % 2 == 0 else list(reversed(candidates))
            for name in names:
                started = time.perf_counter()
                output = candidates[name](qrels, run)
                if repeat:
                    seconds[name].append(time.perf_counter() - started)
                if isinstance(output, tuple):
                    means[name] = output[0]
        ours, *others = means  # the implementations that return (mean, per_query)
        diff = max(
            (abs(means[ours][m] - means[other][m]) for other in others for m in means[ours]),
            default=0.0,
        )
        shapes[shape] = {
            "queries": n_queries,
            "depth": depth,
            "documents": n_docs,
            "median_ms": {n: round(1000 * statistics.median(s), 1) for n, s in seconds.items()},
            "ms": {n: [round(1000 * t, 1) for t in s] for n, s in seconds.items()},
            "ndcg_at_10": round(means[ours]["ndcg_at_10"], 6),
            "max_abs_diff_of_means": diff,
        }
    load_after = os.getloadavg()[0]
    result = {
        "command": " ".join(
            ["python benchmarks/retrieval_metrics.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine(),
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "k_values": list(K_VALUES),
        "repeats": args.repeats,
        "shapes": shapes,
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
    }
    write_results(Path(args.out), result)
    print(json.dumps(result, indent=2))
    return result


def write_results(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())
    sections = []
    for shape, numbers in result["shapes"].items():
        rows = "\n".join(
            f"| {name} | {numbers['median_ms'][name]} | "
            f"{', '.join(f'{t:.1f}' for t in numbers['ms'][name])} |"
            for name in numbers["median_ms"]
        )
        sections.append(
            f"""## {shape}: {numbers["queries"]} queries x top {numbers["depth"]} \
of {numbers["documents"]} documents

| implementation | median ms | ms per run (in order) |
| --- | ---: | --- |
{rows}

nDCG@10 {numbers["ndcg_at_10"]}; max abs difference of the mean metrics between the \
implementations: {numbers["max_abs_diff_of_means"]:.1e}.
"""
        )
    body = "\n".join(sections)
    out.with_suffix(".md").write_text(
        f"""# Retrieval metrics: `retrieval_metrics` (pytrec_eval) vs the earlier NumPy version

Same process and inputs; nDCG, recall, MRR, MAP and precision at k = \
{", ".join(map(str, result["k_values"]))}; the order of the implementations alternates on \
every repeat; median of {result["repeats"]} timed runs after a warm-up.

- command: `{result["command"]}`
- machine: {result["machine"]}
- versions: Python {result["python"]}, {versions}

{body}
1-minute load average: {result["load_average_1min"]["before"]} before the timed runs, \
{result["load_average_1min"]["after"]} after (other processes sharing the cores slow every \
implementation alike).
"""
    )


if __name__ == "__main__":
    main()
