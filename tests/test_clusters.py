"""k-means with the elbow and silhouette criteria, the cluster-stratified split, the figures and
the whole dedup/cluster/split step (with a stand-in embedder; the script test uses MiniLM)."""

from __future__ import annotations

import json
import zlib
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from adapterflow.errors import ConfigError, DataError
from adapterflow.generate.clusters import (
    ClusterResult,
    cluster,
    dedup_cluster_split,
    elbow_k,
    plot_cluster_map,
    plot_k_selection,
    project_2d,
    resolve_settings,
    stratified_split,
)


@pytest.mark.parametrize("criterion", ["elbow", "silhouette"])
@pytest.mark.parametrize("true_k", [3, 5])
def test_true_k_of_separated_blobs(criterion, true_k):
    points, truth = make_blobs(
        n_samples=300, centers=true_k, n_features=16, cluster_std=0.6, random_state=true_k
    )
    result = cluster(points, k_min=2, k_max=9, criterion=criterion, seed=0)
    assert result.k == true_k
    assert result.elbow_k == true_k and result.silhouette_k == true_k
    assert result.criterion == criterion
    assert result.table["k"].tolist() == list(range(2, 10))
    assert list(result.table.columns) == ["k", "inertia", "silhouette"]
    assert result.table["inertia"].is_monotonic_decreasing
    # The labels are the blobs, up to naming.
    pairs = set(zip(result.labels.tolist(), truth.tolist(), strict=True))
    assert len(pairs) == true_k


def test_same_seed_same_labels():
    points, _ = make_blobs(n_samples=120, centers=4, n_features=8, random_state=1)
    a = cluster(points, k_min=2, k_max=6, seed=7)
    b = cluster(points, k_min=2, k_max=6, seed=7)
    assert np.array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.table, b.table)


def test_silhouette_on_a_sample_for_many_rows():
    points, _ = make_blobs(n_samples=400, centers=3, n_features=4, random_state=0)
    result = cluster(points, k_min=2, k_max=4, silhouette_sample=100, seed=0)
    assert result.k == 3 and result.table["silhouette"].notna().all()


def test_elbow_rule():
    assert elbow_k([1, 2, 3, 4, 5], [100, 60, 10, 9, 8]) == 3
    assert elbow_k([1, 2, 3, 4, 5], [100, 30, 10, 9, 8]) == 2
    assert elbow_k([2, 3, 4, 5, 6, 7], [50, 20, 8, 7.5, 7, 6.8]) == 4
    assert elbow_k([2, 3], [10, 1]) is None  # two points: no knee
    assert elbow_k([2, 3, 4], [5, 5, 5]) is None  # flat
    assert elbow_k([2, 3, 4, 5], [10, 9.5, 9, 1]) is None  # concave: nothing below the chord


def test_k_capped_by_rows_and_too_few_rows(caplog):
    points = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]])
    with caplog.at_level("WARNING"):
        result = cluster(points, k_min=2, k_max=8)
    assert result.table["k"].tolist() == [2, 3]
    assert "k = 4, 5, 6, 7, 8 dropped: 4 rows (4 distinct) allow k up to 3" in caplog.text
    # Repeated points: no more clusters than distinct points.
    result = cluster(np.array([[0.0, 0.0]] * 3 + [[1.0, 1.0]] * 3), k_min=2, k_max=5)
    assert result.table["k"].tolist() == [2] and result.k == 2
    result = cluster(np.ones((2, 3)), k_min=2, k_max=4)
    assert result.k == 1 and result.labels.tolist() == [0, 0] and result.table.empty


def test_bad_cluster_settings():
    points = np.eye(5)
    with pytest.raises(ConfigError, match="criterion must be one of"):
        cluster(points, criterion="gap")
    with pytest.raises(ConfigError, match="k_min must be an integer >= 2"):
        cluster(points, k_min=1)
    with pytest.raises(ConfigError, match="k_max must be an integer >= 4"):
        cluster(points, k_min=4, k_max=3)


def test_stratified_split_keeps_cluster_proportions():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    split = stratified_split(np.random.default_rng(0).permutation(labels), eval_fraction=0.2)
    assert split.stratified and split.too_small == 0
    assert len(split.train) == 80 and len(split.eval) == 20
    assert split.eval_by_cluster == {0: 10, 1: 6, 2: 4}
    assert np.intersect1d(split.train, split.eval).size == 0
    assert sorted([*split.train, *split.eval]) == list(range(100))
    assert list(split.train) == sorted(split.train)  # input order kept


def test_split_is_seeded():
    labels = np.repeat([0, 1], [30, 30])
    a = stratified_split(labels, eval_fraction=0.3, seed=1)
    b = stratified_split(labels, eval_fraction=0.3, seed=1)
    c = stratified_split(labels, eval_fraction=0.3, seed=2)
    assert np.array_equal(a.eval, b.eval) and not np.array_equal(a.eval, c.eval)


def test_small_clusters_go_to_train(caplog):
    labels = np.array([0] * 10 + [1] * 10 + [2] + [3] + [4, 4])
    with caplog.at_level("INFO"):
        split = stratified_split(labels, eval_fraction=0.2, min_cluster_size=3)
    # Clusters 2, 3 (singletons) and 4 (two members) cannot be stratified with min size 3.
    assert split.too_small == 4 and split.too_small_clusters == 3
    assert {20, 21, 22, 23} <= set(split.train.tolist())
    assert split.eval_by_cluster == {0: 2, 1: 2} and split.stratified
    assert "4 rows of 3 clusters with fewer than 3 members go to train" in caplog.text
    # The default minimum (2) still sends singletons to train.
    split = stratified_split(labels, eval_fraction=0.2)
    assert split.too_small == 2 and {20, 21} <= set(split.train.tolist())


def test_split_falls_back_when_eval_cannot_hold_every_cluster(caplog):
    labels = np.repeat(np.arange(6), 2)  # 6 clusters of 2, eval of 3 rows
    with caplog.at_level("WARNING"):
        split = stratified_split(labels, eval_fraction=0.25)
    assert not split.stratified and len(split.eval) == 3 and len(split.train) == 9
    assert "cannot hold each of 6 clusters; random split instead" in caplog.text
    split = stratified_split([0], eval_fraction=0.5)
    assert split.train.tolist() == [0] and split.eval.tolist() == []
    for bad in (0, 1, 1.5, "0.2", True):
        with pytest.raises(ConfigError, match="eval_fraction"):
            stratified_split(labels, eval_fraction=bad)
    with pytest.raises(ConfigError, match="min_cluster_size must be an integer >= 2"):
        stratified_split(labels, min_cluster_size=1)


def test_projection_and_figures(tmp_path):
    points, truth = make_blobs(n_samples=60, centers=3, n_features=10, random_state=0)
    for method in ("pca", "tsne"):
        coords = project_2d(points, method, seed=0)
        assert coords.shape == (60, 2) and np.isfinite(coords).all()
    assert np.array_equal(project_2d(points, "tsne", 0), project_2d(points, "tsne", 0))
    with pytest.raises(ConfigError, match="map method"):
        project_2d(points, "umap")
    datasets = ["wiki" if i % 2 else "news" for i in range(60)]
    fig = plot_cluster_map(coords, truth, datasets, method="tsne", out_base=tmp_path / "map")
    assert [ax.get_title() for ax in fig.axes] == ["3 clusters (t-SNE)", "2 datasets (t-SNE)"]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "news (30)",
        "wiki (30)",
    ]
    result = cluster(points, k_min=2, k_max=5, criterion="elbow")
    fig = plot_k_selection(result, out_base=tmp_path / "k")
    assert fig._suptitle.get_text() == "k-means: k = 3 chosen by elbow"
    for name in ("map", "k"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    # An empty table (too few rows) still draws.
    empty = ClusterResult(1, np.zeros(2), result.table.iloc[:0], "elbow", None, None)
    plot_k_selection(empty)
    with pytest.raises(ValueError, match="3 coordinates, 2 labels"):
        plot_cluster_map(np.zeros((3, 2)), [0, 1], ["a", "b", "c"])


def test_settings_defaults_and_unknown_keys():
    settings = resolve_settings({"seed": 3, "split": {"eval_fraction": 0.1}})
    assert settings["seed"] == 3 and settings["split"] == {
        "eval_fraction": 0.1,
        "min_cluster_size": 2,
    }
    assert settings["clusters"]["criterion"] == "silhouette"
    with pytest.raises(ConfigError, match="unknown setting 'cluster'"):
        resolve_settings({"cluster": {}})
    with pytest.raises(ConfigError, match="setting 'dedup' must be a mapping"):
        resolve_settings({"dedup": 0.9})
    # Values are checked up front, before any record is read or embedded.
    for bad, message in (
        ({"dedup": {"threshold": 2}}, "dedup threshold"),
        ({"clusters": {"criterion": "gap"}}, "criterion must be one of"),
        ({"clusters": {"k_min": 5, "k_max": 3}}, "k_max must be an integer >= 5"),
        ({"split": {"eval_fraction": 1.0}}, "eval_fraction must be in"),
        ({"map": {"method": "umap"}}, "map method"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"id_field": ""}, "setting 'id_field' must be a field name"),
    ):
        with pytest.raises(ConfigError, match=message):
            resolve_settings(bad)


def fake_embedder(dim: int = 16, seed: int = 0):
    """Texts "topic N: ..." embed around centre N (cosine ~0.7 within a topic); a text and its
    "(again)" copy embed almost alike."""
    centres = np.random.default_rng(seed).normal(size=(10, dim)) * 5

    def embed(texts):
        rows = []
        for text in texts:
            topic = int(text.split(":")[0].split()[-1])
            base = text.replace(" (again)", "")
            noise = np.random.default_rng(zlib.crc32(base.encode())).normal(size=dim)
            vector = centres[topic] + 3 * noise
            if base != text:
                vector += 0.01 * np.random.default_rng(1).normal(size=dim)
            rows.append(vector)
        return np.array(rows, dtype=np.float32)

    return embed


def qa_rows(dataset: str, topics: dict[int, int], start: int = 0) -> list[dict]:
    rows = []
    for topic, count in topics.items():
        for i in range(count):
            rows.append(
                {
                    "id": f"{dataset}-{topic}-{i + start}",
                    "question": f"topic {topic}: question {i + start} of {dataset}?",
                    "answer": "yes",
                    "dataset": dataset,
                }
            )
    return rows


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_dedup_cluster_split_outputs(tmp_path):
    wiki = qa_rows("wiki", {0: 20, 1: 20})
    news = qa_rows("news", {2: 20, 3: 20})
    copies = [
        {**wiki[3], "id": "copy-1", "question": wiki[3]["question"] + " (again)"},
        {**news[5], "id": "copy-2", "question": news[5]["question"].upper()},
    ]
    inputs = [write(tmp_path / "wiki.jsonl", wiki), write(tmp_path / "news.jsonl", news + copies)]
    out = tmp_path / "out"
    settings = {"clusters": {"k_min": 2, "k_max": 6}, "dedup": {"threshold": 0.99}}
    manifest = dedup_cluster_split(
        inputs, out, settings, embed=fake_embedder(), show_progress=False
    )
    kept = [json.loads(line) for line in (out / "qa_kept.jsonl").read_text().splitlines()]
    removed = [json.loads(line) for line in (out / "removed.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == [r["id"] for r in wiki + news]
    assert [(r["id"], r["duplicate_of"], r["reason"]) for r in removed] == [
        ("copy-1", wiki[3]["id"], "near"),
        ("copy-2", news[5]["id"], "exact"),
    ]
    counts = manifest["counts"]
    assert counts["dedup"] == {"input": 82, "kept": 80, "removed_exact": 1, "removed_near": 1}
    assert counts["clusters"]["k"] == 4 and counts["clusters"]["criterion"] == "silhouette"
    assert counts["clusters"]["sizes"] == {"0": 20, "1": 20, "2": 20, "3": 20}
    assert counts["split"]["train"] == 64 and counts["split"]["eval"] == 16
    assert set(counts["split"]["eval_by_cluster"].values()) == {4}
    assert counts["input_by_dataset"] == {"news": 41, "wiki": 41}  # copy-1 is a wiki record
    assert counts["kept_by_dataset"] == {"news": 40, "wiki": 40}
    table = pd.read_csv(out / "clusters.csv")
    assert table["k"].tolist() == [2, 3, 4, 5, 6]
    train = [json.loads(x) for x in (out / "splits" / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (out / "splits" / "eval.jsonl").read_text().splitlines()]
    assert len(train) == 64 and len(held) == 16
    assert {r["id"] for r in train}.isdisjoint(r["id"] for r in held)
    assert Counter(r["cluster"] for r in held) == Counter({0: 4, 1: 4, 2: 4, 3: 4})
    # A cluster is a topic.
    assert all(
        len({r["question"].split(":")[0] for r in kept if r["cluster"] == c}) == 1 for c in range(4)
    )
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["counts"] == counts and set(on_disk["inputs"]) == {str(p) for p in inputs}
    for name in ("map", "k_selection"):
        assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.svg").exists()
    # Same inputs and settings: same files.
    again = tmp_path / "again"
    dedup_cluster_split(inputs, again, settings, embed=fake_embedder(), show_progress=False)
    for name in ("qa_kept.jsonl", "removed.jsonl", "clusters.csv", "splits/eval.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_dedup_cluster_split_failures_leave_no_output(tmp_path):
    good = write(tmp_path / "qa.jsonl", qa_rows("wiki", {0: 5, 1: 5}))
    out = tmp_path / "out"

    def broken(texts):
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        dedup_cluster_split([good], out, embed=broken)
    assert list(tmp_path.iterdir()) == [good]
    empty = write(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match="no QA records in the input"):
        dedup_cluster_split([empty], out, embed=fake_embedder())
    with pytest.raises(ConfigError, match="a model block or an embed function"):
        dedup_cluster_split([good], out)
    with pytest.raises(ConfigError, match="unknown setting"):
        dedup_cluster_split([good], out, {"dedupe": {}}, embed=fake_embedder())
    assert not out.exists()


def test_a_qa_generation_directory_is_read_as_its_qa_jsonl(tmp_path):
    (tmp_path / "qa" / "wiki").mkdir(parents=True)
    write(tmp_path / "qa" / "wiki" / "qa.jsonl", qa_rows("wiki", {0: 10, 1: 10}))
    manifest = dedup_cluster_split(
        [tmp_path / "qa" / "wiki"],
        tmp_path / "out",
        {"clusters": {"k_min": 2, "k_max": 3}},
        embed=fake_embedder(),
        show_progress=False,
    )
    assert manifest["counts"]["input"] == 20
    assert list(manifest["inputs"]) == [str(tmp_path / "qa" / "wiki" / "qa.jsonl")]
