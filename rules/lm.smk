"""The causal-LM track (config blocks lms, sft, stages with sft, experiments with lm).

build_sft: chat records tokenized with an LM's template, labels on assistant tokens only,
    results/sft/{lm}/{sft}/ (train, mirror, rephrased, held_out splits + records.jsonl).
train_lm_adapter: a LoRA adapter of the LM with TRL's SFTTrainer, stage 1 or stage 2,
    results/lm_adapters/{lm}/{stages}/seed{seed}.
evaluate_lm: an LM (base or a run's adapter) on a ruler task (NIAH, RULER string match) or a
    qa task (an SFT split: keyword, semantic, hybrid), results/eval/{lm}/{run}/{task}.json.
plot_lm: scores per run group, category x run heatmap, train/mirror/rephrased loss curves,
    results/figures/lm/.
"""


include: "lm_common.smk"


localrules:
    plot_lm,


rule build_sft:
    input:
        unpack(sft_inputs),
    output:
        directory("results/sft/{lm}/{sft}"),
    log:
        "results/logs/build_sft/{lm}/{sft}.log",
    wildcard_constraints:
        lm=names_pattern(LMS),
        sft=names_pattern(SFT_SETS),
    conda:
        "../envs/cpu.yaml"
    params:
        sft=lambda wc: sorted_block(config["sft"][wc.sft]),
        name=lambda wc: wc.sft,
        library=library_code("build_sft.py"),
    script:
        "../scripts/build_sft.py"


rule train_lm_adapter:
    input:
        unpack(lm_train_inputs),
    output:
        directory("results/lm_adapters/{lm}/{stages}/seed{seed}"),
    log:
        "results/logs/train_lm_adapter/{lm}/{stages}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_lm_adapter/{lm}/{stages}/seed{seed}.tsv"
    wildcard_constraints:
        lm=names_pattern(LMS),
    # The long chain (stage 1 -> stage 2) starts ahead of the evaluations, as train_adapter.
    priority: 10
    conda:
        "../envs/gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        # The whole stage block: any change reruns this stage and what follows, nothing else.
        stage=lambda wc: sorted_block(lm_stage(wc.stages)),
        lm=lambda wc: lm_block(wc.lm),
        seed=lambda wc: int(wc.seed),
        # Outside the output: Snakemake deletes an incomplete job's outputs before a rerun.
        checkpoint_dir=lambda wc: f"results/checkpoints/{wc.lm}/{wc.stages}/seed{wc.seed}",
        library=library_code("train_lm_adapter.py"),
    script:
        "../scripts/train_lm_adapter.py"


rule evaluate_lm:
    input:
        unpack(lm_eval_inputs),
    output:
        json="results/eval/{lm}/{run}/{task}.json",
        details="results/eval/{lm}/{run}/{task}.details.csv",
    log:
        "results/logs/evaluate_lm/{lm}/{run}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate_lm/{lm}/{run}/{task}.tsv"
    wildcard_constraints:
        lm=names_pattern(LMS),
        task=names_pattern(LM_TASKS),
    conda:
        "../envs/gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    params:
        task=lambda wc: lm_task_block(wc.task),
        model=lambda wc: lm_eval_model(wc.lm),
        run=lambda wc: run_info(wc.lm, wc.run),
        evaluation=lm_evaluation_block(),
        encoder=lambda wc: (
            model_block(scoring_model(wc.task)) if scoring_model(wc.task) else None
        ),
        # Outside the outputs: verdicts survive a failed job and a rerun asks nothing again.
        judge_cache=lambda wc: f"results/cache/judge/{wc.lm}/{wc.run}/{wc.task}.jsonl",
        library=library_code("evaluate_lm.py"),
    script:
        "../scripts/evaluate_lm.py"


rule plot_lm:
    input:
        metrics="results/tables/metrics.csv",
        evals=lm_eval_outputs(".json"),
        logs=lm_adapter_dirs(),
    output:
        report(
            lm_figure_outputs(),
            caption="../report/figures_lm.rst",
            category="Figures",
            subcategory="Causal LM",
        ),
    log:
        "results/logs/plot_lm/plot_lm.log",
    conda:
        "../envs/cpu.yaml"
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
        library=library_code("plot_lm.py"),
    script:
        "../scripts/plot_lm.py"
