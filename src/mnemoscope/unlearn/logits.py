"""Logit arithmetic of the unlearning methods that combine models at decoding time (pure torch).

Each function maps the members' next-token logits (tensors [..., V] at the same positions) to the
unlearned model's logits. ``engine.combined.CombinedLogits`` applies one of them at every scored
position and at every decoding step, so the composite scores and generates like one model.

- **WHP** (Eldan & Russinovich 2023, *Who's Harry Potter?*), in the logit form MUSE evaluates
  (Shi et al. 2024): a *reinforced* model is the target fine-tuned further on the forget set, and
  ``l_u = l_t − α·ReLU(l_r − l_t)`` (``relu=True``, the paper's and MUSE's code): tokens the
  reinforced model favours over the target are pushed down. ``relu=False`` drops the clip,
  ``l_t − α·(l_r − l_t)``, so tokens it disfavours are also pushed up.
- **ULD** (Ji et al. 2024, *Reversing the Forget-Retain Objectives: An Efficient LLM Unlearning
  Framework from Logit Difference*): an *assistant* trained to remember F and forget R, and
  ``l_u = l_b − α·l_a``, where the assistant's logits are set to 0 at tokens the base model finds
  implausible (log p_b(v) < the ``top`` filter's threshold; ``top = 0`` keeps every token). The
  threshold follows the authors' relative-top filter: ``min(log p_b,max + log top, the
  ⌊top·V⌋-th largest log p_b)``, so at least ⌊top·V⌋ tokens keep the assistant's term.
  That is the composite's scoring (the authors' ``ContrastLLM.forward``). When *decoding*, the
  authors' ``greedy_search`` also sets the implausible tokens themselves to −1e3, so only
  plausible tokens can be chosen (``uld_logits(..., implausible=ULD_IMPLAUSIBLE)``; the ULD
  method's composite does this at every decoding step). Without it an implausible token whose
  assistant logit was negative could win: base [10, 9, 2], assistant [9, 9, 0], α = 1, top 0.1
  scores [1, 0, 2] but decodes token 0.
"""

from __future__ import annotations

import math

import torch

from mnemoscope.errors import MnemoscopeError


def whp_logits(target: torch.Tensor, reinforced: torch.Tensor, alpha: float = 1.0, relu: bool = True) -> torch.Tensor:
    """``l_t − α·ReLU(l_r − l_t)`` with ``relu`` (WHP's and MUSE's form), else ``l_t − α·(l_r − l_t)``."""
    if not math.isfinite(alpha):
        raise MnemoscopeError(f"whp alpha: must be a finite number, got {alpha!r}")
    if target.shape != reinforced.shape:
        raise ValueError(f"whp_logits: target {tuple(target.shape)} and reinforced {tuple(reinforced.shape)} differ")
    diff = reinforced.float() - target.float()
    return target.float() - alpha * (torch.relu(diff) if relu else diff)


def relative_top_mask(base: torch.Tensor, top: float) -> torch.Tensor:
    """Bool mask [..., V]: True where the base model's log-probability is below the relative-top
    threshold (see the module docstring); all False when ``top`` = 0."""
    if not 0.0 <= top < 1.0:
        raise MnemoscopeError(f"uld top_filter: must be in [0, 1), got {top!r}")
    if top == 0.0:
        return torch.zeros(base.shape, dtype=torch.bool, device=base.device)
    logp = torch.log_softmax(base.float(), dim=-1)
    keep = max(1, int(top * base.shape[-1]))
    kth = torch.topk(logp, keep, dim=-1).values[..., -1:]
    threshold = torch.minimum(logp.max(dim=-1, keepdim=True).values + math.log(top), kth)
    return logp < threshold


ULD_IMPLAUSIBLE = -1e3  # the authors' greedy_search value for tokens outside the base's relative top


def uld_logits(base: torch.Tensor, assistant: torch.Tensor, alpha: float = 1.0, top: float = 0.1,
               implausible: float | None = None) -> torch.Tensor:
    """``l_b − α·l_a`` with the assistant's logits zeroed where ``relative_top_mask(l_b, top)``;
    with ``implausible`` (decoding: ``ULD_IMPLAUSIBLE``), those tokens' combined logits are set to it."""
    if not math.isfinite(alpha):
        raise MnemoscopeError(f"uld alpha: must be a finite number, got {alpha!r}")
    if base.shape != assistant.shape:
        raise ValueError(f"uld_logits: base {tuple(base.shape)} and assistant {tuple(assistant.shape)} differ")
    mask = relative_top_mask(base, top)
    out = base.float() - alpha * assistant.float().masked_fill(mask, 0.0)
    return out if implausible is None else out.masked_fill(mask, float(implausible))
