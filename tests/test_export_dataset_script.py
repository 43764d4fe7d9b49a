"""Step export_dataset from the command line (`python -m adapterflow export_dataset`) as a user
runs it, and scripts/export_dataset.py as the rule runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "export_dataset.py"

TRAIN = [
    {"id": "q1", "question": "When does the Sil flood?", "answer": "April.", "cluster": 0},
    {"id": "q2", "question": "What is planted?", "answer": "Rice.", "cluster": 1},
]
EVAL = [
    {"id": "q3", "question": "When is rice planted?", "answer": "After the flood.", "cluster": 1}
]
DOC = "The Sil river floods every April. Farmers plant rice after the flood."
CHUNKS = [
    {"_id": "d1-c0", "doc_id": "d1", "start": 0, "end": 33, "text": DOC[:33]},
    {"_id": "d1-c1", "doc_id": "d1", "start": 34, "end": len(DOC), "text": DOC[34:]},
]
CORPUS = [{"_id": "d1", "title": "Sil", "text": DOC}]


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def make_inputs(root):
    write(root / "qa_split" / "splits" / "train.jsonl", TRAIN)
    write(root / "qa_split" / "splits" / "eval.jsonl", EVAL)
    write(root / "chunks" / "wiki" / "chunks.jsonl", CHUNKS)
    write(root / "clean" / "wiki" / "corpus.jsonl", CORPUS)


def run(root, *args, env=None):
    return run_step("export_dataset", *args, cwd=root, env=env)


INPUTS = ("--input", "qa=qa_split", "--input", "chunks=chunks/wiki", "--input", "corpus=clean/wiki")


def load(path):
    code = (
        "import json, sys, datasets\n"
        "d = {s: datasets.load_from_disk(f'{sys.argv[1]}/{s}') for s in ('qa', 'chunks', 'raw')}\n"
        "print(json.dumps({s: {k: v.to_list() for k, v in dd.items()} for s, dd in d.items()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_command_line_export(tmp_path):
    make_inputs(tmp_path)
    result = run(tmp_path, *INPUTS, "--output", "hf/wiki", "--log", "logs/export.log")
    assert result.returncode == 0, result.stderr[-3000:]
    data = load(tmp_path / "hf" / "wiki")
    assert data == {
        "qa": {"train": TRAIN, "eval": EVAL},
        "chunks": {"train": CHUNKS},
        "raw": {"train": CORPUS},
    }
    manifest = json.loads((tmp_path / "hf" / "wiki" / "manifest.json").read_text())
    assert manifest["rows"]["qa"] == {"train": 2, "eval": 1}
    assert "exported qa {'train': 2, 'eval': 1}" in (tmp_path / "logs" / "export.log").read_text()


def test_push_without_token_refuses_before_any_work(tmp_path):
    make_inputs(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    push = 'export={"push": true, "repo_id": "my-lab/qa"}'
    result = run(tmp_path, *INPUTS, "--output", "hf/wiki", "--param", push, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: push_to_hub needs a Hugging Face token with write access in the environment "
        "variable HF_TOKEN; it is not set, so nothing was uploaded"
    )
    assert not (tmp_path / "hf").exists()  # nothing exported either
    env["HF_TOKEN"] = "hf_x"
    push = 'export={"push": true, "repo_id": "qa"}'
    result = run(tmp_path, *INPUTS, "--output", "hf/wiki", "--param", push, env=env)
    assert result.returncode == 1 and not (tmp_path / "hf").exists()
    assert result.stderr.strip().splitlines()[-1] == (
        "error: hub repo_id must be 'organisation/name', got 'qa'"
    )
    result = run(tmp_path, *INPUTS, "--output", "hf/wiki", "--param", 'export={"public": true}')
    assert result.returncode == 1 and not (tmp_path / "hf").exists()
    assert result.stderr.strip().splitlines()[-1] == "error: unknown export setting(s): public"


def test_bad_input_one_error_line_and_no_output(tmp_path):
    make_inputs(tmp_path)
    write(tmp_path / "chunks" / "wiki" / "chunks.jsonl", [{**CHUNKS[0], "end": None}])
    result = run(tmp_path, *INPUTS, "--output", "hf/wiki")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: chunks/wiki/chunks.jsonl:1: field 'end': expected int, got NoneType"
    )
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").iterdir())


def test_snakemake_rule(tmp_path):
    """The names the rule passes: input.qa, input.chunks, input.corpus, params.export,
    output[0], log[0]."""
    make_inputs(tmp_path)
    run_script_rule(
        tmp_path,
        f"""
            rule export_dataset:
                input:
                    qa="qa_split",
                    chunks="chunks/wiki",
                    corpus="clean/wiki",
                output:
                    directory("hf/wiki"),
                log:
                    "logs/export_dataset/wiki.log",
                params:
                    export={{"push": False, "repo_id": None, "private": True}},
                script:
                    "{SCRIPT}"
            """,
    )
    assert load(tmp_path / "hf" / "wiki")["qa"]["eval"] == EVAL
    assert "exported" in (tmp_path / "logs" / "export_dataset" / "wiki.log").read_text()
