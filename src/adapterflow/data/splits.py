"""Deterministic splits, exact-duplicate removal and the train/test leakage check.

Splits are assigned per *group*: texts linked by a pair, a triplet or a relevance judgement
land in the same split, so a split by hashed id can never put one text on both sides.

Example:
    >>> from adapterflow.data.splits import hashed_split
    >>> hashed_split("doc-17", {"train": 0.8, "test": 0.2}, seed=0)
    'train'
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping

from adapterflow.errors import DataError

logger = logging.getLogger(__name__)

TRAIN = "train"


def hashed_split(key: str, fractions: Mapping[str, float], seed: int = 0) -> str:
    """Map ``key`` to a split name with probability given by ``fractions``, stable across runs
    and machines (sha256 of ``seed:key``; no dependence on Python's hash randomisation)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    names = sorted(fractions)
    for name in names:
        cumulative += fractions[name]
        if position < cumulative:
            return name
    return names[-1]


class UnionFind:
    """Connected components over hashable items (texts or ids)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, *items: str) -> None:
        roots = sorted({self.find(i) for i in items})
        for other in roots[1:]:
            self.parent[other] = roots[0]

    def component_key(self, item: str) -> str:
        """A representative that does not depend on insertion order: the smallest member."""
        return self.find(item)


def check_leakage(
    texts_by_split: Mapping[str, Iterable[str]], source: str, train: str = TRAIN
) -> None:
    """Raise :class:`DataError` if any text of the train split also occurs in another split."""
    if train not in texts_by_split:
        return
    train_texts = set(texts_by_split[train])
    for split, texts in sorted(texts_by_split.items()):
        if split == train:
            continue
        leaked = train_texts.intersection(texts)
        if leaked:
            example = sorted(leaked)[0]
            raise DataError(
                source,
                f"leakage: {len(leaked)} text(s) are in both '{train}' and '{split}', "
                f"e.g. {example[:80]!r}; set prepare.on_leak: drop_from_train to remove them "
                "from train",
                field=split,
            )


def fractions_from_config(split_cfg: Mapping[str, float], source: str) -> dict[str, float]:
    """Validate split fractions: positive, summing to 1 (±1e-6)."""
    fractions = {name: float(value) for name, value in split_cfg.items()}
    if not fractions or any(v <= 0 for v in fractions.values()):
        raise DataError(source, f"split fractions must be positive, got {fractions}", field="split")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise DataError(
            source, f"split fractions must sum to 1, got {sum(fractions.values())}", field="split"
        )
    return fractions
