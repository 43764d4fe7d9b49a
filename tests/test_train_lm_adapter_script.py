"""Step train_lm_adapter from the command line as a user runs it, and
scripts/train_lm_adapter.py as a rule runs it."""

from __future__ import annotations

import json

import pytest

from adapterflow.generate.llm import build_tiny_lm
from adapterflow.train.sft import build_sft

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "train_lm_adapter.py"
STAGE = {"sft": "chats", "max_steps": 2, "batch_size": 2, "logging_steps": 1}


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    lm = build_tiny_lm(root / "lm")
    rows = [
        {"messages": [{"role": "user", "content": f"Q{i}?"},
                      {"role": "assistant", "content": f"A{i}."}]}
        for i in range(4)
    ]  # fmt: skip
    source = root / "chats.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_sft({"chat": str(source)}, lm, root / "sft", chat=source)
    return lm, root / "sft"


def test_command_line(sft, tmp_path):
    lm, sft_dir = sft
    out = tmp_path / "adapter"
    result = run_step(
        "train_lm_adapter", "--input", f"sft={sft_dir}", "--output", str(out),
        "--param", f"lm={json.dumps({'path': str(lm), 'lora_target_modules': ['q_proj']})}",
        "--param", f"stage={json.dumps(STAGE)}", "--param", "seed=0",
        "--param", f"checkpoint_dir={tmp_path / 'ckpt'}", "--threads", "1",
        "--log", str(tmp_path / "train.log"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "adapter_model.safetensors").is_file()
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert "trained 2 steps (from scratch)" in (tmp_path / "train.log").read_text()


def test_a_replay_stage_without_its_set_is_one_line(sft, tmp_path):
    lm, sft_dir = sft
    stage = {**STAGE, "replay": {"sft": "general", "fraction": 0.2}}
    result = run_step(
        "train_lm_adapter", "--input", f"sft={sft_dir}", "--output", str(tmp_path / "a"),
        "--param", f"lm={json.dumps({'path': str(lm)})}", "--param", f"stage={json.dumps(stage)}",
        "--param", "seed=0", "--param", f"checkpoint_dir={tmp_path / 'ckpt'}",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: replay from sft general: its SFT set was not given"
    )
    assert not (tmp_path / "a").exists()


def test_snakemake_rule(sft, tmp_path):
    lm, sft_dir = sft
    run_script_rule(
        tmp_path,
        f"""
            rule train_lm_adapter:
                input:
                    sft="{sft_dir}",
                output:
                    directory("lm_adapters/tiny/{{stages}}/seed{{seed}}"),
                log:
                    "logs/train_lm_adapter/tiny/{{stages}}/seed{{seed}}.log",
                params:
                    lm={{"path": "{lm}", "lora_target_modules": ["q_proj", "v_proj"]}},
                    stage={STAGE!r},
                    seed=lambda wc: int(wc.seed),
                    checkpoint_dir=lambda wc: f"checkpoints/tiny/{{wc.stages}}/seed{{wc.seed}}",
                script:
                    "{SCRIPT}"
            """,
        "lm_adapters/tiny/chats/seed0",
    )
    config = json.loads((tmp_path / "lm_adapters/tiny/chats/seed0/adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert (tmp_path / "checkpoints/tiny/chats/seed0/run.json").is_file()
