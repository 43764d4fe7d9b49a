"""The depth × length heatmap of one RULER-style evaluation (PNG + SVG).

Rule plot_ruler_heatmap (adapterflow.plots.ruler.save_depth_length_heatmap): where in the
context and from which length on the model stops finding the needle. input: details (a
{task}.details.csv of evaluate_lm); params: label, variant (both optional);
output: png (the SVG goes beside it).

Outside Snakemake, with the rule's names:
    python -m adapterflow plot_ruler_heatmap \\
        --input details=results/eval/smollm2/base/niah-short.details.csv \\
        --output png=results/figures/ruler/smollm2/base/niah-short.png \\
        --param label="smollm2 base · niah-short"
"""

import logging

from adapterflow.cli import running
from adapterflow.errors import AdapterflowError
from adapterflow.plots.ruler import save_depth_length_heatmap

logger = logging.getLogger("plot_ruler_heatmap")
# Errors reported as one line: EvalFileError (a DataError) for a bad details CSV.
ERRORS = (AdapterflowError,)

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
        save_depth_length_heatmap(
            snakemake.input.details,
            snakemake.output.png,
            label=snakemake.params.get("label"),
            variant=snakemake.params.get("variant"),
        )
