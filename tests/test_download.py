"""adapterflow.download: hub models snapshotted into a directory, offline, on a hub cache
fixture (tests/hub_cache.py) in huggingface_hub's layout."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from pathlib import Path

import pytest
from hub_cache import add_snapshot, tiny_bert

from adapterflow.download import download_model
from adapterflow.errors import SourceError

REPO_ID = "org/tiny-bert"


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict:
    """A hub cache holding two commits of org/tiny-bert: tag v1 (hidden size 32) and main
    (hidden size 48)."""
    root = tmp_path_factory.mktemp("hub")
    cache = root / "hub"
    v1 = add_snapshot(cache, REPO_ID, tiny_bert(root / "v1", hidden_size=32), refs=("v1",))
    main = add_snapshot(cache, REPO_ID, tiny_bert(root / "main", hidden_size=48))
    return {
        "cache": cache,
        "v1": v1,
        "main": main,
        "sources": {v1: root / "v1", main: root / "main"},
    }


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1, as huggingface_hub reads it (once, at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_offline_download_copies_the_cached_snapshot_with_a_manifest(hub, offline, tmp_path):
    import huggingface_hub
    from transformers import AutoModel

    out = tmp_path / "results" / "models" / "tiny"
    manifest = download_model("tiny", REPO_ID, None, out, cache_dir=hub["cache"])

    source = hub["sources"][hub["main"]]
    expected = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    assert [f["path"] for f in manifest["files"]] == expected
    for entry in manifest["files"]:
        assert entry["sha256"] == sha256(source / entry["path"]) == sha256(out / entry["path"])
        assert entry["size"] == (source / entry["path"]).stat().st_size
        assert not (out / entry["path"]).is_symlink()
    assert manifest["repo_id"] == REPO_ID and manifest["revision"] == "main"
    assert manifest["commit"] == hub["main"] and manifest["source"] == "cache"
    assert manifest["huggingface_hub_version"] == huggingface_hub.__version__
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # A real model that loads from the copy with no hub at all.
    assert AutoModel.from_pretrained(str(out)).config.hidden_size == 48


@pytest.mark.parametrize("pin", ["v1", "commit"])
def test_a_revision_pin_selects_its_snapshot(hub, offline, tmp_path, pin):
    revision = hub["v1"] if pin == "commit" else pin
    manifest = download_model("tiny", REPO_ID, revision, tmp_path / "tiny", cache_dir=hub["cache"])
    assert manifest["commit"] == hub["v1"] and manifest["revision"] == revision
    config = json.loads((tmp_path / "tiny" / "config.json").read_text())
    assert config["hidden_size"] == 32


def test_a_new_download_replaces_the_old_one_atomically(hub, offline, tmp_path):
    out = tmp_path / "tiny"
    download_model("tiny", REPO_ID, "v1", out, cache_dir=hub["cache"])
    download_model("tiny", REPO_ID, None, out, cache_dir=hub["cache"])
    assert json.loads((out / "manifest.json").read_text())["commit"] == hub["main"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]


@pytest.mark.parametrize(
    ("repo", "revision", "missing"),
    [("org/no-such-model", None, "main"), (REPO_ID, "v9", "v9")],
)
def test_offline_and_not_cached_fails_in_seconds_with_one_line(
    hub, offline, tmp_path, repo, revision, missing
):
    out = tmp_path / "results" / "models" / "enc"
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        download_model("enc", repo, revision, out, cache_dir=hub["cache"])
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"models.enc.path: cannot reach the Hugging Face hub for {repo!r}")
    assert "HF_HUB_OFFLINE is set" in message
    assert f"revision {missing!r} is not in the hub cache" in message
    assert f"hf download {repo} --revision {missing} --local-dir models/enc" in message
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers (a firewall that drops replies)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def closed_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("silent_server", "no answer within HF_HUB_ETAG_TIMEOUT=1 s"),
        ("closed_port", "ConnectError"),
    ],
)
def test_an_unreachable_hub_fails_within_the_timeout(
    hub, tmp_path, monkeypatch, request, endpoint, reason
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", request.getfixturevalue(endpoint))
    started = time.monotonic()
    with pytest.raises(SourceError, match=reason) as caught:
        download_model("enc", "org/no-such-model", None, tmp_path / "enc",
                       cache_dir=hub["cache"], timeout=1)  # fmt: skip
    assert time.monotonic() - started < 10
    assert "cannot reach the Hugging Face hub" in str(caught.value)
    # A cached model is used instead, with a warning.
    manifest = download_model("tiny", REPO_ID, "v1", tmp_path / "tiny", cache_dir=hub["cache"],
                              timeout=1)  # fmt: skip
    assert manifest["commit"] == hub["v1"] and manifest["source"] == "cache"


def test_a_corrupt_cached_weight_file_is_refused(hub, offline, tmp_path):
    cache = tmp_path / "hub"
    commit = add_snapshot(cache, "org/corrupt", hub["sources"][hub["v1"]])
    weights = cache / "models--org--corrupt" / "snapshots" / commit / "model.safetensors"
    blob = weights.resolve()
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(SourceError, match=r"model\.safetensors in the hub cache is corrupt"):
        download_model("bad", "org/corrupt", None, tmp_path / "bad", cache_dir=cache)
    assert not (tmp_path / "bad").exists()
