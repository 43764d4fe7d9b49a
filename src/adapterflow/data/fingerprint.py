"""Content fingerprints of ``local`` sources, so an edited file re-prepares its dataset.

``fetch_raw`` copies a local source into ``results/raw/{dataset}/`` once; Snakemake cannot see
a later edit of the original. The workflow passes :func:`local_source_digest` as a param of
``fetch_raw``: a sha256 over every file's relative path and content, which changes exactly when
the content does (a ``touch`` alone changes nothing). Hashing every file on every ``snakemake``
call would be slow for large sources, so each file's sha256 is cached by (size, mtime): only
files whose size or mtime changed are read again.

Relative paths are those the files get in the raw copy (a file source: its name; a directory:
paths below it), so :func:`manifest_digest` of the fetched copy's manifest gives the same
value, which is what the workflow uses when the original is no longer there.

Example:
    >>> import pathlib, tempfile
    >>> from adapterflow.data.fingerprint import local_source_digest
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "pairs.jsonl").write_text('{"sentence1": "a", "sentence2": "b"}\\n')
    >>> first = local_source_digest(root / "pairs.jsonl", cache=root / "cache.json")
    >>> first == local_source_digest(root / "pairs.jsonl", cache=root / "cache.json")
    True
    >>> _ = (root / "pairs.jsonl").write_text('{"sentence1": "a", "sentence2": "c"}\\n')
    >>> first == local_source_digest(root / "pairs.jsonl", cache=root / "cache.json")
    False
    >>> local_source_digest(root / "gone.jsonl") is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adapterflow.io import sha256_file

#: Files the fetch manifest describes are skipped the same way here.
_MANIFEST_NAME = "manifest.json"


def source_files(path: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """``(relative path in the raw copy, file)`` for every file of a local source, sorted.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.data.fingerprint import source_files
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "qrels").mkdir()
        >>> _ = (root / "corpus.jsonl").write_text("{}")
        >>> _ = (root / "qrels" / "test.tsv").write_text("")
        >>> [rel for rel, _ in source_files(root)]
        ['corpus.jsonl', 'qrels/test.tsv']
    """
    root = Path(path).expanduser()
    if root.is_file():
        return [(root.name, root)]
    files = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for filename in filenames:
            file = Path(dirpath) / filename
            rel = file.relative_to(root).as_posix()
            if rel != _MANIFEST_NAME:
                files.append((rel, file))
    return sorted(files)


def digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 over ``(relative path, file sha256)`` pairs, in path order."""
    total = hashlib.sha256()
    for rel, sha in sorted(entries):
        total.update(f"{rel}\0{sha}\n".encode())
    return total.hexdigest()


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """The digest of a fetched copy, from its ``manifest.json`` (no file is read)."""
    return digest((entry["path"], entry["sha256"]) for entry in manifest["files"])


def _fetched_digest(manifest: Path) -> str | None:
    try:
        return manifest_digest(json.loads(manifest.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):  # absent, or not a fetch manifest
        return None


def _read_cache(cache: Path | None) -> dict[str, Any]:
    if cache is None or not cache.is_file():
        return {}
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged cache only costs a re-hash
    return data if isinstance(data, dict) else {}


def _write_cache(cache: Path, data: Mapping[str, Any]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, cache)


def local_source_digest(
    path: str | os.PathLike[str],
    cache: str | os.PathLike[str] | None = None,
    fetched: str | os.PathLike[str] | None = None,
) -> str | None:
    """The content digest of a local source file or directory.

    ``cache`` (a JSON file) remembers each file's sha256 by absolute path, size and mtime,
    so unchanged files are not read again. When the source is gone, the digest of its
    fetched copy stands in (``fetched``: that copy's ``manifest.json``), so deleting the
    original after fetching changes nothing; ``None`` when neither is there.
    """
    root = Path(path).expanduser()
    if not root.exists():
        return _fetched_digest(Path(fetched)) if fetched is not None else None
    cache_path = Path(cache) if cache is not None else None
    known = _read_cache(cache_path)
    entries, changed = [], False
    for rel, file in source_files(root):
        stat = file.stat()
        key = str(file.resolve())
        hit = known.get(key)
        if hit and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
            sha = hit["sha256"]
        else:
            sha = sha256_file(file)
            known[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
            changed = True
        entries.append((rel, sha))
    if changed and cache_path is not None:
        _write_cache(cache_path, known)
    return digest(entries)
