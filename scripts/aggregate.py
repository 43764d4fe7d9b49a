"""Eval JSON files → a tidy metrics table (CSV) and a Markdown summary.

Rule aggregate (adapterflow.report.tables.write_tables).
input: evals (eval JSON files; repeat the name for several); output: csv, md.

Outside Snakemake, with the rule's names:
    python -m adapterflow aggregate --input evals=results/eval/minilm/base/lee50.json \\
        --output csv=results/tables/metrics.csv --output md=results/tables/summary.md
"""

import logging

from adapterflow.cli import as_list, running
from adapterflow.errors import AdapterflowError
from adapterflow.report.tables import write_tables

logger = logging.getLogger("adapterflow.scripts.aggregate")
# Errors reported as one line; pandas and the table checks raise ValueError for bad tables.
ERRORS = (AdapterflowError, ValueError)

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
        write_tables(as_list(snakemake.input.evals), snakemake.output.csv, snakemake.output.md)
