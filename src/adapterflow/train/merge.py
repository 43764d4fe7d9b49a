"""Adapters trained on a base with earlier adapters merged in (stage 2, ``init: merge``).

LLM2Vec-style stage 2 merges the stage-1 LoRA into the base weights and trains a fresh LoRA on
top. The stage-2 PEFT directory then only makes sense on that merged base, so it carries an
``adapterflow.json`` manifest naming the adapters to merge first, in order:

.. code-block:: json

    {"format_version": 1, "merged_adapters": [{"path": "../../s1/seed0", "sha256": "..."}]}

Paths are relative to the adapter directory (results trees move between machines); ``sha256``
is that of the merged adapter's ``adapter_model.safetensors`` when it was merged, checked on
reload. Training writes the manifest (:func:`write_manifest`); loading reads it
(:func:`~adapterflow.models.read_merged_chain`): load the base,
:func:`~adapterflow.models.merge_chain` it, then load the adapter as usual
(``model.load_adapter``), which :func:`~adapterflow.models.load_encoder` does.

Example:
    >>> import pathlib, tempfile
    >>> from adapterflow.models import read_merged_chain
    >>> from adapterflow.train.merge import write_manifest
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("s1", "s2"):
    ...     (root / name).mkdir()
    ...     _ = (root / name / "adapter_model.safetensors").write_bytes(b"weights")
    >>> write_manifest(root / "s2", [root / "s1"])
    >>> [path.name for path in read_merged_chain(root / "s2")]
    ['s1']
    >>> read_merged_chain(root / "s1")
    []
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from adapterflow.io import sha256_file, write_json
from adapterflow.models import FORMAT_VERSION, MANIFEST, WEIGHTS


def write_manifest(adapter_dir: str | os.PathLike[str], chain: Sequence[str | os.PathLike]) -> None:
    """Write ``adapter_dir/adapterflow.json`` naming ``chain`` (merge order), with paths relative
    to ``adapter_dir``'s final location (a temporary sibling directory gives the same paths)."""
    adapter_dir = Path(adapter_dir)
    entries = [
        {
            "path": os.path.relpath(Path(path).resolve(), adapter_dir.resolve()),
            "sha256": sha256_file(Path(path) / WEIGHTS),
        }
        for path in chain
    ]
    manifest = {"format_version": FORMAT_VERSION, "merged_adapters": entries}
    write_json(adapter_dir / MANIFEST, manifest)
