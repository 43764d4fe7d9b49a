"""Train a LoRA adapter (stage 1, or stage 2 from a stage-1 adapter).

Rule train_adapter (adapterflow.train.adapter.train_adapter): checkpoints go to a separate
directory, which a rerun with the same settings resumes from. input: triplets (the tokenized
directory), stage1 (optional: the adapter stage 2 starts from); params: model (the models
block), stage (the stages block), seed, checkpoint_dir; threads; output: the adapter
directory (results/adapters/{model}/{stages}/seed{seed}).

Outside Snakemake, with the rule's names (stage 2 adds --input stage1=<its adapter>):
    python -m adapterflow train_adapter --input triplets=results/tokenized/minilm/news-bm25 \\
        --output results/adapters/minilm/s1/seed0 --threads 4 --params train.yaml \\
        --param seed=0 --param checkpoint_dir=results/checkpoints/minilm/s1/seed0
    (train.yaml: model and stage blocks)
"""

import logging

from adapterflow.cli import running
from adapterflow.train.adapter import train_adapter

logger = logging.getLogger("train_adapter")

if __name__ == "__main__":
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
