"""Rule chunk_corpus: cut a prepared corpus into sentence-aligned chunks, tables kept whole
(adapterflow.generate.chunking.chunk_corpus_from_config).

Outside Snakemake, with the rule's names:
    python -m adapterflow chunk_corpus --input dataset=results/clean/wiki \\
        --output results/chunks/wiki --param 'chunking={"max_length": 128, "min_length": 32}'
    python -m adapterflow preview_chunks --input dataset=results/clean/wiki \\
        --param 'chunking={"max_length": 512}' --param n=5   (prints, writes nothing)
"""

import logging

from adapterflow.cli import running
from adapterflow.generate.chunking import chunk_corpus_from_config

logger = logging.getLogger("chunk_corpus")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        chunk_corpus_from_config(
            snakemake.input.dataset, snakemake.output[0], snakemake.params.chunking
        )
