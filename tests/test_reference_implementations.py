"""Our numbers against the published code's definitions, item by item.

Each reference test writes out, independently of mnemoscope (plain transformers calls, one item at
a time, float64 where the published code has no choice to make), what the published implementation
computes, and compares it with mnemoscope per item on a micro model and data built here (the
``reference_trained`` fixture, ``tests/helpers.py``'s ``REFERENCE_TEXTS`` / ``REFERENCE_QA``).

Here, the two that belong to no measurement family:

- lm-evaluation-harness ``HFLM.loglikelihood`` (``_encode_pair`` + ``_loglikelihood_tokens``),
  against the engine;
- MUSE's ``metrics/privleak.py`` + ``eval.py``, against ``unlearn.evaluation``.

In the module of the family they test:

- MIMIR's LOSS / zlib / Min-K% attacks and the Min-K%++ authors' ``run.py``
  (``test_family_membership.py``);
- MUSE's ``metrics/knowmem.py`` and ``metrics/verbmem.py`` (``test_family_knowmem.py``,
  ``test_family_verbmem.py``);
- TOFU's ``data_module.py`` / ``evaluate_util.py`` / ``aggregate_eval_stat.py`` (probability,
  truth ratio, ROUGE recall, forget quality, model utility over its 9 values; ``test_family_tofu.py``);
- the neighbourhood attack (MIMIR), ReCaLL's ``run.py``, SaMIA's ``sampling.py`` +
  ``eval_samia.py``, MIMIR's gradnorm and DC-PDD's loop (``test_family_attacks.py``,
  ``test_metrics_attacks.py``); PAC and Con-ReCall (``test_family_pac_conrecall.py``);
- ACR's MiniPrompt schedule (``test_family_acr.py``); the provenance authors' scipy p-value
  (``test_metrics_provenance.py``, ``test_family_provenance.py``).

Elsewhere: gradients against a plain ``loss.backward()`` (``test_engine_gradients.py``), ULD's
``greedy_search`` (``test_method_uld.py``) and FLAT's ``cl`` loss (``test_method_flat.py``); open-unlearning's
losses of IdkDPO, UNDIAL, WGA, SatImp and CE-U (``test_method_<name>.py``).

Where our default differs from the published code (docs/metrics.md, "Differences from the
published code"), the test runs the switch that reproduces the published code; a drift from the
published definition then fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, roc_curve

from mnemoscope.engine import Engine
from mnemoscope.unlearn import evaluation as ev

from .helpers import REFERENCE_TEXTS, reference_log_softmax


# --------------------------------------------------------------------------- lm-evaluation-harness


@pytest.mark.parametrize("which", ["plain", "bos"])
def test_loglikelihood_equals_lm_eval_harness(request, which):
    tok = request.getfixturevalue("tokenizer" if which == "plain" else "bos_tokenizer")
    model = request.getfixturevalue("model" if which == "plain" else "bos_model")
    pairs = [("Anna Berg was born in ", "Lisbon"), ("The museum in Alder keeps", " a collection of old clocks"),
             ("Question: Who joined Holt Industries?\nAnswer:", " Marco"), ("Every spring", " the market")]
    ours = Engine(model, tok).score(pairs=pairs)
    for (context, continuation), s in zip(pairs, ours):
        # _encode_pair: trailing spaces of the context move to the continuation; encode the whole, split at
        # the context's length (tok_encode with the tokenizer's default special tokens)
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        whole, context_enc = tok.encode(context + continuation), tok.encode(context)
        continuation_enc = whole[len(context_enc):]
        # _loglikelihood_tokens: input = (context + continuation)[:-1]; the last len(continuation) positions
        inp = (context_enc + continuation_enc)[:-1]
        logits = reference_log_softmax(model, inp)[-len(continuation_enc):]
        cont = torch.tensor(continuation_enc)
        logprob = float(logits.gather(1, cont[:, None]).sum())
        is_greedy = bool((logits.argmax(-1) == cont).all())
        assert list(s.token_ids) == continuation_enc
        assert float(np.sum(s.logprobs, dtype=np.float64)) == pytest.approx(logprob, abs=1e-4)
        assert bool(s.argmax.all()) == is_greedy


# --------------------------------------------------------------------------- MUSE privleak


def _muse_min_40(model, tokenizer, text: str) -> float:
    """MUSE privleak.compute_ppl + inference: Min-40% = −mean(sorted(all_prob)[: int(len · 0.4)])."""
    ids = tokenizer.encode(text)
    all_prob = reference_log_softmax(model, ids)[:-1].gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1).numpy()
    return float(-np.mean(np.sort(all_prob)[: int(len(all_prob) * 0.4)]))


def _muse_auc(forget: list[float], holdout: list[float]) -> float:
    """MUSE privleak.eval, key forget_holdout_Min-40%: forget labelled 0, holdout 1; roc_curve on −ppl."""
    ppl = np.array(forget + holdout)
    y = np.array([0] * len(forget) + [1] * len(holdout))
    fpr, tpr, _ = roc_curve(y, -ppl)
    return auc(fpr, tpr)


def test_privleak_equals_muse(reference_trained, model, tokenizer):
    forget = REFERENCE_TEXTS[:4]
    holdout = REFERENCE_TEXTS[4:] + ["Ruth joined Iris Works in 1961 as a patient designer.",
                                     "Every autumn the fair in Grey sells boats from nearby towns."]
    data = ev.EvalData(forget_texts=forget, holdout_texts=holdout, min_k_rounding="down", knowmem_tokens=4,
                       verbmem_tokens=4)
    retrained = Engine(model, tokenizer)  # never saw the forget texts
    reference = ev.reference_from_retrained(retrained, data)
    metrics, _, notes = ev.six_way(Engine(reference_trained, tokenizer), data, reference)
    # per text: our Min-40% score (higher = member) is MUSE's value negated
    for engine_model, scores in ((model, np.r_[reference.mia_forget, reference.mia_holdout]),):
        muse = [_muse_min_40(engine_model, tokenizer, t) for t in forget + holdout]
        np.testing.assert_allclose(scores, -np.array(muse), rtol=1e-5)
    auc_u = _muse_auc([_muse_min_40(reference_trained, tokenizer, t) for t in forget],
                      [_muse_min_40(reference_trained, tokenizer, t) for t in holdout])
    auc_r = _muse_auc([_muse_min_40(model, tokenizer, t) for t in forget],
                      [_muse_min_40(model, tokenizer, t) for t in holdout])
    # eval.py: (auc − AUC_RETRAIN) / AUC_RETRAIN × 100, with the retrained model's AUC measured here
    assert metrics["privleak"] == pytest.approx((auc_u - auc_r) / auc_r * 100, rel=1e-9)
    assert metrics["mia_auc"] == pytest.approx(1 - auc_u) and metrics["mia_auc_retrained"] == pytest.approx(1 - auc_r)
    assert metrics["privleak"] < 0 and "privleak" not in notes  # memorised forget set: under-unlearning
