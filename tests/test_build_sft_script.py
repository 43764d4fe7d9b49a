"""Step build_sft from the command line (`python -m adapterflow build_sft`) as a user runs it,
and scripts/build_sft.py as a rule runs it."""

from __future__ import annotations

import json

import pytest

from adapterflow.generate.llm import build_tiny_lm

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "build_sft.py"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


def write_chat(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_command_line(tiny_lm, tmp_path):
    source = write_chat(tmp_path / "chats.jsonl", [chat("Q1?", "A1."), chat("Q2?", "A2.")])
    out = tmp_path / "sft"
    result = run_step(
        "build_sft", "--input", f"lm={tiny_lm}", "--input", f"chat={source}",
        "--output", str(out), "--param", f"sft={json.dumps({'chat': str(source)})}",
        "--param", "name=chats", "--log", str(tmp_path / "sft.log"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "chats" and manifest["splits"] == {"train": 2, "mirror": 2}
    assert "sft chats: 2 records read" in (tmp_path / "sft.log").read_text()


def test_a_record_without_assistant_turn_is_one_line_and_no_output(tiny_lm, tmp_path):
    rows = [chat("Q1?", "A1."), {"messages": [{"role": "user", "content": "Q2?"}]}]
    source = write_chat(tmp_path / "chats.jsonl", rows)
    out = tmp_path / "sft"
    result = run_step(
        "build_sft", "--input", f"lm={tiny_lm}", "--input", f"chat={source}",
        "--output", str(out), "--param", f"sft={json.dumps({'chat': str(source)})}",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {source}:2: field 'messages': no assistant turn (completion-only training "
        "needs one)"
    )
    assert not out.exists()


def test_snakemake_rule(tiny_lm, tmp_path):
    write_chat(tmp_path / "chats.jsonl", [chat("Q1?", "A1.")])
    run_script_rule(
        tmp_path,
        f"""
            rule build_sft:
                input:
                    lm="{tiny_lm}",
                    chat="chats.jsonl",
                output:
                    directory("sft/tiny/{{sft}}"),
                log:
                    "logs/build_sft/tiny/{{sft}}.log",
                params:
                    sft={{"chat": "chats.jsonl", "max_length": 64}},
                    name=lambda wc: wc.sft,
                script:
                    "{SCRIPT}"
            """,
        "sft/tiny/chats",
    )
    manifest = json.loads((tmp_path / "sft/tiny/chats/manifest.json").read_text())
    assert manifest["settings"]["max_length"] == 64 and manifest["splits"]["train"] == 1
