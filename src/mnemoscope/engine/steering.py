"""Interventions on the residual stream while the engine scores and generates, and direction files.

Two interventions (``r̂`` is the direction scaled to unit length):

- :class:`Add` — ``h ← h + α·r̂`` on the output of one layer (−1 = the embeddings), at every
  position or only from a token position on;
- :class:`Ablate` — ``h ← h − (h·r̂) r̂`` (directional ablation) on the output of one, several or
  every layer (embeddings included), so no later layer sees a component along r̂ that the
  ablated layers wrote.

They are plain PyTorch hooks on the decoder blocks (``engine.activations.find_blocks``), put on
by ``HFEngine.steer(...)`` — a context manager that always takes them off again — and active for
every ``score``, ``generate`` and ``activations`` call inside it. The engine tells the hooks the
layout of each forward call (:class:`Rows`): which positions are real tokens (pads are never
touched) and each position's token index in its own item. In ``score`` and ``activations`` the
engine sets the layout of its right-padded batch; in ``generate`` it is read from the attention
mask of every model call (left padding, then one new token per step with the KV cache, or the
whole sequence without it), so a position is steered identically with and without the cache.

Token positions: ``start=None`` steers every position; ``start=s ≥ 0`` from token index s on (a
BOS counts as index 0); ``start=−k`` from k tokens before the item's first *predicted* token (in
``generate`` the first new token, in ``score`` the first scored token). ``start=−1`` therefore
steers exactly the positions whose outputs are predictions: the last prompt token and every new
token in ``generate``, the last context token and the target in a scored pair.

α = 0 leaves every logit bit-identical (the hook returns the hidden states untouched).
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
class Ablate:
    """``h ← h − (h·r̂) r̂`` at each of ``layers`` (None: the embeddings and every block)."""

    direction: object  # array-like [hidden]
    layers: tuple[int, ...] | None = None


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
    """The hooks of one ``HFEngine.steer`` context (see the module docstring)."""

    def __init__(self, model, blocks, interventions, device):
        n, d = len(blocks), hidden_size(model)
        self.blocks = blocks
        self.ops: dict[int, list[tuple]] = {}
        for iv in interventions:
            if isinstance(iv, Add):
                (layer,) = check_layers([iv.layer], n, "steering layer")
                if iv.start is not None and (isinstance(iv.start, bool) or not isinstance(iv.start, (int, np.integer))):
                    raise MnemoscopeError(f"steering start must be an integer token position or None, got {iv.start!r}")
                r = unit(iv.direction, d).to(device)
                self.ops.setdefault(layer, []).append(("add", r, float(iv.alpha), iv.start))
            elif isinstance(iv, Ablate):
                layers = check_layers(None if iv.layers is None else list(iv.layers), n, "ablation layer")
                r = unit(iv.direction, d).to(device)
                for layer in layers:
                    self.ops.setdefault(layer, []).append(("ablate", r))
            else:
                raise TypeError(f"not an intervention: {iv!r} (use steering.Add or steering.Ablate)")
        self.rows: Rows | None = None
        self.prompt_lens: torch.Tensor | None = None  # set while the engine generates
        self._handles: list = []
        self._model = None  # the model this state has hooks on

    # ------------------------------------------------------------------ hooks on / off
    def attach(self, model) -> None:
        if model in _STEERED:
            raise MnemoscopeError("this model is already steered by another engine's steer() context: leave it first")
        _STEERED.add(model)
        self._model = model
        for layer in self.ops:
            if layer == EMBEDDINGS:
                self._handles.append(self.blocks[0].register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            else:
                self._handles.append(self.blocks[layer].register_forward_hook(
                    lambda module, args, output, layer=layer: replace_output(output, self.apply(layer, block_output(output)))))
        if self.ops:
            self._handles.append(model.register_forward_pre_hook(self._on_model_call, with_kwargs=True))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._model is not None:
            _STEERED.discard(self._model)
            self._model = None

    def _pre_hook(self, module, args, kwargs):
        return replace_input(args, kwargs, self.apply(EMBEDDINGS, block_input(args, kwargs)))

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

    def apply(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        ops = self.ops.get(layer, ())
        if not ops:
            return h
        rows = self._layout(h)
        rows_real = rows.real.to(h.device)
        for op in ops:
            if op[0] == "add":
                _, r, alpha, start = op
                if alpha == 0.0:
                    continue
                where = rows_real
                if start is not None:
                    first = start if start >= 0 else rows.first.to(h.device)[:, None] + start
                    where = where & (rows.index.to(h.device) >= first)
                h = torch.where(where[..., None], h + (alpha * r).to(h.dtype), h)
            else:
                r = op[1]
                hf = h.float()
                removed = (hf - (hf @ r)[..., None] * r).to(h.dtype)
                h = torch.where(rows_real[..., None], removed, h)
        return h


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
