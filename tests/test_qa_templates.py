"""Template-based QA records from YAML facts (adapterflow.generate.qa_templates)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.qa_templates import (
    conversation_records,
    correction_records,
    generate_records,
    load_facts,
    load_templates,
    qa_records,
)

FIXTURES = Path(__file__).parent / "fixtures" / "qa_templates"
SYSTEM = {
    "role": "system",
    "content": "You answer questions about the atlas of Ostrand and Lereth.",
}


@pytest.fixture(scope="module")
def facts():
    return load_facts(FIXTURES / "facts.yaml")


@pytest.fixture(scope="module")
def templates():
    return load_templates(FIXTURES / "templates.yaml")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_fixtures_load(facts, templates):
    assert [e.id for e in facts.entities] == [
        "velmora",
        "tarvik",
        "quenby",
        "ilsa_brenner",
        "oren_dask",
    ]
    assert facts.entities[3].fields["known_for"] == "the river clock and the tide calendar"
    assert facts.entities[0].fields["founded"] == "1187" and facts.entities[0].line == 4
    assert [t.id for t in templates.templates][:2] == ["city_country", "city_river"]
    assert templates.templates[0].questions == (
        "Which country is {name} in?",
        "In what country does {name} lie?",
    )
    assert templates.templates[1].line == 14
    assert templates.correction_user == "That is not right. Please check again."


def test_single_turn_records(facts, templates):
    rows = qa_records(facts, templates, shuffle=False)
    # 3 cities x (2 wordings + 3 one-wording templates) + 2 people x 3 templates.
    assert len(rows) == 3 * 5 + 2 * 3
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows)
    row = by_id["qa:city_country:velmora:1"]
    assert row["question"] == "In what country does Velmora lie?"
    assert row["answer"] == "Velmora is in Ostrand."
    assert row["messages"] == [
        SYSTEM,
        {"role": "user", "content": "In what country does Velmora lie?"},
        {"role": "assistant", "content": "Velmora is in Ostrand."},
    ]
    assert by_id["qa:person_known_for:ilsa_brenner:0"]["answer"] == (
        "Ilsa Brenner is known for the river clock and the tide calendar."
    )
    assert by_id["qa:city_river:quenby:0"]["answer"] in {
        "the Tern flows through Quenby.",
        "Quenby lies on the Tern.",
    }
    # Templates only meet entities of their type.
    assert not any(r["template"].startswith("person") and r["entity"] == "tarvik" for r in rows)
    assert all("{" not in r["question"] + r["answer"] for r in rows)
    one = qa_records(facts, templates, paraphrases="one")
    assert len(one) == 3 * 4 + 2 * 3


def test_records_are_deterministic(facts, templates):
    assert qa_records(facts, templates, seed=1) == qa_records(facts, templates, seed=1)
    assert qa_records(facts, templates, seed=1) != qa_records(facts, templates, seed=2)
    assert conversation_records(facts, templates, seed=3) == conversation_records(
        facts, templates, seed=3
    )
    assert correction_records(facts, templates, seed=4) == correction_records(
        facts, templates, seed=4
    )
    ordered = qa_records(facts, templates, shuffle=False)
    shuffled = qa_records(facts, templates, seed=1)
    assert sorted(r["id"] for r in ordered) == sorted(r["id"] for r in shuffled)


def test_multi_turn_conversations(facts, templates):
    rows = conversation_records(facts, templates, turns=3, per_entity=2, shuffle=False)
    assert len(rows) == 5 * 2
    assert [r["id"] for r in rows[:2]] == ["conversation:velmora:0", "conversation:velmora:1"]
    answers = {r["question"]: r["answer"] for r in qa_records(facts, templates)}
    for row in rows:
        messages = row["messages"]
        assert messages[0] == SYSTEM
        roles = [m["role"] for m in messages[1:]]
        assert roles == ["user", "assistant"] * 3
        assert len(set(row["templates"])) == 3
        for question, answer in zip(messages[1::2], messages[2::2], strict=True):
            # Every answer is the one the single-turn records give for that question (up to
            # the randomly drawn answer wording of city_river).
            if not question["content"].startswith("Which river"):
                assert answers[question["content"]] == answer["content"]
    # People have three templates: a longer conversation stops there.
    long = conversation_records(facts, templates, turns=10, shuffle=False)
    assert [len(r["templates"]) for r in long] == [4, 4, 4, 3, 3]


def test_corrections(facts, templates):
    rows = correction_records(facts, templates, shuffle=False)
    assert "person_known_for" not in {r["template"] for r in rows}  # correction: false
    assert len(rows) == 3 * 4 + 2 * 2
    by_id = {r["id"]: r for r in rows}
    row = by_id["correction:city_country:velmora"]
    # Only Quenby lies in another country, so it lends the wrong answer.
    assert row["wrong_answer"] == "Velmora is in Lereth."
    assert row["answer"] == "Velmora is in Ostrand."
    assert [m["content"] for m in row["messages"][2:]] == [
        "Velmora is in Lereth.",
        "That is not right. Please check again.",
        "Sorry, that was wrong. Velmora is in Ostrand.",
    ]
    assert row["messages"][0] == SYSTEM and row["messages"][1]["role"] == "user"
    assert by_id["correction:person_home:oren_dask"]["wrong_answer"] == (
        "Oren Dask lived in Velmora."
    )
    for r in rows:
        assert r["wrong_answer"] != r["answer"]


def test_corrections_skip_entities_without_a_different_value(tmp_path):
    facts = write(
        tmp_path, "f.yaml", "entities:\n  - {id: a, name: A, c: X}\n  - {id: b, name: B, c: X}\n"
    )
    tpl = write(tmp_path, "t.yaml", "templates:\n  - {question: 'c of {name}?', answer: '{c}'}\n")
    assert correction_records(load_facts(facts), load_templates(tpl)) == []


def test_explicit_asked_and_correction_placeholders(tmp_path):
    facts = write(
        tmp_path,
        "f.yaml",
        "entities:\n  - {id: a, name: Al, pet: cat}\n  - {id: b, name: Bo, pet: dog}\n",
    )
    tpl = write(
        tmp_path,
        "t.yaml",
        "correction:\n  user: 'No, {name} does not have a {pet}... wait: {wrong}?'\n"
        "  assistant: 'Right: {answer} (you asked: {question})'\n"
        "templates:\n  - question: Does {name} have a {pet}?\n"
        "    answer: Yes, {name} has a {pet}.\n"
        "    asked: [pet]\n",
    )
    rows = correction_records(load_facts(facts), load_templates(tpl), shuffle=False)
    assert rows[0]["wrong_answer"] == "Yes, Al has a dog."
    assert (
        rows[0]["messages"][-2]["content"]
        == "No, Al does not have a cat... wait: Yes, Al has a dog.?"
    )
    assert rows[0]["messages"][-1]["content"] == (
        "Right: Yes, Al has a cat. (you asked: Does Al have a cat?)"
    )
    assert rows[0]["messages"][0]["role"] == "user"  # no system prompt in this file


def test_generate_records_all_kinds():
    rows = generate_records(FIXTURES / "facts.yaml", FIXTURES / "templates.yaml", seed=0, turns=2)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("qa") == 21 and kinds.count("conversation") == 5
    assert kinds.count("correction") == 16
    assert kinds == sorted(kinds, key=["qa", "conversation", "correction"].index)
    with pytest.raises(ConfigError, match="unknown record kind 'quiz'"):
        generate_records(FIXTURES / "facts.yaml", FIXTURES / "templates.yaml", ["qa", "quiz"])
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['turn'\]"):
        generate_records(FIXTURES / "facts.yaml", FIXTURES / "templates.yaml", turn=2)
    with pytest.raises(ConfigError, match="turns must be an integer"):
        generate_records(FIXTURES / "facts.yaml", FIXTURES / "templates.yaml", turns=0)


# --- errors -------------------------------------------------------------------------------------

FACTS = (
    "entities:\n  - {id: a, type: city, name: Arlo, river: Sil}\n"
    "  - {id: b, type: person, name: Bea}\n"
)


@pytest.mark.parametrize(
    ("templates", "pattern"),
    [
        (
            "templates:\n  - {question: 'Hi?', answer: ok}\n  - applies_to: city\n"
            "    question: Where is {name}?\n    answer: On the {river} near {mayor}.\n",
            r"t\.yaml:3: field 'answer': template 1 \('t1'\): placeholder \{mayor\} is not an "
            r"attribute of entity 'a' in .*f\.yaml \(line 2\)",
        ),
        (
            "templates:\n  - id: q\n    question: ['Who is {name}?', 'Which river is {river}?']\n"
            "    answer: '{name}'\n",
            r"t\.yaml:2: field 'question\[1\]': template 0 \('q'\): placeholder \{river\} is not "
            r"an attribute of entity 'b'",
        ),
        (
            "templates:\n  - {question: 'Who is {name}?'}\n",
            r"t\.yaml:2: field 'answer': template 0: missing",
        ),
        (
            "templates:\n  - {question: 'Q?', answer: 'A', applies-to: city}\n",
            r"t\.yaml:2: field 'applies-to': template 0: unknown key",
        ),
        (
            "templates:\n  - {question: 'Q?', answer: 'A', applies_to: town}\n",
            r"t\.yaml:2: field 'applies_to': template 0 \('t0'\) applies to no entity",
        ),
        (
            "templates:\n  - {question: 'Q {name.upper}?', answer: 'A'}\n",
            r"field 'question': template 0 \('t0'\): placeholder \{name.upper\} must be a plain",
        ),
        (
            "templates:\n  - {question: 'Q {name?', answer: 'A'}\n",
            r"field 'question': template 0 \('t0'\): .*literal braces",
        ),
        (
            "templates:\n  - {id: x, question: 'Q?', answer: 'A'}\n"
            "  - {id: x, question: Q, answer: A}\n",
            r"t\.yaml:3: field 'id': template 1: duplicate id 'x'",
        ),
        ("templates: []\n", r"field 'templates': no templates"),
        ("questions: []\n", r"field 'templates': expected a mapping with a 'templates' list"),
        ("templates:\n  - [a, b\n", r"t\.yaml:3: invalid YAML"),
    ],
)
def test_template_errors_name_file_line_template_and_field(tmp_path, templates, pattern):
    facts = load_facts(write(tmp_path, "f.yaml", FACTS))
    with pytest.raises(DataError, match=pattern):
        qa_records(facts, load_templates(write(tmp_path, "t.yaml", templates)))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "entities:\n  - {id: a}\n  - {id: a}\n",
            r"f\.yaml:3: field 'id': entity 1: duplicate id 'a'",
        ),
        ("entities:\n  - {name: x}\n", r"f\.yaml:2: field 'id': entity 0: missing"),
        (
            "entities:\n  - id: a\n    home: {city: x}\n",
            r"f\.yaml:2: field 'home': entity 'a': value is a mapping",
        ),
        ("entities:\n  - {id: a, tags: []}\n", r"field 'tags': entity 'a': a list value"),
        ("entities:\n  - {id: a, note: }\n", r"field 'note': entity 'a': value is empty"),
        ("entities: []\n", r"field 'entities': no entities"),
        ("- {id: a}\n", r"field 'entities': expected a mapping with an 'entities' list"),
        ("entities:\n  - {id: a\n", r"f\.yaml:3: invalid YAML"),
    ],
)
def test_fact_errors_name_file_line_and_field(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern):
        load_facts(write(tmp_path, "f.yaml", text))
    with pytest.raises(DataError, match="cannot read"):
        load_facts(tmp_path / "missing.yaml")


def test_correction_errors(tmp_path):
    facts = load_facts(write(tmp_path, "f.yaml", FACTS))
    yes_no = write(
        tmp_path,
        "t.yaml",
        "templates:\n  - {question: 'Is {name} real?', answer: 'Yes, {name} is.'}\n",
    )
    with pytest.raises(
        DataError, match=r"t\.yaml:2: field 'asked': template 0 .*correction: false"
    ):
        correction_records(facts, load_templates(yes_no))
    off = write(
        tmp_path,
        "t2.yaml",
        "templates:\n  - {question: 'Is {name} real?', answer: 'Yes.', correction: false}\n",
    )
    assert correction_records(facts, load_templates(off)) == []
    bad_turn = write(
        tmp_path,
        "t3.yaml",
        "correction: {assistant: 'Fixed: {answr}'}\ntemplates:\n"
        "  - {question: 'Name?', answer: '{name}'}\n",
    )
    with pytest.raises(DataError, match=r"field 'correction.assistant': placeholder \{answr\}"):
        correction_records(facts, load_templates(bad_turn))
    bad_key = write(
        tmp_path, "t4.yaml", "correction: {reply: x}\ntemplates:\n  - {question: Q, answer: A}\n"
    )
    with pytest.raises(DataError, match="field 'correction'"):
        load_templates(bad_key)
    with pytest.raises(ConfigError, match="paraphrases"):
        qa_records(facts, load_templates(off), paraphrases="some")
