"""RMU (Li et al. 2024, WMDP): at one decoder layer, push the forget set's activations toward a
fixed random unit direction scaled by c, and keep the retain set's activations close to the frozen
reference's: L = mean ‖h_F − c·u‖² + α·mean ‖h_R − h_R^ref‖² over non-pad positions.
Zephyr-7B defaults (c = 6.5, α = 1200); tune both per model. ``layer`` defaults to the middle block."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnemoscope.engine.activations import find_blocks
from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn.methods.base import Method


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's list of transformer blocks, found by the engine's generic rule (the largest
    ModuleList of num_hidden_layers identical blocks: Llama's ``layers``, GPT-2's ``h``, MPT's
    ``blocks``, ...)."""
    try:
        return find_blocks(model)
    except MnemoscopeError as exc:
        raise MnemoscopeError(f"rmu: {exc}; use another method") from exc


class LayerTap:
    """Forward hook that keeps one layer's output hidden states ([B, T, H]) of the last call."""

    def __init__(self, module: torch.nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output):
        self.value = output[0] if isinstance(output, (tuple, list)) else output

    def close(self) -> None:
        self.handle.remove()


def make_control(model, seed: int) -> torch.Tensor:
    """RMU's fixed random unit direction u for the model's hidden size."""
    return L.make_control_vector(int(getattr(model.config, "hidden_size")), seed=seed)


@dataclass
class RMURun:
    """One run's RMU state: the taps on the trained and the reference model's layer, and u."""

    tap: LayerTap
    ref_tap: LayerTap
    control: torch.Tensor


class RMU(Method):
    def start(self, model, reference, hp, seed):
        layers, ref_layers = decoder_layers(model), decoder_layers(reference)
        layer = int(hp.get("layer", len(layers) // 2))
        if not 0 <= layer < len(layers):
            raise MnemoscopeError(f"rmu layer {layer} is out of range: the model has {len(layers)} layers "
                                  f"(0..{len(layers) - 1})")
        return RMURun(LayerTap(layers[layer]), LayerTap(ref_layers[layer]), make_control(model, seed))

    def stop(self, state):
        if state is not None:
            state.tap.close()
            state.ref_tap.close()

    def loss(self, step, hp):
        run = step.state
        forget, retain = step.batch("forget"), step.batch("retain")
        step.logits("forget")
        h_f = run.tap.value
        step.logits("retain")
        h_r = run.tap.value
        step.ref_logits("retain")
        h_r_ref = run.ref_tap.value.detach()
        loss = L.rmu_loss(h_f, h_r, h_r_ref, run.control, hp["steering_coef"], hp["alpha"],
                          forget_mask=forget.attention_mask.bool(), retain_mask=retain.attention_mask.bool())
        return loss, {}


METHOD = RMU("rmu", "steer one layer's forget activations to c·u, keep retain activations (Zephyr-7B defaults; "
                    "tune c and α per model)", {"steering_coef": 6.5, "alpha": 1200.0}, needs_reference=True,
             needs_retain=True, extra_hparams=("layer",), lab={"steering_coef": 20.0, "alpha": 10.0})
