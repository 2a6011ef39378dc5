"""The committed testbed model loads like any Hugging Face model and generates in the world's format."""

import json

import pytest

from rlvr.testbed import model_path

pytestmark = pytest.mark.skipif(not (model_path() / "config.json").exists(), reason="testbed model not built")


def test_loads_with_auto_classes_and_round_trips_text():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path())
    model = AutoModelForCausalLM.from_pretrained(model_path())
    assert model.config.model_type == "qwen2"
    assert sum(p.numel() for p in model.parameters()) <= 10_000_000
    text = "Solve for x: 3x - 6 = 12."
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    assert prompt == f"Q: {text}\nA: "


def test_greedy_answers_are_in_the_world_format():
    from rlvr.data import load, render_prompt
    from rlvr.generation import SamplingConfig, generate
    from rlvr.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("testbed")
    probs = load("testbed/test")[:16]
    gens = generate(model, tok, [render_prompt(p.problem, "testbed", tok) for p in probs],
                    SamplingConfig(max_new_tokens=200, temperature=0))
    assert sum(g.finish_reason == "stop" for g in gens) >= 14  # it learned to stop
    assert sum("The answer is" in g.text for g in gens) >= 14  # and to end the way the corpus does


def test_model_card_reports_measured_band():
    card = (model_path() / "README.md").read_text()
    metrics = json.loads((model_path() / "metrics.json").read_text())
    assert f"{metrics['acc_t0.6']:.3f}" in card
    assert metrics["pass@8"] > metrics["acc_t0.6"]
