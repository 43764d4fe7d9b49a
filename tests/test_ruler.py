"""RULER's string-match metrics: equal to the upstream definitions, strict about bad input."""

from __future__ import annotations

import random

import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval.ruler import (
    METRICS,
    TASK_METRICS,
    check_samples,
    per_sample_scores,
    sample_match_all,
    sample_match_part,
    string_match_all,
    string_match_part,
)

# NVIDIA/RULER scripts/eval/synthetic/constants.py, transcribed as the reference.


def ruler_string_match_part(preds, refs):
    score = (
        sum(
            [
                max([1.0 if r.lower() in pred.lower() else 0.0 for r in ref])
                for pred, ref in zip(preds, refs, strict=False)
            ]
        )
        / len(preds)
        * 100
    )
    return round(score, 2)


def ruler_string_match_all(preds, refs):
    score = (
        sum(
            [
                sum([1.0 if r.lower() in pred.lower() else 0.0 for r in ref]) / len(ref)
                for pred, ref in zip(preds, refs, strict=False)
            ]
        )
        / len(preds)
        * 100
    )
    return round(score, 2)


WORDS = ["alpha", "Beta", "GAMMA", "délta", "ΣΟΦΙΑ", "שלום", "中文", "7481", "x", "Key-12"]


def random_samples(seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    n = rng.randint(1, 12)
    preds, refs = [], []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(0, 6))
        pred = " ".join(w.upper() if rng.random() < 0.3 else w for w in words)
        preds.append(pred)
        refs.append(rng.sample(WORDS, k=rng.randint(1, 4)))
    return preds, refs


def test_scores_equal_ruler_exactly():
    for seed in range(500):
        preds, refs = random_samples(seed)
        assert string_match_all(preds, refs) == ruler_string_match_all(preds, refs), seed
        assert string_match_part(preds, refs) == ruler_string_match_part(preds, refs), seed


@pytest.mark.parametrize("seed", range(20))
def test_per_sample_scores_average_to_the_corpus_score(seed):
    preds, refs = random_samples(seed)
    for metric, corpus in (("string_match_all", string_match_all), ("string_match_part", None)):
        scores = per_sample_scores(preds, refs, metric)
        assert all(0.0 <= s <= 1.0 for s in scores) and len(scores) == len(preds)
        if corpus is not None:
            assert round(sum(scores) / len(scores) * 100, 2) == corpus(preds, refs)
    part = per_sample_scores(preds, refs, "string_match_part")
    assert round(sum(part) / len(part) * 100, 2) == string_match_part(preds, refs)


def test_case_insensitive():
    assert string_match_all(["THE SECRET IS Needle"], [["needle", "secret"]]) == 100.0
    assert sample_match_part("abc", ["ABC"]) == 1.0


def test_substring_inside_a_word_counts_as_found():
    # RULER matches substrings, not words: "cat" is found in "concatenate".
    assert sample_match_all("concatenate", ["cat"]) == 1.0
    assert sample_match_all("12345", ["234"]) == 1.0


def test_multiple_references_partially_matched():
    preds = ["values: 11, 22", "none"]
    refs = [["11", "22", "33"], ["44", "55"]]
    assert per_sample_scores(preds, refs) == [2 / 3, 0.0]
    assert string_match_all(preds, refs) == 33.33
    assert per_sample_scores(preds, refs, "string_match_part") == [1.0, 0.0]
    assert string_match_part(preds, refs) == 50.0


def test_empty_prediction_scores_zero():
    assert string_match_all([""], [["a"]]) == 0.0
    assert string_match_part([""], [["a", "b"]]) == 0.0


def test_unicode():
    assert sample_match_all("Réponse: ÉCOLE", ["école"]) == 1.0
    assert sample_match_all("ΣΟΦΙΑ", ["σοφια"]) == 1.0
    assert sample_match_all("התשובה היא שלום", ["שלום"]) == 1.0
    assert sample_match_all("答案是中文", ["中文"]) == 1.0
    # str.lower is not case folding: "ß" and "SS" differ, as in RULER.
    assert sample_match_all("STRASSE", ["straße"]) == 0.0
    # Composed and decomposed "é" differ too; normalise both sides first if that matters.
    assert sample_match_all("e\u0301cole", ["\u00e9cole"]) == 0.0


def test_rounding_to_two_decimals():
    assert string_match_all(["a", "", ""], [["a"], ["b"], ["c"]]) == 33.33
    assert string_match_part(["a", "a", ""], [["a"], ["a"], ["c"]]) == 66.67


def test_empty_reference_list_is_an_error_naming_the_sample():
    with pytest.raises(DataError) as err:
        string_match_all(["a", "b"], [["a"], []], source="preds.jsonl")
    assert str(err.value) == "preds.jsonl:2: field 'outputs': no references to match"
    with pytest.raises(DataError, match="no references"):
        string_match_part(["a"], [[]])  # RULER: max() of an empty list


def test_mismatched_lengths_are_an_error():
    # RULER's zip would silently score only the first sample.
    with pytest.raises(DataError, match="2 predictions but 1 reference lists"):
        string_match_all(["a", "b"], [["a"]])
    with pytest.raises(DataError, match="1 predictions but 2 reference lists"):
        string_match_part(["a"], [["a"], ["b"]])


def test_no_samples_is_an_error():
    with pytest.raises(DataError, match="no samples to score"):
        string_match_all([], [])


@pytest.mark.parametrize(
    ("preds", "refs", "message"),
    [
        ("abc", [["a"], ["b"], ["c"]], "predictions must be a list, got str"),
        (["a"], "a", "references must be a list, got str"),
        (["a"], ["a"], ":1: field 'outputs': expected a list of strings, got str"),
        (["a"], [[1]], ":1: field 'outputs': expected a list of strings, found int 1"),
        ([None], [["a"]], ":1: field 'pred': expected a string, got NoneType"),
        (["a"], [[""]], ":1: field 'outputs': blank reference '' would match every prediction"),
        (["a b"], [["a", " "]], "blank reference ' '"),
    ],
)
def test_malformed_input_is_an_error(preds, refs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_samples(preds, refs)


def test_unknown_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown RULER metric 'exact'"):
        per_sample_scores(["a"], [["a"]], "exact")


def test_task_metrics_follow_ruler():
    assert set(TASK_METRICS.values()) == set(METRICS)
    assert TASK_METRICS["niah"] == "string_match_all"
    assert TASK_METRICS["qa"] == "string_match_part"


def test_sample_functions_alone():
    assert sample_match_all("a c", ["a", "b", "c", "d"]) == 0.5
    assert sample_match_part("nothing", ["a", "b"]) == 0.0
