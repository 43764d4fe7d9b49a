"""Depth × length heatmap of a generation evaluation's details CSV: cell means, annotations,
labels, PNG + SVG with reproducible bytes, errors naming the file, line and column."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapterflow.eval.generation import read_generation_set, score_predictions
from adapterflow.io import write_jsonl
from adapterflow.plots.ruler import depth_length_table, plot_depth_length_heatmap
from adapterflow.report.tables import EvalFileError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def details_frame() -> pd.DataFrame:
    """Two variants on a 3-depth × 2-length grid, two samples of niah_single_1 per cell; the
    (50 %, 8K) cell has no niah_multivalue sample."""
    rows = []
    for length in (4096, 8192):
        for depth in (0.0, 50.0, 100.0):
            for sample, score in enumerate((1.0, 0.0 if length == 8192 and depth == 50 else 1.0)):
                rows.append(("niah_single_1", length, depth, score, f"s{length}-{depth}-{sample}"))
            if not (length == 8192 and depth == 50):
                rows.append(("niah_multivalue", length, depth, 0.25, f"m{length}-{depth}"))
    frame = pd.DataFrame(rows, columns=["variant", "length", "depth", "score", "id"])
    frame["prediction"] = "NA"  # text that pandas would read as a missing value by default
    return frame


@pytest.fixture
def details_csv(tmp_path) -> Path:
    path = tmp_path / "niah.details.csv"
    details_frame().to_csv(path, index=False)
    return path


def test_table_means_and_counts(details_csv):
    means, counts = depth_length_table(details_csv, variant="niah_single_1")
    assert means.index.tolist() == [0.0, 50.0, 100.0]
    assert means.columns.tolist() == [4096, 8192]
    assert means.to_numpy().tolist() == [[100.0, 100.0], [100.0, 50.0], [100.0, 100.0]]
    assert counts.to_numpy().tolist() == [[2, 2], [2, 2], [2, 2]]
    pooled, pooled_counts = depth_length_table(details_csv)
    assert pooled.loc[0.0, 4096] == pytest.approx((1 + 1 + 0.25) / 3 * 100)
    assert pooled.loc[50.0, 8192] == 50.0 and pooled_counts.loc[50.0, 8192] == 2


def test_heatmap_cells_labels_and_files(details_csv, tmp_path):
    out = tmp_path / "fig" / "niah_heatmap"
    fig = plot_depth_length_heatmap(details_csv, out, variant="niah_multivalue", label="tiny base")
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.shape == (3, 2)
    assert bool(image.mask[1, 1]) and image[0, 0] == 25.0  # no sample in (50 %, 8K)
    assert [t.get_text() for t in ax.texts] == ["25.0", "25.0", "25.0", "—", "25.0", "25.0"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4K", "8K"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0%", "50%", "100%"]
    assert ax.get_title() == "tiny base · niah_multivalue: mean score 25.0 (n = 5)"
    assert ax.images[0].get_clim() == (0, 100)
    png, svg = Path(f"{out}.png"), Path(f"{out}.svg")
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    # The same data gives the same bytes.
    first = png.read_bytes(), svg.read_bytes()
    plot_depth_length_heatmap(details_csv, out, variant="niah_multivalue", label="tiny base")
    assert (png.read_bytes(), svg.read_bytes()) == first


def test_heatmap_of_a_generation_details_csv(tmp_path):
    rows = [
        {"id": f"r{i}", "input": "...", "outputs": ["7"], "length": 90, "target_length": n,
         "depth": d, "variant": "niah_single_1"}
        for i, (n, d) in enumerate([(100, 0), (100, 100), (200, 0), (200, 100)])
    ]  # fmt: skip
    write_jsonl(tmp_path / "set.jsonl", rows)
    records = read_generation_set(tmp_path / "set.jsonl")
    scores, details = score_predictions(records, ["7", "x", "7", "7"])
    details.to_csv(tmp_path / "d.csv", index=False)
    fig = plot_depth_length_heatmap(tmp_path / "d.csv")
    values = fig.axes[0].images[0].get_array()
    cells = {(c["depth"], c["length"]): c["score"] for c in scores["cells"]}
    assert values.tolist() == [
        [cells[0.0, 100], cells[0.0, 200]],
        [cells[100.0, 100], cells[100.0, 200]],
    ]
    assert values.tolist() == [[100.0, 100.0], [0.0, 100.0]]


def test_missing_column_and_bad_value_name_file_line_and_column(details_csv, tmp_path):
    frame = details_frame()
    frame.drop(columns="depth").to_csv(tmp_path / "no_depth.csv", index=False)
    with pytest.raises(EvalFileError, match=r"no_depth\.csv: field 'depth': missing column"):
        plot_depth_length_heatmap(tmp_path / "no_depth.csv")
    frame["score"] = frame["score"].astype(object)
    frame.loc[2, "score"] = "high"
    frame.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(EvalFileError, match=r"text\.csv:4: field 'score': not a number"):
        plot_depth_length_heatmap(tmp_path / "text.csv")
    with pytest.raises(EvalFileError, match="no rows of variant 'qa_1'"):
        plot_depth_length_heatmap(details_csv, variant="qa_1")
    frame.drop(columns="variant").to_csv(tmp_path / "no_variant.csv", index=False)
    with pytest.raises(EvalFileError, match="field 'variant'"):
        plot_depth_length_heatmap(tmp_path / "no_variant.csv", variant="qa_1")


def test_dataframe_input_and_text_colours():
    frame = details_frame()
    fig = plot_depth_length_heatmap(frame, variant="niah_single_1")
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours["100.0"] == "white" and colours["50.0"] == "black"
    assert json.loads(json.dumps(np.asarray(fig.axes[0].images[0].get_array()).tolist()))[1] == [
        100.0,
        50.0,
    ]
