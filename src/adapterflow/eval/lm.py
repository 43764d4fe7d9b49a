"""Rule ``evaluate_lm``: a causal LM (base or with a run's adapter) on one task, by its kind.

- ``ruler`` — greedy continuation of a NIAH set's prompts, RULER's string match
  (:func:`adapterflow.eval.generation.run_generation_evaluation`);
- ``qa`` — greedy answers to one split of an SFT set, keyword / semantic / hybrid scores
  (:func:`adapterflow.eval.lm_qa.run_qa_evaluation`).

Both write ``results/eval/{lm}/{run}/{task}.json`` (MTEB-shaped, with provenance) and the
per-record ``{task}.details.csv`` beside it, as the encoders' ``evaluate`` does.

Example:
    >>> from adapterflow.eval.lm import evaluate_lm
    >>> evaluate_lm(task_name="t", task={"kind": "sts"}, model={}, dataset="d",
    ...             out_json="t.json", out_details="t.csv")
    Traceback (most recent call last):
    ...
    adapterflow.errors.ConfigError: task t: kind 'sts' is not a causal-LM task (ruler, qa)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from adapterflow.errors import ConfigError

KINDS = ("ruler", "qa")


def evaluate_lm(
    *,
    task_name: str,
    task: Mapping[str, Any],
    model: Mapping[str, Any],
    dataset: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    out_details: str | os.PathLike[str],
    model_name: str = "lm",
    run: Mapping[str, Any] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
    judge_cache: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``task`` (``dataset``: the NIAH JSONL of a ruler task, the SFT
    directory of a qa task); return the eval JSON's content."""
    kind = task.get("kind", "ruler")
    if kind == "ruler":
        from adapterflow.eval.generation import run_generation_evaluation

        return run_generation_evaluation(
            task_name=task_name,
            task=task,
            model=model,
            dataset=dataset,
            out_json=out_json,
            out_details=out_details,
            model_name=model_name,
            run=run,
            evaluation=evaluation,
            limit=limit,
            threads=threads,
        )
    if kind == "qa":
        from adapterflow.eval.lm_qa import run_qa_evaluation

        if limit is not None:
            task = {**task, "limit": limit}
        return run_qa_evaluation(
            task_name=task_name,
            task=task,
            model=model,
            sft_dir=dataset,
            out_json=out_json,
            out_details=out_details,
            model_name=model_name,
            run=run,
            evaluation=evaluation,
            encoder=encoder,
            judge_cache=judge_cache,
            threads=threads,
        )
    raise ConfigError(
        f"task {task_name}: kind {kind!r} is not a causal-LM task ({', '.join(KINDS)})"
    )
