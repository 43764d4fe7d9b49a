"""Template-based QA records from YAML facts (adapterflow.generate.qa_templates)."""

from __future__ import annotations

from collections import Counter
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


# --- held-out wordings, keywords and categories -------------------------------------------------

# The fixture's templates with held-out wordings and a category: written here, so the fixture
# (and the record counts other tests rely on) stays as it is.
REPHRASED_TEMPLATES = """\
system: You answer questions about the atlas of Ostrand and Lereth.
templates:
  - id: city_country
    applies_to: city
    category: geography
    question: ["Which country is {name} in?", "In what country does {name} lie?"]
    rephrased: ["{name} belongs to which country?", "Name the country of {name}."]
    answer: "{name} is in {country}."
  - id: city_founded
    applies_to: city
    question: When was {name} founded?
    rephrased: In what year did the history of {name} begin?
    answer: "{name} was founded in {founded}."
  - id: person_known_for
    applies_to: person
    question: What is {name} known for?
    answer: "{name} is known for {known_for}."
    correction: false
  - id: person_home
    applies_to: person
    question: Where did {name} live?
    rephrased: Which town was home to {name}?
    answer: "{name} lived in {home}."
"""


@pytest.fixture
def rephrased(tmp_path):
    return load_templates(write(tmp_path, "t.yaml", REPHRASED_TEMPLATES))


def test_record_fields(facts, templates):
    by_id = {r["id"]: r for r in qa_records(facts, templates, shuffle=False)}
    assert by_id["qa:city_country:velmora:1"] == {
        "id": "qa:city_country:velmora:1",
        "kind": "qa",
        "split": "train",
        "template": "city_country",
        "category": "city_country",  # no category: the template id
        "entity": "velmora",
        "question": "In what country does Velmora lie?",
        "answer": "Velmora is in Ostrand.",
        "keywords": ["Ostrand"],
        "messages": [
            SYSTEM,
            {"role": "user", "content": "In what country does Velmora lie?"},
            {"role": "assistant", "content": "Velmora is in Ostrand."},
        ],
    }
    # A list attribute gives each item as written in the facts, not the joined text.
    assert by_id["qa:person_known_for:ilsa_brenner:0"]["keywords"] == [
        "the river clock",
        "the tide calendar",
    ]
    for row in by_id.values():
        assert row["keywords"] and all(k in row["answer"] for k in row["keywords"])
        # The entity's name is in the question, so it is never a key term.
        assert facts_by_id(facts)[row["entity"]].fields["name"] not in row["keywords"]


def facts_by_id(facts):
    return {e.id: e for e in facts.entities}


def test_keywords_leave_out_what_the_question_names(tmp_path):
    facts = load_facts(
        write(tmp_path, "f.yaml", "entities:\n  - {id: a, name: Al, pet: cat, age: 3}\n")
    )
    tpl = write(
        tmp_path,
        "t.yaml",
        "templates:\n  - id: pet\n    question: ['How old is the {pet} of {name}?', 'Age?']\n"
        "    answer: 'The {pet} of {name} is {age}.'\n",
    )
    rows = qa_records(facts, load_templates(tpl), shuffle=False)
    assert [r["keywords"] for r in rows] == [["3"], ["cat", "Al", "3"]]


def test_rephrased_records(facts, rephrased):
    rows = qa_records(facts, rephrased, shuffle=False)
    train = [r for r in rows if r["split"] == "train"]
    held = [r for r in rows if r["split"] == "rephrased"]
    # 3 cities x (2 + 1) wordings + 2 people x (1 + 1), then the held-out wordings.
    assert len(train) == 3 * 3 + 2 * 2
    assert len(held) == 3 * (2 + 1) + 2 * 1
    assert rows == train + held  # held-out records come last
    assert len({r["id"] for r in rows}) == len(rows)
    by_id = {r["id"]: r for r in held}
    row = by_id["qa:city_country:quenby:r1"]
    assert row["question"] == "Name the country of Quenby."
    assert row["answer"] == "Quenby is in Lereth." and row["keywords"] == ["Lereth"]
    assert row["category"] == "geography" and row["kind"] == "qa"
    assert row["messages"] == [
        SYSTEM,
        {"role": "user", "content": "Name the country of Quenby."},
        {"role": "assistant", "content": "Quenby is in Lereth."},
    ]
    assert by_id["qa:person_home:oren_dask:r0"]["question"] == "Which town was home to Oren Dask?"
    categories = {r["category"] for r in rows}
    assert categories == {"geography", "city_founded", "person_known_for", "person_home"}
    # "one" draws one training wording, but every held-out wording is still asked.
    one = qa_records(facts, rephrased, paraphrases="one")
    assert sum(r["split"] == "train" for r in one) == 3 * 2 + 2 * 2
    assert sorted(r["id"] for r in one if r["split"] == "rephrased") == sorted(by_id)


def test_rephrased_wordings_leave_training_records_unchanged(tmp_path, facts):
    without = REPHRASED_TEMPLATES.replace("    rephrased:", "    # rephrased:")
    plain = load_templates(write(tmp_path, "plain.yaml", without))
    assert all(not t.rephrased for t in plain.templates)
    full = load_templates(write(tmp_path, "full.yaml", REPHRASED_TEMPLATES))
    for seed in range(3):
        rows = qa_records(facts, full, seed=seed)
        assert [r for r in rows if r["split"] == "train"] == qa_records(facts, plain, seed=seed)
        assert conversation_records(facts, full, seed=seed) == conversation_records(
            facts, plain, seed=seed
        )
        assert correction_records(facts, full, seed=seed) == correction_records(
            facts, plain, seed=seed
        )


def test_rephrased_wordings_never_reach_training(facts, rephrased):
    held = {r["question"] for r in qa_records(facts, rephrased) if r["split"] == "rephrased"}
    trained = set()
    for seed in range(8):
        for row in [
            *conversation_records(facts, rephrased, turns=4, per_entity=3, seed=seed),
            *correction_records(facts, rephrased, seed=seed),
            *qa_records(facts, rephrased, seed=seed, paraphrases="one"),
        ]:
            if row["split"] == "rephrased":
                continue
            assert row["split"] == "train"
            users = [m["content"] for m in row["messages"] if m["role"] == "user"]
            trained.update(users)
            assert not held & set(users), row["id"]
    assert "In what country does Velmora lie?" in trained  # the check did see questions


def test_conversation_and_correction_fields(facts, rephrased):
    for row in conversation_records(facts, rephrased, turns=3, per_entity=2, seed=1):
        assert row["split"] == "train" and row["category"] == "conversation"
        answers = " ".join(m["content"] for m in row["messages"] if m["role"] == "assistant")
        assert len(row["keywords"]) == len(set(row["keywords"]))
        assert row["keywords"] and all(k in answers for k in row["keywords"])
    velmora = conversation_records(facts, rephrased, turns=2, shuffle=False)[0]
    assert sorted(velmora["keywords"]) == ["1187", "Ostrand"]
    people = conversation_records(facts, rephrased, turns=2, shuffle=False)[3]
    assert people["entity"] == "ilsa_brenner"
    assert sorted(people["keywords"]) == ["Velmora", "the river clock", "the tide calendar"]
    rows = {r["id"]: r for r in correction_records(facts, rephrased, shuffle=False)}
    row = rows["correction:city_country:tarvik"]
    assert row["split"] == "train" and row["category"] == "geography"
    assert row["keywords"] == ["Ostrand"]
    assert rows["correction:person_home:oren_dask"]["category"] == "person_home"
    for r in rows.values():
        assert all(k in r["messages"][-1]["content"] for k in r["keywords"])


def test_correction_keywords_follow_the_correcting_turn(tmp_path):
    facts = load_facts(
        write(
            tmp_path,
            "f.yaml",
            "entities:\n  - {id: a, name: Al, pet: cat, vet: Dr Oak}\n"
            "  - {id: b, name: Bo, pet: dog, vet: Dr Elm}\n",
        )
    )
    quoting = "correction: {assistant: 'No: {answer} Ask {vet}.'}\n"
    bare = "correction: {assistant: 'Sorry, {name}, my mistake: not {wrong}.'}\n"
    body = "templates:\n  - {question: 'Which pet has {name}?', answer: '{name} has a {pet}.'}\n"
    rows = correction_records(facts, load_templates(write(tmp_path, "q.yaml", quoting + body)))
    keywords = {r["entity"]: r["keywords"] for r in rows}
    assert keywords == {"a": ["cat", "Dr Oak"], "b": ["dog", "Dr Elm"]}
    rows = correction_records(facts, load_templates(write(tmp_path, "b.yaml", bare + body)))
    assert [r["keywords"] for r in rows] == [[], []]


@pytest.mark.parametrize(
    ("templates", "pattern"),
    [
        (
            "templates:\n  - id: q\n    question: Who is {name}?\n"
            "    rephrased: ['Name {name}.', 'Which river is {river}?']\n    answer: '{name}'\n",
            r"t\.yaml:2: field 'rephrased\[1\]': template 0 \('q'\): placeholder \{river\} is "
            r"not an attribute of entity 'b' in .*f\.yaml \(line 3\)",
        ),
        (
            "templates:\n  - {question: 'Who is {name}?', rephrased: 'And {mayor}?', answer: x}\n",
            r"t\.yaml:2: field 'rephrased': template 0 \('t0'\): placeholder \{mayor\}",
        ),
        (
            "templates:\n  - {question: 'Q?', rephrased: [], answer: 'A'}\n",
            r"t\.yaml:2: field 'rephrased': template 0: missing or empty",
        ),
        (
            "templates:\n  - {question: 'Q?', rephrased: ['ok', ' '], answer: 'A'}\n",
            r"t\.yaml:2: field 'rephrased': template 0: missing or empty",
        ),
        (
            "templates:\n  - {question: 'Q?', rephrased: 'Q {name?', answer: 'A'}\n",
            r"field 'rephrased': template 0 \('t0'\): .*literal braces",
        ),
        (
            "templates:\n  - {question: 'Q?', answer: 'A', category: [a]}\n",
            r"t\.yaml:2: field 'category': template 0: expected text",
        ),
    ],
)
def test_rephrased_and_category_errors(tmp_path, templates, pattern):
    facts = load_facts(write(tmp_path, "f.yaml", FACTS))
    with pytest.raises(DataError, match=pattern):
        qa_records(facts, load_templates(write(tmp_path, "t.yaml", templates)))


# --- the knowledge preset's data (configs/knowledge/) ---------------------------------------------

KNOWLEDGE = Path(__file__).parents[1] / "configs" / "knowledge"


def count(rows):
    return Counter((r["kind"], r["split"]) for r in rows)


def test_knowledge_files():
    rows = generate_records(KNOWLEDGE / "facts.yaml", KNOWLEDGE / "templates.yaml", seed=0)
    assert count(rows) == {
        ("qa", "train"): 84,  # 40 facts x 2-3 trained wordings
        ("qa", "rephrased"): 54,  # 40 facts x 1-2 held-out wordings
        ("conversation", "train"): 10,  # one per entity
        ("correction", "train"): 40,  # one per fact
    }
    facts = {(r["template"], r["entity"]) for r in rows if r["kind"] == "qa"}
    assert len(facts) == 40
    assert {(r["template"], r["entity"]) for r in rows if r["split"] == "rephrased"} == facts
    general = generate_records(KNOWLEDGE / "general.yaml", KNOWLEDGE / "general_templates.yaml")
    # The 18 facts the base model answers (see the comment at the top of general.yaml).
    assert count(general)[("qa", "train")] == 18
    assert {r["split"] for r in general} == {"train"}  # no held-out wordings there
    for row in rows + general:
        if row["kind"] == "qa":
            assert row["keywords"] and all(k in row["answer"] for k in row["keywords"]), row

    # A held-out wording is another sentence, not a trained one with a word swapped.
    def words(text):
        return set(text.lower().rstrip("?.").split())

    trained = {}
    for r in rows:
        if r["kind"] == "qa" and r["split"] == "train":
            trained.setdefault((r["template"], r["entity"]), []).append(words(r["question"]))
    for r in rows:
        if r["split"] == "rephrased":
            for other in trained[(r["template"], r["entity"])]:
                assert len(words(r["question"]) ^ other) >= 4, r["question"]
