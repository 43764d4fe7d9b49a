rule embed_corpus:
    input:
        unpack(embed_inputs),
    output:
        "results/embeddings/{model}/{run}/{dataset}.npz",
    log:
        "results/logs/embed_corpus/{model}/{run}/{dataset}.log",
    benchmark:
        "results/benchmarks/embed_corpus/{model}/{run}/{dataset}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        model=lambda wc: model_block(wc.model),
        run=lambda wc: run_info(wc.model, wc.run),
        evaluation=evaluation_block(),
        library=library_code("embed_corpus.py"),
    script:
        "../scripts/embed_corpus.py"


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        json="results/eval/{model}/{run}/{task}.json",
        details="results/eval/{model}/{run}/{task}.details.csv",
    log:
        "results/logs/evaluate/{model}/{run}/{task}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{run}/{task}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        task=lambda wc: task_block(wc.task),
        model=lambda wc: model_block(wc.model),
        run=lambda wc: run_info(wc.model, wc.run),
        evaluation=evaluation_block(),
        library=library_code("evaluate.py"),
    script:
        "../scripts/evaluate.py"
