"""Rule download_model: snapshot a hub model into results/models/{model}/ with a manifest.

A localrule: it runs where Snakemake runs (a cluster's login node), so the jobs that load the
model read the local copy and compute nodes never need the network. Outside Snakemake:

    python scripts/download_model.py --name bge --repo BAAI/bge-small-en-v1.5 \\
        --revision main --out results/models/bge

With no network (or HF_HUB_OFFLINE=1) a snapshot already in the hub cache (HF_HUB_CACHE) is
used; otherwise it fails within HF_HUB_ETAG_TIMEOUT seconds (default 10) with one line.
"""

import argparse
import logging

from adapterflow.cli import running
from adapterflow.download import download_model

logger = logging.getLogger("adapterflow.scripts.download_model")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the model's name under models:")
    parser.add_argument("--repo", required=True, help="hub id, e.g. BAAI/bge-small-en-v1.5")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default main)")
    parser.add_argument("--out", required=True, help="output directory (replaced atomically)")
    parser.add_argument("--log", default=None, help="log file (stderr always gets the log too)")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        download_model(args.name, args.repo, args.revision, args.out)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            block = snakemake.params.model
            download_model(
                snakemake.wildcards.model,
                block["path"],
                block.get("revision"),
                snakemake.output[0],
            )
    else:
        main()
