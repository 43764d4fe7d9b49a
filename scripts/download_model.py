"""Snapshot a hub model into a directory with a manifest.

Rule download_model (adapterflow.download.download_model), a localrule: it runs where
Snakemake runs (a cluster's login node), so compute nodes never need the network. With no
network (or HF_HUB_OFFLINE=1) a snapshot already in the hub cache (HF_HUB_CACHE) is used;
otherwise it fails within HF_HUB_ETAG_TIMEOUT seconds (default 10) with one line.
wildcards: model (its name under models:); params: model (the block: path, the hub id, and
optional revision); output: the model directory (results/models/{model}).

Outside Snakemake, with the rule's names:
    python -m adapterflow download_model --wildcard model=bge --output results/models/bge \\
        --param 'model={"path": "BAAI/bge-small-en-v1.5", "revision": "main"}'
"""

import logging

from adapterflow.cli import running
from adapterflow.download import download_model

logger = logging.getLogger("adapterflow.scripts.download_model")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        block = snakemake.params.model
        download_model(
            snakemake.wildcards.model, block["path"], block.get("revision"), snakemake.output[0]
        )
