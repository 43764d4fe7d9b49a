"""Config validation: the JSON schema (with defaults) plus the cross-references a schema
cannot express, reported as one line that names the key path.

Example:
    >>> from adapterflow.config import validate_config
    >>> cfg = {"datasets": {"words": {
    ...     "source": {"kind": "local", "path": "words.tsv"},
    ...     "prepare": {"format": "word_pairs_tsv", "options": {"file": "words.tsv"}}}}}
    >>> validate_config(cfg)["datasets"]["words"]["prepare"]["on_leak"]  # default filled in
    'fail'
    >>> try:
    ...     validate_config({"datasets": {}, "colour": "red"})
    ... except Exception as err:
    ...     print(err)
    config: (top level): Additional properties are not allowed ('colour' was unexpected)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from adapterflow.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    """The config schema (``schemas/config.schema.yaml`` of the workflow by default)."""
    with open(path or SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class: type) -> type:
    """A validator that fills ``default`` values while validating ``properties``.

    Only ``properties`` sets defaults, and sources use ``if/then`` rather than ``oneOf``, so
    defaults come only from the branch that applies.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultingValidator = _with_defaults(jsonschema.Draft7Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern" and error.absolute_path and error.absolute_path[-1] == "url":
        return f"{error.instance!r} is not an http(s) URL"
    return error.message


def validate_config(
    config: MutableMapping[str, Any], schema: dict[str, Any] | None = None, source: str = "config"
) -> MutableMapping[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises :class:`ConfigError` with one line ``source: key.path: problem`` for the most
    relevant schema violation, or for a name that refers to nothing defined.
    """
    validator = _DefaultingValidator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        # best_match may pick a generic if/then error: descend to the deepest cause.
        while error.context:
            error = jsonschema.exceptions.best_match(error.context)
        raise ConfigError(f"{source}: {_key_path(error)}: {_describe(error)}")
    for problem in _reference_problems(config):
        raise ConfigError(f"{source}: {problem}")
    return config


def _reference_problems(config: MutableMapping[str, Any]) -> Iterator[str]:
    models, datasets = config.get("models", {}), config.get("datasets", {})
    tasks = config.get("tasks", {})
    for name, task in tasks.items():
        if task["dataset"] not in datasets:
            yield (
                f"tasks.{name}.dataset: {task['dataset']!r} is not defined under datasets "
                f"(defined: {', '.join(sorted(datasets))})"
            )
    pairs, triplets = config.get("pairs", {}), config.get("triplets", {})
    stages = config.get("stages", {})
    for name, block in pairs.items():
        if block["dataset"] not in datasets:
            yield f"pairs.{name}.dataset: {block['dataset']!r} is not defined under datasets"
    for name, block in triplets.items():
        if block["pairs"] not in pairs:
            yield f"triplets.{name}.pairs: {block['pairs']!r} is not defined under pairs"
        if block["strategy"] == "dense" and block.get("model") not in models:
            yield (
                f"triplets.{name}.model: dense mining needs a model defined under models, "
                f"got {block.get('model')!r}"
            )
        if block.get("corpus") is not None and block["corpus"] not in datasets:
            yield f"triplets.{name}.corpus: {block['corpus']!r} is not defined under datasets"
    for name, block in stages.items():
        if block["triplets"] not in triplets:
            yield f"stages.{name}.triplets: {block['triplets']!r} is not defined under triplets"
    for name, experiment in config.get("experiments", {}).items():
        for key in ("stage1", "stage2"):
            if experiment.get(key) is not None and experiment[key] not in stages:
                yield (
                    f"experiments.{name}.{key}: {experiment[key]!r} is not defined under stages "
                    f"(defined: {', '.join(sorted(stages)) or 'none'})"
                )
        if experiment.get("stage2") is not None and experiment.get("stage1") is None:
            yield f"experiments.{name}.stage2: a stage 2 needs a stage1 to start from"
        if experiment["model"] not in models:
            known = ", ".join(sorted(models)) or "none"
            yield (
                f"experiments.{name}.model: {experiment['model']!r} is not defined under "
                f"models (defined: {known})"
            )
        for index, task in enumerate(experiment.get("evaluate", [])):
            if task not in tasks:
                yield (
                    f"experiments.{name}.evaluate.{index}: {task!r} is not defined under "
                    f"tasks (defined: {', '.join(sorted(tasks)) or 'none'})"
                )


def load_config(path: str | Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file and validate it (errors name the file)."""
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    validate_config(config, schema, source=str(path))
    return config
