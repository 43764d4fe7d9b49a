"""Step evaluate_lm from the command line (`python -m adapterflow evaluate_lm`)
as a user runs it, and scripts/evaluate_lm.py as a rule runs it."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pandas as pd
import pytest
from test_generation_eval import make_records, write_set

from adapterflow.generate.llm import build_tiny_lm
from adapterflow.train.sft import build_sft

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "evaluate_lm.py"
TASK = json.dumps({"kind": "ruler", "max_new_tokens": 3, "batch_size": 4})


def run(dataset, out, *args: str):
    return run_step(
        "evaluate_lm", "--input", f"dataset={dataset}", "--param", f"task={TASK}",
        "--output", f"json={out / 'niah.json'}", "--output", f"details={out / 'niah.details.csv'}",
        *args,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


def test_command_line_with_limit(tiny_lm, tmp_path):
    dataset = write_set(tmp_path / "niah.jsonl")
    out = tmp_path / "eval"
    result = run(
        dataset,
        out,
        *("--param", f"model={json.dumps({'path': str(tiny_lm)})}", "--wildcard", "lm=tiny"),
        *("--param", 'evaluation={"device": "cpu"}', "--param", "limit=5", "--threads", "1"),
        *("--log", str(tmp_path / "eval.log")),
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "niah.json").read_text())
    entry = data["scores"]["test"][0]
    assert data["task_name"] == "niah" and data["run"]["model"] == "tiny"
    assert 0 <= entry["main_score"] <= 100 and data["generation"]["samples"] == 5
    details = pd.read_csv(out / "niah.details.csv", keep_default_na=False)
    assert details["id"].tolist() == [r["id"] for r in make_records()[:5]]
    assert "base on niah: main_score=" in (tmp_path / "eval.log").read_text()


def test_bad_record_exits_with_one_line_and_writes_nothing(tiny_lm, tmp_path):
    rows = make_records()
    rows[1] = {**rows[1], "outputs": []}
    dataset = write_set(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "eval"
    result = run(dataset, out, "--param", f"model={json.dumps({'path': str(tiny_lm)})}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: {dataset}:2: field 'outputs': expected a non-empty list of strings, "
        "got an empty list"
    )
    assert not out.exists()


def test_snakemake_rule(tiny_lm, tmp_path):
    """The names a rule passes: input.dataset, params.model / task (run, evaluation and limit
    are optional), output.json / details, log; task and model names come from the wildcards."""
    write_set(tmp_path / "sets" / "niah.jsonl")
    model = {"path": str(tiny_lm)}
    run_script_rule(
        tmp_path,
        f"""
            rule evaluate_lm:
                input:
                    dataset="sets/{{task}}.jsonl",
                output:
                    json="eval/{{model}}/base/{{task}}.json",
                    details="eval/{{model}}/base/{{task}}.details.csv",
                log:
                    "logs/evaluate_lm/{{model}}/base/{{task}}.log",
                params:
                    model={model!r},
                    task={json.loads(TASK)!r},
                    limit=3,
                script:
                    "{SCRIPT}"
            """,
        "eval/tiny/base/niah.json",
    )
    data = json.loads((tmp_path / "eval" / "tiny" / "base" / "niah.json").read_text())
    assert data["task_name"] == "niah" and data["run"]["model"] == "tiny"
    assert data["run"]["stage"] == "base" and data["generation"]["samples"] == 3
    log = (tmp_path / "logs" / "evaluate_lm" / "tiny" / "base" / "niah.log").read_text()
    assert "main_score=" in log


# --- qa tasks: an SFT split answered and scored, with an LLM judge on a localhost server --------


@pytest.fixture()
def judge_server():
    from test_judge import FakeJudge

    server = FakeJudge()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def build_facts(tiny_lm, tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Where is isle {i}?"},
                {"role": "assistant", "content": f"Isle{i} lies in sea {i}."},
            ],
            "keywords": [f"sea {i}"],
            "category": "place",
            "entity": f"isle{i}",
        }
        for i in range(3)
    ]
    source = tmp_path / "facts.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_sft({"chat": str(source)}, tiny_lm, tmp_path / "sft", chat=source)
    return tmp_path / "sft"


def test_qa_task_with_a_judge_on_a_local_server(tiny_lm, tmp_path, judge_server, monkeypatch):
    sft = build_facts(tiny_lm, tmp_path)
    task = {
        "kind": "qa",
        "dataset": "facts",
        "split": "mirror",
        "max_new_tokens": 8,
        "judge": {"kind": "openai", "base_url": judge_server.base_url, "model": "judge-1"},
    }
    out, cache = tmp_path / "eval", tmp_path / "cache" / "judge.jsonl"
    args = (
        "evaluate_lm", "--input", f"dataset={sft}", "--param", f"task={json.dumps(task)}",
        "--output", f"json={out / 'facts.json'}", "--output", f"details={out / 'facts.csv'}",
        "--param", f"model={json.dumps({'path': str(tiny_lm)})}", "--wildcard", "lm=tiny",
        "--wildcard", "task=facts-mirror", "--param", f"judge_cache={cache}",
        "--param", 'evaluation={"device": "cpu"}', "--threads", "1",
    )  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    result = run_step(*args, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "facts.json").read_text())
    entry = data["scores"]["mirror"][0]
    assert data["task_kind"] == "qa" and data["task_name"] == "facts-mirror"
    # A random model's answers: no key term, and the judge grades them 2/10.
    assert entry["main_score"] == entry["keyword"] == 0.0
    assert entry["judge"] == 0.2 and entry["judge_unparsed"] == 0
    assert set(entry["by_category"]) == {"place"} and entry["n"] == 3
    assert len(judge_server.requests) == 3
    assert judge_server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"
    details = pd.read_csv(out / "facts.csv", keep_default_na=False)
    assert details.columns[:8].tolist() == [
        "id", "split", "kind", "entity", "category", "question", "reference", "prediction",
    ]  # fmt: skip
    assert details["judge"].tolist() == [0.2, 0.2, 0.2]

    # The rerun asks the judge nothing: every verdict is in the cache.
    judge_server.reset()
    shutil.rmtree(out)
    assert run_step(*args, env=env).returncode == 0
    assert judge_server.requests == []


def test_qa_task_on_a_split_the_set_lacks_names_it(tiny_lm, tmp_path):
    sft = build_facts(tiny_lm, tmp_path)
    task = {"kind": "qa", "dataset": "facts", "split": "rephrased"}
    out = tmp_path / "eval"
    result = run_step(
        "evaluate_lm", "--input", f"dataset={sft}", "--param", f"task={json.dumps(task)}",
        "--output", f"json={out / 'f.json'}", "--output", f"details={out / 'f.csv'}",
        "--param", f"model={json.dumps({'path': str(tiny_lm)})}", "--wildcard", "task=f",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {sft}: task f: the SFT set has no 'rephrased' records (it has ['mirror', 'train'])"
    )
    assert not out.exists()
