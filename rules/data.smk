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
        # A local source's content (rules/common.smk): editing the file re-fetches it.
        content=lambda wc: source_content(wc.dataset),
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
        # Splits that tasks and pairs ask for, checked once the data shows its splits. The
        # function takes `input` so that Snakemake does not track it: editing a task's split
        # must not re-prepare the data.
        required_splits=lambda wc, input: split_users(config, wc.dataset),
        library=library_code("prepare_dataset.py"),
    script:
        "../scripts/prepare_dataset.py"
