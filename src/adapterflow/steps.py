"""The workflow's steps by name: ``python -m adapterflow <step>`` runs one outside Snakemake.

A step is a rule of ``rules/*.smk`` and its script, ``scripts/<step>.py``, the one place the
rule's library call is written. The command builds from its options the object Snakemake hands
a script as ``snakemake`` (:class:`Job`) and runs the script with it, as the rule would::

    python -m adapterflow STEP [--input [NAME=]PATH]... [--output [NAME=]PATH]...
        [--params MAPPING]... [--param NAME=VALUE]... [--wildcard NAME=VALUE]...
        [--threads N] [--log FILE]

- ``--input`` / ``--output``: a file by the name the rule gives it (``--input pairs=p.jsonl``),
  or by position when the rule names none (``--output results/triplets/t.jsonl``); a name
  given several times is a list (``--input qa=a.jsonl --input qa=b.jsonl``);
- ``--params``: the rule's params as one mapping, a YAML/JSON file or inline JSON
  (``{"mining": {"strategy": "bm25", "k": 2}, "held_out_splits": [["results/clean/news",
  "test"]]}``); repeatable, later ones win;
- ``--param NAME=VALUE``: one param, ``VALUE`` inline JSON or else a plain string;
- ``--wildcard NAME=VALUE``: a wildcard the step reads (``--wildcard dataset=lee50``);
- ``--threads``: the rule's threads (default: the library's own default); ``--log``: the
  rule's log file.

``python -m adapterflow --help`` lists the steps (the scripts of the workflow checkout the
package is installed from), ``python -m adapterflow STEP --help`` shows the script's docstring:
what the rule reads. A step stops on bad input as its rule does (the script's
:func:`adapterflow.cli.running`): ``error: <message>`` as the last line on stderr, exit status
1, no output, and the traceback appended to ``--log``; a name the script reads that the
command line does not give is such an error too (:class:`MissingName`).

Example:
    >>> import json, pathlib, tempfile
    >>> from adapterflow.steps import main
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> pairs = [{"anchor": f"q{i}", "positive": f"p{i}"} for i in range(3)]
    >>> _ = (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in pairs))
    >>> main(["mine_triplets", "--input", f"pairs={root / 'pairs.jsonl'}",
    ...       "--output", str(root / "triplets.jsonl"),
    ...       "--param", 'mining={"strategy": "random", "k": 1}'])
    >>> len((root / "triplets.jsonl").read_text().splitlines())
    3
    >>> main(["mine_triplets", "--output", str(root / "t.jsonl")])
    Traceback (most recent call last):
    ...
    SystemExit: error: mine_triplets reads input 'pairs': give --input pairs=PATH
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import runpy
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adapterflow
from adapterflow.cli import block_arg
from adapterflow.errors import ConfigError

_NAME = re.compile(r"^([A-Za-z_]\w*)=(.*)$", re.DOTALL)


class MissingName(ConfigError, AttributeError):
    """A name a step reads that the command line does not give (an AttributeError too, so
    ``hasattr`` and ``getattr(..., default)`` work as on Snakemake's objects)."""


class Files(list[str]):
    """A rule's input or output files as the command line gives them: by position
    (``files[0]``) and by name (``files.pairs``, ``files.get("corpus")``); a name given several
    times is a list of paths, once a plain path, as in Snakemake.

    Example:
        >>> from adapterflow.steps import Files
        >>> files = Files([("qa", "a.jsonl"), ("qa", "b.jsonl"), ("model", "m")], "input")
        >>> files.qa, files.model, files[0], files.get("corpus")
        (['a.jsonl', 'b.jsonl'], 'm', 'a.jsonl', None)
        >>> files.corpus
        Traceback (most recent call last):
        ...
        adapterflow.steps.MissingName: step reads input 'corpus': give --input corpus=PATH
    """

    def __init__(self, entries: Iterable[tuple[str | None, str]] = (), kind: str = "input"):
        entries = list(entries)
        super().__init__(path for _, path in entries)
        named: dict[str, list[str]] = {}
        for name, path in entries:
            if name is not None:
                named.setdefault(name, []).append(path)
        self._named = {
            name: paths[0] if len(paths) == 1 else paths for name, paths in named.items()
        }
        self._kind = kind
        self._step = "step"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._named[name]
        except KeyError:
            raise MissingName(
                f"{self._step} reads {self._kind} {name!r}: give --{self._kind} {name}=PATH"
            ) from None

    def __getitem__(self, index: Any) -> Any:
        try:
            return super().__getitem__(index)
        except IndexError:
            raise MissingName(
                f"{self._step} reads {self._kind} {index}: give --{self._kind} PATH"
            ) from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._named.get(name, default)


class Names(dict[str, Any]):
    """A rule's params or wildcards as the command line gives them: by attribute
    (``params.mining``) and as a mapping (``params.get("model")``).

    Example:
        >>> from adapterflow.steps import Names
        >>> params = Names({"mining": {"k": 2}}, "param")
        >>> params.mining, params.get("model")
        ({'k': 2}, None)
    """

    def __init__(self, values: Any = (), kind: str = "param"):
        super().__init__(values)
        self._kind = kind
        self._step = "step"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise MissingName(
                f"{self._step} reads {self._kind} {name!r}: give --{self._kind} {name}=VALUE"
            ) from None


@dataclass
class Job:
    """What Snakemake hands a rule's script as ``snakemake``, for a step run from the command
    line: ``input``, ``output``, ``params``, ``wildcards``, ``threads`` and ``log``."""

    input: Files = field(default_factory=lambda: Files(kind="input"))
    output: Files = field(default_factory=lambda: Files(kind="output"))
    params: Names = field(default_factory=lambda: Names(kind="param"))
    wildcards: Names = field(default_factory=lambda: Names(kind="wildcard"))
    threads: int | None = None
    log: list[str] = field(default_factory=list)

    def named(self, step: str) -> Job:
        """This job with ``step`` named in its messages about missing names."""
        for part in (self.input, self.output, self.params, self.wildcards):
            part._step = step
        return self


def scripts_dir() -> Path:
    """``scripts/`` of the workflow checkout this package is installed from (editable)."""
    scripts = Path(adapterflow.__file__).resolve().parents[2] / "scripts"
    if not scripts.is_dir():
        raise ConfigError(
            f"no workflow scripts at {scripts}: install adapterflow from its checkout "
            "(pip install -e .) to run its steps"
        )
    return scripts


def steps(scripts: Path) -> dict[str, str]:
    """Every step (a ``scripts/<step>.py``) by name, with its script's docstring."""
    return {
        path.stem: ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
        for path in sorted(scripts.glob("*.py"))
    }


# --- the command line --------------------------------------------------------------------------


def _file(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` or ``PATH`` (an ``=`` after something that is no name is part of it)."""
    match = _NAME.match(value)
    return (match[1], match[2]) if match else (None, value)


def _assignment(value: str) -> tuple[str, str]:
    match = _NAME.match(value)
    if not match:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return match[1], match[2]


def _param(value: str) -> tuple[str, Any]:
    """``NAME=VALUE``: ``VALUE`` as inline JSON, else the string as it is."""
    name, text = _assignment(value)
    try:
        return name, json.loads(text)
    except json.JSONDecodeError:
        return name, text


#: The repeatable options: flag, metavar, type, help.
_OPTIONS = (
    ("--input", "[NAME=]PATH", _file, "an input, by its name in the rule (repeated: a list)"),
    ("--output", "[NAME=]PATH", _file, "an output, by its name in the rule (none: by position)"),
    ("--params", "MAPPING", block_arg, "the rule's params: a YAML/JSON file or inline JSON"),
    ("--param", "NAME=VALUE", _param, "one param: inline JSON, else a string (after --params)"),
    ("--wildcard", "NAME=VALUE", _assignment, "a wildcard the step reads"),
)


def parser(scripts: Path | None = None) -> argparse.ArgumentParser:
    """The command line: one subcommand per script, each with the same options."""
    common = argparse.ArgumentParser(add_help=False)
    files = common.add_argument_group("the job, named as in the rule")
    for flag, metavar, kind, text in _OPTIONS:
        files.add_argument(flag, metavar=metavar, type=kind, action="append", default=[], help=text)
    files.add_argument("--threads", type=int, help="the rule's threads")
    files.add_argument("--log", metavar="FILE", help="the rule's log file")

    main_parser = argparse.ArgumentParser(
        prog="python -m adapterflow",
        description="Run one step of the workflow (its scripts/STEP.py) outside Snakemake, "
        "with its rule's names.",
        epilog="python -m adapterflow STEP --help shows what a step reads.",
    )
    subparsers = main_parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for name, doc in steps(scripts or scripts_dir()).items():
        subparsers.add_parser(
            name,
            parents=[common],
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    return main_parser


def job_from_args(args: argparse.Namespace) -> Job:
    """The :class:`Job` a parsed command line describes."""
    params: dict[str, Any] = {}
    for block in args.params:
        params.update(block)
    params.update(args.param)
    return Job(
        input=Files(args.input, "input"),
        output=Files(args.output, "output"),
        params=Names(params, "param"),
        wildcards=Names(dict(args.wildcard), "wildcard"),
        threads=args.threads,
        log=[args.log] if args.log else [],
    ).named(args.step)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m adapterflow STEP ...``: run ``scripts/STEP.py`` as its rule would."""
    try:
        scripts = scripts_dir()
        args = parser(scripts).parse_args(argv)
        job = job_from_args(args)
        runpy.run_path(
            str(scripts / f"{args.step}.py"), init_globals={"snakemake": job}, run_name="__main__"
        )
    except ConfigError as err:  # no scripts, or a missing name read outside `running`
        sys.exit(f"error: {err}")
