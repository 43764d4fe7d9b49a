"""What a rerun plans after each kind of change, on copies of one completed run of the tiny
workflow (tests/fixtures/tiny_workflow; the `tiny_run` fixture of conftest.py).

Each test changes one thing and reads the plan from `snakemake -n` (job counts) and
`snakemake --summary` (per output file); nothing is run. A stage-2 value is covered by
test_workflow.py on the default run; here: nothing changed, the config rewritten in another key
order, a stage-1 value, a dataset's source, and the library code the scripts import (declared to
Snakemake by `library_code()` in rules/common.smk).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_run, job_counts, run_snakemake, summary_plans, write_config

pytestmark = pytest.mark.slow

# Stage 1 and everything after it: both adapters, the corpus embeddings and evaluations of the
# two adapter runs, then tables and figures. The base model's results are not touched.
TRAINING_AND_AFTER = {
    "train_adapter": 2,
    "embed_corpus": 2,
    "evaluate": 4,
    "aggregate": 1,
    "figures": 1,
    "all": 1,
    "total": 11,
}
ADAPTERS = ["results/adapters/minilm/s1/seed0", "results/adapters/minilm/s1+s2/seed0"]
BASE_RESULTS = [
    "results/embeddings/minilm/base/docs.npz",
    "results/eval/minilm/base/docs.json",
    "results/eval/minilm/base/sts.json",
]


@pytest.fixture
def completed(tiny_run, tmp_path) -> tuple[Path, Path]:
    """(working directory, config file) of a fresh copy of the completed tiny run."""
    return copy_run(tiny_run, tmp_path / "copy")


def plan(workdir: Path, configfile: Path, env: dict | None = None) -> tuple[dict, dict, str]:
    """(job counts of `-n`, `--summary` plan per output file, `-n` output)."""
    args = ("--configfile", str(configfile), "--directory", str(workdir))
    dry = run_snakemake("-n", *args, cwd=workdir, env=env)
    summary = run_snakemake("--summary", *args, cwd=workdir, env=env)
    return job_counts(dry.stdout), summary_plans(summary.stdout), dry.stdout + dry.stderr


def edited(configfile: Path, edit) -> Path:
    config = yaml.safe_load(configfile.read_text())
    edit(config)
    return write_config(configfile.with_name("edited.yaml"), config)


def test_nothing_changed_plans_nothing(completed):
    counts, plans, output = plan(*completed)
    assert counts == {} and "Nothing to be done" in output
    assert len(plans) > 30 and set(plans.values()) == {"no update"}, plans


def test_key_order_and_layout_of_the_config_plan_nothing(completed):
    """Params are compared as written: blocks are passed sorted (sorted_block in
    rules/common.smk), so the same config in another key order and YAML style is no change."""
    workdir, configfile = completed

    def reverse(value):
        if isinstance(value, dict):
            return {key: reverse(value[key]) for key in reversed(list(value))}
        return [reverse(item) for item in value] if isinstance(value, list) else value

    config = reverse(yaml.safe_load(configfile.read_text()))
    other = configfile.with_name("reordered.yaml")
    other.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=True, width=60))
    assert other.read_text() != configfile.read_text()
    counts, _, output = plan(workdir, other)
    assert counts == {} and "Nothing to be done" in output


def test_a_stage1_value_reruns_both_stages_and_what_follows(completed):
    workdir, configfile = completed
    configfile = edited(configfile, lambda c: c["stages"]["s1"].update(learning_rate=2.0e-3))
    counts, plans, output = plan(workdir, configfile)
    assert counts == TRAINING_AND_AFTER
    assert "wildcards: model=minilm, stages=s1, seed=0" in output
    assert all(plans[adapter] == "update pending" for adapter in ADAPTERS)
    # The data and the shared tokenized triplets stay; so do the base model's scores.
    for path in BASE_RESULTS + ["results/tokenized/minilm/docs-random", "results/clean/docs"]:
        assert plans[path] == "no update", path


@pytest.mark.parametrize(
    ("dataset", "expected", "untouched"),
    [
        (
            # sts is only evaluated, but every evaluated split is held out of the training
            # pairs, so the training data (and every adapter) depends on it too.
            "sts",
            {
                "fetch_raw": 1,
                "prepare_dataset": 1,
                "make_pairs": 1,
                "mine_triplets": 1,
                "tokenize_triplets": 1,
                "train_adapter": 2,
                "embed_corpus": 2,
                "evaluate": 5,
                "aggregate": 1,
                "figures": 1,
                "all": 1,
                "total": 17,
            },
            [
                "results/raw/docs",
                "results/clean/docs",
                "results/embeddings/minilm/base/docs.npz",
                "results/eval/minilm/base/docs.json",
            ],
        ),
        (
            "docs",
            {
                "fetch_raw": 1,
                "prepare_dataset": 1,
                "make_pairs": 1,
                "mine_triplets": 1,
                "tokenize_triplets": 1,
                "train_adapter": 2,
                "embed_corpus": 3,
                "evaluate": 5,
                "aggregate": 1,
                "figures": 1,
                "all": 1,
                "total": 18,
            },
            ["results/raw/sts", "results/clean/sts", "results/eval/minilm/base/sts.json"],
        ),
    ],
)
def test_a_dataset_source_reruns_what_depends_on_that_dataset_only(
    completed, tmp_path, dataset, expected, untouched
):
    workdir, configfile = completed
    config = yaml.safe_load(configfile.read_text())
    moved = tmp_path / "moved" / dataset  # the same files from another place
    shutil.copytree(config["datasets"][dataset]["source"]["path"], moved)
    configfile = edited(
        configfile, lambda c: c["datasets"][dataset]["source"].update(path=str(moved))
    )
    counts, plans, _ = plan(workdir, configfile)
    assert counts == expected
    assert plans[f"results/raw/{dataset}"] == "update pending"
    assert plans[f"results/eval/minilm/base/{dataset}.json"] == "update pending"
    for path in untouched:
        assert plans[path] == "no update", path


# --- library code ------------------------------------------------------------------------------


@pytest.fixture
def library(tmp_path) -> tuple[Path, dict]:
    """A copy of the adapterflow package and the environment that makes Snakemake (and the
    `library_code()` hashes in rules/common.smk) use it instead of the checkout."""
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "adapterflow",
        src / "adapterflow",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    pythonpath = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    return src / "adapterflow", {**os.environ, "PYTHONPATH": pythonpath}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_the_unedited_library_copy_plans_nothing(completed, library):
    """The hashes depend on the code, not on where the package is installed."""
    package, env = library
    counts, _, output = plan(*completed, env=env)
    assert counts == {} and "Nothing to be done" in output


def test_a_training_code_change_reruns_training_and_what_follows(completed, library):
    package, env = library
    append(package / "train" / "adapter.py", "\n_CHANGED = True\n")
    counts, plans, output = plan(*completed, env=env)
    assert counts == TRAINING_AND_AFTER
    assert "Params have changed since last execution" in output
    assert all(plans[adapter] == "update pending" for adapter in ADAPTERS)
    for path in BASE_RESULTS + ["results/tokenized/minilm/docs-random"]:
        assert plans[path] == "no update", path


def test_a_plotting_code_change_reruns_the_figures_only(completed, library):
    package, env = library
    append(package / "plots" / "figures.py", "\n_CHANGED = True\n")
    counts, _, _ = plan(*completed, env=env)
    assert counts == {"figures": 1, "all": 1, "total": 2}
