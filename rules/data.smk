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
        library=library_code("fetch_raw.py"),
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
        library=library_code("prepare_dataset.py"),
    script:
        "../scripts/prepare_dataset.py"
