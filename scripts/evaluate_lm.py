"""Evaluate a causal LM (base or with a LoRA adapter) on a NIAH / QA set, RULER-style.

Rule evaluate_generation (adapterflow.eval.generation.run_generation_evaluation).
input: dataset (the JSONL set); wildcards (optional): task (default: the JSON's file name),
model or lm (default "model"); params: model (path, optional adapter), task, and optional
run, evaluation and limit; threads; output: json, details.

Outside Snakemake, with the rule's names:
    python -m adapterflow evaluate_generation --input dataset=niah.jsonl \\
        --output json=niah.json --output details=niah.details.csv --wildcard lm=smollm2 \\
        --param 'model={"path": "results/lms/smollm2"}' --param 'task={"max_new_tokens": 32}' \\
        --param limit=20
"""

import logging
from pathlib import Path

from adapterflow.cli import running
from adapterflow.eval.generation import run_generation_evaluation

logger = logging.getLogger("evaluate_generation")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        run_generation_evaluation(
            task_name=snakemake.wildcards.get("task") or Path(snakemake.output.json).stem,
            task=snakemake.params.task,
            model=snakemake.params.model,
            # {model} in rule evaluate's layout; rules/generate.smk names LMs {lm}.
            model_name=snakemake.wildcards.get("model") or snakemake.wildcards.get("lm") or "model",
            run=snakemake.params.get("run"),
            evaluation=snakemake.params.get("evaluation"),
            dataset=snakemake.input.dataset,
            out_json=snakemake.output.json,
            out_details=snakemake.output.details,
            limit=snakemake.params.get("limit"),
            threads=snakemake.threads,
        )
