"""Generated data (config blocks lms, chunks, niah, qa, curated, exports and ruler tasks).

convert_llm: an LM once as a plain Hugging Face directory, results/lms/{lm}.
chunk_corpus: a prepared corpus in chunks, results/chunks/{chunks}.
generate_niah: a NIAH set, results/generated/niah/{niah}.jsonl.
generate_qa: a QA set from templates or an LM, results/generated/qa/{qa}/.
dedup_cluster_split: QA sets pooled, deduplicated, clustered, split: results/curated/{name}/.
export_dataset: a curated set, its chunks and corpus as datasets: results/export/{export}/.
plot_ruler_heatmap: a RULER evaluation (rules/lm.smk) as a heatmap, results/figures/ruler/.
"""


include: "generate_common.smk"


localrules:
    plot_ruler_heatmap,


rule convert_llm:
    output:
        directory("results/lms/{lm}"),
    log:
        "results/logs/convert_llm/{lm}.log",
    benchmark:
        "results/benchmarks/convert_llm/{lm}.tsv"
    wildcard_constraints:
        lm=names_pattern(LMS),
    # A hub model is a download: compute nodes often have no internet.
    localrule: any(is_download(block["path"]) for block in config["lms"].values())
    conda:
        "../envs/cpu.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        # What the conversion reads: LoRA settings of the block do not convert again.
        llm=lambda wc: {key: config["lms"][wc.lm][key] for key in ("dtype", "path")},
        library=library_code("convert_llm.py"),
    script:
        "../scripts/convert_llm.py"


rule chunk_corpus:
    input:
        unpack(chunk_inputs),
    output:
        directory("results/chunks/{chunks}"),
    log:
        "results/logs/chunk_corpus/{chunks}.log",
    benchmark:
        "results/benchmarks/chunk_corpus/{chunks}.tsv"
    wildcard_constraints:
        chunks=names_pattern(CHUNK_SETS),
    conda:
        "../envs/cpu.yaml"
    params:
        chunking=lambda wc: chunking_params(wc.chunks),
        library=library_code("chunk_corpus.py"),
    script:
        "../scripts/chunk_corpus.py"


rule generate_niah:
    input:
        unpack(niah_inputs),
    output:
        jsonl="results/generated/niah/{niah}.jsonl",
        manifest="results/generated/niah/{niah}.manifest.json",
    log:
        "results/logs/generate_niah/{niah}.log",
    benchmark:
        "results/benchmarks/generate_niah/{niah}.tsv"
    wildcard_constraints:
        niah=names_pattern(NIAH_SETS),
    conda:
        "../envs/cpu.yaml"
    params:
        niah=lambda wc: niah_params(wc.niah),
        tokenizer=lambda wc: tokenizer_reference(config["niah"][wc.niah]["tokenizer"]),
        library=library_code("generate_niah.py"),
    script:
        "../scripts/generate_niah.py"


rule generate_qa:
    input:
        unpack(qa_inputs),
    output:
        directory("results/generated/qa/{qa}"),
    log:
        "results/logs/generate_qa/{qa}.log",
    benchmark:
        "results/benchmarks/generate_qa/{qa}.tsv"
    wildcard_constraints:
        qa=names_pattern(QA_SETS),
    conda:
        "../envs/cpu.yaml"
    # An LM writes on CPU threads; templates are instant.
    threads: lambda wc: 4 if uses_lm(wc) else 1
    resources:
        mem_mb=lambda wc, attempt: (8000 if uses_lm(wc) else 2000) * attempt,
        runtime=lambda wc, attempt: (240 if uses_lm(wc) else 10) * attempt,
    params:
        qa=lambda wc: qa_params(wc.qa),
        name=lambda wc: wc.qa,
        library=library_code("generate_qa.py"),
    script:
        "../scripts/generate_qa.py"


rule dedup_cluster_split:
    input:
        unpack(lambda wc: model_inputs(config["curated"][wc.curated]["model"])),
        qa=curated_inputs,
    output:
        directory("results/curated/{curated}"),
    log:
        "results/logs/dedup_cluster_split/{curated}.log",
    benchmark:
        "results/benchmarks/dedup_cluster_split/{curated}.tsv"
    wildcard_constraints:
        curated=names_pattern(CURATED_SETS),
    conda:
        "../envs/cpu.yaml"
    threads: 2
    params:
        model=lambda wc: model_block(config["curated"][wc.curated]["model"]),
        settings=lambda wc: curated_settings(wc.curated),
        library=library_code("dedup_cluster_split.py"),
    script:
        "../scripts/dedup_cluster_split.py"


rule export_dataset:
    input:
        unpack(export_inputs),
    output:
        directory("results/export/{export}"),
    log:
        "results/logs/export_dataset/{export}.log",
    benchmark:
        "results/benchmarks/export_dataset/{export}.tsv"
    wildcard_constraints:
        export=names_pattern(EXPORTS),
    # A push uploads to the Hub: it runs on the submit host, as downloads do.
    localrule: any(block["push"] for block in config["exports"].values())
    conda:
        "../envs/cpu.yaml"
    params:
        export=lambda wc: export_params(wc.export),
        library=library_code("export_dataset.py"),
    script:
        "../scripts/export_dataset.py"


rule plot_ruler_heatmap:
    input:
        details="results/eval/{lm}/{run}/{task}.details.csv",
    output:
        png=report(
            "results/figures/ruler/{lm}/{run}/{task}.png",
            caption="../report/figures_ruler.rst",
            category="Figures",
            subcategory="Long context",
        ),
        svg="results/figures/ruler/{lm}/{run}/{task}.svg",
    log:
        "results/logs/plot_ruler_heatmap/{lm}/{run}/{task}.log",
    wildcard_constraints:
        lm=names_pattern(LMS),
        task=names_pattern(RULER_TASKS),
    conda:
        "../envs/cpu.yaml"
    params:
        label=lambda wc: f"{wc.lm} {wc.run} · {wc.task}",
        library=library_code("plot_ruler_heatmap.py"),
    script:
        "../scripts/plot_ruler_heatmap.py"
