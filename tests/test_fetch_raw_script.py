"""Step fetch_raw from the command line (`python -m adapterflow fetch_raw`) as a user runs it,
and scripts/fetch_raw.py as Snakemake's `script:` directive runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import run_step

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch_raw.py"


def run_script(dataset: str, source: str, out: Path, *args: str):
    """The step: ``source`` is the source block as inline JSON."""
    return run_step(
        "fetch_raw", "--wildcard", f"dataset={dataset}", "--param", f"source={source}",
        "--output", str(out), *args, timeout=120,
    )  # fmt: skip


def test_fetch_local_source(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"sentence1": "a", "sentence2": "b", "score": 0.5}\n')
    out, log = tmp_path / "raw" / "toy", tmp_path / "logs" / "fetch_raw" / "toy.log"
    source = json.dumps({"kind": "local", "path": str(data)})

    proc = run_script("toy", source, out, "--log", str(log))

    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == "toy"
    assert manifest["source"] == {"kind": "local", "path": str(data)}
    assert [(f["path"], f["lines"]) for f in manifest["files"]] == [("pairs.jsonl", 1)]
    assert "fetched toy" in log.read_text()


def test_params_from_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    params = tmp_path / "params.yaml"
    params.write_text(f"source:\n  kind: local\n  path: {tmp_path / 'a.txt'}\n")
    proc = run_step(
        "fetch_raw", "--wildcard", "dataset=a", "--params", str(params),
        "--output", str(tmp_path / "o"), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "a.txt").read_text() == "x\n"


def test_bad_source_fails_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.jsonl"
    out = tmp_path / "raw" / "toy"
    source = json.dumps({"kind": "local", "path": str(missing)})

    proc = run_script("toy", source, out)

    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(missing) in last
    assert not out.exists()
    assert not [p for p in (tmp_path / "raw").iterdir()]  # no staging dir left either


def test_unparsable_params_argument(tmp_path: Path) -> None:
    proc = run_step(
        "fetch_raw", "--wildcard", "dataset=x", "--params", "{not json",
        "--output", str(tmp_path / "o"), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--params" in proc.stderr and "Traceback" not in proc.stderr
    # A source that is no JSON is a string, which the source check refuses in one line.
    proc = run_script("x", "{not json", tmp_path / "o")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


SNAKEMAKE_SHIM = """
import runpy, sys, types
source, out, log = sys.argv[1:4]
import json
snakemake = types.SimpleNamespace(
    wildcards=types.SimpleNamespace(dataset="toy"),
    params=types.SimpleNamespace(source=json.loads(source)),
    output=[out],
    log=[log],
)
runpy.run_path(sys.argv[4], init_globals={"snakemake": snakemake}, run_name="__main__")
"""


def test_snakemake_mode_logs_error_then_exits(tmp_path: Path) -> None:
    # What Snakemake's `script:` directive does: run the file as __main__ with `snakemake` set.
    log, out = tmp_path / "toy.log", tmp_path / "raw" / "toy"
    (tmp_path / "a.txt").write_text("x\n")
    ok = json.dumps({"kind": "local", "path": str(tmp_path / "a.txt")})
    proc = subprocess.run(
        [sys.executable, "-c", SNAKEMAKE_SHIM, ok, str(out), str(log), str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.json").is_file() and "fetched toy" in log.read_text()

    bad = json.dumps({"kind": "nope"})
    proc = subprocess.run(
        [sys.executable, "-c", SNAKEMAKE_SHIM, bad, str(tmp_path / "o2"), str(log), str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # One line for the user; the traceback (with the error's type) in the rule's log only.
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: dataset 'toy': unknown")
    assert "ERROR" in log.read_text() and "unknown source kind 'nope'" in log.read_text()
    assert "SourceError" in log.read_text()
    assert not (tmp_path / "o2").exists()
