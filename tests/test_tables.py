"""Eval JSON → tidy metrics.csv and summary.md: content, CIs against scipy, errors naming the file.

:func:`make_eval_tree` builds the tiny results/eval tree the figure and script tests reuse.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adapterflow.errors import AdapterflowError
from adapterflow.eval.metrics import mean_ci95
from adapterflow.report.tables import (
    COLUMNS,
    EvalFileError,
    collect_metrics,
    main_scores,
    read_eval,
    read_metrics,
    summarize,
    write_tables,
)

TASKS = {"news": "retrieval", "lee50": "sts", "trip": "triplets", "aniso": "anisotropy"}
# run name → (stage, seed), named as the workflow names them for stages called "stage1" and
# "stage2": the base model is evaluated once, adapters with three seeds.
RUNS = {"base": ("base", None)} | {
    f"{names}-seed{seed}": (stage, seed)
    for stage, names in (("stage1", "stage1"), ("stage2", "stage1+stage2"))
    for seed in (0, 1, 2)
}
BASE_SCORE = {"news": 0.40, "lee50": 0.60, "trip": 0.80, "aniso": 0.50}
STAGE_GAIN = {"base": 0.0, "stage1": 0.05, "stage2": 0.08}
SEED_SHIFT = {None: 0.0, 0: -0.01, 1: 0.0, 2: 0.02}


def main_score(task: str, stage: str, seed: int | None) -> float:
    return round(BASE_SCORE[task] + STAGE_GAIN[stage] + SEED_SHIFT.get(seed, 0.0), 6)


def scores_for(kind: str, main: float) -> dict:
    """An MTEB-like score entry of a task kind (with the non-metric entries evaluators add)."""
    if kind == "retrieval":
        entry = {f"{m}_at_{k}": main for m in ("ndcg", "recall") for k in (1, 5, 10)}
        entry |= {"mrr_at_10": main, "map_at_100": main, "recall_at_100": 1.0}
    elif kind == "sts":
        entry = {"spearman": main, "pearson": main - 0.02}
    elif kind == "triplets":
        entry = {"accuracy": main}
    else:
        entry = {"mean_cosine": main, "std_cosine": 0.1, "n_pairs": 45}
    return {"main_score": main, **entry, "hf_subset": "default", "languages": ["eng"]}


def eval_doc(task: str, run: str, stage: str, seed: int | None, model: str = "minilm") -> dict:
    kind = TASKS[task]
    return {
        "task_name": task,
        "task_kind": kind,
        "dataset": task,
        "evaluation_time": 1.5,
        "scores": {"test": [scores_for(kind, main_score(task, stage, seed))]},
        "run": {"name": run, "model": model, "stage": stage, "seed": seed, "adapter": None},
        "provenance": {"config_hash": "abc"},
    }


def details_frame(kind: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if kind == "retrieval":
        ndcg = rng.uniform(0, 1, 6).round(4)
        return pd.DataFrame(
            {
                "query_id": [f"q{i}" for i in range(6)],
                "ndcg_at_10": ndcg,
                "recall_at_10": (ndcg > 0.3).astype(float),
                "mrr_at_10": ndcg,
                "hit_at_10": (ndcg > 0.3).astype(int),
                "top_ids": "d1 d2 d3",
                "top_scores": "0.9 0.8 0.7",
            }
        )
    if kind == "sts":
        gold = rng.uniform(0, 1, 8).round(3)
        return pd.DataFrame(
            {
                "sentence1": [f"a {i}" for i in range(8)],
                "sentence2": [f"b {i}" for i in range(8)],
                "gold": gold,
                "score": (gold * 0.8 + rng.normal(0, 0.1, 8)).round(4),
                "label": "",
            }
        )
    if kind == "triplets":
        pos = rng.uniform(0.3, 0.9, 5).round(4)
        neg = rng.uniform(0.2, 0.7, 5).round(4)
        return pd.DataFrame(
            {
                "anchor": list("abcde"),
                "positive": list("fghij"),
                "negative": list("klmno"),
                "pos_score": pos,
                "neg_score": neg,
                "correct": (pos > neg).astype(int),
            }
        )
    return pd.DataFrame(
        {"i": range(10), "j": range(1, 11), "cosine": rng.uniform(0.1, 0.9, 10).round(4)}
    )


def make_eval_tree(root: Path, model: str = "minilm") -> list[Path]:
    """Write results/eval/{model}/{run}/{task}.json and .details.csv under ``root``; return the
    JSON paths."""
    paths = []
    for number, (run, (stage, seed)) in enumerate(RUNS.items()):
        for task, kind in TASKS.items():
            folder = root / "results" / "eval" / model / run
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{task}.json"
            path.write_text(json.dumps(eval_doc(task, run, stage, seed, model), indent=2))
            details_frame(kind, number).to_csv(folder / f"{task}.details.csv", index=False)
            paths.append(path)
    return paths


@pytest.fixture
def evals(tmp_path) -> list[Path]:
    return make_eval_tree(tmp_path)


def test_tidy_table_has_one_row_per_run_task_split_metric(evals):
    df = collect_metrics(evals)
    assert df.columns.tolist() == COLUMNS
    assert str(df["seed"].dtype) == "Int64"
    assert df["value"].dtype == float
    expected_rows = sum(
        sum(1 for v in scores_for(kind, 0.5).values() if not isinstance(v, str | list))
        for kind in TASKS.values()
    ) * len(RUNS)
    assert len(df) == expected_rows
    assert not df.duplicated(["run", "task", "split", "metric"]).any()
    assert not df["metric"].isin(["hf_subset", "languages"]).any()
    base = df[df["run"] == "base"]
    assert base["seed"].isna().all() and (base["stage"] == "base").all()
    row = df[(df["run"] == "stage1-seed2") & (df["task"] == "lee50") & (df["metric"] == "spearman")]
    assert row["seed"].tolist() == [2]
    assert row["value"].tolist() == [pytest.approx(0.60 + 0.05 + 0.02)]
    # Sorted by training order of stages, whatever order the files came in.
    assert df["stage"].drop_duplicates().tolist() == ["base", "stage1", "stage2"]
    pd.testing.assert_frame_equal(collect_metrics(list(reversed(evals))), df)


@pytest.mark.parametrize("values", [[0.7, 0.72, 0.75], [0.1, 0.5], [0.3, 0.31, 0.29, 0.35]])
def test_ci_of_the_summary_matches_scipy_t_interval(tmp_path, values):
    for seed, value in enumerate(values):
        doc = eval_doc("lee50", f"stage1+stage2-seed{seed}", "stage2", seed)
        doc["scores"]["test"][0]["main_score"] = value
        (tmp_path / f"{seed}.json").write_text(json.dumps(doc))
    summary = summarize(collect_metrics(sorted(tmp_path.glob("*.json"))))
    cell = summary.loc["minilm stage1+stage2", "lee50"]
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert cell["mean"] == pytest.approx(np.mean(values))
    assert cell["ci95"] == pytest.approx((high - low) / 2)
    assert cell["n"] == len(values)
    assert mean_ci95([0.4]) == (0.4, 0.0)


def test_summary_aggregates_seeds_per_run_group(evals):
    summary = summarize(collect_metrics(evals))
    assert summary.index.tolist() == ["minilm base", "minilm stage1", "minilm stage1+stage2"]
    assert sorted(summary.columns.get_level_values(0).unique()) == sorted(TASKS)
    seeds = [main_score("lee50", "stage1", seed) for seed in (0, 1, 2)]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(seeds), scale=stats.sem(seeds))
    cell = summary.loc["minilm stage1", "lee50"]
    assert cell["mean"] == pytest.approx(np.mean(seeds))
    assert cell["ci95"] == pytest.approx((high - low) / 2)
    assert cell["n"] == 3
    base = summary.loc["minilm base", "news"]
    assert (base["mean"], base["ci95"], base["n"]) == (pytest.approx(0.40), 0.0, 1)


def test_summary_prefers_the_test_split(tmp_path):
    doc = eval_doc("lee50", "base", "base", None)
    doc["scores"]["dev"] = [{"main_score": 0.99}]
    (tmp_path / "a.json").write_text(json.dumps(doc))
    main = main_scores(collect_metrics([tmp_path / "a.json"]))
    assert main["value"].tolist() == [pytest.approx(0.60)]
    doc["scores"] = {"dev": [{"main_score": 0.1}], "validation": [{"main_score": 0.2}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="none is 'test'"):
        summarize(collect_metrics([tmp_path / "a.json"]))


def test_two_runs_of_one_group_with_one_seed_are_refused(tmp_path):
    # A run name without its seed is kept whole, so "wiki" (seed 0) joins "wiki-seed0".
    for run in ("wiki", "wiki-seed0"):
        (tmp_path / f"{run}.json").write_text(json.dumps(eval_doc("lee50", run, "stage1", 0)))
    with pytest.raises(
        ValueError, match=r"runs \['wiki', 'wiki-seed0'\] are all 'minilm wiki' with seed 0 on task"
    ):
        summarize(collect_metrics(sorted(tmp_path.glob("*.json"))))


def test_a_group_of_two_stage_levels_is_refused(tmp_path):
    # A stage named "base" (the config check refuses it) would join the base model's group.
    for run, stage, seed in (("base", "base", None), ("base-seed0", "stage1", 0)):
        doc = eval_doc("lee50", run, stage, seed)
        (tmp_path / f"{run}.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"'minilm base' but of stages \['base', 'stage1'\]"):
        summarize(collect_metrics(sorted(tmp_path.glob("*.json"))))


def write_runs(root: Path, runs: dict[str, tuple[str, int | None]], tasks=("lee50", "news")):
    """Eval JSON of ``runs`` (name → (stage, seed)) on ``tasks``, as results/eval lays them out."""
    paths = []
    for run, (stage, seed) in runs.items():
        for task in tasks:
            path = root / "results" / "eval" / "minilm" / run / f"{task}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(eval_doc(task, run, stage, seed)))
            paths.append(path)
    return paths


# Four one-stage experiments on one model, each with its own pair strategy (issue 12).
STRATEGY_RUNS = {"base": ("base", None)} | {
    f"{name}-seed{seed}": ("stage1", seed)
    for name in ("random", "qrels", "ict", "heading")
    for seed in (0, 1)
}


def test_four_strategies_on_one_model_are_compared_side_by_side(tmp_path):
    evals = write_runs(tmp_path, STRATEGY_RUNS)
    csv, md = tmp_path / "tables" / "metrics.csv", tmp_path / "tables" / "summary.md"
    df = write_tables(evals, csv, md)
    groups = ["minilm base", "minilm heading", "minilm ict", "minilm qrels", "minilm random"]
    summary = summarize(df)
    assert summary.index.tolist() == groups  # base once, then stage 1 by name
    assert summary[("lee50", "n")].tolist() == [1, 2, 2, 2, 2]
    rows = [line for line in md.read_text().splitlines() if line.startswith("| minilm")]
    assert [row.split(" | ")[0][2:] for row in rows] == groups
    table = pd.read_csv(csv, keep_default_na=False)
    assert table.columns.tolist() == COLUMNS
    assert list(dict.fromkeys(table["group"])) == groups
    runs = table.drop_duplicates("run").set_index("run")["group"]
    assert runs["ict-seed1"] == "minilm ict" and runs["base"] == "minilm base"
    assert table.groupby("group")["stage"].unique().map(list).to_dict() == {
        "minilm base": ["base"]
    } | {group: ["stage1"] for group in groups[1:]}


def test_experiments_sharing_stage1_and_differing_in_stage2(tmp_path):
    runs = {"base": ("base", None)}
    for seed in (0, 1, 2):
        runs |= {f"wiki-seed{seed}": ("stage1", seed)}
        runs |= {f"wiki+{name}-seed{seed}": ("stage2", seed) for name in ("news", "lee")}
    df = collect_metrics(write_runs(tmp_path, runs))
    summary = summarize(df)
    assert summary.index.tolist() == [
        "minilm base",
        "minilm wiki",
        "minilm wiki+lee",
        "minilm wiki+news",
    ]
    # Stage 1 is shared: three seeds, counted once, not once per experiment.
    assert summary[("news", "n")].tolist() == [1, 3, 3, 3]
    stage1 = [main_score("news", "stage1", seed) for seed in (0, 1, 2)]
    assert summary.loc["minilm wiki", ("news", "mean")] == pytest.approx(np.mean(stage1))
    main = main_scores(df)
    assert main.drop_duplicates("group")["stage"].tolist() == ["base", "stage1", "stage2", "stage2"]


def test_base_is_one_group_per_model(tmp_path):
    paths = []
    for model in ("minilm", "bge"):
        for run, stage, seed in (("base", "base", None), ("wiki-seed0", "stage1", 0)):
            path = tmp_path / model / run / "lee50.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(eval_doc("lee50", run, stage, seed, model=model)))
            paths.append(path)
    summary = summarize(collect_metrics(paths))
    assert summary.index.tolist() == ["bge base", "bge wiki", "minilm base", "minilm wiki"]


def test_tables_without_a_group_column_still_aggregate(tmp_path, evals):
    """Eval JSON and metrics.csv written before groups had names: groups come from run names."""
    csv = tmp_path / "old.csv"
    collect_metrics(evals).drop(columns="group").to_csv(csv, index=False)
    df = read_metrics(csv)
    assert df.columns.tolist() == COLUMNS
    pd.testing.assert_frame_equal(df, collect_metrics(evals))
    hand_made = df.drop(columns="group")
    assert summarize(hand_made).index.tolist() == [
        "minilm base",
        "minilm stage1",
        "minilm stage1+stage2",
    ]


def _broken(doc: dict, edit) -> dict:
    edit(doc)
    return doc


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: d.pop("task_name"), "task_name", "missing"),
        (lambda d: d.update(task_kind="ranking"), "task_kind", "not one of"),
        (lambda d: d["run"].pop("stage"), "run.stage", "missing"),
        (lambda d: d["run"].update(stage="stage3"), "run.stage", "not one of"),
        (lambda d: d["run"].pop("seed"), "run.seed", "missing"),
        (lambda d: d["run"].update(seed="0"), "run.seed", "expected an integer or null"),
        (lambda d: d["run"].update(seed=True), "run.seed", "expected an integer or null"),
        (lambda d: d.update(run="base"), "run", "expected dict, got str"),
        (lambda d: d["scores"]["test"][0].pop("main_score"), "scores.test[0].main_score", "miss"),
        (
            lambda d: d["scores"]["test"][0].update(main_score="0.5"),
            "scores.test[0].main_score",
            "",
        ),
        (lambda d: d["scores"].update(test=[]), "scores.test", "got 0 entries"),
        (lambda d: d.update(scores={}), "scores", "no split"),
    ],
)
def test_bad_json_raises_value_error_naming_file_and_key(tmp_path, edit, field, message):
    path = tmp_path / "results" / "eval" / "minilm" / "base" / "lee50.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_broken(eval_doc("lee50", "base", "base", None), edit)))
    with pytest.raises(ValueError) as caught:
        collect_metrics([path])
    assert isinstance(caught.value, EvalFileError) and isinstance(caught.value, AdapterflowError)
    assert str(caught.value).startswith(f"{path}: field '{field}': ")
    assert message in str(caught.value)


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "news.json"
    path.write_text('{"task_name": "news",\n "scores": }\n')
    with pytest.raises(ValueError, match=rf"^{path}:2: malformed JSON"):
        read_eval(path)


def test_the_same_run_and_task_twice_is_refused(tmp_path, evals):
    copy = tmp_path / "copy.json"
    copy.write_text(evals[0].read_text())
    with pytest.raises(EvalFileError, match=rf"{copy}: .*is also in {evals[0]}"):
        collect_metrics([*evals, copy])


def test_write_tables_csv_and_markdown(tmp_path, evals):
    csv, md = tmp_path / "tables" / "metrics.csv", tmp_path / "tables" / "summary.md"
    df = write_tables(evals, csv, md)
    pd.testing.assert_frame_equal(read_metrics(csv), df)
    first = csv.read_bytes()
    write_tables(list(reversed(evals)), csv, md)
    assert csv.read_bytes() == first  # stable bytes whatever the input order
    assert csv.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert "\nbase,minilm,base,minilm base,,aniso,test," in csv.read_text()  # no seed for base
    lines = md.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| run group"))
    assert header == "| run group | aniso | lee50 | news | trip |"
    rows = [line for line in lines if line.startswith("| minilm")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| minilm base",
        "| minilm stage1",
        "| minilm stage1+stage2",
    ]
    seeds = [main_score("lee50", "stage2", seed) for seed in (0, 1, 2)]
    mean, half = mean_ci95(seeds)
    assert f"| {mean:.3f} ± {half:.3f} (n=3) |" in rows[2]
    assert "| 0.600 ± 0.000 (n=1) |" in rows[0]
    text = md.read_text()
    assert "- **news** (retrieval, main score = `ndcg_at_10`): nDCG@k of each query" in text
    assert "- **lee50** (sts, main score = `spearman`): Spearman correlation" in text
    assert "- **trip** (triplets, main score = `accuracy`): fraction of triplets" in text
    assert "- **aniso** (anisotropy, main score = `mean_cosine`): mean cosine" in text
    assert not list(csv.parent.glob(".*.tmp"))


def test_task_missing_from_a_group_shows_a_dash(tmp_path, evals):
    kept = [p for p in evals if not ("+" in p.parent.name and p.stem == "news")]
    write_tables(kept, tmp_path / "m.csv", tmp_path / "s.md")
    row = next(r for r in (tmp_path / "s.md").read_text().splitlines() if "stage1+stage2" in r)
    assert row.split(" | ")[3] == "—"  # columns: group, aniso, lee50, news, trip


def test_bad_input_writes_nothing(tmp_path, evals):
    evals[3].write_text("{")
    csv, md = tmp_path / "t" / "metrics.csv", tmp_path / "t" / "summary.md"
    with pytest.raises(EvalFileError, match=str(evals[3])):
        write_tables(evals, csv, md)
    assert not csv.exists() and not md.exists()


def test_nan_main_score_survives_as_nan(tmp_path):
    # A constant embedding gives an undefined Spearman; the table keeps it visible.
    path = tmp_path / "a.json"
    doc = eval_doc("lee50", "base", "base", None)
    doc["scores"]["test"][0]["main_score"] = float("nan")
    path.write_text(json.dumps(doc))
    df = collect_metrics([path])
    assert math.isnan(df.query("metric == 'main_score'")["value"].item())
    assert math.isnan(summarize(df).loc["minilm base", ("lee50", "mean")])
    write_tables([path], tmp_path / "m.csv", tmp_path / "s.md")
    assert math.isnan(
        read_metrics(tmp_path / "m.csv").query("metric == 'main_score'")["value"].item()
    )
    assert "| minilm base | undefined (n=1) |" in (tmp_path / "s.md").read_text()


def test_ruler_evaluations_of_a_causal_lm_are_tabled(tmp_path):
    doc = eval_doc("lee50", "base", "base", None, model="smollm2")
    doc.update(task_name="niah-short", task_kind="ruler", dataset="short")
    # A generation eval's entry also holds per-variant and per-cell structures: not metrics.
    doc["scores"] = {
        "test": [
            {
                "main_score": 83.34,
                "niah_single_1": 100.0,
                "niah_multikey_1": 66.67,
                "variants": {"niah_single_1": {"score": 100.0, "n": 12}},
                "cells": [{"length": 256, "depth": 0.0, "score": 100.0, "n": 4}],
                "metric": "string_match_all",
                "hf_subset": "default",
            }
        ]
    }
    path = tmp_path / "niah-short.json"
    path.write_text(json.dumps(doc))
    df = write_tables([path], tmp_path / "generation.csv", tmp_path / "generation.md")
    assert sorted(df["metric"]) == ["main_score", "niah_multikey_1", "niah_single_1"]
    markdown = (tmp_path / "generation.md").read_text()
    assert "| smollm2 base | 83.340 ± 0.000 (n=1) |" in markdown
    assert "**niah-short** (ruler" in markdown and "0-100 (higher is better)" in markdown
