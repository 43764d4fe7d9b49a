"""A hub model snapshotted once into a local directory with a manifest (rule download_model).

A ``models:`` entry whose ``path`` is a Hugging Face hub id (not ``pypi:``, not a local
directory) is downloaded by the localrule ``download_model`` on the machine that runs
Snakemake (the login node of a cluster) into ``results/models/{name}/``; every job that loads
the model reads that directory, so compute nodes never need the network.

:func:`download_model` asks the hub which commit the requested revision (``models.<name>.
revision``: a branch, tag or commit; default ``main``) points to, with a short timeout
(``HF_HUB_ETAG_TIMEOUT``, default 10 s), downloads that snapshot into the hub cache
(``HF_HUB_CACHE`` / ``HF_HOME``) and hard-links (or, across file systems, copies) its files
into the output directory, written atomically. When the hub cannot be reached (no network,
``HF_HUB_OFFLINE=1``) a complete snapshot already in the cache is used; otherwise it fails at
once with one line saying how to pre-download the model. ``manifest.json`` records the repo
id, the requested revision, the resolved commit, the size and sha256 of every file (checked
against the hub's LFS sha256 where the cache has it) and the huggingface_hub version.

Example (offline, nothing cached):
    >>> import pathlib, tempfile
    >>> from adapterflow.download import download_model
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> download_model("enc", "org/no-such-model", None, root / "enc",
    ...                cache_dir=root / "hub", offline=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    adapterflow.errors.SourceError: models.enc.path: cannot reach the Hugging Face hub for ...
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapterflow.errors import SourceError
from adapterflow.io import atomic_dir, sha256_file, write_json

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
DEFAULT_REVISION = "main"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def download_model(
    name: str,
    reference: str,
    revision: str | None,
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    offline: bool | None = None,
) -> dict[str, Any]:
    """Snapshot hub model ``reference`` at ``revision`` (None: ``main``) into ``out_dir``.

    ``name`` is the model's name under ``models:`` (errors name ``models.<name>``);
    ``cache_dir`` defaults to huggingface_hub's cache (``HF_HUB_CACHE``), ``timeout`` (seconds
    to wait for the hub) to ``HF_HUB_ETAG_TIMEOUT`` and ``offline`` to ``HF_HUB_OFFLINE``.
    Returns the manifest written to ``out_dir/manifest.json``. Raises
    :class:`~adapterflow.errors.SourceError` (one line) when the hub cannot be reached and the
    cache does not hold the revision, when the repo or revision does not exist, or when a
    cached file does not match its sha256; ``out_dir`` is then left as it was.
    """
    import huggingface_hub
    from huggingface_hub import constants

    requested = revision or DEFAULT_REVISION
    cache = Path(cache_dir if cache_dir is not None else constants.HF_HUB_CACHE).expanduser()
    timeout = float(constants.HF_HUB_ETAG_TIMEOUT if timeout is None else timeout)
    offline = constants.HF_HUB_OFFLINE if offline is None else offline
    started = time.perf_counter()
    fetched_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    problem = "HF_HUB_OFFLINE is set" if offline else _probe(name, reference, requested, timeout)
    if problem is None:
        snapshot = _download(name, reference, requested, cache, timeout)
    else:
        snapshot = _cached(name, reference, requested, cache, problem)
        logger.warning(
            "%s: the hub is not reachable (%s); using the snapshot of %r in the hub cache %s",
            reference,
            problem,
            requested,
            cache,
        )
    commit = snapshot.name
    if not _COMMIT.match(commit):
        raise SourceError(f"models.{name}.path: {snapshot} is not a snapshot of the hub cache")

    with atomic_dir(out_dir) as staging:
        files = _materialise(name, snapshot, staging)
        if (staging / MANIFEST_NAME).exists():
            raise SourceError(
                f"models.{name}.path: {reference!r} has its own {MANIFEST_NAME}, which the "
                "download manifest would overwrite"
            )
        manifest = {
            "model": name,
            "repo_id": reference,
            "revision": requested,
            "commit": commit,
            "source": "hub" if problem is None else "cache",
            "fetched_at": fetched_at,
            "huggingface_hub_version": huggingface_hub.__version__,
            "files": files,
        }
        write_json(staging / MANIFEST_NAME, manifest)
    logger.info(
        "downloaded %s (%s @ %s, commit %s from the %s): %d files, %d bytes in %.1f s",
        name,
        reference,
        requested,
        commit,
        manifest["source"],
        len(files),
        sum(f["size"] for f in files),
        time.perf_counter() - started,
    )
    return manifest


def _probe(name: str, reference: str, revision: str, timeout: float) -> str | None:
    """None when the hub answers for the revision, else why it could not be reached.

    huggingface_hub asks the hub with no timeout before a snapshot download, which hangs for
    minutes where a firewall drops packets; this asks once, with one."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        HfApi().model_info(reference, revision=revision, timeout=timeout)
    except OfflineModeIsEnabled:
        return "HF_HUB_OFFLINE is set"
    except RevisionNotFoundError:
        raise SourceError(
            f"models.{name}.revision: {revision!r} is not a branch, tag or commit of "
            f"{reference!r} on the Hugging Face hub"
        ) from None
    except GatedRepoError:
        raise SourceError(
            f"models.{name}.path: {reference!r} is gated on the Hugging Face hub: accept its "
            "terms on the model page, then log in (hf auth login) or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise SourceError(
            f"models.{name}.path: no model {reference!r} on the Hugging Face hub (if it is "
            "private, log in with hf auth login or set HF_TOKEN)"
        ) from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status is not None and status < 500:
            raise SourceError(
                f"models.{name}.path: the Hugging Face hub refused {reference!r} "
                f"(HTTP {status}: {_first_line(err)})"
            ) from None
        return f"HTTP {status}: {_first_line(err)}"
    except HFValidationError as err:  # not a repo id at all
        raise SourceError(
            f"models.{name}.path: {reference!r} is neither a local directory, pypi:<package> "
            f"nor a hub id ({_first_line(err)})"
        ) from None
    except Exception as err:  # no connection: the HTTP library's own error types
        if "timeout" in type(err).__name__.lower():
            return f"no answer within HF_HUB_ETAG_TIMEOUT={timeout:g} s"
        return f"{type(err).__name__}: {_first_line(err)}"
    return None


def _download(name: str, reference: str, revision: str, cache: Path, timeout: float) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id=reference, revision=revision, cache_dir=cache, etag_timeout=timeout
        )
    except Exception as err:  # the network went away mid-download, a full disk, ...
        raise SourceError(
            f"models.{name}.path: downloading {reference!r} at {revision!r} into the hub cache "
            f"{cache} failed ({type(err).__name__}: {_first_line(err)}); run download_model again"
        ) from err
    return Path(folder)


def _cached(name: str, reference: str, revision: str, cache: Path, problem: str) -> Path:
    """The complete snapshot of ``revision`` in the hub cache, or the one-line error saying
    how to pre-download it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                repo_id=reference, revision=revision, cache_dir=cache, local_files_only=True
            )
        )
    except LocalEntryNotFoundError as err:
        incomplete = "incomplete" if type(err).__name__ == "IncompleteSnapshotError" else "not"
        raise SourceError(
            f"models.{name}.path: cannot reach the Hugging Face hub for {reference!r} "
            f"({problem}) and revision {revision!r} is {incomplete} in the hub cache {cache}; "
            f"pre-download it on a machine with network: hf download {reference} --revision "
            f"{revision} --local-dir models/{name}, then set models.{name}.path to that "
            "directory (or copy that machine's hub cache here and point HF_HUB_CACHE at it)"
        ) from None


def _materialise(name: str, snapshot: Path, out: Path) -> list[dict[str, Any]]:
    """Hard-link (or copy) every file of a cache snapshot into ``out``; their path, size and
    sha256, checked against the blob name where the cache names a blob by its sha256 (LFS)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(snapshot):
        dirnames.sort()
        for filename in sorted(filenames):
            source = Path(dirpath) / filename
            blob = source.resolve()
            rel = source.relative_to(snapshot).as_posix()
            digest = sha256_file(blob)
            if _SHA256.match(blob.name) and blob.name != digest:
                raise SourceError(
                    f"models.{name}.path: {rel} in the hub cache is corrupt (sha256 {digest}, "
                    f"the hub says {blob.name}); delete {blob} and run download_model again"
                )
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(blob, target)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(blob, target)
            files.append({"path": rel, "size": target.stat().st_size, "sha256": digest})
    if not files:
        raise SourceError(f"models.{name}.path: the snapshot {snapshot} holds no files")
    return sorted(files, key=lambda entry: entry["path"])


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
