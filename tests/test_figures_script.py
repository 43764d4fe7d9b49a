"""Step figures from the command line (`python -m adapterflow figures`) as a user runs it, and
scripts/figures.py as Snakemake runs it."""

from __future__ import annotations

import logging
import runpy
from types import SimpleNamespace

import pytest
from test_tables import TASKS, make_eval_tree

from adapterflow.report.tables import write_tables

from conftest import REPO, run_step

SCRIPT = REPO / "scripts" / "figures.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(metrics: str, details: list[str], out_dir: str, *args: str, cwd=None):
    inputs = [arg for path in details for arg in ("--input", f"details={path}")]
    return run_step(
        "figures", "--input", f"metrics={metrics}", *inputs, "--param", f"out_dir={out_dir}",
        *args, timeout=120, cwd=cwd,
    )  # fmt: skip


def expected_outputs(out: str = "results/figures") -> list[str]:
    """The rule's output list: per-task bars and item plots, one heatmap, PNG and SVG each."""
    names = [f"{task}_{kind}" for kind in ("bars", "per_item") for task in sorted(TASKS)]
    return [f"{out}/{name}.{ext}" for name in [*names, "heatmap"] for ext in ("png", "svg")]


@pytest.fixture
def workdir(tmp_path):
    """A results/ tree as the evaluate and aggregate rules leave it."""
    evals = make_eval_tree(tmp_path)
    tables = tmp_path / "results" / "tables"
    write_tables(evals, tables / "metrics.csv", tables / "summary.md")
    return tmp_path


@pytest.fixture(autouse=True)
def _restore_logging():
    # The Snakemake branch reconfigures the root logger in-process; leave pytest's as it was.
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


def details(workdir) -> list[str]:
    found = workdir.glob("results/eval/*/*/*.details.csv")
    return sorted(str(p.relative_to(workdir)) for p in found)


def test_writes_every_figure_from_the_command_line(workdir):
    result = run(
        "results/tables/metrics.csv", details(workdir), "results/figures",
        "--log", "results/logs/figures.log", cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(workdir)) for p in workdir.glob("results/figures/*"))
    assert written == sorted(expected_outputs())
    for name in written:
        data = (workdir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) if name.endswith(".png") else b"<svg" in data[:2000]
    assert "figures: 4 tasks, 18 files" in (workdir / "results/logs/figures.log").read_text()


def test_details_without_their_json_exit_with_one_error_line(workdir):
    csvs = details(workdir)
    (workdir / csvs[0].replace(".details.csv", ".json")).unlink()
    result = run("results/tables/metrics.csv", csvs, "figs", cwd=workdir)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: {csvs[0]}: no eval JSON beside it (aniso.json) to tell the task kind"
    assert "Traceback" not in result.stderr


def snakemake_object(workdir, outputs: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        input=SimpleNamespace(
            metrics=str(workdir / "results/tables/metrics.csv"),
            details=[str(workdir / p) for p in details(workdir)],
        ),
        output=outputs,
        params=SimpleNamespace(out_dir=str(workdir / "results/figures")),
        log=[str(workdir / "results/logs/figures.log")],
    )


def test_snakemake_branch_writes_exactly_the_declared_outputs(workdir):
    outputs = [str(workdir / p) for p in expected_outputs()]
    snakemake = snakemake_object(workdir, outputs)
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": snakemake}, run_name="__main__")
    assert sorted(str(p) for p in (workdir / "results/figures").iterdir()) == sorted(outputs)


def test_snakemake_branch_refuses_undeclared_figures(workdir):
    outputs = [str(workdir / p) for p in expected_outputs() if "heatmap" not in p]
    snakemake = snakemake_object(workdir, outputs)
    with pytest.raises(SystemExit, match=r"error: .*undeclared \[.*heatmap.png"):
        runpy.run_path(str(SCRIPT), init_globals={"snakemake": snakemake}, run_name="__main__")
    assert not (workdir / "results/figures").exists()  # refused before drawing anything
