"""Step prepare_dataset from the command line (`python -m adapterflow prepare_dataset`) as a user
runs it."""

from __future__ import annotations

import json

from conftest import run_step


def run(raw, out, *args: str):
    return run_step(
        "prepare_dataset", "--input", str(raw), "--output", str(out), "--wildcard", "dataset=toy",
        *args, timeout=120,
    )  # fmt: skip


def test_prepares_word_pairs(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "w.tsv").write_text("old\tnew\t2\nhot\tcold\t1\n")
    block = json.dumps({"format": "word_pairs_tsv", "options": {"file": "w.tsv"}})
    log = tmp_path / "logs" / "prep.log"
    result = run(raw, tmp_path / "clean", "--param", f"prepare={block}", "--log", str(log))
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "clean" / "pairs" / "test.jsonl").read_text().splitlines()
    assert [json.loads(r)["score"] for r in rows] == [0.2, 0.1]
    assert "wrote pairs/test=2" in log.read_text()


def test_bad_input_exits_with_one_error_line_and_no_output(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "w.tsv").write_text("old\tnew\t2\nhot\tcold\tbig\n")
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  format: word_pairs_tsv\n  options: {file: w.tsv}\n")
    result = run(raw, tmp_path / "clean", "--params", str(params))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: {raw / 'w.tsv'}:2: field 'score': not a number: 'big'"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "clean").exists()
