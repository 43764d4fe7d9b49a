"""Exact top-k search by dot product over a corpus too large to score in one matrix.

For L2-normalised embeddings the dot product is the cosine similarity. The corpus is scored
``chunk_size`` rows at a time and each chunk's best hits are merged into a running top-k, so
memory stays O(n_queries × (k + chunk_size)) however large the corpus is.

Ties are broken by corpus index, ascending: among equal scores the earlier document ranks
first, so rankings (and the metrics computed from them) do not depend on ``chunk_size``, on
thread count or on ``torch.topk``'s unspecified order of equal values.

Example:
    >>> import numpy as np
    >>> from adapterflow.eval.search import top_k
    >>> corpus = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    >>> scores, indices = top_k(np.array([[1.0, 0.0]], dtype=np.float32), corpus, k=3)
    >>> indices.tolist(), scores.tolist()
    ([[0, 2, 3]], [[1.0, 1.0, 0.5]])
"""

from __future__ import annotations

import numpy as np
import torch


def top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, chunk_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring corpus rows for each query row, by dot product.

    Returns ``(scores, indices)``, float32 and int64 arrays of shape (n_queries, k') with
    k' = min(k, n_corpus), each row sorted by score descending and, among equal scores, by
    corpus index ascending. Scores are computed in float32.

    Example:
        >>> import numpy as np
        >>> from adapterflow.eval.search import top_k
        >>> rng = np.random.default_rng(0)
        >>> queries, corpus = rng.normal(size=(3, 8)), rng.normal(size=(50, 8))
        >>> scores, indices = top_k(queries, corpus, k=5, chunk_size=7)
        >>> reference = np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :5]
        >>> bool((indices == reference).all()), scores.shape
        (True, (3, 5))
        >>> top_k(queries, corpus[:2], k=5)[1].shape  # k larger than the corpus
        (3, 2)
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    queries_t = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    corpus_np = np.asarray(corpus, dtype=np.float32)
    if queries_t.ndim != 2 or corpus_np.ndim != 2 or queries_t.shape[1] != corpus_np.shape[1]:
        raise ValueError(
            f"expected queries (n, d) and corpus (m, d), got {tuple(queries_t.shape)} "
            f"and {corpus_np.shape}"
        )
    n_queries, n_corpus = queries_t.shape[0], corpus_np.shape[0]
    depth = min(k, n_corpus)
    best_scores = torch.empty((n_queries, 0), dtype=torch.float32)
    best_indices = torch.empty((n_queries, 0), dtype=torch.int64)
    if depth == 0:
        return best_scores.numpy(), best_indices.numpy()

    for start in range(0, n_corpus, chunk_size):
        chunk = torch.from_numpy(np.ascontiguousarray(corpus_np[start : start + chunk_size]))
        chunk_scores, chunk_indices = _chunk_top(queries_t @ chunk.T, min(depth, len(chunk)))
        # Every kept hit precedes this chunk in the corpus and both lists are already in
        # (score desc, index asc) order, so a stable sort of the concatenation keeps that order.
        scores = torch.cat([best_scores, chunk_scores], dim=1)
        indices = torch.cat([best_indices, chunk_indices + start], dim=1)
        scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
        best_scores = scores[:, :depth]
        best_indices = indices.gather(1, order[:, :depth])
    return best_scores.contiguous().numpy(), best_indices.contiguous().numpy()


def _chunk_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` columns of each row of ``scores``, in (score desc, column asc) order."""
    values, columns = torch.topk(scores, k, dim=1, sorted=False)
    # torch.topk picks an arbitrary subset of values tied at the k-th place; rows with more
    # candidates at or above their k-th value than k fall back to a full stable sort below.
    threshold = values.min(dim=1, keepdim=True).values
    tied_rows = ((scores >= threshold).sum(dim=1) > k).nonzero().flatten()
    # Otherwise the selection is exact: order it by column, then stably by score.
    columns, _ = torch.sort(columns, dim=1)
    values = scores.gather(1, columns)
    values, order = torch.sort(values, dim=1, descending=True, stable=True)
    columns = columns.gather(1, order)
    if len(tied_rows):
        tied_values, tied_columns = torch.sort(
            scores[tied_rows], dim=1, descending=True, stable=True
        )
        values[tied_rows] = tied_values[:, :k]
        columns[tied_rows] = tied_columns[:, :k]
    return values, columns
