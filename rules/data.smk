localrules:
    fetch_raw,


rule fetch_raw:
    output:
        directory("results/raw/{dataset}"),
    log:
        "results/logs/fetch_raw/{dataset}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        source=lambda wc: dataset_block(wc.dataset, "source"),
    script:
        "../scripts/fetch_raw.py"


rule prepare_dataset:
    input:
        "results/raw/{dataset}",
    output:
        directory("results/clean/{dataset}"),
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_dataset/{dataset}.tsv"
    conda:
        "../envs/cpu.yaml"
    params:
        prepare=lambda wc: dataset_block(wc.dataset, "prepare"),
    script:
        "../scripts/prepare_dataset.py"
