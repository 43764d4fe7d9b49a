"""RULER-style generation evaluation on a tiny random causal LM: JSON shape, scores recomputed
from the details CSV with the RULER metrics, limit, determinism, bad records, oracle answers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval import generation, ruler
from adapterflow.eval.generation import (
    DETAIL_COLUMNS,
    build_prompt,
    generate_completions,
    load_causal_lm,
    read_generation_set,
    run_generation_evaluation,
    variant_metric,
)
from adapterflow.generate.llm import build_tiny_lm
from adapterflow.generate.niah import generate_niah, qa_sample
from adapterflow.io import write_jsonl

WORDS = lambda text: len(text.split())  # noqa: E731 - a token counter for the set generator
ESSAY = ["The river runs past the old mill. Birds sing in the morning."] * 3
FILLER = [f"Filler paragraph {i} about nothing much at all." for i in range(40)]
TASK = {"kind": "ruler", "dataset": "toy", "max_new_tokens": 3, "batch_size": 3}
CPU = {"device": "cpu"}


def make_records() -> list[dict]:
    """7 records: niah_single_1 (2 lengths × 2 depths), niah_multivalue, qa_1 (2 depths)."""
    options = {"count_tokens": WORDS, "tokens_to_generate": 3, "seed": 7}
    rows = generate_niah("niah_single_1", lengths=[70, 90], depths=[0, 100], **options)
    rows += generate_niah("niah_multivalue", lengths=[120], depths=[50], haystack=ESSAY, **options)
    for depth in (0, 100):
        row = qa_sample(
            "Mara painted the door red.",
            "What colour is the door?",
            ["red", "crimson"],
            FILLER,
            length=100,
            depth=depth,
            **options,
        )
        rows.append({**row, "variant": "qa_1"})
    return rows


def write_set(path: Path, rows: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, make_records() if rows is None else rows)
    return path


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_set(tmp_path / "niah.jsonl")


def evaluate(tiny_lm, dataset, out: Path, task=TASK, **kwargs) -> dict:
    return run_generation_evaluation(
        task_name="toy",
        task=task,
        model={"path": str(tiny_lm)},
        model_name="tiny",
        dataset=dataset,
        out_json=out / "toy.json",
        out_details=out / "toy.details.csv",
        evaluation=kwargs.pop("evaluation", CPU),
        threads=1,
        show_progress=False,
        **kwargs,
    )


def read_details(path: Path) -> pd.DataFrame:
    # Predictions are text: an empty one must stay "" and "NA" must not become NaN.
    return pd.read_csv(path, keep_default_na=False)


def patch_oracle(monkeypatch, dataset, answers_of):
    records = read_generation_set(dataset)
    calls = []

    def fake(model, tokenizer, prompts, **kwargs):
        calls.append(kwargs)
        return [answers_of(next(r for r in records if r.input in p)) for p in prompts]

    monkeypatch.setattr(generation, "generate_completions", fake)
    return calls


def test_json_shape_and_details(tiny_lm, dataset, tmp_path):
    result = evaluate(tiny_lm, dataset, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "toy.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert on_disk["task_name"] == "toy" and on_disk["task_kind"] == "ruler"
    assert on_disk["run"] == {
        "name": "base",
        "model": "tiny",
        "stage": "base",
        "seed": None,
        "adapter": None,
    }
    entry = on_disk["scores"]["test"][0]
    assert entry["hf_subset"] == "default"
    assert 0 <= entry["main_score"] <= 100
    assert entry["metric"] == "mixed"
    assert set(entry["variants"]) == {"niah_single_1", "niah_multivalue", "qa_1"}
    assert entry["variants"]["qa_1"]["metric"] == "string_match_part"
    assert entry["variants"]["niah_multivalue"] == {
        "metric": "string_match_all",
        "score": entry["niah_multivalue"],
        "n": 1,
    }
    assert [(c["length"], c["depth"], c["n"]) for c in entry["cells"]] == [
        (70, 0.0, 1),
        (70, 100.0, 1),
        (90, 0.0, 1),
        (90, 100.0, 1),
        (100, 0.0, 1),
        (100, 100.0, 1),
        (120, 50.0, 1),
    ]
    gen = on_disk["generation"]
    assert gen["prompt_format"] == "chat"  # "auto" with a tokenizer that has a chat template
    assert gen["max_new_tokens"] == {"niah_multivalue": 3, "niah_single_1": 3, "qa_1": 3}
    assert gen["samples"] == 7 and gen["limit"] is None and gen["greedy"] is True
    prov = on_disk["provenance"]
    assert prov["device"] == "cpu" and prov["model"] == str(tiny_lm)
    assert list(prov["inputs_sha256"]) == [dataset.as_posix()]
    assert prov["config"]["task"] == TASK
    details = read_details(tmp_path / "out" / "toy.details.csv")
    assert tuple(details.columns) == DETAIL_COLUMNS
    assert details["id"].tolist() == [r["id"] for r in make_records()]
    assert details["line"].tolist() == list(range(1, 8))
    assert (details["prompt_tokens"] > details["record_length"]).all()  # bytes > words
    assert [json.loads(o) for o in details["outputs"]] == [r["outputs"] for r in make_records()]
    # The report reads the per-variant scores as metrics.
    assert {k for k, v in entry.items() if isinstance(v, int | float)} == {
        "main_score",
        "niah_single_1",
        "niah_multivalue",
        "qa_1",
    }


def test_scores_equal_ruler_metrics_recomputed_from_the_csv(
    tiny_lm, dataset, tmp_path, monkeypatch
):
    # Partly right answers, so the scores are not all 0 or 100: the first answer of each record,
    # every other record.
    def answers_of(record):
        return f" {record.outputs[0]} is it" if record.line % 2 else " no idea"

    patch_oracle(monkeypatch, dataset, answers_of)
    entry = evaluate(tiny_lm, dataset, tmp_path / "out")["scores"]["test"][0]
    details = read_details(tmp_path / "out" / "toy.details.csv")
    variant_scores = {}
    for variant, rows in details.groupby("variant", sort=False):
        preds = rows["prediction"].tolist()
        refs = [json.loads(o) for o in rows["outputs"]]
        family_metric = ruler.TASK_METRICS["qa" if variant.startswith("qa") else "niah"]
        expected = getattr(ruler, family_metric)(preds, refs)
        assert entry["variants"][variant]["score"] == expected == entry[variant]
        assert rows["score"].tolist() == ruler.per_sample_scores(preds, refs, family_metric)
        variant_scores[variant] = expected
    assert entry["main_score"] == round(sum(variant_scores.values()) / len(variant_scores), 2)
    assert 0 < entry["main_score"] < 100
    for cell in entry["cells"]:
        rows = details[(details["length"] == cell["length"]) & (details["depth"] == cell["depth"])]
        assert cell["score"] == round(rows["score"].sum() / len(rows) * 100, 2)
        assert cell["n"] == len(rows)


def test_oracle_scores_100_and_wrong_answers_0(tiny_lm, dataset, tmp_path, monkeypatch):
    calls = patch_oracle(monkeypatch, dataset, lambda r: " " + ", ".join(r.outputs) + ".")
    entry = evaluate(tiny_lm, dataset, tmp_path / "right")["scores"]["test"][0]
    assert entry["main_score"] == 100.0
    assert all(v["score"] == 100.0 for v in entry["variants"].values())
    assert all(c["score"] == 100.0 for c in entry["cells"])
    assert calls[0]["max_new_tokens"] == 3 and calls[0]["add_special_tokens"] is False

    patch_oracle(monkeypatch, dataset, lambda r: " 0000000, blue\n")
    entry = evaluate(tiny_lm, dataset, tmp_path / "wrong")["scores"]["test"][0]
    assert entry["main_score"] == 0.0
    assert all(c["score"] == 0.0 for c in entry["cells"])


def test_each_family_uses_its_ruler_metric(tiny_lm, dataset, tmp_path, monkeypatch):
    # Half of each record's answers: string_match_all gives partial credit (NIAH), while
    # string_match_part counts one match as a full hit (QA).
    patch_oracle(monkeypatch, dataset, lambda r: " " + " ".join(r.outputs[: len(r.outputs) // 2]))
    entry = evaluate(tiny_lm, dataset, tmp_path / "out")["scores"]["test"][0]
    assert entry["niah_multivalue"] == 50.0  # 2 of 4 values
    assert entry["niah_single_1"] == 0.0  # 0 of 1 value
    assert entry["qa_1"] == 100.0  # "red" of ["red", "crimson"]
    assert entry["main_score"] == 50.0


def test_predictions_are_postprocessed_like_ruler(tiny_lm, dataset, tmp_path, monkeypatch):
    patch_oracle(monkeypatch, dataset, lambda r: f"  {r.outputs[0]}\tend<|im_end|>  ")
    evaluate(tiny_lm, dataset, tmp_path / "out")
    details = read_details(tmp_path / "out" / "toy.details.csv")
    first = make_records()[0]["outputs"][0]
    assert details["prediction"][0] == f"{first}\nend"


def test_limit_keeps_the_first_records(tiny_lm, dataset, tmp_path):
    result = evaluate(tiny_lm, dataset, tmp_path / "arg", limit=3)
    details = read_details(tmp_path / "arg" / "toy.details.csv")
    assert details["id"].tolist() == [r["id"] for r in make_records()[:3]]
    assert result["generation"]["limit"] == 3 and result["generation"]["samples"] == 3
    assert sum(v["n"] for v in result["scores"]["test"][0]["variants"].values()) == 3
    # The task block's limit works too; the argument wins over it.
    from_task = evaluate(tiny_lm, dataset, tmp_path / "task", task={**TASK, "limit": 2})
    assert from_task["generation"]["samples"] == 2
    both = evaluate(tiny_lm, dataset, tmp_path / "both", task={**TASK, "limit": 2}, limit=4)
    assert both["generation"]["samples"] == 4
    with pytest.raises(ConfigError, match="limit must be an integer >= 1"):
        evaluate(tiny_lm, dataset, tmp_path / "zero", limit=0)


def test_deterministic(tiny_lm, dataset, tmp_path):
    first = evaluate(tiny_lm, dataset, tmp_path / "a")
    second = evaluate(tiny_lm, dataset, tmp_path / "b")
    assert first["scores"] == second["scores"]
    csv_a = (tmp_path / "a" / "toy.details.csv").read_bytes()
    assert csv_a == (tmp_path / "b" / "toy.details.csv").read_bytes()
    assert first["provenance"]["config_sha256"] == second["provenance"]["config_sha256"]


GOOD = {"input": "x", "outputs": ["1"], "length": 9, "depth": 0, "variant": "qa"}
BAD = [
    ({"variant": None}, "variant", "missing"),
    ({"input": 3}, "input", "expected str"),
    ({"input": " "}, "input", "empty prompt"),
    ({"outputs": []}, "outputs", "non-empty list"),
    ({"outputs": "1"}, "outputs", "expected list"),
    ({"outputs": [1]}, "outputs", "found int"),
    ({"outputs": [" "]}, "outputs", "blank answer"),
    ({"length": "9"}, "length", "expected int"),
    ({"length": 0}, "length", "positive integer"),
    ({"depth": 150}, "depth", "0 to 100"),
    ({"depth": True}, "depth", "got bool"),
    ({"variant": "trivia"}, "variant", "no RULER task family"),
    ({"answer_prefix": 1}, "answer_prefix", "expected str"),
    ({"id": "qa-100-d100-0"}, "id", "duplicate id 'qa-100-d100-0' (first on line 1)"),
]


def bad_line(change: dict) -> str:
    row = {**GOOD, **change}
    return json.dumps({k: v for k, v in row.items() if v is not None})


@pytest.mark.parametrize(("change", "field", "message"), BAD, ids=[str(c) for c, _, _ in BAD])
def test_bad_record_names_file_line_and_field_before_loading(
    tiny_lm, tmp_path, monkeypatch, change, field, message
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load before the records are checked")

    monkeypatch.setattr(generation, "load_causal_lm", no_model)
    good = make_records()
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(good[-1]), json.dumps(good[0]), bad_line(change), json.dumps(good[1])]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as caught:
        evaluate(tiny_lm, path, tmp_path / "out")
    err = caught.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert str(err).startswith(f"{path}:3: field '{field}': ")
    assert message in str(err)
    assert not (tmp_path / "out").exists()


def test_malformed_json_and_empty_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(make_records()[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        read_generation_set(path)
    path.write_text("\n\n")
    with pytest.raises(DataError, match="no records"):
        read_generation_set(path)


def test_metric_override_scores_unknown_variants(tmp_path):
    row = {"input": "x", "outputs": ["1", "2"], "length": 9, "depth": 0, "variant": "trivia"}
    path = write_set(tmp_path / "set.jsonl", [row])
    assert read_generation_set(path, metric="string_match_part")[0].metric == "string_match_part"
    with pytest.raises(ConfigError, match="metric 'exact'"):
        read_generation_set(path, metric="exact")
    assert variant_metric("niah_multikey_3") == "string_match_all"


def test_prompt_formats(tiny_lm, dataset):
    model, tokenizer = load_causal_lm({"path": str(tiny_lm)})
    record = read_generation_set(dataset)[0]
    assert record.answer_prefix.startswith(" The special magic number")
    assert build_prompt(record, tokenizer, "plain") == record.input + record.answer_prefix
    chat = build_prompt(record, tokenizer, "chat")
    expected_start = "<|im_start|>user\n" + record.input
    assert chat.startswith(expected_start)
    assert chat.endswith("<|im_end|>\n<|im_start|>assistant\n" + record.answer_prefix)
    with pytest.raises(ConfigError, match="prompt_format 'prose'"):
        generation.resolve_prompt_format("prose", tokenizer)
    tokenizer.chat_template = None
    assert generation.resolve_prompt_format("auto", tokenizer) == "plain"
    with pytest.raises(ConfigError, match="no chat template"):
        generation.resolve_prompt_format("chat", tokenizer)


def test_plain_format_and_per_family_token_budgets(tiny_lm, dataset, tmp_path, monkeypatch):
    calls = patch_oracle(monkeypatch, dataset, lambda r: r.outputs[0])
    task = {**TASK, "prompt_format": "plain", "max_new_tokens": {"niah": 5, "qa_1": 2}}
    result = evaluate(tiny_lm, dataset, tmp_path / "out", task=task)
    assert result["generation"]["prompt_format"] == "plain"
    assert result["generation"]["max_new_tokens"] == {
        "niah_multivalue": 5,
        "niah_single_1": 5,
        "qa_1": 2,
    }
    assert sorted(c["max_new_tokens"] for c in calls) == [2, 5]
    assert all(c["add_special_tokens"] is True for c in calls)


def test_batched_generation_keeps_input_order(tiny_lm, dataset):
    model, tokenizer = load_causal_lm({"path": str(tiny_lm)})
    prompts = [build_prompt(r, tokenizer, "plain") for r in read_generation_set(dataset)]
    one_by_one = [
        generate_completions(model, tokenizer, [p], max_new_tokens=3, show_progress=False)[0]
        for p in prompts
    ]
    batched = generate_completions(
        model, tokenizer, prompts, max_new_tokens=3, batch_size=4, show_progress=False
    )
    assert batched == one_by_one
    assert generate_completions(model, tokenizer, [], max_new_tokens=3) == []


def test_lora_adapter_is_loaded_merged_or_not(tiny_lm, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter = tmp_path / "adapter"
    get_peft_model(base, config).save_pretrained(adapter)

    dataset = write_set(tmp_path / "set.jsonl", make_records()[:3])
    plain = evaluate(tiny_lm, dataset, tmp_path / "base")
    result = run_generation_evaluation(
        task_name="toy",
        task=TASK,
        model={"path": str(tiny_lm), "adapter": str(adapter)},
        model_name="tiny",
        run={"name": "stage1-seed0", "stage": "stage1", "seed": 0},
        dataset=dataset,
        out_json=tmp_path / "merged" / "toy.json",
        out_details=tmp_path / "merged" / "toy.details.csv",
        evaluation=CPU,
        threads=1,
        show_progress=False,
    )
    assert result["run"] == {
        "name": "stage1-seed0",
        "model": "tiny",
        "stage": "stage1",
        "seed": 0,
        "adapter": str(adapter),
    }
    assert result["provenance"]["adapter"] == str(adapter)
    unmerged = evaluate(
        tiny_lm,
        dataset,
        tmp_path / "unmerged",
        run={"name": "s1", "stage": "stage1", "seed": 0, "adapter": str(adapter)},
        evaluation={**CPU, "merge_adapter": False},
    )
    base_predictions = read_details(tmp_path / "base" / "toy.details.csv")["prediction"]
    merged_predictions = read_details(tmp_path / "merged" / "toy.details.csv")["prediction"]
    unmerged_predictions = read_details(tmp_path / "unmerged" / "toy.details.csv")["prediction"]
    assert unmerged["run"]["adapter"] == str(adapter)
    assert merged_predictions.tolist() == unmerged_predictions.tolist()
    assert merged_predictions.tolist() != base_predictions.tolist()
    assert plain["run"]["adapter"] is None
    with pytest.raises(ConfigError, match="two different adapters"):
        generation.run_generation_evaluation(
            task_name="toy",
            task=TASK,
            model={"path": str(tiny_lm), "adapter": str(adapter)},
            run={"adapter": str(tmp_path)},
            dataset=dataset,
            out_json=tmp_path / "x.json",
            out_details=tmp_path / "x.csv",
        )


def test_missing_adapter_config_is_a_config_error(tiny_lm, tmp_path):
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        load_causal_lm({"path": str(tiny_lm), "adapter": str(tmp_path)})
