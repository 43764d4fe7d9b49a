"""Rule figures: metrics.csv and per-item details CSVs → PNG + SVG figures in results/figures/.

Each details CSV must lie beside its eval JSON (`results/eval/{model}/{run}/{task}.json`),
which gives the run and the task kind. Command line (same as the rule):
    python scripts/figures.py --metrics results/tables/metrics.csv \\
        --details results/eval/minilm/*/*.details.csv --out-dir results/figures
"""

import argparse
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

from adapterflow.errors import AdapterflowError
from adapterflow.logs import setup_logging
from adapterflow.plots.figures import details_beside_evals, make_figures

logger = logging.getLogger("adapterflow.scripts.figures")


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
    setup_logging(args.log)
    try:
        figures(args.metrics, args.details, args.out_dir)
    except (AdapterflowError, ValueError) as err:
        logger.error("%s", err)
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    if "snakemake" in globals():
        setup_logging(snakemake.log[0] if snakemake.log else None)
        try:
            # A named input of one file is a plain string, not a list.
            details = snakemake.input.details
            figures(
                snakemake.input.metrics,
                [details] if isinstance(details, str) else list(details),
                snakemake.params.out_dir,
                expected=list(snakemake.output),
            )
        except (AdapterflowError, ValueError) as err:
            logger.error("%s", err)
            raise
    else:
        main()
