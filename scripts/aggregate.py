"""Rule aggregate: eval JSON files → results/tables/metrics.csv (tidy) and summary.md.

Command line (same as the rule):
    python scripts/aggregate.py --evals results/eval/minilm/*/*.json \\
        --csv results/tables/metrics.csv --md results/tables/summary.md
"""

import argparse
import logging

from adapterflow.cli import as_list, running
from adapterflow.errors import AdapterflowError
from adapterflow.report.tables import write_tables

logger = logging.getLogger("adapterflow.scripts.aggregate")
# Errors reported as one line; pandas and the table checks raise ValueError for bad tables.
ERRORS = (AdapterflowError, ValueError)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--evals", nargs="+", required=True, help="eval JSON files, one per run × task"
    )
    parser.add_argument("--csv", required=True, help="tidy metrics table to write")
    parser.add_argument("--md", required=True, help="Markdown summary to write")
    parser.add_argument("--log", default=None, help="log file (stderr always gets the log too)")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger, errors=ERRORS):
        write_tables(args.evals, args.csv, args.md)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
            write_tables(as_list(snakemake.input.evals), snakemake.output.csv, snakemake.output.md)
    else:
        main()
