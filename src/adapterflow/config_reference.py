"""The config reference (``docs/config-reference.md``) rendered from the config schema, so the
schema stays the one place where keys, types, defaults, ranges and their meaning are written.

Each top-level block becomes a section with one table ``| key | type | default | meaning |``:
``$ref`` definitions are resolved, nested objects are flattened to dotted keys (``lora.r``),
and ``if``/``then`` branches (source kinds, prepare formats, QA engines) get sub-tables of
their own ("When ``source.kind`` is ``url``"). The output depends on the schema alone.

Example:
    >>> from adapterflow.config_reference import render_reference
    >>> schema = {"type": "object", "properties": {"train": {
    ...     "description": "Training settings.", "type": "object", "properties": {
    ...         "steps": {"type": "integer", "minimum": 1, "default": 100,
    ...                   "description": "optimizer steps"}}}}}
    >>> text = render_reference(schema)
    >>> print(text[text.index("## `train`"):].strip())
    ## `train`
    <BLANKLINE>
    Training settings.
    <BLANKLINE>
    | key | type | default | meaning |
    |---|---|---|---|
    | `steps` | integer, ≥ 1 | `100` | optimizer steps |

``python -m adapterflow.config_reference [--check] [OUT]`` writes the reference (default
``docs/config-reference.md``), or with ``--check`` exits 1 when the file is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterflow.config import SCHEMA_PATH, load_schema

#: The reference the workflow ships, next to the schema it is made from.
REFERENCE_PATH = SCHEMA_PATH.parents[1] / "docs" / "config-reference.md"
#: How the schema is named in the generated text (a path relative to the repository).
SCHEMA_LABEL = "schemas/config.schema.yaml"
COMMAND = "python -m adapterflow.config_reference"

_HEADER = """\
# Config reference

Generated from `{source}` by `{command}`;
do not edit by hand: edit the schema's `description`s and regenerate (a test fails when the
two drift apart).

{description}

Unknown keys are errors, never silently unused: every block is closed (a near miss gets a
"did you mean" hint), and the options of pairs and triplet strategies are checked against the
ones each strategy reads, all before any job runs. In the tables, *default* is the value filled
in when the key is absent, **required** keys must be given, and "—" marks an optional key
without a default (its meaning says what leaving it out does).
"""


# --- schema walking ---------------------------------------------------------------------------


@dataclass
class _Row:
    key: str
    type: str
    default: str
    meaning: str


@dataclass
class _Table:
    """One heading's table: its rows, plus the ``if``/``then`` branches found beneath it."""

    heading: str
    intro: list[str] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list)
    branches: list[_Table] = field(default_factory=list)


class _Renderer:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        #: Definitions shown as a named type (``name``) and listed once in the Names section.
        self.names: dict[str, Mapping[str, Any]] = {}

    # $ref ------------------------------------------------------------------------------------

    def resolve(self, node: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
        """``node`` with its ``$ref`` followed (local keys win), and the definition's name."""
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node, None
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        target: Any = self.schema
        for part in ref[2:].split("/"):
            target = target[part]
        resolved, _ = self.resolve(target)
        merged = {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        return merged, ref.rsplit("/", 1)[-1]

    def _is_name(self, node: Mapping[str, Any]) -> bool:
        return node.get("type") == "string" and "pattern" in node and "properties" not in node

    # type column ----------------------------------------------------------------------------

    def type_text(self, raw: Mapping[str, Any]) -> str:
        node, ref = self.resolve(raw)
        if ref is not None and self._is_name(node):
            self.names.setdefault(ref, node)
            return f"[{ref}](#names)"
        if "const" in node:
            return _code(node["const"])
        if "enum" in node:
            return "one of " + ", ".join(_code(value) for value in node["enum"])
        if "anyOf" in node or "oneOf" in node:
            return " or ".join(self.type_text(sub) for sub in node.get("anyOf", node.get("oneOf")))
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        words = [self._type_word(t, node) for t in types] or ["any"]
        return ", ".join([" or ".join(words), *_constraints(node)])

    def _type_word(self, kind: str, node: Mapping[str, Any]) -> str:
        if kind == "array" and isinstance(node.get("items"), Mapping):
            item = self.type_text(node["items"])
            return f"list of ({item})" if "," in item or " or " in item else f"list of {item}"
        if kind == "object" and "properties" not in node:
            values = node.get("additionalProperties")
            if isinstance(values, Mapping):
                keys = node.get("propertyNames")
                key = self.type_text(keys) if isinstance(keys, Mapping) else "string"
                value = self.type_text(values)
                value = f"({value})" if "," in value or " or " in value else value
                return f"map of {key} → {value}"
        return kind

    # rows -----------------------------------------------------------------------------------

    def fill(
        self,
        table: _Table,
        node: Mapping[str, Any],
        prefix: str,
        *,
        base: Mapping[str, Any] | None = None,
        skip: str | None = None,
    ) -> None:
        """Rows for ``node``'s properties (``prefix`` + key), then sub-tables of its branches.

        ``base`` is the object a ``then`` branch refines: a branch property that only narrows
        a base property (no type, default or description of its own) gets no row of its own.
        """
        node, _ = self.resolve(node)
        required = set(node.get("required", ()))
        base_props = (base or {}).get("properties", {})
        for key, raw in node.get("properties", {}).items():
            if key == skip:
                continue
            sub, _ = self.resolve(raw)
            inherited = key in base_props
            own = {"type", "enum", "const", "default", "description", "$ref"} & set(raw)
            if not inherited or own:
                table.rows.append(self.row(prefix + key, raw, key in required))
            if "properties" in sub or "allOf" in sub:
                sub_base = self.resolve(base_props[key])[0] if inherited else None
                self.fill(table, sub, f"{prefix}{key}.", base=sub_base)
        for part in node.get("allOf", ()):
            if "if" in part and "then" in part:
                table.branches.append(self.branch(node, part, prefix))

    def row(self, key: str, raw: Mapping[str, Any], required: bool) -> _Row:
        node, _ = self.resolve(raw)
        if "default" in node:
            default = _code(node["default"])
        else:
            default = "**required**" if required else "—"
        return _Row(f"`{key}`", self.type_text(raw), default, _cell(node.get("description", "")))

    def branch(self, node: Mapping[str, Any], part: Mapping[str, Any], prefix: str) -> _Table:
        key, values = _condition(part["if"])
        if values is None:
            table = _Table(f"When `{prefix}{key}` is given")
        else:
            shown = ", ".join(_code(v) for v in values[:-1])
            shown = f"{shown} or {_code(values[-1])}" if shown else _code(values[-1])
            table = _Table(f"When `{prefix}{key}` is {shown}")
        then, _ = self.resolve(part["then"])
        if then.get("description"):
            table.intro.append(_prose(then["description"]))
        discriminator = then.get("properties", {}).get(key, {})
        skip = key if set(discriminator) <= {"const", "enum"} else None
        self.fill(table, then, prefix, base=node, skip=skip)
        return table


def _condition(condition: Mapping[str, Any]) -> tuple[str, list[Any] | None]:
    """``if: {properties: {kind: {const: url}}}`` -> ``("kind", ["url"])`` (or an ``enum``);
    ``if: {required: [sft]}`` -> ``("sft", None)`` (the key is given)."""
    if set(condition) == {"required"} and len(condition["required"]) == 1:
        return condition["required"][0], None
    props = condition.get("properties", {})
    if len(props) != 1:
        raise ValueError(f"unsupported if: {dict(condition)!r} (one property with const/enum)")
    ((key, test),) = props.items()
    if "const" in test:
        return key, [test["const"]]
    if "enum" in test:
        return key, list(test["enum"])
    raise ValueError(f"unsupported if: {dict(condition)!r} (one property with const/enum)")


# --- text -------------------------------------------------------------------------------------


def _flow(value: Any) -> str:
    """``value`` as YAML flow text: ``[query, key]``, ``{}``, ``null``, ``true``, ``0.0002``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return str(value)


def _code(value: Any) -> str:
    return "`" + _flow(value).replace("|", "\\|") + "`"


def _constraints(node: Mapping[str, Any]) -> list[str]:
    out = []
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            out.append(f"{sign} {_flow(node[key])}")
    if node.get("minLength") == 1:
        out.append("non-empty")
    elif "minLength" in node:
        out.append(f"≥ {node['minLength']} characters")
    if "pattern" in node:
        out.append(f"matching {_code(node['pattern'])}")
    low, high = node.get("minItems"), node.get("maxItems")
    if low is not None and low == high:
        out.append(f"{low} items")
    else:
        if low is not None:
            out.append(f"≥ {low} item{'s' if low != 1 else ''}")
        if high is not None:
            out.append(f"≤ {high} items")
    if node.get("uniqueItems"):
        out.append("unique")
    return out


def _prose(text: str) -> str:
    """One line of running text; ``<...>`` outside code spans is escaped for Markdown."""
    parts = " ".join(str(text).split()).split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _cell(text: str) -> str:
    return _prose(text).replace("|", "\\|")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: ``"`datasets.<name>`"`` -> ``datasetsname``."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def _table_text(table: _Table, level: int) -> list[str]:
    lines = ["#" * level + " " + table.heading, ""]
    for paragraph in table.intro:
        lines += [paragraph, ""]
    if table.rows:
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| {r.key} | {r.type} | {r.default} | {r.meaning} |" for r in table.rows]
        lines.append("")
    for branch in table.branches:
        lines += _table_text(branch, level + 1)
    return lines


# --- public API -------------------------------------------------------------------------------


def render_reference(schema: Mapping[str, Any], source: str = SCHEMA_LABEL) -> str:
    """The Markdown reference of ``schema`` (a config schema as :func:`load_schema` reads it).

    Sections follow the schema's top-level ``properties`` in order: a map of named blocks
    (``additionalProperties`` with a schema) is headed ``name.<name>``, an object with
    ``properties`` by its own name.
    """
    renderer = _Renderer(schema)
    top = _Table("Top level")
    sections: list[_Table] = []
    required = set(schema.get("required", ()))
    for key, raw in schema.get("properties", {}).items():
        node, _ = renderer.resolve(raw)
        values = node.get("additionalProperties")
        if "properties" in node:
            heading, body = f"`{key}`", node
        elif isinstance(values, Mapping):
            heading, body = f"`{key}.<name>`", values
        else:
            top.rows.append(renderer.row(key, raw, key in required))
            continue
        row = renderer.row(key, raw, key in required)
        if body is values:
            keys = node.get("propertyNames")
            named = renderer.type_text(keys) if isinstance(keys, Mapping) else "string"
            row.type = f"map of {named} → object"
        row.key = f"[`{key}`](#{_anchor(heading)})"
        top.rows.append(row)
        section = _Table(heading)
        if node.get("description"):
            section.intro.append(_prose(node["description"]))
        renderer.fill(section, body, "")
        sections.append(section)

    header = _HEADER.format(
        source=source, command=COMMAND, description=_prose(schema.get("description", ""))
    )
    lines = [header.rstrip("\n"), ""]
    lines += _table_text(top, 2)
    for section in sections:
        lines += _table_text(section, 2)
    if renderer.names:
        lines += ["## Names", "", "| name | pattern | meaning |", "|---|---|---|"]
        for name, node in renderer.names.items():
            lines.append(
                f"| `{name}` | {_code(node['pattern'])} | {_cell(node.get('description', ''))} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def undescribed(schema: Mapping[str, Any]) -> list[str]:
    """Schema paths of properties without a ``description`` (their own or their ``$ref``'s).

    A property of an ``if``/``then`` branch that only narrows the property it refines (no
    type, default or description of its own) needs none.

    Example:
        >>> undescribed({"properties": {"a": {"type": "integer"}, "b": {"description": "x"}}})
        ['properties.a']
    """
    renderer = _Renderer(schema)
    missing: list[str] = []

    def walk(node: Any, path: str, base: Mapping[str, Any] | None = None) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]", base)
            return
        if not isinstance(node, Mapping):
            return
        base_props = (base or {}).get("properties", {})
        for key, raw in (node.get("properties") or {}).items():
            if not isinstance(raw, Mapping):
                continue
            resolved, _ = renderer.resolve(raw)
            narrowing = key in base_props and not (
                {"type", "default", "description", "$ref"} & set(raw)
            )
            if not resolved.get("description") and not narrowing:
                missing.append(f"{path}properties.{key}")
            walk(raw, f"{path}properties.{key}.", base_props.get(key))
        for i, part in enumerate(node.get("allOf") or ()):
            if isinstance(part, Mapping) and "then" in part:
                walk(part["then"], f"{path}allOf[{i}].then.", node)
        for key in ("definitions", "items", "additionalProperties"):
            if isinstance(node.get(key), Mapping):
                if key == "definitions":
                    for name, sub in node[key].items():
                        walk(sub, f"{path}definitions.{name}.")
                else:
                    walk(node[key], f"{path}{key}.")

    walk(schema, "")
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    """Write the config reference, or check that it is up to date."""
    parser = argparse.ArgumentParser(prog="python -m adapterflow.config_reference")
    parser.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=REFERENCE_PATH,
        help="default: docs/config-reference.md",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if OUT differs from what the schema gives"
    )
    parser.add_argument("--schema", type=Path, default=None, help=f"default: {SCHEMA_LABEL}")
    args = parser.parse_args(argv)
    text = render_reference(load_schema(args.schema))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(
                f"{args.out}: out of date with {SCHEMA_LABEL}; regenerate it with `{COMMAND}`",
                file=sys.stderr,
            )
            return 1
        return 0
    from adapterflow.io import atomic_file

    with atomic_file(args.out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
