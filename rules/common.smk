"""Helpers for rules/*.smk (config validation, param lookups); this file defines no rules."""

import functools
import hashlib
import os
import re
import sys
from pathlib import Path

import adapterflow
from adapterflow.config import load_schema, read_yaml, split_users, validate_config
from adapterflow.data.fingerprint import local_source_digest
from adapterflow.errors import ConfigError

# A config mistake is one line on the terminal (file:line or key path: problem), not a
# traceback into this file.
try:
    # Snakemake's YAML reader keeps the last of two equal keys without a word (the Snakefile
    # has checked config.yaml already).
    for path in workflow.overwrite_configfiles:
        read_yaml(path)
    validate_config(
        config,
        load_schema(workflow.source_path("../schemas/config.schema.yaml")),
        source=", ".join(map(str, workflow.overwrite_configfiles)) or "config.yaml",
    )
except ConfigError as err:
    sys.exit(f"error: {err}")

DATASETS = sorted(config["datasets"])


def names_pattern(names):
    """A wildcard constraint that matches exactly these names (nothing when there are none):
    names are escaped, so `a.b` does not also match `axb`."""
    return "|".join(re.escape(name) for name in sorted(names)) or "$^"


def profile_placeholders():
    """Resource values still marked CHANGE (profiles/slurm: account, partitions), as
    `rule: key=value` strings; a dry-run warns before a real run would be refused by sbatch.
    """
    settings = workflow.resource_settings
    found = [
        ("default-resources", arg)
        for arg in getattr(settings.default_resources, "args", None) or []
    ]
    for rule, resources in (settings.overwrite_resources or {}).items():
        found += [(rule, arg) for arg in getattr(resources, "args", None) or []]
    return [
        f"{rule}: {arg}" for rule, arg in found if "CHANGE" in arg.partition("=")[2]
    ]


if profile_placeholders():
    print(
        "warning: the profile still holds placeholder values ("
        + "; ".join(profile_placeholders())
        + "): set them in the profile's config.yaml (the keys marked CHANGE)",
        file=sys.stderr,
    )


def sorted_block(value):
    """A deep copy with sorted keys: params are compared as written, so key order from YAML
    must not look like a change and rerun jobs."""
    if isinstance(value, dict):
        return {key: sorted_block(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_block(item) for item in value]
    return value


# Snakemake reruns a job when its `script:` file changes, but it cannot see the adapterflow
# modules that script imports. library_code() declares them: a rule passes
# `library=library_code("<script>.py")` as a param, so editing any module the script imports
# (directly or through other adapterflow modules) reruns that rule's jobs and what follows,
# and an edit elsewhere in the package reruns nothing. The package hashed is the one jobs
# import (the editable checkout in the venv, or any installed copy). Imports are found with a
# regular expression rather than by parsing, which would slow every `snakemake` call.
LIBRARY = Path(adapterflow.__file__).parent
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<base>[\w.]+)[ \t]+import[ \t]+"
    r"(?:\((?P<group>[^)]*)\)|(?P<names>[^\n#]+))|import[ \t]+(?P<modules>[^\n#]+))",
    re.MULTILINE,
)


def _module_files(name):
    """The package files `import name` runs: every `__init__.py` on the way, then the module
    itself. `name` may end in a function or class name (`from m import f`), which adds nothing.
    """
    files = []
    folder = LIBRARY
    for part in name.split(".")[1:]:
        if (folder / "__init__.py").is_file():
            files.append(folder / "__init__.py")
        if (folder / f"{part}.py").is_file():
            return files + [folder / f"{part}.py"]
        folder = folder / part
        if not folder.is_dir():
            return files
    if (folder / "__init__.py").is_file():
        files.append(folder / "__init__.py")
    return files


def _imported_modules(source, package):
    """adapterflow modules (or names in them) that Python source imports, at the top or inside
    a function; `package` resolves relative imports."""
    found = set()
    for match in _IMPORT.finditer(source):
        if match["modules"]:
            found.update(name.split()[0] for name in match["modules"].split(","))
            continue
        base = match["base"]
        if base.startswith("."):
            level = len(base) - len(base.lstrip("."))
            parent = package.split(".")[: len(package.split(".")) - level + 1]
            base = ".".join(parent + ([base.lstrip(".")] if base.lstrip(".") else []))
        found.add(base)
        names = re.sub(r"#.*|\\", " ", match["group"] or match["names"])
        found.update(
            f"{base}.{name.split()[0]}" for name in names.split(",") if name.strip()
        )
    return {name for name in found if name.split(".")[0] == "adapterflow"}


@functools.cache
def library_code(script):
    """sha256 of every adapterflow module that scripts/`script` imports, directly or not."""
    seen = set()
    todo = [(Path(workflow.source_path(f"../scripts/{script}")), "")]
    while todo:
        path, package = todo.pop()
        for name in _imported_modules(path.read_text(encoding="utf-8"), package):
            for module in _module_files(name):
                if module not in seen:
                    seen.add(module)
                    parent = module.relative_to(LIBRARY.parent).parent
                    todo.append((module, ".".join(parent.parts)))
    digest = hashlib.sha256()
    for module in sorted(seen):
        digest.update(module.relative_to(LIBRARY).as_posix().encode() + b"\0")
        digest.update(module.read_bytes() + b"\0")
    return digest.hexdigest()


def dataset_block(dataset, key):
    """One block of a dataset's config, as a param: editing it reruns that dataset's jobs."""
    return sorted_block(config["datasets"][dataset][key])


# fetch_raw copies a local source once, and Snakemake cannot see an edit of the original:
# its content digest is a param, so an edit (not a mere touch) re-fetches that dataset and
# reruns what follows. File hashes are cached by size and mtime, so unchanged sources cost a
# stat per file.
LOCAL_SOURCE_CACHE = ".snakemake/adapterflow/local_sources.json"


def source_content(dataset):
    """The content digest of a `local` source (None for other kinds)."""
    source = config["datasets"][dataset]["source"]
    if source["kind"] != "local":
        return None
    return local_source_digest(
        source["path"],
        cache=LOCAL_SOURCE_CACHE,
        fetched=Path("results/raw", dataset, "manifest.json"),
    )


MODELS = sorted(config["models"])
TASKS = sorted(config["tasks"])
# Tasks whose corpus is embedded once per (model, run) by embed_corpus.
CORPUS_KINDS = ("retrieval", "anisotropy")


def is_hub_model(model):
    """A model whose path is a hub id: not pypi:, not a local directory (rules/models.smk)."""
    from adapterflow.errors import AdapterflowError
    from adapterflow.models import resolve_model_path

    try:
        return isinstance(resolve_model_path(config["models"][model]["path"]), str)
    except AdapterflowError:  # not there: config validation reports it
        return False


# Models that the localrule download_model snapshots into results/models/{model}.
HUB_MODELS = [model for model in MODELS if is_hub_model(model)]


def model_dir(model):
    return f"results/models/{model}"


def model_inputs(model):
    """The local snapshot of a hub model, which every job loading the model depends on
    (and loads: see model_block); nothing for pypi: and local models."""
    return {"model_dir": model_dir(model)} if model in HUB_MODELS else {}


def model_block(model):
    """A model's config block, as a param; a hub model's path is its local snapshot (the hub
    id stays, as hub_id), so compute jobs never reach for the network."""
    block = config["models"][model]
    if model in HUB_MODELS:
        block = {**block, "path": model_dir(model), "hub_id": block["path"]}
    return sorted_block(block)


def task_block(task):
    """A task's config block, as a param."""
    return sorted_block(config["tasks"][task])


def evaluation_block():
    """Settings shared by every evaluation job."""
    return sorted_block(config.get("evaluation", {}))


RUN_PATTERN = re.compile(r"^(?P<stages>[^/+]+(\+[^/+]+)?)-seed(?P<seed>\d+)$")


def adapter_dir(model, stages, seed):
    """Where train_adapter (an encoder) or train_lm_adapter (a name under lms) writes an
    adapter: stage 1 is shared by every experiment that uses the same model and stage-1
    name; stage 2 lives under `{stage1}+{stage2}`."""
    root = "lm_adapters" if model in config["lms"] else "adapters"
    return f"results/{root}/{model}/{stages}/seed{seed}"


def run_info(model, run):
    """What a run evaluates: `base` is the pretrained model; `{stage1}-seed{s}` and
    `{stage1}+{stage2}-seed{s}` are the adapters trained with seed s."""
    if run == "base":
        return {"adapter": None, "name": "base", "seed": None, "stage": "base"}
    match = RUN_PATTERN.match(run)
    if not match:
        raise ValueError(f"unknown run {run!r}")
    stages, seed = match["stages"], int(match["seed"])
    return {
        "adapter": adapter_dir(model, stages, seed),
        "name": run,
        "seed": seed,
        "stage": "stage2" if "+" in stages else "stage1",
    }


def experiment_runs(experiment):
    """The runs of an experiment: base, then stage 1 and stage 1+2 for every seed."""
    runs = ["base"]
    for seed in experiment["seeds"]:
        if experiment.get("stage1"):
            runs.append(f"{experiment['stage1']}-seed{seed}")
        if experiment.get("stage2"):
            runs.append(f"{experiment['stage1']}+{experiment['stage2']}-seed{seed}")
    return runs


def experiment_model(experiment):
    """The model an experiment trains: a name under models, or under lms for the causal-LM
    track."""
    return experiment.get("model") or experiment["lm"]


# Task kinds a causal LM is evaluated on (rule evaluate_lm); the others embed (evaluate).
LM_TASK_KINDS = ("ruler", "qa")


def evaluation_targets():
    """Every (model, run, task) that some experiment evaluates, and the base LM of every
    ruler or qa task that names one (`lm:`)."""
    targets = set()
    for experiment in config["experiments"].values():
        for run in experiment_runs(experiment):
            for task in experiment["evaluate"]:
                targets.add((experiment_model(experiment), run, task))
    for task, block in config["tasks"].items():
        if block["kind"] in LM_TASK_KINDS and block.get("lm"):
            targets.add((block["lm"], "base", task))
    return sorted(targets)


def embedding_targets():
    """The (model, run, task) of evaluation_targets that rule evaluate scores (figures)."""
    return [
        target
        for target in evaluation_targets()
        if config["tasks"][target[2]]["kind"] not in LM_TASK_KINDS
    ]


def evaluated_tasks():
    """The tasks the figures rule draws (every task an encoder is evaluated on)."""
    return sorted({task for _, _, task in embedding_targets()})


def eval_outputs(suffix):
    return [
        f"results/eval/{model}/{run}/{task}{suffix}"
        for model, run, task in evaluation_targets()
    ]


def embedding_eval_outputs(suffix):
    return [
        f"results/eval/{model}/{run}/{task}{suffix}"
        for model, run, task in embedding_targets()
    ]


def run_inputs(wildcards):
    """The adapter a run evaluates (nothing for the base model); a merge-mode stage-2 adapter
    also needs the stage-1 adapter merged under it."""
    # {model} in the encoders' rules, {lm} in the causal-LM track's.
    model = wildcards.get("model") or wildcards.get("lm")
    info = run_info(model, wildcards.run)
    if not info["adapter"]:
        return {}
    inputs = {"adapter": info["adapter"]}
    stages = RUN_PATTERN.match(wildcards.run)["stages"].split("+")
    if len(stages) == 2 and config["stages"][stages[1]]["init"] == "merge":
        inputs["stage1"] = adapter_dir(model, stages[0], info["seed"])
    return inputs


def embed_inputs(wildcards):
    return {
        "dataset": f"results/clean/{wildcards.dataset}",
        **run_inputs(wildcards),
        **model_inputs(wildcards.model),
    }


def evaluate_inputs(wildcards):
    """The prepared dataset and the run's adapter, plus the cached corpus embeddings for
    corpus-level tasks."""
    task = config["tasks"][wildcards.task]
    inputs = {
        "dataset": f"results/clean/{task['dataset']}",
        **run_inputs(wildcards),
        **model_inputs(wildcards.model),
    }
    if task["kind"] in CORPUS_KINDS:
        inputs["embeddings"] = (
            f"results/embeddings/{wildcards.model}/{wildcards.run}/{task['dataset']}.npz"
        )
    return inputs


def figure_outputs(kind):
    """Figure files written by the figures rule: per-task bars and item distributions, and
    one heatmap; each as PNG and SVG."""
    if kind == "heatmap":
        names = ["heatmap"]
    else:
        names = [f"{task}_{kind}" for task in evaluated_tasks()]
    return [f"results/figures/{name}.{ext}" for name in names for ext in ("png", "svg")]


def all_outputs():
    """Targets of the default target: every dataset prepared, every experiment evaluated,
    the tables and the figures."""
    targets = expand("results/clean/{dataset}", dataset=DATASETS) + eval_outputs(
        ".json"
    )
    if evaluation_targets():
        targets += ["results/tables/metrics.csv", "results/tables/summary.md"]
    if embedding_targets():
        targets += figure_outputs("bars") + figure_outputs("per_item")
        targets += figure_outputs("heatmap")
    return targets


def held_out_splits():
    """[dataset dir, split] of every evaluated task's split: training pairs and triplets must
    contain none of their texts (anisotropy scores a whole corpus and holds nothing out).
    """
    splits = set()
    for _, _, task in embedding_targets():
        block = config["tasks"][task]
        if block["kind"] != "anisotropy":
            splits.add((f"results/clean/{block['dataset']}", block["split"]))
    return [list(pair) for pair in sorted(splits)]


def held_out_dirs():
    return sorted({directory for directory, _ in held_out_splits()})


def pairs_block(name):
    return sorted_block(config["pairs"][name])


def triplets_block(name):
    return sorted_block(config["triplets"][name])


def mine_inputs(wildcards):
    """The pairs, the evaluation splits to hold out, an optional extra candidate corpus, and
    for dense mining a hub model's snapshot."""
    block = config["triplets"][wildcards.triplets]
    inputs = {
        "pairs": f"results/pairs/{block['pairs']}.jsonl",
        "held_out": held_out_dirs(),
        # The pairs' dataset: its corpus (if it has one) joins the candidate pool.
        "dataset": f"results/clean/{config['pairs'][block['pairs']]['dataset']}",
    }
    if block.get("corpus"):
        inputs["corpus"] = f"results/clean/{block['corpus']}"
    if block["strategy"] == "dense":
        inputs.update(model_inputs(block["model"]))
    return inputs


def mining_model(wildcards):
    """The model block dense mining embeds with (None for the other strategies)."""
    block = config["triplets"][wildcards.triplets]
    return model_block(block["model"]) if block["strategy"] == "dense" else None


def stage_block(stages):
    """The config block of the stage an adapter directory trains: the last name in
    `{stage1}` or `{stage1}+{stage2}`."""
    return sorted_block(config["stages"][stages.split("+")[-1]])


def tokenize_max_length(wildcards):
    """Tokens per text: the triplets' max_length, else the model's max_seq_length."""
    length = config["triplets"][wildcards.triplets].get("max_length")
    return length or config["models"][wildcards.model]["max_seq_length"]


def train_inputs(wildcards):
    """The stage's tokenized triplets (and a hub model's snapshot), and for stage 2 the
    stage-1 adapter it starts from."""
    stage = config["stages"][wildcards.stages.split("+")[-1]]
    inputs = {
        "triplets": f"results/tokenized/{wildcards.model}/{stage['triplets']}",
        **model_inputs(wildcards.model),
    }
    if "+" in wildcards.stages:
        stage1 = wildcards.stages.split("+")[0]
        inputs["stage1"] = adapter_dir(wildcards.model, stage1, wildcards.seed)
    return inputs


def print_result_locations():
    """After a successful run: where to read the results (paths as this directory has them)."""
    found = [
        (label, path)
        for label, path in (
            ("summary", "results/tables/summary.md"),
            ("metrics", "results/tables/metrics.csv"),
            ("figures", "results/figures"),
            ("report", "results/report.html"),
        )
        if os.path.exists(path)
    ]
    if not found:
        return
    print("\nResults:", file=sys.stderr)
    for label, path in found:
        print(f"  {label:8} {os.path.abspath(path)}", file=sys.stderr)
    if not os.path.exists("results/report.html"):
        print(
            "  report   snakemake --report results/report.html (make run builds it)",
            file=sys.stderr,
        )
