"""Question/answer records from YAML facts and YAML templates (the "SleepTrain" approach).

Facts are a list of entities with attributes; templates are question/answer patterns whose
``{placeholders}`` are filled from one entity. From the same pair of files this module makes
three kinds of records, all with a chat ``messages`` list (``role``/``content``):

* :func:`qa_records` — one question and its answer per template × entity × question wording,
  plus one per ``rephrased`` wording (split ``rephrased``: held out from training);
* :func:`conversation_records` — multi-turn conversations about one entity, several templates
  asked one after another;
* :func:`correction_records` — the assistant gives a wrong answer (the asked attribute taken
  from another entity), the user objects, the assistant corrects itself.

Every record also has ``split`` (``"train"``, or ``"rephrased"`` for a ``qa`` record asked in
a ``rephrased`` wording), ``category`` (the template's, ``"conversation"`` for conversations)
and ``keywords``: the values that the (last) assistant answer fills in and its question does
not — what a reply must contain to be right; each item of a list attribute is a keyword of its
own. A conversation's keywords are those of all its answers.

Facts file (``entities`` is required; ``id`` is required and unique; ``type`` is optional and
matched by a template's ``applies_to``; every other key is an attribute — a scalar or a list,
which is written as ``"a, b and c"``)::

    entities:
      - id: velmora
        type: city
        name: Velmora
        country: Ostrand

Templates file (``question`` and ``answer`` are a string or a list of wordings; ``rephrased``,
optional, the same for held-out question wordings: only ever asked as ``qa`` records of split
``rephrased``, never in training, conversations or corrections, so they test whether a fact
was learned rather than a sentence; ``category`` a label for scoring, the ``id`` by default;
``applies_to`` an entity type or a list of them, all entities when absent; ``asked`` the
attributes a wrong answer replaces, by default those of the answer that the question does not
use; ``correction: false`` leaves a template out of corrections; ``system`` and
``correction`` are optional)::

    system: You answer questions about the atlas of Ostrand.
    correction:
      user: That is not right.
      assistant: "I was wrong: {answer}"
    templates:
      - id: city_country
        applies_to: city
        category: geography
        question: ["Which country is {name} in?", "In what country does {name} lie?"]
        rephrased: "Name the country that {name} belongs to."
        answer: "{name} is in {country}."

A placeholder that an applicable entity lacks stops everything with a :class:`DataError`
naming the templates file, the template's line and index, the field and the entity. The same
seed gives the same records.

Example:
    >>> import pathlib, tempfile
    >>> from adapterflow.generate.qa_templates import load_facts, load_templates, qa_records
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "facts.yaml").write_text(
    ...     "entities:\\n  - {id: a, name: Arlo, colour: teal}\\n"
    ...     "  - {id: b, name: Bea, colour: red}\\n")
    >>> _ = (root / "templates.yaml").write_text(
    ...     "templates:\\n  - id: colour\\n    question: What colour does {name} like?\\n"
    ...     "    rephrased: Which colour is the favourite of {name}?\\n"
    ...     "    answer: '{name} likes {colour}.'\\n")
    >>> rows = qa_records(load_facts(root / "facts.yaml"), load_templates(root / "templates.yaml"),
    ...                   shuffle=False)
    >>> for row in rows:
    ...     print(row["split"], row["question"], "->", row["answer"], row["keywords"])
    train What colour does Arlo like? -> Arlo likes teal. ['teal']
    train What colour does Bea like? -> Bea likes red. ['red']
    rephrased Which colour is the favourite of Arlo? -> Arlo likes teal. ['teal']
    rephrased Which colour is the favourite of Bea? -> Bea likes red. ['red']
    >>> rows[0]["messages"][1]
    {'role': 'assistant', 'content': 'Arlo likes teal.'}
    >>> rows[2]["id"], rows[2]["category"]
    ('qa:colour:a:r0', 'colour')
"""

from __future__ import annotations

import logging
import os
import random
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from adapterflow.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

DEFAULT_CORRECTION_USER = "That is not correct."
DEFAULT_CORRECTION_ASSISTANT = "You are right, I made a mistake. {answer}"

_TEMPLATE_KEYS = frozenset(
    {"id", "question", "rephrased", "answer", "category", "applies_to", "asked", "correction"}
)
_TEMPLATES_FILE_KEYS = frozenset({"templates", "system", "correction"})
# Placeholders the correction turns may use besides the entity's attributes.
_CORRECTION_FIELDS = frozenset({"question", "answer", "wrong"})


@dataclass(frozen=True)
class Entity:
    """One entity of a facts file; ``fields`` holds every attribute as text (``id`` and
    ``type`` included, so templates may use them too), ``items`` the items of each list
    attribute as written (the keywords it gives)."""

    id: str
    type: str | None
    fields: dict[str, str]
    line: int | None
    items: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """The entities of one facts file, in file order."""

    path: Path
    entities: tuple[Entity, ...]


@dataclass(frozen=True)
class Template:
    """One question/answer template; ``index`` is 0-based, ``line`` 1-based in its file."""

    index: int
    id: str
    line: int | None
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    applies_to: tuple[str, ...] | None
    asked: tuple[str, ...] | None
    correction: bool
    rephrased: tuple[str, ...] = ()
    category: str | None = None

    @property
    def label(self) -> str:
        """The record ``category``: the template's own, else its id."""
        return self.category or self.id


@dataclass(frozen=True)
class TemplateSet:
    """The templates of one file plus the optional system prompt and correction turns."""

    path: Path
    templates: tuple[Template, ...]
    system: str | None = None
    correction_user: str = DEFAULT_CORRECTION_USER
    correction_assistant: str = DEFAULT_CORRECTION_ASSISTANT


# --- loading -----------------------------------------------------------------------------------


def _read_yaml(path: Path, list_key: str) -> tuple[Any, list[int]]:
    """The parsed file and the 1-based line of each item of its top-level ``list_key`` list."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(path, f"cannot read ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise DataError(
            path, f"invalid YAML ({problem})", line=mark.line + 1 if mark else None
        ) from None
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == list_key and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return data, lines


def _text(value: Any) -> str:
    # A list of names reads naturally in an answer: "a, b and c".
    if isinstance(value, list):
        items = [str(v) for v in value]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return str(value)


def load_facts(path: str | os.PathLike[str]) -> Facts:
    """Read a facts file (see the module docstring); raise :class:`DataError` naming the line
    and field of the first bad entity.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.qa_templates import load_facts
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "facts.yaml"
        >>> _ = path.write_text("entities:\\n  - {id: x, type: city, rivers: [Sil, Oma, Tern]}\\n")
        >>> load_facts(path).entities[0].fields["rivers"]
        'Sil, Oma and Tern'
    """
    path = Path(path)
    data, lines = _read_yaml(path, "entities")
    if not isinstance(data, dict) or not isinstance(data.get("entities"), list):
        raise DataError(path, "expected a mapping with an 'entities' list", field="entities")
    if not data["entities"]:
        raise DataError(path, "no entities", field="entities")
    entities: list[Entity] = []
    seen: set[str] = set()
    for i, row in enumerate(data["entities"]):
        line = lines[i] if i < len(lines) else None
        if not isinstance(row, dict):
            raise DataError(path, f"entity {i}: expected a mapping", line=line)
        if "id" not in row or row["id"] is None or str(row["id"]).strip() == "":
            raise DataError(path, f"entity {i}: missing", line=line, field="id")
        entity_id = str(row["id"])
        if entity_id in seen:
            raise DataError(path, f"entity {i}: duplicate id {entity_id!r}", line=line, field="id")
        seen.add(entity_id)
        fields: dict[str, str] = {}
        items: dict[str, tuple[str, ...]] = {}
        for key, value in row.items():
            scalar = (str, int, float, bool)
            if value is None or isinstance(value, dict):
                what = "empty" if value is None else "a mapping"
                raise DataError(
                    path,
                    f"entity {entity_id!r}: value is {what}; expected text, a number or a list",
                    line=line,
                    field=str(key),
                )
            if isinstance(value, list) and (
                not value or not all(isinstance(v, scalar) for v in value)
            ):
                raise DataError(
                    path,
                    f"entity {entity_id!r}: a list value must hold text or numbers",
                    line=line,
                    field=str(key),
                )
            fields[str(key)] = _text(value)
            if isinstance(value, list):
                items[str(key)] = tuple(str(v) for v in value)
        kind = row.get("type")
        entities.append(Entity(entity_id, None if kind is None else str(kind), fields, line, items))
    return Facts(path, tuple(entities))


def _wordings(
    path: Path, index: int, line: int | None, row: dict, field: str, *, optional: bool = False
) -> tuple[str, ...]:
    value = row.get(field)
    if optional and field not in row:
        return ()
    items = value if isinstance(value, list) else [value]
    if value is None or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise DataError(
            path,
            f"template {index}: missing or empty; expected text or a list of texts",
            line=line,
            field=field,
        )
    return tuple(items)


def _names(
    value: Any, path: Path, index: int, line: int | None, field: str
) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise DataError(
            path, f"template {index}: expected a name or a list of names", line=line, field=field
        )
    return tuple(items)


def load_templates(path: str | os.PathLike[str]) -> TemplateSet:
    """Read a templates file (see the module docstring); raise :class:`DataError` naming the
    line, template index and field of the first problem (unknown keys included, so a typo such
    as ``applies-to`` is not silently ignored).

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.qa_templates import load_templates
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "templates.yaml"
        >>> _ = path.write_text("templates:\\n  - question: Who is {name}?\\n")
        >>> load_templates(path)
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: ...templates.yaml:2: field 'answer': template 0: missing ...
    """
    path = Path(path)
    data, lines = _read_yaml(path, "templates")
    if not isinstance(data, dict) or not isinstance(data.get("templates"), list):
        raise DataError(path, "expected a mapping with a 'templates' list", field="templates")
    if unknown := sorted(set(data) - _TEMPLATES_FILE_KEYS):
        raise DataError(path, f"unknown top-level key(s) {unknown}", field=str(unknown[0]))
    if not data["templates"]:
        raise DataError(path, "no templates", field="templates")
    templates: list[Template] = []
    seen: set[str] = set()
    for i, row in enumerate(data["templates"]):
        line = lines[i] if i < len(lines) else None
        if not isinstance(row, dict):
            raise DataError(path, f"template {i}: expected a mapping", line=line)
        if unknown := sorted(set(row) - _TEMPLATE_KEYS):
            raise DataError(
                path,
                f"template {i}: unknown key; expected some of {sorted(_TEMPLATE_KEYS)}",
                line=line,
                field=str(unknown[0]),
            )
        template_id = str(row.get("id", f"t{i}"))
        if template_id in seen:
            raise DataError(
                path, f"template {i}: duplicate id {template_id!r}", line=line, field="id"
            )
        seen.add(template_id)
        correction = row.get("correction", True)
        if not isinstance(correction, bool):
            raise DataError(
                path, f"template {i}: expected true or false", line=line, field="correction"
            )
        category = row.get("category")
        if category is not None and (not isinstance(category, str) or not category.strip()):
            raise DataError(path, f"template {i}: expected text", line=line, field="category")
        templates.append(
            Template(
                index=i,
                id=template_id,
                line=line,
                questions=_wordings(path, i, line, row, "question"),
                answers=_wordings(path, i, line, row, "answer"),
                applies_to=_names(row.get("applies_to"), path, i, line, "applies_to"),
                asked=_names(row.get("asked"), path, i, line, "asked"),
                correction=correction,
                rephrased=_wordings(path, i, line, row, "rephrased", optional=True),
                category=category,
            )
        )
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise DataError(path, "expected text", field="system")
    correction = data.get("correction") or {}
    if not isinstance(correction, dict) or set(correction) - {"user", "assistant"}:
        raise DataError(
            path, "expected a mapping with 'user' and/or 'assistant'", field="correction"
        )
    for key, value in correction.items():
        if not isinstance(value, str) or not value.strip():
            raise DataError(path, "expected text", field=f"correction.{key}")
    return TemplateSet(
        path=path,
        templates=tuple(templates),
        system=system,
        correction_user=correction.get("user", DEFAULT_CORRECTION_USER),
        correction_assistant=correction.get("assistant", DEFAULT_CORRECTION_ASSISTANT),
    )


# --- binding templates to entities -------------------------------------------------------------


def _placeholders(text: str, where: DataError) -> list[str]:
    """Field names of ``text``; ``where`` is the error to raise (with its message replaced)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise DataError(
            where.path,
            f"{where.message}: {err} (write literal braces as {{{{ and }}}})",
            line=where.line,
            field=where.field,
        ) from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise DataError(
                where.path,
                f"{where.message}: placeholder {{{name}}} must be a plain attribute name",
                line=where.line,
                field=where.field,
            )
        names.append(name)
    return names


def _fields_of(text: str) -> list[str]:
    """Placeholder names of a text :func:`_placeholders` has already accepted."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def _applies(template: Template, entity: Entity) -> bool:
    return template.applies_to is None or entity.type in template.applies_to


def _bind(facts: Facts, templates: TemplateSet) -> list[tuple[Template, list[Entity]]]:
    """Each template with the entities it applies to; every placeholder checked against every
    one of them before any record is made."""
    bound = []
    for t in templates.templates:
        entities = [e for e in facts.entities if _applies(t, e)]
        label = f"template {t.index} ({t.id!r})"
        if not entities:
            raise DataError(
                templates.path,
                f"{label} applies to no entity of {facts.path} (types: "
                f"{sorted({str(e.type) for e in facts.entities})})",
                line=t.line,
                field="applies_to",
            )
        fields = (("question", t.questions), ("rephrased", t.rephrased), ("answer", t.answers))
        for field_name, texts in fields:
            for k, text in enumerate(texts):
                name = field_name if len(texts) == 1 else f"{field_name}[{k}]"
                where = DataError(templates.path, label, line=t.line, field=name)
                for placeholder in _placeholders(text, where):
                    for entity in entities:
                        if placeholder not in entity.fields:
                            raise DataError(
                                templates.path,
                                f"{label}: placeholder {{{placeholder}}} is not an attribute of "
                                f"entity {entity.id!r} in {facts.path}"
                                + (f" (line {entity.line})" if entity.line else ""),
                                line=t.line,
                                field=name,
                            )
        bound.append((t, entities))
    return bound


def _render(text: str, fields: Mapping[str, str]) -> str:
    return text.format_map(fields)


def _keywords(answer: str, question: str, entity: Entity) -> list[str]:
    """The values ``answer`` fills in that ``question`` does not, in answer order, unique; a
    list attribute gives each of its items. Both texts were checked by :func:`_bind`."""
    asked = set(_fields_of(question))
    out: list[str] = []
    for name in _fields_of(answer):
        if name in asked:
            continue
        for value in entity.items.get(name, (entity.fields[name],)):
            if value not in out:
                out.append(value)
    return out


def _messages(system: str | None, *turns: tuple[str, str]) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": role, "content": content} for role, content in turns]


# --- the three record kinds --------------------------------------------------------------------


def qa_records(
    facts: Facts,
    templates: TemplateSet,
    *,
    seed: int = 0,
    paraphrases: Literal["all", "one"] = "all",
    shuffle: bool = True,
) -> list[dict[str, Any]]:
    """Single-turn records ``{"id", "kind": "qa", "split", "template", "category", "entity",
    "question", "answer", "keywords", "messages"}``: one per template × applicable entity ×
    question wording (``paraphrases: "all"``) or one random wording (``"one"``), split
    ``"train"``; then, whatever ``paraphrases`` says, one per ``rephrased`` wording × entity,
    split ``"rephrased"``, id ``qa:{template}:{entity}:r{k}``. The answer wording is drawn
    at random.

    Example:
        >>> from adapterflow.generate.qa_templates import Entity, Facts, Template, TemplateSet
        >>> from adapterflow.generate.qa_templates import qa_records
        >>> facts = Facts("f.yaml", (Entity("m", None, {"name": "Mo", "age": "7"}, None),))
        >>> t = Template(0, "age", None, ("How old is {name}?", "What age is {name}?"),
        ...              ("{name} is {age}.",), None, None, True)
        >>> [r["question"] for r in qa_records(facts, TemplateSet("t.yaml", (t,)), shuffle=False)]
        ['How old is Mo?', 'What age is Mo?']
    """
    if paraphrases not in ("all", "one"):
        raise ConfigError(f"paraphrases must be 'all' or 'one', got {paraphrases!r}")
    rng = random.Random(f"{seed}|qa")
    # A generator of its own, and held-out records after the training ones, so that adding
    # rephrased wordings to a file leaves its training records exactly as they were.
    held_rng = random.Random(f"{seed}|rephrased")

    def record(t: Template, entity: Entity, key: str, split: str, question: str, answer: str):
        q, a = _render(question, entity.fields), _render(answer, entity.fields)
        return {
            "id": f"qa:{t.id}:{entity.id}:{key}",
            "kind": "qa",
            "split": split,
            "template": t.id,
            "category": t.label,
            "entity": entity.id,
            "question": q,
            "answer": a,
            "keywords": _keywords(answer, question, entity),
            "messages": _messages(templates.system, ("user", q), ("assistant", a)),
        }

    rows, held = [], []
    for t, entities in _bind(facts, templates):
        for entity in entities:
            wordings = list(enumerate(t.questions))
            if paraphrases == "one":
                wordings = [rng.choice(wordings)]
            for k, question in wordings:
                rows.append(record(t, entity, str(k), "train", question, rng.choice(t.answers)))
            for k, question in enumerate(t.rephrased):
                answer = held_rng.choice(t.answers)
                held.append(record(t, entity, f"r{k}", "rephrased", question, answer))
    if shuffle:
        rng.shuffle(rows)
        held_rng.shuffle(held)
    logger.info(
        "%d single-turn QA records (%d of them rephrased) from %d templates",
        len(rows) + len(held),
        len(held),
        len(templates.templates),
    )
    return rows + held


def conversation_records(
    facts: Facts,
    templates: TemplateSet,
    *,
    turns: int = 3,
    per_entity: int = 1,
    seed: int = 0,
    shuffle: bool = True,
) -> list[dict[str, Any]]:
    """Multi-turn records ``{"id", "kind": "conversation", "split": "train", "category":
    "conversation", "entity", "templates", "keywords", "messages"}``: ``per_entity``
    conversations per entity, each asking ``turns`` different templates that apply to it
    (fewer when fewer apply; entities that no template applies to are skipped), in random
    order and ``question`` wording (never a ``rephrased`` one), with the system prompt first
    when the file sets one; ``keywords`` are those of all the answers.

    Example:
        >>> from adapterflow.generate.qa_templates import Entity, Facts, Template, TemplateSet
        >>> from adapterflow.generate.qa_templates import conversation_records
        >>> facts = Facts("f.yaml", (Entity("m", None, {"name": "Mo", "age": "7"}, None),))
        >>> ts = TemplateSet("t.yaml", (
        ...     Template(0, "age", None, ("How old is {name}?",), ("{age}.",), None, None, True),
        ...     Template(1, "name", None, ("Who?",), ("{name}.",), None, None, True)))
        >>> row = conversation_records(facts, ts, turns=2)[0]
        >>> [m["role"] for m in row["messages"]], sorted(row["templates"]), sorted(row["keywords"])
        (['user', 'assistant', 'user', 'assistant'], ['age', 'name'], ['7', 'Mo'])
    """
    for name, value in (("turns", turns), ("per_entity", per_entity)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    rng = random.Random(f"{seed}|conversation")
    bound = _bind(facts, templates)
    rows = []
    for entity in facts.entities:
        usable = [t for t, entities in bound if entity in entities]
        if not usable:
            continue
        for c in range(per_entity):
            chosen = rng.sample(usable, min(turns, len(usable)))
            pairs = []
            keywords: list[str] = []
            for t in chosen:
                question, answer = rng.choice(t.questions), rng.choice(t.answers)
                pairs.append(("user", _render(question, entity.fields)))
                pairs.append(("assistant", _render(answer, entity.fields)))
                keywords += [k for k in _keywords(answer, question, entity) if k not in keywords]
            rows.append(
                {
                    "id": f"conversation:{entity.id}:{c}",
                    "kind": "conversation",
                    "split": "train",
                    "category": "conversation",
                    "entity": entity.id,
                    "templates": [t.id for t in chosen],
                    "keywords": keywords,
                    "messages": _messages(templates.system, *pairs),
                }
            )
    if shuffle:
        rng.shuffle(rows)
    logger.info("%d conversations of up to %d turns", len(rows), turns)
    return rows


def _asked(t: Template, templates: TemplateSet) -> tuple[str, ...]:
    """The attributes a wrong answer replaces: ``asked`` or what only the answer mentions."""
    if t.asked is not None:
        return t.asked
    where = DataError(templates.path, f"template {t.index} ({t.id!r})", line=t.line)
    in_question = {p for q in t.questions for p in _placeholders(q, where)}
    in_answer = {p for a in t.answers for p in _placeholders(a, where)}
    return tuple(sorted(in_answer - in_question))


def _correction_keywords(turn: str, question: str, answer: str, entity: Entity) -> list[str]:
    """Keywords of the correcting turn: the right answer's where it quotes ``{answer}``, and
    the attributes it names itself that the question does not ({wrong} holds wrong values)."""
    names = _fields_of(turn)
    out = _keywords(answer, question, entity) if "answer" in names else []
    own = "".join("{" + n + "}" for n in names if n not in _CORRECTION_FIELDS)
    return out + [k for k in _keywords(own, question, entity) if k not in out]


def correction_records(
    facts: Facts,
    templates: TemplateSet,
    *,
    seed: int = 0,
    shuffle: bool = True,
) -> list[dict[str, Any]]:
    """Correction records ``{"id", "kind": "correction", "split": "train", "template",
    "category", "entity", "question", "wrong_answer", "answer", "keywords", "messages"}``:
    user question (a ``question`` wording, never a ``rephrased`` one), a wrong assistant
    answer, the file's correction ``user`` turn, and its ``assistant`` turn with the right
    answer; ``keywords`` are those of that last turn (the right answer's, when it is in it).

    The wrong answer is the answer template filled with the entity's attributes except the
    *asked* ones (see the module docstring), which come from another applicable entity with
    different values. Templates with ``correction: false`` are left out; an entity for which
    no other entity differs is skipped and counted in the log. The correction turns may use
    ``{question}``, ``{answer}``, ``{wrong}`` and the entity's attributes.

    Example:
        >>> from adapterflow.generate.qa_templates import Entity, Facts, Template, TemplateSet
        >>> from adapterflow.generate.qa_templates import correction_records
        >>> facts = Facts("f.yaml", (Entity("a", None, {"name": "Al", "age": "7"}, None),
        ...                          Entity("b", None, {"name": "Bo", "age": "9"}, None)))
        >>> t = Template(0, "age", None, ("How old is {name}?",), ("{name} is {age}.",),
        ...              None, None, True)
        >>> row = correction_records(facts, TemplateSet("t.yaml", (t,)), shuffle=False)[0]
        >>> for message in row["messages"]:
        ...     print(f"{message['role']}: {message['content']}")
        user: How old is Al?
        assistant: Al is 9.
        user: That is not correct.
        assistant: You are right, I made a mistake. Al is 7.
    """
    rng = random.Random(f"{seed}|correction")
    bound = _bind(facts, templates)
    skipped: Counter[str] = Counter()
    for turn, text in (
        ("user", templates.correction_user),
        ("assistant", templates.correction_assistant),
    ):
        where = DataError(templates.path, "correction turn", field=f"correction.{turn}")
        for placeholder in _placeholders(text, where):
            if placeholder in _CORRECTION_FIELDS:
                continue
            for t, entities in bound:
                for entity in entities:
                    if t.correction and placeholder not in entity.fields:
                        raise DataError(
                            templates.path,
                            f"placeholder {{{placeholder}}} is neither one of "
                            f"{sorted(_CORRECTION_FIELDS)} nor an attribute of entity "
                            f"{entity.id!r} in {facts.path}",
                            field=f"correction.{turn}",
                        )
    rows = []
    for t, entities in bound:
        if not t.correction:
            continue
        asked = _asked(t, templates)
        if not asked:
            raise DataError(
                templates.path,
                f"template {t.index} ({t.id!r}): the answer uses no placeholder the question "
                "does not, so no wrong answer can be made; list the attributes to replace under "
                "'asked' or set 'correction: false'",
                line=t.line,
                field="asked",
            )
        for entity in entities:
            question_text = rng.choice(t.questions)
            question = _render(question_text, entity.fields)
            answer_text = rng.choice(t.answers)
            answer = _render(answer_text, entity.fields)
            others = []
            for other in entities:
                if other is entity or not all(a in other.fields for a in asked):
                    continue
                wrong_fields = {**entity.fields, **{a: other.fields[a] for a in asked}}
                wrong = _render(answer_text, wrong_fields)
                if wrong != answer:
                    others.append(wrong)
            if not others:
                skipped[t.id] += 1
                continue
            wrong = rng.choice(sorted(set(others)))
            fields = {**entity.fields, "question": question, "answer": answer, "wrong": wrong}
            rows.append(
                {
                    "id": f"correction:{t.id}:{entity.id}",
                    "kind": "correction",
                    "split": "train",
                    "template": t.id,
                    "category": t.label,
                    "entity": entity.id,
                    "question": question,
                    "wrong_answer": wrong,
                    "answer": answer,
                    "keywords": _correction_keywords(
                        templates.correction_assistant, question_text, answer_text, entity
                    ),
                    "messages": _messages(
                        templates.system,
                        ("user", question),
                        ("assistant", wrong),
                        ("user", _render(templates.correction_user, fields)),
                        ("assistant", _render(templates.correction_assistant, fields)),
                    ),
                }
            )
    if shuffle:
        rng.shuffle(rows)
    logger.info(
        "%d correction records; skipped (no other entity with a different answer): %s",
        len(rows),
        dict(skipped) or "none",
    )
    return rows


RECORD_KINDS = ("qa", "conversation", "correction")


def generate_records(
    facts_path: str | os.PathLike[str],
    templates_path: str | os.PathLike[str],
    kinds: Sequence[str] = RECORD_KINDS,
    *,
    seed: int = 0,
    **options: Any,
) -> list[dict[str, Any]]:
    """Load both files and make the records of each kind in ``kinds``, in that order.

    ``options`` go to the generator that accepts them (``paraphrases`` to :func:`qa_records`,
    ``turns`` and ``per_entity`` to :func:`conversation_records`, ``shuffle`` to all).

    Example:
        >>> from adapterflow.generate.qa_templates import generate_records
        >>> generate_records("facts.yaml", "templates.yaml", ["quiz"])
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: unknown record kind 'quiz'; expected some of qa, \
conversation, correction
    """
    for kind in kinds:
        if kind not in RECORD_KINDS:
            raise ConfigError(
                f"unknown record kind {kind!r}; expected some of {', '.join(RECORD_KINDS)}"
            )
    allowed = {"paraphrases", "turns", "per_entity", "shuffle"}
    if unknown := sorted(set(options) - allowed):
        raise ConfigError(f"unknown option(s) {unknown}; expected some of {sorted(allowed)}")
    facts = load_facts(facts_path)
    templates = load_templates(templates_path)
    shuffle = options.get("shuffle", True)
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        if kind == "qa":
            rows += qa_records(
                facts,
                templates,
                seed=seed,
                paraphrases=options.get("paraphrases", "all"),
                shuffle=shuffle,
            )
        elif kind == "conversation":
            rows += conversation_records(
                facts,
                templates,
                seed=seed,
                turns=options.get("turns", 3),
                per_entity=options.get("per_entity", 1),
                shuffle=shuffle,
            )
        else:
            rows += correction_records(facts, templates, seed=seed, shuffle=shuffle)
    return rows
