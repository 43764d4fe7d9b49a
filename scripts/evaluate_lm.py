"""Evaluate a causal LM (base or with a LoRA adapter) on a ruler task (a NIAH set, RULER's
string match) or a qa task (an SFT split: keyword, semantic and hybrid scores).

Rule evaluate_lm (adapterflow.eval.lm.evaluate_lm). input: dataset (the NIAH JSONL of a
ruler task, the SFT directory of a qa task); wildcards (optional): task (default: the JSON's
file name), lm (default "lm"); params: model (path, dtype), task, and optional run,
evaluation, encoder (a qa task's scoring model block), judge_cache (the judge's verdict
cache) and limit; threads; output: json, details.

Outside Snakemake, with the rule's names:
    python -m adapterflow evaluate_lm --input dataset=niah.jsonl \\
        --output json=niah.json --output details=niah.details.csv --wildcard lm=smollm2 \\
        --param 'model={"path": "results/lms/smollm2"}' \\
        --param 'task={"kind": "ruler", "max_new_tokens": 32}' --param limit=20
"""

import logging
from pathlib import Path

from adapterflow.cli import running
from adapterflow.eval.lm import evaluate_lm

logger = logging.getLogger("evaluate_lm")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        evaluate_lm(
            task_name=snakemake.wildcards.get("task") or Path(snakemake.output.json).stem,
            task=snakemake.params.task,
            model=snakemake.params.model,
            # {lm} in rules/lm.smk; a rule of your own may call it {model}.
            model_name=snakemake.wildcards.get("lm") or snakemake.wildcards.get("model") or "lm",
            run=snakemake.params.get("run"),
            evaluation=snakemake.params.get("evaluation"),
            encoder=snakemake.params.get("encoder"),
            judge_cache=snakemake.params.get("judge_cache"),
            dataset=snakemake.input.dataset,
            out_json=snakemake.output.json,
            out_details=snakemake.output.details,
            limit=snakemake.params.get("limit"),
            threads=snakemake.threads,
        )
