"""Eval JSON files → ``metrics.csv`` (tidy) and ``summary.md`` (mean ± 95 % CI across seeds).

Each eval JSON holds the scores of one run on one task. :func:`collect_metrics` flattens them
into one row per run × task × split × metric; :func:`summarize` groups the runs that differ
only by seed ("run group": the model and the stage names a user wrote, i.e. the run name
without ``-seed{n}``: ``minilm base``, ``minilm wiki``, ``minilm wiki+news``) and reports each
task's main score as the mean over seeds with a Student-t 95 % confidence half-width
(:func:`adapterflow.eval.metrics.mean_ci95`). The base model is one group per model however
many experiments use it, so any number of experiments on one model sit side by side; groups
come in model order, then base, stage-1 and stage-2 groups, each level sorted by name.

Example:
    >>> import json, tempfile, pathlib
    >>> from adapterflow.report.tables import collect_metrics, summarize
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> paths = []
    >>> for seed, score in [(0, 0.70), (1, 0.72), (2, 0.74)]:
    ...     path = root / f"seed{seed}.json"
    ...     _ = path.write_text(json.dumps({
    ...         "task_name": "lee50", "task_kind": "sts",
    ...         "scores": {"test": [{"main_score": score, "hf_subset": "default"}]},
    ...         "run": {"name": f"wiki-seed{seed}", "model": "minilm", "stage": "stage1",
    ...                 "seed": seed}}))
    ...     paths.append(path)
    >>> df = collect_metrics(paths)
    >>> df.columns.tolist()
    ['run', 'model', 'stage', 'group', 'seed', 'task', 'split', 'metric', 'value']
    >>> summary = summarize(df)
    >>> summary.loc["minilm wiki", "lee50"].round(4).tolist()  # mean, ci95, n
    [0.72, 0.0497, 3.0]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapterflow.errors import DataError
from adapterflow.eval.metrics import mean_ci95
from adapterflow.io import atomic_file

logger = logging.getLogger(__name__)

COLUMNS = ["run", "model", "stage", "group", "seed", "task", "split", "metric", "value"]
# The level of a run: the pretrained model, an adapter of one stage, or stage 2 on stage 1.
STAGES = ("base", "stage1", "stage2")
TASK_KINDS = ("retrieval", "sts", "triplets", "anisotropy", "ruler", "qa")
MAIN_SCORE = "main_score"
PREFERRED_SPLIT = "test"

MAIN_SCORE_MEANING = {
    "retrieval": "nDCG@k of each query's ranking of the corpus, averaged over queries "
    "(higher is better)",
    "sts": "Spearman correlation between cosine similarity and the human score (higher is better)",
    "triplets": "fraction of triplets whose positive is closer to the anchor than the negative "
    "(higher is better)",
    "anisotropy": "mean cosine similarity of random text pairs; lower means a less anisotropic, "
    "better spread embedding space",
    "ruler": "RULER score of a causal LM's greedy answers on a generated needle-in-a-haystack "
    "set: the mean over variants of the share of expected values found, 0-100 "
    "(higher is better)",
    "qa": "share of a causal LM's greedy answers that contain every key term of the reference "
    "answer (keyword accuracy, 0-1; semantic and hybrid scores are in metrics.csv; higher is "
    "better)",
}
# Which named metric a task kind's main score usually copies, when several are equal.
_CONVENTIONAL_MAIN = ("ndcg_at_10", "spearman", "accuracy", "mean_cosine")


class EvalFileError(DataError, ValueError):
    """A malformed eval file (JSON or details CSV): names the file and the key at fault.

    A :class:`ValueError` for callers of the library, an ``AdapterflowError`` for the scripts.
    """


@dataclass(frozen=True)
class EvalRecord:
    """The parts of one eval JSON that tables and figures use."""

    path: Path
    task: str
    task_kind: str
    run: str
    model: str
    stage: str
    seed: int | None
    scores: dict[str, dict[str, float]]  # split → metric → value

    @property
    def group(self) -> str:
        """The label of the run group this run belongs to (see :func:`group_label`)."""
        return group_label(self.model, run_stages(self.run, self.stage, self.seed))


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but `true` is a flag, not a metric.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require(path: Path, obj: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in obj:
        raise EvalFileError(path, "missing", field=name)
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EvalFileError(
            path, f"expected {kind.__name__}, got {type(value).__name__}", field=name
        )
    return value


def read_eval(path: str | os.PathLike[str]) -> EvalRecord:
    """Read and check one eval JSON; raise :class:`EvalFileError` naming the file and key.

    Only numeric score entries are metrics; strings and lists (``hf_subset``, ``languages``)
    are skipped. Each split must hold exactly one score entry with a numeric ``main_score``.

    Example:
        >>> import json, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "news.json"
        >>> _ = path.write_text(json.dumps({"task_name": "news", "task_kind": "retrieval",
        ...     "scores": {"test": [{"main_score": 0.5, "ndcg_at_10": 0.5, "hf_subset": "x"}]},
        ...     "run": {"name": "base", "model": "minilm", "stage": "base", "seed": None}}))
        >>> record = read_eval(path)
        >>> record.task_kind, record.seed, record.scores
        ('retrieval', None, {'test': {'main_score': 0.5, 'ndcg_at_10': 0.5}})
        >>> _ = path.write_text('{"task_name": "news"}')
        >>> read_eval(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.report.tables.EvalFileError: .../news.json: field 'task_kind': missing
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvalFileError(path, f"malformed JSON ({err.msg})", line=err.lineno) from None
    except FileNotFoundError:
        raise EvalFileError(path, "no such file") from None
    if not isinstance(data, dict):
        raise EvalFileError(path, f"expected a JSON object, got {type(data).__name__}")
    task = _require(path, data, "task_name", str)
    kind = _require(path, data, "task_kind", str)
    if kind not in TASK_KINDS:
        raise EvalFileError(path, f"{kind!r} is not one of {list(TASK_KINDS)}", field="task_kind")
    run = _require(path, data, "run", dict)
    name = _require(path, run, "name", str, "run.")
    model = _require(path, run, "model", str, "run.")
    stage = _require(path, run, "stage", str, "run.")
    if stage not in STAGES:
        raise EvalFileError(path, f"{stage!r} is not one of {list(STAGES)}", field="run.stage")
    if "seed" not in run:
        raise EvalFileError(path, "missing (use null for a run without seeds)", field="run.seed")
    seed = run["seed"]
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool)):
        raise EvalFileError(
            path, f"expected an integer or null, got {type(seed).__name__}", field="run.seed"
        )
    raw_scores = _require(path, data, "scores", dict)
    if not raw_scores:
        raise EvalFileError(path, "no split", field="scores")
    scores: dict[str, dict[str, float]] = {}
    for split, entries in raw_scores.items():
        where = f"scores.{split}"
        if not isinstance(entries, list) or len(entries) != 1:
            got = f"{len(entries)} entries" if isinstance(entries, list) else type(entries).__name__
            raise EvalFileError(path, f"expected a list of one score entry, got {got}", field=where)
        entry = entries[0]
        if not isinstance(entry, dict):
            raise EvalFileError(
                path, f"expected an object, got {type(entry).__name__}", field=f"{where}[0]"
            )
        if not _is_number(entry.get(MAIN_SCORE)):
            problem = "missing" if MAIN_SCORE not in entry else "not a number"
            raise EvalFileError(path, problem, field=f"{where}[0].{MAIN_SCORE}")
        scores[split] = {key: float(value) for key, value in entry.items() if _is_number(value)}
    return EvalRecord(path, task, kind, name, model, stage, seed, scores)


def _read_all(json_paths: Iterable[str | os.PathLike[str]]) -> list[EvalRecord]:
    records = [read_eval(path) for path in json_paths]
    if not records:
        raise ValueError("no eval JSON given")
    seen: dict[tuple[str, str, str], Path] = {}
    kinds: dict[str, EvalRecord] = {}
    for rec in records:
        key = (rec.model, rec.run, rec.task)
        if key in seen:
            raise EvalFileError(
                rec.path,
                f"run {rec.run!r} of {rec.model!r} on task {rec.task!r} is also in {seen[key]}",
                field="task_name",
            )
        seen[key] = rec.path
        first = kinds.setdefault(rec.task, rec)
        if first.task_kind != rec.task_kind:
            raise EvalFileError(
                rec.path,
                f"{rec.task_kind!r}, but {first.path} says {first.task_kind!r} for "
                f"task {rec.task!r}",
                field="task_kind",
            )
    return records


def _sort(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    # Stages sort by training order, not alphabetically; mergesort keeps ties stable.
    def key(column: pd.Series) -> pd.Series:
        return column.map(STAGES.index) if column.name == "stage" else column

    return df.sort_values(by, key=key, kind="mergesort", na_position="first").reset_index(drop=True)


def _frame(records: list[EvalRecord]) -> pd.DataFrame:
    rows = [
        (rec.run, rec.model, rec.stage, rec.group, rec.seed, rec.task, split, metric, value)
        for rec in records
        for split, metrics in rec.scores.items()
        for metric, value in metrics.items()
    ]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["seed"] = df["seed"].astype("Int64")
    df["value"] = df["value"].astype(float)
    return _sort(df, ["model", "stage", "group", "seed", "run", "task", "split", "metric"])


def collect_metrics(json_paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """Tidy table of every numeric score: one row per run × task × split × metric.

    Columns are :data:`COLUMNS`; ``group`` is the run group's label (:func:`group_label`),
    ``seed`` a nullable ``Int64`` (``<NA>`` for the base model). Rows are sorted by model,
    stage (base, stage1, stage2), group, seed, run, task, split, metric.
    A malformed file, or one (model, run, task) given twice, raises :class:`EvalFileError`.
    """
    return _frame(_read_all(json_paths))


def read_metrics(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``metrics.csv`` written by :func:`write_tables` back with the same dtypes.

    A table written before it had a ``group`` column gets one, derived from the run names.
    """
    df = pd.read_csv(
        csv_path,
        dtype={c: str for c in COLUMNS if c not in ("seed", "value")} | {"seed": "Int64"},
        keep_default_na=False,
        na_values={"seed": [""], "value": ["", "nan", "NaN"]},
    )
    missing = [c for c in COLUMNS if c not in df.columns and c != "group"]
    if missing:
        raise DataError(csv_path, f"missing column(s) {missing}; expected {COLUMNS}", line=1)
    return with_groups(df)[COLUMNS]


def run_stages(run: str, stage: str, seed: int | None) -> str:
    """The stage names of a run: its name without ``-seed{n}`` (``base`` for the base model).

    The workflow names runs ``base``, ``{stage1}-seed{n}`` and ``{stage1}+{stage2}-seed{n}``;
    a name that does not end in its own seed is kept whole.

    >>> run_stages("wiki+news-seed2", "stage2", 2), run_stages("base", "base", None)
    ('wiki+news', 'base')
    >>> run_stages("wiki-v2", "stage1", 0)
    'wiki-v2'
    """
    if stage == "base":
        return "base"
    suffix = f"-seed{seed}"
    if seed is not None and run.endswith(suffix) and len(run) > len(suffix):
        return run[: -len(suffix)]
    return run


def group_label(model: str, stages: str) -> str:
    """Display name of a run group: the model and the stage names of its runs.

    >>> group_label("minilm", run_stages("wiki+news-seed0", "stage2", 0))
    'minilm wiki+news'
    """
    return f"{model} {stages}"


def with_groups(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``group`` column after ``stage``, derived from model, run, stage and seed
    where it has none (tables built by hand, or written by an older version)."""
    if "group" in df.columns:
        return df
    seeds = [None if pd.isna(seed) else int(seed) for seed in df["seed"]]
    groups = [
        group_label(model, run_stages(run, stage, seed))
        for model, run, stage, seed in zip(df["model"], df["run"], df["stage"], seeds, strict=True)
    ]
    df = df.copy()
    df.insert(
        df.columns.get_loc("stage") + 1, "group", pd.Series(groups, index=df.index, dtype=str)
    )
    return df


def _main_split(df: pd.DataFrame, task: str) -> str:
    splits = sorted(df.loc[df["task"] == task, "split"].unique())
    if PREFERRED_SPLIT in splits:
        return PREFERRED_SPLIT
    if len(splits) == 1:
        return splits[0]
    raise ValueError(
        f"task {task!r} has splits {splits} and none is {PREFERRED_SPLIT!r}: "
        "cannot choose the one to summarise"
    )


def main_scores(df: pd.DataFrame) -> pd.DataFrame:
    """The main score of every run on every task (``test`` split when there are several).

    Returns columns ``model, stage, group, run, seed, task, value``, one row per run × task,
    sorted by model, stage, group, seed. ``group`` is derived from the run names when ``df``
    has none. Raises :class:`ValueError` if two runs of one run group share a seed on a task,
    or if one group holds runs of different stages, since averaging them would mix different
    adapters (the config check rejects every config that could lead to either).
    """
    missing = [c for c in COLUMNS if c not in df.columns and c != "group"]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}")
    main = with_groups(df[df["metric"] == MAIN_SCORE])
    split_of = {task: _main_split(main, task) for task in main["task"].unique()}
    main = main[main["split"] == main["task"].map(split_of)].copy()
    for group, rows in main.groupby("group", sort=True):
        if rows["stage"].nunique() > 1:
            stages = sorted(rows["stage"].unique(), key=STAGES.index)
            raise ValueError(
                f"runs {sorted(rows['run'].unique())} are all {group!r} but of stages {stages}: "
                "one run group must differ only by seed"
            )
    clash = main[main.duplicated(["group", "seed", "task"], keep=False)]
    if not clash.empty:
        keys = ["group", "seed", "task"]
        (group, seed, task), rows = next(iter(clash.groupby(keys, dropna=False, sort=True)))
        seeded = "no seed" if pd.isna(seed) else f"seed {seed}"
        raise ValueError(
            f"runs {sorted(rows['run'].unique())} are all {group!r} with {seeded} on task "
            f"{task!r}: one run group must differ only by seed"
        )
    main = main[["model", "stage", "group", "run", "seed", "task", "value"]]
    return _sort(main, ["model", "stage", "group", "seed", "run", "task"])


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run group (model and stage names): each task's main score across seeds.

    The index holds group labels in model order, then base, stage-1 and stage-2 groups (each
    level sorted by name); columns are a
    ``(task, stat)`` MultiIndex with ``stat`` in ``mean``, ``ci95`` (95 % t-interval
    half-width, 0 for one seed) and ``n`` (seeds). A task a group was not run on is NaN.
    """
    main = main_scores(df)
    rows = []
    for (group, task), values in main.groupby(["group", "task"], sort=False)["value"]:
        # An undefined score (e.g. Spearman of constant embeddings) must stay visible as NaN.
        finite = bool(np.isfinite(values.to_numpy(dtype=float)).all())
        mean, half = mean_ci95(values.tolist()) if finite else (np.nan, np.nan)
        rows.append((group, task, mean, half, float(len(values))))
    long = pd.DataFrame(rows, columns=["group", "task", "mean", "ci95", "n"])
    wide = long.pivot(index="group", columns="task", values=["mean", "ci95", "n"])
    wide = wide.swaplevel(axis=1)
    tasks = sorted(main["task"].unique())
    wide = wide.reindex(
        index=list(dict.fromkeys(main["group"])),
        columns=pd.MultiIndex.from_product([tasks, ["mean", "ci95", "n"]], names=["task", "stat"]),
    )
    return wide


def main_metric_name(record: EvalRecord) -> str | None:
    """The metric that ``main_score`` repeats in an eval record (``None`` if none does).

    >>> from pathlib import Path
    >>> rec = EvalRecord(Path("x.json"), "news", "retrieval", "base", "m", "base", None,
    ...                  {"test": {"main_score": 0.4, "ndcg_at_5": 0.4, "recall_at_5": 0.6}})
    >>> main_metric_name(rec)
    'ndcg_at_5'
    """
    split = PREFERRED_SPLIT if PREFERRED_SPLIT in record.scores else sorted(record.scores)[0]
    scores = record.scores[split]
    same = [k for k, v in scores.items() if k != MAIN_SCORE and v == scores[MAIN_SCORE]]
    for name in _CONVENTIONAL_MAIN:
        if name in same:
            return name
    return next((k for k in same if k.startswith("ndcg_at_")), same[0] if same else None)


def _cell(mean: float, half: float, n: float, digits: int) -> str:
    if pd.isna(n):
        return "—"
    if pd.isna(mean):
        return f"undefined (n={int(n)})"
    return f"{mean:.{digits}f} ± {half:.{digits}f} (n={int(n)})"


def summary_markdown(
    summary: pd.DataFrame,
    task_kinds: Mapping[str, str],
    main_metrics: Mapping[str, str | None] | None = None,
    digits: int = 3,
) -> str:
    """Markdown table of :func:`summarize` plus one line per task saying what its score means.

    >>> import pandas as pd
    >>> cols = pd.MultiIndex.from_product([["lee50"], ["mean", "ci95", "n"]])
    >>> summary = pd.DataFrame([[0.7123, 0.0101, 3.0]], index=["minilm stage1"], columns=cols)
    >>> for line in summary_markdown(summary, {"lee50": "sts"}).splitlines()[4:7]:
    ...     print(line)
    | run group | lee50 |
    |---|---|
    | minilm stage1 | 0.712 ± 0.010 (n=3) |
    """
    tasks = list(dict.fromkeys(summary.columns.get_level_values(0)))
    lines = [
        "# Evaluation summary",
        "",
        "Main score per task: mean ± half-width of the 95 % t-interval across seeds (n = seeds).",
        "",
        "| run group | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for group, row in summary.iterrows():
        cells = [_cell(row[(t, "mean")], row[(t, "ci95")], row[(t, "n")], digits) for t in tasks]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += ["", "Main scores:", ""]
    for task in tasks:
        kind = task_kinds.get(task)
        meaning = MAIN_SCORE_MEANING.get(kind or "", "see the task's eval JSON")
        metric = (main_metrics or {}).get(task)
        named = f", main score = `{metric}`" if metric else ""
        lines.append(f"- **{task}** ({kind or 'unknown kind'}{named}): {meaning}.")
    return "\n".join(lines) + "\n"


def write_tables(
    json_paths: Iterable[str | os.PathLike[str]],
    csv_path: str | os.PathLike[str],
    md_path: str | os.PathLike[str],
) -> pd.DataFrame:
    """Write ``metrics.csv`` (tidy, sorted) and ``summary.md``; return the tidy table.

    Both files are written under a temporary name and renamed, so a failure leaves neither
    half-written; bad input raises before anything is written.
    """
    records = _read_all(json_paths)
    df = _frame(records)
    summary = summarize(df)
    kinds = {rec.task: rec.task_kind for rec in records}
    metrics = {rec.task: main_metric_name(rec) for rec in records}
    markdown = summary_markdown(summary, kinds, metrics)
    with atomic_file(csv_path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    with atomic_file(md_path) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    logger.info(
        "tables: %d eval files, %d metric rows, %d run groups × %d tasks → %s, %s",
        len(records),
        len(df),
        len(summary),
        summary.columns.get_level_values(0).nunique(),
        csv_path,
        md_path,
    )
    return df
