"""scripts/prepare_dataset.py run as a user would, from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "prepare_dataset.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_prepares_word_pairs(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "w.tsv").write_text("old\tnew\t2\nhot\tcold\t1\n")
    block = json.dumps({"format": "word_pairs_tsv", "options": {"file": "w.tsv"}})
    log = tmp_path / "logs" / "prep.log"
    result = run(
        "--raw", str(raw), "--out", str(tmp_path / "clean"), "--prepare", block, "--log", str(log)
    )
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "clean" / "pairs" / "test.jsonl").read_text().splitlines()
    assert [json.loads(r)["score"] for r in rows] == [0.2, 0.1]
    assert "wrote pairs/test=2" in log.read_text()


def test_bad_input_exits_with_one_error_line_and_no_output(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "w.tsv").write_text("old\tnew\t2\nhot\tcold\tbig\n")
    block = tmp_path / "prepare.yaml"
    block.write_text("format: word_pairs_tsv\noptions: {file: w.tsv}\n")
    result = run("--raw", str(raw), "--out", str(tmp_path / "clean"), "--prepare", str(block))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: {raw / 'w.tsv'}:2: field 'score': not a number: 'big'"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "clean").exists()
