"""k negatives for every training pair, none a text of an evaluation split.

Rule mine_triplets (adapterflow.data.mining.mine_triplets_file). input: pairs (.jsonl from
make_pairs), dataset (optional: the pairs' prepared dataset, whose corpus joins the pool),
corpus (optional: another prepared retrieval dataset), held_out (the datasets of
params.held_out_splits); params: mining (strategy, k, options, seed), pairs (optional: the
pairs block), model (dense only: a models: block), held_out_splits (optional: a list of
[dataset_dir, split] whose texts are never negatives); output: the triplets .jsonl.

Outside Snakemake, with the rule's names:
    python -m adapterflow mine_triplets --input pairs=results/pairs/news.jsonl \\
        --input dataset=results/clean/news --input held_out=results/clean/news \\
        --output results/triplets/news-bm25.jsonl --params mine.yaml
    (mine.yaml: mining, and optional pairs, model and held_out_splits)
"""

import logging

from adapterflow.cli import as_list, running
from adapterflow.data.mining import mine_triplets_file

logger = logging.getLogger("mine_triplets")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        mine_triplets_file(
            snakemake.input.pairs,
            snakemake.output[0],
            snakemake.params.mining,
            model=snakemake.params.get("model"),
            dataset=snakemake.input.get("dataset"),
            corpus=snakemake.input.get("corpus"),
            pairs_block=snakemake.params.get("pairs"),
            held_out_splits=snakemake.params.get("held_out_splits", []),
            declared_held_out=as_list(snakemake.input.get("held_out", [])),
        )
