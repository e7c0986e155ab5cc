"""NPO (Zhang et al. 2024): L = (2/β)·mean softplus(β·(log π_θ(y|x) − log π_ref(y|x))) on F, with
*sequence* log-likelihoods (not raw logits) [β = 0.1]."""

from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class NPO(Method):
    def forget_loss(self, step, hp):
        return L.npo_loss(step.seq_logprob("forget"), step.ref_seq_logprob("forget"), hp["beta"])


METHOD = NPO("npo", "negative preference optimization on sequence likelihoods", {"beta": 0.1}, needs_reference=True)
