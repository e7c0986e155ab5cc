"""IdkDPO (DPO, Rafailov et al. 2023, with TOFU's "I don't know" answers as the preferred responses:
the DPO baseline of Zhang et al. 2024, *NPO*, and open-unlearning's ``DPO`` trainer with its
``QAwithIdkDataset``): each forget example is paired with a refusal answer
("I don't know.") to the same prompt, the refusal is the preferred and the forget answer the
rejected response, L = −(2/β)·mean log σ(β·((log π_θ − log π_ref)(refusal) − (log π_θ − log π_ref)(answer)))
+ w·mean NLL on R (``unlearn.losses.dpo_loss``). The refusals are data (``Example.refusal``,
``unlearn.refusals``): without them the run is refused. A plain text (no prompt) is paired as the
first half of its words followed by the refusal, as FLAT pairs it.
[β = 0.1, w = 1: open-unlearning's ``configs/trainer/DPO.yaml``]"""

from __future__ import annotations

import math

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.examples import Example
from mnemoscope.unlearn.methods.base import Method


class IdkDPO(Method):
    def check(self, hp):
        if hp["retain_weight"] < 0:
            raise MnemoscopeError(f"hparams.idkdpo.retain_weight must be ≥ 0, got {hp['retain_weight']}")

    def forget_loss(self, step, hp):
        return L.dpo_loss(step.seq_logprob("pair"), step.ref_seq_logprob("pair"),
                          step.seq_logprob("forget"), step.ref_seq_logprob("forget"), hp["beta"])

    def paired(self, example, hp):
        if not example.refusal.strip():
            raise MnemoscopeError(f"method idkdpo needs a refusal answer for every forget example and example "
                                  f"{example.id or '?'!r} has none: pass --refusals FILE (one refusal a line, "
                                  "e.g. \"I don't know.\") or pick another method")
        answer = " " + example.refusal.strip()
        if example.prompt:
            return Example(example.prompt, answer, example.id)
        words = example.target.split()
        return Example(" ".join(words[: max(1, math.ceil(len(words) / 2))]), answer, example.id)

    def extras(self, step):
        return {"nll_forget": float(step.nll("forget").detach().mean()),
                "nll_refusal": float(step.nll("pair").detach().mean())}


METHOD = IdkDPO("idkdpo", "DPO preferring a refusal (\"I don't know\") over F's answer, + NLL on R",
                {"beta": 0.1, "retain_weight": 1.0}, needs_reference=True, retain_term="nll", needs_pairs=True,
                needs_refusals=True)
