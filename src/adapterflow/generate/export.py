"""Export generated data as Hugging Face ``datasets`` on disk, and push it to the Hub.

:func:`export_dataset` writes one directory with three subsets, each a
:class:`datasets.DatasetDict` saved with ``save_to_disk``, plus a manifest::

    {out}/
      qa/       DatasetDict "train", "eval": the QA records of the split step (same columns)
      chunks/   DatasetDict "train": chunks.jsonl rows {"_id", "doc_id", "start", "end", "text"}
      raw/      DatasetDict "train": the documents, corpus.jsonl rows {"_id", "title", "text"}
      manifest.json   inputs (path, sha256), rows of every subset and split, how to load

One DatasetDict per subset (rather than one DatasetDict with six splits) because the subsets
have different columns: on the Hub each becomes a *config* of one dataset repository
(``load_dataset(repo_id, "chunks")``), and on disk each loads on its own::

    from datasets import load_from_disk
    qa = load_from_disk(f"{out}/qa")            # DatasetDict({"train": ..., "eval": ...})
    chunks = load_from_disk(f"{out}/chunks")["train"]
    raw = load_from_disk(f"{out}/raw")["train"]

Single-split subsets name their split ``"train"``, the Hub's convention for "all of it". The
directory appears only once complete (:func:`adapterflow.io.atomic_dir`).

:func:`push_to_hub` uploads the three subsets to ``repo_id`` (``organisation/name``) with
``DatasetDict.push_to_hub``, one config per subset, ``qa`` the default config. The token is
read from the environment variable ``HF_TOKEN`` (never from a config file, never logged); when
it is missing the push is refused before anything is read or uploaded.

Example:
    >>> import json, pathlib, tempfile
    >>> from datasets import load_from_disk
    >>> from adapterflow.generate.export import export_dataset
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "splits").mkdir()
    >>> qa = {"id": "q1", "question": "Q?", "answer": "A.", "dataset": "wiki", "cluster": 0}
    >>> _ = (root / "splits" / "train.jsonl").write_text(json.dumps(qa) + "\\n")
    >>> _ = (root / "splits" / "eval.jsonl").write_text("")
    >>> chunk = {"_id": "d1-c0", "doc_id": "d1", "start": 0, "end": 5, "text": "Hello"}
    >>> _ = (root / "chunks.jsonl").write_text(json.dumps(chunk) + "\\n")
    >>> _ = (root / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "Hello"}) + "\\n")
    >>> manifest = export_dataset(root / "splits", root / "chunks.jsonl", root / "corpus.jsonl",
    ...                           root / "hf")
    >>> manifest["rows"]
    {'qa': {'train': 1, 'eval': 0}, 'chunks': {'train': 1}, 'raw': {'train': 1}}
    >>> load_from_disk(str(root / "hf" / "qa"))["train"][0]["question"]
    'Q?'
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_dir, read_jsonl, sha256_file, write_json
from adapterflow.settings import ExportSettings

logger = logging.getLogger(__name__)

#: The subsets of an export, in push order; the first is the Hub's default config.
SUBSETS: tuple[str, ...] = ("qa", "chunks", "raw")
QA_SPLITS: tuple[str, ...] = ("train", "eval")
TOKEN_ENV = "HF_TOKEN"

_CHUNK_FIELDS: dict[str, type | tuple[type, ...]] = {
    "_id": str,
    "doc_id": str,
    "start": int,
    "end": int,
    "text": str,
}
_RAW_FIELDS: dict[str, type | tuple[type, ...]] = {"_id": str, "text": str}
_QA_FIELDS: dict[str, type | tuple[type, ...]] = {"question": str, "answer": str}
# A Hub repository id: organisation (or user) / name, letters, digits, "-", "_", ".".
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _file_in(path: str | os.PathLike[str], name: str) -> Path:
    """``path`` itself, or ``path/name`` when ``path`` is a directory."""
    path = Path(path)
    return path / name if path.is_dir() else path


def qa_split_files(qa_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """``{"train": path, "eval": path}`` of a split directory: ``qa_dir`` holding
    ``train.jsonl`` and ``eval.jsonl``, or the output directory of the split step, whose
    ``splits/`` holds them.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.export import qa_split_files
        >>> qa_split_files(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: .../train.jsonl: file not found (expected train.jsonl \
and eval.jsonl, as the split step writes them)
    """
    qa_dir = Path(qa_dir)
    if not (qa_dir / "train.jsonl").exists() and (qa_dir / "splits").is_dir():
        qa_dir = qa_dir / "splits"
    files = {split: qa_dir / f"{split}.jsonl" for split in QA_SPLITS}
    for path in files.values():
        if not path.is_file():
            raise DataError(
                path,
                "file not found (expected train.jsonl and eval.jsonl, as the split step "
                "writes them)",
            )
    return files


def _read_rows(
    path: Path, required: Mapping[str, type | tuple[type, ...]], *, allow_empty: bool = False
) -> list[dict]:
    if not path.is_file():
        raise DataError(path, "file not found")
    rows = [row for _, row in read_jsonl(path, required)]
    if not rows and not allow_empty:
        raise DataError(path, "no rows")
    return rows


def _dataset(rows: Sequence[Mapping[str, Any]], path: Path | str) -> datasets.Dataset:
    """A Dataset of ``rows`` with the union of their keys as columns (first-seen order; a row
    without a key holds None there); values Arrow cannot give one type are a DataError."""
    # Dataset.from_list takes its columns from the first row alone and would silently drop a
    # field that only later rows carry.
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    mapping = {name: [row.get(name) for row in rows] for name in columns}
    try:
        return datasets.Dataset.from_dict(mapping)
    except (TypeError, ValueError, ArithmeticError) as err:  # pyarrow errors derive from these
        raise DataError(path, f"rows do not share one type per field ({err})") from None


def build_subsets(
    qa_dir: str | os.PathLike[str],
    chunks: str | os.PathLike[str],
    corpus: str | os.PathLike[str],
) -> tuple[dict[str, datasets.DatasetDict], dict[str, Path]]:
    """The three :class:`~datasets.DatasetDict` subsets (see the module docstring) and the
    files they were read from. ``chunks`` and ``corpus`` are JSONL files, or directories
    holding ``chunks.jsonl`` / ``corpus.jsonl``. Every row is checked for its fields.

    Example:
        >>> from adapterflow.generate.export import build_subsets
        >>> build_subsets("no/such/dir", "c.jsonl", "d.jsonl")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.DataError: no/such/dir/train.jsonl: file not found ...
    """
    qa_files = qa_split_files(qa_dir)
    chunks_file = _file_in(chunks, "chunks.jsonl")
    corpus_file = _file_in(corpus, "corpus.jsonl")
    # An empty eval split is allowed (a tiny set may leave nothing to hold out); train is not.
    qa_rows = {
        split: _read_rows(path, _QA_FIELDS, allow_empty=split == "eval")
        for split, path in qa_files.items()
    }
    # One table for both splits, so train and eval share their columns and types even when a
    # split is empty or lacks an optional field.
    both = [*qa_rows["train"], *qa_rows["eval"]]
    table = _dataset(both, qa_files["train"].parent)
    n_train = len(qa_rows["train"])
    qa = datasets.DatasetDict(
        {
            # Index lists: select() rejects an empty contiguous range at the end of the table.
            "train": table.select(list(range(n_train))),
            "eval": table.select(list(range(n_train, len(both)))),
        }
    )
    subsets = {
        "qa": qa,
        "chunks": datasets.DatasetDict(
            {"train": _dataset(_read_rows(chunks_file, _CHUNK_FIELDS), chunks_file)}
        ),
        "raw": datasets.DatasetDict(
            {"train": _dataset(_read_rows(corpus_file, _RAW_FIELDS), corpus_file)}
        ),
    }
    files = {f"qa/{split}": path for split, path in qa_files.items()}
    files.update({"chunks": chunks_file, "raw": corpus_file})
    return subsets, files


def export_dataset(
    qa_dir: str | os.PathLike[str],
    chunks: str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
) -> dict[str, Any]:
    """Write the ``qa``, ``chunks`` and ``raw`` subsets to ``out_dir`` atomically (layout in
    the module docstring) and return the manifest."""
    started = time.perf_counter()
    subsets, files = build_subsets(qa_dir, chunks, corpus)
    rows = {
        name: {split: len(data) for split, data in subset.items()}
        for name, subset in subsets.items()
    }
    with atomic_dir(out_dir) as tmp:
        for name, subset in subsets.items():
            # An empty split would be saved as zero shards, which load_from_disk cannot read.
            empty = {split: 1 for split, data in subset.items() if len(data) == 0}
            subset.save_to_disk(str(tmp / name), num_shards=empty or None)
        manifest = {
            "layout": {name: list(subset) for name, subset in subsets.items()},
            "load": "datasets.load_from_disk('<this directory>/<subset>')",
            "rows": rows,
            "inputs": {key: {"path": str(p), "sha256": sha256_file(p)} for key, p in files.items()},
        }
        write_json(tmp / "manifest.json", manifest)
    logger.info(
        "exported %s to %s in %.1f s",
        "; ".join(f"{name} {splits}" for name, splits in rows.items()),
        out_dir,
        time.perf_counter() - started,
    )
    return manifest


def hub_token() -> str:
    """The Hugging Face token from ``HF_TOKEN``; a :class:`ConfigError` when it is unset or
    empty.

    Example:
        >>> import os
        >>> from adapterflow.generate.export import hub_token
        >>> saved = os.environ.pop("HF_TOKEN", None)
        >>> hub_token()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: push_to_hub needs a Hugging Face token ...
        >>> if saved is not None: os.environ["HF_TOKEN"] = saved
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"push_to_hub needs a Hugging Face token with write access in the environment "
            f"variable {TOKEN_ENV}; it is not set, so nothing was uploaded"
        )
    return token


def check_repo_id(repo_id: Any) -> str:
    """``repo_id`` when it reads ``organisation/name``; otherwise a :class:`ConfigError`.

    Example:
        >>> from adapterflow.generate.export import check_repo_id
        >>> check_repo_id("my-lab/qa-wiki")
        'my-lab/qa-wiki'
        >>> check_repo_id("qa-wiki")
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: hub repo_id must be 'organisation/name', got 'qa-wiki'
    """
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise ConfigError(f"hub repo_id must be 'organisation/name', got {repo_id!r}")
    return repo_id


def push_to_hub(
    dataset_dir: str | os.PathLike[str], repo_id: str, *, private: bool = True
) -> list[str]:
    """Upload the subsets of an export (:func:`export_dataset`) to the Hub dataset repository
    ``repo_id``, one config per subset (``qa`` is the default config); return the subsets
    pushed.

    The token comes from ``HF_TOKEN``; without it (or with a malformed ``repo_id``) this
    raises :class:`ConfigError` before reading or uploading anything. ``private`` applies when
    the repository is created.

    Example:
        >>> import os
        >>> from adapterflow.generate.export import push_to_hub
        >>> saved = os.environ.pop("HF_TOKEN", None)
        >>> push_to_hub("results/hf/wiki", "my-lab/qa-wiki")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: push_to_hub needs a Hugging Face token ...
        >>> if saved is not None: os.environ["HF_TOKEN"] = saved
    """
    token = hub_token()
    repo_id = check_repo_id(repo_id)
    if not isinstance(private, bool):
        raise ConfigError(f"hub private must be true or false, got {private!r}")
    dataset_dir = Path(dataset_dir)
    missing = [name for name in SUBSETS if not (dataset_dir / name).is_dir()]
    if missing:
        raise DataError(
            dataset_dir, f"not an export: missing subset(s) {', '.join(missing)} (run the export)"
        )
    loaded = {name: datasets.load_from_disk(str(dataset_dir / name)) for name in SUBSETS}
    for name, subset in loaded.items():
        if not isinstance(subset, datasets.DatasetDict):
            raise DataError(dataset_dir / name, "expected a DatasetDict saved with save_to_disk")
    for name, subset in loaded.items():
        started = time.perf_counter()
        subset.push_to_hub(
            repo_id,
            config_name=name,
            set_default=name == SUBSETS[0],
            private=private,
            token=token,
            commit_message=f"adapterflow: {name} subset",
        )
        logger.info(
            "pushed %s (%s) to %s in %.1f s",
            name,
            ", ".join(f"{split} {len(data)}" for split, data in subset.items()),
            repo_id,
            time.perf_counter() - started,
        )
    return list(SUBSETS)


#: The keys of an ``exports:`` block that the step reads.
EXPORT_KEYS = frozenset({"push", "repo_id", "private"})


def export_and_push(
    qa_dir: str | os.PathLike[str],
    chunks: str | os.PathLike[str],
    corpus: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    export: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rule ``export_dataset``: :func:`export_dataset` into ``out_dir``, then, when the
    ``export`` block says ``push: true``, :func:`push_to_hub` to its ``repo_id`` with its
    ``private`` (keys left out take the schema's defaults:
    :class:`~adapterflow.settings.ExportSettings`). A push is checked first (the ``HF_TOKEN``
    token, the repo id), so a missing token costs no export. Returns the export's manifest.

    Example:
        >>> import os
        >>> from adapterflow.generate.export import export_and_push
        >>> export_and_push("qa", "chunks", "corpus", "out", {"push": True, "repo": "a/b"})
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: unknown export setting(s): repo
        >>> saved = os.environ.pop("HF_TOKEN", None)
        >>> export_and_push("qa", "chunks", "corpus", "out", {"push": True})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: push_to_hub needs a Hugging Face token ...
        >>> if saved is not None: os.environ["HF_TOKEN"] = saved
    """
    export = export or {}
    unknown = set(export) - EXPORT_KEYS
    if unknown:
        raise ConfigError(f"unknown export setting(s): {', '.join(sorted(unknown))}")
    if export.get("push"):
        # Refuse before any work: a missing token should not cost an export first. (Before the
        # schema's check too, whose message for a bad repo_id shows a regex, not the form.)
        hub_token()
        check_repo_id(export.get("repo_id"))
    settings = ExportSettings.from_block(export)
    manifest = export_dataset(qa_dir, chunks, corpus, out_dir)
    if settings.push:
        push_to_hub(out_dir, settings.repo_id, private=settings.private)
    return manifest
