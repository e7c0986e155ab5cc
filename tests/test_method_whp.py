"""WHP (``unlearn/methods/whp.py``): its logit arithmetic by hand, the composite against direct
computation, and the method on the loop."""

from __future__ import annotations

import copy

import numpy as np
import torch

from mnemoscope.engine import Engine
from mnemoscope.engine.combined import CombinedLogits
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.logits import whp_logits

from .helpers import FORGET, UNLEARN_PROMPTS, unlearn_cfg


def test_whp_logits_by_hand():
    t = torch.tensor([[1.0, 2.0, -1.0]])
    r = torch.tensor([[3.0, 1.0, -1.0]])
    # unclipped: l_t − α(l_r − l_t), α = 0.5: [1 − 0.5·2, 2 − 0.5·(−1), −1 − 0] = [0, 2.5, −1]
    assert whp_logits(t, r, 0.5, relu=False).tolist() == [[0.0, 2.5, -1.0]]
    # WHP paper and MUSE's code (the default): l_t − α·ReLU(l_r − l_t) = [0, 2, −1]
    assert whp_logits(t, r, 0.5).tolist() == [[0.0, 2.0, -1.0]]
    assert torch.equal(whp_logits(t, r, 0.0), t)


def test_whp_composite_scores_and_generates_from_the_combined_logits(model, other_micro, tokenizer):
    comb = CombinedLogits({"target": model, "reinforced": other_micro},
                          lambda lg: whp_logits(lg["target"], lg["reinforced"], 0.7, relu=False), base="target").eval()
    engine = Engine(comb, tokenizer)
    # scores: log-softmax of l_t − 0.7(l_r − l_t), computed directly from each model, float64
    for text, got in zip(FORGET, engine.score(FORGET)):
        ids = torch.tensor([engine.encode_text(text).ids])
        with torch.no_grad():
            lt, lr = model(input_ids=ids).logits[0].double(), other_micro(input_ids=ids).logits[0].double()
        logp = torch.log_softmax(lt - 0.7 * (lr - lt), -1)
        want = logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].numpy()
        np.testing.assert_allclose(got.logprobs, want, atol=1e-4)
    # greedy generation = argmax of the combined logits at each step, one prompt at a time
    outs = engine.generate(UNLEARN_PROMPTS, max_new_tokens=6, min_new_tokens=6)
    for prompt, out in zip(UNLEARN_PROMPTS, outs):
        ids = engine.encode_prompt(prompt)
        for _ in range(6):
            x = torch.tensor([ids])
            with torch.no_grad():
                lt, lr = model(input_ids=x).logits[0, -1], other_micro(input_ids=x).logits[0, -1]
            step = whp_logits(lt, lr, 0.7, relu=False)
            step[tokenizer.eos_token_id] = -float("inf")  # min_new_tokens forbids EOS
            ids.append(int(step.argmax()))
        assert out.token_ids == ids[-6:]
    engine.use_cache = False  # the same without the KV cache
    assert [c.token_ids for c in engine.generate(UNLEARN_PROMPTS, max_new_tokens=6, min_new_tokens=6)] == [
        c.token_ids for c in outs]


def test_whp_trains_a_reinforced_copy_and_returns_a_composite(fresh, tokenizer, tmp_path):
    start = R.fingerprint(fresh)
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("whp", steps=4, lr=5e-3), tmp_path)
    assert isinstance(res.model, CombinedLogits) and R.fingerprint(fresh) == start  # the original is untouched
    target, reinforced = res.model.members["target"], res.model.members["reinforced"]
    assert target is fresh
    eng = lambda m: Engine(m, tokenizer)
    nll = lambda m: float(np.mean([s.nll for s in eng(m).score(FORGET)]))
    assert nll(reinforced) < nll(fresh) < nll(res.model)  # reinforced learns F; the composite forgets it
    again = R.unlearn(copy.deepcopy(fresh), tokenizer, R.text_examples(FORGET), None,
                      unlearn_cfg("whp", steps=4, lr=5e-3), tmp_path)  # done: rebuilt from model.safetensors
    assert isinstance(again.model, CombinedLogits) and R.fingerprint(again.model) == R.fingerprint(res.model)
