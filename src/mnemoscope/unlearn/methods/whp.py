"""WHP (Eldan & Russinovich 2023, *Who's Harry Potter?*) in the logit form MUSE evaluates: fine-tune a
copy of the model further on F (the *reinforced* model, trained by the shared loop with the mean
NLL on F), then decode from ``l_t − α·ReLU(l_r − l_t)`` (``unlearn.logits.whp_logits``), as the
WHP paper and MUSE's ``baselines/whos_harry_potter.py`` do; ``relu=0`` drops the clip
(``l_t − α·(l_r − l_t)``: tokens the reinforced model disfavours are also pushed up). The result is
a composite of the original and the reinforced model (``engine.combined.CombinedLogits``); the
original's weights are unchanged. [α = 1, relu = 1]"""

from __future__ import annotations

import copy
import math
from functools import partial

from mnemoscope.engine.combined import CombinedLogits
from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.logits import whp_logits
from mnemoscope.unlearn.methods.base import Method


def _combine(logits, alpha: float, relu: bool):
    return whp_logits(logits["target"], logits["reinforced"], alpha, relu)


class WHP(Method):
    def check(self, hp):
        if not math.isfinite(hp["alpha"]) or hp["relu"] not in (0.0, 1.0):
            raise MnemoscopeError(f"hparams.whp: alpha must be finite and relu 0 or 1, got {hp['alpha']}, {hp['relu']}")

    def forget_loss(self, step, hp):
        return step.nll("forget").mean()  # the reinforced model: plain fine-tuning on F

    def trainee(self, model, hp):
        return copy.deepcopy(model)

    def result_model(self, model, original_state, trained, hp):
        return CombinedLogits({"target": model, "reinforced": trained},
                              partial(_combine, alpha=float(hp["alpha"]), relu=bool(hp["relu"])), base="target",
                              name="whp")


METHOD = WHP("whp", "fine-tune a reinforced copy on F; decode from l_t − α·ReLU(l_r − l_t) (MUSE's WHP)",
             {"alpha": 1.0, "relu": 1.0}, combines=True)
