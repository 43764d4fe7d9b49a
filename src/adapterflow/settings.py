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
