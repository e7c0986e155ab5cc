"""Gradients of a text's NLL, for white-box measurements (the ``gradients`` capability).

- ``nll_gradient_norms``: one forward + backward pass per text; the NLL (mean over scored tokens)
  is differentiated with respect to every parameter tensor and to the input embeddings. Returns
  the p-norm of each parameter tensor's gradient and of the whole input-embedding gradient
  (the gradient-norm membership attack reduces these). The embedding matrix's gradient is the
  full one ``loss.backward()`` gives (MIMIR): its input-side rows (the text's tokens) and, for a
  model whose output head is tied to it, the head's part too.
- ``one_hot_gradients``: the gradient of the target's mean NLL with respect to a one-hot encoding
  of the prompt tokens, ``∂NLL/∂e_i ∈ R^V`` per prompt position i — the linearisation greedy
  coordinate gradient (GCG) uses to propose token swaps.

Gradients are taken with ``torch.autograd.grad``, so no ``.grad`` field of the model is touched
(an optimizer's accumulated gradients are left as they were). The model is used as given (call
``eval()`` first: dropout would make the gradients random).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class GradNorms:
    """p-norms of one text's NLL gradient: one per parameter tensor, and of the input embeddings."""

    param_norms: np.ndarray  # float64, one per trainable parameter tensor (tied weights once)
    embed_norm: float
    nll: float


def _trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _mean_nll(logits: torch.Tensor, ids: torch.Tensor, score_from: int) -> torch.Tensor:
    """Mean NLL of ids[score_from:] (logits at j−1 score token j), in float32."""
    logp = torch.log_softmax(logits[0, score_from - 1 : -1].float(), dim=-1)
    return -logp.gather(-1, ids[0, score_from:, None]).mean()


def nll_gradient_norms(model, ids: list[int], score_from: int, p: float = float("inf")) -> GradNorms:
    """Gradient p-norms of NLL(ids[score_from:]) for one encoded text (see module doc)."""
    device = next(model.parameters()).device
    x = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.enable_grad():
        embeds = model.get_input_embeddings()(x)  # not detached: the table gets its input-side gradient
        loss = _mean_nll(model(inputs_embeds=embeds).logits, x, score_from)
        params = _trainable(model)
        grads = torch.autograd.grad(loss, params + [embeds], allow_unused=True)
    norms = [torch.linalg.vector_norm(g.float(), ord=p).item() for g in grads[:-1] if g is not None]
    return GradNorms(param_norms=np.asarray(norms, dtype=np.float64),
                     embed_norm=float(torch.linalg.vector_norm(grads[-1].float(), ord=p).item()),
                     nll=float(loss.item()))


def one_hot_gradients(model, prefix: list[int], prompt: list[int], target: list[int]) -> tuple[np.ndarray, float]:
    """(∂ mean NLL(target | prefix + prompt) / ∂ one-hot(prompt) as a [len(prompt), V] array, that NLL)."""
    device = next(model.parameters()).device
    table = model.get_input_embeddings().weight
    ids = torch.tensor([prefix + prompt + target], dtype=torch.long, device=device)
    with torch.enable_grad():
        one_hot = torch.zeros(len(prompt), table.shape[0], dtype=table.dtype, device=device)
        one_hot[torch.arange(len(prompt)), torch.tensor(prompt, device=device)] = 1
        one_hot.requires_grad_(True)
        embeds = model.get_input_embeddings()(ids).detach()
        start = len(prefix)
        embeds = torch.cat([embeds[:, :start], (one_hot @ table)[None], embeds[:, start + len(prompt):]], dim=1)
        loss = _mean_nll(model(inputs_embeds=embeds).logits, ids, start + len(prompt))
        (grad,) = torch.autograd.grad(loss, [one_hot])
    return grad.float().cpu().numpy(), float(loss.item())
