"""SimNPO (Fan et al. 2024): reference-free, length-normalised NPO,
L = (2/β)·mean softplus((β/|y|)·log π_θ(y|x) + γ) on F [β = 4.5, γ = 0]."""

from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class SimNPO(Method):
    def forget_loss(self, step, hp):
        return L.simnpo_loss(step.seq_logprob("forget"), step.counts("forget"), hp["beta"], hp["gamma"])


METHOD = SimNPO("simnpo", "reference-free, length-normalised NPO", {"beta": 4.5, "gamma": 0.0},
                lab={"beta": 4.5, "gamma": 0.0})
