"""metrics.csv, causal-LM eval JSONs and adapter train logs → PNG + SVG figures.

Rule plot_lm (adapterflow.plots.lm.lm_figures). input: metrics (metrics.csv from aggregate),
evals (the eval JSONs of the qa and ruler tasks, results/eval/{lm}/{run}/{task}.json; repeat
the name for several), logs (the LM adapters' train_log.jsonl files, or their directories
results/lm_adapters/{lm}/{stages}/seed{n}; repeat the name for several, none for the base
model only); params: out_dir; output (optional): the figures expected ({task}_bars for every
task, categories, loss_curves; PNG and SVG each), which must match those drawn.

Outside Snakemake, with the rule's names:
    python -m adapterflow plot_lm --input metrics=results/tables/metrics.csv \\
        --input evals=results/eval/smollm2/base/facts_qa.json \\
        --input logs=results/lm_adapters/smollm2/facts/seed0/train_log.jsonl \\
        --param out_dir=results/figures/lm
"""

import logging

from adapterflow.cli import as_list, running
from adapterflow.errors import AdapterflowError
from adapterflow.plots.lm import lm_figures

logger = logging.getLogger("adapterflow.scripts.plot_lm")
# Errors reported as one line; lm_figures raises ValueError for undeclared or bad figures.
ERRORS = (AdapterflowError, ValueError)

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger, errors=ERRORS):
        lm_figures(
            snakemake.input.metrics,
            as_list(snakemake.input.evals),
            as_list(snakemake.input.get("logs", [])),
            snakemake.params.out_dir,
            expected=list(snakemake.output),
        )
