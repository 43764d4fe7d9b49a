"""Topic clusters of generated questions, a cluster-stratified eval split, and their figures.

Generated QA sets are lumpy: a few topics hold most questions. Clustering the question
embeddings and stratifying the eval split by cluster gives an eval set with the same topic mix
as the training set, instead of one that by chance misses a topic.

- :func:`cluster` runs scikit-learn's k-means for every k in ``k_min..k_max`` and chooses k by
  the configured criterion:

  * ``"elbow"`` — the knee of the inertia curve: with k and inertia both scaled to [0, 1], the
    k whose point lies farthest below the straight line joining the first and the last point
    (the "maximum distance to the chord" rule, as in Kneedle). A curve with no point below
    that line (or fewer than three k values) has no knee, and the smallest k is chosen, with a
    warning;
  * ``"silhouette"`` — the k with the best mean silhouette (computed on a seeded sample of
    ``silhouette_sample`` points when there are more).

  The per-k table (k, inertia, silhouette) is returned with the labels of the chosen k. The same
  seed gives the same labels.
- :func:`stratified_split` splits rows into train and eval with scikit-learn's
  ``train_test_split(stratify=labels)``. A cluster with fewer than ``min_cluster_size`` members
  (at least 2: a singleton cannot be in both splits) cannot be stratified, so its rows go to
  train; they are counted and logged. When the eval set would be smaller than the number of
  clusters (or the train set would), stratification is impossible and the split falls back to
  a seeded random split, with a warning.
- :func:`plot_cluster_map` draws the questions in 2-D (PCA by default, t-SNE on request)
  coloured by cluster and by dataset, side by side; :func:`plot_k_selection` draws inertia and
  silhouette against k with the chosen k marked. Both save PNG + SVG like every figure of the
  project (:func:`adapterflow.io.save_figure`).
- :func:`dedup_cluster_split` is the whole step over QA JSONL files: dedup
  (:mod:`adapterflow.generate.dedup`), cluster, split, figures and a manifest, written
  atomically to one directory.

Example:
    >>> import numpy as np
    >>> from adapterflow.generate.clusters import cluster, stratified_split
    >>> rng = np.random.default_rng(0)
    >>> centres = np.array([[0, 0], [10, 0], [0, 10]])
    >>> points = np.concatenate([c + rng.normal(size=(20, 2)) for c in centres])
    >>> result = cluster(points, k_min=2, k_max=6, criterion="silhouette", seed=0)
    >>> result.k, result.elbow_k, result.silhouette_k
    (3, 3, 3)
    >>> list(result.table.columns)
    ['k', 'inertia', 'silhouette']
    >>> split = stratified_split(result.labels, eval_fraction=0.25, seed=0)
    >>> len(split.train), len(split.eval), np.bincount(result.labels[split.eval]).tolist()
    (45, 15, [5, 5, 5])
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.dedup import (
    Embedder,
    check_threshold,
    dedup_records,
    read_qa_records,
)
from adapterflow.io import atomic_dir, save_figure, sha256_file, write_json, write_jsonl
from adapterflow.settings import CuratedSettings

logger = logging.getLogger(__name__)

Criterion = Literal["elbow", "silhouette"]
CRITERIA: tuple[str, ...] = ("elbow", "silhouette")
MAP_METHODS: tuple[str, ...] = ("pca", "tsne")

#: The schema's defaults of a ``curated`` block, whose keys the step's settings regroup.
_CURATED = CuratedSettings.from_block({})

#: The settings of :func:`dedup_cluster_split` and their defaults; any other key is an error.
#: Those a ``curated`` block also has are the schema's (the rule passes them regrouped so).
DEFAULT_SETTINGS: dict[str, Any] = {
    "text_field": "question",  # the text that is deduplicated, clustered and mapped
    "id_field": "id",
    "dataset_field": "dataset",
    "seed": _CURATED.seed,
    "batch_size": 64,  # encoding batch size
    "dedup": {"threshold": _CURATED.threshold, "block_size": 2048},
    "clusters": {
        "k_min": _CURATED.k_min,
        "k_max": _CURATED.k_max,
        "criterion": _CURATED.criterion,
        "n_init": 4,
        "silhouette_sample": 5000,
    },
    "split": {
        "eval_fraction": _CURATED.eval_fraction,
        "min_cluster_size": _CURATED.min_cluster_size,
    },
    "map": {"method": _CURATED.map},
}


# --- k-means and the choice of k ---------------------------------------------------------------


@dataclass(frozen=True)
class ClusterResult:
    """The chosen ``k`` and its ``labels`` (one per row), the per-k ``table`` (columns k,
    inertia, silhouette), the ``criterion`` used and the k each criterion picks (``None``:
    the inertia curve has no knee, or there was nothing to cluster)."""

    k: int
    labels: np.ndarray
    table: pd.DataFrame
    criterion: str
    elbow_k: int | None
    silhouette_k: int | None


def elbow_k(ks: Sequence[int], inertias: Sequence[float]) -> int | None:
    """The knee of a decreasing inertia curve: with both axes scaled to [0, 1], the k whose
    point lies farthest below the chord from the first to the last point. ``None`` when there
    is no knee (fewer than three points, or no point below the chord).

    Example:
        >>> from adapterflow.generate.clusters import elbow_k
        >>> elbow_k([1, 2, 3, 4, 5, 6], [100, 60, 12, 10, 9, 8])
        3
        >>> elbow_k([1, 2, 3], [3, 2, 1]) is None  # a straight line has no knee
        True
    """
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    if len(x) < 3 or x[-1] == x[0] or y[0] == y[-1]:
        return None
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y[-1]) / (y[0] - y[-1])
    # The chord joins (0, 1) and (1, 0): the line x + y = 1. Below it, 1 - x - y > 0 is the
    # distance up to the constant factor 1/sqrt(2).
    below = 1.0 - xn - yn
    best = int(np.argmax(below))
    if below[best] <= 1e-12:
        return None
    return int(x[best])


def _k_values(n_rows: int, n_distinct: int, k_min: int, k_max: int) -> list[int]:
    """The k of ``k_min..k_max`` that k-means and the silhouette can use on these rows."""
    # Silhouette needs 2 <= k <= n - 1; k-means cannot find more clusters than distinct points.
    upper = min(k_max, n_distinct, n_rows - 1)
    ks = list(range(k_min, upper + 1))
    dropped = [k for k in range(k_min, k_max + 1) if k not in ks]
    if dropped:
        logger.warning(
            "k = %s dropped: %d rows (%d distinct) allow k up to %d",
            ", ".join(map(str, dropped)),
            n_rows,
            n_distinct,
            upper,
        )
    return ks


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_cluster_args(
    k_min: Any, k_max: Any, criterion: Any, n_init: Any, silhouette_sample: Any
) -> None:
    if criterion not in CRITERIA:
        raise ConfigError(f"clusters criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    _check_int("clusters k_min", k_min, 2)
    _check_int("clusters k_max", k_max, k_min)
    _check_int("clusters n_init", n_init, 1)
    _check_int("clusters silhouette_sample", silhouette_sample, 2)


def cluster(
    embeddings: np.ndarray,
    *,
    k_min: int = 2,
    k_max: int = 12,
    criterion: str = "silhouette",
    seed: int = 0,
    n_init: int = 4,
    silhouette_sample: int = 5000,
    show_progress: bool = False,
) -> ClusterResult:
    """k-means for every k in ``k_min..k_max`` (capped by the number of rows); choose k by
    ``criterion`` (``"elbow"`` or ``"silhouette"``, see the module docstring).

    With fewer than 3 rows (or no usable k) every row is put in cluster 0 and the table is
    empty; this is logged.

    Example:
        >>> import numpy as np
        >>> from adapterflow.generate.clusters import cluster
        >>> points = np.array([[0, 0], [0, 1], [9, 9], [9, 8], [20, 0], [20, 1]], dtype=float)
        >>> result = cluster(points, k_min=2, k_max=4, criterion="elbow")
        >>> result.k, len(set(result.labels.tolist()))
        (3, 3)
        >>> result.table.round(2).to_dict("list")["k"]
        [2, 3, 4]
    """
    _check_cluster_args(k_min, k_max, criterion, n_init, silhouette_sample)
    points = np.asarray(embeddings, dtype=np.float32)
    if points.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {points.shape}")
    n = len(points)
    n_distinct = len(np.unique(points, axis=0)) if n else 0
    ks = _k_values(n, n_distinct, k_min, k_max)
    empty = pd.DataFrame({"k": pd.Series(dtype=int), "inertia": [], "silhouette": []})
    if not ks:
        logger.warning("%d rows: too few to cluster; all rows are cluster 0", n)
        return ClusterResult(1, np.zeros(n, dtype=np.int64), empty, criterion, None, None)

    started = time.perf_counter()
    rows = []
    labels_of: dict[int, np.ndarray] = {}
    sample = silhouette_sample if n > silhouette_sample else None
    for k in tqdm(ks, desc="k-means", unit="k", disable=not show_progress):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(points)
        labels_of[k] = model.labels_.astype(np.int64)
        score = silhouette_score(points, model.labels_, sample_size=sample, random_state=seed)
        rows.append({"k": k, "inertia": float(model.inertia_), "silhouette": float(score)})
    table = pd.DataFrame(rows, columns=["k", "inertia", "silhouette"])

    knee = elbow_k(table["k"].tolist(), table["inertia"].tolist())
    best_silhouette = int(table.loc[table["silhouette"].idxmax(), "k"])
    chosen = best_silhouette
    if criterion == "elbow":
        chosen = ks[0] if knee is None else knee
        if knee is None:
            logger.warning("the inertia curve has no knee over k = %s; using k = %d", ks, chosen)
    logger.info(
        "k-means over k = %d..%d on %d rows in %.1f s: elbow k = %s, silhouette k = %d "
        "(%.3f); chose k = %d by %s",
        ks[0],
        ks[-1],
        n,
        time.perf_counter() - started,
        knee,
        best_silhouette,
        table["silhouette"].max(),
        chosen,
        criterion,
    )
    return ClusterResult(chosen, labels_of[chosen], table, criterion, knee, best_silhouette)


# --- the eval split ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitResult:
    """Row indices (ascending) of ``train`` and ``eval``; ``too_small`` rows of clusters too
    small to stratify, all in train; ``stratified`` is False when the split fell back to a
    random one."""

    train: np.ndarray
    eval: np.ndarray
    too_small: int
    too_small_clusters: int
    stratified: bool
    eval_by_cluster: dict[int, int] = field(default_factory=dict)


def _check_split_args(eval_fraction: Any, min_cluster_size: Any) -> None:
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, int | float):
        raise ConfigError(f"split eval_fraction must be a number, got {eval_fraction!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise ConfigError(f"split eval_fraction must be in (0, 1), got {eval_fraction!r}")
    _check_int("split min_cluster_size", min_cluster_size, 2)


def stratified_split(
    labels: Sequence[int] | np.ndarray,
    *,
    eval_fraction: float = 0.2,
    seed: int = 0,
    min_cluster_size: int = 2,
) -> SplitResult:
    """Split rows into train and eval keeping each cluster's share (see the module docstring).

    ``eval_fraction`` of the stratifiable rows (rounded up, as scikit-learn does) go to eval.

    Example:
        >>> from adapterflow.generate.clusters import stratified_split
        >>> labels = [0, 0, 0, 0, 1, 1, 1, 1, 2]  # cluster 2 is a singleton
        >>> split = stratified_split(labels, eval_fraction=0.25, seed=0)
        >>> split.too_small, 8 in split.train, split.eval_by_cluster
        (1, True, {0: 1, 1: 1})
    """
    _check_split_args(eval_fraction, min_cluster_size)
    labels = np.asarray(labels, dtype=np.int64)
    sizes = Counter(labels.tolist())
    small = {label for label, size in sizes.items() if size < min_cluster_size}
    small_mask = np.isin(labels, sorted(small))
    fixed = np.flatnonzero(small_mask)
    rows = np.flatnonzero(~small_mask)
    if len(fixed):
        logger.info(
            "%d rows of %d clusters with fewer than %d members go to train (too small to stratify)",
            len(fixed),
            len(small),
            min_cluster_size,
        )
    n_eval = math.ceil(eval_fraction * len(rows))
    n_classes = len(sizes) - len(small)
    stratified = True
    if len(rows) < 2 or n_eval == len(rows):
        train_rows, eval_rows = rows, rows[:0]
        logger.warning("%d stratifiable rows: too few to split; all go to train", len(rows))
        stratified = False
    elif n_eval < n_classes or len(rows) - n_eval < n_classes:
        logger.warning(
            "an eval set of %d rows cannot hold each of %d clusters; random split instead",
            n_eval,
            n_classes,
        )
        train_rows, eval_rows = train_test_split(rows, test_size=n_eval, random_state=seed)
        stratified = False
    else:
        train_rows, eval_rows = train_test_split(
            rows, test_size=n_eval, random_state=seed, stratify=labels[rows]
        )
    train = np.sort(np.concatenate([np.asarray(train_rows, dtype=np.int64), fixed]))
    held = np.sort(np.asarray(eval_rows, dtype=np.int64))
    by_cluster = dict(sorted(Counter(labels[held].tolist()).items()))
    logger.info(
        "split %d rows: %d train, %d eval (%s)",
        len(labels),
        len(train),
        len(held),
        "stratified by cluster" if stratified else "not stratified",
    )
    return SplitResult(train, held, len(fixed), len(small), stratified, by_cluster)


# --- figures -----------------------------------------------------------------------------------


def _check_method(method: Any) -> None:
    if method not in MAP_METHODS:
        raise ConfigError(f"map method must be one of {list(MAP_METHODS)}, got {method!r}")


def project_2d(embeddings: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates of the rows: ``"pca"`` (fast, deterministic, keeps global distances) or
    ``"tsne"`` (keeps neighbourhoods; seconds per thousand rows, seeded). Fewer rows than a
    method needs give zeros in the missing dimensions.

    Example:
        >>> import numpy as np
        >>> from adapterflow.generate.clusters import project_2d
        >>> project_2d(np.eye(3, 5)).shape, project_2d(np.ones((1, 5))).tolist()
        ((3, 2), [[0.0, 0.0]])
    """
    _check_method(method)
    points = np.asarray(embeddings, dtype=np.float64)
    n, dim = points.shape
    coords = np.zeros((n, 2))
    if n < 2:
        return coords
    if method == "tsne" and n >= 4:
        # perplexity must stay below the number of rows.
        perplexity = min(30.0, (n - 1) / 3)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        return tsne.fit_transform(points)
    width = min(2, n, dim)
    coords[:, :width] = PCA(n_components=width, random_state=seed).fit_transform(points)
    return coords


def _palette(n: int) -> list[Any]:
    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"
    cmap = matplotlib.colormaps[name]
    if name == "turbo":
        return [cmap(i / max(n - 1, 1)) for i in range(n)]
    return [cmap(i) for i in range(n)]


def _scatter_panel(ax: Any, coords: np.ndarray, groups: Sequence[Any], title: str) -> None:
    names = sorted(set(groups), key=str)
    colours = dict(zip(names, _palette(len(names)), strict=True))
    groups = np.asarray([str(g) for g in groups])
    size = float(np.clip(3000 / max(len(coords), 1), 3, 30))
    for name in names:
        mask = groups == str(name)
        ax.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=size,
            color=colours[name],
            alpha=0.7,
            linewidths=0,
            label=f"{name} ({int(mask.sum())})",
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 20:
        ax.legend(fontsize="x-small", markerscale=1.5, frameon=False, loc="best")


def plot_cluster_map(
    coords: np.ndarray,
    labels: Sequence[int],
    datasets: Sequence[str],
    *,
    method: str = "pca",
    out_base: str | os.PathLike[str] | None = None,
) -> Figure:
    """Two scatter panels of the same 2-D coordinates (:func:`project_2d`): coloured by
    cluster, and by dataset. Saved as ``{out_base}.png`` and ``.svg`` when given.

    Example:
        >>> import numpy as np
        >>> from adapterflow.generate.clusters import plot_cluster_map
        >>> fig = plot_cluster_map(np.eye(3, 2), [0, 1, 1], ["wiki", "news", "news"])
        >>> [ax.get_title() for ax in fig.axes]
        ['2 clusters (PCA)', '2 datasets (PCA)']
    """
    coords = np.asarray(coords, dtype=float)
    if not len(coords) == len(labels) == len(datasets):
        raise ValueError(
            f"{len(coords)} coordinates, {len(labels)} labels and {len(datasets)} datasets"
        )
    shown = {"pca": "PCA", "tsne": "t-SNE"}.get(method, method)
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    by_cluster, by_dataset = fig.subplots(1, 2)
    labels = [int(label) for label in labels]
    _scatter_panel(by_cluster, coords, labels, f"{len(set(labels))} clusters ({shown})")
    _scatter_panel(by_dataset, coords, list(datasets), f"{len(set(datasets))} datasets ({shown})")
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


def plot_k_selection(
    result: ClusterResult, *, out_base: str | os.PathLike[str] | None = None
) -> Figure:
    """Inertia (elbow) and mean silhouette against k, each criterion's k marked; the
    criterion that chose k in red. Saved as ``{out_base}.png`` and ``.svg`` when given.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from adapterflow.generate.clusters import ClusterResult, plot_k_selection
        >>> table = pd.DataFrame({"k": [2, 3, 4], "inertia": [9.0, 2.0, 1.5],
        ...                       "silhouette": [0.5, 0.7, 0.6]})
        >>> fig = plot_k_selection(ClusterResult(3, np.zeros(4), table, "elbow", 3, 3))
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['inertia', 'mean silhouette']
    """
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    inertia_ax, silhouette_ax = fig.subplots(1, 2)
    table = result.table
    panels = (
        (inertia_ax, "inertia", "elbow", result.elbow_k),
        (silhouette_ax, "silhouette", "silhouette", result.silhouette_k),
    )
    for ax, column, criterion, k in panels:
        ax.plot(table["k"], table[column], marker="o", color="#1f77b4", linewidth=1.2)
        if k is not None and len(table):
            colour = "#d62728" if criterion == result.criterion else "#7f7f7f"
            ax.axvline(k, color=colour, linestyle="--", linewidth=1, label=f"{criterion}: k = {k}")
            ax.legend(fontsize="small", frameon=False)
        ax.set_xlabel("k")
        ax.set_ylabel("mean silhouette" if column == "silhouette" else column)
        ax.grid(alpha=0.3)
    fig.suptitle(f"k-means: k = {result.k} chosen by {result.criterion}")
    if out_base is not None:
        save_figure(fig, out_base)
    return fig


# --- the whole step ----------------------------------------------------------------------------


def resolve_settings(block: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`DEFAULT_SETTINGS` overlaid with ``block`` (one level of nesting), every value
    checked; an unknown key is a :class:`ConfigError`, so a typo never falls back to a default
    silently.

    Example:
        >>> from adapterflow.generate.clusters import resolve_settings
        >>> resolve_settings({"clusters": {"criterion": "elbow"}})["clusters"]["criterion"]
        'elbow'
        >>> resolve_settings({"dedup": {"treshold": 0.9}})
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: unknown setting 'dedup.treshold'; known: block_size, \
threshold
    """
    settings = {
        key: dict(value) if isinstance(value, dict) else value
        for key, value in DEFAULT_SETTINGS.items()
    }
    for key, value in (block or {}).items():
        if key not in settings:
            raise ConfigError(f"unknown setting {key!r}; known: {', '.join(sorted(settings))}")
        if isinstance(settings[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"setting {key!r} must be a mapping, got {value!r}")
            for inner, inner_value in value.items():
                if inner not in settings[key]:
                    known = ", ".join(sorted(settings[key]))
                    raise ConfigError(f"unknown setting '{key}.{inner}'; known: {known}")
                settings[key][inner] = inner_value
        else:
            settings[key] = value
    # Every value is checked here, so a bad one stops the job before any record is embedded.
    for key in ("text_field", "id_field", "dataset_field"):
        if not isinstance(settings[key], str) or not settings[key]:
            raise ConfigError(f"setting {key!r} must be a field name, got {settings[key]!r}")
    _check_int("seed", settings["seed"], 0)
    _check_int("batch_size", settings["batch_size"], 1)
    check_threshold(settings["dedup"]["threshold"])
    _check_int("dedup block_size", settings["dedup"]["block_size"], 1)
    _check_cluster_args(**settings["clusters"])
    _check_split_args(**settings["split"])
    _check_method(settings["map"]["method"])
    return settings


def _encoder_embedder(
    model: Mapping[str, Any], batch_size: int, threads: int | None, show_progress: bool
) -> Embedder:
    """An :data:`Embedder` over :func:`adapterflow.eval.encode.encode`; torch and the model
    load on first use, so bad input is reported without waiting for them."""

    def embed(texts: list[str]) -> np.ndarray:
        from adapterflow.models import encode, load_encoder
        from adapterflow.runtime import set_threads

        set_threads(threads)
        encoder = load_encoder(model)
        return encode(
            encoder, texts, batch_size=batch_size, show_progress=show_progress, desc="questions"
        )

    return embed


def dedup_cluster_split(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    *,
    model: Mapping[str, Any] | None = None,
    embed: Embedder | None = None,
    threads: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Dedup, cluster and split the QA records of ``inputs`` into ``out_dir``; return the
    manifest. Each input is a QA JSONL file, or a directory holding ``qa.jsonl`` (the output
    directory of the QA generation step).

    The texts (``settings["text_field"]``, the question by default) are embedded once with
    ``model`` (a ``models:`` config block, through :func:`~adapterflow.eval.encode.encode`)
    or with ``embed`` when given. ``out_dir`` appears only once complete and holds:

    - ``qa_kept.jsonl`` — the records left after dedup, in input order, each with its
      ``cluster``;
    - ``removed.jsonl`` — one row per removed record (see
      :func:`~adapterflow.generate.dedup.dedup_records`);
    - ``clusters.csv`` — the per-k table: k, inertia, silhouette;
    - ``splits/train.jsonl``, ``splits/eval.jsonl`` — the kept records split by cluster;
    - ``map.png``/``.svg`` (clusters and datasets in 2-D), ``k_selection.png``/``.svg``;
    - ``manifest.json`` — inputs with sha256, the settings, and counts of every step.

    Example:
        >>> import json, pathlib, tempfile, numpy as np
        >>> from adapterflow.generate.clusters import dedup_cluster_split
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> rows = [{"id": f"q{i}", "question": f"Q{i % 6}?", "answer": "A."} for i in range(8)]
        >>> _ = (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
        >>> embed = lambda texts: np.eye(len(texts), dtype=np.float32)
        >>> manifest = dedup_cluster_split([root / "qa.jsonl"], root / "out",
        ...     {"clusters": {"k_min": 2, "k_max": 3}}, embed=embed, show_progress=False)
        >>> manifest["counts"]["dedup"]
        {'input': 8, 'kept': 6, 'removed_exact': 2, 'removed_near': 0}
        >>> sorted(p.name for p in (root / "out").iterdir())  # doctest: +NORMALIZE_WHITESPACE
        ['clusters.csv', 'k_selection.png', 'k_selection.svg', 'manifest.json', 'map.png',
         'map.svg', 'qa_kept.jsonl', 'removed.jsonl', 'splits']
    """
    settings = resolve_settings(settings)
    inputs = [Path(path) / "qa.jsonl" if Path(path).is_dir() else Path(path) for path in inputs]
    if not inputs:
        raise ConfigError("dedup_cluster_split needs at least one QA JSONL input")
    if embed is None:
        if model is None:
            raise ConfigError("dedup_cluster_split needs a model block or an embed function")
        embed = _encoder_embedder(model, int(settings["batch_size"]), threads, show_progress)
    seed = settings["seed"]
    text_field = settings["text_field"]
    id_field = settings["id_field"]
    dataset_field = settings["dataset_field"]
    started = time.perf_counter()

    records = read_qa_records(
        inputs, id_field=id_field, dataset_field=dataset_field, text_field=text_field
    )
    if not records:
        raise DataError(", ".join(map(str, inputs)), "no QA records in the input")
    by_dataset = dict(sorted(Counter(r[dataset_field] for r in records).items()))
    logger.info("%d QA records from %d files: %s", len(records), len(inputs), by_dataset)

    dedup = dedup_records(
        records,
        embed,
        threshold=settings["dedup"]["threshold"],
        field=text_field,
        id_field=id_field,
        block_size=settings["dedup"]["block_size"],
        show_progress=show_progress,
    )
    clusters = cluster(
        dedup.embeddings, seed=seed, show_progress=show_progress, **settings["clusters"]
    )
    kept = [
        {**row, "cluster": int(label)}
        for row, label in zip(dedup.kept, clusters.labels, strict=True)
    ]
    split = stratified_split(clusters.labels, seed=seed, **settings["split"])
    method = settings["map"]["method"]
    coords = project_2d(dedup.embeddings, method, seed)

    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "qa_kept.jsonl", kept)
        write_jsonl(tmp / "removed.jsonl", dedup.removed)
        clusters.table.to_csv(tmp / "clusters.csv", index=False, float_format="%.6g")
        (tmp / "splits").mkdir()
        write_jsonl(tmp / "splits" / "train.jsonl", (kept[i] for i in split.train))
        write_jsonl(tmp / "splits" / "eval.jsonl", (kept[i] for i in split.eval))
        plot_cluster_map(
            coords,
            clusters.labels,
            [row[dataset_field] for row in kept],
            method=method,
            out_base=tmp / "map",
        )
        plot_k_selection(clusters, out_base=tmp / "k_selection")
        manifest = {
            "inputs": {str(path): sha256_file(path) for path in inputs},
            "settings": settings,
            "counts": {
                "input": len(records),
                "input_by_dataset": by_dataset,
                "dedup": dedup.counts(),
                "kept_by_dataset": dict(sorted(Counter(r[dataset_field] for r in kept).items())),
                "clusters": {
                    "k": clusters.k,
                    "criterion": clusters.criterion,
                    "elbow_k": clusters.elbow_k,
                    "silhouette_k": clusters.silhouette_k,
                    "sizes": {
                        str(label): count
                        for label, count in sorted(Counter(clusters.labels.tolist()).items())
                    },
                },
                "split": {
                    "train": len(split.train),
                    "eval": len(split.eval),
                    "stratified": split.stratified,
                    "too_small_to_stratify": split.too_small,
                    "too_small_clusters": split.too_small_clusters,
                    "eval_by_cluster": {str(k): v for k, v in split.eval_by_cluster.items()},
                },
            },
        }
        write_json(tmp / "manifest.json", manifest)
    logger.info(
        "dedup_cluster_split: %d records -> %d kept (%d removed), k = %d, %d train / %d eval "
        "in %.1f s",
        len(records),
        len(kept),
        len(dedup.removed),
        clusters.k,
        len(split.train),
        len(split.eval),
        time.perf_counter() - started,
    )
    return manifest
