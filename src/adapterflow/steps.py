"""The workflow's steps by name: ``python -m adapterflow <step>`` runs one outside Snakemake.

A step is a rule of ``rules/*.smk``. Its script, ``scripts/<step>.py``, calls one library
function with the rule's ``input``, ``output``, ``params``, ``wildcards`` and ``threads``; the
step registered here calls the same function with the same names, given on the command line::

    python -m adapterflow STEP [--input [NAME=]PATH]... [--output [NAME=]PATH]...
        [--params MAPPING]... [--param NAME=VALUE]... [--wildcard NAME=VALUE]...
        [--threads N] [--log FILE]

- ``--input`` / ``--output``: a file by the name the rule gives it (``--input pairs=p.jsonl``),
  or by position when the rule names none (``--output results/triplets/t.jsonl``); a name
  given several times is a list (``--input qa=a.jsonl --input qa=b.jsonl``);
- ``--params``: the rule's params as one mapping, a YAML/JSON file or inline JSON
  (``{"mining": {"strategy": "bm25", "k": 2}, "held_out_splits": [["results/clean/news",
  "test"]]}``); repeatable, later ones win;
- ``--param NAME=VALUE``: one param, ``VALUE`` inline JSON or else a plain string;
- ``--wildcard NAME=VALUE``: a wildcard the step reads (``--wildcard dataset=lee50``);
- ``--threads``: the rule's threads (default: the library's own default); ``--log``: also
  write the log to this file.

``python -m adapterflow --help`` lists the steps, ``python -m adapterflow STEP --help`` names
what one reads. A step stops on bad input as a rule does: ``error: <message>`` as the last
line on stderr, exit status 1, and no output (:func:`adapterflow.cli.running`); a name the
step reads that the command line does not give is such an error too. The scripts do not
import this module (the rules track the library code each script imports), so each step
repeats its script's call; ``tests/test_steps.py`` checks that both call the same function
with the same arguments.

Example:
    >>> import json, pathlib, tempfile
    >>> from adapterflow.steps import main
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> pairs = [{"anchor": f"q{i}", "positive": f"p{i}"} for i in range(3)]
    >>> _ = (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in pairs))
    >>> main(["mine_triplets", "--input", f"pairs={root / 'pairs.jsonl'}",
    ...       "--output", str(root / "triplets.jsonl"),
    ...       "--param", 'mining={"strategy": "random", "k": 1}'])
    >>> len((root / "triplets.jsonl").read_text().splitlines())
    3
    >>> main(["mine_triplets", "--output", str(root / "t.jsonl")])
    Traceback (most recent call last):
    ...
    SystemExit: error: mine_triplets reads input 'pairs': give --input pairs=PATH
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterflow.cli import as_list, block_arg, running
from adapterflow.errors import AdapterflowError, ConfigError

_NAME = re.compile(r"^([A-Za-z_]\w*)=(.*)$", re.DOTALL)


class MissingName(ConfigError, AttributeError):
    """A name a step reads that the command line does not give (an AttributeError too, so
    ``hasattr`` and ``getattr(..., default)`` work as on Snakemake's objects)."""


class Files(list[str]):
    """A rule's input or output files as the command line gives them: by position
    (``files[0]``) and by name (``files.pairs``, ``files.get("corpus")``); a name given several
    times is a list of paths, once a plain path, as in Snakemake.

    Example:
        >>> from adapterflow.steps import Files
        >>> files = Files([("qa", "a.jsonl"), ("qa", "b.jsonl"), ("model", "m")], "input")
        >>> files.qa, files.model, files[0], files.get("corpus")
        (['a.jsonl', 'b.jsonl'], 'm', 'a.jsonl', None)
        >>> files.corpus
        Traceback (most recent call last):
        ...
        adapterflow.steps.MissingName: step reads input 'corpus': give --input corpus=PATH
    """

    def __init__(self, entries: Iterable[tuple[str | None, str]] = (), kind: str = "input"):
        entries = list(entries)
        super().__init__(path for _, path in entries)
        named: dict[str, list[str]] = {}
        for name, path in entries:
            if name is not None:
                named.setdefault(name, []).append(path)
        self._named = {
            name: paths[0] if len(paths) == 1 else paths for name, paths in named.items()
        }
        self._kind = kind
        self._step = "step"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._named[name]
        except KeyError:
            raise MissingName(
                f"{self._step} reads {self._kind} {name!r}: give --{self._kind} {name}=PATH"
            ) from None

    def __getitem__(self, index: Any) -> Any:
        try:
            return super().__getitem__(index)
        except IndexError:
            raise MissingName(
                f"{self._step} reads {self._kind} {index}: give --{self._kind} PATH"
            ) from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._named.get(name, default)


class Names(dict[str, Any]):
    """A rule's params or wildcards as the command line gives them: by attribute
    (``params.mining``) and as a mapping (``params.get("model")``).

    Example:
        >>> from adapterflow.steps import Names
        >>> params = Names({"mining": {"k": 2}}, "param")
        >>> params.mining, params.get("model")
        ({'k': 2}, None)
    """

    def __init__(self, values: Any = (), kind: str = "param"):
        super().__init__(values)
        self._kind = kind
        self._step = "step"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise MissingName(
                f"{self._step} reads {self._kind} {name!r}: give --{self._kind} {name}=VALUE"
            ) from None


@dataclass
class Job:
    """What Snakemake hands a rule's script as ``snakemake``, for a step run from the command
    line: ``input``, ``output``, ``params``, ``wildcards``, ``threads`` and ``log``."""

    input: Files = field(default_factory=lambda: Files(kind="input"))
    output: Files = field(default_factory=lambda: Files(kind="output"))
    params: Names = field(default_factory=lambda: Names(kind="param"))
    wildcards: Names = field(default_factory=lambda: Names(kind="wildcard"))
    threads: int | None = None
    log: list[str] = field(default_factory=list)

    def named(self, step: str) -> Job:
        """This job with ``step`` named in its messages about missing names."""
        for part in (self.input, self.output, self.params, self.wildcards):
            part._step = step
        return self


@dataclass(frozen=True)
class Step:
    """A registered step: ``run(job)`` calls the library; ``errors`` are reported as one line."""

    name: str
    run: Callable[[Job], object]
    errors: tuple[type[Exception], ...] = (AdapterflowError,)

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.run.__doc__ or self.name)

    @property
    def summary(self) -> str:
        return self.description.splitlines()[0]


#: Every step by name; each is the rule of the same name, except preview_chunks.
STEPS: dict[str, Step] = {}


def step(
    name: str, *, errors: tuple[type[Exception], ...] = (AdapterflowError,)
) -> Callable[[Callable[[Job], object]], Callable[[Job], object]]:
    """Register ``run`` as step ``name``. Its docstring is the step's help: the first line what
    it does, then the names it reads."""

    def register(run: Callable[[Job], object]) -> Callable[[Job], object]:
        STEPS[name] = Step(name, run, errors)
        return run

    return register


# Each step's imports are inside it: `python -m adapterflow fetch_raw` loads no torch.
# Keep each body the same call as its scripts/<step>.py, with `job` for `snakemake`.

# Errors of the report steps reported as one line; pandas and the table and figure checks
# raise ValueError for bad tables and undeclared figures.
REPORT_ERRORS = (AdapterflowError, ValueError)


@step("fetch_raw")
def _fetch_raw(job: Job) -> None:
    """Download one dataset's raw files into a directory with a manifest.

    wildcards: dataset (its name); params: source (the dataset's source block);
    output: the raw directory.
    """
    from adapterflow.data.sources import fetch_raw

    fetch_raw(job.wildcards.dataset, job.params.source, job.output[0])


@step("prepare_dataset")
def _prepare_dataset(job: Job) -> None:
    """Clean, de-duplicate, split and leakage-check one raw dataset into the canonical layout.

    input: the raw directory (from fetch_raw); wildcards: dataset (its name, for messages);
    params: prepare (the prepare block), required_splits (optional: {split: [users]});
    output: the clean directory.
    """
    from adapterflow.data.prepare import prepare_dataset

    prepare_dataset(
        job.input[0],
        job.output[0],
        job.params.prepare,
        name=job.wildcards.dataset,
        required_splits=job.params.get("required_splits"),
    )


@step("download_model")
def _download_model(job: Job) -> None:
    """Snapshot a hub model into a directory with a manifest.

    wildcards: model (its name under models:); params: model (the block: path, the hub id,
    and optional revision); output: the model directory.
    """
    from adapterflow.download import download_model

    block = job.params.model
    download_model(job.wildcards.model, block["path"], block.get("revision"), job.output[0])


@step("convert_llm")
def _convert_llm(job: Job) -> None:
    """Convert a causal LM (a GGUF file) once into a plain Hugging Face directory.

    params: llm (the block: path, optional dtype); threads; output: the directory.
    """
    from adapterflow.generate.llm import convert_gguf_to_hf

    block = job.params.llm
    convert_gguf_to_hf(
        block["path"], job.output[0], dtype=block.get("dtype", "float32"), threads=job.threads
    )


@step("chunk_corpus")
def _chunk_corpus(job: Job) -> None:
    """Cut a prepared corpus into sentence-aligned chunks, tables kept whole.

    input: dataset (the clean dataset directory); params: chunking (max_length, min_length,
    tokenizer: a model reference or null for characters); output: the chunks directory.
    """
    from adapterflow.generate.chunking import chunk_corpus_from_config

    chunk_corpus_from_config(job.input.dataset, job.output[0], job.params.chunking)


@step("preview_chunks")
def _preview_chunks(job: Job) -> None:
    """Print the first chunks of a corpus as chunk_corpus cuts them; write nothing.

    input: dataset (the clean dataset directory); params: chunking (as chunk_corpus), n
    (optional: how many chunks, default 5).
    """
    from adapterflow.generate.chunking import format_preview

    print(format_preview(job.input.dataset, job.params.chunking, int(job.params.get("n", 5))))


@step("generate_niah")
def _generate_niah(job: Job) -> None:
    """Build a needle-in-a-haystack set as RULER builds it.

    input: haystack (optional: a prepared dataset whose texts are the essay haystack);
    params: niah (the set's block), tokenizer (optional: a model reference; null counts
    words); output: jsonl, manifest.
    """
    from adapterflow.generate.niah import write_niah_set

    write_niah_set(
        job.params.niah,
        job.output.jsonl,
        job.output.manifest,
        tokenizer=job.params.get("tokenizer"),
        haystack=job.input.get("haystack"),
    )


@step("generate_qa")
def _generate_qa(job: Job) -> None:
    """Write question/answer records with a local LM (engine llm) or from templates.

    input: chunks (engine llm: the chunk_corpus directory), or facts and templates (engine
    templates: YAML files); params: qa (the block, with engine), name (optional: label every
    record with this set name); threads; output: the QA directory.
    """
    from adapterflow.generate.qa import generate_qa_set

    generate_qa_set(
        job.params.qa,
        job.output[0],
        chunks=job.input.get("chunks"),
        facts=job.input.get("facts"),
        templates=job.input.get("templates"),
        threads=job.threads,
        name=job.params.get("name"),
    )


@step("dedup_cluster_split")
def _dedup_cluster_split(job: Job) -> None:
    """Dedup generated QA records, cluster their questions and split them by cluster.

    input: qa (QA JSONL files or generate_qa directories; repeat the name for several);
    params: model (a models: block), settings (optional: see
    adapterflow.generate.clusters.DEFAULT_SETTINGS); threads; output: the directory.
    """
    from adapterflow.generate.clusters import dedup_cluster_split

    dedup_cluster_split(
        as_list(job.input.qa),
        job.output[0],
        job.params.get("settings", {}),
        model=job.params.model,
        threads=job.threads,
    )


@step("export_dataset")
def _export_dataset(job: Job) -> None:
    """Export the QA splits, chunks and raw documents as Hugging Face datasets (and push).

    input: qa (the dedup_cluster_split directory), chunks, corpus; params: export (optional:
    push, repo_id "organisation/name", private; a push reads the token from HF_TOKEN);
    output: the export directory.
    """
    from adapterflow.generate.export import export_and_push

    export_and_push(
        job.input.qa,
        job.input.chunks,
        job.input.corpus,
        job.output[0],
        job.params.get("export"),
    )


@step("make_pairs")
def _make_pairs(job: Job) -> None:
    """Training pairs {"anchor","positive"} from one prepared dataset.

    input: dataset (the clean dataset directory), held_out (the datasets of
    params.held_out_splits); params: pairs (the pairs block), held_out_splits (optional: a
    list of [dataset_dir, split] whose texts are never trained on); output: the pairs .jsonl.
    """
    from adapterflow.data.pairs import make_pairs_file

    make_pairs_file(
        job.input.dataset,
        job.output[0],
        job.params.pairs,
        held_out_splits=job.params.get("held_out_splits", []),
        declared_held_out=as_list(job.input.get("held_out", [])),
    )


@step("mine_triplets")
def _mine_triplets(job: Job) -> None:
    """k negatives for every training pair.

    input: pairs (.jsonl from make_pairs), dataset (optional: the pairs' prepared dataset,
    whose corpus joins the pool), corpus (optional: another prepared retrieval dataset),
    held_out (the datasets of params.held_out_splits); params: mining (strategy, k, options,
    seed), pairs (optional: the pairs block), model (dense only: a models: block),
    held_out_splits (optional: a list of [dataset_dir, split] whose texts are never
    negatives); output: the triplets .jsonl.
    """
    from adapterflow.data.mining import mine_triplets_file

    mine_triplets_file(
        job.input.pairs,
        job.output[0],
        job.params.mining,
        model=job.params.get("model"),
        dataset=job.input.get("dataset"),
        corpus=job.input.get("corpus"),
        pairs_block=job.params.get("pairs"),
        held_out_splits=job.params.get("held_out_splits", []),
        declared_held_out=as_list(job.input.get("held_out", [])),
    )


@step("tokenize_triplets")
def _tokenize_triplets(job: Job) -> None:
    """Tokenize a triplets file once with a model's tokenizer.

    input: triplets (.jsonl from mine_triplets); params: model (the models block),
    max_length (optional; null: the model's max_seq_length); output: the directory.
    """
    from adapterflow.train.tokenize import tokenize_triplets

    tokenize_triplets(
        job.input.triplets,
        job.params.model,
        job.output[0],
        job.params.get("max_length"),
    )


@step("train_adapter")
def _train_adapter(job: Job) -> None:
    """Train a LoRA adapter (stage 1, or stage 2 from a stage-1 adapter).

    input: triplets (the tokenized directory), stage1 (optional: the adapter stage 2 starts
    from); params: model (the models block), stage (the stages block), seed,
    checkpoint_dir (resumed from on a rerun); threads; output: the adapter directory.
    """
    from adapterflow.train.adapter import train_adapter

    train_adapter(
        model_cfg=job.params.model,
        tokenized_dir=job.input.triplets,
        out_dir=job.output[0],
        stage_cfg=job.params.stage,
        seed=int(job.params.seed),
        init_adapter=job.input.get("stage1"),
        checkpoint_dir=job.params.checkpoint_dir,
        threads=job.threads,
    )


@step("embed_corpus")
def _embed_corpus(job: Job) -> None:
    """Embed every document of a prepared retrieval dataset once per (model, run).

    input: dataset; params: model (the models block), run (its adapter: a directory or
    null for the base model), evaluation (the evaluation block); threads; output: the .npz.
    """
    from adapterflow.eval.evaluate import embed_corpus

    embed_corpus(
        model=job.params.model,
        dataset_dir=job.input.dataset,
        out=job.output[0],
        adapter=job.params.run["adapter"],
        evaluation=job.params.evaluation,
        threads=job.threads,
    )


@step("evaluate")
def _evaluate(job: Job) -> None:
    """Score one model or adapter (a run) on one task: eval JSON and per-item details CSV.

    input: dataset, embeddings (optional: from embed_corpus); wildcards: task, model (their
    names); params: task, model (blocks), run (name, stage, adapter, ...), evaluation;
    threads; output: json, details.
    """
    from adapterflow.eval.evaluate import run_evaluation

    run_evaluation(
        task_name=job.wildcards.task,
        task=job.params.task,
        model_name=job.wildcards.model,
        model=job.params.model,
        run=job.params.run,
        dataset_dir=job.input.dataset,
        out_json=job.output.json,
        out_details=job.output.details,
        corpus_embeddings=job.input.get("embeddings"),
        evaluation=job.params.evaluation,
        threads=job.threads,
    )


@step("evaluate_generation")
def _evaluate_generation(job: Job) -> None:
    """Evaluate a causal LM (base or with a LoRA adapter) on a NIAH / QA set, RULER-style.

    input: dataset (the JSONL set); wildcards (optional): task (default: the JSON's file
    name), model or lm (default "model"); params: model (path, optional adapter), task,
    run, evaluation and limit (optional); threads; output: json, details.
    """
    from adapterflow.eval.generation import run_generation_evaluation

    run_generation_evaluation(
        task_name=job.wildcards.get("task") or Path(job.output.json).stem,
        task=job.params.task,
        model=job.params.model,
        # {model} in rule evaluate's layout; rules/generate.smk names LMs {lm}.
        model_name=job.wildcards.get("model") or job.wildcards.get("lm") or "model",
        run=job.params.get("run"),
        evaluation=job.params.get("evaluation"),
        dataset=job.input.dataset,
        out_json=job.output.json,
        out_details=job.output.details,
        limit=job.params.get("limit"),
        threads=job.threads,
    )


@step("plot_ruler_heatmap")
def _plot_ruler_heatmap(job: Job) -> None:
    """The depth × length heatmap of one RULER-style evaluation (PNG + SVG).

    input: details (a {task}.details.csv of evaluate_generation); params: label, variant
    (optional); output: png (the SVG goes beside it).
    """
    from adapterflow.plots.ruler import save_depth_length_heatmap

    save_depth_length_heatmap(
        job.input.details,
        job.output.png,
        label=job.params.get("label"),
        variant=job.params.get("variant"),
    )


@step("aggregate", errors=REPORT_ERRORS)
def _aggregate(job: Job) -> None:
    """Eval JSON files → a tidy metrics table (CSV) and a Markdown summary.

    input: evals (eval JSON files; repeat the name for several); output: csv, md.
    """
    from adapterflow.report.tables import write_tables

    write_tables(as_list(job.input.evals), job.output.csv, job.output.md)


@step("figures", errors=REPORT_ERRORS)
def _figures(job: Job) -> None:
    """metrics.csv and per-item details CSVs → PNG + SVG figures.

    input: metrics (metrics.csv from aggregate), details ({task}.details.csv files, each
    beside its eval JSON; repeat the name for several); params: out_dir; output (optional):
    the figures expected, which must match those drawn.
    """
    from adapterflow.plots.figures import figures_from_evals

    figures_from_evals(
        job.input.metrics,
        as_list(job.input.details),
        job.params.out_dir,
        expected=list(job.output),
    )


# --- the command line --------------------------------------------------------------------------


def _file(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` or ``PATH`` (an ``=`` after something that is no name is part of it)."""
    match = _NAME.match(value)
    return (match[1], match[2]) if match else (None, value)


def _assignment(value: str) -> tuple[str, str]:
    match = _NAME.match(value)
    if not match:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return match[1], match[2]


def _param(value: str) -> tuple[str, Any]:
    """``NAME=VALUE``: ``VALUE`` as inline JSON, else the string as it is."""
    name, text = _assignment(value)
    try:
        return name, json.loads(text)
    except json.JSONDecodeError:
        return name, text


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per step, each with the same options."""
    common = argparse.ArgumentParser(add_help=False)
    files = common.add_argument_group("the job, named as in the rule")
    files.add_argument(
        "--input",
        metavar="[NAME=]PATH",
        type=_file,
        action="append",
        default=[],
        help="an input file or directory, by its name in the rule (repeat a name for a list)",
    )
    files.add_argument(
        "--output",
        metavar="[NAME=]PATH",
        type=_file,
        action="append",
        default=[],
        help="an output, by its name in the rule (none: by position)",
    )
    files.add_argument(
        "--params",
        metavar="MAPPING",
        type=block_arg,
        action="append",
        default=[],
        help="the rule's params as one mapping: a YAML/JSON file or inline JSON",
    )
    files.add_argument(
        "--param",
        metavar="NAME=VALUE",
        type=_param,
        action="append",
        default=[],
        help="one param: inline JSON, else a string (after --params)",
    )
    files.add_argument(
        "--wildcard",
        metavar="NAME=VALUE",
        type=_assignment,
        action="append",
        default=[],
        help="a wildcard the step reads",
    )
    files.add_argument("--threads", type=int, help="the rule's threads")
    files.add_argument("--log", metavar="FILE", help="also write the log here")

    main_parser = argparse.ArgumentParser(
        prog="python -m adapterflow",
        description="Run one step of the workflow outside Snakemake, with its rule's names.",
        epilog="python -m adapterflow STEP --help names what a step reads.",
    )
    steps = main_parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for name in sorted(STEPS):
        registered = STEPS[name]
        steps.add_parser(
            name,
            parents=[common],
            help=registered.summary,
            description=registered.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return main_parser


def job_from_args(args: argparse.Namespace) -> Job:
    """The :class:`Job` a parsed command line describes."""
    params: dict[str, Any] = {}
    for block in args.params:
        params.update(block)
    params.update(args.param)
    return Job(
        input=Files(args.input, "input"),
        output=Files(args.output, "output"),
        params=Names(params, "param"),
        wildcards=Names(dict(args.wildcard), "wildcard"),
        threads=args.threads,
        log=[args.log] if args.log else [],
    ).named(args.step)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m adapterflow STEP ...``: run one step as its rule would."""
    args = parser().parse_args(argv)
    registered = STEPS[args.step]
    job = job_from_args(args)
    logger = logging.getLogger(args.step)
    with running(args.log, rule=False, logger=logger, errors=registered.errors):
        registered.run(job)
