"""Train a LoRA adapter of a causal LM on an SFT set (stage 1, or stage 2 from stage 1).

Rule train_lm_adapter (adapterflow.train.lm_adapter.train_lm_adapter): checkpoints go to a
separate directory, which a rerun with the same settings resumes from. input: sft (the SFT
directory), replay (optional: the stage's replay set), stage1 (optional: the adapter stage 2
starts from); params: lm (path of the converted directory, dtype, lora_target_modules),
stage (the stages block), seed, checkpoint_dir; threads; output: the adapter directory
(results/lm_adapters/{lm}/{stages}/seed{seed}).

Outside Snakemake, with the rule's names:
    python -m adapterflow train_lm_adapter --input sft=results/sft/smollm2/facts \\
        --output results/lm_adapters/smollm2/facts/seed0 --threads 4 --params train.yaml \\
        --param seed=0 --param checkpoint_dir=results/checkpoints/smollm2/facts/seed0
    (train.yaml: lm and stage blocks)
"""

import logging

from adapterflow.cli import running
from adapterflow.train.lm_adapter import train_lm_adapter

logger = logging.getLogger("train_lm_adapter")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        train_lm_adapter(
            lm_cfg=snakemake.params.lm,
            sft_dir=snakemake.input.sft,
            out_dir=snakemake.output[0],
            stage_cfg=snakemake.params.stage,
            seed=int(snakemake.params.seed),
            init_adapter=snakemake.input.get("stage1"),
            replay_dir=snakemake.input.get("replay"),
            checkpoint_dir=snakemake.params.checkpoint_dir,
            threads=snakemake.threads,
        )
