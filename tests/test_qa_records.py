"""Validation of LLM-generated QA records (adapterflow.generate.qa_records)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from adapterflow.generate.qa_records import (
    QARecord,
    Rejected,
    extract_json,
    parse_records,
    reject_counts,
)

CHUNK = (
    "The lighthouse at Kessel Point was built in 1871.\n"
    "Its lamp burned whale oil until 1902, when it was converted to kerosene.\n\n"
    "Keepers rowed to the mainland for supplies every second Tuesday."
)


def record(**changes) -> dict:
    base = {
        "question": "When was the lighthouse at Kessel Point built?",
        "answer": "In 1871.",
        "evaluation_criteria": "The answer must give the year 1871.",
        "difficulty": 3,
        "category": "factual",
        "citations": ["The lighthouse at Kessel Point was built in 1871."],
    }
    base.update(changes)
    return base


SECOND = record(
    question="What fuel did the lamp use after 1902?",
    answer="Kerosene.",
    difficulty=5,
    citations=["converted to kerosene"],
)


def test_valid_object_and_list():
    valid, rejected = parse_records(json.dumps(record()), CHUNK)
    assert rejected == [] and len(valid) == 1
    assert valid[0] == QARecord.model_validate(record(), context={"chunk": CHUNK})
    assert valid[0].difficulty == 3 and valid[0].category == "factual"
    valid, rejected = parse_records(json.dumps([record(), SECOND]), CHUNK)
    assert [r.answer for r in valid] == ["In 1871.", "Kerosene."] and rejected == []


def test_fenced_json_with_chatter():
    reply = (
        "Sure! Here are the records you asked for:\n\n```json\n"
        + json.dumps([record(), SECOND], indent=2)
        + "\n```\n\nLet me know if you want more {or fewer} questions."
    )
    valid, rejected = parse_records(reply, CHUNK)
    assert len(valid) == 2 and rejected == []
    untagged = "Records:\n```\n" + json.dumps(record()) + "\n```"
    assert len(parse_records(untagged, CHUNK)[0]) == 1
    # A code block in another language is not JSON; the record after it still is.
    other = "```python\nx = {1: 2}\n```\n" + json.dumps(record())
    assert len(parse_records(other, CHUNK)[0]) == 1


def test_objects_scattered_in_chatter_and_wrappers():
    reply = f"First: {json.dumps(record())}\nSecond: {json.dumps(SECOND)}\nDone."
    assert len(parse_records(reply, CHUNK)[0]) == 2
    wrapped = json.dumps({"records": [record(), SECOND]})
    assert len(parse_records(wrapped, CHUNK)[0]) == 2
    assert extract_json('{"questions": [{"question": "q"}]}') == ([{"question": "q"}], None)


def test_whitespace_reflow_and_extra_keys_are_accepted():
    reflowed = record(citations=["Its lamp burned whale oil until 1902,\nwhen it was converted"])
    extra = {**record(question="Who rowed to the mainland?"), "id": 7, "source": "llm"}
    extra["citations"] = ["Keepers rowed to the mainland"]
    valid, rejected = parse_records(json.dumps([reflowed, extra]), CHUNK)
    assert len(valid) == 2 and rejected == []
    assert not hasattr(valid[1], "source")
    # Quoted numbers are read as numbers; surrounding spaces are stripped.
    text = json.dumps(record(difficulty="7", question="  When was it built?  "))
    (row,), _ = parse_records(text, CHUNK)
    assert row.difficulty == 7 and row.question == "When was it built?"


@pytest.mark.parametrize("difficulty", [0, 11, -3, 7.5, "hard", True, None])
def test_invalid_difficulty_is_rejected(difficulty):
    valid, rejected = parse_records(json.dumps([record(difficulty=difficulty), SECOND]), CHUNK)
    assert [r.answer for r in valid] == ["Kerosene."]
    (reject,) = rejected
    assert reject.kind == "invalid_difficulty" and reject.index == 0
    assert reject.reason.startswith("record 0: difficulty: ")
    assert reject.raw["difficulty"] == difficulty


def test_missing_difficulty_is_rejected():
    row = record()
    del row["difficulty"]
    (reject,) = parse_records(json.dumps(row), CHUNK)[1]
    assert reject.kind == "invalid_difficulty" and "Field required" in reject.reason


def test_non_verbatim_citation_is_rejected():
    paraphrased = record(
        citations=[
            "The lighthouse at Kessel Point was built in 1871.",
            "The lamp used whale oil until 1902.",
        ]
    )
    valid, rejected = parse_records(json.dumps([paraphrased, SECOND]), CHUNK)
    assert len(valid) == 1
    (reject,) = rejected
    assert reject.kind == "citation_not_in_chunk"
    assert "citations.1: not a verbatim passage of the source chunk" in reject.reason
    assert "'The lamp used whale oil until 1902.'" in reject.reason
    # Case matters: a verbatim quote is a quote.
    shouted = record(citations=["THE LIGHTHOUSE AT KESSEL POINT"])
    assert parse_records(json.dumps(shouted), CHUNK)[1][0].kind == "citation_not_in_chunk"


@pytest.mark.parametrize(
    ("citations", "kind"),
    [([], "invalid_citations"), ([""], "invalid_citations"), ("1871", "invalid_citations")],
)
def test_citations_must_be_a_non_empty_list_of_text(citations, kind):
    (reject,) = parse_records(json.dumps(record(citations=citations)), CHUNK)[1]
    assert reject.kind == kind


def test_empty_fields_are_rejected():
    (reject,) = parse_records(json.dumps(record(answer="   ")), CHUNK)[1]
    assert reject.kind == "invalid_answer"


def test_citations_need_the_chunk():
    with pytest.raises(ValidationError, match="pass the chunk"):
        QARecord.model_validate(record())


def test_malformed_json():
    truncated = '[{"question": "When was it built?", "answer": "In 18'
    valid, rejected = parse_records(truncated, CHUNK)
    assert valid == []
    (reject,) = rejected
    assert reject.kind == "malformed_json" and reject.index is None and reject.raw == truncated
    assert reject.reason.startswith("malformed JSON: ")
    trailing_comma = '```json\n{"question": "q", "answer": "a",}\n```'
    assert parse_records(trailing_comma, CHUNK)[1][0].kind == "malformed_json"
    (reject,) = parse_records("I am sorry, I cannot do that.", CHUNK)[1]
    assert reject.kind == "no_json" and reject.reason == "no JSON object or list in the reply"
    assert parse_records("", CHUNK)[1][0].kind == "no_json"


def test_reply_cut_off_after_complete_records_keeps_them():
    cut = "[" + json.dumps(record()) + ", " + json.dumps(SECOND)[:40]
    valid, rejected = parse_records(cut, CHUNK)
    assert [r.answer for r in valid] == ["In 1871."] and rejected == []


def test_non_objects_and_duplicates_are_rejected_and_counted():
    reply = json.dumps([record(), "just a string", 42, record(), record(difficulty=99), SECOND])
    valid, rejected = parse_records(reply, CHUNK)
    assert len(valid) == 2
    assert [(r.index, r.kind) for r in rejected] == [
        (1, "not_an_object"),
        (2, "not_an_object"),
        (3, "duplicate"),
        (4, "invalid_difficulty"),
    ]
    assert rejected[0].reason == "record 1: expected a JSON object, got str"
    assert reject_counts(rejected) == {"not_an_object": 2, "duplicate": 1, "invalid_difficulty": 1}
    assert reject_counts([]) == {}
    assert isinstance(rejected[0], Rejected)
