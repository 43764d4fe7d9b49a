"""Rule prepare_dataset: clean, de-duplicate, split and leakage-check one raw dataset into the
canonical layout under results/clean/{dataset}/.

Command line (same as the rule):
    python scripts/prepare_dataset.py --raw results/raw/lee50 --out results/clean/lee50 \\
        --prepare '{"format": "lee_pairs", "options": {"encoding": "latin-1"}}'
"""

import argparse
import logging

from adapterflow.cli import block_arg, running
from adapterflow.data.prepare import prepare_dataset

logger = logging.getLogger("prepare_dataset")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="raw dataset directory (from fetch_raw)")
    parser.add_argument("--out", required=True, help="output directory (must not be in use)")
    parser.add_argument(
        "--prepare", required=True, type=block_arg, help="prepare block: JSON or a YAML file"
    )
    parser.add_argument("--name", help="dataset name for messages (default: --out's name)")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        prepare_dataset(args.raw, args.out, args.prepare, name=args.name)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            prepare_dataset(
                snakemake.input[0],
                snakemake.output[0],
                snakemake.params.prepare,
                name=snakemake.wildcards.dataset,
                required_splits=snakemake.params.required_splits,
            )
    else:
        main()
