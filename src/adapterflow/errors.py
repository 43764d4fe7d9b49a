"""Errors that name the file, line and field at fault.

Every check at a stage boundary raises one of these before expensive work starts, so a
user sees a single line saying what to fix and where.

Example:
    >>> from adapterflow.errors import DataError
    >>> str(DataError("queries.jsonl", "missing field", line=3, field="text"))
    "queries.jsonl:3: field 'text': missing field"
"""

from __future__ import annotations

from os import PathLike


class AdapterflowError(Exception):
    """Base class: an error the user can fix from its message alone."""


class ConfigError(AdapterflowError):
    """A config value is missing, of the wrong type, or refers to something undefined."""


class DataError(AdapterflowError):
    """Bad input data: names the file, the 1-based line (when there is one) and the field."""

    def __init__(
        self,
        path: str | PathLike[str],
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f"field '{field}': {message}" if field else message
        super().__init__(f"{where}: {what}")


class SourceError(AdapterflowError):
    """A raw source could not be fetched or did not match its declared checksum."""
