"""A QA set (rule ``generate_qa``): records written by a local LM about each chunk of a corpus
(engine ``llm``, :mod:`adapterflow.generate.qa_llm`) or filled in from YAML facts and templates
(engine ``templates``, :mod:`adapterflow.generate.qa_templates`).

The ``qa`` block's ``engine`` (default ``llm``) picks the engine; its other keys are the
engine's. With a ``name`` (the rule passes the QA set's name) every record also gets
``"dataset"`` (the name) and ``"id"`` (``"{name}:{its own id}"``,
:func:`~adapterflow.generate.qa_records.label_records`), so several sets can be pooled by
``dedup_cluster_split``. The output directory appears only once complete.

Example:
    >>> import json, pathlib, tempfile
    >>> from adapterflow.generate.qa import generate_qa_set
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "facts.yaml").write_text("entities:\\n  - {id: a, name: Arlo, colour: teal}\\n")
    >>> _ = (root / "templates.yaml").write_text(
    ...     "templates:\\n  - id: colour\\n    question: What colour does {name} like?\\n"
    ...     "    answer: '{name} likes {colour}.'\\n")
    >>> manifest = generate_qa_set({"engine": "templates", "kinds": ["qa"]}, root / "qa",
    ...                            facts=root / "facts.yaml", templates=root / "templates.yaml",
    ...                            name="atlas")
    >>> manifest["counts"], sorted(path.name for path in (root / "qa").iterdir())
    ({'qa': 1}, ['manifest.json', 'qa.jsonl'])
    >>> row = json.loads((root / "qa" / "qa.jsonl").read_text())
    >>> row["id"], row["dataset"], row["answer"]
    ('atlas:qa:colour:a:0', 'atlas', 'Arlo likes teal.')
    >>> generate_qa_set({"engine": "markov"}, root / "other")
    Traceback (most recent call last):
    ...
    adapterflow.errors.ConfigError: qa engine 'markov' is not one of llm, templates
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from adapterflow.errors import ConfigError
from adapterflow.generate.qa_llm import generate_qa, settings_from_config
from adapterflow.generate.qa_records import label_records
from adapterflow.generate.qa_templates import RECORD_KINDS, generate_records
from adapterflow.io import atomic_dir, write_json, write_jsonl

logger = logging.getLogger(__name__)

ENGINES = ("llm", "templates")


def generate_qa_set(
    qa: Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    chunks: str | os.PathLike[str] | None = None,
    facts: str | os.PathLike[str] | None = None,
    templates: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Write the QA set of the ``qa`` block to ``out`` and return its manifest: engine
    ``llm`` reads ``chunks`` (the chunk_corpus output directory, see
    :func:`~adapterflow.generate.qa_llm.generate_qa`; ``threads`` are the LM's torch CPU
    threads), engine ``templates`` the ``facts`` and ``templates`` files
    (:func:`write_template_set`). ``name`` labels the records with their set.
    """
    settings = dict(qa)
    engine = settings.pop("engine", "llm")
    if engine not in ENGINES:
        raise ConfigError(f"qa engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "llm":
        if not chunks:
            raise ConfigError("qa engine llm needs the chunks directory (input chunks)")
        return generate_qa(
            chunks, out, settings_from_config(settings), threads=threads, dataset=name
        )
    if not facts or not templates:
        raise ConfigError("qa engine templates needs input facts and input templates")
    kinds = settings.pop("kinds", list(RECORD_KINDS))
    seed = settings.pop("seed", 0)
    return write_template_set(facts, templates, out, kinds, seed=seed, name=name, options=settings)


def write_template_set(
    facts: str | os.PathLike[str],
    templates: str | os.PathLike[str],
    out: str | os.PathLike[str],
    kinds: Sequence[str] = RECORD_KINDS,
    *,
    seed: int = 0,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The records of each kind in ``kinds`` made from the ``facts`` and ``templates`` files
    (:func:`~adapterflow.generate.qa_templates.generate_records`; ``options`` are its
    ``paraphrases``, ``turns``, ``per_entity`` and ``shuffle``), labelled with ``name`` when
    given, written to ``out/qa.jsonl`` with ``out/manifest.json`` (files, settings, records
    per kind); ``out`` appears only once complete. Returns the manifest.
    """
    seed, options = int(seed), dict(options or {})
    rows = generate_records(facts, templates, kinds, seed=seed, **options)
    if name is not None:
        rows = label_records(rows, name)
    manifest = {
        "engine": "templates",
        "dataset": name,
        "facts": str(facts),
        "templates": str(templates),
        "settings": {"kinds": list(kinds), "seed": seed, **options},
        "counts": {kind: sum(r["kind"] == kind for r in rows) for kind in kinds},
    }
    with atomic_dir(out) as tmp:
        write_jsonl(tmp / "qa.jsonl", rows)
        write_json(tmp / "manifest.json", manifest)
    logger.info("wrote %d template records to %s", len(rows), out)
    return manifest
