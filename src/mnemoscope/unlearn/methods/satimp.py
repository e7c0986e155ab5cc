"""SatImp (Yang et al. 2025, *Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning*):
gradient ascent with each forget token's NLL weighted by p^β₁ (saturation) × (1 − p)^β₂
(importance), p its probability (detached), scaled by a forget weight γ:
L = −γ·mean_tokens p^β₁(1 − p)^β₂·NLL + w·mean NLL on R (``unlearn.losses.satimp_loss``).
[β₁ = 5, β₂ = 1, γ = 0.1, w = 1: open-unlearning's ``configs/trainer/SatImp.yaml`` (its trainer
class defaults, γ = 1 and w = 0.1, are overridden by that config)]"""

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class SatImp(Method):
    def check(self, hp):
        bad = {k: hp[k] for k in ("beta1", "beta2", "forget_weight", "retain_weight") if hp[k] < 0}
        if bad:
            raise MnemoscopeError(f"hparams.satimp: {', '.join(bad)} must be ≥ 0, got {bad}")

    def forget_loss(self, step, hp):
        return hp["forget_weight"] * L.satimp_loss(step.logits("forget"), step.batch("forget").labels,
                                                   hp["beta1"], hp["beta2"])


METHOD = SatImp("satimp", "gradient ascent weighted by p^β₁(1−p)^β₂ per token, + NLL on R",
                {"beta1": 5.0, "beta2": 1.0, "forget_weight": 0.1, "retain_weight": 1.0}, retain_term="nll",
                lab={"forget_weight": 1.0})
