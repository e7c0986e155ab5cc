"""WGA (weighted gradient ascent; Wang et al. 2025, *Rethinking LLM Unlearning Objectives: A
Gradient Perspective and Go Beyond*): gradient ascent where each forget token's NLL is weighted
by its own probability to the power β (detached), so the tokens the model is sure of get the
most ascent and the ones it already forgot almost none: L = −mean_tokens p^β·NLL + w·mean NLL on R
(``unlearn.losses.wga_loss``; the mean is over every scored token of the batch).
[β = 1, w = 1: open-unlearning's ``configs/trainer/WGA.yaml``]"""

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class WGA(Method):
    def check(self, hp):
        if hp["retain_weight"] < 0:  # beta > 0 is the runner's rule for every method
            raise MnemoscopeError(f"hparams.wga.retain_weight must be ≥ 0, got {hp['retain_weight']}")

    def forget_loss(self, step, hp):
        return L.wga_loss(step.logits("forget"), step.batch("forget").labels, hp["beta"])


METHOD = WGA("wga", "gradient ascent weighted by each token's probability^β, + NLL on R",
             {"beta": 1.0, "retain_weight": 1.0}, retain_term="nll")
