"""Rule fetch_raw: download one dataset's raw files into results/raw/{dataset}/ with a manifest.

Outside Snakemake the same step runs from the command line:

    python scripts/fetch_raw.py --dataset lee --out results/raw/lee \\
        --source '{"kind": "pypi", "package": "gensim", "version": "4.4.0",
                   "members": ["gensim/test/test_data/lee*.cor"]}'

``--source`` is inline JSON or the path of a JSON/YAML file holding the source mapping.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from adapterflow.data.sources import fetch_raw
from adapterflow.errors import AdapterflowError
from adapterflow.logs import setup_logging

logger = logging.getLogger("adapterflow.scripts.fetch_raw")


def _source_arg(value: str) -> dict[str, Any]:
    """Parse ``--source``: an existing file (YAML is a superset of JSON) or inline JSON."""
    try:
        if Path(value).is_file():
            source = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
        else:
            source = json.loads(value)
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as err:
        raise argparse.ArgumentTypeError(
            f"neither a readable JSON/YAML file nor inline JSON: {value!r} ({err})"
        ) from None
    if not isinstance(source, dict):
        raise argparse.ArgumentTypeError(f"must be a mapping with a 'kind', got {source!r}")
    return source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset name (recorded in the manifest)")
    parser.add_argument(
        "--source",
        required=True,
        type=_source_arg,
        help="source mapping: inline JSON, or a JSON/YAML file",
    )
    parser.add_argument("--out", required=True, help="output directory (replaced atomically)")
    parser.add_argument("--log", default=None, help="log file (stderr always gets the log too)")
    args = parser.parse_args(argv)

    setup_logging(args.log)
    try:
        fetch_raw(args.dataset, args.source, args.out)
    except AdapterflowError as err:
        logger.error("%s", err)
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    if "snakemake" in globals():
        setup_logging(snakemake.log[0])
        try:
            fetch_raw(snakemake.wildcards.dataset, snakemake.params.source, snakemake.output[0])
        except AdapterflowError as err:
            # One readable line in the rule's log; the traceback follows on Snakemake's stderr.
            logger.error("%s", err)
            raise
    else:
        main()
