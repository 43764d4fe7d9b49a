"""Rule fetch_raw: download one dataset's raw files into results/raw/{dataset}/ with a manifest.

Outside Snakemake the same step runs from the command line:

    python scripts/fetch_raw.py --dataset lee --out results/raw/lee \\
        --source '{"kind": "pypi", "package": "gensim", "version": "4.4.0",
                   "members": ["gensim/test/test_data/lee*.cor"]}'

``--source`` is inline JSON or the path of a JSON/YAML file holding the source mapping.
"""

import argparse
import logging

from adapterflow.cli import block_arg, running
from adapterflow.data.sources import fetch_raw

logger = logging.getLogger("adapterflow.scripts.fetch_raw")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset name (recorded in the manifest)")
    parser.add_argument(
        "--source",
        required=True,
        type=block_arg,
        help="source mapping: inline JSON, or a JSON/YAML file",
    )
    parser.add_argument("--out", required=True, help="output directory (replaced atomically)")
    parser.add_argument("--log", default=None, help="log file (stderr always gets the log too)")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        fetch_raw(args.dataset, args.source, args.out)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            fetch_raw(snakemake.wildcards.dataset, snakemake.params.source, snakemake.output[0])
    else:
        main()
