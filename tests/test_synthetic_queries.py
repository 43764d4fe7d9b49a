"""adapterflow.data.synthetic_queries: the llm_queries pair strategy (generated question →
document) through make_pairs, with scripted replies and with a tiny random LM."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

import adapterflow.data.synthetic_queries as sq
from adapterflow.data.layouts import PairSet, RetrievalSet
from adapterflow.data.pairs import make_pairs
from adapterflow.data.registry import PAIR_STRATEGIES
from adapterflow.data.synthetic_queries import (
    DEFAULT_EXAMPLE,
    QuerySettings,
    parse_queries,
    query_messages,
    query_settings,
    synthetic_queries,
)
from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.llm import build_tiny_lm

# Invented texts (no third-party data).
CORPUS = {
    "sil": {"_id": "sil", "title": "Sil", "text": "The Sil river floods every April."},
    "velmora": {"_id": "velmora", "title": "", "text": "Velmora was founded in 1482."},
    "glass": {"_id": "glass", "title": "Glass", "text": "Marten glass is green from beech ash."},
}

REPLIES = {
    "floods every April": "1. When does the Sil river flood?\n2. Which month brings floods?",
    "founded in 1482": "When was Velmora founded? Who? When was Velmora founded?",
    "beech ash": "Marten glass is a green glass.\nWhen does the Tovi lake freeze?",
}


def write_corpus(root):
    RetrievalSet(CORPUS).write(root)
    return root


class Scripted:
    def __init__(self):
        self.calls = []

    def __call__(self, conversations, **options):
        self.calls.append((conversations, options))
        out = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            out.append(next(reply for key, reply in REPLIES.items() if key in prompt))
        return out


@pytest.fixture
def scripted(monkeypatch):
    lm = Scripted()
    monkeypatch.setattr(sq, "_lm_queries_generator", lambda settings, stats: lm)
    return lm


def test_strategy_registers_itself_with_its_options():
    registered = PAIR_STRATEGIES["llm_queries"]
    assert registered.layout == "retrieval" and registered.options == {
        "model", "max_docs", "queries_per_doc", "prompt", "example", "batch_size",
        "max_new_tokens", "max_doc_chars", "threads",
    }  # fmt: skip


def test_parse_queries_counts_every_unused_piece():
    queries, dropped = parse_queries(REPLIES["floods every April"], 1)
    assert queries == ["When does the Sil river flood?"] and dropped == {"query_extra": 1}
    queries, dropped = parse_queries(REPLIES["founded in 1482"], 3)
    assert queries == ["When was Velmora founded?"]
    assert dropped == {"query_too_short": 1, "query_duplicate": 1, "query_missing": 2}
    queries, dropped = parse_queries(REPLIES["beech ash"], 1, DEFAULT_EXAMPLE["queries"])
    assert queries == []
    assert dropped == {"query_not_a_question": 1, "query_copies_example": 1, "query_missing": 1}
    assert parse_queries('Query 1: "Where is Velmora?"', 1)[0] == ["Where is Velmora?"]


def test_messages_show_as_many_example_queries_as_asked_for():
    settings = QuerySettings(queries_per_doc=2, max_doc_chars=12)
    messages = query_messages("Cats purr when they are content.", settings)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"].startswith("Write 2 search queries")
    assert messages[1]["content"].count("\n") == 1
    assert messages[2]["content"].endswith("Document: Cats purr")
    assert len(query_messages("Cats.", QuerySettings(example=None))) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queries_per_doc": 0}, r"llm_queries queries_per_doc: expected an integer ≥ 1, got 0"),
        ({"max_docs": 0}, r"llm_queries max_docs: expected an integer ≥ 1 or null, got 0"),
        ({"prompt": "Ask {n} questions"}, "the template must contain {document}"),
        ({"example": {"document": "x"}}, "llm_queries example: expected"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        query_settings(options)


def test_make_pairs_with_generated_queries(tmp_path, scripted, caplog):
    data = write_corpus(tmp_path / "corpus")
    with caplog.at_level(logging.INFO):
        rows, dropped = make_pairs(
            data, "llm_queries", options={"queries_per_doc": 2, "shuffle": False}
        )
    sil = "Sil The Sil river floods every April."  # documents are embedded as "title text"
    assert rows == [
        {"anchor": "When does the Sil river flood?", "positive": sil},
        {"anchor": "Which month brings floods?", "positive": sil},
        {"anchor": "When was Velmora founded?", "positive": "Velmora was founded in 1482."},
    ]
    assert dropped == {
        "query_too_short": 1,
        "query_duplicate": 1,
        "query_missing": 3,
        "query_not_a_question": 1,
        "query_copies_example": 1,
    }
    ((conversations, options),) = scripted.calls
    assert options == {"max_new_tokens": 56, "desc": "llm_queries"}
    assert conversations[0][-1]["content"].endswith(
        "Document: Sil The Sil river floods every April."
    )
    assert "llm_queries: 3 queries from 3 documents" in caplog.text
    assert "make_pairs llm_queries: 3 rows" in caplog.text


def test_held_out_documents_and_max_docs(tmp_path, scripted):
    data = write_corpus(tmp_path / "corpus")
    # The held-out texts are what make_pairs is given; a pair made from one is dropped.
    rows, dropped = make_pairs(
        data, "llm_queries", held_out={"Velmora was founded in 1482."}, options={"shuffle": False}
    )
    assert [row["anchor"] for row in rows] == ["When does the Sil river flood?"]
    assert dropped["held_out"] == 1
    picked = [
        make_pairs(data, "llm_queries", options={"max_docs": 1, "shuffle": False}, seed=seed)[0]
        for seed in (0, 0, 1)
    ]
    assert picked[0] == picked[1]
    assert len(scripted.calls[-1][0]) == 1


def test_wrong_layout_and_unknown_option(tmp_path, scripted):
    pairs = tmp_path / "sts"
    PairSet({"train": [{"sentence1": "a", "sentence2": "b", "score": 1.0}]}).write(pairs)
    with pytest.raises(DataError, match="strategy 'llm_queries' needs a retrieval dataset"):
        make_pairs(pairs, "llm_queries")
    with pytest.raises(ConfigError, match="unknown option"):
        make_pairs(write_corpus(tmp_path / "corpus"), "llm_queries", options={"temperature": 1})
    assert scripted.calls == []


def test_synthetic_queries_with_a_tiny_lm(tmp_path):
    """The real generation path on a tiny random model: its noise yields no question, and
    every document's missing query is counted."""
    model = build_tiny_lm(tmp_path / "tiny")
    settings = query_settings({"model": str(model), "max_new_tokens": 12, "batch_size": 2})
    dropped: Counter = Counter()
    stats = sq.GenerationStats()
    pairs = synthetic_queries(
        list(CORPUS.values()), settings, sq.lm_generator(settings, stats), dropped
    )
    assert stats.prompts == 3 and 0 < stats.tokens <= 36
    assert dropped["query_missing"] == 3 - len(pairs)
    with pytest.raises(DataError, match="strategy 'llm_queries' left no pairs .*query_missing=3"):
        make_pairs(
            write_corpus(tmp_path / "corpus"),
            "llm_queries",
            options={"model": str(model), "max_new_tokens": 12},
        )
