"""Small, strict file helpers shared by every stage: JSONL/TSV, checksums, atomic outputs.

Example:
    >>> import tempfile, pathlib
    >>> from adapterflow.io import atomic_dir, write_jsonl, read_jsonl
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_dir(root / "out") as tmp:
    ...     write_jsonl(tmp / "rows.jsonl", [{"_id": "a", "text": "hello"}])
    1
    >>> [row for _, row in read_jsonl(root / "out" / "rows.jsonl", required={"_id": str})]
    [{'_id': 'a', 'text': 'hello'}]
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from adapterflow.errors import DataError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_fields(
    path: Path, line: int, row: Any, required: Mapping[str, type | tuple[type, ...]]
) -> None:
    if not isinstance(row, dict):
        raise DataError(path, f"expected a JSON object, got {type(row).__name__}", line=line)
    for field, kind in required.items():
        if field not in row:
            raise DataError(path, "missing", line=line, field=field)
        value = row[field]
        # bool is an int subclass; a score of `true` is a bug in the data, not a number.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise DataError(
                path,
                f"expected {_type_names(kind)}, got {type(value).__name__}",
                line=line,
                field=field,
            )


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def _utf8_lines(path: Path, handle: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of a file opened in binary mode; a line that is not UTF-8 is a
    :class:`DataError` naming it (text mode would fail somewhere in a read-ahead block)."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                path, f"not valid UTF-8 ({err.reason} at byte {err.start} of the line)", line=number
            ) from None


def read_jsonl(
    path: str | os.PathLike[str],
    required: Mapping[str, type | tuple[type, ...]] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; raise :class:`DataError` on the
    first malformed line or missing/mistyped required field."""
    path = Path(path)
    with open(path, "rb") as handle:
        for number, text in _utf8_lines(path, handle):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(path, f"malformed JSON ({err.msg})", line=number) from None
            _check_fields(path, number, row, required or {})
            yield number, row


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as UTF-8 JSONL (non-ASCII kept readable); return the row count."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_tsv(
    path: str | os.PathLike[str], columns: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` from a TSV whose header must start with ``columns``."""
    path = Path(path)
    with open(path, "rb") as handle:
        lines = (text for _, text in _utf8_lines(path, handle))
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataError(path, "empty file, expected a header line", line=1)
        if [h.strip() for h in header[: len(columns)]] != columns:
            raise DataError(path, f"header must be {columns!r}, got {header!r}", line=1)
        for number, fields in enumerate(reader, start=2):
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) < len(columns):
                missing = columns[len(fields)]
                raise DataError(path, "missing", line=number, field=missing)
            yield number, {c: fields[i].strip() for i, c in enumerate(columns)}


def write_tsv(
    path: str | os.PathLike[str], columns: list[str], rows: Iterable[Iterable[Any]]
) -> int:
    """Write a TSV with a header line; return the number of data rows."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(list(row))
            count += 1
    return count


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write pretty, key-sorted JSON (stable bytes for the same content)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")


def remove_stale_temporaries(final: str | os.PathLike[str]) -> list[Path]:
    """Remove what a killed writer of ``final`` left beside it: the ``.{name}.XXXXXXXX.tmp``
    files and directories of :func:`atomic_dir` and :func:`atomic_file` (SIGKILL runs no
    clean-up). Assumes one writer per final path at a time, as Snakemake guarantees; returns
    what was removed.

    Example:
        >>> import tempfile, pathlib
        >>> from adapterflow.io import remove_stale_temporaries
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (root / ".out.json.ab12cd_9.tmp").write_text('{"half": ')
        >>> _ = (root / ".out.json.bak.ab12cd_9.tmp").write_text("another file's")
        >>> [p.name for p in remove_stale_temporaries(root / "out.json")]
        ['.out.json.ab12cd_9.tmp']
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    # tempfile names: prefix, 8 characters of [a-z0-9_], suffix.
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.[a-z0-9_]{{8}}\.tmp$")
    removed = []
    for path in sorted(final.parent.iterdir()):
        if pattern.match(path.name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final`` and rename it into place.

    On any exception the temporary directory is removed and ``final`` is left untouched
    (absent if it did not exist), so a failed or killed job never leaves a half-written output.
    An existing ``final`` is renamed away before the new one takes its place (never emptied
    in place), and temporaries of an earlier, killed writer are removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700 directories
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
            os.replace(final, old)  # onto an empty directory: one rename
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Like :func:`atomic_dir` for a single file."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600 files; results are meant to be shared like any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Formats every figure is written in, and the PNG resolution.
FIGURE_FORMATS = ("png", "svg")
FIGURE_DPI = 150


def save_figure(fig: Any, out_base: str | os.PathLike[str]) -> list[Path]:
    """Write a matplotlib figure as ``{out_base}.png`` and ``{out_base}.svg``, atomically and
    byte-for-byte reproducibly (no dates, fixed SVG ids); return both paths."""
    import matplotlib

    # Append rather than with_suffix: a task name may itself contain a dot.
    paths = [Path(f"{os.fspath(out_base)}.{fmt}") for fmt in FIGURE_FORMATS]
    # The SVG would otherwise embed the date and random element ids, changing every run.
    with matplotlib.rc_context({"svg.hashsalt": "adapterflow", "svg.fonttype": "path"}):
        for path in paths:
            fmt = path.suffix[1:]
            metadata = {"Date": None} if fmt == "svg" else {"Software": None}
            with atomic_file(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=FIGURE_DPI, metadata=metadata)
    return paths
