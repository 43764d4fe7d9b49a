from snakemake.utils import min_version

from adapterflow.config import check_yaml

min_version("9.0")


# A config given with --configfile (config.yaml or a preset under configs/) is complete on
# its own; loading config.yaml too would deep-merge the default datasets into a preset.
if not workflow.overwrite_configfiles:
    # Snakemake's reader says only "not valid YAML"; ours names the line and column.
    check_yaml("config.yaml")

    configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/triplets.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/report.smk"
include: "rules/generate.smk"
include: "rules/lm.smk"


wildcard_constraints:
    dataset=names_pattern(DATASETS),
    model=names_pattern(MODELS),
    task=names_pattern(TASKS),
    run="[^/]+",
    stages="[^/]+",
    seed=r"\d+",
    pairs=names_pattern(config["pairs"]),
    triplets=names_pattern(config["triplets"]),


rule all:
    default_target: True
    input:
        all_outputs(),
        generation_outputs(),
        lm_outputs(),


onsuccess:
    print_result_locations()
