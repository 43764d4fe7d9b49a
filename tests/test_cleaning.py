"""Text cleaning for generated data (minimal and full styles) and RULER's prediction
post-processing (adapterflow.eval.ruler), tested on the same random texts."""

from __future__ import annotations

import random
import re

import pytest

from adapterflow.errors import ConfigError
from adapterflow.eval.ruler import DEFAULT_SPECIAL_TOKENS, postprocess_prediction
from adapterflow.generate.cleaning import STYLES, clean, clean_full, clean_minimal


def ruler_postprocess_pred(predict_str: str) -> str:
    """RULER's ``postprocess_pred`` (scripts/eval/evaluate.py), transcribed as the reference."""
    predict_str = predict_str.strip()
    np_pattern = re.compile(r"[\x00-\x1f]")
    predict_str = np_pattern.sub("\n", predict_str).strip()
    return predict_str


ALPHABET = (
    "ab Z9.,!?'\"\t\n\r\x00\x07\x1b\x7f\x85\x0b\x0c\u00a0\u2009\u3000\u200b\u200c\u200d"
    "\u2018\u2019\u201c\u201d\u2013\u2014\u2212\u00ad\ufeff\u202e\u2066\u2028\u2029"
    "éе\u0301שלוםمرحبا😀👩\ufe0f中文<>/|"
)


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, 60))) for _ in range(n)]


# --- minimal ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("   \t\n \r\n ", ""),
        ("answer", "answer"),
        ("\n\n  42 \nmore text\nand more", "42"),
        ("first\r\nsecond", "first"),  # the \r of CRLF does not stay behind
        ("\tindented\tanswer\t\nnext", "indented\tanswer"),
        ("😀 emoji first\nsecond", "😀 emoji first"),
        ("  שלום עולם\nשורה שנייה", "שלום עולם"),
        ("مرحبا بالعالم", "مرحبا بالعالم"),
    ],
)
def test_minimal_strips_and_keeps_the_first_line(text, expected):
    assert clean_minimal(text) == expected
    assert clean(text, "minimal") == expected


def test_minimal_leaves_the_first_line_untouched_otherwise():
    # Only "the first line" is decided here; typography is left to scoring.
    assert clean_minimal("\u201cquoted\u201d \u2014 dash\u00a0nbsp") == (
        "\u201cquoted\u201d \u2014 dash\u00a0nbsp"
    )


# --- full ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        (" \t \n\r\n \u00a0\u3000 ", ""),
        ("\u200b\ufeff\u00ad", ""),
        ("a\r\nb\rc", "a\nb\nc"),
        ("tab\t\tseparated\t", "tab separated"),
        ("many     spaces  here", "many spaces here"),
        ("nbsp\u00a0thin\u2009ideo\u3000narrow\u202fend", "nbsp thin ideo narrow end"),
        ("\u2018single\u2019 \u201cdouble\u201d \u201elow\u201f", '\'single\' "double" "low"'),
        ("en\u2013em\u2014minus\u2212bar\u2015fw\uff0d", "en-em-minus-bar-fw-"),
        ("zero\u200bwidth\u2060joined\ufeffbom soft\u00adhyphen", "zerowidthjoinedbom softhyphen"),
        ("bell\x07 esc\x1b del\x7f c1\x9b nul\x00", "bell esc del c1 nul"),
        ("para one\n\n\n\n para two", "para one\n\npara two"),
        ("para one\n  \t \npara two", "para one\n\npara two"),  # whitespace-only line
        ("line one\nline two", "line one\nline two"),  # single breaks kept (tables)
        ("page\x0cbreak", "page\n\nbreak"),
        ("line\u2028sep\u2029para", "line\nsep\n\npara"),
        ("next\x85line", "next\nline"),
        ("e\u0301cole", "\u00e9cole"),  # NFC: composed
        ("lone\udcffsurrogate", "lonesurrogate"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "| a | b |\n|---|---|\n| 1 | 2 |"),
    ],
)
def test_full_normalises(text, expected):
    assert clean_full(text) == expected
    assert clean(text) == expected


def test_full_keeps_emoji_sequences_and_scripts_that_need_joiners():
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # one glyph, held by ZWJs
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # ZWNJ is part of the spelling
    flag_and_heart = "\U0001f1e9\U0001f1ea \u2764\ufe0f"
    text = f"{family} {persian} {flag_and_heart}"
    assert clean_full(text) == text


def test_full_drops_bidi_controls_but_keeps_rtl_text_in_logical_order():
    hebrew = "\u05e9\u05dc\u05d5\u05dd"
    arabic = "\u0645\u0631\u062d\u0628\u0627"
    text = f"\u202b{hebrew}\u202c \u200f{arabic}\u200e 42 \u2067{hebrew}\u2069"
    assert clean_full(text) == f"{hebrew} {arabic} 42 {hebrew}"


def test_full_join_lines_turns_wrapped_lines_into_one_paragraph():
    text = "wrapped prose\nover two lines\n\nnext paragraph"
    assert clean_full(text, join_lines=True) == "wrapped prose over two lines\n\nnext paragraph"


def test_full_output_invariants_on_random_text():
    for text in random_texts(500):
        out = clean_full(text)
        assert clean_full(out) == out, repr(text)  # idempotent
        out.encode("utf-8")  # no lone surrogates left
        assert not re.search(
            r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b\u00ad\ufeff\u202a-\u202e]", out
        ), repr(text)
        assert "  " not in out and "\n\n\n" not in out and "\t" not in out, repr(text)
        assert not re.search("[\u2018\u2019\u201c\u201d\u2013\u2014\u2212\u00a0\u3000]", out)
        assert out == out.strip(), repr(text)
        assert all(line == line.strip(" ") for line in out.split("\n")), repr(text)


def test_unknown_style_is_a_config_error():
    assert STYLES == ("minimal", "full")
    with pytest.raises(ConfigError, match="unknown cleaning style 'fancy'"):
        clean("text", "fancy")  # type: ignore[arg-type]


# --- predictions -----------------------------------------------------------------------------


def test_postprocess_equals_ruler_without_special_tokens():
    for text in random_texts(500, seed=1):
        assert postprocess_prediction(text, special_tokens=()) == ruler_postprocess_pred(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        (" \t\n\r ", ""),
        ("\x00\x01\x1f", ""),
        ("  7481  ", "7481"),
        ("a\tb\x00c", "a\nb\nc"),  # tab and NUL become line breaks, as in RULER
        ("a\r\nb", "a\n\nb"),  # so does \r: CRLF turns into two breaks
        ("a\x7fb\x85c", "a\x7fb\x85c"),  # RULER only touches \x00-\x1f
        ("The answer is 42.</s>", "The answer is 42."),
        ("42 <|im_end|>\n<|endoftext|>", "42"),
        ("42<|eot_id|><|eot_id|>", "42"),
        ("</s>", ""),
        ("<|im_end|> is a token name", "<|im_end|> is a token name"),  # only trailing ones
        ("שלום 😀</s>", "שלום 😀"),
    ],
)
def test_postprocess_prediction(text, expected):
    assert postprocess_prediction(text) == expected


def test_postprocess_custom_special_tokens():
    assert postprocess_prediction("yes[END] [END]", special_tokens=["[END]"]) == "yes"
    assert postprocess_prediction("yes</s>", special_tokens=[]) == "yes</s>"
    assert postprocess_prediction("yes", special_tokens=[""]) == "yes"  # ignored, no loop
    assert "<|im_end|>" in DEFAULT_SPECIAL_TOKENS and "</s>" in DEFAULT_SPECIAL_TOKENS
