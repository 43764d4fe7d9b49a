"""Steps tokenize_triplets and train_adapter from the command line (`python -m adapterflow
train_adapter`) as a user runs them, and scripts/tokenize_triplets.py and
scripts/train_adapter.py as Snakemake runs them (a `snakemake` object in the script's globals)."""

from __future__ import annotations

import json
import logging
import runpy
from types import SimpleNamespace

import pytest
from snakemake.iocontainers import InputFiles, Namedlist, OutputFiles, Params
from test_tokenize import write_triplets
from test_train import MINILM, STAGE, log_rows, same_weights, synthetic_triplets

from conftest import REPO, run_step

TOKENIZE = REPO / "scripts" / "tokenize_triplets.py"
TRAIN = REPO / "scripts" / "train_adapter.py"
STAGE_CLI = {**STAGE, "max_steps": 2, "checkpoint_steps": 2}


@pytest.fixture(scope="module")
def cli_adapter(tmp_path_factory):
    """Tokenize, then train for 2 steps, from the command line."""
    root = tmp_path_factory.mktemp("cli")
    triplets = write_triplets(root / "triplets.jsonl", synthetic_triplets(16))
    params = root / "params.yaml"
    # JSON is YAML: a file works as well as inline JSON.
    params.write_text(json.dumps({"model": MINILM, "max_length": 32}))
    tokenized = root / "tok"
    result = run_step(
        "tokenize_triplets", "--input", f"triplets={triplets}", "--params", str(params),
        "--output", str(tokenized), "--log", str(root / "tok.log"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tokenized 16 rows (k=1, 48 texts)" in (root / "tok.log").read_text()
    out = root / "adapter"
    result = run_step(
        "train_adapter", "--input", f"triplets={tokenized}", "--params", str(params),
        "--param", f"stage={json.dumps(STAGE_CLI)}", "--param", "seed=0", "--output", str(out),
        "--param", f"checkpoint_dir={root / 'ckpt'}", "--threads", "1",
        "--log", str(root / "train.log"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # progress and loss lines go to the log, not stdout
    return root


def test_cli_tokenizes_and_trains(cli_adapter):
    out = cli_adapter / "adapter"
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "train_log.jsonl",
    ]
    assert [row["step"] for row in log_rows(out)] == [1, 2]
    log = (cli_adapter / "train.log").read_text()
    assert "trainable" in log and "trained 2 steps (from scratch)" in log
    assert (cli_adapter / "ckpt" / "checkpoint-2" / "adapter_model.safetensors").is_file()


def test_cli_errors_are_one_line_and_leave_no_output(tmp_path):
    result = run_step(
        "train_adapter", "--input", f"triplets={tmp_path / 'missing'}",
        "--param", f"model={json.dumps(MINILM)}", "--param", f"stage={json.dumps(STAGE_CLI)}",
        "--param", "seed=0", "--param", f"checkpoint_dir={tmp_path / 'ckpt'}",
        "--output", str(tmp_path / "adapter"),
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'missing'}: not a tokenized triplets directory")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "adapter").exists()

    bad = write_triplets(tmp_path / "bad.jsonl", [{"anchor": "a", "positive": 3}])
    result = run_step(
        "tokenize_triplets", "--input", f"triplets={bad}", "--param", f"model={json.dumps(MINILM)}",
        "--output", str(tmp_path / "x"),
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: {bad}:1: field 'positive': expected str, got int"


def snakemake_object(*, input: dict, output: list, params: dict, log: str, threads: int = 1):
    return SimpleNamespace(
        input=InputFiles(fromdict=input),
        output=OutputFiles(output),
        params=Params(fromdict=params),
        log=Namedlist([log]),
        threads=threads,
        wildcards=Namedlist(),
    )


@pytest.fixture
def restore_logging():
    """The scripts point the root logger at their log file; undo that for later tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_snakemake_branch_reads_the_documented_names(cli_adapter, tmp_path):
    """Both scripts as the rules run them; the adapter equals the command line's."""
    tokenized = tmp_path / "tok"
    tokenize = snakemake_object(
        input={"triplets": str(cli_adapter / "triplets.jsonl")},
        output=[str(tokenized)],
        params={"model": MINILM, "max_length": 32},
        log=str(tmp_path / "logs" / "tokenize.log"),
    )
    runpy.run_path(str(TOKENIZE), init_globals={"snakemake": tokenize}, run_name="__main__")
    assert json.loads((tokenized / "tokenization.json").read_text())["rows"] == 16

    out = tmp_path / "adapter"
    train = snakemake_object(
        input={"triplets": str(tokenized)},
        output=[str(out)],
        params={
            "model": MINILM,
            "stage": STAGE_CLI,
            "seed": 0,
            "checkpoint_dir": str(tmp_path / "ckpt"),
        },
        log=str(tmp_path / "logs" / "train.log"),
    )
    runpy.run_path(str(TRAIN), init_globals={"snakemake": train}, run_name="__main__")
    assert same_weights(out, cli_adapter / "adapter")
    assert "trained 2 steps" in (tmp_path / "logs" / "train.log").read_text()
