"""Figures of the causal-LM track: answer scores per run group, scores per fact category, and
the training and evaluation loss of every adapter stage.

The causal-LM track fine-tunes a chat LM in stages (stage 1 on facts QA, stage 2 on
conversations) and evaluates the base model, stage 1 and stage 1+2 (several seeds each) on
``qa`` tasks (answers scored 0-1: keyword, semantic, hybrid) and ``ruler`` tasks (NIAH, RULER
score 0-100). Run groups are those of :mod:`adapterflow.report.tables` (``smollm2 base``,
``smollm2 facts``, ``smollm2 facts+chat``) in the same order: model, then base, stage-1 and
stage-2 groups, each level by name.

- :func:`plot_lm_bars`: one task; for ``qa`` one group of bars per run group, one bar per
  metric (mean over seeds, 95 % CI error bar, a dot per seed); for ``ruler`` the main-score
  bars of :func:`adapterflow.plots.figures.plot_task_bars`.
- :func:`plot_category_heatmap`: ``task · category`` × run group, the mean keyword score.
- :func:`plot_loss_curves`: one panel per adapter stage, train loss and the eval loss on the
  ``mirror`` and ``rephrased`` splits over steps; their gap is memorised wording, not facts.
- :func:`lm_figures`: rule ``plot_lm``, every figure saved as PNG and SVG
  (:func:`adapterflow.io.save_figure`: reproducible bytes).

Figures are built without pyplot (no global state; PNG rendered by Agg).

Example:
    >>> import pandas as pd
    >>> from adapterflow.plots.lm import plot_lm_bars
    >>> rows = [(run, stage, seed, metric, value)
    ...         for run, stage, seed, keyword in [("base", "base", None, 0.1),
    ...                                           ("facts-seed0", "stage1", 0, 0.6),
    ...                                           ("facts-seed1", "stage1", 1, 0.8)]
    ...         for metric, value in [("main_score", keyword), ("keyword", keyword),
    ...                               ("hybrid", keyword / 2)]]
    >>> df = pd.DataFrame(rows, columns=["run", "stage", "seed", "metric", "value"]).assign(
    ...     model="lm", task="facts_qa", split="rephrased",
    ...     seed=lambda d: d["seed"].astype("Int64"))
    >>> fig = plot_lm_bars(df, "facts_qa")  # no semantic score here: that bar is left out
    >>> [round(float(bar.get_height()), 3) for bar in fig.axes[0].patches]  # keyword, hybrid
    [0.1, 0.7, 0.05, 0.35]
    >>> [tick.get_text().replace("\\n", " ") for tick in fig.axes[0].get_xticklabels()]
    ['lm base', 'lm facts']
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from adapterflow.errors import DataError
from adapterflow.eval.metrics import mean_ci95
from adapterflow.io import FIGURE_FORMATS as FORMATS
from adapterflow.io import save_figure
from adapterflow.plots.figures import STAGE_COLORS, plot_task_bars
from adapterflow.report.tables import (
    MAIN_SCORE,
    PREFERRED_SPLIT,
    STAGES,
    EvalFileError,
    group_label,
    main_scores,
    read_eval,
    read_metrics,
    with_groups,
)

logger = logging.getLogger(__name__)

LM_TASK_KINDS = ("qa", "ruler")
QA_METRICS = ("keyword", "semantic", "hybrid")
# Not the stage colours: in these figures colour is the metric or the loss series, and a
# metric drawn in stage-1 blue would read as a stage.
METRIC_COLORS = {
    "keyword": "#2ca02c",
    "semantic": "#9467bd",
    "hybrid": "#ff7f0e",
    "keyword_recall": "#8c564b",
    "cosine": "#17becf",
}
SERIES_COLORS = {"train": "#333333", "mirror": "#2ca02c", "rephrased": "#ff7f0e"}
_FALLBACK_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf")
TRAIN_LOG = "train_log.jsonl"
_SEED_DIR = re.compile(r"^seed\d+$")


def _choose_split(splits: Iterable[str], task: str) -> str:
    """The split whose scores are shown: ``test`` when there are several, as in the tables."""
    splits = sorted(set(splits))
    if PREFERRED_SPLIT in splits or not splits:
        return PREFERRED_SPLIT
    if len(splits) == 1:
        return splits[0]
    raise ValueError(
        f"task {task!r} has splits {splits} and none is {PREFERRED_SPLIT!r}: "
        "cannot choose the one to plot"
    )


def _mean_ci(values: Sequence[float]) -> tuple[float, float]:
    # An undefined score must stay visible as a missing bar, not fail the whole figure.
    array = np.asarray(values, dtype=float)
    if array.size == 0 or not np.isfinite(array).all():
        return np.nan, np.nan
    return mean_ci95(array.tolist())


def _is_qa(df: pd.DataFrame, task: str) -> bool:
    metrics = set(df.loc[df["task"] == task, "metric"])
    return bool(metrics & {"keyword", "keyword_recall", "semantic", "hybrid"})


def _stage_legend(ax, stages: Iterable[str]) -> None:
    present = [stage for stage in STAGES if stage in set(stages)]
    handles = [Patch(facecolor=STAGE_COLORS[s], alpha=0.75, edgecolor="black") for s in present]
    ax.legend(handles, present, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot_lm_bars(
    df: pd.DataFrame,
    task: str,
    metrics: Sequence[str] = QA_METRICS,
    out_base: str | os.PathLike[str] | None = None,
    *,
    kind: str | None = None,
) -> Figure:
    """Bars of one causal-LM task per run group, from the tidy metrics table ``df``.

    ``kind`` is the task's kind (``qa`` or ``ruler``); None infers it: ``qa`` when ``df``
    holds answer scores (``keyword``, ...) for ``task``. A ``qa`` task gets one group of bars
    per run group (in the order of the tables) and one bar per metric of ``metrics`` that
    ``df`` has for the task (``semantic`` is absent without a scoring encoder): height = mean
    over seeds, error bar = 95 % CI half-width, dots = the seeds. ``ax.patches`` holds the bars
    metric by metric, each over the run groups. A ``ruler`` task gets the main-score bars of
    :func:`~adapterflow.plots.figures.plot_task_bars` (0-100), with a stage legend.
    """
    kind = kind or ("qa" if _is_qa(df, task) else "ruler")
    if kind not in LM_TASK_KINDS:
        raise ValueError(f"task {task!r}: kind {kind!r} is not one of {list(LM_TASK_KINDS)}")
    # Checks the run groups (one stage each, one run per seed) and gives their order.
    main = main_scores(df[df["task"] == task])
    if main.empty:
        raise ValueError(f"no {MAIN_SCORE} for task {task!r} in the metrics table")
    stage_of = dict(zip(main["group"], main["stage"], strict=True))
    if kind == "ruler":
        fig = plot_task_bars(df, task)
        ax = fig.axes[0]
        ax.set_ylabel("RULER score (0-100)")
        ax.set_ylim(0, 105)
        _stage_legend(ax, stage_of.values())
        if out_base is not None:
            save_figure(fig, out_base)
        return fig
    groups = list(dict.fromkeys(main["group"]))
    rows = with_groups(
        df[
            (df["task"] == task)
            & (df["split"] == _choose_split(df.loc[df["task"] == task, "split"], task))
        ]
    )
    shown = [m for m in metrics if (rows["metric"] == m).any()]
    if not shown:
        raise ValueError(f"qa task {task!r} has none of the metrics {list(metrics)}")
    fig = Figure(
        figsize=(max(4.5, (0.32 * len(shown) + 0.5) * len(groups) + 2.8), 3.8),
        layout="constrained",
    )
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    width = 0.8 / len(shown)
    counts = []
    for index, metric in enumerate(shown):
        positions = x - 0.4 + width * (index + 0.5)
        values = [
            rows.loc[(rows["metric"] == metric) & (rows["group"] == g), "value"].to_numpy()
            for g in groups
        ]
        means, halves = zip(*(_mean_ci(v) for v in values), strict=True)
        counts.append([len(v) for v in values])
        color = METRIC_COLORS.get(metric, _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])
        ax.bar(
            positions,
            means,
            width=width * 0.92,
            color=color,
            alpha=0.8,
            edgecolor="black",
            linewidth=0.5,
            label=metric,
        )
        ax.errorbar(
            positions, means, yerr=halves, fmt="none", ecolor="black", capsize=3, linewidth=0.9
        )
        for position, seeds in zip(positions, values, strict=True):
            # Evenly spread, not random jitter: the same data always draws the same picture.
            spread = np.linspace(-0.25, 0.25, len(seeds)) * width if len(seeds) > 1 else [0.0]
            ax.scatter(
                position + np.asarray(spread),
                seeds,
                s=9,
                color="black",
                zorder=3,
                label="_nolegend_",
            )
    # "model stages" on two lines, coloured by stage as the bars of the encoder figures are.
    ax.set_xticks(x, [group.replace(" ", "\n", 1) for group in groups])
    for tick, group in zip(ax.get_xticklabels(), groups, strict=True):
        tick.set_color(STAGE_COLORS.get(stage_of[group], "black"))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of answers correct (0-1)")
    n = ", ".join(str(max(column)) for column in zip(*counts, strict=True))
    ax.set_title(f"{task}: answer scores, mean ± 95 % CI over seeds (n = {n})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="metric")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def _empty(title: str, message: str) -> Figure:
    """A figure saying why there is nothing to draw: the rule declared it, so it must exist."""
    fig = Figure(figsize=(5.0, 2.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, wrap=True)
    return fig


def _entry(path: Path, task: str) -> dict:
    """The score entry of the split shown of an eval JSON that
    :func:`~adapterflow.report.tables.read_eval` has already checked."""
    scores = json.loads(path.read_text(encoding="utf-8"))["scores"]
    return scores[_choose_split(scores, task)][0]


def category_table(evals: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Mean keyword score over seeds of every ``task · category`` (rows, tasks and categories
    sorted) and run group (columns, in the order of the tables) of the ``qa`` eval JSONs
    ``evals``; NaN where a group has no score. Evals of other kinds and qa tasks without
    ``by_category`` are skipped; one run group and seed given twice for a task raises
    :class:`~adapterflow.report.tables.EvalFileError`.
    """
    rows: list[tuple[str, str, str, float]] = []
    order: dict[str, tuple] = {}
    seen: dict[tuple[str, str, int | None], Path] = {}
    for value in evals:
        record = read_eval(value)
        if record.task_kind != "qa":
            continue
        key = (record.group, record.task, record.seed)
        if key in seen:
            raise EvalFileError(
                record.path,
                f"run group {record.group!r}, seed {record.seed}, task {record.task!r} is "
                f"also in {seen[key]}",
                field="run",
            )
        seen[key] = record.path
        by_category = _entry(record.path, record.task).get("by_category")
        if not isinstance(by_category, dict) or not by_category:
            continue
        order[record.group] = (record.model, STAGES.index(record.stage), record.group)
        for category, stats in by_category.items():
            score = stats.get("keyword") if isinstance(stats, dict) else None
            # None: every record of the category lacked key terms; unscored, not wrong.
            score = np.nan if score is None else float(score)
            rows.append((record.group, record.task, str(category), score))
    groups = sorted(order, key=order.__getitem__)
    if not rows:
        return pd.DataFrame(index=pd.Index([], name="row"), columns=pd.Index(groups, name="group"))
    frame = pd.DataFrame(rows, columns=["group", "task", "category", "keyword"])
    # mean() skips NaN: a seed without a score does not blank the cell of the others.
    table = frame.groupby(["task", "category", "group"])["keyword"].mean().unstack("group")
    table = table.reindex(columns=groups).sort_index().astype(float)
    table.index = pd.Index([f"{task} · {category}" for task, category in table.index], name="row")
    return table


def plot_category_heatmap(
    evals: Iterable[str | os.PathLike[str]], out_base: str | os.PathLike[str] | None = None
) -> Figure:
    """Heatmap of :func:`category_table`: rows ``task · category``, columns run groups, each
    cell the mean keyword score over seeds (annotated; colour 0-1, grey with a dash where
    there is none). With no qa task that has categories, a figure saying so."""
    table = category_table(evals)
    if table.empty:
        fig = _empty("keyword score per category", "no qa task with per-category scores")
    else:
        values = table.to_numpy(dtype=float)
        fig = Figure(
            figsize=(max(4.5, 1.1 * table.shape[1] + 3.0), max(2.4, 0.32 * table.shape[0] + 1.6)),
            layout="constrained",
        )
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for row in range(values.shape[0]):
            for column in range(values.shape[1]):
                value = values[row, column]
                if np.isnan(value):
                    text, color = "—", "black"
                else:
                    # Both ends of RdYlGn are dark: white text there.
                    text, color = (
                        f"{value:.2f}",
                        "white" if value <= 0.15 or value >= 0.85 else "black",
                    )
                ax.text(column, row, text, ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(table.shape[1]), [g.replace(" ", "\n", 1) for g in table.columns])
        ax.set_yticks(range(table.shape[0]), list(table.index))
        ax.set_title("keyword score per fact category: mean over seeds", fontsize=9)
        colorbar = fig.colorbar(image, ax=ax, shrink=0.85)
        colorbar.set_label("keyword score (0-1)", fontsize=8)
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def read_train_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The losses of one ``train_log.jsonl``: columns ``series`` (``train`` or the eval split),
    ``step`` and ``loss``; rows without a loss are skipped, and a step logged twice keeps its
    last row. Raises :class:`~adapterflow.errors.DataError` naming the file and line."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, f"malformed JSON ({err.msg})", line=number) from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise DataError(path, "expected an object with an integer step", line=number)
        series, loss = (
            (row["split"], row.get("eval_loss")) if "split" in row else ("train", row.get("loss"))
        )
        if loss is not None:
            rows.append((str(series), row["step"], float(loss)))
    frame = pd.DataFrame(rows, columns=["series", "step", "loss"])
    return frame.drop_duplicates(["series", "step"], keep="last").reset_index(drop=True)


def loss_summary(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Per series and step, the ``mean``, ``min`` and ``max`` loss over the logs ``paths`` (one
    per seed) and ``n``, the logs that have that step; series ``train`` first, then
    ``mirror``, ``rephrased`` and any other eval split by name."""
    frames = [read_train_log(path) for path in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=["series", "step", "mean", "min", "max", "n"])
    summary = frame.groupby(["series", "step"])["loss"].agg(["mean", "min", "max", "count"])
    summary = summary.rename(columns={"count": "n"}).reset_index()
    rank = {name: index for index, name in enumerate(SERIES_COLORS)}
    summary["rank"] = summary["series"].map(lambda s: (rank.get(s, len(rank)), s))
    return summary.sort_values(["rank", "step"]).drop(columns="rank").reset_index(drop=True)


def plot_loss_curves(
    logs: Mapping[str, Sequence[str | os.PathLike[str]]],
    out_base: str | os.PathLike[str] | None = None,
) -> Figure:
    """One panel per run group (``logs``: label → its ``train_log.jsonl`` paths, one per seed;
    panels in that order): the train loss and the eval loss of each eval split (``mirror``,
    ``rephrased``) over steps, mean over seeds (``ax.lines``, in :func:`loss_summary` order)
    with a min-max band. The panel title gives the last gap rephrased − mirror: a large gap
    means the adapter learnt the training wording rather than the facts. A group without
    eval rows shows train loss only; no groups at all, a figure saying so."""
    if not logs:
        fig = _empty("loss curves", "no adapter was trained (base model only)")
        if out_base is not None:
            save_figure(fig, out_base)
        return fig
    columns = min(len(logs), 3)
    rows = -(-len(logs) // columns)
    fig = Figure(figsize=(4.2 * columns + 0.6, 3.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for ax, (label, paths) in zip(axes, logs.items(), strict=False):
        summary = loss_summary(list(paths))
        fallback = iter(_FALLBACK_COLORS * 4)
        for series, part in summary.groupby("series", sort=False):
            color = SERIES_COLORS.get(series) or next(fallback)
            name = "train loss" if series == "train" else f"eval loss · {series}"
            marker = None if series == "train" else "o"
            steps = part["step"].to_numpy()
            ax.plot(
                steps,
                part["mean"].to_numpy(),
                color=color,
                marker=marker,
                markersize=3,
                linewidth=1.3,
                label=name,
            )
            if int(part["n"].max()) > 1:
                ax.fill_between(
                    steps, part["min"], part["max"], color=color, alpha=0.18, linewidth=0
                )
        title = f"{label} (seeds: {len(paths)})"
        evals = summary[summary["series"].isin(["mirror", "rephrased"])]
        wide = evals.pivot(index="step", columns="series", values="mean").dropna()
        if {"mirror", "rephrased"} <= set(wide.columns) and not wide.empty:
            last = wide.iloc[-1]
            gap = last["rephrased"] - last["mirror"]
            title += f"\nstep {wide.index[-1]}: rephrased − mirror = {gap:+.3f}"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if not summary.empty:
            ax.legend(fontsize=7, loc="best")
    for ax in axes[len(logs) :]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("loss (mean over seeds, band: min-max)", fontsize=8)
    fig.suptitle("LM adapter loss: train, and eval on mirror vs rephrased questions", fontsize=10)
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def _lm_and_stages(path: str | os.PathLike[str]) -> tuple[str, str]:
    parts = Path(path).parts
    if parts and parts[-1] == TRAIN_LOG:
        parts = parts[:-1]
    if len(parts) < 3 or not _SEED_DIR.match(parts[-1]):
        raise ValueError(f"{path}: expected .../{{lm}}/{{stages}}/seed{{n}}/{TRAIN_LOG}")
    return parts[-3], parts[-2]


def log_group(path: str | os.PathLike[str]) -> str:
    """The run-group label (:func:`~adapterflow.report.tables.group_label`) of an adapter's
    train log ``.../{lm}/{stages}/seed{n}/train_log.jsonl`` or of its directory.

    >>> log_group("results/lm_adapters/smollm2/facts+chat/seed1/train_log.jsonl")
    'smollm2 facts+chat'
    """
    return group_label(*_lm_and_stages(path))


def _log_file(path: str | os.PathLike[str]) -> Path:
    # A rule can only depend on the adapter directory (a directory() output), not a file in it.
    path = Path(path)
    return path / TRAIN_LOG if path.is_dir() else path


def group_logs(train_logs: Iterable[str | os.PathLike[str]]) -> dict[str, list[Path]]:
    """The train logs by run group, groups in the order of the tables (model, stage 1 before
    stage 1+2, by name), each group's logs by path; a log given twice raises ValueError."""
    groups: dict[str, list[Path]] = {}
    keys: dict[str, tuple] = {}
    for value in train_logs:
        lm, stages = _lm_and_stages(value)
        label = group_label(lm, stages)
        path = _log_file(value)
        if path in groups.get(label, []):
            raise ValueError(f"train log {path} is given twice")
        groups.setdefault(label, []).append(path)
        # As the tables sort run groups: model, then stage 1 before stage 1+2, then by name.
        keys[label] = (lm, stages.count("+"), label)
    return {label: sorted(groups[label]) for label in sorted(groups, key=keys.__getitem__)}


def planned_lm_figures(tasks: Iterable[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Paths :func:`lm_figures` writes, in the order it writes them.

    >>> [p.name for p in planned_lm_figures(["niah", "facts_qa"], "figs")][::2]  # each also .svg
    ['facts_qa_bars.png', 'niah_bars.png', 'categories.png', 'loss_curves.png']
    """
    out = Path(out_dir)
    bases = [out / f"{task}_bars" for task in sorted(set(tasks))]
    bases += [out / "categories", out / "loss_curves"]
    return [Path(f"{os.fspath(base)}.{fmt}") for base in bases for fmt in FORMATS]


def lm_figures(
    metrics_csv: str | os.PathLike[str],
    evals: Iterable[str | os.PathLike[str]],
    train_logs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    expected: Iterable[str | os.PathLike[str]] | None = None,
) -> list[Path]:
    """Rule ``plot_lm``: write ``{task}_bars`` for every qa and ruler task of the eval JSONs
    ``evals``, ``categories`` (their qa tasks) and ``loss_curves`` (the adapters'
    ``train_logs``: ``train_log.jsonl`` paths, or the adapter directories holding them), each
    as PNG and SVG under ``out_dir``; return the paths written (:func:`planned_lm_figures`).

    The bars come from ``metrics_csv``, which must hold every such task. With ``expected`` (a
    rule's declared outputs; None or empty: anything planned) the plan must match it exactly,
    checked before anything is drawn: a figure Snakemake does not know of would be neither
    tracked nor cleaned up.
    """
    records = [read_eval(path) for path in evals]
    kinds: dict[str, str] = {}
    for record in records:
        if record.task_kind not in LM_TASK_KINDS:
            continue
        if kinds.setdefault(record.task, record.task_kind) != record.task_kind:
            raise EvalFileError(
                record.path,
                f"{record.task_kind!r}, but another eval says {kinds[record.task]!r} for "
                f"task {record.task!r}",
                field="task_kind",
            )
    plan = planned_lm_figures(kinds, out_dir)
    expected = list(expected or []) or None
    if expected is not None:
        want = {Path(p).resolve() for p in expected}
        got = {p.resolve() for p in plan}
        if want != got:
            raise ValueError(
                "LM figures differ from the declared outputs: not made "
                f"{sorted(map(str, want - got))}, undeclared {sorted(map(str, got - want))}"
            )
    df = read_metrics(metrics_csv)
    missing = sorted(set(kinds) - set(df.loc[df["metric"] == MAIN_SCORE, "task"]))
    if missing:
        raise ValueError(f"no {MAIN_SCORE} for task(s) {missing} in {metrics_csv}")
    logs = group_logs(train_logs)
    out = Path(out_dir)
    written: list[Path] = []
    for task in sorted(kinds):
        fig = plot_lm_bars(df, task, kind=kinds[task])
        written += save_figure(fig, out / f"{task}_bars")
    qa_evals = [record.path for record in records if record.task_kind == "qa"]
    written += save_figure(plot_category_heatmap(qa_evals), out / "categories")
    written += save_figure(plot_loss_curves(logs), out / "loss_curves")
    assert written == plan, "planned_lm_figures is out of step with lm_figures"
    logger.info(
        "LM figures: %d tasks, %d adapter groups, %d files → %s",
        len(kinds),
        len(logs),
        len(written),
        out,
    )
    return written
