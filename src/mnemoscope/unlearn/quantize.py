"""Weight quantization of a model under test (Zhang et al., ICLR 2025: *Catastrophic Failure of LLM
Unlearning via Quantization*): does an unlearned model give its knowledge back once quantized?

Fake quantization: every ``torch.nn.Linear`` (and ``transformers``' ``Conv1D``) inside the decoder
blocks (found by the engine's rule, ``engine.activations.find_blocks``) has its weight replaced by
quantize-then-dequantize of itself; the embeddings, the output head, norms and biases keep full
precision. That is the set bitsandbytes quantizes when ``transformers`` loads a model in 4 or 8
bits (every Linear but the head), which is what the authors' code does (``load_in_4bit`` /
``load_in_8bit``). A composite model (WHP, ULD: ``engine.combined.CombinedLogits``) has every
member quantized.

Modes (``QuantMode``, written in configs as a string):

- ``int<b>-channel`` (b = 2 … 8): round-to-nearest (RTN), symmetric, one scale per output row;
- ``int<b>-group``: RTN with one scale per ``group_size`` consecutive input columns of each row
  (``group_size`` clipped to the layer's width; a last, shorter group when the width is not a
  multiple);
- ``bnb-nf4`` / ``bnb-fp4``: bitsandbytes' 4-bit block quantization (block size 64; ``fp4`` is
  what ``load_in_4bit=True`` uses by default, i.e. the authors' 4-bit setting), quantized and
  dequantized with ``bitsandbytes.functional`` on a CUDA device. Needs the ``quant`` extra and a
  GPU, and is refused otherwise, naming the RTN mode to use instead.

RTN (the paper's baseline): for a group of weights ``w`` with ``q = 2^(b−1) − 1``,
``Δ = max|w| / q``, ``Q(w) = Δ · clamp(round(w / Δ), −q − 1, q)`` (``round``: to nearest, ties to
even; a group of zeros stays zero). So ``|Q(w) − w| ≤ Δ / 2`` and ``Q(Q(w)) = Q(w)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from mnemoscope.errors import MnemoscopeError

DEFAULT_GROUP_SIZE = 128
BNB_BLOCK = 64
RTN_PATTERN = re.compile(r"int([2-8])-(channel|group)")
BNB_MODES = {"bnb-nf4": "nf4", "bnb-fp4": "fp4"}
MODE_HELP = "int<2-8>-channel, int<2-8>-group (round-to-nearest on any device), bnb-nf4, bnb-fp4 (GPU + bitsandbytes)"


@dataclass(frozen=True)
class QuantMode:
    """One way of quantizing the weights. ``group_size`` None: one scale per output channel."""

    name: str
    backend: str  # "rtn" | "bnb"
    bits: int
    group_size: int | None = None
    quant_type: str = ""  # bnb: "nf4" | "fp4"


def parse_mode(text: str, group_size: int = DEFAULT_GROUP_SIZE, where: str = "quantize.modes") -> QuantMode:
    """``"int4-group"`` → ``QuantMode("int4-group", "rtn", 4, group_size)``; an unknown mode is
    refused with the known ones."""
    name = str(text).strip().lower()
    m = RTN_PATTERN.fullmatch(name)
    if m:
        if m.group(2) == "group" and (isinstance(group_size, bool) or int(group_size) < 1):
            raise MnemoscopeError(f"{where}: {name} needs a group size ≥ 1, got {group_size}")
        return QuantMode(name, "rtn", int(m.group(1)), int(group_size) if m.group(2) == "group" else None)
    if name in BNB_MODES:
        return QuantMode(name, "bnb", 4, BNB_BLOCK, BNB_MODES[name])
    raise MnemoscopeError(f"{where}: unknown quantization mode {text!r}; use {MODE_HELP}")


def parse_modes(texts: Sequence[str], group_size: int = DEFAULT_GROUP_SIZE, where: str = "quantize.modes") -> list[QuantMode]:
    modes = [parse_mode(t, group_size, where) for t in texts]
    names = [m.name for m in modes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise MnemoscopeError(f"{where}: {dup[0]} is listed twice")
    return modes


def check_available(mode: QuantMode, device: torch.device | str) -> None:
    """Refuse, in one line naming the alternative, a mode this machine cannot run."""
    if mode.backend != "bnb":
        return
    instead = "use int4-group (round-to-nearest 4-bit in plain PyTorch, any device) instead"
    try:
        import bitsandbytes.functional  # noqa: F401
    except ImportError:
        raise MnemoscopeError(f"quantization mode {mode.name} needs bitsandbytes (pip install 'mnemoscope[quant]') "
                              f"and a CUDA GPU; {instead}") from None
    if torch.device(device).type != "cuda":
        raise MnemoscopeError(f"quantization mode {mode.name} needs a CUDA GPU (the model is on {device}); {instead}")


# --------------------------------------------------------------------------- round to nearest


def rtn_codes(weight: torch.Tensor, bits: int, group_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes and scales of symmetric round-to-nearest quantization of a 2-D ``weight``
    [out, in]: one scale per row (``group_size`` None) or per ``group_size`` consecutive columns
    of a row (clipped to the width; the last group shorter when ``in`` is not a multiple).
    Returns ``(codes [out, in], scales [out, n_groups])`` in float32; ``codes`` are integers in
    ``[−2^(b−1), 2^(b−1) − 1]`` and the scale of an all-zero group is 1."""
    if weight.dim() != 2:
        raise MnemoscopeError(f"rtn: expected a 2-D weight, got shape {tuple(weight.shape)}")
    if not 2 <= int(bits) <= 8:
        raise MnemoscopeError(f"rtn: bits must be 2 … 8, got {bits}")
    qmax = 2 ** (int(bits) - 1) - 1
    rows, cols = weight.shape
    g = cols if group_size is None else max(1, min(int(group_size), cols))
    n_groups = -(-cols // g)
    w = weight.detach().float()
    padded = torch.nn.functional.pad(w, (0, n_groups * g - cols)).reshape(rows, n_groups, g)
    absmax = padded.abs().amax(dim=2)
    scales = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))
    codes = torch.clamp(torch.round(padded / scales[..., None]), -qmax - 1, qmax)
    return codes.reshape(rows, n_groups * g)[:, :cols], scales


def rtn(weight: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Quantize-dequantize ``weight`` by :func:`rtn_codes` (same shape and dtype)."""
    codes, scales = rtn_codes(weight, bits, group_size)
    cols = weight.shape[1]
    g = cols if group_size is None else max(1, min(int(group_size), cols))
    expanded = scales.repeat_interleave(g, dim=1)[:, :cols]
    return (codes * expanded).to(weight.dtype)


def bnb_4bit(weight: torch.Tensor, quant_type: str) -> torch.Tensor:
    """bitsandbytes' 4-bit block quantization of ``weight`` (on its CUDA device), dequantized."""
    import bitsandbytes.functional as bnbf

    packed, state = bnbf.quantize_4bit(weight.detach().contiguous(), blocksize=BNB_BLOCK, quant_type=quant_type)
    return bnbf.dequantize_4bit(packed, state).reshape(weight.shape).to(weight.dtype)


def fake_quantize(weight: torch.Tensor, mode: QuantMode) -> torch.Tensor:
    if mode.backend == "bnb":
        return bnb_4bit(weight, mode.quant_type)
    return rtn(weight, mode.bits, mode.group_size)


# --------------------------------------------------------------------------- which weights


def _members(model: torch.nn.Module) -> list[torch.nn.Module]:
    members = getattr(model, "members", None)  # engine.combined.CombinedLogits
    return list(members.values()) if isinstance(members, torch.nn.ModuleDict) else [model]


def decoder_linears(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of every Linear / Conv1D inside the decoder blocks (of every member of a
    composite), each module once."""
    from mnemoscope.engine.activations import find_blocks

    out, seen = [], set()
    for i, member in enumerate(_members(model)):
        for name, module in find_blocks(member).named_modules():
            is_conv1d = type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None
            if (isinstance(module, torch.nn.Linear) or is_conv1d) and id(module) not in seen:
                seen.add(id(module))
                out.append((f"{i}.{name}", module))
    if not out:
        raise MnemoscopeError(f"quantization: no Linear layers inside the decoder blocks of {type(model).__name__}")
    return out


def weights_changed(model: torch.nn.Module, reference_state: dict, mode: QuantMode) -> float:
    """Share of the decoder linears' weights whose integer code under ``mode`` (RTN:
    :func:`rtn_codes`; bitsandbytes: the dequantized value) differs from the code of the same
    weight in ``reference_state`` (the original model's state dict): ``mean(c(w) ≠ c(w_original))``.
    Near 0: the quantized model is (up to a slightly different scale) the quantized original,
    whatever the unlearning changed — Zhang et al.'s explanation of the attack. NaN for a
    composite model (its members are not the original's modules) or a state dict without the
    same weights."""
    if isinstance(getattr(model, "members", None), torch.nn.ModuleDict):
        return float("nan")
    names = {id(p): n for n, p in model.named_parameters()}
    changed = total = 0
    with torch.no_grad():
        for _, module in decoder_linears(model):
            name = names.get(id(module.weight))
            ref = reference_state.get(name) if name else None
            if ref is None or ref.shape != module.weight.shape:
                return float("nan")
            w, r = (module.weight.t(), ref.t()) if not isinstance(module, torch.nn.Linear) else (module.weight, ref)
            r = r.to(w.device, w.dtype)
            if mode.backend == "rtn":
                diff = rtn_codes(w, mode.bits, mode.group_size)[0] != rtn_codes(r, mode.bits, mode.group_size)[0]
            else:
                diff = fake_quantize(w, mode) != fake_quantize(r, mode)
            changed += int(diff.sum())
            total += diff.numel()
    return changed / total


@contextmanager
def quantized(model: torch.nn.Module, mode: QuantMode) -> Iterator[torch.nn.Module]:
    """``model`` with its decoder linears fake-quantized by ``mode`` inside the block; the full
    precision weights are put back on exit (also on an error)."""
    check_available(mode, next(model.parameters()).device)
    saved = []
    try:
        with torch.no_grad():
            for _, module in decoder_linears(model):
                w = module.weight
                saved.append((w, w.detach().clone()))
                conv1d = not isinstance(module, torch.nn.Linear)  # Conv1D stores [in, out]
                q = fake_quantize(w.t() if conv1d else w, mode)
                w.copy_(q.t() if conv1d else q)
        yield model
    finally:
        with torch.no_grad():
            for w, original in saved:
                w.copy_(original)
