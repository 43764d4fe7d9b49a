"""Step ``convert_llm`` (convert a causal LM once to a plain Hugging Face directory) and a tiny
chat LM for examples and tests.

transformers reads a GGUF file by de-quantising every tensor to float32 (SmolLM2-135M: 15 s
on two idle CPU cores, 30–40 s on busy ones); :func:`convert_gguf_to_hf` does that once and
saves a plain model directory that loads in a few seconds, with a ``manifest.json`` (source,
its sha256, dtype, parameter count). :func:`build_tiny_lm` saves a randomly initialised
two-layer chat model that loads and generates in milliseconds. LM references, loading and
chatting are :mod:`adapterflow.lms`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from adapterflow.io import atomic_dir, sha256_file, write_json
from adapterflow.lms import load_lm, resolve_lm, torch_dtype
from adapterflow.runtime import cpu_deepspeed, pick_device

logger = logging.getLogger(__name__)


def convert_gguf_to_hf(
    reference: str,
    out_dir: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    threads: int | None = None,
) -> dict[str, Any]:
    """Load the LM ``reference`` once (de-quantising a GGUF file) and save it with its tokenizer
    as a plain Hugging Face directory at ``out_dir`` (complete or absent), plus
    ``manifest.json``: the reference, the source file and its sha256 (for a GGUF source), the
    dtype, the parameter count and the library versions. Returns the manifest.

    A plain model directory is accepted too (it is re-saved in ``dtype``), so a rule can point
    at any LM. float32 (the default) keeps the de-quantised weights exactly: the converted
    model generates what the GGUF file does; bfloat16 halves the size.

    Example:
        >>> import json, pathlib, tempfile
        >>> from adapterflow.generate.llm import build_tiny_lm, convert_gguf_to_hf
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> manifest = convert_gguf_to_hf(str(build_tiny_lm(root / "tiny")), root / "hf")
        >>> manifest["dtype"], manifest["source_file"], (root / "hf" / "config.json").exists()
        ('float32', None, True)
    """
    import torch
    import transformers

    torch_dtype(dtype)
    started = time.perf_counter()
    source = resolve_lm(reference)
    model, tokenizer = load_lm(reference, dtype=dtype, threads=threads)
    source_file = None
    source_sha256 = None
    if source.gguf_file and isinstance(source.path, Path):
        source_file = source.gguf_file
        source_sha256 = sha256_file(source.path / source.gguf_file)
    # Saved as loaded, not with the left padding generation needs: the directory is a
    # general-purpose checkpoint and load_lm sets the padding side again.
    tokenizer.padding_side = "right"
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        manifest = {
            "source": reference,
            "source_file": source_file,
            "source_sha256": source_sha256,
            "architecture": type(model).__name__,
            "dtype": dtype,
            "parameters": model.num_parameters(),
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_json(tmp / "manifest.json", manifest)
        _shareable(tmp)
    logger.info(
        "converted %s to %s (%s, %d parameters) in %.1f s",
        reference,
        out_dir,
        dtype,
        manifest["parameters"],
        manifest["seconds"],
    )
    return manifest


def _shareable(directory: Path) -> None:
    # safetensors writes 0600 files; results are meant to be read by the whole group.
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


# --- a tiny model for examples and tests ---------------------------------------------------------

#: The ChatML template SmolLM2 uses, without its default system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_lm(out_dir: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Save a tiny randomly initialised Llama chat model (2 layers, hidden size 32, a byte-level
    tokenizer of 259 tokens with the ChatML template) at ``out_dir`` and return the path.

    It loads and generates in milliseconds, so examples and tests can run the real code path
    (templates, padding, batching, saving) without a pretrained model; what it says is noise.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.llm import build_tiny_lm
        >>> path = build_tiny_lm(pathlib.Path(tempfile.mkdtemp()) / "tiny")
        >>> sorted(p.name for p in path.iterdir())  # doctest: +NORMALIZE_WHITESPACE
        ['chat_template.jinja', 'config.json', 'generation_config.json', 'model.safetensors',
         'tokenizer.json', 'tokenizer_config.json']
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(specials + sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=vocab["<|im_start|>"],
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|im_end|>"],
        tie_word_embeddings=True,
        # Large random weights: replies differ from prompt to prompt (with the usual 0.02 every
        # prompt gets the same reply), so tests can tell the replies apart.
        initializer_range=1.0,
    )
    cpu_deepspeed(pick_device())
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _shareable(tmp)
    return out_dir
