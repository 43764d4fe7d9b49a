"""Rule prepare_dataset: clean, de-duplicate, split and leakage-check one raw dataset into the
canonical layout under results/clean/{dataset}/.

Command line (same as the rule):
    python scripts/prepare_dataset.py --raw results/raw/lee50 --out results/clean/lee50 \\
        --prepare '{"format": "lee_pairs", "options": {"encoding": "latin-1"}}'
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from adapterflow.data.prepare import prepare_dataset
from adapterflow.errors import AdapterflowError
from adapterflow.logs import setup_logging

logger = logging.getLogger("prepare_dataset")


def _load_block(value: str) -> dict:
    """Inline JSON, or a YAML/JSON file holding the prepare block."""
    if Path(value).is_file():
        return yaml.safe_load(Path(value).read_text(encoding="utf-8"))
    return json.loads(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="raw dataset directory (from fetch_raw)")
    parser.add_argument("--out", required=True, help="output directory (must not be in use)")
    parser.add_argument("--prepare", required=True, help="prepare block: JSON or a YAML file")
    parser.add_argument("--name", help="dataset name for messages (default: --out's name)")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    try:
        prepare_dataset(args.raw, args.out, _load_block(args.prepare), name=args.name)
    except AdapterflowError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    if "snakemake" in globals():
        setup_logging(snakemake.log[0])
        try:
            prepare_dataset(
                snakemake.input[0],
                snakemake.output[0],
                snakemake.params.prepare,
                name=snakemake.wildcards.dataset,
            )
        except AdapterflowError as err:
            logger.error("%s", err)
            raise
    else:
        main()
