"""Adapters trained on a base with earlier adapters merged in (stage 2, ``init: merge``).

LLM2Vec-style stage 2 merges the stage-1 LoRA into the base weights and trains a fresh LoRA on
top. The stage-2 PEFT directory then only makes sense on that merged base, so it carries an
``adapterflow.json`` manifest naming the adapters to merge first, in order:

.. code-block:: json

    {"format_version": 1, "merged_adapters": [{"path": "../../s1/seed0", "sha256": "..."}]}

Paths are relative to the adapter directory (results trees move between machines); ``sha256``
is that of the merged adapter's ``adapter_model.safetensors`` when it was merged, checked on
reload. To load such an adapter: load the base, :func:`merge_chain` it, then load the adapter
as usual (``model.load_adapter``).

Example:
    >>> import pathlib, tempfile
    >>> from adapterflow.train.merge import read_merged_chain, write_manifest
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

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapterflow.errors import ConfigError
from adapterflow.io import sha256_file, write_json

logger = logging.getLogger(__name__)

#: Manifest file of an adapter trained on a merged base.
MANIFEST = "adapterflow.json"
WEIGHTS = "adapter_model.safetensors"
FORMAT_VERSION = 1


def read_merged_chain(adapter_dir: str | os.PathLike[str], verify: bool = True) -> list[Path]:
    """The adapters merged into the base before ``adapter_dir`` was trained, in merge order
    (empty for an adapter on the plain base). ``verify`` checks each one's sha256."""
    adapter_dir = Path(adapter_dir)
    manifest = adapter_dir / MANIFEST
    if not manifest.is_file():
        return []
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["merged_adapters"]
    except (ValueError, KeyError) as err:
        raise ConfigError(f"adapter {adapter_dir}: unreadable {MANIFEST} ({err})") from err
    chain = []
    for entry in entries:
        path = (adapter_dir / entry["path"]).resolve()
        if not (path / WEIGHTS).is_file():
            raise ConfigError(
                f"adapter {adapter_dir} was trained on a base with {entry['path']} merged in, "
                f"but {path} has no {WEIGHTS}"
            )
        if verify and entry.get("sha256") and sha256_file(path / WEIGHTS) != entry["sha256"]:
            raise ConfigError(
                f"adapter {adapter_dir} was trained on a base with {path} merged in, but that "
                "adapter has changed since (sha256 mismatch): retrain it"
            )
        chain.append(path)
    return chain


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


def merge_adapter(model: Any, adapter_dir: str | os.PathLike[str]) -> None:
    """Merge the LoRA at ``adapter_dir`` into the weights of ``model`` (a SentenceTransformer
    without adapters), in place, with PEFT's ``merge_and_unload``."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    transformers_model = model.transformers_model
    if getattr(transformers_model, "_hf_peft_config_loaded", False):
        raise ValueError("merge_adapter needs a model without loaded adapters")
    peft_model = PeftModel.from_pretrained(transformers_model, str(adapter_dir))
    merged = peft_model.merge_and_unload()
    # merge_and_unload restores the wrapped model object itself, now without LoRA layers.
    if merged is not transformers_model:
        raise RuntimeError("PEFT returned a new model object from merge_and_unload")
    logger.info("merged adapter %s into the base weights", adapter_dir)


def merge_chain(model: Any, adapter_dir: str | os.PathLike[str]) -> list[Path]:
    """Merge every adapter that ``adapter_dir`` names in its manifest into ``model``, in order;
    return them. A no-op for adapters trained on the plain base."""
    chain = read_merged_chain(adapter_dir)
    for path in chain:
        merge_adapter(model, path)
    return chain
