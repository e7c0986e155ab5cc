"""The residual stream of any Hugging Face causal LM: where the blocks are, and what to read.

**Blocks.** The decoder blocks are found by one generic rule instead of a per-model table: the
``torch.nn.ModuleList`` whose length is ``config.num_hidden_layers`` and whose members are all of
one class (``model.layers`` for Llama/Mistral/Qwen2/Gemma/Phi/OLMo, ``gpt_neox.layers``,
``transformer.h`` for GPT-2, ``model.decoder.layers`` for OPT). When several lists qualify the
one holding the most parameters wins (decoder blocks hold nearly all of a model's weights). A
model where none qualifies is refused with a one-line error naming its class.

**Layers.** Layer l = 0 … L−1 is the output of block l (before any final norm); layer −1 is the
embeddings as the first block sees them (its input: token embeddings plus whatever the model adds
before the blocks, such as GPT-2's position embeddings or Gemma's √d scaling). Both are read with
hooks on the blocks themselves, never from ``output_hidden_states`` (whose last entry has the final
norm applied and whose index offset differs across models).

**Positions** (pad-safe: batches are right-padded and only an item's own positions are read):

- ``last``: the last prompt token (for a (context, target) pair: the last context token, the
  position whose output predicts the target's first token);
- ``mean``: the mean over the prompt's tokens (a pair's context), a BOS at position 0 excluded
  (its state is a large, input-independent attention sink that would dominate the mean);
- ``answer``: the mean over a (context, target) pair's target tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mnemoscope.errors import MnemoscopeError

EMBEDDINGS = -1  # the layer index of the embeddings
POSITIONS = ("last", "mean", "answer")


def num_layers(model) -> int | None:
    """``config.num_hidden_layers`` of the model's text config (None when it has none)."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    n = getattr(config, "num_hidden_layers", None)
    return int(n) if isinstance(n, int) else None


def hidden_size(model) -> int | None:
    """``config.hidden_size`` of the model's text config: the width of the residual stream."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    d = getattr(config, "hidden_size", None)
    return int(d) if isinstance(d, int) else None


def find_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder blocks of ``model`` (see the module docstring for the rule)."""
    n = num_layers(model)
    name = type(model).__name__
    if not n:
        raise MnemoscopeError(f"cannot find the decoder blocks of {name}: its config has no num_hidden_layers; "
                              "activations and steering need a Hugging Face decoder-only model")
    found = []
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n \
                and len({type(m) for m in module}) == 1 and any(True for _ in module.parameters()):
            found.append((sum(p.numel() for p in module.parameters()), path, module))
    if not found:
        raise MnemoscopeError(f"cannot find the decoder blocks of {name}: no ModuleList of "
                              f"num_hidden_layers={n} identical blocks; activations and steering do not support "
                              "this architecture")
    return max(found, key=lambda f: f[0])[2]


_ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "ffn", "feed_forward", "feedforward")
_OUTPUT_PROJECTIONS = ("fc2",)  # OPT: the MLP is fc1 → activation → fc2 inline in the block


@dataclass
class Sublayers:
    """The sublayers of one decoder block.

    ``attention`` / ``mlp``: the modules whose outputs are the attention and MLP results (the
    seed paper hooks these: ``self_attn`` and ``mlp`` on Llama-style models). ``attention_write`` /
    ``mlp_write``: the modules whose outputs are added to the residual stream — the same modules,
    except on sandwich-norm blocks (Gemma 2/3, OLMo 2: a ``post_feedforward_layernorm`` child), where
    the residual receives the post-norms' outputs."""

    attention: torch.nn.Module
    mlp: torch.nn.Module
    attention_write: torch.nn.Module
    mlp_write: torch.nn.Module


def _own_output(module: torch.nn.Module) -> torch.nn.Module:
    """``module``, or its last Linear when its forward adds the residual itself (MPT's and BLOOM's
    MLP, BLOOM's attention take a ``residual`` argument): that Linear's output is the write."""
    import inspect

    try:
        takes_residual = "residual" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        takes_residual = False
    if not takes_residual:
        return module
    linears = [m for m in module.children() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise MnemoscopeError(f"{type(module).__name__} adds the residual itself and has no output projection to hook")
    return linears[-1]


def find_sublayers(block: torch.nn.Module) -> Sublayers:
    """The attention and MLP sublayers of a decoder block, by one generic rule: the child named
    like an attention (``self_attn``, ``attn``, ``attention``, ``self_attention``, or a class name
    ending in ``Attention``) and like an MLP (``mlp``, ``ffn``, ``feed_forward``, a class name
    ending in ``MLP``; OPT's inline MLP: its output projection ``fc2``). A block where either is
    missing is refused with a one-line error naming its class."""
    children = dict(block.named_children())

    def pick(names, class_suffix=None):
        for name in names:
            if name in children:
                return children[name]
        if class_suffix is None:
            return None
        matches = [m for m in children.values() if type(m).__name__.lower().endswith(class_suffix)]
        return matches[0] if len(matches) == 1 else None

    attention = pick(_ATTENTION_NAMES, "attention")
    mlp = pick(_MLP_NAMES, "mlp") or pick(_OUTPUT_PROJECTIONS)
    if attention is None or mlp is None:
        raise MnemoscopeError(f"cannot find the attention and MLP sublayers of {type(block).__name__} (children: "
                              f"{', '.join(children)}); the projection-scaling intervention and directional ablation "
                              "need them")
    attention, mlp = _own_output(attention), _own_output(mlp)
    if "post_feedforward_layernorm" in children and "post_attention_layernorm" in children:
        return Sublayers(attention, mlp, children["post_attention_layernorm"], children["post_feedforward_layernorm"])
    return Sublayers(attention, mlp, attention, mlp)


def check_layers(layers, n_layers: int, what: str = "layer") -> list[int]:
    """``layers`` as a list of ints in −1 … n_layers−1 (None → all of them, embeddings first)."""
    if layers is None:
        return list(range(EMBEDDINGS, n_layers))
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise MnemoscopeError(f"{what} {layer!r} is not an integer: use −1 (embeddings) … {n_layers - 1}")
        if not EMBEDDINGS <= int(layer) < n_layers:
            raise MnemoscopeError(f"{what} {int(layer)} is out of range: this model has layers −1 (embeddings) … "
                                  f"{n_layers - 1}")
        out.append(int(layer))
    return out


def check_position(position: str) -> str:
    if position not in POSITIONS:
        raise MnemoscopeError(f"unknown position rule '{position}': use one of {', '.join(POSITIONS)}")
    return position


@dataclass
class Activations:
    """Residual-stream features of n items: ``values[i, j]`` is item i at ``layers[j]``."""

    layers: list[int]
    values: np.ndarray  # float32 [n_items, n_layers, hidden]
    position: str

    def at(self, layer: int) -> np.ndarray:
        """[n_items, hidden] at one layer."""
        if layer not in self.layers:
            raise MnemoscopeError(f"layer {layer} was not captured (captured: {self.layers})")
        return self.values[:, self.layers.index(layer)]


def position_weights(spans: list[tuple[int, int]], width: int, device) -> torch.Tensor:
    """[B, width] float32: weight 1/(end − start) on each row's positions start … end−1, 0 elsewhere
    (pads included), so ``Σ_t w[b, t] h[b, t]`` is the mean of row b's span."""
    w = torch.zeros(len(spans), width, dtype=torch.float32)
    for b, (start, end) in enumerate(spans):
        w[b, start:end] = 1.0 / (end - start)
    return w.to(device)


def span(ids_len: int, prompt_end: int, bos: bool, position: str) -> tuple[int, int]:
    """The positions [start, end) an item's feature averages over (see the module docstring)."""
    if position == "last":
        return prompt_end - 1, prompt_end
    if position == "mean":
        start = 1 if bos and prompt_end > 1 else 0
        return start, prompt_end
    return prompt_end, ids_len  # answer


def block_output(output) -> torch.Tensor:
    """A block's hidden states: the output itself or its first element (tuple outputs of older
    transformers versions)."""
    return output[0] if isinstance(output, tuple) else output


def replace_output(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def block_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a block receives: its first positional argument or ``hidden_states=``."""
    return args[0] if args else kwargs["hidden_states"]


def replace_input(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


class StopForward(Exception):
    """Raised by a capture hook once the deepest wanted layer is read: the rest of the forward pass
    is skipped."""
