"""Rule make_pairs: training pairs {"anchor","positive"} from one prepared dataset.

Pairs made from a text of an evaluation split are left out; the rows go to
results/pairs/{name}.jsonl.

Command line (same as the rule):
    python scripts/make_pairs.py --dataset results/clean/news --out results/pairs/news.jsonl \\
        --pairs '{"dataset": "news", "strategy": "qrels", "options": {"split": "train"}}' \\
        --held-out results/clean/news test --held-out results/clean/lee50 test

Snakemake: input.dataset (the clean dataset directory), input.held_out (clean directories of the
evaluation tasks, so the job waits for them), params.pairs (the pairs block: dataset, strategy,
options, max_pairs, seed), params.held_out_splits (a list of [dataset_dir, split]; every
dataset_dir must be one of input.held_out), output[0], log[0].
"""

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapterflow.cli import as_list, block_arg, running
from adapterflow.data.pairs import held_out_from_splits, make_pairs, write_pairs

logger = logging.getLogger("make_pairs")


def run(
    dataset: str,
    out: str,
    block: Mapping[str, Any],
    held_out_splits: Iterable[Sequence[str]] = (),
    declared_held_out: Iterable[str] | None = None,
) -> None:
    """Collect the held-out texts, make the pairs and write them atomically."""
    held_out = held_out_from_splits(held_out_splits, declared_held_out)
    logger.info("%d held-out texts from the evaluation splits", len(held_out))
    rows, _ = make_pairs(
        dataset,
        block["strategy"],
        options=block.get("options") or {},
        held_out=held_out,
        seed=int(block.get("seed", 0)),
        max_pairs=block.get("max_pairs"),
    )
    count = write_pairs(out, rows)
    logger.info("wrote %d pairs to %s", count, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="prepared dataset directory")
    parser.add_argument("--out", required=True, help="output .jsonl")
    parser.add_argument(
        "--pairs", required=True, type=block_arg, help="pairs block: JSON or a YAML file"
    )
    parser.add_argument(
        "--held-out",
        nargs=2,
        action="append",
        default=[],
        metavar=("DIR", "SPLIT"),
        help="an evaluation split whose texts must not be trained on (repeatable)",
    )
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        run(args.dataset, args.out, args.pairs, args.held_out)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(
                snakemake.input.dataset,
                snakemake.output[0],
                snakemake.params.pairs,
                snakemake.params.get("held_out_splits", []),
                as_list(snakemake.input.get("held_out", [])),
            )
    else:
        main()
