"""Rule fetch_raw: download one dataset's raw files into results/raw/{dataset}/ with a manifest
(adapterflow.data.sources.fetch_raw).

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
