"""``train_log.jsonl``: one row per logging step, from a trainer callback.

The trainer's own log has loss, learning rate and gradient norm; :class:`TrainLogCallback` adds
what a user needs to compare runs and machines: examples and non-pad tokens per second over the
logging interval, and peak memory (resident set size on CPU, the CUDA allocator's peak on GPU).
The trainer feeds it every training batch through :meth:`TrainLogCallback.record_batch`.

With several processes (``accelerate launch``, ``deepspeed``) the examples and tokens are summed
over all of them, the memory is the main process's, and only the main process writes the file.

Rows (keys): ``step``, ``epoch``, ``loss``, ``lr``, ``grad_norm``, ``examples``, ``tokens``,
``seconds``, ``examples_per_s``, ``tokens_per_s``, ``peak_memory_mb``, ``memory`` (``rss`` or
``cuda``). An evaluation during training (causal-LM stages: the SFT set's ``mirror`` and
``rephrased`` splits) adds a row ``{"step", "epoch", "split", "eval_loss"}`` per split.

Example:
    >>> import json, pathlib, tempfile, torch
    >>> from types import SimpleNamespace
    >>> from adapterflow.train.callbacks import TrainLogCallback
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train_log.jsonl"
    >>> callback = TrainLogCallback(path)
    >>> state = SimpleNamespace(global_step=0, epoch=0.0)
    >>> callback.on_train_begin(None, state, None)
    >>> callback.record_batch({"anchor_attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])})
    >>> state.global_step, state.epoch = 1, 0.5
    >>> callback.on_log(None, state, None, logs={"loss": 0.5, "learning_rate": 1e-4,
    ...                                          "grad_norm": 2.0})
    >>> row = json.loads(path.read_text())
    >>> row["step"], row["loss"], row["examples"], row["tokens"], row["memory"]
    (1, 0.5, 2, 5, 'rss')
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import ProgressCallback, TrainerCallback

logger = logging.getLogger(__name__)

# Encoder batches have one mask per text column (anchor_attention_mask, ...), LM batches one.
MASK_SUFFIX = "attention_mask"


class TrainLogCallback(TrainerCallback):
    """Append one JSON row per trainer log event with a training loss to ``path``.

    The file survives a resumed run: on train begin, rows past the step the trainer resumed from
    are dropped (they belong to the interrupted attempt), the rest are kept.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._examples = 0
        self._tokens = 0
        self._since = time.perf_counter()

    def record_batch(self, inputs: Mapping[str, Any]) -> None:
        """Count the rows and non-pad tokens of one training batch (all text columns)."""
        masks = [value for key, value in inputs.items() if key.endswith(MASK_SUFFIX)]
        if not masks:
            return
        self._examples += int(masks[0].shape[0])
        self._tokens += int(sum(int(mask.sum()) for mask in masks))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._reset()
        if not getattr(state, "is_world_process_zero", True):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip() and json.loads(line)["step"] <= state.global_step:
                    kept.append(line + "\n")
        self.path.write_text("".join(kept), encoding="utf-8")

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or "loss" not in logs:
            return  # the end-of-training summary and evaluation logs
        # Every process logs at the same steps, so the counts can be summed here.
        examples, tokens = _sum_over_processes((self._examples, self._tokens), args)
        if not getattr(state, "is_world_process_zero", True):
            self._reset()
            return
        seconds = max(time.perf_counter() - self._since, 1e-9)
        memory_mb, kind = peak_memory_mb()
        row = {
            "step": int(state.global_step),
            "epoch": _number(state.epoch),
            "loss": _number(logs.get("loss")),
            "lr": _number(logs.get("learning_rate")),
            "grad_norm": _number(logs.get("grad_norm")),
            "examples": examples,
            "tokens": tokens,
            "seconds": round(seconds, 4),
            "examples_per_s": round(examples / seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_memory_mb": round(memory_mb, 1),
            "memory": kind,
        }
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        self._reset()

    def on_evaluate(
        self,
        args: Any,
        state: Any,
        control: Any,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not metrics or not getattr(state, "is_world_process_zero", True):
            return
        # The trainer evaluates each named eval set on its own: keys eval_{name}_loss.
        for key, value in metrics.items():
            if key.startswith("eval_") and key.endswith("_loss"):
                split = key[len("eval_") : -len("_loss")] or "eval"
                row = {
                    "step": int(state.global_step),
                    "epoch": _number(state.epoch),
                    "split": split,
                    "eval_loss": _number(value),
                }
                with open(self.path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")

    def _reset(self) -> None:
        self._examples = 0
        self._tokens = 0
        self._since = time.perf_counter()


class LoggingProgressCallback(ProgressCallback):
    """The trainer's progress bar, with its log lines sent to the ``logging`` module (the job's
    log file) instead of stdout."""

    def on_log(
        self,
        args: Any,
        state: Any,
        control: Any,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if state.is_world_process_zero and logs:
            shown = {
                key: f"{value:.4g}" if isinstance(value, float) else value
                for key, value in logs.items()
                if key != "total_flos"
            }
            logger.info("step %d: %s", state.global_step, shown)


def peak_memory_mb() -> tuple[float, str]:
    """``(MiB, kind)``: the CUDA allocator's peak when CUDA is in use, else this process's peak
    resident set size.

    Example:
        >>> from adapterflow.train.callbacks import peak_memory_mb
        >>> megabytes, kind = peak_memory_mb()
        >>> megabytes > 0 and kind in ("rss", "cuda")
        True
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    return peak / (2**20 if sys.platform == "darwin" else 2**10), "rss"


def _sum_over_processes(counts: tuple[int, ...], args: Any) -> tuple[int, ...]:
    """``counts`` summed over the processes of a distributed run (unchanged without one)."""
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()):
        return counts
    if distributed.get_world_size() == 1:
        return counts
    device = getattr(args, "device", None) or torch.device("cpu")
    total = torch.tensor(counts, dtype=torch.int64, device=device)
    distributed.all_reduce(total)
    return tuple(int(value) for value in total.tolist())


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.item()
    return float(value)
