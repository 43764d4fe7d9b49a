"""Long-context figures from a RULER-style evaluation: the depth × length heatmap.

:func:`plot_depth_length_heatmap` reads the per-item ``{task}.details.csv`` that
:func:`adapterflow.eval.generation.run_generation_evaluation` writes (columns ``length``,
``depth``, ``score`` and ``variant``) and draws the mean score (0-100) of every
(needle depth, context length) cell, each cell annotated with its value: where in the
context and from which length on a model stops finding the needle. Depth runs from the top
(start of the context) down, length from left to right, red (0) to green (100), a cell
without samples grey. Saved like every figure of the workflow
(:func:`adapterflow.io.save_figure`: ``{out_base}.png`` and ``.svg``,
reproducible bytes).

Example:
    >>> import pandas as pd
    >>> from adapterflow.plots.ruler import depth_length_table, plot_depth_length_heatmap
    >>> details = pd.DataFrame({"variant": "niah_single_1", "length": [512, 512, 1024, 1024],
    ...                         "depth": [0.0, 100.0, 0.0, 100.0], "score": [1.0, 1.0, 1.0, 0.0]})
    >>> means, counts = depth_length_table(details)
    >>> means.to_dict()
    {512: {0.0: 100.0, 100.0: 100.0}, 1024: {0.0: 100.0, 100.0: 0.0}}
    >>> fig = plot_depth_length_heatmap(details)  # pass out_base to also write PNG and SVG
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['100.0', '100.0', '100.0', '0.0']
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adapterflow.io import save_figure
from adapterflow.report.tables import EvalFileError

#: Columns the heatmap reads from a details CSV (``variant`` only when filtering by it).
HEATMAP_COLUMNS = ("length", "depth", "score")
CMAP = "RdYlGn"

logger = logging.getLogger(__name__)


def _format_length(length: int) -> str:
    """Token counts as RULER labels them: 4096 → ``4K``, 131072 → ``128K``, 1000 → ``1000``."""
    return f"{length // 1024}K" if length >= 1024 and length % 1024 == 0 else str(length)


def _read(details: str | os.PathLike[str] | pd.DataFrame, variant: str | None) -> pd.DataFrame:
    if isinstance(details, pd.DataFrame):
        frame, source = details.copy(), "<details>"
    else:
        source = Path(details)
        frame = pd.read_csv(source, keep_default_na=False, na_values=[""])
    columns = HEATMAP_COLUMNS + (("variant",) if variant is not None else ())
    for column in columns:
        if column not in frame.columns:
            raise EvalFileError(source, "missing column for a depth × length heatmap", field=column)
    for column in HEATMAP_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2  # 1-based, after the header
            raise EvalFileError(source, "not a number", line=line, field=column)
        frame[column] = values
    if variant is not None:
        frame = frame[frame["variant"].astype(str) == variant]
        if frame.empty:
            raise EvalFileError(source, f"no rows of variant {variant!r}", field="variant")
    if frame.empty:
        raise EvalFileError(source, "no rows to plot")
    return frame


def depth_length_table(
    details: str | os.PathLike[str] | pd.DataFrame, *, variant: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(means, counts)``: depth × length tables of the mean per-item score × 100 and of the
    number of items, from a details CSV (or its DataFrame), of one ``variant`` or all rows.
    Depths ascend down the rows, lengths across the columns; empty cells are NaN / 0."""
    frame = _read(details, variant)
    frame = frame.assign(length=frame["length"].astype(int), depth=frame["depth"].astype(float))
    grouped = frame.groupby(["depth", "length"])["score"]
    means = (grouped.mean() * 100).unstack("length").sort_index().sort_index(axis=1)
    counts = grouped.size().unstack("length", fill_value=0).reindex_like(means).fillna(0)
    means.columns.name = counts.columns.name = "length"
    return means, counts.astype(int)


def plot_depth_length_heatmap(
    details: str | os.PathLike[str] | pd.DataFrame,
    out_base: str | os.PathLike[str] | None = None,
    *,
    variant: str | None = None,
    label: str | None = None,
) -> Figure:
    """Depth × length heatmap of the mean score (0-100), every cell annotated.

    ``details`` is a details CSV of a generation evaluation (or its DataFrame); ``variant``
    keeps one variant's rows (default: all rows, pooled); ``label`` names the run or task in
    the title. Raises :class:`~adapterflow.report.tables.EvalFileError` naming the file, line
    and column for a missing column or a value that is not a number.
    """
    frame = _read(details, variant)
    means, counts = depth_length_table(frame)
    values = means.to_numpy(dtype=float)
    lengths = [int(n) for n in means.columns]
    depths = [float(d) for d in means.index]
    fig = Figure(
        figsize=(max(4.4, 0.75 * len(lengths) + 2.6), max(3.0, 0.34 * len(depths) + 1.6)),
        layout="constrained",
    )
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    fontsize = 8 if len(lengths) <= 8 else 6
    for row in range(len(depths)):
        for column in range(len(lengths)):
            value = values[row, column]
            if np.isnan(value):
                text, color = "—", "black"
            else:
                # Both ends of RdYlGn are dark: white text there.
                text, color = f"{value:.1f}", "white" if value <= 15 or value >= 85 else "black"
            ax.text(column, row, text, ha="center", va="center", fontsize=fontsize, color=color)
    ax.set_xticks(range(len(lengths)), [_format_length(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("answer depth in the context")
    scores = frame["score"]
    name = " · ".join(part for part in (label, variant) if part)
    n = int(counts.to_numpy().sum())
    ax.set_title(
        f"{name + ': ' if name else ''}mean score {scores.mean() * 100:.1f} (n = {n})",
        fontsize=9,
    )
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85)
    colorbar.set_label("score (0-100)", fontsize=8)
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def save_depth_length_heatmap(
    details: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    label: str | None = None,
    variant: str | None = None,
) -> Path:
    """Rule ``plot_ruler_heatmap``: :func:`plot_depth_length_heatmap` of the ``details`` CSV
    saved to ``png`` and to the SVG beside it (same name, ``.svg``); returns the PNG's path.

    Example:
        >>> import pathlib, tempfile
        >>> import pandas as pd
        >>> from adapterflow.plots.ruler import save_depth_length_heatmap
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> pd.DataFrame({"length": [512, 1024], "depth": [50.0, 50.0], "score": [1.0, 0.0]}
        ...              ).to_csv(root / "niah.details.csv", index=False)
        >>> save_depth_length_heatmap(root / "niah.details.csv", root / "niah.png").name
        'niah.png'
        >>> sorted(path.name for path in root.iterdir())
        ['niah.details.csv', 'niah.png', 'niah.svg']
    """
    out_base = Path(png).with_suffix("")
    plot_depth_length_heatmap(details, out_base, variant=variant, label=label)
    logger.info("wrote %s.png and %s.svg", out_base, out_base)
    return Path(png)
