"""Length-grouped batches without duplicate texts, for in-batch-negative losses.

Padding to the longest sequence of a batch wastes compute when short and long texts share it.
:class:`LengthGroupedNoDuplicatesBatchSampler` shuffles the rows (seeded), cuts them into
mega-batches of ``mega_batch_factor × batch_size`` rows, sorts each mega-batch by token length
and cuts it into batches (the recipe of transformers' ``LengthGroupedSampler``), then shuffles
the batch order, longest batch first so an out-of-memory error shows up on the first step.

It also keeps the guarantee of sentence-transformers' ``NO_DUPLICATES`` sampler: no text
occurs twice in a batch (in any column). With in-batch negatives a duplicate text is a false
negative: the loss would push an anchor away from a copy of its own positive. A row that
collides is deferred to the next batch of similar length.

Every epoch yields exactly ``len(sampler)`` batches (``ceil(rows / batch_size)``, or ``floor``
with ``drop_last``), a pure function of ``seed + epoch``; the trainer relies on both to skip the
right batches when it resumes from a checkpoint.

Example:
    >>> from datasets import Dataset
    >>> from adapterflow.train.sampler import LengthGroupedNoDuplicatesBatchSampler
    >>> dataset = Dataset.from_dict({
    ...     "anchor_input_ids": [[i] * n for i, n in enumerate((2, 9, 3, 8, 2, 9))],
    ...     "positive_input_ids": [[2, n] for n in range(6)]})
    >>> sampler = LengthGroupedNoDuplicatesBatchSampler(dataset, batch_size=2, drop_last=False)
    >>> batches = list(sampler)
    >>> len(batches) == len(sampler) == 3, sorted(i for b in batches for i in b)
    (True, [0, 1, 2, 3, 4, 5])
    >>> [sorted(len(dataset[i]["anchor_input_ids"]) for i in b) for b in batches][0]
    [9, 9]
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

logger = logging.getLogger(__name__)

IDS_SUFFIX = "_input_ids"


class LengthGroupedNoDuplicatesBatchSampler(DefaultBatchSampler):
    """Batches of rows of similar total token length, with no text twice in a batch.

    Pass the class as ``batch_sampler`` of
    :class:`~sentence_transformers.SentenceTransformerTrainingArguments`; the trainer calls it
    with the dataset, batch size, ``drop_last``, generator and seed.

    Args:
        dataset: a dataset of ``{column}_input_ids`` token-id lists.
        batch_size: rows per batch.
        drop_last: drop the incomplete last batch.
        valid_label_columns: unused (no labels in triplets); kept for the trainer's signature.
        generator: unused: every epoch draws from its own generator seeded with
            ``seed + epoch``, so the batches do not depend on what else used the trainer's.
        seed: shuffling seed.
        mega_batch_factor: mega-batch size in batches: larger groups lengths more tightly,
            smaller keeps batches more random (transformers uses 50).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        mega_batch_factor: int = 50,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        if mega_batch_factor < 1:
            raise ValueError(f"mega_batch_factor must be at least 1, got {mega_batch_factor}")
        self.mega_batch_factor = mega_batch_factor
        self.lengths, self.keys = _lengths_and_keys(dataset)
        self._plan_cache: tuple[int, list[list[int]]] | None = None
        self._warned = False

    def __len__(self) -> int:
        rows = len(self.lengths)
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.plan(self.epoch)

    def plan(self, epoch: int) -> list[list[int]]:
        """The batches (lists of row indices) of ``epoch``, in order."""
        if self._plan_cache is not None and self._plan_cache[0] == epoch:
            return self._plan_cache[1]
        generator = torch.Generator().manual_seed(self.seed + epoch)
        rows = len(self.lengths)
        order = torch.randperm(rows, generator=generator).tolist()
        mega = self.batch_size * self.mega_batch_factor
        batches: list[list[int]] = []
        carry: list[int] = []
        for start in range(0, rows, mega):
            # Rows deferred by a collision get another chance among the next mega-batch.
            group = sorted(carry + order[start : start + mega], key=lambda i: -self.lengths[i])
            full, carry = self._fill(group, partial=False)
            batches.extend(full)
        target = len(self)
        if len(batches) < target:
            partials, _ = self._fill(carry, partial=True)
            batches.extend(partials[: target - len(batches)])
        dropped = rows - sum(map(len, batches))
        expected_drop = rows % self.batch_size if self.drop_last else 0
        if dropped > expected_drop:
            # Once per run at warning level: the same data gives about the same count each epoch.
            log = logger.warning if not self._warned else logger.debug
            self._warned = True
            log(
                "%d row(s) left out of epoch %d: each shares a text (after truncation) with "
                "the last batch, where it would be a false negative",
                dropped - expected_drop,
                epoch,
            )
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in permutation]
        if batches:
            longest = max(range(len(batches)), key=lambda b: max(self.lengths[batches[b]]))
            batches.insert(0, batches.pop(longest))
        self._plan_cache = (epoch, batches)
        return batches

    def _fill(self, rows: list[int], partial: bool) -> tuple[list[list[int]], list[int]]:
        """Greedy batches from ``rows`` (in order), skipping rows that share a text with the
        batch: full batches and the rows left over, or (``partial``) every row in batches."""
        queue = deque(rows)
        batches: list[list[int]] = []
        while queue and (partial or len(queue) >= self.batch_size):
            batch: list[int] = []
            seen: set[int] = set()
            skipped: list[int] = []
            while queue and len(batch) < self.batch_size:
                row = queue.popleft()
                row_keys = self.keys[row]
                if any(key in seen for key in row_keys):
                    skipped.append(row)
                    continue
                batch.append(row)
                seen.update(row_keys)
            queue.extendleft(reversed(skipped))
            if len(batch) < self.batch_size and not partial:
                return batches, list(queue) + batch
            batches.append(batch)
        return batches, list(queue)


def _lengths_and_keys(dataset: Any) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Per row: total tokens over all ``*_input_ids`` columns, and one hash per text."""
    import pyarrow.compute as pc

    table = dataset.with_format("arrow")[:]
    columns = [name for name in table.column_names if name.endswith(IDS_SUFFIX)]
    if not columns:
        raise ValueError(f"the dataset has no '*{IDS_SUFFIX}' columns: {table.column_names}")
    lengths = np.zeros(table.num_rows, dtype=np.int64)
    hashes = []
    for name in columns:
        column = table.column(name)
        lengths += pc.list_value_length(column).to_numpy(zero_copy_only=False)
        # Equal token ids = equal text; hash() of int tuples is not salted per process, and
        # set membership only compares values, so the batches are the same in every run.
        hashes.append([hash(tuple(ids)) for ids in column.to_pylist()])
    return lengths, list(zip(*hashes, strict=True))
