"""Figures of the causal-LM track: the bars, heatmap cells and loss lines hold the means over
seeds, the planned files are written (and only those), and scripts/plot_lm.py runs as a rule
and from the command line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from adapterflow.eval.metrics import mean_ci95
from adapterflow.plots.lm import (
    category_table,
    group_logs,
    lm_figures,
    log_group,
    loss_summary,
    planned_lm_figures,
    plot_category_heatmap,
    plot_lm_bars,
    plot_loss_curves,
)
from adapterflow.report.tables import read_metrics, write_tables

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "plot_lm.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LM = "lm"
SEEDS = (0, 1, 2)
# (run-name stages, stage): base, a stage-1 group and a stage 1+2 group.
STAGE_GROUPS = (("facts", "stage1"), ("facts+chat", "stage2"))
GROUPS = ["lm base", "lm facts", "lm facts+chat"]
TASKS = {"facts_qa": "qa", "chat_qa": "qa", "niah": "ruler"}
CATEGORIES = ("person", "place")
TRAIN_STEPS = (1, 2, 3, 4, 5, 6)
EVAL_STEPS = (3, 6)


def runs() -> list[tuple[str, str, int | None]]:
    found = [("base", "base", None)]
    for stages, stage in STAGE_GROUPS:
        found += [(f"{stages}-seed{seed}", stage, seed) for seed in SEEDS]
    return found


def keyword(stage: str, seed: int | None) -> float:
    """A distinct keyword score for every run, so a mean over the wrong runs shows."""
    return {"base": 0.1, "stage1": 0.5 + 0.1 * (seed or 0), "stage2": 0.6 + 0.05 * (seed or 0)}[
        stage
    ]


def qa_scores(stage: str, seed: int | None) -> dict[str, float]:
    k = keyword(stage, seed)
    return {"keyword": k, "semantic": k + 0.1, "hybrid": k + 0.05}


def category_score(category: str, stage: str, seed: int | None) -> float:
    return keyword(stage, seed) * (1.0 if category == "person" else 0.5)


def ruler_score(stage: str, seed: int | None) -> float:
    seed = seed or 0
    return {"base": 40.0, "stage1": 50.0 + seed, "stage2": 30.0 + 2 * seed}[stage]


def eval_entry(task: str, stage: str, seed: int | None) -> dict:
    if TASKS[task] == "ruler":
        score = ruler_score(stage, seed)
        return {"main_score": score, "niah_single_1": score}
    scores = qa_scores(stage, seed)
    entry = {"main_score": scores["keyword"], **scores, "keyword_recall": 0.9, "cosine": 0.7}
    entry["n"] = 10
    entry["by_entity"] = {"e1": {"keyword": 0.5, "n": 10}}
    entry["by_kind"] = {"fact": {"keyword": 0.5, "n": 10}}
    if task == "facts_qa":  # chat_qa has no categories: the heatmap must skip it
        entry["by_category"] = {
            c: {"keyword": category_score(c, stage, seed), "semantic": 0.5, "n": 5}
            for c in CATEGORIES
        }
    return entry


def train_loss(step: int, seed: int) -> float:
    return 2.0 / step + 0.1 * seed


def mirror_loss(step: int, seed: int) -> float:
    return 1.0 / step + 0.05 * seed


def rephrased_loss(step: int, seed: int) -> float:
    return mirror_loss(step, seed) + 0.3 + 0.01 * seed


def write_train_log(path: Path, seed: int, with_eval: bool) -> Path:
    rows = []
    for step in TRAIN_STEPS:
        rows.append({"step": step, "epoch": step / 6, "loss": train_loss(step, seed), "lr": 1e-4})
        if with_eval and step in EVAL_STEPS:
            rows.append({"step": step, "epoch": step / 6, "split": "mirror",
                         "eval_loss": mirror_loss(step, seed)})  # fmt: skip
            rows.append({"step": step, "epoch": step / 6, "split": "rephrased",
                         "eval_loss": rephrased_loss(step, seed)})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def make_lm_tree(root: Path) -> dict:
    """results/ as aggregate, evaluate_lm and train_lm_adapter leave it (relative paths)."""
    evals = []
    for run, stage, seed in runs():
        for task, kind in TASKS.items():
            split = "test" if kind == "ruler" else "rephrased"
            record = {
                "task_name": task,
                "task_kind": kind,
                "run": {"name": run, "model": LM, "stage": stage, "seed": seed},
                "scores": {split: [eval_entry(task, stage, seed)]},
            }
            path = Path("results/eval") / LM / run / f"{task}.json"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(json.dumps(record))
            evals.append(str(path))
    tables = root / "results/tables"
    write_tables([root / p for p in evals], tables / "metrics.csv", tables / "summary.md")
    logs = []
    for stages, stage in STAGE_GROUPS:
        for seed in SEEDS:
            path = Path("results/lm_adapters") / LM / stages / f"seed{seed}" / "train_log.jsonl"
            # Stage 2 is logged without evaluation: its panel shows train loss only.
            write_train_log(root / path, seed, with_eval=stage == "stage1")
            logs.append(str(path))
    return {"metrics": "results/tables/metrics.csv", "evals": evals, "logs": logs}


@pytest.fixture
def tree(tmp_path) -> dict:
    return make_lm_tree(tmp_path)


@pytest.fixture
def metrics(tmp_path, tree):
    return read_metrics(tmp_path / tree["metrics"])


def seed_means(function, *args) -> list[float]:
    """Per run group (base, stage 1, stage 2): the mean of ``function(*args, stage, seed)``."""
    base = [function(*args, "base", None)]
    return [np.mean(base)] + [
        np.mean([function(*args, stage, seed) for seed in SEEDS]) for _, stage in STAGE_GROUPS
    ]


def planned(out: Path) -> list[Path]:
    return planned_lm_figures(TASKS, out)


def test_planned_names(tmp_path):
    names = [p.name for p in planned(tmp_path)]
    bases = ["chat_qa_bars", "facts_qa_bars", "niah_bars", "categories", "loss_curves"]
    assert names == [f"{base}.{ext}" for base in bases for ext in ("png", "svg")]


def test_writes_the_planned_figures(tmp_path, tree):
    out = tmp_path / "results/figures/lm"
    written = lm_figures(
        tmp_path / tree["metrics"],
        [tmp_path / p for p in tree["evals"]],
        [tmp_path / p for p in tree["logs"]],
        out,
        expected=planned(out),
    )
    assert written == planned(out)
    assert sorted(out.iterdir()) == sorted(written)
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_MAGIC)
        else:
            assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_qa_bars_are_the_seed_means_of_each_metric(metrics):
    fig = plot_lm_bars(metrics, "facts_qa")
    ax = fig.axes[0]
    assert [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()] == GROUPS
    expected = [
        mean
        for metric in ("keyword", "semantic", "hybrid")
        for mean in seed_means(lambda stage, seed, m=metric: qa_scores(stage, seed)[m])
    ]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["keyword", "semantic", "hybrid"]
    assert "facts_qa" in ax.get_title() and ax.get_ylabel()
    # The error bars are the 95 % t-intervals over seeds: none for the base model's one run.
    keyword_bars = next(c for c in ax.containers if isinstance(c, ErrorbarContainer))
    (segments,) = [lines.get_segments() for lines in keyword_bars.lines[2]]
    halves = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
    runs_of = [[keyword("base", None)]] + [
        [keyword(stage, seed) for seed in SEEDS] for _, stage in STAGE_GROUPS
    ]
    assert halves == pytest.approx([mean_ci95(values)[1] for values in runs_of])


def test_qa_bars_skip_a_metric_the_table_lacks(metrics):
    no_semantic = metrics[metrics["metric"] != "semantic"]
    ax = plot_lm_bars(no_semantic, "facts_qa").axes[0]
    assert len(ax.patches) == 2 * len(GROUPS)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["keyword", "hybrid"]
    hybrid = seed_means(lambda stage, seed: qa_scores(stage, seed)["hybrid"])
    assert [bar.get_height() for bar in ax.patches[len(GROUPS) :]] == pytest.approx(hybrid)


def test_ruler_bars_are_the_main_score_means(metrics):
    ax = plot_lm_bars(metrics, "niah").axes[0]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx(seed_means(ruler_score))
    assert "RULER" in ax.get_ylabel() and "niah" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "stage1", "stage2"]


def test_heatmap_cells_are_the_category_means(tmp_path, tree):
    evals = [tmp_path / p for p in tree["evals"]]
    table = category_table(evals)
    assert list(table.columns) == GROUPS
    assert list(table.index) == [f"facts_qa · {c}" for c in CATEGORIES]  # chat_qa: none
    fig = plot_category_heatmap(evals)
    cells = np.asarray(fig.axes[0].images[0].get_array())
    expected = np.array([seed_means(category_score, c) for c in CATEGORIES])
    np.testing.assert_allclose(cells, expected)
    np.testing.assert_allclose(table.to_numpy(), expected)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [f"{v:.2f}" for v in expected.ravel()]
    assert fig.axes[0].images[0].get_clim() == (0, 1)


def test_heatmap_without_categories_says_so(tmp_path, tree):
    evals = [tmp_path / p for p in tree["evals"] if "chat_qa" in p]
    fig = plot_category_heatmap(evals)
    assert "no qa task" in fig.axes[0].texts[0].get_text()


def test_loss_lines_are_the_per_step_means(tmp_path, tree):
    logs = group_logs(tmp_path / p for p in tree["logs"])
    assert list(logs) == ["lm facts", "lm facts+chat"]
    fig = plot_loss_curves(logs)
    facts, chat = fig.axes[:2]
    train = [np.mean([train_loss(s, seed) for seed in SEEDS]) for s in TRAIN_STEPS]
    mirror = [np.mean([mirror_loss(s, seed) for seed in SEEDS]) for s in EVAL_STEPS]
    rephrased = [np.mean([rephrased_loss(s, seed) for seed in SEEDS]) for s in EVAL_STEPS]
    assert [line.get_label() for line in facts.lines] == [
        "train loss", "eval loss · mirror", "eval loss · rephrased",
    ]  # fmt: skip
    for line, steps, means in zip(
        facts.lines, (TRAIN_STEPS, EVAL_STEPS, EVAL_STEPS), (train, mirror, rephrased), strict=True
    ):
        assert list(line.get_xdata()) == list(steps)
        assert list(line.get_ydata()) == pytest.approx(means)
    assert len(facts.collections) == 3  # a min-max band per line: three seeds
    gap = rephrased[-1] - mirror[-1]
    assert f"rephrased − mirror = {gap:+.3f}" in facts.get_title()
    # Stage 2 was logged without evaluation: train loss only.
    assert [line.get_label() for line in chat.lines] == ["train loss"]
    assert list(chat.lines[0].get_ydata()) == pytest.approx(train)


def test_loss_summary_keeps_the_last_row_of_a_step_logged_twice(tmp_path):
    path = write_train_log(tmp_path / "lm/facts/seed0/train_log.jsonl", 0, with_eval=False)
    with open(path, "a") as handle:
        handle.write(json.dumps({"step": 6, "loss": 9.0}) + "\n")
    summary = loss_summary([path])
    assert summary.loc[summary["step"] == 6, "mean"].tolist() == [9.0]


def test_log_labels_are_the_run_groups_of_the_tables(tmp_path, tree, metrics):
    labels = {log_group(p) for p in tree["logs"]}
    assert labels == set(metrics.loc[metrics["stage"] != "base", "group"])
    # An adapter directory names the same group as the log inside it.
    assert log_group(Path(tree["logs"][0]).parent) == log_group(tree["logs"][0])
    with pytest.raises(ValueError, match="expected .*seed"):
        log_group("results/lm_adapters/lm/facts/train_log.jsonl")


def test_expected_mismatch_names_the_files_and_draws_nothing(tmp_path, tree):
    out = tmp_path / "figs"
    declared = [p for p in planned(out) if p.name != "loss_curves.svg"]
    declared.append(out / "extra.png")
    with pytest.raises(ValueError) as caught:
        lm_figures(
            tmp_path / tree["metrics"],
            [tmp_path / p for p in tree["evals"]],
            [tmp_path / p for p in tree["logs"]],
            out,
            expected=declared,
        )
    message = str(caught.value)
    assert "extra.png" in message.split("undeclared")[0]  # declared, not made
    assert "loss_curves.svg" in message.split("undeclared")[1]
    assert not out.exists()


def test_base_only_draws_a_placeholder_loss_figure(tmp_path, tree):
    out = tmp_path / "figs"
    evals = [tmp_path / p for p in tree["evals"] if "/base/" in p]
    written = lm_figures(tmp_path / tree["metrics"], evals, [], out)
    assert written == planned(out)
    assert all(path.exists() for path in written)


def snakefile(tree: dict, outputs: list[str], logs: list[str]) -> str:
    def listing(paths):
        return "".join(f"\n                    {json.dumps(str(p))}," for p in paths)

    return f"""
        rule plot_lm:
            input:
                metrics="{tree["metrics"]}",
                evals=[{listing(tree["evals"])}
                ],
                logs=[{listing(logs)}
                ],
            output:{listing(outputs)}
            log:
                "results/logs/plot_lm/plot_lm.log",
            params:
                out_dir="results/figures/lm",
            script:
                "{SCRIPT}"
        """


def test_snakemake_rule(tmp_path, tree):
    """The names the rule passes: input.metrics, input.evals, input.logs (here the adapter
    directories, as a rule depending on train_lm_adapter's outputs names them),
    params.out_dir, and every figure as an output."""
    outputs = [str(p) for p in planned(Path("results/figures/lm"))]
    directories = sorted({str(Path(p).parent) for p in tree["logs"]})
    run_script_rule(tmp_path, snakefile(tree, outputs, directories), timeout=300)
    for name in outputs:
        assert (tmp_path / name).stat().st_size > 1000
    log = (tmp_path / "results/logs/plot_lm/plot_lm.log").read_text()
    assert "LM figures: 3 tasks, 2 adapter groups, 10 files" in log


def test_command_line(tmp_path, tree):
    inputs = [arg for p in tree["evals"] for arg in ("--input", f"evals={p}")]
    inputs += [arg for p in tree["logs"] for arg in ("--input", f"logs={p}")]
    result = run_step(
        "plot_lm", "--input", f"metrics={tree['metrics']}", *inputs,
        "--param", "out_dir=figs", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(
        p.name for p in planned(Path("figs"))
    )
    bad = run_step(
        "plot_lm", "--input", f"metrics={tree['metrics']}", *inputs,
        "--param", "out_dir=figs2", "--output", "figs2/other.png", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1
    last = bad.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: LM figures differ from the declared outputs")
        and "Traceback" not in bad.stderr
    )
    assert not (tmp_path / "figs2").exists()
