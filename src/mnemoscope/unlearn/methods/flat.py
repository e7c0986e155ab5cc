"""FLAT (Wang et al. 2024, *LLM Unlearning via Loss Adjustment with Only Forget Data*): no retain
set; each forget example is paired with a *template* answer (a refusal, "I don't know.") to the
same prompt, and the loss is the negated variational f-divergence between the template and the
forget answers' mean token probabilities (``unlearn.losses.flat_loss``). A plain text (no
prompt) is paired as the first half of its words followed by the template.
[divergence = kl (kl | js | tv | pearson), template = "I don't know."]"""

from __future__ import annotations

import math

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class FLAT(Method):
    def check(self, hp):
        if hp["divergence"] not in L.FLAT_DIVERGENCES:
            raise MnemoscopeError(f"hparams.flat.divergence {hp['divergence']!r} is unknown: use one of "
                                  f"{', '.join(L.FLAT_DIVERGENCES)}")
        if not str(hp["template"]).strip():
            raise MnemoscopeError("hparams.flat.template is empty: FLAT needs a template answer (e.g. \"I don't know.\")")

    def forget_loss(self, step, hp):
        return L.flat_loss(step.token_prob("pair"), step.token_prob("forget"), hp["divergence"])

    def paired(self, example, hp):
        from mnemoscope.unlearn.runner import Example

        answer = " " + str(hp["template"]).strip()
        if example.prompt:
            return Example(example.prompt, answer, example.id)
        words = example.target.split()
        return Example(" ".join(words[: max(1, math.ceil(len(words) / 2))]), answer, example.id)

    def extras(self, step):
        return {"nll_forget": float(step.nll("forget").detach().mean()),
                "p_template": float(step.token_prob("pair").detach().mean())}


METHOD = FLAT("flat", "raise a template answer's probability and lower F's by an f-divergence (forget data only)",
              {"divergence": "kl", "template": "I don't know."}, needs_pairs=True)
