"""Evaluate a causal LM (base or with a LoRA adapter) on a generated NIAH / QA set, RULER-style.

Rule inputs: ``input.dataset`` (the JSONL set), ``params.model`` (the model block: ``path``,
optional ``adapter``), ``params.task`` (the task block), optional ``params.run``,
``params.evaluation`` and ``params.limit``; outputs ``output.json`` and ``output.details``.
The task name is the ``{task}`` wildcard (else the JSON's file name), the model name the
``{model}`` (or ``{lm}``) wildcard.

Command line (same function):
    python scripts/evaluate_generation.py --task-name niah --dataset niah.jsonl \\
        --model '{"path": "results/models/smollm2"}' --task '{"max_new_tokens": 32}' \\
        --json niah.json --details niah.details.csv --limit 20
"""

import argparse
import logging
from pathlib import Path

from adapterflow.cli import block_arg, running
from adapterflow.eval.generation import run_generation_evaluation

logger = logging.getLogger("evaluate_generation")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-name", required=True)
    parser.add_argument("--dataset", required=True, help="NIAH / QA set (JSONL)")
    parser.add_argument(
        "--model", required=True, type=block_arg, help='model block as JSON: {"path", "adapter"}'
    )
    parser.add_argument("--model-name", default="model")
    parser.add_argument("--task", default="{}", type=block_arg, help="task block as JSON")
    parser.add_argument("--run", type=block_arg, help="run block as JSON (name, stage, seed)")
    parser.add_argument("--evaluation", default="{}", type=block_arg, help="device, merge_adapter")
    parser.add_argument("--limit", type=int, help="evaluate the first N records only")
    parser.add_argument("--json", required=True, dest="out_json")
    parser.add_argument("--details", required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        run_generation_evaluation(
            task_name=args.task_name,
            task=args.task,
            model=args.model,
            model_name=args.model_name,
            run=args.run,
            evaluation=args.evaluation,
            dataset=args.dataset,
            out_json=args.out_json,
            out_details=args.details,
            limit=args.limit,
            threads=args.threads,
        )


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run_generation_evaluation(
                task_name=snakemake.wildcards.get("task") or Path(snakemake.output.json).stem,
                task=snakemake.params.task,
                model=snakemake.params.model,
                # {model} in rule evaluate's layout; rules/generate.smk names LMs {lm}.
                model_name=snakemake.wildcards.get("model")
                or snakemake.wildcards.get("lm")
                or "model",
                run=snakemake.params.get("run"),
                evaluation=snakemake.params.get("evaluation"),
                dataset=snakemake.input.dataset,
                out_json=snakemake.output.json,
                out_details=snakemake.output.details,
                limit=snakemake.params.get("limit"),
                threads=snakemake.threads,
            )
    else:
        main()
