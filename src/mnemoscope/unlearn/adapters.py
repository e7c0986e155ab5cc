"""LoRA adapters (peft) and gradient checkpointing for the unlearning runner."""

from __future__ import annotations

from collections.abc import Sequence

from mnemoscope.errors import MnemoscopeError


def require_peft():
    """Import peft or explain how to get it."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise MnemoscopeError(
            "unlearn.lora needs the 'peft' package, which is not installed: run `pip install peft` "
            "(or set unlearn.lora=false for full fine-tuning)"
        ) from None
    return peft


def apply_lora(model, rank: int, alpha: float, target_modules: Sequence[str] | None = None):
    """Wrap ``model`` with LoRA adapters (peft); only adapter weights train."""
    peft = require_peft()
    config = peft.LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, task_type="CAUSAL_LM",
                             target_modules=list(target_modules) if target_modules else None)
    return peft.get_peft_model(model, config)


def enable_checkpointing(model) -> None:
    """Gradient checkpointing on a transformers model: activations are recomputed in the backward
    pass instead of stored. Non-reentrant checkpointing, so frozen inputs (LoRA: only the adapters
    train, the embeddings are frozen) still carry gradients to the adapters inside each block."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise MnemoscopeError(f"unlearn.gradient_checkpointing: {type(model).__name__} does not support gradient "
                              "checkpointing; set unlearn.gradient_checkpointing=false")


def disable_checkpointing(model) -> None:
    if hasattr(model, "activation_checkpointing_disable"):
        if getattr(model, "is_activation_checkpointing", False):
            model.activation_checkpointing_disable()
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
