"""Hub models (config block models, a path that is a hub id) as local snapshots.

download_model: a hub model once into results/models/{model}/ with manifest.json (repo id,
revision, resolved commit, sha256 of every file). A localrule: it runs where Snakemake runs
(a cluster's login node), and every job that loads the model reads the snapshot
(model_inputs and model_block in rules/common.smk), so compute nodes never need the network.
"""


localrules:
    download_model,


rule download_model:
    output:
        directory("results/models/{model}"),
    log:
        "results/logs/download_model/{model}.log",
    wildcard_constraints:
        model="|".join(re.escape(model) for model in HUB_MODELS) or "$^",
    conda:
        "../envs/cpu.yaml"
    params:
        # The block as written (hub id, revision): a new revision downloads again.
        model=lambda wc: sorted_block(config["models"][wc.model]),
        library=library_code("download_model.py"),
    script:
        "../scripts/download_model.py"
