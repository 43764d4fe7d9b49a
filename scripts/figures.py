"""metrics.csv and per-item details CSVs → PNG + SVG figures.

Rule figures (adapterflow.plots.figures.figures_from_evals). input: metrics (metrics.csv from
aggregate), details ({task}.details.csv files, each beside its eval JSON, which gives the run
and the task kind; repeat the name for several); params: out_dir, tasks (optional: the
tasks of metrics.csv to draw, default all); output (optional): the figures expected, which
must match those drawn.

Outside Snakemake, with the rule's names:
    python -m adapterflow figures --input metrics=results/tables/metrics.csv \\
        --input details=results/eval/minilm/base/lee50.details.csv \\
        --param out_dir=results/figures
"""

import logging

from adapterflow.cli import as_list, running
from adapterflow.errors import AdapterflowError
from adapterflow.plots.figures import figures_from_evals

logger = logging.getLogger("adapterflow.scripts.figures")
# Errors reported as one line; make_figures raises ValueError for undeclared or bad figures.
ERRORS = (AdapterflowError, ValueError)

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
        figures_from_evals(
            snakemake.input.metrics,
            as_list(snakemake.input.details),
            snakemake.params.out_dir,
            expected=list(snakemake.output),
            tasks=getattr(snakemake.params, "tasks", None),
        )
