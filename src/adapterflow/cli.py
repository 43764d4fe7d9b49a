"""Running a library function from a rule script or from the command line.

Every step's script (``scripts/<rule>.py``) calls one library function inside
:func:`running`, whether Snakemake's ``script:`` directive runs it with its ``snakemake`` object
or ``python -m adapterflow <step>`` runs it with the same names from the command line
(:mod:`adapterflow.steps`): the log goes to the log file (the rule's, or ``--log``) and to
stderr; an error is one readable line, ``error: <message>``, last on stderr, its traceback goes
to the log file only, and the process exits with status 1. ``rule=False`` (a caller without a
log file of its own) writes no traceback anywhere.

Config blocks arrive as mappings from Snakemake's ``params:``; on the command line they are
inline JSON or the path of a YAML/JSON file (:func:`load_block`, or :func:`block_arg` as an
argparse ``type=``).

Example:
    >>> from adapterflow.cli import load_block, running
    >>> from adapterflow.errors import ConfigError
    >>> load_block('{"strategy": "qrels", "options": {"split": "train"}}')
    {'strategy': 'qrels', 'options': {'split': 'train'}}
    >>> with running(None, rule=False):
    ...     raise ConfigError("no split 'validation'")
    Traceback (most recent call last):
    ...
    SystemExit: error: no split 'validation'
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from adapterflow.errors import AdapterflowError, ConfigError
from adapterflow.logs import setup_logging

_LOGGER = logging.getLogger(__name__)


def load_block(value: str | os.PathLike[str]) -> dict[str, Any]:
    """A config block given on the command line: the path of a YAML/JSON file holding one
    mapping (YAML is a superset of JSON), or the mapping as inline JSON.

    Raises :class:`~adapterflow.errors.ConfigError` when ``value`` is neither, or holds
    something other than a mapping.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.cli import load_block
        >>> load_block('{"k": 2, "seed": 0}')
        {'k': 2, 'seed': 0}
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "mining.yaml"
        >>> _ = path.write_text("strategy: bm25\\nk: 2\\n")
        >>> load_block(path)
        {'strategy': 'bm25', 'k': 2}
        >>> load_block("[1, 2]")
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: expected a mapping, got list: '[1, 2]'
    """
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # inline JSON longer than a file name may be, or with a NUL
        is_file = False
    if is_file:
        try:
            block = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: not a readable YAML/JSON file ({err})") from None
    else:
        try:
            block = json.loads(str(value))
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"neither a readable JSON/YAML file nor inline JSON: {str(value)!r} ({err})"
            ) from None
    if not isinstance(block, dict):
        raise ConfigError(f"expected a mapping, got {type(block).__name__}: {str(value)!r}")
    return block


def block_arg(value: str) -> dict[str, Any]:
    """:func:`load_block` as an argparse ``type=``: a bad block is a usage error (status 2)
    that names the option.

    Example:
        >>> import argparse
        >>> from adapterflow.cli import block_arg
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("--stage", type=block_arg, default="{}")
        >>> parser.parse_args(["--stage", '{"max_steps": 10}']).stage
        {'max_steps': 10}
        >>> parser.parse_args([]).stage
        {}
    """
    try:
        return load_block(value)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def as_list(value: str | os.PathLike[str] | Iterable[Any]) -> list[Any]:
    """A list of the files of a Snakemake input, which is a plain string when it names one file.

    Example:
        >>> from adapterflow.cli import as_list
        >>> as_list("results/eval/a.json"), as_list(["a.json", "b.json"]), as_list([])
        (['results/eval/a.json'], ['a.json', 'b.json'], [])
    """
    if isinstance(value, str | os.PathLike):
        return [value]
    return list(value)


@contextmanager
def running(
    log: str | os.PathLike[str] | Sequence[str] | None,
    *,
    rule: bool,
    logger: logging.Logger | None = None,
    errors: tuple[type[Exception], ...] = (AdapterflowError,),
) -> Iterator[None]:
    """Set up logging, run the body, and report ``errors`` as the mode expects.

    ``log`` is the log file: a path, ``None`` (stderr only), or a list of paths whose first one
    is used (pass ``snakemake.log`` as it is; an empty list means stderr only). ``rule`` says
    whether the script runs under Snakemake. An exception of one of the ``errors`` types is
    logged as one line with ``logger`` (default: this module's) and turned into
    ``SystemExit("error: <message>")`` (exit status 1), so the terminal shows one line; under a
    rule its traceback is appended to the log file only. Other exceptions pass through
    untouched (a bug, not a user mistake: its traceback belongs on the terminal).

    Example:
        >>> from adapterflow.cli import running
        >>> from adapterflow.errors import DataError
        >>> with running([], rule=True):
        ...     raise DataError("pairs.jsonl", "missing", line=2, field="positive")
        Traceback (most recent call last):
        ...
        SystemExit: error: pairs.jsonl:2: field 'positive': missing
        >>> with running(None, rule=False, errors=(ValueError,)):
        ...     raise ValueError("undeclared figures")
        Traceback (most recent call last):
        ...
        SystemExit: error: undeclared figures
    """
    if log is not None and not isinstance(log, str | os.PathLike):
        log = log[0] if log else None
    setup_logging(log)
    try:
        yield
    except errors as err:
        (logger or _LOGGER).error("%s", err)
        if rule and log:
            # The user reads one line on the terminal; whoever debugs the job finds the
            # traceback in the rule's log, which Snakemake names next to the failure.
            with open(log, "a", encoding="utf-8") as handle:
                handle.write("".join(traceback.format_exception(err)))
        sys.exit(f"error: {err}")
