"""The registries behind the names a config may use: prepare formats, pair strategies and
mining strategies, each with what the config checks need to know without running it.

* :data:`FORMATS` — ``prepare.format`` names (:func:`converter`): the layout each produces,
  the defaults of its options;
* :data:`PAIR_STRATEGIES` — ``pairs.strategy`` names (:func:`pair_strategy`): the layout each
  reads, its options and their defaults, what its positives and anchors are;
* :data:`MINING_STRATEGIES` — ``triplets.strategy`` names (:func:`mining_strategy`): its
  options and their defaults, whether it draws from the candidate pool, its default ranks.

An option's default is written once, where its format or strategy is registered, and nowhere
else: the config schema checks options but fills in none of them, so a config's options (and
the params of the jobs that read them) stay as written.

An entry is registered by a decorator here when the module that defines it is imported:
:mod:`adapterflow.data.converters` (which imports :mod:`~adapterflow.data.hf_converters`) holds
every format, :mod:`adapterflow.data.pairs` (which imports
:mod:`~adapterflow.data.synthetic_queries`) every pair strategy, :mod:`adapterflow.data.mining`
every mining strategy. None of them imports torch, so the config checks read the registries
before any job runs. This module imports nothing that registers, so every module can register.

Example:
    >>> from adapterflow.data import converters, mining
    >>> from adapterflow.data.registry import FORMATS, MINING_STRATEGIES, PAIR_STRATEGIES
    >>> FORMATS["lee_pairs"].layout, PAIR_STRATEGIES["inverse_cloze"].layout
    ('pairs', 'retrieval')
    >>> sorted(PAIR_STRATEGIES["qrels"].allowed_options), PAIR_STRATEGIES["qrels"].reads_split
    (['max_chars', 'shuffle', 'split'], True)
    >>> MINING_STRATEGIES["bm25"].ranks, MINING_STRATEGIES["positional"].uses_pool
    ((0, 100), False)
    >>> PAIR_STRATEGIES["qrels"].with_defaults({"max_chars": 300})
    {'shuffle': True, 'split': 'train', 'max_chars': 300}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from adapterflow.data.layouts import LAYOUTS, detect_layout
from adapterflow.errors import ConfigError, DataError

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", "PairStrategy", "MiningStrategy")

# --- prepare formats ---------------------------------------------------------------------------

#: ``fn(raw_dir, options) -> layout object`` (:mod:`adapterflow.data.layouts`).
Converter = Callable[[Path, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Format:
    """A registered prepare format."""

    fn: Converter
    #: The layout it produces (``retrieval``, ``pairs`` or ``triplets``).
    layout: str
    #: Its rows land in one split, named by option ``split_name``.
    one_split: bool = False
    #: It produces a corpus alone: no queries, no judgements, no splits.
    corpus_only: bool = False
    #: Its options' defaults: ``fn`` gets them for the options a config leaves out.
    defaults: Mapping[str, Any] = field(default_factory=dict)


FORMATS: dict[str, Format] = {}


def converter(
    name: str,
    layout: str,
    *,
    one_split: bool = False,
    corpus_only: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Register ``fn(raw_dir, options) -> layout object`` under a format name used in config,
    with the ``layout`` it produces and the ``defaults`` of its options (see :class:`Format`
    for the flags)."""
    _check_layout(name, layout)

    def register(fn: F) -> F:
        FORMATS[name] = Format(fn, layout, one_split, corpus_only, dict(defaults or {}))
        return fn

    return register


# --- pair strategies ---------------------------------------------------------------------------

#: A strategy yields ``(row, sources)``: the pair and every original text it was made from
#: (so a pair cut out of a held-out passage is caught even though neither of its texts is).
Candidate = tuple[dict[str, Any], tuple[str, ...]]
#: ``fn(dataset_dir, options, seed, dropped) -> iterator of (row, sources)``.
PairFn = Callable[[Path, Mapping[str, Any], int, Counter], Iterator[Candidate]]

#: Options every pair strategy accepts (:func:`adapterflow.data.pairs.make_pairs`), and the
#: defaults of those that have one (``max_chars`` absent: no cut).
COMMON_PAIR_OPTIONS = frozenset({"max_chars", "shuffle"})
COMMON_PAIR_DEFAULTS: Mapping[str, Any] = {"shuffle": True}


@dataclass(frozen=True)
class PairStrategy:
    """A registered pair strategy (rule ``make_pairs``)."""

    fn: PairFn
    #: The layout of the dataset it reads.
    layout: str
    #: Its own option keys; a key no strategy knows is a config error, not silently ignored.
    options: frozenset[str]
    #: Its positives are a document's text without the title (else ``"title text"``, or no
    #: document at all): how mining writes corpus documents as candidates.
    text_positives: bool = False
    #: Its anchors are sentences cut out of a document, which is then never their negative.
    anchor_from_document: bool = False
    #: The defaults of its own options (an option without one is absent unless given).
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed_options(self) -> frozenset[str]:
        return self.options | COMMON_PAIR_OPTIONS

    @property
    def reads_split(self) -> bool:
        """It reads one split of the dataset: option ``split`` (default in :attr:`defaults`)."""
        return "split" in self.options

    def with_defaults(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with the defaults of the common and own options left out."""
        return {**COMMON_PAIR_DEFAULTS, **self.defaults, **options}


PAIR_STRATEGIES: dict[str, PairStrategy] = {}


def pair_strategy(
    name: str,
    layout: str,
    options: Iterable[str] = (),
    *,
    defaults: Mapping[str, Any] | None = None,
    text_positives: bool = False,
    anchor_from_document: bool = False,
) -> Callable[[F], F]:
    """Register ``fn(dataset_dir, options, seed, dropped) -> iterator of (row, sources)`` under
    a strategy name used in config, with the ``layout`` it reads, its own ``options`` without a
    default and the ``defaults`` of the others (see :class:`PairStrategy` for the flags)."""
    _check_layout(name, layout)
    defaults = dict(defaults or {})

    def register(fn: F) -> F:
        PAIR_STRATEGIES[name] = PairStrategy(
            fn,
            layout,
            frozenset(options) | frozenset(defaults),
            text_positives,
            anchor_from_document,
            defaults,
        )
        return fn

    return register


def strategy_input(dataset_dir: Path, strategy: str) -> Any:
    """The prepared dataset at ``dataset_dir``, read in the layout pair strategy ``strategy``
    reads; a dataset of another layout raises :class:`DataError` naming the strategy."""
    need = PAIR_STRATEGIES[strategy].layout
    layout = detect_layout(dataset_dir)
    if layout != need:
        raise DataError(
            dataset_dir,
            f"strategy {strategy!r} needs a {need} dataset, got a {layout} dataset",
            field="strategy",
        )
    return LAYOUTS[need].read(dataset_dir)


# --- mining strategies -------------------------------------------------------------------------

#: ``fn(job) -> candidates per row`` (:class:`adapterflow.data.mining.MiningJob`), best first;
#: may hold too many or invalid ones: the caller removes excluded texts and duplicates and keeps
#: the first ``k``.
MiningFn = Callable[[Any], list[list[str]]]

#: Options every mining strategy accepts (:func:`adapterflow.data.mining.mine_triplets`).
COMMON_MINING_OPTIONS = frozenset({"corpus"})


@dataclass(frozen=True)
class MiningStrategy:
    """A registered mining strategy (rule ``mine_triplets``)."""

    fn: MiningFn
    #: Its own option keys.
    options: frozenset[str]
    #: It draws its candidates from the pool (so corpus documents join it by default).
    uses_pool: bool = True
    #: Default ``(range_min, range_max)`` of a strategy that ranks candidates (``None``: no
    #: upper end), ``None`` for one that does not rank.
    ranks: tuple[int, int | None] | None = None
    #: The defaults of its own options (an option without one is absent unless given).
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed_options(self) -> frozenset[str]:
        return self.options | COMMON_MINING_OPTIONS

    def with_defaults(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with the defaults of the own options left out."""
        return {**self.defaults, **options}


MINING_STRATEGIES: dict[str, MiningStrategy] = {}


def mining_strategy(
    name: str,
    options: Iterable[str] = (),
    *,
    defaults: Mapping[str, Any] | None = None,
    uses_pool: bool = True,
    ranks: tuple[int, int | None] | None = None,
) -> Callable[[F], F]:
    """Register ``fn(job) -> candidates per row`` under a strategy name used in config;
    ``options`` names its option keys without a default and ``defaults`` the others (any other
    key is a config error); ``uses_pool=False`` says that it never draws from ``job.pool``, so
    the rule adds no corpus to it; ``ranks`` are the default ranks of a strategy that ranks
    candidates."""
    defaults = dict(defaults or {})

    def register(fn: F) -> F:
        MINING_STRATEGIES[name] = MiningStrategy(
            fn, frozenset(options) | frozenset(defaults), uses_pool, ranks, defaults
        )
        return fn

    return register


def lookup(registry: Mapping[str, S], kind: str, strategy: str, options: Iterable[str]) -> S:
    """The entry of ``strategy`` in ``registry`` (:data:`PAIR_STRATEGIES` or
    :data:`MINING_STRATEGIES`, called ``kind`` in messages); a strategy it does not hold or an
    option the strategy does not accept raises :class:`ConfigError`.

    Example:
        >>> from adapterflow.data import mining
        >>> from adapterflow.data.registry import MINING_STRATEGIES, lookup
        >>> lookup(MINING_STRATEGIES, "mining", "random", {"top"})
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: mining strategy 'random': unknown option(s) top; \
allowed: corpus
    """
    if strategy not in registry:
        known = ", ".join(sorted(registry))
        raise ConfigError(f"unknown {kind} strategy {strategy!r}; known: {known}")
    registered = registry[strategy]
    unknown = set(options) - registered.allowed_options
    if unknown:
        allowed = ", ".join(sorted(registered.allowed_options))
        raise ConfigError(
            f"{kind} strategy {strategy!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"allowed: {allowed}"
        )
    return registered


def _check_layout(name: str, layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
