"""Rule export_dataset: the QA splits, chunks and raw documents as Hugging Face datasets.

Writes {out}/qa (DatasetDict: train, eval), {out}/chunks (DatasetDict: train), {out}/raw
(DatasetDict: train) with save_to_disk, and {out}/manifest.json (inputs with sha256, rows per
subset and split). Load a subset with datasets.load_from_disk("{out}/qa"). The output
directory appears only once complete. With a push, the three subsets then go to one Hub dataset
repository as configs "qa" (the default), "chunks" and "raw"; the token is read from the
environment variable HF_TOKEN, and without it the job stops before doing anything.

Command line (same as the rule):
    python scripts/export_dataset.py --qa results/qa_split/default \\
        --chunks results/chunks/wiki --corpus results/clean/wiki --out results/hf/default \\
        [--push-to my-lab/qa-wiki [--public]]

--qa is the output directory of dedup_cluster_split (or a directory holding train.jsonl and
eval.jsonl); --chunks and --corpus are JSONL files or directories holding chunks.jsonl /
corpus.jsonl.

Snakemake: input.qa, input.chunks, input.corpus, params.export (optional: push true/false,
repo_id "organisation/name", private true/false, default true), output[0] (directory), log[0].
"""

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from adapterflow.cli import running
from adapterflow.errors import ConfigError
from adapterflow.generate.export import check_repo_id, export_dataset, hub_token, push_to_hub

logger = logging.getLogger("export_dataset")


def run(qa: str, chunks: str, corpus: str, out: str, block: Mapping[str, Any]) -> None:
    unknown = set(block) - {"push", "repo_id", "private"}
    if unknown:
        raise ConfigError(f"unknown export setting(s): {', '.join(sorted(unknown))}")
    push = bool(block.get("push", False))
    if push:
        # Refuse before any work: a missing token should not cost an export first.
        hub_token()
        check_repo_id(block.get("repo_id"))
    export_dataset(qa, chunks, corpus, out)
    if push:
        push_to_hub(out, block["repo_id"], private=block.get("private", True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa", required=True, help="dedup_cluster_split output directory")
    parser.add_argument("--chunks", required=True, help="chunks.jsonl or its directory")
    parser.add_argument("--corpus", required=True, help="corpus.jsonl or its dataset directory")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--push-to", metavar="ORG/NAME", help="also push to this Hub dataset repo")
    parser.add_argument(
        "--public", action="store_true", help="create the Hub repository public (default private)"
    )
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    if args.public and not args.push_to:
        parser.error("--public needs --push-to")
    block = {"push": bool(args.push_to), "repo_id": args.push_to, "private": not args.public}
    with running(args.log, rule=False, logger=logger):
        run(args.qa, args.chunks, args.corpus, args.out, block)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(
                snakemake.input.qa,
                snakemake.input.chunks,
                snakemake.input.corpus,
                snakemake.output[0],
                snakemake.params.get("export", {}) or {},
            )
    else:
        main()
