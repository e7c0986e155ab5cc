"""UNDIAL (Dong et al. 2025, *UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning
in Large Language Models*): distil the model towards the frozen reference's next-token
distribution with the true token's logit lowered by β, q = softmax(l_ref − β·e_y):
L = mean over F's scored positions of −Σ_v q(v) log π_θ(v) (``unlearn.losses.undial_loss``).
Forget data only. [β = 10: open-unlearning's ``configs/trainer/UNDIAL.yaml``, whose retain
weight is 0]"""

from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class UNDIAL(Method):  # beta > 0 is the runner's rule for every method
    def forget_loss(self, step, hp):
        return L.undial_loss(step.logits("forget"), step.ref_logits("forget"), step.batch("forget").labels, hp["beta"])


METHOD = UNDIAL("undial", "self-distil towards the reference with the true token's logit lowered by β (forget data only)",
                {"beta": 10.0}, needs_reference=True)
