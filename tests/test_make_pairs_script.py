"""scripts/make_pairs.py as the rule runs it, and step make_pairs from the command line
(`python -m adapterflow make_pairs`) as a user runs it."""

from __future__ import annotations

import json

from adapterflow.data.layouts import PairSet, RetrievalSet

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "make_pairs.py"


def run(*args: str):
    return run_step("make_pairs", *args, timeout=120)


def write_pairset(root):
    PairSet(
        {
            "train": [
                {"sentence1": f"sentence {i}", "sentence2": f"paraphrase {i}", "score": 0.9}
                for i in range(6)
            ],
            "test": [{"sentence1": "sentence 0", "sentence2": "unrelated", "score": 0.1}],
        }
    ).write(root)
    return root


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pairs_without_held_out_texts(tmp_path):
    data = write_pairset(tmp_path / "clean" / "sts")
    out = tmp_path / "pairs" / "sts.jsonl"
    log = tmp_path / "logs" / "make_pairs.log"
    block = {"dataset": "sts", "strategy": "pairs", "options": {}, "max_pairs": 4, "seed": 1}
    params = {"pairs": block, "held_out_splits": [[str(data), "test"]]}
    result = run(
        *("--input", f"dataset={data}", "--output", str(out), "--params", json.dumps(params)),
        *("--input", f"held_out={data}", "--log", str(log)),
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == 4 and {"anchor": "sentence 0", "positive": "paraphrase 0"} not in rows
    assert all(set(row) == {"anchor", "positive"} for row in rows)
    assert "make_pairs pairs: 4 rows" in log.read_text()
    assert "held_out=1, over_max_pairs=1" in log.read_text()


def test_qrels_from_a_yaml_params_file(tmp_path):
    data = tmp_path / "clean" / "docs"
    RetrievalSet(
        {"d1": {"_id": "d1", "title": "T", "text": "body one"}, "d2": {"_id": "d2", "text": "two"}},
        {"q1": {"_id": "q1", "text": "query one"}, "q2": {"_id": "q2", "text": "query two"}},
        {"train": {"q1": {"d1": 1}, "q2": {"d2": 1}}, "test": {"q2": {"d2": 1}}},
    ).write(data)
    params = tmp_path / "params.yaml"
    params.write_text(
        "pairs:\n  dataset: docs\n  strategy: qrels\n  options: {split: train, shuffle: false}\n"
        f"held_out_splits: [[{data}, test]]\n"
    )
    out = tmp_path / "pairs" / "docs.jsonl"
    result = run(
        *("--input", f"dataset={data}", "--output", str(out), "--params", str(params)),
        *("--input", f"held_out={data}"),
    )
    assert result.returncode == 0, result.stderr
    # A document is embedded as "title text"; query two is a test query.
    assert read_rows(out) == [{"anchor": "query one", "positive": "T body one"}]


def test_bad_input_exits_with_one_error_line_and_no_output(tmp_path):
    data = write_pairset(tmp_path / "clean" / "sts")
    bad = data / "pairs" / "train.jsonl"
    bad.write_text(bad.read_text() + '{"sentence1": "a", "sentence2": "b", "score": 7}\n')
    out = tmp_path / "pairs" / "sts.jsonl"
    block = json.dumps({"dataset": "sts", "strategy": "pairs"})
    result = run("--input", f"dataset={data}", "--output", str(out), "--param", f"pairs={block}")
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"error: {bad}:7: field 'score': 7 outside [0, 1]"
    )
    assert "Traceback" not in result.stderr
    assert not out.exists() and not out.parent.exists()


def test_snakemake_rule(tmp_path):
    """The names the rule passes: input.dataset, input.held_out, params.pairs,
    params.held_out_splits, output[0], log[0]."""
    write_pairset(tmp_path / "clean" / "sts")
    run_script_rule(
        tmp_path,
        f"""
            rule make_pairs:
                input:
                    dataset="clean/sts",
                    held_out=["clean/sts"],
                output:
                    "pairs/sts.jsonl",
                log:
                    "logs/make_pairs/sts.log",
                params:
                    pairs={{"dataset": "sts", "strategy": "pairs", "seed": 0}},
                    held_out_splits=[["clean/sts", "test"]],
                script:
                    "{SCRIPT}"
            """,
    )
    assert len(read_rows(tmp_path / "pairs" / "sts.jsonl")) == 5
    assert "held_out=1" in (tmp_path / "logs" / "make_pairs" / "sts.log").read_text()
