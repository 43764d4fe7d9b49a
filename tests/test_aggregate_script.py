"""Step aggregate from the command line (`python -m adapterflow aggregate`) as a user runs it,
and scripts/aggregate.py as Snakemake runs it."""

from __future__ import annotations

import logging
import runpy
from types import SimpleNamespace

import pandas as pd
import pytest
from test_tables import RUNS, TASKS, make_eval_tree

from adapterflow.report.tables import COLUMNS

from conftest import REPO, run_step

SCRIPT = REPO / "scripts" / "aggregate.py"


@pytest.fixture(autouse=True)
def _restore_logging():
    # The Snakemake branch reconfigures the root logger in-process; leave pytest's as it was.
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


def run(*args: str, cwd=None):
    return run_step("aggregate", *args, timeout=120, cwd=cwd)


def inputs(evals) -> list[str]:
    return [arg for path in evals for arg in ("--input", f"evals={path}")]


def test_writes_metrics_csv_and_summary(tmp_path):
    make_eval_tree(tmp_path)
    evals = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("results/eval/*/*/*.json"))
    log = tmp_path / "results" / "logs" / "aggregate.log"
    result = run(
        *inputs(evals),
        "--output", "csv=results/tables/metrics.csv",
        "--output", "md=results/tables/summary.md",
        "--log", str(log),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    df = pd.read_csv(tmp_path / "results" / "tables" / "metrics.csv")
    assert df.columns.tolist() == COLUMNS
    assert set(df["run"]) == set(RUNS) and set(df["task"]) == set(TASKS)
    summary = (tmp_path / "results" / "tables" / "summary.md").read_text()
    assert "| minilm stage1+stage2 |" in summary
    assert f"tables: {len(evals)} eval files" in log.read_text()


def test_bad_json_exits_with_one_error_line_and_no_output(tmp_path):
    evals = make_eval_tree(tmp_path)
    evals[2].write_text('{"task_name": "lee50", "task_kind": "sts"}')
    csv, md = tmp_path / "t" / "metrics.csv", tmp_path / "t" / "summary.md"
    result = run(*inputs(evals), "--output", f"csv={csv}", "--output", f"md={md}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {evals[2]}: field 'run': missing"
    assert "Traceback" not in result.stderr
    assert not csv.exists() and not md.exists()


def test_snakemake_branch_reads_named_input_and_output(tmp_path, monkeypatch):
    evals = make_eval_tree(tmp_path)
    out = tmp_path / "tables"
    snakemake = SimpleNamespace(
        input=SimpleNamespace(evals=[str(p) for p in evals]),
        output=SimpleNamespace(csv=str(out / "metrics.csv"), md=str(out / "summary.md")),
        log=[str(tmp_path / "aggregate.log")],
    )
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": snakemake}, run_name="__main__")
    assert (out / "metrics.csv").exists() and (out / "summary.md").exists()
    snakemake.input.evals = str(evals[0])  # a one-file input arrives as a plain string
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": snakemake}, run_name="__main__")
    assert len(pd.read_csv(out / "metrics.csv")["task"].unique()) == 1


def test_help_runs():
    result = run("--help")
    assert result.returncode == 0 and "input: evals" in result.stdout
