"""Task-vector negation (Ilharco et al. 2023): fine-tune a copy further on F to θ_F, then return
θ − α(θ_F − θ) [α = 5]. Its loss is plain fine-tuning (mean NLL on F); the negation is its result."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn.methods.base import Method


def negate_task_vector(
    base_state: Mapping[str, torch.Tensor],
    finetuned_state: Mapping[str, torch.Tensor],
    alpha: float = 5.0,
) -> dict[str, torch.Tensor]:
    """Return θ − α(θ_F − θ) for every floating tensor; non-float tensors are copied from ``base``.

    ``base_state`` is θ (the model before unlearning), ``finetuned_state`` is θ_F (θ fine-tuned
    further on the forget set). Arithmetic is done in float32 (float64 stays float64) and cast
    back to each base tensor's dtype; outputs live on the base tensor's device. Inputs are not
    modified. Both states must have the same keys, shapes and kinds (float / non-float).
    """
    if not math.isfinite(alpha):
        raise MnemoscopeError(f"alpha: must be a finite number, got {alpha!r}")
    base_keys, ft_keys = set(base_state), set(finetuned_state)
    if base_keys != ft_keys:
        missing = sorted(base_keys - ft_keys)[:3]
        extra = sorted(ft_keys - base_keys)[:3]
        raise MnemoscopeError(
            f"finetuned_state: keys differ from base_state (missing {missing}, unexpected {extra}); "
            "fine-tune the same architecture and save a full state dict"
        )
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for key, base in base_state.items():
            ft = finetuned_state[key]
            if not isinstance(base, torch.Tensor) or not isinstance(ft, torch.Tensor):
                raise MnemoscopeError(f"state dict entry {key!r}: expected tensors in both states")
            if base.shape != ft.shape:
                raise MnemoscopeError(
                    f"state dict entry {key!r}: shape {tuple(base.shape)} in base_state but "
                    f"{tuple(ft.shape)} in finetuned_state; both must come from the same model"
                )
            if base.is_floating_point() != ft.is_floating_point():
                raise MnemoscopeError(
                    f"state dict entry {key!r}: dtype {base.dtype} in base_state but {ft.dtype} in "
                    "finetuned_state; both must come from the same model"
                )
            if not base.is_floating_point():
                out[key] = base.detach().clone()
                continue
            work = torch.float64 if base.dtype == torch.float64 else torch.float32
            theta = base.detach().to(work)
            theta_f = ft.detach().to(device=base.device, dtype=work)
            out[key] = (theta - alpha * (theta_f - theta)).to(base.dtype)
    return out


class TaskVector(Method):
    def forget_loss(self, step, hp):
        return step.nll("forget").mean()  # θ_F: plain fine-tuning on F; the negation is the result

    def trainee(self, model, hp):
        return copy.deepcopy(model)  # θ_F is trained on a copy; θ stays the original

    def result_model(self, model, original_state, trained, hp):
        if hasattr(trained, "merge_and_unload"):  # LoRA: θ_F is the copy with its adapters merged
            trained = copy.deepcopy(trained).merge_and_unload()
        model.load_state_dict(negate_task_vector(original_state, trained.state_dict(), hp["alpha"]))
        return model


METHOD = TaskVector("task_vector", "fine-tune on F to θ_F, return θ − α(θ_F − θ)", {"alpha": 5.0},
                    lab={"alpha": 1.0})
