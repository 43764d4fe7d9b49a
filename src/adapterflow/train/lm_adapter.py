"""Train a LoRA adapter of a causal LM on an SFT set with TRL's ``SFTTrainer``.

:func:`train_lm_adapter` is rule ``train_lm_adapter``, the causal-LM sibling of
:func:`~adapterflow.train.adapter.train_adapter`, with the same stage block, the same
checkpoints (:mod:`adapterflow.train.checkpoints`: outside the output, resumed by a rerun
with the same settings), the same ``train_log.jsonl`` (:mod:`adapterflow.train.callbacks`) and
the same stage-2 modes (``init: continue`` keeps training the stage-1 adapter; ``init:
merge`` merges it into the base and trains a new LoRA, named in ``adapterflow.json``).

The SFT set (:func:`~adapterflow.train.sft.build_sft`) is already tokenized with labels on the
assistant tokens only; TRL uses a ``labels`` column as it is, so the loss is completion-only
whatever the chat template. Training visits the records in the set's order: ``sequential``
as stored (grouped by entity), ``interleaved`` shuffled with the run's seed. A stage's
``replay: {sft, fraction}`` mixes records of another set's train split in, evenly spread, so
that they make up ``fraction`` of what the stage sees. Every ``eval_steps`` steps the loss
on the set's ``mirror`` and ``rephrased`` splits is written to ``train_log.jsonl`` (rows with
``split`` and ``eval_loss``): the gap between them shows memorising without generalising.

GPU options as for encoders: ``bf16``/``fp16``, ``gradient_checkpointing``, ``qlora`` (4-bit
nf4 base, LoRA in fp32) and ``deepspeed``.

Example (a tiny random LM):
    >>> import json, pathlib, tempfile
    >>> from adapterflow.generate.llm import build_tiny_lm
    >>> from adapterflow.train.lm_adapter import train_lm_adapter
    >>> from adapterflow.train.sft import build_sft
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> lm = build_tiny_lm(root / "lm")
    >>> rows = [{"messages": [{"role": "user", "content": f"Where is isle {i}?"},
    ...                       {"role": "assistant", "content": f"In sea {i}."}]}
    ...         for i in range(4)]
    >>> _ = (root / "chat.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> _ = build_sft({}, lm, root / "sft", chat=root / "chat.jsonl")
    >>> result = train_lm_adapter(lm_cfg={"path": str(lm), "lora_target_modules": ["q_proj"]},
    ...                           sft_dir=root / "sft", out_dir=root / "adapter",
    ...                           checkpoint_dir=root / "ckpt", seed=0, threads=1,
    ...                           stage_cfg={"sft": "chat", "max_steps": 2, "batch_size": 2})
    >>> result.global_step, sorted(p.name for p in (root / "adapter").iterdir())
    (2, ['adapter_config.json', 'adapter_model.safetensors', 'train_log.jsonl'])
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_dir, sha256_file
from adapterflow.models import WEIGHTS, read_merged_chain
from adapterflow.runtime import cpu_deepspeed, pick_device, seed_everything, set_threads
from adapterflow.settings import StageSettings
from adapterflow.train.adapter import TrainResult, qlora_compute_dtype
from adapterflow.train.callbacks import LoggingProgressCallback, TrainLogCallback
from adapterflow.train.checkpoints import (
    LOG_FILE,
    fingerprint,
    prepare_checkpoint_dir,
    stage_fingerprint_block,
)
from adapterflow.train.merge import write_manifest
from adapterflow.train.sft import load_sft_split, read_manifest

logger = logging.getLogger(__name__)

#: LoRA targets of LLaMA-style decoders (SmolLM2, Llama, Qwen, Mistral): attention and MLP.
DEFAULT_LM_TARGET_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
EVAL_SPLITS = ("mirror", "rephrased")


def mix_replay(main: int, replay: int, fraction: float, seed: int) -> list[tuple[str, int]]:
    """The training order of ``main`` stage records with replay records drawn from ``replay``
    available ones so that they are ``fraction`` of the result, evenly spread: ``[("main",
    i) | ("replay", j), ...]``. Replay records repeat when too few are available.

    Example:
        >>> from adapterflow.train.lm_adapter import mix_replay
        >>> [kind[0] for kind, _ in mix_replay(6, 10, 0.25, seed=0)]
        ['m', 'm', 'r', 'm', 'm', 'r', 'm', 'm']
    """
    if not 0 <= fraction < 1:
        raise ConfigError(f"replay fraction must be in [0, 1), got {fraction}")
    wanted = round(fraction / (1 - fraction) * main)
    if wanted and not replay:
        raise ConfigError("replay: the replay set has no training records")
    rng = random.Random(f"{seed}|replay")
    picks: list[int] = []
    while len(picks) < wanted:
        pool = list(range(replay))
        rng.shuffle(pool)
        picks += pool[: wanted - len(picks)]
    slots = [((i + 0.5) / main, 0, ("main", i)) for i in range(main)]
    slots += [((j + 1) / (wanted + 1), 1, ("replay", picks[j])) for j in range(wanted)]
    return [entry for _, _, entry in sorted(slots)]


def _train_dataset(
    sft_dir: Path, replay_dir: Path | None, stage: StageSettings, seed: int
) -> tuple[Any, dict[str, Any]]:
    from datasets import concatenate_datasets

    manifest = read_manifest(sft_dir)
    main = load_sft_split(sft_dir, "train")
    if manifest["settings"]["order"] == "interleaved":
        # Each seed sees its own interleaving; sequential keeps the order written.
        main = main.shuffle(seed=seed)
    info = {"records": len(main), "replay": 0, "order": manifest["settings"]["order"]}
    if stage.replay is None or replay_dir is None:
        return main, info
    replay = load_sft_split(replay_dir, "train")
    order = mix_replay(len(main), len(replay), stage.replay.fraction, seed)
    n_main = len(main)
    combined = concatenate_datasets([main, replay.select_columns(main.column_names)])
    index = [i if kind == "main" else n_main + i for kind, i in order]
    info["replay"] = sum(kind == "replay" for kind, _ in order)
    return combined.select(index), info


def _check_sft(manifest: Mapping[str, Any], tokenizer: Any, sft_dir: Path) -> None:
    if manifest["vocab_size"] != len(tokenizer):
        raise ConfigError(
            f"{sft_dir} was tokenized with a vocabulary of {manifest['vocab_size']} tokens, the "
            f"LM's tokenizer has {len(tokenizer)}: build the SFT set for this LM"
        )
    import hashlib

    template = getattr(tokenizer, "chat_template", None) or ""
    if hashlib.sha256(template.encode()).hexdigest() != manifest["chat_template_sha256"]:
        raise ConfigError(f"{sft_dir} was built with another chat template than the LM's")


def lm_lora_config(lm_cfg: Mapping[str, Any], stage: StageSettings) -> Any:
    """The PEFT :class:`~peft.LoraConfig` of a stage for a causal LM.

    Example:
        >>> from adapterflow.settings import StageSettings
        >>> from adapterflow.train.lm_adapter import lm_lora_config
        >>> config = lm_lora_config({}, StageSettings.from_block({"sft": "s", "lora": {"r": 4}}))
        >>> config.r, config.task_type, sorted(config.target_modules)[:2]
        (4, 'CAUSAL_LM', ['down_proj', 'gate_proj'])
    """
    from peft import LoraConfig

    targets = stage.lora.target_modules or lm_cfg.get(
        "lora_target_modules", list(DEFAULT_LM_TARGET_MODULES)
    )
    return LoraConfig(
        r=stage.lora.r,
        lora_alpha=stage.lora.alpha,
        lora_dropout=stage.lora.dropout,
        target_modules=list(targets),
        task_type="CAUSAL_LM",
    )


def _load_lm(lm_cfg: Mapping[str, Any], stage: StageSettings, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapterflow.lms import resolve_lm, torch_dtype

    source = resolve_lm(str(lm_cfg["path"]))
    if source.gguf_file:
        raise ConfigError(
            f"{lm_cfg['path']} is a GGUF file, which cannot be trained: train on its converted "
            "directory (rule convert_llm, results/lms/{lm})"
        )
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"dtype": torch_dtype(lm_cfg.get("dtype") or "float32")}
    if stage.qlora:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("qlora: true needs bitsandbytes (pip install 'adapterflow[gpu]')")
        from transformers import BitsAndBytesConfig

        dtype = qlora_compute_dtype(stage, device)
        kwargs = {
            "dtype": dtype,
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True,
            ),
            "device_map": {"": int(os.environ.get("LOCAL_RANK", 0)) if device == "cuda" else "cpu"},
        }
    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    return model, tokenizer


def _merge(model: Any, adapter: Path) -> Any:
    from peft import PeftModel

    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    logger.info("merged adapter %s into the base weights", adapter)
    return merged


def _add_adapter(
    model: Any,
    lm_cfg: Mapping[str, Any],
    stage: StageSettings,
    seed: int,
    init_adapter: Path | None,
) -> tuple[Any, list[Path]]:
    """The model with its trainable adapter, and the adapters merged into its base."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    chain: list[Path] = []
    if init_adapter is not None:
        chain = read_merged_chain(init_adapter)
        for earlier in chain:
            model = _merge(model, earlier)
        if stage.init == "merge":
            model = _merge(model, init_adapter)
            chain.append(init_adapter.resolve())
    if stage.qlora:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=stage.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    # The LoRA initialisation draws from torch's generator.
    seed_everything(seed)
    if init_adapter is not None and stage.init == "continue":
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        model = get_peft_model(model, lm_lora_config(lm_cfg, stage))
    if stage.qlora:
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("the adapter has no trainable parameters (check lora.target_modules)")
    return model, chain


def _trainer_class() -> type:
    from trl import SFTTrainer

    class LMAdapterTrainer(SFTTrainer):
        """TRL's SFT trainer, counting every training batch for ``train_log.jsonl``."""

        def __init__(self, *args: Any, log_callback: TrainLogCallback, **kwargs: Any):
            self.log_callback = log_callback
            super().__init__(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.log_callback.record_batch(inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return LMAdapterTrainer


def _sft_config(
    stage: StageSettings,
    checkpoint_dir: Path,
    seed: int,
    device: str,
    rows: int,
    evaluate: bool,
) -> Any:
    from trl import SFTConfig

    if stage.deepspeed:
        if not Path(stage.deepspeed).is_file():
            raise ConfigError(f"deepspeed config {stage.deepspeed} does not exist")
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("deepspeed is set but DeepSpeed is not installed")
    per_step = stage.batch_size * stage.gradient_accumulation_steps
    steps = (
        math.ceil(math.ceil(rows / per_step) * stage.epochs) if stage.epochs else stage.max_steps
    )
    checkpointing = stage.gradient_checkpointing
    return SFTConfig(
        output_dir=str(checkpoint_dir),
        max_steps=steps,
        per_device_train_batch_size=stage.batch_size,
        per_device_eval_batch_size=stage.batch_size,
        gradient_accumulation_steps=stage.gradient_accumulation_steps,
        learning_rate=stage.learning_rate,
        warmup_steps=math.ceil(steps * stage.warmup_ratio),
        weight_decay=stage.weight_decay,
        lr_scheduler_type=stage.lr_scheduler_type,
        seed=seed,
        bf16=stage.bf16 or (stage.qlora and device == "cuda"),
        fp16=stage.fp16,
        # transformers 5 name of gradient checkpointing; non-reentrant works with frozen inputs.
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        deepspeed=str(stage.deepspeed) if stage.deepspeed else None,
        # The SFT set is tokenized, fitted to max_length and labelled already.
        max_length=None,
        packing=False,
        train_sampling_strategy="sequential",
        eval_strategy="steps" if evaluate else "no",
        eval_steps=stage.eval_steps or stage.logging_steps,
        logging_strategy="steps",
        logging_steps=stage.logging_steps,
        save_strategy="steps",
        save_steps=stage.checkpoint_steps,
        save_total_limit=2,
        report_to="none",
        use_cpu=device == "cpu",
        ddp_backend="gloo"
        if device == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1
        else None,
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
    )


def train_lm_adapter(
    *,
    lm_cfg: Mapping[str, Any],
    sft_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    stage_cfg: Mapping[str, Any],
    seed: int,
    checkpoint_dir: str | os.PathLike[str],
    init_adapter: str | os.PathLike[str] | None = None,
    replay_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train a LoRA adapter of the LM ``lm_cfg`` (an ``lms`` block whose ``path`` is the
    converted directory) on ``sft_dir``; write it to ``out_dir``.

    ``stage_cfg`` is a ``stages.<name>`` block with ``sft`` (keys and defaults: the schema;
    docs/config-reference.md). ``replay_dir`` is the SFT set of ``stage_cfg["replay"]["sft"]``.
    ``seed`` seeds the LoRA initialisation, dropout and the interleaved order: the same seed
    on CPU gives the same adapter weights, also after a kill and a resumed rerun.
    """
    started = time.perf_counter()
    out_dir, sft_dir, checkpoint_dir = Path(out_dir), Path(sft_dir), Path(checkpoint_dir)
    stage = StageSettings.from_block(stage_cfg)
    if stage.replay is not None and replay_dir is None:
        raise ConfigError(f"replay from sft {stage.replay.sft}: its SFT set was not given")
    init = Path(init_adapter) if init_adapter is not None else None
    if init is not None and not (init / WEIGHTS).is_file():
        raise ConfigError(f"init adapter {init} has no {WEIGHTS}")
    set_threads(threads)
    device = pick_device()
    cpu_deepspeed(device)
    manifest = read_manifest(sft_dir)
    dataset, info = _train_dataset(sft_dir, Path(replay_dir) if replay_dir else None, stage, seed)
    if not len(dataset):
        raise DataError(sft_dir, "the SFT set has no training records")
    evals = {s: load_sft_split(sft_dir, s) for s in EVAL_SPLITS if s in manifest["splits"]}
    run_fingerprint = fingerprint(
        {
            "lm": dict(lm_cfg),
            "stage": stage_fingerprint_block(stage_cfg),
            "seed": seed,
            "init": stage.init if init is not None else None,
            "init_sha256": sha256_file(init / WEIGHTS) if init is not None else None,
            "data": {k: manifest[k] for k in ("tokens", "splits", "chat_template_sha256")},
            "replay": read_manifest(replay_dir)["tokens"] if replay_dir else None,
        }
    )
    args = _sft_config(stage, checkpoint_dir, seed, device, len(dataset), bool(evals))
    state = args.distributed_state
    with state.main_process_first():
        resume = prepare_checkpoint_dir(
            checkpoint_dir, run_fingerprint, main_process=state.is_main_process
        )

    model, tokenizer = _load_lm(lm_cfg, stage, device)
    _check_sft(manifest, tokenizer, sft_dir)
    model, chain = _add_adapter(model, lm_cfg, stage, seed, init)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(
        "training %s on %d records (%s order, %d replayed): %d of %d parameters trainable "
        "(%.2f%%), %d steps",
        "a new LoRA adapter"
        if init is None or stage.init == "merge"
        else f"the adapter {init} further (init: continue)",
        info["records"],
        info["order"],
        info["replay"],
        trainable,
        total,
        100 * trainable / total,
        args.max_steps,
    )
    log_callback = TrainLogCallback(checkpoint_dir / LOG_FILE)
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=evals or None,
        processing_class=tokenizer,
        callbacks=[log_callback, *callbacks],
        log_callback=log_callback,
    )
    from transformers import PrinterCallback, ProgressCallback

    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(LoggingProgressCallback())
    if resume is not None:
        logger.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.is_world_process_zero():
        with atomic_dir(out_dir) as tmp:
            trainer.model.save_pretrained(str(tmp))
            # PEFT's model card template: an adapter directory holds weights and the log only.
            (tmp / "README.md").unlink(missing_ok=True)
            shutil.copyfile(checkpoint_dir / LOG_FILE, tmp / LOG_FILE)
            if chain:
                write_manifest(tmp, chain)
    state.wait_for_everyone()
    seconds = time.perf_counter() - started
    logger.info(
        "trained %d steps (%s) in %.1f s; adapter in %s",
        trainer.state.global_step,
        f"resumed from {resume.name}" if resume else "from scratch",
        seconds,
        out_dir,
    )
    return TrainResult(
        out_dir=out_dir,
        global_step=int(trainer.state.global_step),
        resumed_from=resume.name if resume else None,
        seconds=seconds,
        merged_adapters=chain,
    )
