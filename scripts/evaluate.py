"""Score one model or adapter (a run) on one task: eval JSON and per-item CSV.

Rule evaluate (adapterflow.eval.evaluate.run_evaluation): the JSON is MTEB-shaped, with
provenance. input: dataset, embeddings (optional: from embed_corpus); wildcards: task, model
(their names); params: task, model (blocks), run (name, stage, adapter, ...), evaluation;
threads; output: json, details.

Outside Snakemake, with the rule's names:
    python -m adapterflow evaluate --wildcard task=lee50 --wildcard model=minilm \\
        --input dataset=results/clean/lee50 --output json=lee50.json \\
        --output details=lee50.details.csv --params evaluate.yaml
    (evaluate.yaml: task, model, run and evaluation blocks)
"""

import logging

from adapterflow.cli import running
from adapterflow.eval.evaluate import run_evaluation

logger = logging.getLogger("evaluate")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        run_evaluation(
            task_name=snakemake.wildcards.task,
            task=snakemake.params.task,
            model_name=snakemake.wildcards.model,
            model=snakemake.params.model,
            run=snakemake.params.run,
            dataset_dir=snakemake.input.dataset,
            out_json=snakemake.output.json,
            out_details=snakemake.output.details,
            corpus_embeddings=snakemake.input.get("embeddings"),
            evaluation=snakemake.params.evaluation,
            threads=snakemake.threads,
        )
