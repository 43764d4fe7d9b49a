"""Checkpoints outside the output, and resuming from them, for every trainer of the workflow.

Both training rules (``train_adapter`` for encoders, ``train_lm_adapter`` for causal LMs)
write checkpoints every ``checkpoint_steps`` steps to a directory outside their output, which
Snakemake deletes when a job fails. :func:`prepare_checkpoint_dir` decides where a rerun
starts: from the last complete checkpoint when the run's :func:`fingerprint` (a hash of
everything that determines the trained weights) matches the one recorded in ``run.json``;
from scratch, after discarding the old checkpoints and ``train_log.jsonl``, when it does not.
A checkpoint a killed job left half-written (no ``trainer_state.json`` or no adapter
weights) is discarded.

Example:
    >>> import pathlib, tempfile
    >>> from adapterflow.train.checkpoints import fingerprint, prepare_checkpoint_dir
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> run = fingerprint({"stage": {"max_steps": 10}, "seed": 0})
    >>> prepare_checkpoint_dir(root, run) is None  # nothing to resume
    True
    >>> (root / "checkpoint-5").mkdir()
    >>> for name in ("trainer_state.json", "adapter_model.safetensors"):
    ...     _ = (root / "checkpoint-5" / name).write_text("{}")
    >>> prepare_checkpoint_dir(root, run).name
    'checkpoint-5'
    >>> prepare_checkpoint_dir(root, fingerprint({"seed": 1})) is None  # other settings
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers.trainer_utils import get_last_checkpoint

from adapterflow.models import WEIGHTS

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
RUN_FILE = "run.json"
#: Stage settings that change how often things are written, not the weights: a checkpoint
#: made under other values is still a valid starting point.
NOT_FINGERPRINTED = ("checkpoint_steps", "logging_steps", "eval_steps")


def stage_fingerprint_block(stage_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The stage block without the keys of :data:`NOT_FINGERPRINTED`."""
    return {k: v for k, v in stage_cfg.items() if k not in NOT_FINGERPRINTED}


def fingerprint(settings: Mapping[str, Any]) -> str:
    """sha256 of ``settings`` (JSON with sorted keys; paths and other objects as text)."""
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def prepare_checkpoint_dir(
    checkpoint_dir: str | Path, run_fingerprint: str, main_process: bool = True
) -> Path | None:
    """The checkpoint to resume from, after discarding checkpoints of other settings and
    incomplete ones (a job killed while saving).

    Only the main process discards anything; the others call this after it (they find the
    directory clean and agree on the checkpoint)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not main_process:
        last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
        return Path(last) if last is not None else None
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run_file = checkpoint_dir / RUN_FILE
    recorded = None
    if run_file.is_file():
        recorded = json.loads(run_file.read_text(encoding="utf-8")).get("fingerprint")
    stale = [p for p in checkpoint_dir.iterdir() if p.name.startswith("checkpoint-")]
    if recorded != run_fingerprint:
        if stale or (checkpoint_dir / LOG_FILE).exists():
            logger.warning(
                "%s holds checkpoints of other settings; starting from scratch", checkpoint_dir
            )
        for path in stale:
            shutil.rmtree(path)
        (checkpoint_dir / LOG_FILE).unlink(missing_ok=True)
        run_file.write_text(json.dumps({"fingerprint": run_fingerprint}) + "\n", encoding="utf-8")
    while (last := get_last_checkpoint(str(checkpoint_dir))) is not None:
        last_path = Path(last)
        if (last_path / "trainer_state.json").is_file() and (last_path / WEIGHTS).is_file():
            return last_path
        logger.warning("discarding incomplete checkpoint %s", last_path)
        shutil.rmtree(last_path)
    return None
