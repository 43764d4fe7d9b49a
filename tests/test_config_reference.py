"""docs/config-reference.md is generated from schemas/config.schema.yaml and must not drift from
it; every schema property carries the description the reference shows."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapterflow.config import load_schema
from adapterflow.config_reference import COMMAND, main, render_reference, undescribed

from conftest import REPO

REFERENCE = REPO / "docs" / "config-reference.md"

#: The JSON-schema keywords the config schema uses. Any other key is almost always a YAML slip:
#: in a flow mapping ``{description: a, b}`` the text after the comma becomes a key of its own.
KEYWORDS = {
    "$schema", "$ref", "title", "description", "type", "default", "enum", "const",
    "properties", "additionalProperties", "required", "propertyNames", "minProperties",
    "definitions", "allOf", "anyOf", "if", "then", "items", "minItems", "maxItems",
    "uniqueItems", "minLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum",
}  # fmt: skip


def test_the_committed_reference_is_what_the_schema_gives():
    committed = REFERENCE.read_text(encoding="utf-8")
    assert committed == render_reference(load_schema()), (
        f"docs/config-reference.md is out of date with the schema: run `{COMMAND}`"
    )


def test_a_new_schema_key_without_regenerating_is_caught(tmp_path: Path, capsys):
    schema = load_schema()
    assert main(["--check", str(REFERENCE)]) == 0
    schema["definitions"]["stage"]["properties"]["new_knob"] = {
        "type": "integer",
        "default": 3,
        "description": "a knob someone added",
    }
    changed = render_reference(schema)
    assert "| `new_knob` | integer | `3` | a knob someone added |" in changed
    assert changed != REFERENCE.read_text(encoding="utf-8")

    stale = tmp_path / "reference.md"
    stale.write_text(changed, encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    message = capsys.readouterr().err.strip().splitlines()
    assert len(message) == 1 and "out of date" in message[0] and COMMAND in message[0]


def test_the_command_writes_and_checks(tmp_path: Path):
    out = tmp_path / "docs" / "reference.md"
    run = [sys.executable, "-m", "adapterflow.config_reference"]
    subprocess.run([*run, str(out)], check=True, capture_output=True, cwd=tmp_path)
    assert out.read_text(encoding="utf-8") == REFERENCE.read_text(encoding="utf-8")
    check = subprocess.run([*run, "--check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    out.write_text("# hand-edited\n", encoding="utf-8")
    check = subprocess.run([*run, "--check", str(out)], capture_output=True, text=True)
    assert check.returncode == 1 and len(check.stderr.strip().splitlines()) == 1


def test_every_schema_property_has_a_description():
    assert undescribed(load_schema()) == []


def test_the_schema_uses_only_json_schema_keywords():
    stray: list[str] = []

    def walk(node: Any, path: str, names: bool = False) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")
        elif isinstance(node, dict):
            for key, value in node.items():
                if not names and key not in KEYWORDS:
                    stray.append(f"{path}.{key}")
                walk(value, f"{path}.{key}", names=key in ("properties", "definitions"))

    walk(load_schema(), "")
    assert stray == [], "unquoted ', ' in a flow-mapping description? " + ", ".join(stray)


def test_the_reference_covers_every_block_and_the_ruler_task_kind():
    text = REFERENCE.read_text(encoding="utf-8")
    for block in ("datasets", "models", "tasks", "pairs", "triplets", "stages", "experiments"):
        assert f"## `{block}.<name>`" in text
    for block in ("lms", "chunks", "niah", "qa", "curated", "exports"):
        assert f"## `{block}.<name>`" in text
    assert "## `evaluation`" in text
    assert "`ruler`" in text and "| `prompt_format` |" in text
    assert "### When `source.kind` is `url`" in text
    assert "### When `engine` is `llm`" in text
    assert "| `prepare.options.max_chars` |" in text
    # docs/own-data.md links here
    assert "\n## `datasets.<name>`\n" in text


# --- the renderer on a tiny schema ------------------------------------------------------------

TINY: dict[str, Any] = {
    "description": "A tiny config.",
    "type": "object",
    "required": ["jobs"],
    "properties": {
        "jobs": {
            "description": "Jobs by name.",
            "type": "object",
            "propertyNames": {"$ref": "#/definitions/name"},
            "additionalProperties": {"$ref": "#/definitions/job"},
        },
        "global": {
            "description": "Shared settings.",
            "type": "object",
            "default": {},
            "properties": {
                "level": {"enum": ["low", "high"], "default": "low", "description": "how loud"},
            },
        },
    },
    "definitions": {
        "name": {"type": "string", "pattern": "^[a-z]+$", "description": "lower-case letters"},
        "job": {
            "type": "object",
            "required": ["source"],
            "properties": {
                "source": {"$ref": "#/definitions/source", "description": "where it reads"},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": ["a", "b"],
                    "description": "labels",
                },
                "opt": {
                    "type": "object",
                    "default": {},
                    "description": "options",
                    "properties": {
                        "rate": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": 1,
                            "default": 0.5,
                            "description": "a share | of it",
                        },
                    },
                },
            },
        },
        "source": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": ["file", "web"], "description": "file or web"}},
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": "web"}}},
                    "then": {
                        "description": "Fetched over <http>.",
                        "required": ["kind", "url"],
                        "properties": {
                            "kind": {"const": "web"},
                            "url": {"type": "string", "pattern": "^https?://", "description": "u"},
                            "split": {"$ref": "#/definitions/name", "description": "the split"},
                        },
                    },
                }
            ],
        },
    },
}


@pytest.fixture
def tiny() -> str:
    return render_reference(copy.deepcopy(TINY), source="tiny.yaml")


def table(text: str, heading: str) -> list[str]:
    """The table rows under ``heading`` (up to the next heading)."""
    section = text.split(heading + "\n", 1)[1].split("\n#", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_tiny_top_level_and_header(tiny: str):
    assert tiny.startswith("# Config reference\n\nGenerated from `tiny.yaml` by")
    assert "A tiny config." in tiny
    assert "| [`jobs`](#jobsname) | map of [name](#names) → object | **required** |" in tiny
    assert "| [`global`](#global) | object | `{}` | Shared settings. |" in tiny
    assert tiny.index("## `jobs.<name>`") < tiny.index("## `global`") < tiny.index("## Names")


def test_tiny_nested_objects_refs_enums_and_defaults(tiny: str):
    assert table(tiny, "## `jobs.<name>`") == [
        "| `source` | object | **required** | where it reads |",
        "| `source.kind` | one of `file`, `web` | **required** | file or web |",
        "| `tags` | list of string | `[a, b]` | labels |",
        "| `opt` | object | `{}` | options |",
        "| `opt.rate` | number, > 0, ≤ 1 | `0.5` | a share \\| of it |",
    ]
    assert table(tiny, "## `global`") == ["| `level` | one of `low`, `high` | `low` | how loud |"]


def test_tiny_if_then_branch_is_its_own_table(tiny: str):
    heading = "### When `source.kind` is `web`"
    assert heading in tiny
    assert "Fetched over &lt;http>." in tiny
    assert table(tiny, heading) == [
        "| `source.url` | string, matching `^https?://` | **required** | u |",
        "| `source.split` | [name](#names) | — | the split |",
    ]


def test_tiny_names_section_and_determinism(tiny: str):
    assert table(tiny, "## Names") == ["| `name` | `^[a-z]+$` | lower-case letters |"]
    assert render_reference(copy.deepcopy(TINY), source="tiny.yaml") == tiny
    assert tiny.endswith("|\n") and not tiny.endswith("\n\n")


def test_undescribed_names_what_lacks_a_description():
    schema = copy.deepcopy(TINY)
    assert undescribed(schema) == []
    del schema["definitions"]["source"]["allOf"][0]["then"]["properties"]["url"]["description"]
    del schema["definitions"]["job"]["properties"]["opt"]["properties"]["rate"]["description"]
    assert undescribed(schema) == [
        "definitions.job.properties.opt.properties.rate",
        "definitions.source.allOf[0].then.properties.url",
    ]


def test_unsupported_if_is_refused():
    schema = copy.deepcopy(TINY)
    schema["definitions"]["source"]["allOf"][0]["if"] = {"required": ["url", "kind"]}
    with pytest.raises(ValueError, match="unsupported if"):
        render_reference(schema)
