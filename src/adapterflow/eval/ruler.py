"""RULER's string-match scores (NVIDIA/RULER ``scripts/eval/synthetic/constants.py``).

* ``string_match_all`` — per sample, the fraction of its references found in the prediction;
  averaged over samples, times 100, rounded to 2 decimals. RULER scores NIAH, variable
  tracking and common/frequent words extraction with it.
* ``string_match_part`` — per sample, 1 if any reference is found, else 0; averaged, times
  100, rounded to 2 decimals. RULER scores QA with it.
* :func:`postprocess_prediction` — RULER's ``postprocess_pred`` (``scripts/eval/evaluate.py``):
  strip, turn every ``\\x00``–``\\x1f`` character into a newline, strip again; here it also
  drops end-of-turn tokens a decoder left at the end.

"Found" means ``reference.lower() in prediction.lower()``: case-insensitive substring, so a
reference also matches inside a longer word ("cat" in "concatenate"). Predictions are scored
as given; clean them first with :func:`postprocess_prediction`, as RULER's ``evaluate.py`` does.

For valid input the scores equal RULER's to the last bit (same arithmetic in the same order).
Input RULER would crash on or silently mis-score raises :class:`DataError` here instead: a
different number of predictions and reference lists (RULER's ``zip`` would drop the extra
samples), no samples at all, a sample with no references, a blank reference (it would match
every prediction), a reference list given as a single string (RULER would match it character
by character) and non-string values. The error's ``line`` is the 1-based position of the
sample, which is its line in a one-sample-per-line JSONL.

Example:
    >>> from adapterflow.eval.ruler import postprocess_prediction
    >>> from adapterflow.eval.ruler import string_match_all, string_match_part
    >>> preds = ["The numbers are 7481 and 1024.", "I do not know"]
    >>> refs = [["7481", "1024", "3333"], ["Paris", "paris, France"]]
    >>> string_match_all(preds, refs)
    33.33
    >>> string_match_part(preds, refs)
    50.0
    >>> postprocess_prediction(" The number is 7481.\\t<|im_end|>")
    'The number is 7481.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from adapterflow.errors import ConfigError, DataError

#: RULER's metric for each task family (``TASKS`` in ``synthetic/constants.py``).
TASK_METRICS: dict[str, str] = {
    "niah": "string_match_all",
    "variable_tracking": "string_match_all",
    "common_words_extraction": "string_match_all",
    "freq_words_extraction": "string_match_all",
    "qa": "string_match_part",
}

_DEFAULT_SOURCE = "<predictions>"

_RULER_CONTROL = re.compile(r"[\x00-\x1f]")

#: End-of-sequence / end-of-turn markers of common chat templates, removed from the end of a
#: prediction when a decoder was run without ``skip_special_tokens``.
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    "</s>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "<eos>",
)


def postprocess_prediction(
    text: str, special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS
) -> str:
    """Clean a model's answer before scoring, as RULER does, then drop trailing special tokens.

    RULER: ``strip()``, every character in ``\\x00``–``\\x1f`` (tab and newline included)
    becomes ``"\\n"``, ``strip()`` again. Then any of ``special_tokens`` at the end is removed,
    repeatedly, with the whitespace before it. ``special_tokens=()`` gives RULER's result
    exactly.

    Example:
        >>> postprocess_prediction("  42\\x00\\x01</s></s>")
        '42'
        >>> postprocess_prediction("a\\tb", special_tokens=())
        'a\\nb'
    """
    text = _RULER_CONTROL.sub("\n", text.strip()).strip()
    tokens = [token for token in special_tokens if token]
    removed = True
    while removed:
        removed = False
        for token in tokens:
            if text.endswith(token):
                text = text[: -len(token)].rstrip()
                removed = True
    return text


def sample_match_all(pred: str, ref: Sequence[str]) -> float:
    """One sample's ``string_match_all`` in [0, 1]: the fraction of ``ref`` found in ``pred``.

    Example:
        >>> sample_match_all("KEY-1 and key-2", ["key-1", "KEY-2", "key-3", "key-4"])
        0.5
    """
    return sum([1.0 if r.lower() in pred.lower() else 0.0 for r in ref]) / len(ref)


def sample_match_part(pred: str, ref: Sequence[str]) -> float:
    """One sample's ``string_match_part``: 1.0 if any of ``ref`` is found in ``pred``, else 0.0.

    Example:
        >>> sample_match_part("It was Ada Lovelace.", ["Lovelace", "Augusta Ada King"])
        1.0
    """
    return max([1.0 if r.lower() in pred.lower() else 0.0 for r in ref])


_SAMPLE_METRICS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "string_match_all": sample_match_all,
    "string_match_part": sample_match_part,
}
METRICS: tuple[str, ...] = tuple(_SAMPLE_METRICS)


def check_samples(
    preds: Sequence[str], refs: Sequence[Sequence[str]], source: str = _DEFAULT_SOURCE
) -> None:
    """Raise :class:`DataError` for input the RULER metrics cannot score (see module docstring).

    ``source`` names the file the samples came from, for the message.

    Example:
        >>> check_samples(["a", "b"], [["a"]], source="preds.jsonl")
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: preds.jsonl: 2 predictions but 1 reference lists
        >>> check_samples(["a"], [[]], source="preds.jsonl")
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: preds.jsonl:1: field 'outputs': no references to match
    """
    for name, value in (("predictions", preds), ("references", refs)):
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise DataError(source, f"{name} must be a list, got {type(value).__name__}")
    if len(preds) != len(refs):
        raise DataError(source, f"{len(preds)} predictions but {len(refs)} reference lists")
    if not preds:
        raise DataError(source, "no samples to score")
    for line, (pred, ref) in enumerate(zip(preds, refs, strict=True), start=1):
        if not isinstance(pred, str):
            raise DataError(
                source, f"expected a string, got {type(pred).__name__}", line=line, field="pred"
            )
        if isinstance(ref, str | bytes) or not isinstance(ref, Sequence):
            raise DataError(
                source,
                f"expected a list of strings, got {type(ref).__name__}",
                line=line,
                field="outputs",
            )
        if not ref:
            raise DataError(source, "no references to match", line=line, field="outputs")
        for r in ref:
            if not isinstance(r, str):
                raise DataError(
                    source,
                    f"expected a list of strings, found {type(r).__name__} {r!r}",
                    line=line,
                    field="outputs",
                )
            if not r.strip():
                raise DataError(
                    source,
                    f"blank reference {r!r} would match every prediction",
                    line=line,
                    field="outputs",
                )


def per_sample_scores(
    preds: Sequence[str],
    refs: Sequence[Sequence[str]],
    metric: str = "string_match_all",
    source: str = _DEFAULT_SOURCE,
) -> list[float]:
    """Each sample's score in [0, 1] under ``metric`` (one of :data:`METRICS`), for per-item
    tables; the corpus score is their mean × 100, rounded to 2 decimals.

    Example:
        >>> per_sample_scores(["a b", "c"], [["a", "z"], ["c"]])
        [0.5, 1.0]
        >>> per_sample_scores(["a b", "c"], [["a", "z"], ["c"]], "string_match_part")
        [1.0, 1.0]
    """
    try:
        score = _SAMPLE_METRICS[metric]
    except KeyError:
        raise ConfigError(
            f"unknown RULER metric {metric!r} (expected one of: {', '.join(METRICS)})"
        ) from None
    check_samples(preds, refs, source)
    return [score(pred, ref) for pred, ref in zip(preds, refs, strict=True)]


def string_match_all(
    preds: Sequence[str], refs: Sequence[Sequence[str]], source: str = _DEFAULT_SOURCE
) -> float:
    """RULER's ``string_match_all``: mean fraction of references found, × 100, 2 decimals.

    Example:
        >>> string_match_all(["alpha beta", ""], [["ALPHA", "gamma"], ["delta"]])
        25.0
    """
    scores = per_sample_scores(preds, refs, "string_match_all", source)
    # Same expression as RULER: the sum of the list, divided, then scaled and rounded.
    return round(sum(scores) / len(preds) * 100, 2)


def string_match_part(
    preds: Sequence[str], refs: Sequence[Sequence[str]], source: str = _DEFAULT_SOURCE
) -> float:
    """RULER's ``string_match_part``: share of samples with any reference found, × 100, 2 decimals.

    Example:
        >>> string_match_part(["alpha beta", ""], [["ALPHA", "gamma"], ["delta"]])
        50.0
    """
    scores = per_sample_scores(preds, refs, "string_match_part", source)
    return round(sum(scores) / len(preds) * 100, 2)
