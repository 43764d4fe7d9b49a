"""A causal LM (base or with a LoRA adapter) answering the questions of an SFT set's split.

:func:`run_qa_evaluation` is rule ``evaluate_lm`` for tasks of kind ``qa``. It reads the
records of one split of an SFT set (:func:`~adapterflow.train.sft.read_sft_records`:
``mirror``, ``rephrased``, ``held_out`` or ``train``), asks each record's last question after
the turns before it — the same chat template and system prompt training saw — generates
greedily (batched, left-padded: :func:`~adapterflow.eval.generation.generate_completions`)
and scores every answer against the record's reference with
:func:`~adapterflow.eval.answers.score_answers`: ``keyword`` (every key term of the reference
present), ``semantic`` (cosine with the reference at least the task's ``scoring.threshold``,
with ``scoring.model``), ``hybrid`` (weighted), and the raw ``cosine``; optionally an LLM
judge (:mod:`adapterflow.eval.judge`, the task's ``judge`` block).

The eval JSON is shaped like every other task's: ``scores[split][0]`` holds ``main_score``
(the keyword accuracy, 0-1), ``keyword``, ``keyword_recall``, ``semantic``, ``hybrid``,
``cosine``, ``n`` and the breakdowns ``by_category``, ``by_entity`` and ``by_kind`` (nested, so
``metrics.csv`` keeps the flat numbers only). The details CSV has one row per record: ``id``,
``split``, ``kind``, ``entity``, ``category``, ``question``, ``reference``, ``prediction`` (the
generated text), the per-record scores and ``prompt_tokens``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval.answers import score_answers, summarize
from adapterflow.eval.generation import generate_completions, load_causal_lm
from adapterflow.eval.results import write_eval_result
from adapterflow.runtime import pick_device, seed_everything, set_threads
from adapterflow.settings import ScoringSettings
from adapterflow.train.sft import read_manifest, read_sft_records

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 48
DEFAULT_BATCH_SIZE = 8
SCORE_COLUMNS = ("keyword", "keyword_recall", "cosine", "semantic", "hybrid")


def question_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The turns before the record's last assistant turn: what the model is asked.

    Example:
        >>> from adapterflow.eval.lm_qa import question_messages
        >>> question_messages({"messages": [{"role": "user", "content": "Q?"},
        ...                                 {"role": "assistant", "content": "A."}]})
        [{'role': 'user', 'content': 'Q?'}]
    """
    messages = list(record["messages"])
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def run_qa_evaluation(
    *,
    task_name: str,
    task: Mapping[str, Any],
    model: Mapping[str, Any],
    sft_dir: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    out_details: str | os.PathLike[str],
    model_name: str = "lm",
    run: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    judge_cache: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Answer and score one (LM, run, qa task); write the eval JSON and the details CSV
    atomically; return the JSON's content.

    ``task`` is the ``tasks.<name>`` block (``split``, ``max_new_tokens`` (48), ``batch_size``
    (8), ``limit``, ``scoring``, ``judge``); ``model`` the LM block with ``path`` (the
    converted directory) and ``dtype``; ``run`` the run's ``name``, ``stage``, ``seed`` and
    ``adapter``; ``encoder`` the ``models`` block of ``scoring.model`` (None: no semantic
    score); ``judge_cache`` the judge's cache file when the task has a judge.
    """
    evaluation = dict(evaluation or {})
    run = dict(run or {"name": "base", "stage": "base", "seed": None, "adapter": None})
    split = task.get("split")
    if not split:
        raise ConfigError(f"task {task_name}: a qa task needs a split (mirror, rephrased, ...)")
    sft_dir = Path(sft_dir)
    manifest = read_manifest(sft_dir)
    records = read_sft_records(sft_dir, split)
    if not records:
        raise DataError(
            sft_dir,
            f"task {task_name}: the SFT set has no {split!r} records "
            f"(it has {sorted(manifest['splits'])})",
        )
    limit = task.get("limit")
    if limit:
        records = records[: int(limit)]
    scoring = ScoringSettings.from_block(task.get("scoring") or {}, f"tasks.{task_name}.scoring")
    max_new_tokens = int(task.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
    batch_size = int(task.get("batch_size") or DEFAULT_BATCH_SIZE)

    set_threads(threads)
    seed_everything(run.get("seed") or 0)
    started = time.perf_counter()
    device = pick_device(evaluation.get("device"))
    lm, tokenizer = load_causal_lm(
        model,
        adapter=run.get("adapter"),
        device=device,
        merge_adapter=bool(evaluation.get("merge_adapter", True)),
    )
    prompts = [
        tokenizer.apply_chat_template(
            question_messages(r), tokenize=False, add_generation_prompt=True
        )
        for r in records
    ]
    prompt_tokens = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    generating = time.perf_counter()
    answers = generate_completions(
        lm,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        add_special_tokens=False,
        show_progress=show_progress,
        desc=task_name,
    )
    generation_seconds = time.perf_counter() - generating
    answers = [answer.strip() for answer in answers]
    del lm

    embedder = None
    if encoder is not None:
        from adapterflow.models import load_encoder

        embedder = load_encoder(encoder, device=device)
    rows = score_answers(
        records,
        answers,
        encoder=embedder,
        threshold=scoring.threshold,
        keyword_weight=scoring.keyword_weight,
    )
    judged = None
    if task.get("judge"):
        from adapterflow.eval.judge import JudgeSettings, judge_answers

        if judge_cache is None:
            raise ConfigError(f"task {task_name}: a judge needs a cache file")
        judged = judge_answers(
            [
                {
                    "question": r["question"],
                    "reference": r["answer"],
                    "answer": a,
                    "criteria": r.get("criteria") or "",
                }
                for r, a in zip(records, answers, strict=True)
            ],
            JudgeSettings.from_block(task["judge"], where=f"tasks.{task_name}.judge"),
            cache_path=judge_cache,
        )
        for row, verdict in zip(rows, judged, strict=True):
            row["judge"] = verdict["judge_score"]
    for row, record in zip(rows, records, strict=True):
        for key in ("split", "kind", "entity", "category"):
            row[key] = record.get(key)
    scores = summarize(rows, by=("category", "entity", "kind"))
    if scores["keyword"] is None:
        raise DataError(sft_dir, f"task {task_name}: no {split} record has key terms to score")
    scores["main_score"] = scores["keyword"]
    if judged is not None:
        valid = [row["judge"] for row in rows if row["judge"] is not None]
        scores["judge"] = round(sum(valid) / len(valid), 4) if valid else None
        scores["judge_unparsed"] = len(rows) - len(valid)

    details = pd.DataFrame(
        {
            "id": [r["id"] for r in records],
            "split": [r["split"] for r in records],
            "kind": [r.get("kind") for r in records],
            "entity": [r.get("entity") for r in records],
            "category": [r.get("category") for r in records],
            "question": [r["question"] for r in records],
            "reference": [r["answer"] for r in records],
            "prediction": answers,
            **{key: [row[key] for row in rows] for key in SCORE_COLUMNS},
            **({"judge": [row["judge"] for row in rows]} if judged is not None else {}),
            "prompt_tokens": prompt_tokens,
        }
    )
    seconds = time.perf_counter() - started
    result = write_eval_result(
        out_json,
        out_details,
        details,
        task_name=task_name,
        task_kind="qa",
        dataset=task.get("dataset", sft_dir.name),
        split=split,
        scores=scores,
        run={**run, "model": model_name},
        seconds=seconds,
        config_blocks={
            "task": dict(task),
            "model": dict(model),
            "run": dict(run),
            "evaluation": evaluation,
            "encoder": dict(encoder) if encoder else None,
        },
        inputs=[sft_dir / "records.jsonl"],
        model_path=str(model.get("path")),
        device=device,
        extra={
            "generation": {
                "max_new_tokens": max_new_tokens,
                "batch_size": batch_size,
                "greedy": True,
                "samples": len(records),
                "seconds": round(generation_seconds, 2),
            }
        },
    )
    logger.info(
        "%s on %s (%s): keyword %.3f, semantic %s, hybrid %.3f over %d questions (%.1f s)",
        run.get("name"),
        task_name,
        split,
        scores["keyword"],
        scores.get("semantic"),
        scores["hybrid"],
        len(records),
        generation_seconds,
    )
    return result
