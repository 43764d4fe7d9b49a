"""Typed settings read every key of their schema block, with the schema's defaults only."""

from __future__ import annotations

import pytest

from adapterflow.config import load_schema
from adapterflow.errors import ConfigError
from adapterflow.settings import EvaluationSettings, StageSettings

SCHEMA = load_schema()


def test_stage_settings_have_a_field_for_every_schema_key():
    keys = set(SCHEMA["definitions"]["stage"]["properties"])
    assert set(StageSettings.model_fields) == keys
    lora = SCHEMA["definitions"]["stage"]["properties"]["lora"]["properties"]
    assert set(StageSettings.model_fields["lora"].annotation.model_fields) == set(lora)


def test_evaluation_settings_have_a_field_for_every_schema_key():
    assert set(EvaluationSettings.model_fields) == set(
        SCHEMA["properties"]["evaluation"]["properties"]
    )


def test_defaults_come_from_the_schema():
    stage = StageSettings.from_block({})
    for key, spec in SCHEMA["definitions"]["stage"]["properties"].items():
        if "default" in spec and not isinstance(spec["default"], dict):
            assert getattr(stage, key) == spec["default"], key
    lora = SCHEMA["definitions"]["stage"]["properties"]["lora"]["properties"]
    assert stage.lora.r == lora["r"]["default"] and stage.lora.alpha == lora["alpha"]["default"]
    evaluation = EvaluationSettings.from_block(None)
    for key, spec in SCHEMA["properties"]["evaluation"]["properties"].items():
        assert getattr(evaluation, key) == spec["default"], key


def test_a_value_the_schema_refuses_names_the_key():
    with pytest.raises(ConfigError, match=r"^stage: lora.r: 0 is less than the minimum of 1"):
        StageSettings.from_block({"lora": {"r": 0}})
    with pytest.raises(ConfigError, match=r"^stages.news: warmup_ratio: 2 is greater than"):
        StageSettings.from_block({"warmup_ratio": 2}, where="stages.news")
    with pytest.raises(ConfigError, match=r"^evaluation: device: 'gpu' is not one of"):
        EvaluationSettings.from_block({"device": "gpu"})


def test_settings_are_frozen_and_parsed_once():
    stage = StageSettings.from_block({"max_steps": 3})
    assert StageSettings.from_block(stage) is stage
    with pytest.raises(ValueError):
        stage.max_steps = 4  # type: ignore[misc]
