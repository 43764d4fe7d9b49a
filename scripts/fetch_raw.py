"""Download one dataset's raw files into a directory with a manifest.

Rule fetch_raw (adapterflow.data.sources.fetch_raw). wildcards: dataset (its name);
params: source (the dataset's source block); output: the raw directory (results/raw/{dataset}).

Outside Snakemake, with the rule's names:
    python -m adapterflow fetch_raw --wildcard dataset=lee --output results/raw/lee \\
        --param 'source={"kind": "pypi", "package": "gensim", "version": "4.4.0",
                         "members": ["gensim/test/test_data/lee*.cor"]}'
"""

import logging

from adapterflow.cli import running
from adapterflow.data.sources import fetch_raw

logger = logging.getLogger("adapterflow.scripts.fetch_raw")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        fetch_raw(snakemake.wildcards.dataset, snakemake.params.source, snakemake.output[0])
