"""rlvr.decoder's static-KV-cache forward gives transformers' logits, step by step, with left padding."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlvr.decoder import StaticDecoder, supports


def _qwen2():
    cfg = Qwen2Config(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, tie_word_embeddings=True)
    m = Qwen2ForCausalLM(cfg).eval()
    for name, p in m.named_parameters():  # q/k/v biases are zero at init; make them matter
        if name.endswith("bias"):
            torch.nn.init.normal_(p, std=0.5)
    return m


def _llama_gqa():
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, rope_theta=500.0)
    return LlamaForCausalLM(cfg).eval()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # cuda: on a GPU machine


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", [_qwen2, _llama_gqa], ids=["qwen2-bias", "llama-gqa"])
def test_prefill_and_steps_match_transformers(make, device):
    torch.manual_seed(0)
    model = make().to(device)
    assert supports(model)
    B, L, N = 3, 6, 5
    ids = torch.randint(3, 50, (B, L)).to(device)
    attn = torch.ones(B, L, dtype=torch.long, device=device)
    attn[0, :3] = 0  # left padding of different lengths
    attn[1, :1] = 0
    ids[attn == 0] = 0
    dec = StaticDecoder(model, B, L + N)
    logits = dec.prefill(ids, attn)
    seq, mask = ids, attn
    for _ in range(N):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            ref = model(input_ids=seq, attention_mask=mask, position_ids=pos).logits[:, -1]
        tol = 1e-5 if device == "cpu" else 1e-4
        torch.testing.assert_close(logits, ref, rtol=tol, atol=tol)
        nxt = torch.randint(3, 50, (B,)).to(device)
        seq = torch.cat([seq, nxt[:, None]], 1)
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long, device=device)], 1)
        logits = dec.step(nxt)


def test_unsupported_models_are_declined():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert not supports(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=20)))
