"""Step evaluate_generation from the command line (`python -m adapterflow evaluate_generation`)
as a user runs it, and scripts/evaluate_generation.py as a rule runs it."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_generation_eval import make_records, write_set

from adapterflow.generate.llm import build_tiny_lm

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "evaluate_generation.py"
TASK = json.dumps({"kind": "ruler", "max_new_tokens": 3, "batch_size": 4})


def run(dataset, out, *args: str):
    return run_step(
        "evaluate_generation", "--input", f"dataset={dataset}", "--param", f"task={TASK}",
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
            rule evaluate_generation:
                input:
                    dataset="sets/{{task}}.jsonl",
                output:
                    json="eval/{{model}}/base/{{task}}.json",
                    details="eval/{{model}}/base/{{task}}.details.csv",
                log:
                    "logs/evaluate_generation/{{model}}/base/{{task}}.log",
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
    log = (tmp_path / "logs" / "evaluate_generation" / "tiny" / "base" / "niah.log").read_text()
    assert "main_score=" in log
