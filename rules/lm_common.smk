"""Helpers for rules/lm.smk (the causal-LM track); this file defines no rules."""

SFT_SETS = sorted(config["sft"])
QA_TASKS = sorted(n for n, t in config["tasks"].items() if t["kind"] == "qa")
LM_TASKS = sorted(n for n, t in config["tasks"].items() if t["kind"] in LM_TASK_KINDS)


def sft_dir(lm, sft):
    """Where build_sft writes an SFT set tokenized for an LM."""
    return f"results/sft/{lm}/{sft}"


def sft_source(sft):
    """The input build_sft reads: a QA set's directory, a NIAH set's JSONL or a chat file."""
    block = config["sft"][sft]
    if block.get("qa"):
        return {"qa": f"results/generated/qa/{block['qa']}"}
    if block.get("niah"):
        return {"niah": f"results/generated/niah/{block['niah']}.jsonl"}
    return {"chat": block["chat"]}


def sft_inputs(wildcards):
    return {**sft_source(wildcards.sft), "lm": lm_dir(wildcards.lm)}


def lm_stage(stages):
    """The stage block an LM adapter directory trains: the last name of `{stage1}+{stage2}`."""
    return config["stages"][stages.split("+")[-1]]


def lm_train_inputs(wildcards):
    """The converted LM, the stage's SFT set (and its replay set), and for stage 2 the
    stage-1 adapter it starts from."""
    stage = lm_stage(wildcards.stages)
    inputs = {
        "lm": lm_dir(wildcards.lm),
        "sft": sft_dir(wildcards.lm, stage["sft"]),
    }
    if stage.get("replay"):
        inputs["replay"] = sft_dir(wildcards.lm, stage["replay"]["sft"])
    if "+" in wildcards.stages:
        stage1 = wildcards.stages.split("+")[0]
        inputs["stage1"] = adapter_dir(wildcards.lm, stage1, wildcards.seed)
    return inputs


def lm_block(lm):
    """What a job loading an LM reads: its converted directory, dtype and LoRA targets."""
    block = config["lms"][lm]
    return sorted_block(
        {
            "path": lm_dir(lm),
            "dtype": block["dtype"],
            "lora_target_modules": block["lora_target_modules"],
        }
    )


def lm_eval_model(lm):
    """The LM block an evaluation reads (LoRA targets do not change a generation)."""
    return {"dtype": config["lms"][lm]["dtype"], "path": lm_dir(lm)}


# Only the keys evaluate_lm reads: the schema's defaults for other kinds (k_values, top_k,
# ...) would otherwise rerun these jobs when they change.
LM_TASK_KEYS = (
    "kind",
    "dataset",
    "split",
    "lm",
    "prompt_format",
    "batch_size",
    "metric",
    "limit",
    "scoring",
)


def lm_task_block(task):
    """A ruler or qa task's block; a ruler task's max_new_tokens defaults to its NIAH set's
    tokens_to_generate."""
    block = config["tasks"][task]
    out = {key: block[key] for key in LM_TASK_KEYS if block.get(key) is not None}
    tokens = block.get("max_new_tokens")
    if tokens is None and block["kind"] == "ruler":
        tokens = config["niah"][block["dataset"]]["tokens_to_generate"]
    if tokens is not None:
        out["max_new_tokens"] = tokens
    judge = block.get("judge")
    if judge and judge.get("kind") == "local":
        # A name under lms: the job reads its converted directory.
        out["judge"] = {**judge, "lm": lm_dir(judge["lm"])}
    elif judge:
        out["judge"] = judge
    return sorted_block(out)


def judge_lm_inputs(task):
    """The converted LM a local judge runs (nothing for an endpoint or no judge)."""
    judge = config["tasks"][task].get("judge") or {}
    return {"judge_lm": lm_dir(judge["lm"])} if judge.get("kind") == "local" else {}


def lm_evaluation_block():
    """The evaluation settings a generation job reads (the encoders' batch sizes would only
    rerun it for nothing)."""
    block = evaluation_block()
    return {key: block[key] for key in ("device", "merge_adapter") if key in block}


def scoring_model(task):
    """The name under models of a qa task's semantic score, or None."""
    return (config["tasks"][task].get("scoring") or {}).get("model")


def lm_eval_inputs(wildcards):
    """The converted LM, the run's adapter (and the stage-1 adapter under a merged one), the
    task's records (a NIAH set, or an SFT set built for this LM) and the scoring encoder.
    """
    task = config["tasks"][wildcards.task]
    inputs = {"lm": lm_dir(wildcards.lm), **run_inputs(wildcards)}
    if task["kind"] == "ruler":
        inputs["dataset"] = f"results/generated/niah/{task['dataset']}.jsonl"
    else:
        inputs["dataset"] = sft_dir(wildcards.lm, task["dataset"])
        if scoring_model(wildcards.task):
            inputs.update(model_inputs(scoring_model(wildcards.task)))
        inputs.update(judge_lm_inputs(wildcards.task))
    return inputs


def lm_targets():
    """The (lm, run, task) of evaluation_targets that rule evaluate_lm scores."""
    return [
        target
        for target in evaluation_targets()
        if config["tasks"][target[2]]["kind"] in LM_TASK_KINDS
    ]


def sft_targets():
    """Every (lm, sft set) a job reads: the stages and replay sets of each LM experiment,
    and the SFT sets of the qa tasks an LM is evaluated on."""
    targets = set()
    for experiment in config["experiments"].values():
        if not experiment.get("lm"):
            continue
        for key in ("stage1", "stage2"):
            stage = config["stages"].get(experiment.get(key) or "", {})
            for sft in (stage.get("sft"), (stage.get("replay") or {}).get("sft")):
                if sft:
                    targets.add((experiment["lm"], sft))
    for lm, _, task in lm_targets():
        if config["tasks"][task]["kind"] == "qa":
            targets.add((lm, config["tasks"][task]["dataset"]))
    return sorted(targets)


def lm_experiments():
    return [e for e in config["experiments"].values() if e.get("lm")]


def lm_adapter_dirs():
    """Every LM adapter an experiment trains (their train logs feed the loss curves)."""
    dirs = set()
    for experiment in lm_experiments():
        for run in experiment_runs(experiment):
            adapter = run_info(experiment["lm"], run)["adapter"]
            if adapter:
                dirs.add(adapter)
    return sorted(dirs)


def lm_figure_outputs():
    """The figures of plot_lm (as adapterflow.plots.lm.planned_lm_figures plans them): bars
    per LM task, the category heatmap and the loss curves; none without an LM experiment.
    """
    if not lm_experiments():
        return []
    tasks = sorted({task for _, _, task in lm_targets()})
    bases = [f"{task}_bars" for task in tasks] + ["categories", "loss_curves"]
    return [
        f"results/figures/lm/{base}.{ext}" for base in bases for ext in ("png", "svg")
    ]


def lm_eval_outputs(suffix):
    return [f"results/eval/{lm}/{run}/{task}{suffix}" for lm, run, task in lm_targets()]


def lm_outputs():
    """Targets of the default target for the causal-LM track: every SFT set used and the
    figures (the evaluations are in all_outputs)."""
    return [sft_dir(lm, sft) for lm, sft in sft_targets()] + lm_figure_outputs()
