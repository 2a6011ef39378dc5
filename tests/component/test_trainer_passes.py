"""The trainer's per-token passes compute only the response columns and match a full forward."""

import torch

from rlvr.algo import token_logp_from_logits
from rlvr.trainer.loop import forward_logp, response_start
from rlvr.trainer.rollout import Rollout, pad_batch


def test_forward_logp_on_response_columns_equals_the_full_forward(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    torch.manual_seed(0)
    rollouts = []
    for i, (p, r) in enumerate([(9, 5), (6, 8), (12, 3)]):  # different prompt and response lengths
        ids = torch.randint(5, 90, (p + r,)).tolist()
        rollouts.append(Rollout(0, i, i, f"x/{i}", ids[:p], ids[p:], "", "stop", [0.0] * r))
    batch = pad_batch(rollouts, tok.pad_token_id)
    assert response_start(batch) == 5  # the shortest prompt (6 tokens) predicts its first response token at 5
    logp, ent = forward_logp(model, batch, temperature=0.7, micro=2, with_entropy=True)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    ref = token_logp_from_logits(full, batch["input_ids"][:, 1:], 0.7)
    mask = batch["response_mask"].bool()
    torch.testing.assert_close(logp[mask], ref[mask], rtol=1e-5, atol=1e-5)
    assert logp.shape == ref.shape and ent.shape == ref.shape
