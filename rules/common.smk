"""Helpers for rules/*.smk (config validation, param lookups); this file defines no rules."""

from adapterflow.config import load_schema, validate_config

validate_config(
    config,
    load_schema(workflow.source_path("../schemas/config.schema.yaml")),
    source=", ".join(map(str, workflow.overwrite_configfiles)) or "config.yaml",
)

DATASETS = sorted(config["datasets"])


def sorted_block(value):
    """A deep copy with sorted keys: params are compared as written, so key order from YAML
    must not look like a change and rerun jobs."""
    if isinstance(value, dict):
        return {key: sorted_block(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_block(item) for item in value]
    return value


def dataset_block(dataset, key):
    """One block of a dataset's config, as a param: editing it reruns that dataset's jobs."""
    return sorted_block(config["datasets"][dataset][key])


def all_outputs():
    """Targets of the default target: every configured dataset, fetched and prepared."""
    return expand("results/clean/{dataset}", dataset=DATASETS)
