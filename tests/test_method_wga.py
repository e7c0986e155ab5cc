"""WGA (``unlearn/methods/wga.py``) against open-unlearning's compute_wga_loss."""

from __future__ import annotations

import pytest

from mnemoscope.unlearn import runner as R

from .helpers import OU_RETAIN, logits64, ou_batch, ou_forget, our_loss, their_hf_nll, their_weighted


@pytest.mark.parametrize("beta", [1.0, 2.5, 0.3])
def test_wga_matches_open_unlearning(theta, tokenizer, beta):
    forget, retain = ou_forget(tokenizer), ou_batch(R.text_examples(OU_RETAIN), tokenizer)
    ours = our_loss("wga", theta, None, {"forget": forget, "retain": retain}, {"beta": beta})
    theirs = their_weighted(logits64(theta, forget), forget.labels, lambda p: p**beta) + their_hf_nll(theta, retain)
    assert ours == pytest.approx(theirs, rel=1e-5)
