"""FLAT (Wang et al. 2024, *LLM Unlearning via Loss Adjustment with Only Forget Data*): no retain
set; each forget example is paired with a *template* answer (a refusal, "I don't know.") to the
same prompt, and the loss is the negated variational f-divergence between the template and the
forget answers' mean token probabilities (``unlearn.losses.flat_loss``). A plain text (no
prompt) is paired as the first half of its words followed by the template.

Two choices follow the paper and differ from the authors' code (docs/unlearning.md):
``average = answer`` averages token probabilities over each answer's tokens (the paper's
definition); ``average = padded`` over every position of the padded batch, prompt and pad
counting as 0 (their ``ProbLossStable`` + ``.mean()``). ``divergence = kl`` is our default; their
shipped config (``config/forget.yaml``) uses Total Variation: ``divergence = tv``.
[divergence = kl (kl | js | tv | pearson), average = answer (answer | padded),
template = "I don't know."]"""

from __future__ import annotations

import dataclasses
import math

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


class FLAT(Method):
    def check(self, hp):
        if hp["divergence"] not in L.FLAT_DIVERGENCES:
            raise MnemoscopeError(f"hparams.flat.divergence {hp['divergence']!r} is unknown: use one of "
                                  f"{', '.join(L.FLAT_DIVERGENCES)}")
        if hp["average"] not in L.FLAT_AVERAGES:
            raise MnemoscopeError(f"hparams.flat.average {hp['average']!r} is unknown: use one of "
                                  f"{', '.join(L.FLAT_AVERAGES)}")
        if not str(hp["template"]).strip():
            raise MnemoscopeError("hparams.flat.template is empty: FLAT needs a template answer (e.g. \"I don't know.\")")

    def forget_loss(self, step, hp):
        if hp["average"] == "padded":
            prob = lambda w: L.padded_token_prob(step.logits(w), step.batch(w).labels)  # noqa: E731
        else:
            prob = step.token_prob
        return L.flat_loss(prob("pair"), prob("forget"), hp["divergence"])

    def paired(self, example, hp):
        answer = " " + str(hp["template"]).strip()
        if example.prompt:
            return dataclasses.replace(example, target=answer)
        words = example.target.split()
        return dataclasses.replace(example, prompt=" ".join(words[: max(1, math.ceil(len(words) / 2))]), target=answer)

    def extras(self, step):
        return {"nll_forget": float(step.nll("forget").detach().mean()),
                "p_template": float(step.token_prob("pair").detach().mean())}


METHOD = FLAT("flat", "raise a template answer's probability and lower F's by an f-divergence (forget data only)",
              {"divergence": "kl", "average": "answer", "template": "I don't know."}, needs_pairs=True)
