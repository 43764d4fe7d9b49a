"""Rule plot_ruler_heatmap: the depth × length heatmap of one RULER-style evaluation (PNG + SVG).

Reads the {task}.details.csv that evaluate_generation writes and draws the mean score (0-100)
of every (needle depth, context length) cell, all variants pooled or one --variant: where in
the context and from which length on the model stops finding the needle.

Command line (same as the rule):
    python scripts/plot_ruler_heatmap.py \\
        --details results/eval/smollm2/base/niah-short.details.csv \\
        --out results/figures/ruler/smollm2/base/niah-short --label "smollm2 base · niah-short"

writes {out}.png and {out}.svg.

Snakemake: input.details, params.label (optional), params.variant (optional), output.png
(the SVG beside it), log[0].
"""

import argparse
import logging
from pathlib import Path

from adapterflow.cli import running
from adapterflow.errors import AdapterflowError
from adapterflow.plots.ruler import plot_depth_length_heatmap

logger = logging.getLogger("plot_ruler_heatmap")
# Errors reported as one line: EvalFileError (a DataError) for a bad details CSV.
ERRORS = (AdapterflowError,)


def plot(details: str, out_base: str, label: str | None = None, variant: str | None = None) -> None:
    plot_depth_length_heatmap(details, out_base, variant=variant, label=label)
    logger.info("wrote %s.png and %s.svg", out_base, out_base)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--details", required=True, help="{task}.details.csv of a ruler task")
    parser.add_argument("--out", required=True, help="output path without .png / .svg")
    parser.add_argument("--label", help="run or task named in the title")
    parser.add_argument("--variant", help="only this variant's rows (default: all)")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger, errors=ERRORS):
        plot(args.details, args.out, args.label, args.variant)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
            plot(
                snakemake.input.details,
                str(Path(snakemake.output.png).with_suffix("")),
                snakemake.params.get("label"),
                snakemake.params.get("variant"),
            )
    else:
        main()
