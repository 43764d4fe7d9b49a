"""Provenance of a result: what produced it, from which inputs, with which code and packages.

Attached to every eval JSON so a number can be traced back and reproduced.

Example:
    >>> from adapterflow.provenance import config_hash, package_versions
    >>> config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1})
    True
    >>> "torch" in package_versions()
    True
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adapterflow.io import sha256_file

REPO = Path(__file__).resolve().parents[2]
PACKAGES = (
    "adapterflow",
    "torch",
    "transformers",
    "sentence-transformers",
    "peft",
    "datasets",
    "numpy",
    "scipy",
    "scikit-learn",
)


def config_hash(blocks: Mapping[str, Any]) -> str:
    """sha256 of the config blocks that determine a result (key order does not matter)."""
    text = json.dumps(blocks, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit(repo: Path = REPO) -> dict[str, Any]:
    """The workflow checkout's commit and whether it had uncommitted changes (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape a result."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def input_checksums(paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """sha256 of every input file; a directory contributes each file below it."""
    sums: dict[str, str] = {}
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            sums[file.as_posix()] = sha256_file(file)
    return sums


def provenance(
    *,
    config_blocks: Mapping[str, Any],
    inputs: Iterable[str | os.PathLike[str]],
    model: str,
    adapter: str | None,
    seed: int | None,
    wall_time: float,
    device: str,
) -> dict[str, Any]:
    """The ``provenance`` block of an eval JSON."""
    import torch

    return {
        "config_sha256": config_hash(config_blocks),
        "config": config_blocks,
        "git": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "inputs_sha256": input_checksums(inputs),
        "model": model,
        "adapter": adapter,
        "seed": seed,
        "wall_time_s": round(wall_time, 3),
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
