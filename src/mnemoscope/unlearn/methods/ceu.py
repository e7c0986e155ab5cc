"""CE-U (Yang 2025, *CE-U: Cross Entropy Unlearning*): cross-entropy against the model's own
detached next-token distribution with the true token removed, q = softmax(l with l_y = −∞), so
the gradient lowers the true token and leaves the others' proportions alone; the first
``ignore_first`` answer tokens of each example are not scored (the paper's footnote):
L = mean over F's scored positions of −Σ_v q(v) log π_θ(v) (``unlearn.losses.ceu_loss``).
Forget data only. [ignore_first = 1: open-unlearning's ``configs/trainer/CEU.yaml``]"""

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class CEU(Method):
    def check(self, hp):
        n = hp["ignore_first"]
        if n < 0 or n != int(n):
            raise MnemoscopeError(f"hparams.ceu.ignore_first must be a whole number ≥ 0 (answer tokens left "
                                  f"unscored), got {n}")

    def forget_loss(self, step, hp):
        return L.ceu_loss(step.logits("forget"), step.batch("forget").labels, int(hp["ignore_first"]))


METHOD = CEU("ceu", "cross-entropy towards the model's own distribution without the true token (forget data only)",
             {"ignore_first": 1.0})
