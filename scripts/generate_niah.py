"""Build a needle-in-a-haystack set as RULER builds it, and its manifest.

Rule generate_niah (adapterflow.generate.niah.write_niah_set). input: haystack (optional: a
prepared dataset whose texts are the essay haystack); params: niah (the set's block),
tokenizer (optional: a model reference; null counts words); output: jsonl, manifest.

Outside Snakemake, with the rule's names:
    python -m adapterflow generate_niah --input haystack=results/clean/wiki \\
        --output jsonl=results/generated/niah/short.jsonl \\
        --output manifest=results/generated/niah/short.manifest.json \\
        --param 'niah={"variants": ["niah_single_1"], "lengths": [256, 512]}' \\
        --param tokenizer=results/lms/smollm2
"""

import logging

from adapterflow.cli import running
from adapterflow.generate.niah import write_niah_set

logger = logging.getLogger("generate_niah")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        write_niah_set(
            snakemake.params.niah,
            snakemake.output.jsonl,
            snakemake.output.manifest,
            tokenizer=snakemake.params.get("tokenizer"),
            haystack=snakemake.input.get("haystack"),
        )
