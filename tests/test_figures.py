"""Figures: valid PNG + SVG files, one bar per run group, stage colours, reproducible bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from test_tables import STRATEGY_RUNS, TASKS, main_score, make_eval_tree, write_runs

from adapterflow.plots.figures import (
    STAGE_COLORS,
    details_beside_evals,
    make_figures,
    plot_heatmap,
    plot_per_item,
    plot_task_bars,
    save_figure,
)
from adapterflow.report.tables import EvalFileError, collect_metrics, write_tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GROUPS = ["minilm base", "minilm stage1", "minilm stage1+stage2"]


def assert_valid_images(out_base: Path) -> None:
    png, svg = Path(f"{out_base}.png"), Path(f"{out_base}.svg")
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"


@pytest.fixture
def tree(tmp_path) -> list[Path]:
    return make_eval_tree(tmp_path)


@pytest.fixture
def metrics(tree):
    return collect_metrics(tree)


def test_task_bars_one_bar_per_group_with_ci_and_seed_dots(tmp_path, metrics):
    fig = plot_task_bars(metrics, "lee50", tmp_path / "lee50_bars")
    ax = fig.axes[0]
    assert [tick.get_text().replace("\n", " ") for tick in ax.get_xticklabels()] == GROUPS
    bars = ax.patches
    assert len(bars) == len(GROUPS)
    expected = [
        main_score("lee50", "base", None),
        np.mean([main_score("lee50", "stage1", s) for s in (0, 1, 2)]),
        np.mean([main_score("lee50", "stage2", s) for s in (0, 1, 2)]),
    ]
    assert [bar.get_height() for bar in bars] == pytest.approx(expected)
    assert [to_hex(bar.get_facecolor()[:3]) for bar in bars] == list(STAGE_COLORS.values())
    dots = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert dots == 1 + 3 + 3  # every seed of every run shown
    assert_valid_images(tmp_path / "lee50_bars")


def test_bars_and_heatmap_show_the_stage_names_of_each_experiment(tmp_path):
    df = collect_metrics(write_runs(tmp_path, STRATEGY_RUNS))
    names = ["base", "heading", "ict", "qrels", "random"]
    ax = plot_task_bars(df, "lee50").axes[0]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == [f"minilm\n{n}" for n in names]
    colors = [to_hex(bar.get_facecolor()[:3]) for bar in ax.patches]
    assert colors == [STAGE_COLORS["base"]] + [STAGE_COLORS["stage1"]] * 4
    rows = [t.get_text() for t in plot_heatmap(df).axes[0].get_yticklabels()]
    assert rows == [f"minilm {n}" for n in names]


def test_unknown_task_is_an_error(metrics):
    with pytest.raises(ValueError, match="no main_score for task 'nope'"):
        plot_task_bars(metrics, "nope")


def test_heatmap_of_an_undefined_score_shows_a_dash(metrics):
    undefined = metrics.assign(value=np.where(metrics["task"] == "lee50", np.nan, metrics["value"]))
    ax = plot_heatmap(undefined).axes[0]
    assert [t.get_text() for t in ax.texts].count("—") == len(GROUPS)


def test_heatmap_groups_by_tasks_with_annotations(tmp_path, metrics):
    fig = plot_heatmap(metrics, tmp_path / "heatmap", lower_is_better=["aniso"])
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (len(GROUPS), len(TASKS))
    assert [t.get_text() for t in ax.get_yticklabels()] == GROUPS
    assert [t.get_text() for t in ax.get_xticklabels()] == ["aniso ↓", "lee50", "news", "trip"]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(GROUPS) * len(TASKS)
    assert f"{main_score('news', 'base', None):.3f}" in texts
    # Lower anisotropy is better: the base model (lowest gain → lowest cosine) is darkest.
    shade = ax.images[0].get_array()
    assert shade[0, 0] == 1.0 and shade[0, 1] == 0.0
    assert_valid_images(tmp_path / "heatmap")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_per_item_figure_for_every_task_kind(tmp_path, tree, task):
    root = tree[0].parents[2]
    runs = ["base", "stage1-seed0", "stage1+stage2-seed1"]
    csvs = {run: root / "minilm" / run / f"{task}.details.csv" for run in runs}
    stages = {"base": "base", "stage1-seed0": "stage1", "stage1+stage2-seed1": "stage2"}
    fig = plot_per_item(csvs, TASKS[task], task, tmp_path / f"{task}_per_item", stages=stages)
    assert_valid_images(tmp_path / f"{task}_per_item")
    if TASKS[task] == "sts":
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == len(runs)
        assert [ax.get_title().splitlines()[0] for ax in panels] == runs
        assert all("Spearman ρ" in ax.get_title() for ax in panels)
    else:
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert [text.split(" (")[0] for text in legend] == runs
    if TASKS[task] == "retrieval":
        colors = [to_hex(line.get_color()) for line in fig.axes[0].get_lines()]
        assert colors == list(STAGE_COLORS.values())


def test_retrieval_without_cutoff_10_uses_the_first_cutoff(tmp_path):
    path = tmp_path / "news.details.csv"
    path.write_text("query_id,ndcg_at_5,recall_at_5\nq1,0.5,1\nq2,1.0,1\n")
    fig = plot_per_item({"base": path}, "retrieval", "news", stages={"base": "base"})
    assert fig.axes[0].get_xlabel() == "nDCG@5 of a query"
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "base (mean 0.750, n=2)"


def test_per_item_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "news.details.csv"
    path.write_text("query_id,recall_at_10\nq1,1.0\n")
    with pytest.raises(EvalFileError, match=rf"^{path}: field 'ndcg_at_10': missing column"):
        plot_per_item({"base": path}, "retrieval", "news")
    path.write_text("i,j,cosine\n0,1,0.5\n0,2,high\n")
    with pytest.raises(EvalFileError, match=rf"^{path}:3: field 'cosine': not a number"):
        plot_per_item({"base": path}, "anisotropy", "aniso")


def test_saved_bytes_are_reproducible(tmp_path, metrics):
    first = save_figure(plot_task_bars(metrics, "news"), tmp_path / "a")
    second = save_figure(plot_task_bars(metrics, "news"), tmp_path / "b")
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.suffix


def test_details_beside_evals_reads_run_and_kind_from_json(tree):
    csv = tree[0].with_name("lee50.details.csv")
    (spec,) = details_beside_evals([csv])
    assert (spec.label, spec.task, spec.task_kind, spec.path) == ("base", "lee50", "sts", csv)
    with pytest.raises(ValueError, match="must be named"):
        details_beside_evals([tree[0]])


def test_make_figures_writes_every_figure(tmp_path, tree):
    write_tables(tree, tmp_path / "metrics.csv", tmp_path / "summary.md")
    details = details_beside_evals(sorted(tree[0].parents[1].glob("*/*.details.csv")))
    written = make_figures(tmp_path / "metrics.csv", details, tmp_path / "figures")
    names = sorted(path.name for path in written)
    expected = sorted(
        [f"{task}_{kind}.{ext}" for task in TASKS for kind in ("bars", "per_item")
         for ext in ("png", "svg")] + ["heatmap.png", "heatmap.svg"]
    )  # fmt: skip
    assert names == expected
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == expected
    for path in written:
        if path.suffix == ".png":
            assert_valid_images(path.with_suffix(""))


def test_make_figures_needs_details_for_every_task(tmp_path, tree):
    write_tables(tree, tmp_path / "metrics.csv", tmp_path / "summary.md")
    details = details_beside_evals([tree[0].with_name("lee50.details.csv")])
    with pytest.raises(ValueError, match=r"no details CSV for task\(s\) \['aniso', 'news', 'trip'"):
        make_figures(tmp_path / "metrics.csv", details, tmp_path / "figures")
