rule tokenize_triplets:
    input:
        unpack(lambda wc: model_inputs(wc.model)),
        triplets="results/triplets/{triplets}.jsonl",
    output:
        directory("results/tokenized/{model}/{triplets}"),
    log:
        "results/logs/tokenize_triplets/{model}/{triplets}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        model=lambda wc: model_block(wc.model),
        max_length=tokenize_max_length,
        library=library_code("tokenize_triplets.py"),
    script:
        "../scripts/tokenize_triplets.py"


rule train_adapter:
    input:
        unpack(train_inputs),
    output:
        directory("results/adapters/{model}/{stages}/seed{seed}"),
    log:
        "results/logs/train_adapter/{model}/{stages}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_adapter/{model}/{stages}/seed{seed}.tsv"
    # Trainings are the long chain (stage 1 -> stage 2): started ahead of the evaluation jobs,
    # the last stage 2 does not end up running alone while the other cores idle.
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
        stage=lambda wc: stage_block(wc.stages),
        model=lambda wc: model_block(wc.model),
        seed=lambda wc: int(wc.seed),
        # Outside the output: Snakemake deletes an incomplete job's outputs before a rerun.
        checkpoint_dir=lambda wc: f"results/checkpoints/{wc.model}/{wc.stages}/seed{wc.seed}",
        # The adapterflow modules the script imports (rules/common.smk): a code change reruns.
        library=library_code("train_adapter.py"),
    script:
        "../scripts/train_adapter.py"
