"""Training pairs from prepared datasets: every strategy, held-out removal, determinism."""

from __future__ import annotations

import json

import pytest

from adapterflow.data.layouts import PairSet, RetrievalSet, TripletSet
from adapterflow.data.pairs import (
    held_out_from_splits,
    held_out_texts,
    make_pairs,
    read_pairs,
    write_pairs,
)
from adapterflow.data.text import split_sentences, truncate
from adapterflow.errors import ConfigError, DataError

CORPUS = {
    "d1": {
        "_id": "d1",
        "title": "Cats",
        "section": "Behaviour",
        "text": "Cats sleep for most of the day. They hunt at dusk. Kittens play a lot.",
    },
    "d2": {
        "_id": "d2",
        "title": "Cats",
        "section": "",
        "text": "The domestic cat is a small carnivore. It was domesticated in the Near East.",
    },
    "d3": {
        "_id": "d3",
        "title": "Tax law",
        "section": "Income tax",
        "text": "Income tax is levied on earnings. Rates rise with income. Some income is exempt.",
    },
    "d4": {
        "_id": "d4",
        "title": "Rivers",
        "section": "Floods",
        "text": "Rivers flood after heavy rain. Levees hold the water back.",
    },
    "d5": {"_id": "d5", "title": "", "text": "An untitled note about weather. It rained."},
    "d6": {"_id": "d6", "title": "Stub", "text": "A single sentence without a second one"},
}
for _i in range(7, 19):  # more passages, so that a different seed changes some ICT choice
    CORPUS[f"d{_i}"] = {
        "_id": f"d{_i}",
        "title": f"Topic {_i}",
        "text": f"Fact one about topic {_i}. Fact two about it. Fact three here. Fact four.",
    }
QUERIES = {
    "q1": {"_id": "q1", "text": "how much do cats sleep"},
    "q2": {"_id": "q2", "text": "what is income tax"},
    "q3": {"_id": "q3", "text": "why do rivers flood"},
}
QRELS = {
    "train": {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2, "d1": 1}},
    "test": {"q3": {"d4": 1}},
}


@pytest.fixture
def retrieval(tmp_path):
    root = tmp_path / "retrieval"
    RetrievalSet(CORPUS, QUERIES, QRELS).write(root)
    return root


@pytest.fixture
def pairset(tmp_path):
    root = tmp_path / "pairs"
    PairSet(
        {
            "train": [
                {"sentence1": "a cat sits", "sentence2": "a kitten sits", "score": 0.9},
                {"sentence1": "a dog runs", "sentence2": "tax law", "score": 0.1},
                {"sentence1": "rain falls", "sentence2": "it is raining", "score": 0.8},
                {"sentence1": "a cat sits", "sentence2": "a kitten sits", "score": 0.9},
            ],
            "test": [{"sentence1": "it is raining", "sentence2": "wet streets", "score": 0.7}],
        }
    ).write(root)
    return root


@pytest.fixture
def tripletset(tmp_path):
    root = tmp_path / "triplets"
    TripletSet(
        {
            "train": [
                {"anchor": "a man eats", "positive": "someone eats", "negative": "nobody eats"},
                {"anchor": "a girl runs", "positive": "a child runs", "negative": ["x", "y"]},
            ],
            "test": [{"anchor": "a dog barks", "positive": "an animal", "negative": ["a cat"]}],
        }
    ).write(root)
    return root


def ordered(dataset, strategy, **kwargs):
    """make_pairs in source order (shuffle off), so expectations can be written in order."""
    options = {"shuffle": False, **kwargs.pop("options", {})}
    return make_pairs(dataset, strategy, options=options, **kwargs)


def test_qrels_pairs_query_with_each_relevant_document_in_qrels_order(retrieval):
    rows, dropped = ordered(retrieval, "qrels")
    assert rows == [
        {"anchor": "how much do cats sleep", "positive": "Cats " + CORPUS["d1"]["text"]},
        {"anchor": "what is income tax", "positive": "Tax law " + CORPUS["d3"]["text"]},
        {"anchor": "what is income tax", "positive": "Cats " + CORPUS["d1"]["text"]},
    ]
    assert dropped == {"not_relevant": 1}
    test_rows, _ = ordered(retrieval, "qrels", options={"split": "test"})
    assert test_rows == [
        {"anchor": "why do rivers flood", "positive": "Rivers " + CORPUS["d4"]["text"]}
    ]


def test_title_text_skips_and_counts_untitled_documents(retrieval):
    rows, dropped = ordered(retrieval, "title_text")
    assert rows[0] == {"anchor": "Cats", "positive": CORPUS["d1"]["text"]}
    assert len(rows) == len(CORPUS) - 1
    assert dropped == {"no_title": 1}


def test_heading_section_uses_title_and_section_or_title_alone(retrieval):
    rows, dropped = ordered(retrieval, "heading_section")
    anchors = [row["anchor"] for row in rows]
    assert anchors[:4] == ["Cats: Behaviour", "Cats", "Tax law: Income tax", "Rivers: Floods"]
    assert dropped == {"no_title": 1}
    rows, dropped = ordered(retrieval, "heading_section", options={"require_section": True})
    assert [row["anchor"] for row in rows] == [
        "Cats: Behaviour",
        "Tax law: Income tax",
        "Rivers: Floods",
    ]
    assert dropped["no_section"] == len(CORPUS) - 3


def test_heading_section_warns_once_when_headings_fall_back_to_the_title(retrieval, caplog):
    caplog.set_level("INFO", logger="adapterflow.data.pairs")
    ordered(retrieval, "heading_section")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    # d2 has an empty section, d6 to d18 none at all (d5 has no title: dropped, not counted).
    assert [r.getMessage() for r in warnings] == [
        f"heading_section: 14 of {len(CORPUS)} passages have no section field (or an empty "
        "one): their heading falls back to the title alone (require_section: true drops them)"
    ]
    caplog.clear()
    ordered(retrieval, "heading_section", options={"require_section": True})
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_inverse_cloze_removes_one_sentence_and_skips_single_sentences(retrieval):
    rows, dropped = ordered(retrieval, "inverse_cloze")
    assert dropped == {"too_few_sentences": 1}
    assert len(rows) == len(CORPUS) - 1
    sources = [doc for doc in CORPUS.values() if doc["_id"] != "d6"]
    for row, source in zip(rows, sources, strict=True):
        sentences = split_sentences(row["positive"])
        assert row["anchor"] not in sentences
        assert sorted([*sentences, row["anchor"]]) == sorted(split_sentences(source["text"]))


def test_inverse_cloze_is_deterministic_per_seed_and_keep_probability_keeps(retrieval):
    first, _ = ordered(retrieval, "inverse_cloze", seed=3)
    again, _ = ordered(retrieval, "inverse_cloze", seed=3)
    other, _ = ordered(retrieval, "inverse_cloze", seed=4)
    assert first == again
    assert [r["anchor"] for r in first] != [r["anchor"] for r in other]
    kept, _ = ordered(retrieval, "inverse_cloze", seed=3, options={"keep_probability": 1.0})
    assert [r["anchor"] for r in kept] == [r["anchor"] for r in first]
    assert all(row["anchor"] in split_sentences(row["positive"]) for row in kept)
    with pytest.raises(ConfigError, match="keep_probability"):
        make_pairs(retrieval, "inverse_cloze", options={"keep_probability": 2})


def test_first_sentence(retrieval):
    rows, dropped = ordered(retrieval, "first_sentence")
    assert rows[0] == {
        "anchor": "Cats sleep for most of the day.",
        "positive": "They hunt at dusk. Kittens play a lot.",
    }
    assert dropped == {"too_few_sentences": 1}


def test_pairs_pass_through_with_min_score_and_duplicates_counted(pairset):
    rows, dropped = ordered(pairset, "pairs", options={"min_score": 0.5})
    assert rows == [
        {"anchor": "a cat sits", "positive": "a kitten sits"},
        {"anchor": "rain falls", "positive": "it is raining"},
    ]
    assert dropped == {"below_min_score": 1, "duplicate": 1}


def test_triplets_pass_through_keeps_negatives_as_lists(tripletset):
    rows, _ = ordered(tripletset, "triplets")
    assert rows == [
        {"anchor": "a man eats", "positive": "someone eats", "negative": ["nobody eats"]},
        {"anchor": "a girl runs", "positive": "a child runs", "negative": ["x", "y"]},
    ]


def test_held_out_texts_of_every_layout(retrieval, pairset, tripletset):
    assert held_out_texts(retrieval, "test") == {
        "why do rivers flood",
        CORPUS["d4"]["text"],
        "Rivers " + CORPUS["d4"]["text"],
    }
    assert held_out_texts(pairset, "test") == {"it is raining", "wet streets"}
    assert held_out_texts(tripletset, "test") == {"a dog barks", "an animal", "a cat"}
    with pytest.raises(DataError, match="no split 'dev'"):
        held_out_texts(pairset, "dev")


def test_held_out_pairs_are_removed_and_counted(retrieval, pairset, caplog):
    held_out = held_out_texts(retrieval, "test") | held_out_texts(pairset, "test")
    caplog.set_level("INFO", logger="adapterflow.data.pairs")
    rows, dropped = make_pairs(retrieval, "inverse_cloze", held_out=held_out)
    # The rivers passage is held out: none of its sentences may become training text.
    assert dropped["held_out"] == 1
    assert not any("Rivers" in r["anchor"] + r["positive"] for r in rows)
    assert "held_out=1" in caplog.text
    rows, dropped = make_pairs(pairset, "pairs", held_out=held_out)
    assert dropped == {"held_out": 1, "duplicate": 1}
    assert {"anchor": "rain falls", "positive": "it is raining"} not in rows


def test_held_out_from_splits_checks_declared_inputs(retrieval, pairset):
    texts = held_out_from_splits(
        [[str(retrieval), "test"], [str(pairset), "test"]], declared=[retrieval, pairset]
    )
    assert "wet streets" in texts and "why do rivers flood" in texts
    with pytest.raises(ConfigError, match="not among the declared inputs"):
        held_out_from_splits([[str(pairset), "test"]], declared=[retrieval])
    with pytest.raises(ConfigError, match=r"\[dataset_dir, split\]"):
        held_out_from_splits([str(pairset)])


def test_shuffle_and_cap_are_deterministic(retrieval):
    first, _ = make_pairs(retrieval, "title_text", seed=1)
    again, _ = make_pairs(retrieval, "title_text", seed=1)
    other, _ = make_pairs(retrieval, "title_text", seed=2)
    assert first == again
    assert first != other and sorted(map(str, first)) == sorted(map(str, other))
    capped, dropped = make_pairs(retrieval, "title_text", seed=1, max_pairs=5)
    assert capped == first[:5]
    assert dropped["over_max_pairs"] == len(first) - 5
    in_order, _ = make_pairs(retrieval, "title_text", options={"shuffle": False}, max_pairs=5)
    all_in_order, _ = ordered(retrieval, "title_text")
    assert [all_in_order.index(row) for row in in_order] == sorted(
        all_in_order.index(row) for row in in_order
    )


def test_max_chars_truncates_at_word_boundary(retrieval):
    rows, _ = ordered(retrieval, "title_text", options={"max_chars": 20})
    assert rows[0] == {"anchor": "Cats", "positive": "Cats sleep for most"}
    assert all(len(r["positive"]) <= 20 for r in rows)
    assert truncate("abcdefghij", 4) == "abcd"


def test_bad_strategy_options_and_layouts_are_reported(retrieval, pairset):
    with pytest.raises(ConfigError, match="unknown pairs strategy 'nope'"):
        make_pairs(retrieval, "nope")
    with pytest.raises(ConfigError, match="unknown option.*keep_prob.*allowed: keep_probability"):
        make_pairs(retrieval, "inverse_cloze", options={"keep_prob": 0.1})
    with pytest.raises(DataError, match="needs a retrieval dataset, got a pairs dataset"):
        make_pairs(pairset, "title_text")
    with pytest.raises(DataError, match="no split 'validation'"):
        make_pairs(pairset, "pairs", options={"split": "validation"})
    with pytest.raises(DataError, match="left no pairs"):
        make_pairs(pairset, "pairs", options={"min_score": 1.0})


def test_split_sentences_limits():
    assert split_sentences("Hello world. this stays one sentence.") == [
        "Hello world. this stays one sentence."
    ]
    assert split_sentences("Prof. X met J. Smith. Then they left!") == [
        "Prof. X met J. Smith.",
        "Then they left!",
    ]
    assert split_sentences("Pi is 3.14. See example.com now.") == [
        "Pi is 3.14.",
        "See example.com now.",
    ]
    assert split_sentences("今日は晴れ。明日は雨。") == ["今日は晴れ。", "明日は雨。"]
    assert split_sentences("") == []


def test_write_pairs_is_atomic_and_read_pairs_is_strict(tmp_path):
    path = tmp_path / "out" / "p.jsonl"

    def rows():
        yield {"anchor": "a", "positive": "b"}
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_pairs(path, rows())
    assert not path.exists() and list(path.parent.iterdir()) == []
    path.write_text(json.dumps({"anchor": "a", "positive": 3}) + "\n")
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'positive': expected str, got int"):
        read_pairs(path)
    path.write_text(json.dumps({"anchor": "a", "positive": "b", "negative": [1]}) + "\n")
    with pytest.raises(DataError, match="field 'negative'"):
        read_pairs(path)
