"""Cut a prepared corpus into sentence-aligned chunks, tables kept whole.

Rule chunk_corpus (adapterflow.generate.chunking.chunk_corpus_from_config).
input: dataset (the clean dataset directory); params: chunking (max_length, min_length,
tokenizer: a model reference or null for characters); output: the chunks directory.
From the command line only, params: preview (N: print the first N chunks, write nothing).

Outside Snakemake, with the rule's names:
    python -m adapterflow chunk_corpus --input dataset=results/clean/wiki \\
        --output results/chunks/wiki --param 'chunking={"max_length": 128, "min_length": 32}'
    python -m adapterflow chunk_corpus --input dataset=results/clean/wiki \\
        --param 'chunking={"max_length": 512}' --param preview=5
"""

import logging

from adapterflow.cli import running
from adapterflow.generate.chunking import chunk_corpus_from_config, format_preview

logger = logging.getLogger("chunk_corpus")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        if snakemake.params.get("preview"):  # the command line's preview; the rule passes none
            n = int(snakemake.params.preview)
            print(format_preview(snakemake.input.dataset, snakemake.params.chunking, n))
        else:
            chunk_corpus_from_config(
                snakemake.input.dataset, snakemake.output[0], snakemake.params.chunking
            )
