"""configs/knowledge.yaml, the causal-LM preset: its checks, its plan, and a one-seed cut of it
run for real with SmolLM2-135M-Instruct (few steps, a few questions per task)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adapterflow.config import validate_config
from adapterflow.errors import ConfigError

from conftest import REPO, job_counts, run_snakemake

PRESET = REPO / "configs" / "knowledge.yaml"
KNOWLEDGE = yaml.safe_load(PRESET.read_text())
RUNS = ["base", *(f"{s}-seed{n}" for n in (0, 1, 2) for s in (
    "facts-seq", "facts-mix", "facts-mix+talks", "facts-mix+talks-replay"))]  # fmt: skip
TASKS = ["facts-mirror", "facts-rephrased", "general", "niah-forget"]


def absolute_preset() -> dict:
    config = copy.deepcopy(KNOWLEDGE)
    for block in config["qa"].values():
        for key in ("facts", "templates"):
            block[key] = str(REPO / block[key])
    return config


def message(edit) -> str:
    config = absolute_preset()
    edit(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config, source="k.yaml", check_paths=False)
    return str(info.value)


# --- config checks ------------------------------------------------------------------------------


def test_preset_validates_and_fills_the_defaults():
    config = validate_config(absolute_preset(), source="k.yaml")
    assert config["stages"]["talks"]["gradient_accumulation_steps"] == 1
    assert config["stages"]["talks"]["replay"] is None
    assert config["sft"]["talks"]["on_long"] == "drop"
    assert config["lms"]["smollm2"]["lora_target_modules"][0] == "q_proj"
    # Embedding stages keep their blocks as they were (no LM keys filled in).
    default = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert "gradient_accumulation_steps" not in default["stages"]["news"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["sft"]["talks"].update(qa="chats"),
            "k.yaml: sft.talks.qa: 'chats' is not defined under qa (defined: facts, general, "
            "talks)",
        ),
        (
            lambda c: c["sft"]["talks"].update(niah="forget"),
            "k.yaml: sft.talks: give exactly one source: qa (a QA set), niah (a NIAH set) or chat "
            "(a chat JSONL file); got qa, niah",
        ),
        (
            lambda c: c["stages"]["talks-replay"]["replay"].update(fraction=1.0),
            "k.yaml: stages.talks-replay.replay.fraction: 1.0 is greater than or equal to the "
            "maximum of 1",
        ),
        (
            lambda c: c["stages"]["talks-replay"]["replay"].update(fraction=-0.1),
            "k.yaml: stages.talks-replay.replay.fraction: -0.1 is less than the minimum of 0",
        ),
        (
            lambda c: c["stages"]["talks"].update(triplets="x"),
            "k.yaml: stages.talks: give triplets (an embedding model's stage) or sft (a causal "
            "LM's stage), exactly one",
        ),
        (
            lambda c: c["experiments"]["sequential"].update(model="minilm"),
            "k.yaml: experiments.sequential: give model (an embedding model under models) or lm",
        ),
        (
            lambda c: c["tasks"]["general"].update(split="test"),
            "k.yaml: tasks.general.split: 'test' is not a split of an SFT set (train, mirror, "
            "rephrased, held_out)",
        ),
        (
            lambda c: c["tasks"]["general"].update(dataset="wiki"),
            "k.yaml: tasks.general.dataset: 'wiki' is not defined under sft",
        ),
        (
            lambda c: c["tasks"]["general"]["scoring"].update(model="mpnet"),
            "k.yaml: tasks.general.scoring.model: 'mpnet' is not defined under models",
        ),
        (
            lambda c: c["tasks"]["general"].update(judge={"kind": "openai", "model": "m"}),
            "k.yaml: tasks.general.judge: kind 'openai' needs base_url",
        ),
        (
            lambda c: c["tasks"]["general"].update(judge={"kind": "local", "lm": "big"}),
            "k.yaml: tasks.general.judge.lm: 'big' is not defined under lms",
        ),
        (
            lambda c: c["sft"]["facts-mix"].update(order="random"),
            "k.yaml: sft.facts-mix.order: 'random' is not one of ['sequential', 'interleaved']",
        ),
    ],
)
def test_bad_blocks_give_one_line_before_any_job(edit, expected):
    text = message(edit)
    assert text.startswith(expected), text
    assert "\n" not in text


def test_an_embedding_stage_under_an_lm_experiment_is_refused():
    def edit(config):
        config["models"]["minilm"]["lora_target_modules"] = ["query"]
        config["stages"]["facts-seq"] = {"triplets": "t"}

    assert "stages.facts-seq.triplets: 't' is not defined under triplets" in message(edit)


def test_a_missing_chat_file_is_found_before_any_job(tmp_path):
    config = absolute_preset()
    config["sft"]["mine"] = {"chat": "data/chats.jsonl"}
    with pytest.raises(ConfigError, match=r"sft\.mine\.chat: 'data/chats\.jsonl' does not exist"):
        validate_config(config, base_dir=tmp_path)


# --- the plan -----------------------------------------------------------------------------------


def test_dry_run_plans_every_run_of_the_preset():
    result = run_snakemake(
        "-n", "--forceall", "--configfile", str(PRESET), "--directory", str(REPO)
    )
    counts = job_counts(result.stdout)
    assert counts["train_lm_adapter"] == 12  # 2 stage-1 orders + 2 stage-2 recipes, 3 seeds
    assert counts["evaluate_lm"] == len(RUNS) * len(TASKS)
    assert counts["build_sft"] == 4 and counts["generate_qa"] == 3
    assert counts["aggregate"] == 1
    for run in RUNS:
        for task in TASKS:
            assert f"results/eval/smollm2/{run}/{task}.json" in result.stdout, (run, task)
    assert "results/lm_adapters/smollm2/facts-mix+talks-replay/seed2" in result.stdout


def test_slurm_profile_sends_training_and_evaluation_to_the_gpu_partition(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(absolute_preset()))
    result = run_snakemake(
        "-n", "--configfile", str(path), "--directory", str(tmp_path),
        "--workflow-profile", str(REPO / "profiles" / "slurm"),
    )  # fmt: skip
    for rule in ("train_lm_adapter", "evaluate_lm"):
        blocks = [b for b in result.stdout.split("\nrule ") if b.startswith(f"{rule}:")]
        assert blocks, rule
        assert all("slurm_partition=gpu" in b and "gpu=1" in b for b in blocks), rule


# --- a one-seed cut, run for real -----------------------------------------------------------------


def cut_preset() -> dict:
    """One seed, the interleaved experiment with replay, 2 stage-2 steps, a few questions."""
    config = absolute_preset()
    config["experiments"] = {
        "replay": {**config["experiments"]["replay"], "seeds": [0]},
    }
    # Stage 1 as in the preset (3 epochs): 12 steps taught SmolLM2 none of the first 16.
    config["stages"]["facts-mix"].update(eval_steps=16)
    config["stages"]["talks-replay"].update(epochs=None, max_steps=2)
    for task in ("facts-mirror", "facts-rephrased"):
        config["tasks"][task]["limit"] = 16
    config["tasks"]["general"]["limit"] = 4
    config["niah"]["forget"].update(depths=[50])
    return config


@pytest.fixture(scope="module")
def knowledge_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("knowledge-run")
    configfile = workdir / "knowledge.yaml"
    configfile.write_text(yaml.safe_dump(cut_preset()))
    run_snakemake(
        "--configfile", str(configfile), "--directory", str(workdir), "--cores", "2",
        "--resources", "gpu=1", timeout=2400,
    )  # fmt: skip
    return workdir


@pytest.mark.slow
def test_the_cut_trains_evaluates_and_tabulates_every_run(knowledge_run):
    results = knowledge_run / "results"
    runs = ["base", "facts-mix-seed0", "facts-mix+talks-replay-seed0"]
    scores = {}
    for run in runs:
        for task in TASKS:
            data = json.loads((results / f"eval/smollm2/{run}/{task}.json").read_text())
            split = next(iter(data["scores"]))
            scores[run, task] = data["scores"][split][0]
            assert data["provenance"]["config_sha256"]
    # Invented facts: the base model does not know them; after stage 1 it knows some of the
    # trained questions.
    assert scores["base", "facts-mirror"]["keyword"] <= 0.1
    assert scores["facts-mix-seed0", "facts-mirror"]["keyword"] > (
        scores["base", "facts-mirror"]["keyword"] + 0.2
    )
    assert scores["base", "general"]["keyword"] >= 0.75  # facts it knows
    # Stage 2 continued the stage-1 adapter, with replay records mixed in.
    stage2 = results / "lm_adapters/smollm2/facts-mix+talks-replay/seed0"
    assert (stage2 / "adapter_model.safetensors").is_file()
    log = (results / "logs/train_lm_adapter/smollm2/facts-mix+talks-replay/seed0.log").read_text()
    assert "adapter results/lm_adapters/smollm2/facts-mix/seed0 further" in log
    assert " replayed)" in log and " 0 replayed)" not in log
    rows = [
        json.loads(line)
        for line in (results / "lm_adapters/smollm2/facts-mix/seed0" / "train_log.jsonl")
        .read_text()
        .splitlines()
    ]
    assert {r["split"] for r in rows if "eval_loss" in r} == {"mirror", "rephrased"}
    # One metrics.csv, the run groups by stage names.
    metrics = pd.read_csv(results / "tables/metrics.csv")
    groups = set(metrics["group"])
    assert {"smollm2 base", "smollm2 facts-mix", "smollm2 facts-mix+talks-replay"} <= groups
    qa = metrics[(metrics["task"] == "facts-rephrased") & (metrics["metric"] == "hybrid")]
    assert len(qa) == 3
    summary = (results / "tables/summary.md").read_text()
    assert "smollm2 facts-mix+talks-replay" in summary and "facts-rephrased" in summary
    # Details: the generated text of every question.
    details = pd.read_csv(results / "eval/smollm2/facts-mix-seed0/facts-mirror.details.csv")
    assert len(details) == 16 and details["prediction"].notna().all()
    for ext in ("png", "svg"):
        assert (results / f"figures/ruler/smollm2/base/niah-forget.{ext}").is_file()


@pytest.mark.slow
def test_the_cut_reruns_nothing_and_a_stage2_edit_reruns_only_stage2(knowledge_run, tmp_path):
    configfile = knowledge_run / "knowledge.yaml"
    result = run_snakemake("-n", "--configfile", str(configfile), "--directory", str(knowledge_run))
    assert "Nothing to be done" in result.stdout + result.stderr
    config = cut_preset()
    config["stages"]["talks-replay"]["learning_rate"] = 1.0e-4
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", str(edited), "--directory", str(knowledge_run))
    counts = job_counts(result.stdout)
    assert counts["train_lm_adapter"] == 1
    assert counts["evaluate_lm"] == len(TASKS)
    assert "build_sft" not in counts and "convert_llm" not in counts
