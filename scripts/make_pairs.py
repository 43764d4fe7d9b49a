"""Training pairs {"anchor","positive"} from one prepared dataset.

Rule make_pairs (adapterflow.data.pairs.make_pairs_file): none made from a text of an
evaluation split. input: dataset (the clean dataset directory), held_out (the datasets of
params.held_out_splits); params: pairs (the pairs block), held_out_splits (optional: a list
of [dataset_dir, split] whose texts are never trained on); output: the pairs .jsonl.

Outside Snakemake, with the rule's names:
    python -m adapterflow make_pairs --input dataset=results/clean/news \\
        --input held_out=results/clean/news --output results/pairs/news.jsonl \\
        --params '{"pairs": {"strategy": "qrels", "options": {"split": "train"}},
                   "held_out_splits": [["results/clean/news", "test"]]}'
"""

import logging

from adapterflow.cli import as_list, running
from adapterflow.data.pairs import make_pairs_file

logger = logging.getLogger("make_pairs")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        make_pairs_file(
            snakemake.input.dataset,
            snakemake.output[0],
            snakemake.params.pairs,
            held_out_splits=snakemake.params.get("held_out_splits", []),
            declared_held_out=as_list(snakemake.input.get("held_out", [])),
        )
