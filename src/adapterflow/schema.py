"""The config schema (``schemas/config.schema.yaml``) and the validator that fills its defaults.

Both the config check (:mod:`adapterflow.config`) and the typed settings of each block
(:mod:`adapterflow.settings`) use this one validator, so a default or a range is written once,
in the schema.

Example:
    >>> from adapterflow.schema import DefaultingValidator, load_schema
    >>> block = {}
    >>> schema = {"$ref": "#/definitions/stage", "definitions": load_schema()["definitions"]}
    >>> _ = list(DefaultingValidator(schema).iter_errors(block))
    >>> block["max_steps"], block["lora"]["r"]
    (100, 16)
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    """The config schema (``schemas/config.schema.yaml`` of the workflow by default)."""
    with open(path or SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def with_defaults(validator_class: type) -> type:
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


DefaultingValidator = with_defaults(jsonschema.Draft7Validator)


def key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def describe_error(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern" and error.absolute_path and error.absolute_path[-1] == "url":
        return f"{error.instance!r} is not an http(s) URL"
    if error.validator == "pattern" and list(error.absolute_path)[-1:] == ["device"]:
        return f"{error.instance!r} is not one of auto, cpu, cuda, cuda:N (N = 0, 1, ...), mps"
    if (
        error.validator == "pattern"
        and "propertyNames" in error.absolute_schema_path
        and error.schema.get("description")
    ):
        # A bad name under e.g. stages: say what a name may hold, not only the regex.
        allowed = error.schema["description"]
        return f"{error.instance!r} does not match the names allowed here: {allowed}"
    return error.message + _hint(error)


def _hint(error: jsonschema.ValidationError) -> str:
    """A likely fix for two common slips: a misspelt key, and YAML reading ``1e-4`` as text."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = [key for key in error.instance if key not in known]
        guesses = [
            f"{key!r} -> {match[0]!r}"
            for key in extra
            if (match := difflib.get_close_matches(str(key), known, n=1, cutoff=0.75))
        ]
        if guesses:
            return f" (did you mean {', '.join(guesses)}?)"
    if error.validator == "type" and isinstance(error.instance, str):
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        if "number" in expected or "integer" in expected:
            try:
                float(error.instance)
            except ValueError:
                return ""
            if "e" in error.instance.lower() and "." not in error.instance:
                return " (YAML reads a number like 1e-4 without a dot as text: write 1.0e-4)"
            return " (a number in quotes is text: leave out the quotes)"
    return ""
