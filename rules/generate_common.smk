"""Helpers for rules/generate.smk (names, inputs, params, targets); this file defines no rules."""

LMS = sorted(config["lms"])
CHUNK_SETS = sorted(config["chunks"])
NIAH_SETS = sorted(config["niah"])
QA_SETS = sorted(config["qa"])
CURATED_SETS = sorted(config["curated"])
EXPORTS = sorted(config["exports"])
RULER_TASKS = sorted(n for n, t in config["tasks"].items() if t["kind"] == "ruler")


def lm_dir(lm):
    """Where convert_llm writes an LM as a plain Hugging Face directory."""
    return f"results/lms/{lm}"


def is_download(reference):
    """A hub id: converting the LM downloads it (not a pypi: package or a local path)."""
    from adapterflow.errors import AdapterflowError
    from adapterflow.lms import resolve_lm

    try:
        return isinstance(resolve_lm(reference).path, str)
    except AdapterflowError:  # not there: config validation reports it
        return False


def tokenizer_reference(name):
    """What a `tokenizer:` key loads: the converted LM directory for a name under lms, the
    model's path for a name under models (a hub model's snapshot), nothing for null."""
    if name is None:
        return None
    if name in config["lms"]:
        return lm_dir(name)
    return model_block(name)["path"]


def tokenizer_inputs(name):
    """The converted LM directory a tokenizer is read from, or a hub model's snapshot (a
    pypi: or local model needs no job)."""
    return {"tokenizer": lm_dir(name)} if name in config["lms"] else model_inputs(name)


def chunk_inputs(wildcards):
    block = config["chunks"][wildcards.chunks]
    return {
        "dataset": f"results/clean/{block['dataset']}",
        **tokenizer_inputs(block["tokenizer"]),
    }


def chunking_params(name):
    """The block chunk_corpus reads: lengths and the tokenizer's reference."""
    block = config["chunks"][name]
    return {
        "max_length": block["max_length"],
        "min_length": block["min_length"],
        "tokenizer": tokenizer_reference(block["tokenizer"]),
    }


def niah_inputs(wildcards):
    block = config["niah"][wildcards.niah]
    inputs = tokenizer_inputs(block["tokenizer"])
    if block["haystack"] is not None:
        inputs["haystack"] = f"results/clean/{block['haystack']}"
    return inputs


def niah_params(name):
    """The set's block without its inputs (haystack, tokenizer)."""
    block = config["niah"][name]
    return sorted_block(
        {k: v for k, v in block.items() if k not in ("haystack", "tokenizer")}
    )


def qa_inputs(wildcards):
    block = config["qa"][wildcards.qa]
    if block["engine"] == "templates":
        return {"facts": block["facts"], "templates": block["templates"]}
    return {"chunks": f"results/chunks/{block['chunks']}", "lm": lm_dir(block["lm"])}


def qa_params(name):
    """The block generate_qa reads: the engine's settings, the LM as its converted directory;
    the files and chunks come as inputs."""
    block = dict(config["qa"][name])
    if block["engine"] == "llm":
        block["model"] = lm_dir(block.pop("lm"))
        del block["chunks"]
    else:
        del block["facts"], block["templates"]
    return sorted_block(block)


def uses_lm(wildcards):
    """1 for a QA set an LM writes, 0 for templates (threads and memory follow)."""
    return int(config["qa"][wildcards.qa]["engine"] == "llm")


def curated_inputs(wildcards):
    names = config["curated"][wildcards.curated]["qa"]
    return [f"results/generated/qa/{name}" for name in names]


def curated_settings(name):
    """The curated set's block in the nested settings of dedup_cluster_split."""
    block = config["curated"][name]
    return sorted_block(
        {
            "seed": block["seed"],
            "dedup": {"threshold": block["threshold"]},
            "clusters": {
                "k_min": block["k_min"],
                "k_max": block["k_max"],
                "criterion": block["criterion"],
            },
            "split": {
                "eval_fraction": block["eval_fraction"],
                "min_cluster_size": block["min_cluster_size"],
            },
            "map": {"method": block["map"]},
        }
    )


def export_inputs(wildcards):
    block = config["exports"][wildcards.export]
    chunks = block["chunks"]
    return {
        "qa": f"results/curated/{block['curated']}",
        "chunks": f"results/chunks/{chunks}",
        "corpus": f"results/clean/{config['chunks'][chunks]['dataset']}",
    }


def export_params(name):
    block = config["exports"][name]
    return sorted_block({k: block[k] for k in ("push", "repo_id", "private")})


# Only the keys evaluate_generation reads: the schema's defaults for other kinds (k_values,
# top_k, ...) would otherwise rerun these jobs when they change.
RULER_KEYS = (
    "kind",
    "dataset",
    "split",
    "lm",
    "prompt_format",
    "batch_size",
    "metric",
    "limit",
)


def ruler_task_block(task):
    """A ruler task's block, max_new_tokens defaulting to its NIAH set's tokens_to_generate."""
    block = config["tasks"][task]
    out = {key: block[key] for key in RULER_KEYS if block.get(key) is not None}
    tokens = block.get("max_new_tokens")
    if tokens is None:
        tokens = config["niah"][block["dataset"]]["tokens_to_generate"]
    out["max_new_tokens"] = tokens
    return sorted_block(out)


def generation_evaluation_block():
    """The evaluation settings a generation job reads (the encoders' batch sizes would only
    rerun it for nothing)."""
    block = evaluation_block()
    return {key: block[key] for key in ("device", "merge_adapter") if key in block}


def ruler_heatmaps(ext):
    """A RULER heatmap per ruler task for the base LM and each run of the first seed (the
    other seeds' cells are in the details CSVs and metrics.csv)."""
    targets = [t for t in lm_targets() if config["tasks"][t[2]]["kind"] == "ruler"]
    seeds = [run_info(lm, run)["seed"] for lm, run, _ in targets]
    first = min((seed for seed in seeds if seed is not None), default=None)
    return [
        f"results/figures/ruler/{lm}/{run}/{task}.{ext}"
        for (lm, run, task), seed in zip(targets, seeds)
        if seed in (None, first)
    ]


def generation_outputs():
    """Targets of the default target for the generated-data blocks (none when the config
    defines none): every LM converted, every set generated, curated and exported, and the
    heatmap of every ruler evaluation."""
    targets = [lm_dir(lm) for lm in LMS]
    targets += [f"results/chunks/{name}" for name in CHUNK_SETS]
    targets += [f"results/generated/niah/{name}.jsonl" for name in NIAH_SETS]
    targets += [f"results/generated/qa/{name}" for name in QA_SETS]
    targets += [f"results/curated/{name}" for name in CURATED_SETS]
    targets += [f"results/export/{name}" for name in EXPORTS]
    targets += ruler_heatmaps("png") + ruler_heatmaps("svg")
    return targets
