"""ULD (Ji et al. 2024, *Reversing the Forget-Retain Objectives: An Efficient LLM Unlearning Framework
from Logit Difference*): train an *assistant* with the reversed objectives — remember F (mean NLL on
F) and forget R (w·KL(uniform ‖ π_a) on R, ``unlearn.losses.uniform_kl``) — then decode from
``l_b − α·l_a`` with the assistant's logits zeroed where the base finds a token implausible
(``unlearn.logits.uld_logits``); when decoding, those implausible tokens are also set to −1e3, as
the authors' ``greedy_search`` does, so only tokens in the base's relative top can be generated.
The assistant is a copy of the model's first ⌈f·L⌉ decoder blocks (the authors take the first 8
of 32 layers) with the model's embeddings and head. The
result is a composite of the original and the assistant (``engine.combined.CombinedLogits``).
[α = 1, top_filter = 0.1, retain_weight = 5, assistant_fraction = 0.25]"""

from __future__ import annotations

import copy
import math
from functools import partial

import torch

from mnemoscope.engine.activations import find_blocks
from mnemoscope.engine.combined import CombinedLogits
from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.logits import ULD_IMPLAUSIBLE, uld_logits
from mnemoscope.unlearn.methods.base import Method


def first_blocks(model, n: int):
    """A copy of ``model`` keeping only its first ``n`` decoder blocks (embeddings, final norm and
    head kept): a smaller model over the same vocabulary."""
    small = copy.deepcopy(model)
    blocks = find_blocks(small)
    if not 1 <= n <= len(blocks):
        raise MnemoscopeError(f"uld: the assistant needs 1..{len(blocks)} blocks, got {n}")
    parents = [(module, attr) for module in small.modules() for attr, child in module.named_children() if child is blocks]
    for module, attr in parents:
        setattr(module, attr, torch.nn.ModuleList(list(blocks)[:n]))
    config = small.config.get_text_config() if hasattr(small.config, "get_text_config") else small.config
    config.num_hidden_layers = n
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:n]
    return small


def _combine(logits, alpha: float, top: float, implausible: float | None = None):
    return uld_logits(logits["base"], logits["assistant"], alpha, top, implausible)


class ULD(Method):
    def check(self, hp):
        if not 0.0 < hp["assistant_fraction"] <= 1.0:
            raise MnemoscopeError(f"hparams.uld.assistant_fraction must be in (0, 1], got {hp['assistant_fraction']}")
        if not 0.0 <= hp["top_filter"] < 1.0:
            raise MnemoscopeError(f"hparams.uld.top_filter must be in [0, 1), got {hp['top_filter']}")
        if not math.isfinite(hp["alpha"]) or hp["retain_weight"] < 0:
            raise MnemoscopeError("hparams.uld: alpha must be finite and retain_weight ≥ 0")

    def forget_loss(self, step, hp):
        return step.nll("forget").mean()  # the assistant remembers F

    def loss(self, step, hp):
        forget = self.forget_loss(step, hp)
        retain = L.uniform_kl(step.logits("retain"), step.mask("retain"))
        return forget + hp["retain_weight"] * retain, {"nll_forget": float(forget.detach()),
                                                       "uniform_kl_retain": float(retain.detach())}

    def trainee(self, model, hp):
        n = len(find_blocks(model))
        return first_blocks(model, max(1, min(n, math.ceil(hp["assistant_fraction"] * n))))

    def result_model(self, model, original_state, trained, hp):
        alpha, top = float(hp["alpha"]), float(hp["top_filter"])
        return CombinedLogits({"base": model, "assistant": trained}, partial(_combine, alpha=alpha, top=top),
                              base="base", name="uld",
                              combine_generate=partial(_combine, alpha=alpha, top=top, implausible=ULD_IMPLAUSIBLE))


METHOD = ULD("uld", "assistant learns F and unlearns R; decode from l_b − α·l_a (logit difference)",
             {"alpha": 1.0, "top_filter": 0.1, "retain_weight": 5.0, "assistant_fraction": 0.25},
             needs_retain=True, combines=True)
