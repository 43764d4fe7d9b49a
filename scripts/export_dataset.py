"""Export the QA splits, chunks and raw documents as Hugging Face datasets.

Rule export_dataset (adapterflow.generate.export.export_and_push), optionally a push to the
Hub. input: qa (the dedup_cluster_split directory), chunks, corpus; params: export
(optional: push, repo_id "organisation/name", private; a push reads the token from
HF_TOKEN); output: the export directory.

Outside Snakemake, with the rule's names:
    python -m adapterflow export_dataset --input qa=results/curated/default \\
        --input chunks=results/chunks/wiki --input corpus=results/clean/wiki \\
        --output results/export/default \\
        [--param 'export={"push": true, "repo_id": "my-lab/qa-wiki"}']
"""

import logging

from adapterflow.cli import running
from adapterflow.generate.export import export_and_push

logger = logging.getLogger("export_dataset")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        export_and_push(
            snakemake.input.qa,
            snakemake.input.chunks,
            snakemake.input.corpus,
            snakemake.output[0],
            snakemake.params.get("export"),
        )
