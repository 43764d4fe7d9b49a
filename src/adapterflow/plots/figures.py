"""Figures of the evaluation: per-task bars, a run-group × task heatmap, per-item distributions.

Every plot function builds a :class:`matplotlib.figure.Figure` without pyplot (no global state,
no GUI backend: PNG is rendered by Agg), saves it as ``{out_base}.png`` (150 dpi) and
``{out_base}.svg`` when ``out_base`` is given, and returns it so callers and tests can inspect
the axes. Output bytes are reproducible: the SVG carries no date and a fixed id salt. Bars
and heatmap rows are the run groups of :func:`adapterflow.report.tables.summarize`, labelled
with the model and the stage names a user wrote (``minilm wiki+news``); each stage level
(base, stage 1, stage 2) has one colour in every figure (:data:`STAGE_COLORS`).

Example:
    >>> import pandas as pd
    >>> from adapterflow.plots.figures import plot_task_bars
    >>> df = pd.DataFrame({
    ...     "run": ["base", "wiki-seed0", "wiki-seed1"], "model": "minilm",
    ...     "stage": ["base", "stage1", "stage1"], "seed": pd.array([None, 0, 1], dtype="Int64"),
    ...     "task": "lee50", "split": "test", "metric": "main_score", "value": [0.6, 0.7, 0.72]})
    >>> fig = plot_task_bars(df, "lee50")  # pass out_base to also write PNG and SVG
    >>> [round(float(bar.get_height()), 3) for bar in fig.axes[0].patches]  # one bar per run group
    [0.6, 0.71]
    >>> [tick.get_text().split() for tick in fig.axes[0].get_xticklabels()]  # model, stages
    [['minilm', 'base'], ['minilm', 'wiki']]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from adapterflow.io import FIGURE_FORMATS as FORMATS
from adapterflow.io import save_figure
from adapterflow.report.tables import (
    STAGES,
    EvalFileError,
    main_scores,
    read_eval,
    read_metrics,
    summarize,
)

logger = logging.getLogger(__name__)

STAGE_COLORS = {"base": "#7f7f7f", "stage1": "#1f77b4", "stage2": "#d62728"}
# Runs of one stage (seeds) share its colour and differ by line style.
_LINESTYLES = ("-", "--", ":", "-.")
_FALLBACK_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")

# The columns each per-item plot reads from a details CSV.
DETAIL_COLUMNS = {
    "retrieval": ("ndcg_at_10",),  # or the task's first cut-off: see _ndcg_column
    "sts": ("gold", "score"),
    "triplets": ("pos_score", "neg_score"),
    "anisotropy": ("cosine",),
}
DETAILS_SUFFIX = ".details.csv"


class DetailSpec(NamedTuple):
    """One per-item details CSV: which run (legend label) and task it belongs to."""

    label: str
    task: str
    task_kind: str
    path: Path


def _stage_style(labels: Sequence[str], stages: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Colour (by stage) and line style (by rank within its stage) of each run label."""
    styles: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for index, label in enumerate(labels):
        stage = stages.get(label)
        color = STAGE_COLORS.get(stage or "", _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])
        rank = seen.get(color, 0)
        seen[color] = rank + 1
        styles[label] = (color, _LINESTYLES[rank % len(_LINESTYLES)])
    return styles


def plot_task_bars(
    df: pd.DataFrame, task: str, out_base: str | os.PathLike[str] | None = None
) -> Figure:
    """Bars of one task's main score per run group (base, then stage-1 and stage-2 groups,
    labelled ``model`` over the stage names): height = mean over seeds, error bar = 95 % CI
    half-width, dots = the individual seeds. ``df`` is the tidy metrics table."""
    main = main_scores(df)
    main = main[main["task"] == task]
    if main.empty:
        raise ValueError(f"no main_score for task {task!r} in the metrics table")
    summary = summarize(df[df["task"] == task])[task]
    groups = list(summary.index)
    stage_of = dict(zip(main["group"], main["stage"], strict=True))
    fig = Figure(figsize=(max(3.5, 1.1 * len(groups) + 1.5), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    ax.bar(
        x,
        summary["mean"].to_numpy(),
        width=0.6,
        color=[STAGE_COLORS[stage_of[g]] for g in groups],
        alpha=0.75,
        edgecolor="black",
        linewidth=0.6,
    )
    ax.errorbar(
        x,
        summary["mean"].to_numpy(),
        yerr=summary["ci95"].to_numpy(),
        fmt="none",
        ecolor="black",
        capsize=4,
        linewidth=1,
    )
    for position, group in zip(x, groups, strict=True):
        values = main.loc[main["group"] == group, "value"].to_numpy()
        # Evenly spread, not random jitter: the same data always draws the same picture.
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(position + offsets, values, s=14, color="black", zorder=3, label="_nolegend_")
    # "model stages" on two lines: long stage names would otherwise overlap their neighbours.
    ax.set_xticks(x, [group.replace(" ", "\n", 1) for group in groups])
    ax.set_ylabel("main score")
    n = summary["n"].astype(int).tolist()
    ax.set_title(f"{task}: mean ± 95 % CI over seeds (n = {', '.join(map(str, n))})", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def plot_heatmap(
    df: pd.DataFrame,
    out_base: str | os.PathLike[str] | None = None,
    *,
    lower_is_better: Iterable[str] = (),
) -> Figure:
    """Run groups × tasks, each cell annotated with the mean main score over seeds.

    Tasks have different scales, so colour is relative within each column: the darkest cell
    is the best run group on that task. For tasks in ``lower_is_better`` (anisotropy) the
    colour scale is flipped and the column label carries an arrow.
    """
    summary = summarize(df)
    tasks = list(dict.fromkeys(summary.columns.get_level_values(0)))
    means = summary.xs("mean", axis=1, level=1)[tasks].to_numpy(dtype=float)
    lower = set(lower_is_better)
    shade = np.full_like(means, np.nan)
    for column, task in enumerate(tasks):
        values = means[:, column]
        if np.isnan(values).all():
            continue
        low, high = np.nanmin(values), np.nanmax(values)
        scaled = (values - low) / (high - low) if high > low else np.full_like(values, 0.5)
        shade[:, column] = 1 - scaled if task in lower else scaled
    groups = list(summary.index)
    fig = Figure(
        figsize=(max(4.0, 1.2 * len(tasks) + 2.5), max(2.0, 0.5 * len(groups) + 1.2)),
        layout="constrained",
    )
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(shade), cmap=cmap, vmin=0, vmax=1.25, aspect="auto")
    for row in range(len(groups)):
        for column in range(len(tasks)):
            value = means[row, column]
            text = "—" if np.isnan(value) else f"{value:.3f}"
            dark = not np.isnan(shade[row, column]) and shade[row, column] > 0.6
            ax.text(
                column,
                row,
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else "black",
            )
    labels = [f"{t} ↓" if t in lower else t for t in tasks]
    if len(tasks) > 4:
        ax.set_xticks(range(len(tasks)), labels, rotation=25, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(range(len(tasks)), labels)
    ax.set_yticks(range(len(groups)), groups)
    ax.set_title("mean main score (colour: rank within each task)", fontsize=9)
    colorbar = fig.colorbar(image, ax=ax, ticks=[0, 1], shrink=0.8)
    colorbar.ax.set_yticklabels(["worst", "best"])
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def _ndcg_column(columns: Iterable[str]) -> str:
    """The per-query nDCG column: ``ndcg_at_10``, else the single cut-off the task wrote."""
    found = sorted(
        (c for c in columns if c.startswith("ndcg_at_") and c[len("ndcg_at_") :].isdigit()),
        key=lambda c: int(c[len("ndcg_at_") :]),
    )
    return "ndcg_at_10" if "ndcg_at_10" in found or not found else found[0]


def _read_details(path: Path, task_kind: str) -> pd.DataFrame:
    if task_kind not in DETAIL_COLUMNS:
        raise ValueError(f"unknown task kind {task_kind!r}; expected one of {list(DETAIL_COLUMNS)}")
    frame = pd.read_csv(path)
    columns = DETAIL_COLUMNS[task_kind]
    if task_kind == "retrieval":
        # A task whose k_values lack 10 writes nDCG at its first cut-off instead.
        columns = (_ndcg_column(frame.columns),)
        frame.attrs["ndcg_column"] = columns[0]
    for column in columns:
        if column not in frame.columns:
            raise EvalFileError(path, f"missing column for a {task_kind} task", field=column)
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # 1-based, after the header
            raise EvalFileError(path, "not a number", line=line, field=column)
        frame[column] = values
    return frame


def _series(data: dict[str, pd.DataFrame], task_kind: str) -> dict[str, np.ndarray]:
    """The per-item values each distribution plot shows, NaN dropped."""
    values = {}
    for label, frame in data.items():
        if task_kind == "retrieval":
            column = frame[frame.attrs["ndcg_column"]]
        elif task_kind == "triplets":
            column = frame["pos_score"] - frame["neg_score"]
        else:
            column = frame["cosine"]
        array = column.to_numpy(dtype=float)
        values[label] = array[np.isfinite(array)]
    return values


def _ecdf_panel(
    ax: Axes, series: dict[str, np.ndarray], styles: dict, stat_name: str, stat
) -> None:
    # ECDFs of many runs stay readable where overlaid histograms turn to noise.
    for label, values in series.items():
        if values.size == 0:
            continue
        color, style = styles[label]
        text = f"{label} ({stat_name} {stat(values):.3f}, n={values.size})"
        ax.ecdf(values, color=color, linestyle=style, label=text)


def _histogram_panel(ax: Axes, series: dict[str, np.ndarray], styles: dict) -> None:
    kept = [values for values in series.values() if values.size]
    # Shared bins, or the runs' outlines could not be compared bar by bar.
    pooled = np.concatenate(kept) if kept else np.array([0.0, 1.0])
    bins = int(np.clip(np.sqrt(pooled.size / max(len(kept), 1)), 10, 40))
    edges = np.histogram_bin_edges(pooled, bins=bins)
    for label, values in series.items():
        if values.size == 0:
            continue
        color, style = styles[label]
        ax.hist(
            values,
            bins=edges,
            histtype="step",
            density=True,
            color=color,
            linestyle=style,
            linewidth=1.4,
            label=f"{label} (mean {values.mean():.3f}, n={values.size})",
        )


def plot_per_item(
    details_csvs: Mapping[str, str | os.PathLike[str]],
    task_kind: str,
    task: str,
    out_base: str | os.PathLike[str] | None = None,
    *,
    stages: Mapping[str, str] | None = None,
) -> Figure:
    """Per-query / per-item score distributions of one task, one series (or panel) per run.

    ``details_csvs`` maps a run label to its ``{task}.details.csv``; ``stages`` maps labels to
    stages to colour them like the other figures. By ``task_kind``:

    - retrieval: ECDF of each query's nDCG@10 (or nDCG at the task's first cut-off);
    - sts: cosine against the human score, one panel per run with Spearman's ρ;
    - triplets: ECDF of ``pos_score - neg_score`` (its height at 0 is the error rate);
    - anisotropy: histogram of the cosine of random pairs.
    """
    if not details_csvs:
        raise ValueError(f"no details CSV given for task {task!r}")
    data = {label: _read_details(Path(path), task_kind) for label, path in details_csvs.items()}
    labels = list(data)
    styles = _stage_style(labels, stages or {})
    if task_kind == "sts":
        columns = min(len(labels), 4)
        rows = -(-len(labels) // columns)
        fig = Figure(figsize=(2.8 * columns + 0.6, 2.6 * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
        for ax, label in zip(axes, labels, strict=False):
            frame = data[label].dropna(subset=["gold", "score"])
            color, _ = styles[label]
            ax.scatter(frame["gold"], frame["score"], s=6, alpha=0.5, color=color, linewidths=0)
            rho = (
                stats.spearmanr(frame["gold"], frame["score"]).statistic
                if len(frame) > 1
                else np.nan
            )
            ax.set_title(f"{label}\nSpearman ρ = {rho:.3f} (n={len(frame)})", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in axes[len(labels) :]:
            ax.set_visible(False)
        fig.supxlabel("human score (gold)", fontsize=9)
        fig.supylabel("cosine similarity", fontsize=9)
        fig.suptitle(f"{task}: model similarity vs human score per pair", fontsize=10)
    else:
        fig = Figure(figsize=(6.4, 3.8), layout="constrained")
        ax = fig.add_subplot()
        series = _series(data, task_kind)
        if task_kind == "retrieval":
            _ecdf_panel(ax, series, styles, "mean", np.mean)
            names = sorted({frame.attrs["ndcg_column"] for frame in data.values()})
            metric = " / ".join(name.replace("ndcg_at_", "nDCG@") for name in names)
            ax.set_xlabel(f"{metric} of a query")
            ax.set_ylabel("fraction of queries ≤ x")
            ax.set_xlim(-0.02, 1.02)
            ax.set_title(f"{task}: per-query {metric} (curve further right = better)", fontsize=10)
        elif task_kind == "triplets":
            _ecdf_panel(ax, series, styles, "accuracy", lambda v: float((v > 0).mean()))
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlabel("cos(anchor, positive) − cos(anchor, negative)")
            ax.set_ylabel("fraction of triplets ≤ x")
            ax.set_title(f"{task}: triplet margins (height at 0 = error rate)", fontsize=10)
        else:
            _histogram_panel(ax, series, styles)
            ax.set_xlabel("cosine of a random pair")
            ax.set_ylabel("density")
            ax.set_title(f"{task}: cosine of random pairs (lower = less anisotropic)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def details_beside_evals(csv_paths: Iterable[str | os.PathLike[str]]) -> list[DetailSpec]:
    """Describe each ``{task}.details.csv`` from the eval JSON beside it (``{task}.json``).

    Labels are run names, prefixed with ``{model}/`` when several models are present.
    """
    found = []
    for value in csv_paths:
        path = Path(value)
        if not path.name.endswith(DETAILS_SUFFIX):
            raise ValueError(f"{path}: a details file must be named {{task}}{DETAILS_SUFFIX}")
        task = path.name[: -len(DETAILS_SUFFIX)]
        beside = path.with_name(f"{task}.json")
        if not beside.is_file():
            raise EvalFileError(
                path, f"no eval JSON beside it ({beside.name}) to tell the task kind"
            )
        record = read_eval(beside)
        if record.task != task:
            raise EvalFileError(
                record.path, f"{record.task!r}, but the file name says {task!r}", field="task_name"
            )
        found.append((record, path))
    several = len({rec.model for rec, _ in found}) > 1
    return [
        DetailSpec(f"{rec.model}/{rec.run}" if several else rec.run, rec.task, rec.task_kind, path)
        for rec, path in found
    ]


def planned_figures(
    tasks: Iterable[str], per_item_tasks: Iterable[str], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Paths :func:`make_figures` writes, in the order it writes them.

    >>> [p.name for p in planned_figures(["news"], ["news"], "figs")][::2]  # each also .svg
    ['news_bars.png', 'heatmap.png', 'news_per_item.png']
    """
    out = Path(out_dir)
    bases = [out / f"{task}_bars" for task in sorted(tasks)] + [out / "heatmap"]
    bases += [out / f"{task}_per_item" for task in sorted(per_item_tasks)]
    return [Path(f"{os.fspath(base)}.{fmt}") for base in bases for fmt in FORMATS]


def make_figures(
    metrics_csv: str | os.PathLike[str],
    details: Iterable[tuple[str, str, str, str | os.PathLike[str]]],
    out_dir: str | os.PathLike[str],
    *,
    expected: Iterable[str | os.PathLike[str]] | None = None,
    tasks: Iterable[str] | None = None,
) -> list[Path]:
    """Write every figure into ``out_dir``; return the paths written.

    ``details`` holds ``(run label, task, task kind, csv path)`` tuples (see
    :func:`details_beside_evals`). Writes ``{task}_bars``, ``heatmap`` and ``{task}_per_item``,
    each as ``.png`` and ``.svg``, for every task of ``metrics_csv``. With ``expected`` (a
    rule's declared outputs) the plan must match it exactly, checked before anything is drawn:
    a figure Snakemake does not know of would be neither tracked nor cleaned up.
    """
    df = read_metrics(metrics_csv)
    specs = [DetailSpec(label, task, kind, Path(path)) for label, task, kind, path in details]
    kinds: dict[str, str] = {}
    for spec in specs:
        if kinds.setdefault(spec.task, spec.task_kind) != spec.task_kind:
            raise ValueError(
                f"task {spec.task!r} given as both {kinds[spec.task]!r} and {spec.task_kind!r}"
            )
    if tasks is not None:
        # metrics.csv holds every task; these figures are the encoders' (LM tasks have theirs).
        df = df[df["task"].isin(set(tasks))]
    tasks = sorted(df.loc[df["metric"] == "main_score", "task"].unique())
    missing = [task for task in tasks if task not in kinds]
    if missing:
        raise ValueError(f"no details CSV for task(s) {missing} of {metrics_csv}")
    plan = planned_figures(tasks, kinds, out_dir)
    if expected is not None:
        want = {Path(p).resolve() for p in expected}
        got = {p.resolve() for p in plan}
        if want != got:
            raise ValueError(
                "figures differ from the declared outputs: not made "
                f"{sorted(map(str, want - got))}, undeclared {sorted(map(str, got - want))}"
            )
    stages = dict(zip(df["run"], df["stage"], strict=True))
    stages |= {f"{m}/{r}": s for m, r, s in zip(df["model"], df["run"], df["stage"], strict=True)}
    out = Path(out_dir)
    written: list[Path] = []
    for task in tasks:
        written += save_figure(plot_task_bars(df, task), out / f"{task}_bars")
    anisotropic = [task for task in tasks if kinds.get(task) == "anisotropy"]
    written += save_figure(plot_heatmap(df, lower_is_better=anisotropic), out / "heatmap")
    for task in sorted(kinds):
        runs = sorted(
            (spec for spec in specs if spec.task == task),
            key=lambda s: (STAGES.index(stages.get(s.label, "stage2")), s.label),
        )
        csvs = {spec.label: spec.path for spec in runs}
        if len(csvs) < len(runs):
            labels = [spec.label for spec in runs]
            twice = sorted({label for label in labels if labels.count(label) > 1})
            raise ValueError(f"task {task!r}: run label(s) {twice} given for several details CSVs")
        fig = plot_per_item(csvs, kinds[task], task, stages=stages)
        written += save_figure(fig, out / f"{task}_per_item")
    assert written == plan, "planned_figures is out of step with make_figures"
    logger.info("figures: %d tasks, %d files → %s", len(tasks), len(written), out)
    return written


def figures_from_evals(
    metrics_csv: str | os.PathLike[str],
    details: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    expected: Iterable[str | os.PathLike[str]] | None = None,
    tasks: Iterable[str] | None = None,
) -> list[Path]:
    """Rule ``figures``: :func:`make_figures` with each ``{task}.details.csv`` of ``details``
    described by the eval JSON beside it (:func:`details_beside_evals`); return the paths
    written. ``expected`` are the rule's declared outputs, which the figures must match; none
    (or an empty list: a command line names no outputs) draws every planned figure. ``tasks``
    (None: all) are the tasks of ``metrics_csv`` to draw."""
    expected = list(expected or []) or None
    return make_figures(
        metrics_csv, details_beside_evals(details), out_dir, expected=expected, tasks=tasks
    )
