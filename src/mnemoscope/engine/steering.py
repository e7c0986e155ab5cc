"""Interventions on the residual stream while the engine scores and generates, and direction files.

Three interventions (``r̂`` is the direction scaled to unit length):

- :class:`Add` (ours, "add") — ``h ← h + α·r̂`` on the output of one layer (−1 = the embeddings),
  at every position or only from a token position on;
- :class:`ScaleProjection` (the seed paper's, "scale") — ``h ← h + s·(h·r̂) r̂``, the existing
  component along r̂ scaled by 1 + s, with one direction applied at *every* layer: on each decoder
  block's input (block 0's input is the embeddings) and on each block's attention output and MLP
  output, at every position — what the reasoning–memorization paper's ``set_act_modify_hooks``
  does (block pre-hook, ``self_attn`` and ``mlp`` forward hooks);
- :class:`Ablate` — ``h ← h − (h·r̂) r̂`` (directional ablation, Arditi et al. 2024) on every write
  to the residual stream of the chosen layers (default: all): the embeddings (layer −1) and each
  block's attention and MLP writes (``activations.find_sublayers``: on sandwich-norm blocks the
  post-norms' outputs), so no sublayer anywhere reads a component along r̂.

They are plain PyTorch hooks on the decoder blocks (``engine.activations.find_blocks``) and their
sublayers, put on by ``HFEngine.steer(...)`` — a context manager that always takes them off again
— and active for every ``score``, ``generate`` and ``activations`` call inside it. The engine tells
the hooks the layout of each forward call (:class:`Rows`): which positions are real tokens (pads
are never touched) and each position's token index in its own item. In ``score`` and
``activations`` the engine sets the layout of its right-padded batch; in ``generate`` it is read
from the attention mask of every model call (left padding, then one new token per step with the KV
cache, or the whole sequence without it), so a position is steered identically with and without
the cache.

Token positions (:class:`Add` only): ``start=None`` steers every position; ``start=s ≥ 0`` from
token index s on (a BOS counts as index 0); ``start=−k`` from k tokens before the item's first
*predicted* token (in ``generate`` the first new token, in ``score`` the first scored token).
``start=−1`` therefore steers exactly the positions whose outputs are predictions: the last prompt
token and every new token in ``generate``, the last context token and the target in a scored pair.

α = 0 and s = 0 leave every logit bit-identical (the hook returns the hidden states untouched).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnemoscope.engine.activations import (
    EMBEDDINGS,
    block_input,
    block_output,
    check_layers,
    find_sublayers,
    hidden_size,
    num_layers,
    replace_input,
    replace_output,
)
from mnemoscope.errors import MnemoscopeError

DIRECTIONS_FORMAT = "mnemoscope-directions/1"
_STEERED: weakref.WeakSet = weakref.WeakSet()  # models with steering hooks on: never two sets at once


@dataclass(frozen=True)
class Add:
    """``h ← h + alpha · direction/‖direction‖`` at ``layer`` (α in hidden-state units)."""

    layer: int
    direction: object  # array-like [hidden]
    alpha: float
    start: int | None = None


@dataclass(frozen=True)
class ScaleProjection:
    """The seed paper's intervention: ``h ← h + scale · (h·r̂) r̂`` on every block's input, attention
    output and MLP output (every layer, every real position)."""

    direction: object  # array-like [hidden]
    scale: float


@dataclass(frozen=True)
class Ablate:
    """``h ← h − (h·r̂) r̂`` on every residual-stream write of ``layers`` (None: all of them): −1 is
    the embeddings, l ≥ 0 block l's attention and MLP writes."""

    direction: object  # array-like [hidden]
    layers: tuple[int, ...] | None = None


INTERVENTIONS = {"add": Add, "scale": ScaleProjection}  # the named steering interventions


@dataclass
class Rows:
    """The layout of one forward call: ``real`` [B, T] non-pad positions, ``index`` [B, T] each
    position's token index within its item, ``first`` [B] the index of each item's first
    predicted token."""

    real: torch.Tensor
    index: torch.Tensor
    first: torch.Tensor


def unit(direction, size: int, what: str = "direction") -> torch.Tensor:
    """``direction`` as a float32 unit vector of length ``size``; a wrong length or a zero vector is
    a one-line error."""
    r = torch.as_tensor(np.asarray(direction, dtype=np.float32)).flatten()
    if r.numel() != size:
        raise MnemoscopeError(f"{what} has {r.numel()} values but the model's hidden size is {size}: "
                              "use a direction computed on this model")
    norm = torch.linalg.vector_norm(r)
    if not torch.isfinite(norm) or norm == 0:
        raise MnemoscopeError(f"{what} is zero or not finite: it has no direction")
    return r / norm


class Steering:
    """The hooks of one ``HFEngine.steer`` context (see the module docstring).

    ``ops`` maps a hook site ``(where, layer)`` to its operations; ``where`` is ``input`` (a block's
    input; block 0's is the embeddings), ``output`` (a block's output), ``attention`` / ``mlp``
    (the sublayers' outputs) or ``attention_write`` / ``mlp_write`` (what they add to the
    residual stream)."""

    def __init__(self, model, blocks, interventions, device):
        n, d = len(blocks), hidden_size(model)
        self.blocks = blocks
        self.ops: dict[tuple[str, int], list[tuple]] = {}
        for iv in interventions:
            if isinstance(iv, Add):
                (layer,) = check_layers([iv.layer], n, "steering layer")
                if iv.start is not None and (isinstance(iv.start, bool) or not isinstance(iv.start, (int, np.integer))):
                    raise MnemoscopeError(f"steering start must be an integer token position or None, got {iv.start!r}")
                site = ("input", 0) if layer == EMBEDDINGS else ("output", layer)
                self._add(site, ("add", unit(iv.direction, d).to(device), float(iv.alpha), iv.start))
            elif isinstance(iv, ScaleProjection):
                scale = _finite(iv.scale, "projection scale")
                r = unit(iv.direction, d).to(device)
                for layer in range(n):
                    for where in ("input", "attention", "mlp"):
                        self._add((where, layer), ("scale", r, scale))
            elif isinstance(iv, Ablate):
                layers = check_layers(None if iv.layers is None else list(iv.layers), n, "ablation layer")
                r = unit(iv.direction, d).to(device)
                for layer in layers:
                    sites = [("input", 0)] if layer == EMBEDDINGS \
                        else [("attention_write", layer), ("mlp_write", layer)]
                    for site in sites:
                        self._add(site, ("ablate", r))
            else:
                raise TypeError(f"not an intervention: {iv!r} (use steering.Add, steering.ScaleProjection or "
                                "steering.Ablate)")
        self.rows: Rows | None = None
        self.prompt_lens: torch.Tensor | None = None  # set while the engine generates
        self._handles: list = []
        self._model = None  # the model this state has hooks on

    def _add(self, site: tuple[str, int], op: tuple) -> None:
        self.ops.setdefault(site, []).append(op)

    # ------------------------------------------------------------------ hooks on / off
    def attach(self, model) -> None:
        if model in _STEERED:
            raise MnemoscopeError("this model is already steered by another engine's steer() context: leave it first")
        sublayers = {}
        for where, layer in self.ops:  # find every sublayer before any hook goes on (an error leaves none)
            if where not in ("input", "output") and layer not in sublayers:
                sublayers[layer] = find_sublayers(self.blocks[layer])
        _STEERED.add(model)
        self._model = model
        for site in self.ops:
            where, layer = site
            if where == "input":
                self._handles.append(self.blocks[layer].register_forward_pre_hook(
                    lambda module, args, kwargs, site=site: replace_input(
                        args, kwargs, self.apply(site, block_input(args, kwargs))), with_kwargs=True))
                continue
            module = self.blocks[layer] if where == "output" else getattr(sublayers[layer], where)
            self._handles.append(module.register_forward_hook(
                lambda module, args, output, site=site: replace_output(output, self.apply(site, block_output(output)))))
        if self.ops:
            self._handles.append(model.register_forward_pre_hook(self._on_model_call, with_kwargs=True))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._model is not None:
            _STEERED.discard(self._model)
            self._model = None

    def _on_model_call(self, module, args, kwargs):
        """While generating: read this call's layout from its attention mask (left padding; the mask
        covers the cached past and the new positions)."""
        if self.prompt_lens is None:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        n_new = ids.shape[1]
        mask = kwargs.get("attention_mask")
        if mask is None or mask.dim() != 2:  # transformers drops an all-ones mask: no pads, count the past
            mask = torch.ones(ids.shape[0], _past_length(kwargs) + n_new, dtype=torch.long, device=ids.device)
        index = mask.long().cumsum(1) - 1
        self.rows = Rows(real=mask[:, -n_new:].bool(), index=index[:, -n_new:], first=self.prompt_lens)

    # ------------------------------------------------------------------ the interventions
    def _layout(self, h: torch.Tensor) -> Rows:
        rows = self.rows
        if rows is None:  # a direct model call inside the context: one unpadded sequence per row
            b, t = h.shape[:2]
            index = torch.arange(t, device=h.device).expand(b, t)
            return Rows(torch.ones(b, t, dtype=torch.bool, device=h.device), index,
                        torch.full((b,), t, device=h.device))
        if tuple(rows.real.shape) != tuple(h.shape[:2]):
            raise RuntimeError(f"steering: hidden states of shape {tuple(h.shape)} do not match the batch layout "
                               f"{tuple(rows.real.shape)}")
        return rows

    def apply(self, site, h: torch.Tensor) -> torch.Tensor:
        """``h`` after the operations at ``site`` (a ``(where, layer)`` pair, or a layer: the block's
        output, −1 the embeddings), pads as they were."""
        if not isinstance(site, tuple):
            site = ("input", 0) if site == EMBEDDINGS else ("output", int(site))
        ops = [op for op in self.ops.get(site, ()) if op[0] == "ablate" or op[2] != 0.0]  # α = 0, s = 0: no-ops
        if not ops:
            return h
        if h.dim() == 2:  # a sublayer on flattened tokens [B·T, d] (OPT's fc2): steer it as [B, T, d]
            shape = (1, h.shape[0]) if self.rows is None else tuple(self.rows.real.shape)
            return self._apply_ops(ops, h.reshape(*shape, h.shape[-1])).reshape(h.shape)
        return self._apply_ops(ops, h)

    def _apply_ops(self, ops: list[tuple], h: torch.Tensor) -> torch.Tensor:
        rows = self._layout(h)
        rows_real = rows.real.to(h.device)
        for op in ops:
            if op[0] == "add":
                _, r, alpha, start = op
                where = rows_real
                if start is not None:
                    first = start if start >= 0 else rows.first.to(h.device)[:, None] + start
                    where = where & (rows.index.to(h.device) >= first)
                h = torch.where(where[..., None], h + (alpha * r).to(h.dtype), h)
                continue
            r = op[1]
            factor = -1.0 if op[0] == "ablate" else op[2]  # ablation: h − (h·r̂) r̂; scale: h + s (h·r̂) r̂
            hf = h.float()
            moved = (hf + factor * (hf @ r)[..., None] * r).to(h.dtype)
            h = torch.where(rows_real[..., None], moved, h)
        return h


def _finite(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise MnemoscopeError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _past_length(kwargs: dict) -> int:
    """Tokens already in the KV cache of a model call (0 without a cache)."""
    position = kwargs.get("cache_position")
    if position is not None and position.numel():
        return int(position.flatten()[0])
    for key in ("past_key_values", "cache"):
        cache = kwargs.get(key)
        if cache is not None and hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length())
    return 0


# --------------------------------------------------------------------------- direction files


def model_identity(model, name: str | None = None) -> dict:
    """What a direction file records about its model: name (``name`` or the path it was loaded
    from), revision (the hub commit when known), model type, hidden size and number of layers."""
    config = getattr(model, "config", None)
    return {
        "model": name or getattr(config, "_name_or_path", "") or "",
        "revision": getattr(config, "_commit_hash", None) or "",
        "model_type": getattr(config, "model_type", "") or "",
        "hidden_size": hidden_size(model),
        "num_layers": num_layers(model),
    }


def save_directions(path: Path, directions: dict[int, np.ndarray], meta: dict) -> Path:
    """Write unit directions by layer to a safetensors file (tensor ``layer=L``, float32) with
    ``meta`` (model identity, position rule, method, labels ...) as JSON in its header."""
    from safetensors.numpy import save_file

    from mnemoscope.rundir import atomic_path

    path = Path(path)
    tensors = {f"layer={int(layer)}": np.ascontiguousarray(v, dtype=np.float32) for layer, v in directions.items()}
    header = {"format": DIRECTIONS_FORMAT, "meta": json.dumps({**meta, "layers": sorted(int(k) for k in directions)})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def load_directions(path: Path, identity: dict | None = None) -> tuple[dict[int, np.ndarray], dict]:
    """(directions by layer, metadata) from :func:`save_directions`; with ``identity``
    (:func:`model_identity` of the model to steer) a file from another model, model type, depth or
    hidden size is a one-line error."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MnemoscopeError(f"direction file {path} not found: pass a directions.safetensors written by mnemoscope")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            directions = {int(k.split("=", 1)[1]): f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as exc:  # safetensors raises several types for a corrupt or foreign file
        raise MnemoscopeError(f"{path} is not a readable safetensors file ({exc})") from exc
    if header.get("format") != DIRECTIONS_FORMAT:
        raise MnemoscopeError(f"{path} is not a mnemoscope direction file (no '{DIRECTIONS_FORMAT}' header)")
    meta = json.loads(header["meta"])
    if identity is not None:
        check_identity(meta, identity, path)
    return directions, meta


def check_identity(meta: dict, identity: dict, path) -> None:
    """Refuse directions computed on another model (name, type or depth) or hidden size."""
    if meta.get("hidden_size") != identity.get("hidden_size"):
        raise MnemoscopeError(f"{path}: directions of hidden size {meta.get('hidden_size')} cannot steer a model of "
                              f"hidden size {identity.get('hidden_size')}; compute the direction on this model")
    same_name = not meta.get("model") or not identity.get("model") or meta["model"] == identity["model"]
    same_shape = meta.get("model_type") == identity.get("model_type") and meta.get("num_layers") == identity.get("num_layers")
    if not (same_name and same_shape):
        raise MnemoscopeError(
            f"{path}: directions computed on '{meta.get('model')}' ({meta.get('model_type')}, {meta.get('num_layers')} "
            f"layers), not on '{identity.get('model')}' ({identity.get('model_type')}, {identity.get('num_layers')} "
            "layers); compute the direction on this model")
