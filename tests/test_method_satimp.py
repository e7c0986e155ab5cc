"""SatImp (``unlearn/methods/satimp.py``) against open-unlearning's compute_satimp_loss and config."""

from __future__ import annotations

import pytest

from mnemoscope.unlearn import runner as R

from .helpers import OU_RETAIN, logits64, ou_batch, ou_forget, our_loss, their_hf_nll, their_weighted


def test_satimp_matches_open_unlearning_config(theta, tokenizer):
    forget, retain = ou_forget(tokenizer), ou_batch(R.text_examples(OU_RETAIN), tokenizer)
    ours = our_loss("satimp", theta, None, {"forget": forget, "retain": retain})
    # configs/trainer/SatImp.yaml: beta1 5, beta2 1, gamma (forget weight) 0.1, alpha (retain weight) 1
    theirs = (0.1 * their_weighted(logits64(theta, forget), forget.labels, lambda p: p**5 * (1 - p))
              + 1.0 * their_hf_nll(theta, retain))
    assert ours == pytest.approx(theirs, rel=1e-5)
    ours2 = our_loss("satimp", theta, None, {"forget": forget, "retain": retain},
                  {"beta1": 0.5, "beta2": 2.0, "forget_weight": 1.0, "retain_weight": 0.0})
    assert ours2 == pytest.approx(their_weighted(logits64(theta, forget), forget.labels,
                                                  lambda p: p**0.5 * (1 - p) ** 2), rel=1e-5)
