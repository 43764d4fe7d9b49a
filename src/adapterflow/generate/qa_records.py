"""Validated QA records from an LLM's reply about one source chunk.

An LLM asked to write question/answer records for a chunk of text replies with JSON — an
object, a list, several objects, often inside a ```` ```json ```` fence and surrounded by
chatter. :func:`parse_records` finds that JSON, validates each record as a :class:`QARecord`
and returns the valid ones plus a :class:`Rejected` entry (with a reason) for everything else,
so a generation job can log how many replies and records it lost and why
(:func:`reject_counts`). When a list does not parse (a reply cut off at the token limit), the
complete objects inside it are still read.

A record has ``question``, ``answer``, ``evaluation_criteria`` (how to judge an answer),
``difficulty`` (integer 1-10), ``category`` and ``citations``: one or more passages of the
chunk supporting the answer. Each citation must occur verbatim in the chunk, which is passed
as validation context (``QARecord.model_validate(obj, context={"chunk": text})``); runs of
whitespace are compared as one space because models reflow line breaks, but every word and
punctuation mark must match.

Example:
    >>> from adapterflow.generate.qa_records import parse_records
    >>> chunk = "The Sil river floods every April. Farmers plant rice after the flood."
    >>> reply = '''Here you go:
    ... ```json
    ... [{"question": "When does the Sil flood?", "answer": "Every April.",
    ...   "evaluation_criteria": "Names April.", "difficulty": 2, "category": "fact",
    ...   "citations": ["The Sil river floods every April."]},
    ...  {"question": "What is planted?", "answer": "Wheat.", "evaluation_criteria": "-",
    ...   "difficulty": 11, "category": "fact", "citations": ["Farmers plant wheat"]}]
    ... ```'''
    >>> valid, rejected = parse_records(reply, chunk)
    >>> [r.question for r in valid]
    ['When does the Sil flood?']
    >>> print(rejected[0].reason)
    record 1: difficulty: Input should be less than or equal to 10; citations.0: not a \
verbatim passage of the source chunk: 'Farmers plant wheat'
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

_WHITESPACE = re.compile(r"\s+")
# A fenced block: ```json ... ``` or a bare ``` ... ``` (language tag optional).
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
# An object without these keys that holds one list is a wrapper ({"records": [...]}).
_RECORD_FIELDS = frozenset({"question", "answer"})

NonEmpty = Annotated[str, Field(min_length=1)]


def _squash(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _verbatim(citation: str, info: ValidationInfo) -> str:
    chunk = (info.context or {}).get("chunk")
    if not isinstance(chunk, str):
        raise ValueError("cannot check the citation: pass the chunk as context={'chunk': text}")
    if _squash(citation) not in _squash(chunk):
        raise ValueError(f"not a verbatim passage of the source chunk: {citation!r}")
    return citation


# Checked one by one so an error names the citation's index (citations.2).
Citation = Annotated[str, Field(min_length=1), AfterValidator(_verbatim)]


class QARecord(BaseModel):
    """One generated QA record; extra keys in the model's JSON are ignored.

    Example:
        >>> from adapterflow.generate.qa_records import QARecord
        >>> QARecord.model_validate(
        ...     {"question": "Q?", "answer": "A.", "evaluation_criteria": "Says A.",
        ...      "difficulty": "3", "category": "fact", "citations": ["line\\nbreak"]},
        ...     context={"chunk": "A line break."}).difficulty
        3
    """

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore", frozen=True)

    question: NonEmpty
    answer: NonEmpty
    evaluation_criteria: NonEmpty
    difficulty: Annotated[int, Field(ge=1, le=10)]
    category: NonEmpty
    citations: Annotated[list[Citation], Field(min_length=1)]

    @field_validator("difficulty", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        # pydantic's lax int takes true as 1; a boolean difficulty is a broken reply.
        if isinstance(value, bool):
            raise ValueError("expected an integer from 1 to 10, got a boolean")
        return value


@dataclass(frozen=True)
class Rejected:
    """What :func:`parse_records` could not use: ``kind`` for counting, ``reason`` for people,
    ``index`` the record's position in the reply's JSON (``None`` when the whole reply
    failed) and ``raw`` the offending object or text."""

    kind: str
    reason: str
    index: int | None = None
    raw: Any = None


def _json_values(text: str) -> tuple[list[Any], str | None]:
    """Every top-level JSON object or list in ``text``, left to right, and the first decode
    error message (for a reply with no decodable JSON at all)."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    first_error: str | None = None
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i != -1]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            first_error = first_error or f"{err.msg} at line {err.lineno} column {err.colno}"
            pos = start + 1  # a stray brace in the chatter; look further on
            continue
        values.append(value)
        pos = end
    return values, first_error


def extract_json(raw_text: str) -> tuple[list[Any], str | None]:
    """The JSON items of an LLM reply, and an error message when there are none.

    Fenced blocks are read first (tagged ``json`` or untagged); without any, the whole reply
    is scanned. Lists are flattened into their items and a single-list wrapper object
    (``{"records": [...]}``) into the list.

    Example:
        >>> from adapterflow.generate.qa_records import extract_json
        >>> extract_json('Sure! {"question": "a"} and also {"question": "b"}. Bye.')
        ([{'question': 'a'}, {'question': 'b'}], None)
        >>> extract_json('{"records": [{"question": "a"}]}')
        ([{'question': 'a'}], None)
        >>> extract_json('[{"question": "a",}]')[1]
        'malformed JSON: Expecting property name enclosed in double quotes at line 1 column 19'
    """
    blocks = [
        body for tag, body in _FENCE.findall(raw_text) if tag.lower() in ("", "json", "jsonl")
    ]
    values: list[Any] = []
    error = None
    for text in blocks or [raw_text]:
        found, err = _json_values(text)
        values += found
        error = error or err
    items: list[Any] = []
    for value in values:
        if isinstance(value, dict) and not _RECORD_FIELDS & set(value):
            lists = [v for v in value.values() if isinstance(v, list)]
            if len(lists) == 1:
                value = lists[0]
        items.extend(value if isinstance(value, list) else [value])
    if items:
        return items, None
    if error:
        return [], f"malformed JSON: {error}"
    return [], "no JSON object or list in the reply"


def _reason(err: ValidationError) -> tuple[str, str]:
    """A one-line reason and a kind for counting (the first failing field)."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "record"
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    first = err.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "record"
    kind = "citation_not_in_chunk" if "verbatim" in first["msg"] else f"invalid_{field}"
    return "; ".join(parts), kind


def parse_records(raw_text: str, chunk: str) -> tuple[list[QARecord], list[Rejected]]:
    """Valid :class:`QARecord` objects of an LLM reply about ``chunk``, and what was rejected.

    A reply without usable JSON yields one :class:`Rejected` of kind ``no_json`` or
    ``malformed_json``; each unusable item one of kind ``not_an_object``, ``invalid_<field>``
    or ``citation_not_in_chunk``. Exact duplicate questions are rejected as ``duplicate``.
    Nothing raises: one bad reply must not stop a generation run.

    Example:
        >>> from adapterflow.generate.qa_records import parse_records
        >>> parse_records("I cannot help with that.", "chunk text")
        ([], [Rejected(kind='no_json', reason='no JSON object or list in the reply', \
index=None, raw='I cannot help with that.')])
    """
    items, error = extract_json(raw_text)
    if error:
        kind = "malformed_json" if error.startswith("malformed") else "no_json"
        return [], [Rejected(kind, error, None, raw_text)]
    valid: list[QARecord] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append(
                Rejected(
                    "not_an_object",
                    f"record {i}: expected a JSON object, got {type(item).__name__}",
                    i,
                    item,
                )
            )
            continue
        try:
            record = QARecord.model_validate(item, context={"chunk": chunk})
        except ValidationError as err:
            reason, kind = _reason(err)
            rejected.append(Rejected(kind, f"record {i}: {reason}", i, item))
            continue
        if record.question in seen:
            rejected.append(Rejected("duplicate", f"record {i}: duplicate question", i, item))
            continue
        seen.add(record.question)
        valid.append(record)
    return valid, rejected


def reject_counts(rejected: Iterable[Rejected]) -> dict[str, int]:
    """Rejections per kind, most frequent first, for a log line.

    Example:
        >>> from adapterflow.generate.qa_records import Rejected, reject_counts
        >>> reject_counts([Rejected("no_json", "x"), Rejected("invalid_difficulty", "y"),
        ...                Rejected("no_json", "z")])
        {'no_json': 2, 'invalid_difficulty': 1}
    """
    return dict(Counter(r.kind for r in rejected).most_common())


def label_records(
    rows: Iterable[dict[str, Any]], dataset: str, *, id_field: str = "id"
) -> list[dict[str, Any]]:
    """``rows`` labelled with the QA set they belong to, so sets can be pooled: each row gets
    ``"dataset": dataset`` and ``"id": "{dataset}:{row[id_field]}"`` (unique across sets when
    ``row[id_field]`` is unique within one), after the fields it already has.

    Template records carry an ``id``; LLM records an ``_id`` (pass ``id_field="_id"``, which is
    kept). The curation step (:func:`adapterflow.generate.clusters.dedup_cluster_split`) reads
    ``id`` and ``dataset``.

    Example:
        >>> from adapterflow.generate.qa_records import label_records
        >>> label_records([{"_id": "d1-c0-q0", "question": "Q?"}], "wiki-llm", id_field="_id")
        [{'_id': 'd1-c0-q0', 'question': 'Q?', 'id': 'wiki-llm:d1-c0-q0', 'dataset': 'wiki-llm'}]
    """
    return [{**row, "id": f"{dataset}:{row[id_field]}", "dataset": dataset} for row in rows]
