"""Rule aggregate: eval JSON files → results/tables/metrics.csv (tidy) and summary.md.

Command line (same as the rule):
    python scripts/aggregate.py --evals results/eval/minilm/*/*.json \\
        --csv results/tables/metrics.csv --md results/tables/summary.md
"""

import argparse
import logging
import sys

from adapterflow.errors import AdapterflowError
from adapterflow.logs import setup_logging
from adapterflow.report.tables import write_tables

logger = logging.getLogger("adapterflow.scripts.aggregate")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--evals", nargs="+", required=True, help="eval JSON files, one per run × task"
    )
    parser.add_argument("--csv", required=True, help="tidy metrics table to write")
    parser.add_argument("--md", required=True, help="Markdown summary to write")
    parser.add_argument("--log", default=None, help="log file (stderr always gets the log too)")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    try:
        write_tables(args.evals, args.csv, args.md)
    except (AdapterflowError, ValueError) as err:
        logger.error("%s", err)
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    if "snakemake" in globals():
        setup_logging(snakemake.log[0] if snakemake.log else None)
        try:
            # A named input of one file is a plain string, not a list.
            evals = snakemake.input.evals
            evals = [evals] if isinstance(evals, str) else list(evals)
            write_tables(evals, snakemake.output.csv, snakemake.output.md)
        except (AdapterflowError, ValueError) as err:
            # One readable line in the rule's log; the traceback follows on Snakemake's stderr.
            logger.error("%s", err)
            raise
    else:
        main()
