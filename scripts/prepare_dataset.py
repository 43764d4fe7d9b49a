"""Clean, de-duplicate, split and leakage-check one raw dataset.

Rule prepare_dataset (adapterflow.data.prepare.prepare_dataset): the canonical layout under
results/clean/{dataset}. input: the raw directory (from fetch_raw); wildcards: dataset (its
name, for messages); params: prepare (the prepare block), required_splits (optional:
{split: [users]}); output: the clean directory.

Outside Snakemake, with the rule's names:
    python -m adapterflow prepare_dataset --input results/raw/lee50 \\
        --output results/clean/lee50 --wildcard dataset=lee50 \\
        --param 'prepare={"format": "lee_pairs", "options": {"encoding": "latin-1"}}'
"""

import logging

from adapterflow.cli import running
from adapterflow.data.prepare import prepare_dataset

logger = logging.getLogger("prepare_dataset")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        prepare_dataset(
            snakemake.input[0],
            snakemake.output[0],
            snakemake.params.prepare,
            name=snakemake.wildcards.dataset,
            required_splits=snakemake.params.get("required_splits"),
        )
