"""Step plot_ruler_heatmap from the command line (`python -m adapterflow plot_ruler_heatmap`) as a
user runs it, and scripts/plot_ruler_heatmap.py as a rule runs it."""

from __future__ import annotations

import pandas as pd

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "plot_ruler_heatmap.py"


def write_details(path):
    rows = [
        {"id": f"r{i}", "variant": variant, "length": length, "depth": depth, "score": score}
        for i, (variant, length, depth, score) in enumerate(
            [
                ("niah_single_1", 256, 0.0, 1.0),
                ("niah_single_1", 256, 100.0, 1.0),
                ("niah_single_1", 512, 0.0, 1.0),
                ("niah_single_1", 512, 100.0, 0.0),
                ("niah_multikey_1", 256, 0.0, 0.0),
                ("niah_multikey_1", 512, 100.0, 0.0),
            ]
        )
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run(details, png, *args):
    return run_step(
        "plot_ruler_heatmap", "--input", f"details={details}", "--output", f"png={png}", *args
    )


def test_command_line_writes_png_and_svg(tmp_path):
    details = write_details(tmp_path / "niah.details.csv")
    out = tmp_path / "figures" / "niah.png"
    result = run(details, out, "--param", "label=lm base")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "figures/niah.png").stat().st_size > 1000
    assert (tmp_path / "figures/niah.svg").exists()
    one = run(details, tmp_path / "one.png", "--param", "variant=nope")
    assert one.returncode == 1
    assert one.stderr.strip().splitlines()[-1].endswith("no rows of variant 'nope'")


def test_a_bad_details_csv_is_one_line(tmp_path):
    details = tmp_path / "bad.csv"
    details.write_text("id,length,depth\nr0,256,0\n")
    result = run(details, tmp_path / "fig.png")
    assert result.returncode == 1
    assert "field 'score': missing column" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "fig.png").exists()


def test_snakemake_rule(tmp_path):
    """The names the rule passes: input.details, params.label, output.png (SVG beside it)."""
    write_details(tmp_path / "eval" / "lm" / "base" / "niah.details.csv")
    run_script_rule(
        tmp_path,
        f"""
            rule plot_ruler_heatmap:
                input:
                    details="eval/lm/base/niah.details.csv",
                output:
                    png="figures/ruler/lm/base/niah.png",
                    svg="figures/ruler/lm/base/niah.svg",
                log:
                    "logs/plot_ruler_heatmap/lm/base/niah.log",
                params:
                    label="lm base · niah",
                script:
                    "{SCRIPT}"
            """,
    )
    for ext in ("png", "svg"):
        assert (tmp_path / f"figures/ruler/lm/base/niah.{ext}").stat().st_size > 1000
    log = (tmp_path / "logs/plot_ruler_heatmap/lm/base/niah.log").read_text()
    assert "wrote figures/ruler/lm/base/niah.png" in log
