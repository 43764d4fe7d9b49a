"""Converters and the shared prepare steps: cleaning, de-duplication, splits, leakage."""

from __future__ import annotations

import bz2
import json
import random
from pathlib import Path

import pytest

from adapterflow.data import prepare as prepare_module
from adapterflow.data.layouts import PairSet, RetrievalSet, read_layout
from adapterflow.data.prepare import prepare_dataset
from adapterflow.data.splits import UnionFind, hashed_split
from adapterflow.errors import DataError

NEWS_CSV = """article_id,publish_date,title,text
1,2017/2/7,"Senate confirms secretary","The Senate voted today.  It was close."
2,2017/2/7,"Markets rally","Stocks rose sharply on Monday."
3,2017/2/8,"Markets rally","A different article with the same title."
4,2017/2/8,"Storm hits coast","Stocks rose sharply on Monday."
5,2017/2/8,,"A row without a title."
6,2017/2/9,"Empty body",""
7,2017/2/9,"Rain in the north","Heavy rain fell across the north.\u0007"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


NEWS_PREPARE = {
    "format": "csv_beir",
    "options": {
        "file": "news.csv",
        "id_column": "article_id",
        "query_column": "title",
        "text_column": "text",
    },
    "split": {"train": 0.5, "test": 0.5},
    "seed": 3,
}


def test_csv_beir_cleans_dedupes_and_splits(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "news.csv", NEWS_CSV)
    manifest = prepare_dataset(raw, tmp_path / "news", NEWS_PREPARE)
    data = read_layout(tmp_path / "news")
    assert isinstance(data, RetrievalSet)
    # Rows 5 and 6 lack a title or body; row 4's body duplicates row 2's; row 3's title row 2's.
    assert sorted(data.corpus) == ["d1", "d2", "d3", "d7"]
    assert sorted(data.queries) == ["q1", "q2", "q4", "q7"]
    assert data.corpus["d1"]["text"] == "The Senate voted today. It was close."
    assert data.corpus["d7"]["text"] == "Heavy rain fell across the north."
    assert data.corpus["d1"]["title"] == ""  # the title is the query, never the document's
    pooled = {q: docs for split in data.qrels.values() for q, docs in split.items()}
    # q3 merged into q2 (same title) and d4 into d2 (same body): judgements follow the merge.
    assert pooled == {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}, "q4": {"d2": 1}, "q7": {"d7": 1}}
    # q2 and q4 share d2, so they must be in the same split.
    split_of = {q: s for s, judged in data.qrels.items() for q in judged}
    assert split_of["q2"] == split_of["q4"]
    assert manifest["dropped"] == {
        "duplicate_documents": 1,
        "duplicate_queries": 1,
        "rows_without_query_or_text": 2,
    }
    assert manifest["counts"]["corpus"] == 4
    assert json.loads((tmp_path / "news" / "manifest.json").read_text()) == manifest


def test_splits_are_deterministic_and_seeded(tmp_path):
    raw = tmp_path / "raw"
    rows = "\n".join(f'{i},d,"title {i}","body number {i}"' for i in range(200))
    write(raw / "news.csv", "article_id,date,title,text\n" + rows + "\n")
    first = prepare_dataset(raw, tmp_path / "a", NEWS_PREPARE)
    second = prepare_dataset(raw, tmp_path / "b", NEWS_PREPARE)
    other_seed = prepare_dataset(raw, tmp_path / "c", {**NEWS_PREPARE, "seed": 4})
    files = ["qrels/train.tsv", "qrels/test.tsv", "corpus.jsonl", "queries.jsonl"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first["counts"] == second["counts"]
    assert (tmp_path / "a" / "qrels/test.tsv").read_bytes() != (
        tmp_path / "c" / "qrels/test.tsv"
    ).read_bytes()
    # 50/50 split of 200 independent groups: a binomial count far from the edges.
    assert 70 < first["counts"]["qrels/test"] < 130
    assert other_seed["counts"]["qrels/test"] + other_seed["counts"]["qrels/train"] == 200


def test_hashed_split_fractions_and_union_find():
    counts = {"train": 0, "dev": 0, "test": 0}
    for i in range(20_000):
        counts[hashed_split(f"k{i}", {"train": 0.8, "dev": 0.1, "test": 0.1})] += 1
    assert abs(counts["train"] / 20_000 - 0.8) < 0.015
    assert abs(counts["dev"] / 20_000 - 0.1) < 0.01
    groups = UnionFind()
    groups.union("c", "b")
    groups.union("x", "a", "c")
    assert {groups.component_key(i) for i in "abcx"} == {"a"}
    assert groups.component_key("z") == "z"


def test_resplit_never_puts_a_text_on_both_sides(tmp_path):
    rng = random.Random(0)
    words = [f"sentence {i}" for i in range(400)]
    rows = [
        {"sentence1": rng.choice(words), "sentence2": rng.choice(words), "score": rng.random()}
        for _ in range(150)
    ]
    (tmp_path / "raw" / "pairs").mkdir(parents=True)
    with open(tmp_path / "raw" / "pairs" / "all.jsonl", "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    manifest = prepare_dataset(
        tmp_path / "raw",
        tmp_path / "out",
        {"format": "pairs_jsonl", "split": {"train": 0.7, "test": 0.3}},
    )
    data = read_layout(tmp_path / "out")
    texts = {
        split: {t for r in rows for t in (r["sentence1"], r["sentence2"])}
        for split, rows in data.splits.items()
    }
    assert not texts.get("train", set()) & texts.get("test", set())
    kept = sum(len(r) for r in data.splits.values())
    assert kept + manifest["dropped"].get("duplicate_pairs", 0) == 150


def _pairs_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    write(
        raw / "pairs" / "train.jsonl",
        '{"sentence1": "a cat sits", "sentence2": "a dog runs", "score": 0.2}\n'
        '{"sentence1": "the sun", "sentence2": "the moon", "score": 0.6}\n'
        '{"sentence1": "the sun", "sentence2": "the moon", "score": 0.6}\n'
        '{"sentence1": "  ", "sentence2": "blank", "score": 0.1}\n',
    )
    write(
        raw / "pairs" / "test.jsonl",
        '{"sentence1": "a cat  sits", "sentence2": "a bird sings", "score": 0.3}\n',
    )
    return raw


def test_leakage_fails_the_job_and_leaves_no_output(tmp_path):
    raw = _pairs_raw(tmp_path)
    with pytest.raises(DataError) as info:
        prepare_dataset(raw, tmp_path / "out", {"format": "pairs_jsonl"}, name="toy")
    message = str(info.value)
    assert message.startswith("toy: field 'test': leakage: 1 text(s)")
    assert "'a cat sits'" in message  # whitespace-normalised text is what leaks
    assert not (tmp_path / "out").exists()


def test_leakage_drop_from_train_counts_what_it_drops(tmp_path):
    raw = _pairs_raw(tmp_path)
    manifest = prepare_dataset(
        raw, tmp_path / "out", {"format": "pairs_jsonl", "on_leak": "drop_from_train"}
    )
    data = read_layout(tmp_path / "out")
    assert isinstance(data, PairSet)
    assert data.splits["train"] == [{"sentence1": "the sun", "sentence2": "the moon", "score": 0.6}]
    assert manifest["dropped"] == {
        "duplicate_pairs": 1,
        "empty_pairs": 1,
        "leaked_train_pairs": 1,
    }


def test_retrieval_leakage_through_a_shared_document(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "corpus.jsonl", '{"_id": "d1", "text": "shared"}\n{"_id": "d2", "text": "own"}\n')
    write(raw / "queries.jsonl", '{"_id": "q1", "text": "one"}\n{"_id": "q2", "text": "two"}\n')
    write(raw / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\n")
    write(raw / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq2\td1\t2\n")
    with pytest.raises(DataError, match="leakage: 1 text"):
        prepare_dataset(raw, tmp_path / "out", {"format": "beir"})
    manifest = prepare_dataset(
        raw, tmp_path / "out", {"format": "beir", "on_leak": "drop_from_train"}
    )
    data = read_layout(tmp_path / "out")
    assert data.qrels == {"train": {"q1": {"d2": 1}}, "test": {"q2": {"d1": 2}}}
    assert manifest["dropped"] == {"leaked_train_judgements": 1}


def test_failure_while_writing_leaves_no_partial_output(tmp_path, monkeypatch):
    raw = _pairs_raw(tmp_path)

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(prepare_module, "write_json", explode)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(
            raw, tmp_path / "out", {"format": "pairs_jsonl", "on_leak": "drop_from_train"}
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_lee_pairs(tmp_path):
    raw = tmp_path / "raw"
    (raw).mkdir()
    (raw / "lee.cor").write_bytes("first doc £\nsecond doc\nthird doc\n".encode("latin-1"))
    write(raw / "sim.txt", "1\t0.3\t0.5\n0\t1\t0.25\n0\t0\t1\n")
    options = {"documents": "lee.cor", "similarities": "sim.txt", "encoding": "latin-1"}
    prepare_dataset(raw, tmp_path / "out", {"format": "lee_pairs", "options": options})
    rows = read_layout(tmp_path / "out").splits["test"]
    assert [(r["sentence1"], r["sentence2"], r["score"]) for r in rows] == [
        ("first doc £", "second doc", 0.3),
        ("first doc £", "third doc", 0.5),
        ("second doc", "third doc", 0.25),
    ]
    with pytest.raises(DataError, match=r"lee.cor:1: not valid utf-8"):
        prepare_dataset(
            raw,
            tmp_path / "x",
            {"format": "lee_pairs", "options": {**options, "encoding": "utf-8"}},
        )
    write(raw / "sim.txt", "1\t0.3\n0\t1\n")
    with pytest.raises(DataError, match=r"sim.txt:1: 2 columns but lee.cor has 3 documents"):
        prepare_dataset(raw, tmp_path / "x", {"format": "lee_pairs", "options": options})


def test_word_pairs_tsv(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "w.tsv", "# header\n# Word 1\tWord 2\tHuman\nold\tnew\t1.5\nsmart\tclever\t9.2\n")
    prepare = {"format": "word_pairs_tsv", "options": {"file": "w.tsv", "score_max": 10}}
    prepare_dataset(raw, tmp_path / "out", prepare)
    rows = read_layout(tmp_path / "out").splits["test"]
    assert rows == [
        {"sentence1": "old", "sentence2": "new", "score": 0.15},
        {"sentence1": "smart", "sentence2": "clever", "score": pytest.approx(0.92)},
    ]
    write(raw / "w.tsv", "old\tnew\t1.5\nsmart\tclever\tvery\n")
    with pytest.raises(DataError, match=r"w.tsv:2: field 'score': not a number: 'very'"):
        prepare_dataset(raw, tmp_path / "x", prepare)
    write(raw / "w.tsv", "old\tnew\n")
    with pytest.raises(DataError, match=r"w.tsv:1: field 'score': missing"):
        prepare_dataset(raw, tmp_path / "x", prepare)
    assert not (tmp_path / "x").exists()


WIKI_XML = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Ada Lovelace</title><ns>0</ns><id>7</id>
    <revision><text>'''Ada''' was an English [[mathematician]] and writer, chiefly
known for her work on the proposed mechanical general-purpose computer, the
[[Analytical Engine]].&lt;ref&gt;cite&lt;/ref&gt;

== Early life ==
Ada was born in London in 1815 to the poet Lord Byron and Anne Isabella Milbanke, and she was
raised by her mother who promoted her interest in mathematics and logic from an early age.

== References ==
* A book about Ada
</text></revision></page>
  <page><title>Talk:Ada Lovelace</title><ns>1</ns><id>8</id>
    <revision><text>Discussion that is not an article and must not be kept in the corpus.
    </text></revision></page>
  <page><title>AdaLovelace</title><ns>0</ns><id>9</id><redirect title="Ada Lovelace" />
    <revision><text>#REDIRECT [[Ada Lovelace]]</text></revision></page>
</mediawiki>
"""


def test_mediawiki_xml_to_passages(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dump.xml.bz2").write_bytes(bz2.compress(WIKI_XML.encode()))
    prepare = {"format": "mediawiki_xml", "options": {"min_chars": 50, "max_chars": 1000}}
    prepare_dataset(raw, tmp_path / "out", prepare)
    corpus = read_layout(tmp_path / "out").corpus
    assert list(corpus) == ["7-0", "7-1"]
    assert corpus["7-0"]["title"] == "Ada Lovelace"
    assert corpus["7-0"]["text"].startswith("Ada was an English mathematician and writer")
    assert "cite" not in corpus["7-0"]["text"] and "[[" not in corpus["7-0"]["text"]
    assert corpus["7-1"]["section"] == "Early life"
    assert "born in London in 1815" in corpus["7-1"]["text"]


def test_replace_and_strip_html_options(tmp_path):
    raw = tmp_path / "raw"
    write(
        raw / "news.csv",
        'article_id,title,text\n1,"A &amp; B","<p>He said,""?it works.</p>"\n',
    )
    prepare = {
        **NEWS_PREPARE,
        "split": None,
        "strip_html": True,
        "replace": [['"?', '" ']],
    }
    prepare_dataset(raw, tmp_path / "out", prepare)
    data = read_layout(tmp_path / "out")
    assert data.corpus["d1"]["text"] == 'He said," it works.'
    assert data.queries["q1"]["text"] == "A & B"
    assert list(data.qrels) == ["test"]


@pytest.mark.parametrize(
    ("prepare", "match"),
    [
        ({"split": {"train": 0.8, "test": 0.3}}, "split fractions must sum to 1"),
        ({"split": {"train": 1.0, "test": 0.0}}, "split fractions must be positive"),
        ({"on_leak": "ignore"}, "on_leak must be one of"),
        ({"format": "parquet"}, "unknown prepare format 'parquet'"),
        ({"options": {**NEWS_PREPARE["options"], "title_column": "headline"}}, "headline"),
    ],
)
def test_bad_prepare_settings(tmp_path, prepare, match):
    raw = tmp_path / "raw"
    write(raw / "news.csv", NEWS_CSV)
    with pytest.raises(DataError, match=match):
        prepare_dataset(raw, tmp_path / "out", {**NEWS_PREPARE, **prepare})
    assert not (tmp_path / "out").exists()
