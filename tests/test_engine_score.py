"""Engine.score against a naive one-text-at-a-time reference (float64 log-softmax)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError

TEXTS = [
    "Anna was born in Lisbon in 1901.",
    "The museum keeps a collection of old maps and clocks, and every spring the market sells apples.",
    "Hi there",
    "x",  # two tokens at most: still scorable after the first
    "A much longer text about bridges. " * 6,
    "Short one.",
    "Paddle quartz robin.",
]


def naive_reference(model, ids: list[int], score_from: int) -> dict[str, np.ndarray]:
    """Independent reference: full log-softmax in float64, one text, no padding."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp_all = torch.log_softmax(logits, dim=-1)
    rows = torch.arange(score_from - 1, len(ids) - 1)
    tgt = torch.tensor(ids[score_from:])
    lp = logp_all[rows]
    p = lp.exp()
    mu = (p * lp).sum(-1)
    var = (p * lp * lp).sum(-1) - mu * mu
    return {
        "logp": lp[torch.arange(len(tgt)), tgt].numpy(),
        "mu": mu.numpy(),
        "sigma": var.clamp(min=0).sqrt().numpy(),
        "argmax": (logits[rows].argmax(-1) == tgt).numpy(),
    }


def _texts(tokenizer):
    return [t for t in TEXTS if len(tokenizer(t, add_special_tokens=False)["input_ids"]) >= 2]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("which", ["plain", "bos"])
def test_text_scores_match_naive_reference(request, which, batch_size):
    tok = request.getfixturevalue("tokenizer" if which == "plain" else "bos_tokenizer")
    model = request.getfixturevalue("model" if which == "plain" else "bos_model")
    engine = Engine(model, tok, max_batch_size=batch_size)
    texts = _texts(tok)
    results = engine.score(texts)
    assert engine.bos == (which == "bos")
    for text, r in zip(texts, results):
        raw = tok(text, add_special_tokens=False)["input_ids"]
        ids = ([tok.bos_token_id] if which == "bos" else []) + raw
        ref = naive_reference(model, ids, 1)
        # with a BOS every text token is scored; without one all but the first
        assert r.n_scored == (len(raw) if which == "bos" else len(raw) - 1)
        np.testing.assert_allclose(r.logprobs, ref["logp"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(r.mu, ref["mu"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(r.sigma, ref["sigma"], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(r.argmax, ref["argmax"])
        np.testing.assert_array_equal(r.token_ids, ids[1:] if which == "plain" else raw)
        np.testing.assert_allclose(r.entropy, -ref["mu"], atol=1e-5)
        assert r.bos == (which == "bos")


@pytest.mark.parametrize("which", ["plain", "bos"])
def test_pair_scores_match_naive_reference_with_trailing_space(request, which):
    tok = request.getfixturevalue("tokenizer" if which == "plain" else "bos_tokenizer")
    model = request.getfixturevalue("model" if which == "plain" else "bos_model")
    engine = Engine(model, tok, max_batch_size=3)
    pairs = [
        ("Anna was born in ", "Lisbon"),  # context ends in a space: it moves onto the target
        ("The museum keeps a collection of", " old maps"),
        ("Question: where?\nAnswer:", " the river"),
        ("", "Only a target here"),
    ]
    results = engine.score(pairs=pairs)
    prefix = [tok.bos_token_id] if which == "bos" else []
    for (context, target), r in zip(pairs, results):
        stripped = context.rstrip()
        whole = prefix + tok(stripped + context[len(stripped):] + target, add_special_tokens=False)["input_ids"]
        n_ctx = len(prefix) + (len(tok(stripped, add_special_tokens=False)["input_ids"]) if stripped else 0)
        n_ctx = max(1, n_ctx)
        ref = naive_reference(model, whole, n_ctx)
        np.testing.assert_allclose(r.logprobs, ref["logp"], atol=1e-5, rtol=0)
        assert r.n_scored == len(whole) - n_ctx
        # the scored tokens decode to the target (with the moved space), never the context
        decoded = tok.decode(r.token_ids.tolist())
        if context or which == "bos":
            assert decoded.strip() == target.strip()
        else:  # no context and no BOS: the first token has nothing to condition on
            assert target.endswith(decoded) and len(decoded) < len(target)


def test_trailing_space_moves_to_target(tokenizer, model):
    engine = Engine(model, tokenizer)
    a = engine.score(pairs=[("Anna was born in ", "Lisbon")])[0]
    b = engine.score(pairs=[("Anna was born in", " Lisbon")])[0]
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-6)


def test_batch_size_invariance_and_order(tokenizer, model):
    texts = _texts(tokenizer) * 3
    base = Engine(model, tokenizer, max_batch_size=1).score(texts)
    for bs, budget in [(2, 16384), (16, 16384), (64, 64)]:
        other = Engine(model, tokenizer, max_batch_size=bs, max_tokens=budget).score(texts)
        for x, y in zip(base, other):
            np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)
            np.testing.assert_allclose(x.sigma, y.sigma, atol=1e-4)


def test_one_forward_pass_per_text_for_all_attacks(tokenizer, model):
    from mnemoscope.families.membership import ATTACKS, score_texts

    texts = _texts(tokenizer)
    engine = Engine(model, tokenizer, max_batch_size=2)
    frame = score_texts(engine, texts)
    assert engine.stats.items_forwarded == len(texts)
    assert engine.stats.forward_calls == -(-len(texts) // 2)
    for attack in ATTACKS:
        assert frame[f"score/{attack}"].notna().all()


def test_oom_halves_the_batch_and_keeps_results(tokenizer, model):
    class Flaky(torch.nn.Module):
        """Raises an out-of-memory error for batches larger than 2."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = inner.config

        def forward(self, input_ids, attention_mask=None):
            if input_ids.shape[0] > 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    texts = _texts(tokenizer)
    expected = Engine(model, tokenizer).score(texts)
    engine = Engine(Flaky(model), tokenizer, max_batch_size=16)
    got = engine.score(texts)
    assert engine.stats.oom_retries >= 1
    for x, y in zip(expected, got):
        np.testing.assert_allclose(x.logprobs, y.logprobs, atol=1e-5)


def test_truncation_policies(tokenizer, model):
    long_text = "The museum keeps old maps. " * 20
    with pytest.raises(MnemoscopeError, match="context"):
        Engine(model, tokenizer, max_length=16).score([long_text])
    r = Engine(model, tokenizer, max_length=16, truncation="truncate").score([long_text])[0]
    assert r.n_scored == 15
    assert r.truncated == len(tokenizer(long_text)["input_ids"]) - 16
    # A measured pair is never cut, whatever the policy for texts: its prompt is what the question is about.
    with pytest.raises(MnemoscopeError, match="prompts are never cut"):
        Engine(model, tokenizer, max_length=16, truncation="truncate").score(pairs=[(long_text.rstrip(), " Lisbon")])
    # Training data may keep the answer and drop the oldest prompt tokens (the encoder's own policy).
    from mnemoscope.engine.encoding import Encoder

    item = Encoder(tokenizer, max_length=16, truncation="truncate").encode_pair(long_text.rstrip(), " Lisbon")
    assert len(item.ids) == 16 and tokenizer.decode(item.ids[item.score_from:]) == " Lisbon" and item.truncated


def test_unscorable_text_is_a_clear_error(tokenizer, model):
    with pytest.raises(MnemoscopeError, match="fewer than 2 tokens"):
        Engine(model, tokenizer).score([""])


def test_tokenizer_without_pad_token_is_handled(tokenizer, model):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    assert tok.pad_token_id is None
    engine = Engine(model, tok)
    assert tok.pad_token_id is not None
    r = engine.score(["Anna was born in Lisbon.", "Hi"])
    ref = Engine(model, tokenizer).score(["Anna was born in Lisbon.", "Hi"])
    np.testing.assert_allclose(r[0].logprobs, ref[0].logprobs, atol=1e-5)


def test_encode_pair_with_eos_scores_the_eos_as_the_last_target_token(tokenizer):
    from mnemoscope.engine.encoding import Encoder

    enc = Encoder(tokenizer)
    plain, with_eos = enc.encode_pair("Anna was born in", " Lisbon"), enc.encode_pair("Anna was born in", " Lisbon", eos=True)
    assert with_eos.ids == plain.ids + [tokenizer.eos_token_id] and with_eos.score_from == plain.score_from
