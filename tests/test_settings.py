"""Typed settings read every key of their schema block, with the schema's defaults only."""

from __future__ import annotations

import pytest

from adapterflow.config import load_schema
from adapterflow.errors import ConfigError
from adapterflow.settings import (
    ChunkSettings,
    CuratedSettings,
    EvaluationSettings,
    ExportSettings,
    ModelSettings,
    NIAHSettings,
    PairsSettings,
    PrepareSettings,
    QALLMSettings,
    StageSettings,
    TaskSettings,
    TripletsSettings,
)

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


def _block(pointer: str) -> dict:
    node = SCHEMA
    for part in pointer.removeprefix("#/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _plain(value):
    """Settings hold tuples where the schema writes lists."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


BLOCK_SETTINGS = [
    ModelSettings,
    TaskSettings,
    PairsSettings,
    TripletsSettings,
    ChunkSettings,
    NIAHSettings,
    QALLMSettings,
    CuratedSettings,
    ExportSettings,
    PrepareSettings,
]


@pytest.mark.parametrize("settings", BLOCK_SETTINGS, ids=lambda cls: cls.__name__)
def test_block_settings_have_a_field_for_every_schema_key(settings):
    assert set(settings.model_fields) == set(_block(settings.SCHEMA)["properties"])


@pytest.mark.parametrize("settings", BLOCK_SETTINGS, ids=lambda cls: cls.__name__)
def test_block_settings_take_the_schema_defaults_and_no_others(settings):
    parsed = settings.from_block({})
    for key, spec in _block(settings.SCHEMA)["properties"].items():
        assert _plain(getattr(parsed, key)) == spec.get("default"), key


def test_the_qa_llm_pointer_is_the_llm_branch():
    branches = SCHEMA["definitions"]["qa_set"]["allOf"]
    engines = [branch["if"]["properties"]["engine"]["const"] for branch in branches]
    assert QALLMSettings.SCHEMA == f"#/definitions/qa_set/allOf/{engines.index('llm')}/then"


def test_qa_settings_defaults_are_the_schemas():
    from adapterflow.generate.qa_llm import QASettings

    schema = QALLMSettings.from_block({})
    built_in = QASettings()
    for key, spec in _block(QALLMSettings.SCHEMA)["properties"].items():
        if "default" in spec:
            assert getattr(built_in, key) == getattr(schema, key) == spec["default"], key


def test_strategy_and_format_options_get_no_schema_defaults():
    # Their defaults are registered with each strategy and format (adapterflow.data.registry):
    # a config's options, and the params of the jobs that read them, stay as written.
    assert PairsSettings.from_block({"strategy": "qrels"}).options == {}
    assert TripletsSettings.from_block({"strategy": "bm25"}).options == {}
    assert PrepareSettings.from_block({"format": "mediawiki_xml"}).options == {}


def test_model_settings_leave_out_the_hub_id_of_a_snapshot():
    block = {"path": "results/models/e5", "hub_id": "intfloat/e5-small-v2", "pooling": "cls"}
    model = ModelSettings.from_block(block)
    assert (model.path, model.pooling) == ("results/models/e5", "cls")
    with pytest.raises(ConfigError, match=r"^model: \(top level\): Additional properties"):
        ModelSettings.from_block({"path": "x", "hub": "intfloat/e5-small-v2"})


def test_a_value_a_block_schema_refuses_names_the_block_and_key():
    with pytest.raises(ConfigError, match=r"^model: pooling: 'max' is not one of"):
        ModelSettings.from_block({"pooling": "max"})
    with pytest.raises(ConfigError, match=r"^tasks.news: top_k: 0 is less than the minimum of 1"):
        TaskSettings.from_block({"top_k": 0}, where="tasks.news")
    with pytest.raises(ConfigError, match=r"^curated: eval_fraction: 1 is greater than or equal"):
        CuratedSettings.from_block({"eval_fraction": 1})
