"""SFT sets for a causal LM: chat records → a tokenized ``datasets`` directory per split.

:func:`build_sft` is rule ``build_sft``. It reads chat records from one source — a QA set of
``generate_qa`` (template records carry ``messages``; LM-written records a ``question`` and
``answer``, and ``rephrased.jsonl`` their rephrasings), a NIAH set of ``generate_niah``, or a
user's chat JSONL in the Hugging Face ``messages`` convention (``{"messages": [{"role",
"content"}, ...]}``, optional ``split``, ``entity``, ``category``, ``kind``, ``keywords``,
``id``) — checks every record, applies the LM's own chat template and writes, per split, a
``datasets`` directory with ``input_ids``, ``attention_mask`` and ``labels``: the token ids
on assistant turns (their content and the template's end-of-turn token, which is checked to be
one of the tokenizer's stop tokens) and ``-100`` everywhere else (completion-only loss). A
``correction`` record (a wrong answer, an objection, the right answer) is labelled on its last
turn only: the wrong answer is context, not a target.

The masks come from the template itself: for assistant turn *i*, the text rendered for the
turns before it with the generation prompt is a prefix of the whole conversation's text, so
the turn starts where that prefix ends and ends after the end-of-turn token that follows;
tokens are labelled by their character offsets. This works for any template (SmolLM2's has no
``{% generation %}`` markers, which TRL's ``assistant_only_loss`` needs) and is verified: a
record whose labels do not decode to its assistant turns is an error.

Splits (the ``split`` of a record; QA and chat records default to ``train``):

- ``train`` — what a stage trains on, in the set's ``order``: ``sequential`` (grouped by
  entity, in the order written) or ``interleaved`` (shuffled with ``seed``);
- ``mirror`` — every (user, assistant) exchange of the training QA and conversation records
  asked again on its own (with the record's system prompt): memorisation;
- ``rephrased`` — the same facts asked in other words, never trained on;
- ``held_out`` — records of ``held_out_entities``: facts never trained on at all.

Records longer than ``max_length`` tokens are dropped (``on_long: drop``), cut
(``truncate``; a record whose assistant tokens are all cut is dropped) or stop the job
(``fail``); every dropped and truncated record is counted by reason in ``manifest.json``.
The output directory also holds ``records.jsonl`` (every kept record with its split, the
question, the reference answer and the key terms: what evaluation asks and scores) and
appears complete or not at all.

Example (a tiny random LM with SmolLM2's chat template):
    >>> import json, pathlib, tempfile
    >>> from adapterflow.generate.llm import build_tiny_lm
    >>> from adapterflow.train.sft import build_sft, load_sft_split
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> lm = build_tiny_lm(root / "lm")
    >>> rows = [{"messages": [{"role": "user", "content": "Where is Ulvey?"},
    ...                       {"role": "assistant", "content": "In the Sable Sea."}],
    ...          "entity": "ulvey"}]
    >>> _ = (root / "chat.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> manifest = build_sft({"chat": str(root / "chat.jsonl")}, lm, root / "sft",
    ...                      chat=root / "chat.jsonl")
    >>> manifest["splits"]
    {'train': 1, 'mirror': 1}
    >>> train = load_sft_split(root / "sft", "train")
    >>> from transformers import AutoTokenizer
    >>> tok = AutoTokenizer.from_pretrained(lm)
    >>> tok.decode([t for t in train[0]["labels"] if t != -100])
    'In the Sable Sea.<|im_end|>'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_dir, read_jsonl, write_json, write_jsonl
from adapterflow.lms import stop_token_ids

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
SPLITS = ("train", "mirror", "rephrased", "held_out")
ORDERS = ("sequential", "interleaved")
ON_LONG = ("drop", "truncate", "fail")
RECORDS_FILE = "records.jsonl"
MANIFEST_FILE = "manifest.json"
IGNORE_INDEX = -100
#: Record kinds whose exchanges are asked again as ``mirror`` questions (a correction's first
#: answer is wrong on purpose).
MIRRORED_KINDS = ("qa", "conversation", "chat", "niah")
#: Record kinds trained on their last assistant turn only: a correction's first answer is the
#: mistake the model is taught to correct, not an answer to learn.
LAST_TURN_KINDS = ("correction",)


@dataclass
class SFTRecord:
    """One checked chat record. ``line`` is its 1-based line in ``source``."""

    id: str
    messages: list[dict[str, str]]
    split: str
    kind: str
    entity: str | None = None
    category: str | None = None
    keywords: list[str] = field(default_factory=list)
    criteria: str | None = None
    source: str = ""
    line: int | None = None

    def as_row(self) -> dict[str, Any]:
        """The record as ``records.jsonl`` stores it: with the last question and answer."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        answers = [m["content"] for m in self.messages if m["role"] == "assistant"]
        return {
            "id": self.id,
            "split": self.split,
            "kind": self.kind,
            "entity": self.entity,
            "category": self.category,
            "question": users[-1] if users else "",
            "answer": answers[-1] if answers else "",
            "keywords": list(self.keywords),
            "criteria": self.criteria,
            "messages": self.messages,
        }


# --- reading and checking records -----------------------------------------------------------------


def check_messages(messages: Any, path: str | os.PathLike[str], line: int | None) -> list[dict]:
    """``messages`` as a list of ``{"role", "content"}`` dicts, or a :class:`DataError`
    naming the file, line and field: roles are system (first only), user and assistant, every
    content a non-empty string, at least one assistant turn, each after a user turn.

    Example:
        >>> from adapterflow.train.sft import check_messages
        >>> check_messages([{"role": "user", "content": "Hi"}], "chat.jsonl", 3)
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: chat.jsonl:3: field 'messages': no assistant turn \
(completion-only training needs one)
        >>> check_messages([{"role": "robot", "content": "Hi"}], "chat.jsonl", 4)
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: chat.jsonl:4: field 'messages[0].role': unknown role \
'robot'; expected one of system, user, assistant
    """
    if not isinstance(messages, list) or not messages:
        raise DataError(path, "expected a non-empty list of turns", line=line, field="messages")
    out = []
    for i, turn in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(turn, Mapping):
            raise DataError(
                path, "expected an object with role and content", line=line, field=where
            )
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise DataError(
                path,
                f"unknown role {role!r}; expected one of {', '.join(ROLES)}",
                line=line,
                field=f"{where}.role",
            )
        if not isinstance(content, str) or not content.strip():
            raise DataError(path, "expected non-empty text", line=line, field=f"{where}.content")
        if role == "system" and i:
            raise DataError(path, "a system turn must come first", line=line, field=where)
        if role == "assistant" and (not out or out[-1]["role"] != "user"):
            raise DataError(
                path, "an assistant turn must follow a user turn", line=line, field=where
            )
        out.append({"role": role, "content": content})
    if not any(turn["role"] == "assistant" for turn in out):
        raise DataError(
            path,
            "no assistant turn (completion-only training needs one)",
            line=line,
            field="messages",
        )
    return out


def _record(
    row: Mapping[str, Any],
    path: Path,
    line: int,
    *,
    kind: str,
    index: int,
    split: str | None = None,
) -> SFTRecord:
    messages = check_messages(row.get("messages"), path, line)
    split = split or row.get("split") or "train"
    if split not in SPLITS:
        raise DataError(
            path,
            f"unknown split {split!r}; expected one of {', '.join(SPLITS)}",
            line=line,
            field="split",
        )
    keywords = row.get("keywords") or []
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise DataError(path, "expected a list of strings", line=line, field="keywords")
    return SFTRecord(
        id=str(row.get("id") or f"{path.stem}:{index}"),
        messages=messages,
        split=split,
        kind=str(row.get("kind") or kind),
        entity=row.get("entity"),
        category=row.get("category"),
        keywords=list(keywords),
        criteria=row.get("evaluation_criteria") or row.get("criteria"),
        source=str(path),
        line=line,
    )


def _qa_messages(row: Mapping[str, Any], path: Path, line: int) -> list[dict[str, str]]:
    for key in ("question", "answer"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise DataError(path, "expected non-empty text", line=line, field=key)
    return [
        {"role": "user", "content": row["question"]},
        {"role": "assistant", "content": row["answer"]},
    ]


def read_chat_records(path: str | os.PathLike[str], kind: str = "chat") -> list[SFTRecord]:
    """The records of a chat JSONL file (``messages`` per line), checked."""
    path = Path(path)
    rows = read_jsonl(path, required={"messages": list})
    return [_record(row, path, line, kind=kind, index=i) for i, (line, row) in enumerate(rows)]


def read_qa_records(qa_dir: str | os.PathLike[str]) -> list[SFTRecord]:
    """The records of a ``generate_qa`` output directory: ``qa.jsonl`` (template records
    with ``messages``, or LM-written ``question``/``answer`` records) and, when present,
    ``rephrased.jsonl`` (split ``rephrased``)."""
    qa_dir = Path(qa_dir)
    path = qa_dir / "qa.jsonl"
    if not path.is_file():
        raise DataError(qa_dir, "not a QA set: no qa.jsonl")
    records = []
    for name, split in (("qa.jsonl", None), ("rephrased.jsonl", "rephrased")):
        file = qa_dir / name
        if not file.is_file():
            continue
        for i, (line, row) in enumerate(read_jsonl(file)):
            if "messages" not in row:
                row = {**row, "messages": _qa_messages(row, file, line)}
            records.append(_record(row, file, line, kind="qa", index=i, split=split))
    return records


def read_niah_records(path: str | os.PathLike[str]) -> list[SFTRecord]:
    """NIAH records as chat records: the context and question as the user turn; the answer
    prefix and the expected values as the assistant turn (evaluation puts the same prefix
    after the assistant tag, so training teaches exactly the continuation RULER scores)."""
    path = Path(path)
    records = []
    for i, (line, row) in enumerate(read_jsonl(path, required={"input": str, "outputs": list})):
        outputs = [str(value) for value in row["outputs"]]
        prefix = (row.get("answer_prefix") or "").strip()
        answer = f"{prefix} {', '.join(outputs)}." if prefix else f"{', '.join(outputs)}."
        record = _record(
            {
                "id": row.get("id"),
                "messages": [
                    {"role": "user", "content": row["input"]},
                    {"role": "assistant", "content": answer.strip()},
                ],
                "keywords": outputs,
                "category": row.get("variant"),
            },
            path,
            line,
            kind="niah",
            index=i,
        )
        records.append(record)
    return records


# --- tokenizing with assistant-only labels -------------------------------------------------------


def _template_check(tokenizer: Any, where: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"{where}: the tokenizer has no chat template (an SFT set needs one)")
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"{where}: the tokenizer has no EOS token: replies could never end")


def tokenize_record(record: SFTRecord, tokenizer: Any, stop_ids: Sequence[int]) -> dict[str, Any]:
    """``input_ids``, ``attention_mask`` and ``labels`` of one record, labels only on the
    assistant turns and their end-of-turn token (see the module docstring)."""
    render = tokenizer.apply_chat_template
    text = render(record.messages, tokenize=False)
    spans = []
    for i, turn in enumerate(record.messages):
        if turn["role"] != "assistant":
            continue
        before = render(record.messages[:i], tokenize=False, add_generation_prompt=True)
        through = render(record.messages[: i + 1], tokenize=False)
        if not text.startswith(before) or not text.startswith(through):
            raise DataError(
                record.source or record.id,
                "the chat template renders earlier turns differently once later turns follow; "
                "assistant tokens cannot be located",
                line=record.line,
                field=f"messages[{i}]",
            )
        spans.append((len(before), len(through), i))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    stops = set(stop_ids)
    if record.kind in LAST_TURN_KINDS:
        spans = spans[-1:]
    for start, end, i in spans:
        inside = [k for k, (s, e) in enumerate(offsets) if s >= start and e <= end and e > s]
        # The turn ends at its end-of-turn token; what the template writes after it (a
        # newline) is the next turn's business.
        last = next((k for k in inside if ids[k] in stops), None)
        if last is None:
            raise DataError(
                record.source or record.id,
                "the chat template does not end the assistant turn with a stop token "
                f"({tokenizer.convert_ids_to_tokens(sorted(stops))})",
                line=record.line,
                field=f"messages[{i}]",
            )
        for k in inside:
            if k <= last:
                labels[k] = ids[k]
        content = record.messages[i]["content"]
        decoded = tokenizer.decode([ids[k] for k in inside if k < last])
        if content.strip() not in decoded:
            raise DataError(
                record.source or record.id,
                f"the labelled tokens decode to {decoded!r}, not the assistant turn",
                line=record.line,
                field=f"messages[{i}]",
            )
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _fit(
    row: dict[str, Any],
    max_length: int,
    on_long: str,
    record: SFTRecord,
    counts: Counter,
    split: str,
) -> dict[str, Any] | None:
    if len(row["input_ids"]) <= max_length:
        return row
    if on_long == "fail":
        raise DataError(
            record.source or record.id,
            f"{len(row['input_ids'])} tokens, more than max_length {max_length} "
            "(on_long: fail; use drop or truncate, or raise max_length)",
            line=record.line,
            field="messages",
        )
    if on_long == "drop":
        counts[f"{split}: dropped, longer than max_length"] += 1
        return None
    cut = {key: value[:max_length] for key, value in row.items()}
    if all(label == IGNORE_INDEX for label in cut["labels"]):
        counts[f"{split}: dropped, no assistant token within max_length"] += 1
        return None
    counts[f"{split}: truncated to max_length"] += 1
    return cut


# --- splits and order ---------------------------------------------------------------------------


def mirror_records(records: Iterable[SFTRecord]) -> list[SFTRecord]:
    """Each (user, assistant) exchange of the training records of :data:`MIRRORED_KINDS`
    asked on its own, after the record's system prompt; one per distinct question."""
    seen: set[tuple[str, str]] = set()
    out = []
    for record in records:
        if record.split != "train" or record.kind not in MIRRORED_KINDS:
            continue
        system = [m for m in record.messages if m["role"] == "system"]
        turns = [m for m in record.messages if m["role"] != "system"]
        single = len([m for m in turns if m["role"] == "assistant"]) == 1
        for k in range(1, len(turns)):
            if turns[k]["role"] != "assistant" or turns[k - 1]["role"] != "user":
                continue
            key = (turns[k - 1]["content"], turns[k]["content"])
            if key in seen:
                continue
            seen.add(key)
            out.append(
                SFTRecord(
                    id=f"{record.id}:mirror{k // 2}",
                    messages=[*system, turns[k - 1], turns[k]],
                    split="mirror",
                    kind=record.kind,
                    entity=record.entity,
                    category=record.category,
                    # A conversation's key terms belong to all its turns together.
                    keywords=record.keywords if single else [],
                    criteria=record.criteria,
                    source=record.source,
                    line=record.line,
                )
            )
    return out


def order_records(records: Sequence[SFTRecord], order: str, seed: int) -> list[SFTRecord]:
    """``sequential``: grouped by entity, entities and records in the order first written;
    ``interleaved``: shuffled with ``seed`` (entities mixed).

    Example:
        >>> from adapterflow.train.sft import SFTRecord, order_records
        >>> rows = [SFTRecord(str(i), [], "train", "qa", entity=e) for i, e in enumerate("abab")]
        >>> [r.id for r in order_records(rows, "sequential", 0)]
        ['0', '2', '1', '3']
    """
    if order not in ORDERS:
        raise ConfigError(f"order {order!r} is not one of {', '.join(ORDERS)}")
    if order == "interleaved":
        shuffled = list(records)
        random.Random(f"{seed}|order").shuffle(shuffled)
        return shuffled
    groups: dict[Any, list[SFTRecord]] = {}
    for record in records:
        groups.setdefault(record.entity, []).append(record)
    return [record for group in groups.values() for record in group]


# --- the job --------------------------------------------------------------------------------------


def _settings(sft: Mapping[str, Any]) -> dict[str, Any]:
    from adapterflow.settings import SFTSettings

    return SFTSettings.from_block(sft).model_dump()


def build_sft(
    sft: Mapping[str, Any],
    lm_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    qa: str | os.PathLike[str] | None = None,
    niah: str | os.PathLike[str] | None = None,
    chat: str | os.PathLike[str] | None = None,
    name: str = "sft",
) -> dict[str, Any]:
    """Build the SFT set of block ``sft`` (an ``sft.<name>`` block) with the tokenizer and
    chat template of ``lm_dir`` from one source (``qa`` directory, ``niah`` JSONL or ``chat``
    JSONL); write it to ``out_dir`` and return the manifest. Every record is read, checked
    and tokenized before anything is written."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    settings = _settings(sft)
    sources = {"qa": qa, "niah": niah, "chat": chat}
    given = [key for key, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ConfigError(f"sft {name}: give exactly one source of qa, niah, chat (got {given})")
    kind = given[0]
    source = Path(sources[kind])
    if kind == "qa":
        records = read_qa_records(source)
    elif kind == "niah":
        records = read_niah_records(source)
    else:
        records = read_chat_records(source)
    read = len(records)
    counts: Counter = Counter()
    kinds = settings["kinds"]
    if kinds:
        kept = [r for r in records if r.split != "train" or r.kind in kinds]
        counts["train: skipped, kind not in kinds"] = len(records) - len(kept)
        records = kept
    held_out = set(settings["held_out_entities"] or ())
    unknown = held_out - {r.entity for r in records}
    if unknown:
        raise ConfigError(
            f"sft {name}: held_out_entities {sorted(unknown)} are not entities of {source}"
        )
    for record in records:
        if record.entity in held_out:
            record.split = "held_out"
    train = order_records(
        [r for r in records if r.split == "train"], settings["order"], settings["seed"]
    )
    by_split = {
        "train": train,
        "mirror": mirror_records(train),
        "rephrased": [r for r in records if r.split == "rephrased"],
        "held_out": [r for r in records if r.split == "held_out"],
    }

    tokenizer = AutoTokenizer.from_pretrained(str(lm_dir))
    _template_check(tokenizer, f"sft {name} (LM {lm_dir})")
    stops = stop_token_ids(None, tokenizer)
    max_length = settings["max_length"]
    tokenized: dict[str, list[dict[str, Any]]] = {}
    kept_records: dict[str, list[SFTRecord]] = {}
    for split, rows in by_split.items():
        tokenized[split], kept_records[split] = [], []
        for record in rows:
            row = _fit(
                tokenize_record(record, tokenizer, stops),
                max_length,
                settings["on_long"],
                record,
                counts,
                split,
            )
            if row is None:
                continue
            tokenized[split].append(row)
            kept_records[split].append(record)
    if not tokenized["train"] and kind != "qa":
        raise DataError(source, f"sft {name}: no training record left (counts: {dict(counts)})")

    label_tokens = {
        s: sum(sum(t != IGNORE_INDEX for t in r["labels"]) for r in rows)
        for s, rows in tokenized.items()
    }
    manifest = {
        "name": name,
        "source": {"kind": kind, "path": str(source)},
        "lm": str(lm_dir),
        "chat_template_sha256": hashlib.sha256(tokenizer.chat_template.encode()).hexdigest(),
        "vocab_size": len(tokenizer),
        "settings": settings,
        "records_read": read,
        "splits": {s: len(rows) for s, rows in tokenized.items() if rows},
        "tokens": {
            s: sum(len(r["input_ids"]) for r in rows) for s, rows in tokenized.items() if rows
        },
        "label_tokens": {s: n for s, n in label_tokens.items() if tokenized[s]},
        "skipped": {reason: n for reason, n in sorted(counts.items()) if n},
    }
    with atomic_dir(out_dir) as tmp:
        for split, rows in tokenized.items():
            if rows:
                Dataset.from_list(rows).save_to_disk(str(tmp / split))
        write_jsonl(
            tmp / RECORDS_FILE, [r.as_row() for split in SPLITS for r in kept_records[split]]
        )
        write_json(tmp / MANIFEST_FILE, manifest)
    logger.info(
        "sft %s: %d records read; splits %s; label tokens %s; skipped %s",
        name,
        read,
        manifest["splits"],
        manifest["label_tokens"],
        manifest["skipped"] or "none",
    )
    return manifest


def read_manifest(sft_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(sft_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(sft_dir, f"not an SFT set: no {MANIFEST_FILE}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_sft_split(sft_dir: str | os.PathLike[str], split: str) -> Any:
    """The tokenized ``split`` of an SFT set (a :class:`datasets.Dataset`)."""
    from datasets import load_from_disk

    path = Path(sft_dir) / split
    if not path.is_dir():
        raise DataError(
            sft_dir,
            f"the SFT set has no {split!r} split "
            f"(it has {sorted(read_manifest(sft_dir)['splits'])})",
        )
    return load_from_disk(str(path))


def read_sft_records(sft_dir: str | os.PathLike[str], split: str | None = None) -> list[dict]:
    """The rows of ``records.jsonl`` (of one ``split`` when given), in file order."""
    rows = read_jsonl(Path(sft_dir) / RECORDS_FILE)
    return [row for _, row in rows if split is None or row["split"] == split]
