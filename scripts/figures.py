"""Rule figures: metrics.csv and per-item details CSVs → PNG + SVG figures in results/figures/.

Each details CSV must lie beside its eval JSON (`results/eval/{model}/{run}/{task}.json`),
which gives the run and the task kind. Command line (same as the rule):
    python scripts/figures.py --metrics results/tables/metrics.csv \\
        --details results/eval/minilm/*/*.details.csv --out-dir results/figures
"""

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

from adapterflow.cli import as_list, running
from adapterflow.errors import AdapterflowError
from adapterflow.plots.figures import details_beside_evals, make_figures

logger = logging.getLogger("adapterflow.scripts.figures")
# Errors reported as one line; make_figures raises ValueError for undeclared or bad figures.
ERRORS = (AdapterflowError, ValueError)


def figures(
    metrics: str, details: Iterable[str], out_dir: str, expected: Iterable[str] | None = None
) -> list[Path]:
    """Describe each details CSV from the JSON beside it, then draw every figure."""
    return make_figures(metrics, details_beside_evals(details), out_dir, expected=expected)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="metrics.csv from scripts/aggregate.py")
    parser.add_argument(
        "--details", nargs="+", required=True, help="{task}.details.csv files beside their JSON"
    )
    parser.add_argument("--out-dir", required=True, help="directory for the figures")
    parser.add_argument("--log", default=None, help="log file (stderr always gets the log too)")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger, errors=ERRORS):
        figures(args.metrics, args.details, args.out_dir)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
            figures(
                snakemake.input.metrics,
                as_list(snakemake.input.details),
                snakemake.params.out_dir,
                expected=list(snakemake.output),
            )
    else:
        main()
