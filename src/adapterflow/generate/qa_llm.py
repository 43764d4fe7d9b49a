"""Question/answer records written by a local causal LM about each chunk of a corpus.

For each chunk of ``chunks.jsonl`` (rows ``{"_id", "doc_id", "start", "end", "text"}`` as
written by :func:`adapterflow.generate.chunking.chunk_corpus`) the LM gets one conversation:
an optional system prompt, one worked example (a user turn and the assistant's JSON reply, so
even a small model sees the exact format), then the prompt with the chunk. The reply is
parsed and validated by :func:`adapterflow.generate.qa_records.parse_records`: a record needs a
question, answer, evaluation criteria, a difficulty from 1 to 10, a category and citations that
occur verbatim in the chunk. Every record that fails is kept in ``rejected.jsonl`` with its
reason and counted per reason in the manifest and the log: nothing is dropped silently.

**Document summary.** The prompt's ``{summary}`` is the first ``summary_chars`` characters of
the chunk's document (rebuilt from its chunks, cut at a word boundary): free, deterministic and
usually the title and lead sentence, which tell the model what the chunk is about. An LLM
summary per document would cost one more generation per document for little gain with a small
model. ``summary_chars: 0`` leaves it empty.

**Reply format.** By default the model is asked for *one* JSON object per chunk with a single
``"citation"`` string, the reply is started for it with ``{"question": "`` and generation stops
at the first ``}``. SmolLM2-135M loops forever inside a ``"citations": [...]`` list (it never
closes it) but closes a plain string; a string ``citation`` is read as ``citations: [citation]``
before validation. Larger models can be asked for lists of records: override ``prompt``,
``example``, ``prefix`` (e.g. ``[``) and ``stop_strings`` (``[]``) in the config.

**What to expect from SmolLM2-135M.** It writes well-formed JSON for most chunks, but often
paraphrases instead of quoting (``citation_not_in_chunk``) and writes weak evaluation
criteria; run it to exercise the pipeline, and use a bigger model (any local directory or hub
id) for data worth training on.

**Rephrased split.** With ``rephrase: true`` the LM also rewrites each valid question in other
words (same answer), for evaluating whether a model retrieves or answers by meaning rather than
by wording. A rephrasing that is empty, not a question or the same as the original is rejected
and counted like a record.

Outputs in the output directory (which appears only once complete): ``qa.jsonl`` (valid
records), ``rephrased.jsonl`` (with ``rephrase``), ``rejected.jsonl`` (``stage``, ``kind``,
``reason``, the chunk and the offending object or reply) and ``manifest.json`` (settings and
counts: chunks, replies, records found, valid, rejected by reason, tokens, seconds).

Example (a stand-in for the LM that always gives the same reply):
    >>> import json, pathlib, tempfile
    >>> from adapterflow.generate.qa_llm import generate_qa, settings_from_config
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "chunks").mkdir()
    >>> text = "The Sil river floods every April."
    >>> row = {"_id": "d1-c0", "doc_id": "d1", "start": 0, "end": len(text), "text": text}
    >>> _ = (root / "chunks" / "chunks.jsonl").write_text(json.dumps(row) + "\\n")
    >>> def fake_lm(conversations, **options):
    ...     return ['When does the Sil flood?", "answer": "In April.", '
    ...             '"evaluation_criteria": "Says April.", "difficulty": 2, "category": "fact", '
    ...             '"citation": "The Sil river floods every April."}'] * len(conversations)
    >>> manifest = generate_qa(root / "chunks", root / "qa", settings_from_config({}),
    ...                        generate=fake_lm)
    >>> manifest["counts"]["valid"], manifest["counts"]["rejected"]
    (1, 0)
    >>> json.loads((root / "qa" / "qa.jsonl").read_text())["question"]
    'When does the Sil flood?'
"""

from __future__ import annotations

import json
import logging
import os
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from adapterflow.data.text import format_counts, truncate
from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.qa_records import Rejected, extract_json, label_records, parse_records
from adapterflow.io import atomic_dir, read_jsonl, sha256_file, write_json, write_jsonl
from adapterflow.lms import DEFAULT_LM, GenerationStats
from adapterflow.settings import QALLMSettings

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM = "You write quiz questions and answers about a passage. You reply with JSON only."

DEFAULT_PROMPT = (
    "Document: {summary}\n"
    "Passage: {chunk}\n\n"
    "Write one question that the passage answers, as a JSON object. "
    "The citation must be a sentence copied exactly from the passage."
)

#: The worked example shown before each chunk (an invented passage, so it leaks no data).
DEFAULT_EXAMPLE: dict[str, Any] = {
    "summary": "The Tovi lake freezes in December.",
    "chunk": "The Tovi lake freezes in December. Skaters use it until the ice melts in March.",
    "reply": {
        "question": "When does the Tovi lake freeze?",
        "answer": "In December.",
        "citation": "The Tovi lake freezes in December.",
        "evaluation_criteria": "Names December.",
        "difficulty": 2,
        "category": "fact",
    },
}

DEFAULT_PREFIX = '{"question": "'
DEFAULT_STOP = ("}",)

DEFAULT_REPHRASE_PROMPT = (
    "Rephrase this question with other words. Keep its meaning. "
    "Reply with the new question only.\n\nQuestion: {question}"
)

#: The worked example shown before each question to rephrase (without it SmolLM2-135M answers
#: the question instead of rephrasing it).
DEFAULT_REPHRASE_EXAMPLE: dict[str, str] = {
    "question": "When does the Tovi lake freeze?",
    "rephrased": "In which month does the ice form on the Tovi lake?",
}

#: The placeholders each template may use; the first one of each list is required.
_PLACEHOLDERS = {"prompt": ("chunk", "summary"), "rephrase_prompt": ("question",)}

#: Chunks a test run uses (``test_mode: true``).
TEST_MODE_CHUNKS = 2

#: What the schema fills in for a QA set of engine llm: the defaults of :class:`QASettings`
#: that the config also has (the prompts, examples and model above are the library's own).
_SCHEMA = QALLMSettings.from_block({})


@dataclass(frozen=True)
class QASettings:
    """Settings of a QA generation run; :func:`settings_from_config` reads them from a config
    block with the same keys. ``test_mode`` caps the run at :data:`TEST_MODE_CHUNKS` chunks,
    ``max_chunks`` at any number (the first chunks in file order)."""

    model: str = DEFAULT_LM
    system: str | None = DEFAULT_SYSTEM
    prompt: str = DEFAULT_PROMPT
    example: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_EXAMPLE))
    prefix: str = DEFAULT_PREFIX
    stop_strings: tuple[str, ...] = DEFAULT_STOP
    summary_chars: int = _SCHEMA.summary_chars
    max_new_tokens: int = _SCHEMA.max_new_tokens
    batch_size: int = _SCHEMA.batch_size
    max_chunks: int | None = _SCHEMA.max_chunks
    test_mode: bool = _SCHEMA.test_mode
    rephrase: bool = _SCHEMA.rephrase
    rephrase_prompt: str = DEFAULT_REPHRASE_PROMPT
    rephrase_example: Mapping[str, str] | None = field(
        default_factory=lambda: dict(DEFAULT_REPHRASE_EXAMPLE)
    )
    rephrase_max_new_tokens: int = _SCHEMA.rephrase_max_new_tokens
    dtype: str | None = None

    @property
    def chunk_limit(self) -> int | None:
        limits = [n for n in (self.max_chunks, TEST_MODE_CHUNKS if self.test_mode else None) if n]
        return min(limits) if limits else None


def _placeholders(template: str, name: str) -> None:
    allowed = _PLACEHOLDERS[name]
    try:
        found = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ConfigError(
            f"qa {name}: not a valid template ({err}); write a literal brace as {{{{ or }}}}"
        ) from None
    if unknown := sorted(found - set(allowed)):
        raise ConfigError(
            f"qa {name}: unknown placeholder(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(allowed)}; write a literal brace as {{{{ or }}}})"
        )
    if allowed[0] not in found:
        raise ConfigError(f"qa {name}: the template must contain {{{allowed[0]}}}")


def settings_from_config(block: Mapping[str, Any]) -> QASettings:
    """:class:`QASettings` from a config block (every key optional; unknown keys and bad
    values raise :class:`ConfigError`). ``prompt`` is a :meth:`str.format` template with
    ``{chunk}`` (required) and ``{summary}``; ``rephrase_prompt`` one with ``{question}``;
    ``example`` a mapping with ``chunk``, ``summary`` and ``reply`` (the JSON the model should
    answer, as an object or a string), ``rephrase_example`` one with ``question`` and
    ``rephrased``; null for no example. ``prefix`` starts the model's reply, ``stop_strings``
    end it, ``dtype`` is the dtype to load the model in (default: its own).

    Example:
        >>> from adapterflow.generate.qa_llm import settings_from_config
        >>> settings_from_config({"test_mode": True, "max_chunks": 10}).chunk_limit
        2
        >>> settings_from_config({"prompt": "Write a question about {text}"})
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: qa prompt: unknown placeholder(s) text (allowed: chunk, \
summary; write a literal brace as {{ or }})
        >>> settings_from_config({"max_chunk": 3})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: qa: unknown key(s) max_chunk (known: batch_size, ...)
    """
    known = {f for f in QASettings.__dataclass_fields__}
    if unknown := sorted(set(block) - known):
        raise ConfigError(
            f"qa: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    values = dict(block)
    if "stop_strings" in values:
        stops = values["stop_strings"]
        stops = [stops] if isinstance(stops, str) else list(stops or [])
        values["stop_strings"] = tuple(str(s) for s in stops)
    settings = replace(QASettings(), **values)
    _placeholders(settings.prompt, "prompt")
    _placeholders(settings.rephrase_prompt, "rephrase_prompt")
    for name in ("max_new_tokens", "batch_size", "rephrase_max_new_tokens"):
        if not isinstance(getattr(settings, name), int) or getattr(settings, name) < 1:
            raise ConfigError(
                f"qa {name}: expected an integer ≥ 1, got {getattr(settings, name)!r}"
            )
    if settings.max_chunks is not None and (
        not isinstance(settings.max_chunks, int) or settings.max_chunks < 1
    ):
        raise ConfigError(f"qa max_chunks: expected an integer ≥ 1, got {settings.max_chunks!r}")
    if not isinstance(settings.summary_chars, int) or settings.summary_chars < 0:
        raise ConfigError(
            f"qa summary_chars: expected an integer ≥ 0, got {settings.summary_chars!r}"
        )
    example = settings.example
    if example is not None:
        if not isinstance(example, Mapping) or not {"chunk", "reply"} <= set(example):
            raise ConfigError(
                "qa example: expected a mapping with chunk, summary and reply, or null"
            )
    example = settings.rephrase_example
    if example is not None:
        if not isinstance(example, Mapping) or not {"question", "rephrased"} <= set(example):
            raise ConfigError(
                "qa rephrase_example: expected a mapping with question and rephrased, or null"
            )
    return settings


# --- inputs ------------------------------------------------------------------------------------


def read_chunks(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``chunks.jsonl``; a missing file, a bad line or field, or a repeated
    ``_id`` raises :class:`DataError` naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    rows: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    required = {"_id": str, "doc_id": str, "start": int, "end": int, "text": str}
    for number, row in read_jsonl(path, required):
        if row["_id"] in first_line:
            raise DataError(
                path,
                f"duplicate id {row['_id']!r} (first on line {first_line[row['_id']]})",
                line=number,
                field="_id",
            )
        first_line[row["_id"]] = number
        rows.append(row)
    if not rows:
        raise DataError(path, "no chunks")
    return rows


def document_summaries(chunks: Sequence[Mapping[str, Any]], n_chars: int) -> dict[str, str]:
    """``doc_id → the first n_chars characters of the document``, rebuilt from its chunks in
    offset order and cut at a word boundary (:func:`adapterflow.data.pairs.truncate`).

    Example:
        >>> from adapterflow.generate.qa_llm import document_summaries
        >>> rows = [{"doc_id": "d", "start": 12, "text": "It rains."},
        ...         {"doc_id": "d", "start": 0, "text": "Wet Coast."}]
        >>> document_summaries(rows, 16)
        {'d': 'Wet Coast. It'}
    """
    parts: dict[str, list[tuple[int, str]]] = {}
    for row in chunks:
        parts.setdefault(row["doc_id"], []).append((row["start"], row["text"]))
    summaries = {}
    for doc_id, pieces in parts.items():
        text = " ".join(t for _, t in sorted(pieces, key=lambda p: p[0]))
        summaries[doc_id] = truncate(" ".join(text.split()), n_chars) if n_chars else ""
    return summaries


def _reply_text(reply: Any) -> str:
    return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)


def qa_messages(chunk: str, summary: str, settings: QASettings) -> list[dict[str, str]]:
    """The conversation for one chunk: system prompt, the worked example, the prompt.

    Example:
        >>> from adapterflow.generate.qa_llm import QASettings, qa_messages
        >>> settings = QASettings(system=None, example=None, prompt="{summary} | {chunk}")
        >>> qa_messages("Rain.", "Weather", settings)
        [{'role': 'user', 'content': 'Weather | Rain.'}]
    """
    messages = [{"role": "system", "content": settings.system}] if settings.system else []
    if settings.example:
        example = settings.example
        messages.append(
            {
                "role": "user",
                "content": settings.prompt.format(
                    chunk=example["chunk"], summary=example.get("summary", "")
                ),
            }
        )
        messages.append({"role": "assistant", "content": _reply_text(example["reply"])})
    messages.append(
        {"role": "user", "content": settings.prompt.format(chunk=chunk, summary=summary)}
    )
    return messages


# --- replies -----------------------------------------------------------------------------------


def normalise_reply(reply: str) -> str:
    """The reply with each record's single ``"citation"`` string turned into
    ``"citations": [citation]`` (the default prompt asks for one string, which small models
    manage where they loop inside a list); any other reply is returned unchanged.

    Example:
        >>> from adapterflow.generate.qa_llm import normalise_reply
        >>> normalise_reply('Sure: {"question": "Q?", "citation": "A."}')
        '[{"question": "Q?", "citation": "A.", "citations": ["A."]}]'
        >>> normalise_reply("no JSON here")
        'no JSON here'
    """
    items, error = extract_json(reply)

    def needs(item: Any) -> bool:
        return isinstance(item, dict) and "citations" not in item and "citation" in item

    if error or not any(needs(item) for item in items):
        return reply
    fixed = [
        {**item, "citations": [item["citation"]]}
        if needs(item) and isinstance(item["citation"], str)
        else item
        for item in items
    ]
    return json.dumps(fixed, ensure_ascii=False)


@dataclass
class QACounts:
    """What a run did, for the manifest and the log. ``attempts`` counts every record the
    parser looked at plus every reply without usable JSON; each one ends up ``valid`` or in
    ``rejected_by_reason``."""

    chunks: int = 0
    chunks_used: int = 0
    replies: int = 0
    records_found: int = 0
    replies_without_json: int = 0
    valid: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    rephrased: int = 0
    rephrase_rejected_by_reason: Counter = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return self.records_found + self.replies_without_json

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["attempts"] = self.attempts
        out["rejected"] = self.rejected
        out["rejected_by_reason"] = dict(sorted(self.rejected_by_reason.items()))
        out["rephrase_rejected_by_reason"] = dict(sorted(self.rephrase_rejected_by_reason.items()))
        return out


def records_from_reply(
    chunk: Mapping[str, Any], reply: str, counts: QACounts
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The valid records and the rejections of one reply about ``chunk``, as output rows;
    ``counts`` is updated.

    Example:
        >>> from adapterflow.generate.qa_llm import QACounts, records_from_reply
        >>> chunk = {"_id": "d1-c0", "doc_id": "d1", "text": "Cats purr."}
        >>> counts = QACounts()
        >>> valid, rejected = records_from_reply(chunk, '{"question": "Do cats purr?"}', counts)
        >>> valid, rejected[0]["kind"], counts.attempts, dict(counts.rejected_by_reason)
        ([], 'invalid_answer', 1, {'invalid_answer': 1})
    """
    normalised = normalise_reply(reply)
    items, error = extract_json(normalised)
    counts.replies += 1
    counts.records_found += len(items)
    counts.replies_without_json += bool(error)
    valid, rejected = parse_records(normalised, chunk["text"])
    counts.valid += len(valid)
    counts.rejected_by_reason.update(r.kind for r in rejected)
    rows = [
        {
            "_id": f"{chunk['_id']}-q{i}",
            "chunk_id": chunk["_id"],
            "doc_id": chunk["doc_id"],
            **record.model_dump(),
        }
        for i, record in enumerate(valid)
    ]
    return rows, [_rejected_row("qa", chunk, r, reply) for r in rejected]


def _rejected_row(stage: str, chunk: Mapping[str, Any], r: Rejected, reply: str) -> dict[str, Any]:
    return {
        "stage": stage,
        "chunk_id": chunk["_id"],
        "doc_id": chunk["doc_id"],
        "kind": r.kind,
        "reason": r.reason,
        "index": r.index,
        # The whole reply when it had no usable JSON, else the offending record.
        "raw": reply if r.index is None else r.raw,
    }


def rephrase_messages(question: str, settings: QASettings) -> list[dict[str, str]]:
    """The conversation asking to rephrase ``question``: the worked example, then the prompt.

    Example:
        >>> from adapterflow.generate.qa_llm import QASettings, rephrase_messages
        >>> [m["role"] for m in rephrase_messages("Why?", QASettings())]
        ['user', 'assistant', 'user']
    """
    messages = []
    if example := settings.rephrase_example:
        prompt = settings.rephrase_prompt.format(question=example["question"])
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": example["rephrased"]})
    messages.append({"role": "user", "content": settings.rephrase_prompt.format(question=question)})
    return messages


_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def clean_rephrasing(reply: str, original: str) -> tuple[str | None, str | None]:
    """``(question, None)`` for a usable rephrasing, or ``(None, reason)``: the first non-empty
    line of the reply, without a list mark, a ``Question:`` label or surrounding quotes;
    rejected when empty, not ending in ``?`` or the same as ``original`` (ignoring case and
    spacing).

    Example:
        >>> from adapterflow.generate.qa_llm import clean_rephrasing
        >>> clean_rephrasing('Question: "In which month does the Sil flood?"\\n', "When?")
        ('In which month does the Sil flood?', None)
        >>> clean_rephrasing("The Sil floods in April.", "When does the Sil flood?")
        (None, 'not_a_question')
    """
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None, "empty"
    text = _LIST_MARK.sub("", lines[0])
    for label in ("Rephrased question:", "New question:", "Question:"):
        if text.lower().startswith(label.lower()):
            text = text[len(label) :].strip()
    text = text.strip("\"'“”‘’ ").strip()
    if not text:
        return None, "empty"
    if not text.endswith("?"):
        return None, "not_a_question"
    if " ".join(text.lower().split()) == " ".join(original.lower().split()):
        return None, "same_as_original"
    return text, None


# --- the run -----------------------------------------------------------------------------------

#: ``generate(conversations, *, max_new_tokens, prefix, stop_strings) -> replies``: the reply
#: to each conversation, without ``prefix`` (the start of the reply the caller gave).
Generate = Callable[..., list[str]]


def lm_generator(
    settings: QASettings, threads: int | None = None, stats: GenerationStats | None = None
) -> Generate:
    """A :data:`Generate` backed by the model of ``settings`` (loaded once, greedy decoding)."""
    from adapterflow.lms import chat_generator

    return chat_generator(
        settings.model,
        dtype=settings.dtype,
        threads=threads,
        batch_size=settings.batch_size,
        stats=stats,
    )


def generate_qa(
    chunks_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: QASettings,
    *,
    threads: int | None = None,
    generate: Generate | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Generate QA records for the chunks of ``chunks_dir/chunks.jsonl`` (or a ``chunks.jsonl``
    path) into ``out_dir`` (see the module docstring) and return the manifest.

    ``generate`` replaces the LM (tests, or another backend); by default the model of
    ``settings`` is loaded with ``threads`` CPU threads. With ``dataset`` (the QA set's name)
    every written record also gets ``dataset`` and ``id`` = ``"{dataset}:{_id}"``
    (:func:`~adapterflow.generate.qa_records.label_records`), so sets can be pooled.
    """
    chunks_path = Path(chunks_dir)
    if chunks_path.suffix != ".jsonl":
        chunks_path = chunks_path / "chunks.jsonl"
    chunks = read_chunks(chunks_path)
    started = time.perf_counter()
    counts = QACounts(chunks=len(chunks))
    summaries = document_summaries(chunks, settings.summary_chars)
    limit = settings.chunk_limit
    used = chunks[:limit] if limit else chunks
    counts.chunks_used = len(used)
    if len(used) < len(chunks):
        logger.info(
            "qa: using the first %d of %d chunks (%s)",
            len(used),
            len(chunks),
            "test_mode" if settings.test_mode else "max_chunks",
        )
    stats = GenerationStats()
    if generate is None:
        generate = lm_generator(settings, threads, stats)

    conversations = [qa_messages(c["text"], summaries[c["doc_id"]], settings) for c in used]
    replies = generate(
        conversations,
        max_new_tokens=settings.max_new_tokens,
        prefix=settings.prefix,
        stop_strings=settings.stop_strings,
        desc="qa",
    )
    if len(replies) != len(used):
        raise RuntimeError(f"the generator returned {len(replies)} replies for {len(used)} prompts")
    records: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for chunk, reply in zip(used, replies, strict=True):
        valid, bad = records_from_reply(chunk, settings.prefix + reply, counts)
        records += valid
        rejected += bad
    if counts.valid + counts.rejected != counts.attempts:
        # Every record looked at must end up valid or rejected: a mismatch is a bug here.
        raise RuntimeError(
            f"qa counts do not add up: {counts.valid} valid + {counts.rejected} rejected != "
            f"{counts.attempts} attempts"
        )

    rephrased: list[dict[str, Any]] = []
    if settings.rephrase and records:
        rephrased = _rephrase(records, settings, generate, counts, rejected)

    if dataset is not None:
        records = label_records(records, dataset, id_field="_id")
        rephrased = label_records(rephrased, dataset, id_field="_id")
    seconds = time.perf_counter() - started
    manifest = {
        "dataset": dataset,
        "chunks_file": str(chunks_path),
        "chunks_sha256": sha256_file(chunks_path),
        "settings": _settings_dict(settings),
        "counts": counts.as_dict(),
        "generation": stats.as_dict(),
        "seconds": round(seconds, 1),
    }
    with atomic_dir(out_dir) as tmp:
        write_jsonl(tmp / "qa.jsonl", records)
        write_jsonl(tmp / "rejected.jsonl", rejected)
        if settings.rephrase:
            write_jsonl(tmp / "rephrased.jsonl", rephrased)
        write_json(tmp / "manifest.json", manifest)
    logger.info(
        "qa %s: %d chunks -> %d replies, %d records looked at (%d replies without JSON): "
        "%d valid, %d rejected (%s) in %.1f s (%.2f chunks/s, %.1f tokens/s)",
        settings.model,
        counts.chunks_used,
        counts.replies,
        counts.attempts,
        counts.replies_without_json,
        counts.valid,
        counts.rejected,
        format_counts(counts.rejected_by_reason),
        seconds,
        counts.chunks_used / max(seconds, 1e-9),
        stats.tokens_per_second,
    )
    if settings.rephrase:
        logger.info(
            "qa rephrase: %d of %d questions rephrased; rejected: %s",
            counts.rephrased,
            counts.valid,
            format_counts(counts.rephrase_rejected_by_reason),
        )
    if not records:
        logger.warning("qa: no valid record; see rejected.jsonl for what the model wrote")
    return manifest


def _rephrase(
    records: list[dict[str, Any]],
    settings: QASettings,
    generate: Generate,
    counts: QACounts,
    rejected: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    conversations = [rephrase_messages(r["question"], settings) for r in records]
    replies = generate(
        conversations,
        max_new_tokens=settings.rephrase_max_new_tokens,
        prefix="",
        stop_strings=("\n",),
        desc="qa rephrase",
    )
    rows = []
    for record, reply in zip(records, replies, strict=True):
        question, reason = clean_rephrasing(reply, record["question"])
        if reason:
            counts.rephrase_rejected_by_reason[reason] += 1
            rejected.append(
                {
                    "stage": "rephrase",
                    "chunk_id": record["chunk_id"],
                    "doc_id": record["doc_id"],
                    "kind": reason,
                    "reason": f"rephrasing of {record['_id']}: {reason}",
                    "index": None,
                    "raw": reply,
                }
            )
            continue
        counts.rephrased += 1
        rows.append(
            {
                **record,
                "_id": f"{record['_id']}-r",
                "qa_id": record["_id"],
                "question": question,
                "original_question": record["question"],
            }
        )
    return rows


def _settings_dict(settings: QASettings) -> dict[str, Any]:
    out = asdict(settings)
    out["stop_strings"] = list(settings.stop_strings)
    out["example"] = dict(settings.example) if settings.example else None
    example = settings.rephrase_example
    out["rephrase_example"] = dict(example) if example else None
    return out
