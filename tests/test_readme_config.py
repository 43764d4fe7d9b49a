"""The README's "Bringing your own data" config is complete on its own: written out as a user
would copy it, next to small data in the layouts it names, it passes the config check and plans
the experiments it promises (stage 1 shared, one aggregate, the run groups it lists)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import REPO, job_counts, run_snakemake

TOWNS = ["Arlow", "Bexmoor", "Calder Rise", "Dunmere", "Eskby", "Fallowmead", "Greywick"]


def readme_config() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n# my.yaml\n(.*?)```", readme, re.S)
    assert match, "README: the 'Bringing your own data' config block is missing"
    return match.group(1)


def write_data(root: Path) -> None:
    """Invented documents: a BEIR directory with queries and a corpus-only directory."""
    docs = root / "data" / "mydocs"
    (docs / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], {"train": [], "test": []}
    for i, town in enumerate(TOWNS * 3):
        doc_id, query_id = f"d{i}", f"q{i}"
        corpus.append(
            {
                "_id": doc_id,
                "title": "",
                "text": f"{town} report {i}. The market of "
                f"{town} opened a new hall in year {1900 + i}. Farmers sold {i} carts.",
            }
        )
        queries.append({"_id": query_id, "text": f"When did {town} open hall number {i}?"})
        qrels["test" if i % 4 == 0 else "train"].append(f"{query_id}\t{doc_id}\t1")
    (docs / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (docs / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, rows in qrels.items():
        (docs / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(row + "\n" for row in rows)
        )
    notes = root / "data" / "mynotes"
    notes.mkdir(parents=True)
    (notes / "corpus.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "_id": f"n{i}",
                    "title": f"Notes on {town}",
                    "text": f"{town} lies by the river. Its bridge is old. "
                    f"The mill of {town} grinds oats. Winters there are long.",
                }
            )
            + "\n"
            for i, town in enumerate(TOWNS)
        )
    )


def test_the_readme_config_plans_its_experiments(tmp_path: Path):
    write_data(tmp_path)
    configfile = tmp_path / "my.yaml"
    configfile.write_text(readme_config(), encoding="utf-8")
    result = run_snakemake("-n", "--configfile", str(configfile), cwd=tmp_path)
    counts = job_counts(result.stdout)
    # Runs: base, ict-seed{0,1}, ict+docs-seed{0,1}, title-seed{0,1}.
    assert counts["train_adapter"] == 6 and counts["aggregate"] == 1
    assert counts["evaluate"] == 7 * 2 and counts["embed_corpus"] == 7 * 2
    trained = set(re.findall(r"wildcards: model=minilm, stages=(\S+), seed=\d", result.stdout))
    assert trained == {"ict", "title", "ict+docs"}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for group in ("minilm base", "minilm ict", "minilm title", "minilm ict+docs"):
        assert f"`{group}`" in readme
