"""Weight quantization (unlearn.quantize) and knowledge restored (metrics.restoration): hand-computed
small matrices, per-channel / per-group scales, the int8 error bound, idempotence, which modules
change, and the refusals."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.restoration import knowledge_restored
from mnemoscope.unlearn import quantize as Q

W = torch.tensor([[1.0, -0.55, 0.25, 0.1],
                  [0.0, 0.0, 0.0, 0.0],
                  [2.2, -4.0, 1.0, 3.0]])


def test_int8_per_channel_by_hand():
    codes, scales = Q.rtn_codes(W, 8)
    assert scales.shape == (3, 1)
    assert torch.allclose(scales[:, 0], torch.tensor([1 / 127, 1.0, 4 / 127]))  # an all-zero row keeps scale 1
    # row 0: 127·w = 127, −69.85, 31.75, 12.7; row 2: 127·w/4 = 69.85, −127, 31.75, 95.25
    assert codes.tolist() == [[127, -70, 32, 13], [0, 0, 0, 0], [70, -127, 32, 95]]
    q = Q.rtn(W, 8)
    assert torch.allclose(q[0], torch.tensor([127, -70, 32, 13]) / 127.0)
    assert torch.equal(q[1], W[1]) and q.dtype == W.dtype


def test_int4_per_group_by_hand_and_the_group_clipped_to_the_width():
    codes, scales = Q.rtn_codes(W[:1], 4, group_size=2)
    # groups [1, −0.55] (Δ = 1/7: codes 7, −3.85 → −4) and [0.25, 0.1] (Δ = 0.25/7: codes 7, 2.8 → 3)
    assert torch.allclose(scales, torch.tensor([[1 / 7, 0.25 / 7]]))
    assert codes.tolist() == [[7, -4, 7, 3]]
    assert torch.allclose(Q.rtn(W[:1], 4, group_size=2), torch.tensor([[1.0, -4 / 7, 0.25, 3 * 0.25 / 7]]))
    assert torch.equal(Q.rtn(W, 4, group_size=128), Q.rtn(W, 4))  # a group wider than the layer: one per row
    odd = torch.tensor([[0.3, -0.9, 0.5, 0.2, -0.7]])  # width 5, groups of 2: (2, 2, 1)
    codes, scales = Q.rtn_codes(odd, 4, group_size=2)
    assert torch.allclose(scales, torch.tensor([[0.9 / 7, 0.5 / 7, 0.7 / 7]]))
    assert math.isclose(Q.rtn(odd, 4, group_size=2)[0, 4].item(), -0.7, rel_tol=1e-6)  # a lone weight is exact


def _reference(w: np.ndarray, bits: int, g: int | None) -> np.ndarray:
    """Element by element in float64, written out from the formula (not the module's code)."""
    qmax = 2 ** (bits - 1) - 1
    out = np.zeros_like(w)
    for r in range(w.shape[0]):
        width = w.shape[1] if g is None else min(g, w.shape[1])
        for start in range(0, w.shape[1], width):
            block = w[r, start:start + width]
            delta = np.abs(block).max() / qmax or 1.0
            out[r, start:start + width] = [delta * min(max(np.round(x / delta), -qmax - 1), qmax) for x in block]
    return out


@pytest.mark.parametrize("bits,group", [(8, None), (4, None), (4, 3), (3, 16), (2, 5)])
def test_rtn_matches_an_elementwise_reference(bits, group):
    w = torch.randn(6, 13, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    assert np.allclose(Q.rtn(w, bits, group).numpy(), _reference(w.numpy(), bits, group), atol=1e-12)


def test_int8_error_bound_and_idempotence():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    for group in (None, 16):
        _, scales = Q.rtn_codes(w, 8, group)
        q = Q.rtn(w, 8, group)
        step = scales.repeat_interleave(64 if group is None else group, dim=1)
        assert torch.all((q - w).abs() <= step / 2 + 1e-7)
        assert torch.all((q - w).abs() <= w.abs().amax() / 127 / 2 + 1e-7)
        assert torch.allclose(Q.rtn(q, 8, group), q, atol=1e-7)  # quantizing twice changes nothing
    assert len(torch.unique(Q.rtn(w, 4)[0])) <= 16  # int4 per channel: at most 16 levels in a row
    assert (Q.rtn(w, 4) - w).abs().mean() > (Q.rtn(w, 8) - w).abs().mean()  # fewer bits, larger error


def test_quantized_changes_only_decoder_linears_and_restores(model):
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    mode = Q.parse_mode("int4-channel")
    linears = {n for n, _ in model.named_modules() if isinstance(_, torch.nn.Linear) and n != "lm_head"}
    with Q.quantized(model, mode):
        during = model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], during[k])}
        for name in linears:
            w = dict(model.named_modules())[name].weight
            assert torch.allclose(w, Q.rtn(before[name + ".weight"], 4))
    assert changed == {n + ".weight" for n in linears} and linears
    assert not any("embed" in k or "lm_head" in k or "norm" in k for k in changed)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # put back
    with pytest.raises(RuntimeError):
        with Q.quantized(model, mode):
            raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # put back after an error


def test_conv1d_weights_are_quantized_per_output_channel():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=32)).eval()
    w = gpt2.transformer.h[0].mlp.c_fc.weight.detach().clone()  # Conv1D: [in, out]
    with Q.quantized(gpt2, Q.parse_mode("int4-channel")):
        assert torch.allclose(gpt2.transformer.h[0].mlp.c_fc.weight, Q.rtn(w.t(), 4).t())
        assert len(Q.decoder_linears(gpt2)) == 4  # c_attn, c_proj (attention), c_fc, c_proj (MLP)


def test_composite_models_have_every_member_quantized(model, tokenizer):
    import copy

    from mnemoscope.engine.combined import CombinedLogits

    other = copy.deepcopy(model)
    combo = CombinedLogits({"base": model, "other": other}, lambda d: d["base"] - d["other"], base="base")
    assert len(Q.decoder_linears(combo)) == 2 * len(Q.decoder_linears(model))


def test_modes_parse_and_bad_modes_are_refused():
    assert Q.parse_mode("int4-group", 64) == Q.QuantMode("int4-group", "rtn", 4, 64)
    assert Q.parse_mode("INT8-channel").group_size is None
    assert Q.parse_mode("bnb-fp4").quant_type == "fp4"
    for bad in ("int1-group", "int16-channel", "int4", "gptq-int4"):
        with pytest.raises(MnemoscopeError, match="int<2-8>-group"):
            Q.parse_mode(bad)
    with pytest.raises(MnemoscopeError, match="group size"):
        Q.parse_mode("int4-group", 0)
    with pytest.raises(MnemoscopeError, match="twice"):
        Q.parse_modes(["int4-group", "int4-group"])


def test_bitsandbytes_modes_are_refused_in_one_line_naming_the_alternative(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as on a machine without bitsandbytes
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", None)
    with pytest.raises(MnemoscopeError) as info:
        Q.check_available(Q.parse_mode("bnb-nf4"), "cuda")
    assert "bitsandbytes" in str(info.value) and "int4-group" in str(info.value) and "\n" not in str(info.value)
    fake = types.ModuleType("bitsandbytes")
    fake.functional = types.ModuleType("bitsandbytes.functional")
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", fake.functional)
    with pytest.raises(MnemoscopeError, match="needs a CUDA GPU.*int4-group"):
        with Q.quantized(model, Q.parse_mode("bnb-fp4")):  # the model is on the CPU
            pass
    Q.check_available(Q.parse_mode("int4-group"), "cpu")  # RTN runs anywhere


def test_bnb_path_calls_bitsandbytes_with_its_block_size(monkeypatch):
    calls = []
    functional = types.ModuleType("bitsandbytes.functional")

    def quantize_4bit(a, blocksize, quant_type):
        calls.append((blocksize, quant_type))
        return a.flatten() * 2, "state"

    functional.quantize_4bit = quantize_4bit
    functional.dequantize_4bit = lambda packed, state: packed / 4
    fake = types.ModuleType("bitsandbytes")
    fake.functional = functional
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", functional)
    out = Q.fake_quantize(W, Q.parse_mode("bnb-nf4"))
    assert calls == [(64, "nf4")] and torch.allclose(out, W / 2) and out.shape == W.shape


def test_knowledge_restored_by_hand():
    assert math.isclose(knowledge_restored(after=60.0, unlearned=20.0, original=80.0), 40 / 60)
    assert knowledge_restored(20.0, 20.0, 80.0) == 0.0
    assert knowledge_restored(80.0, 20.0, 80.0) == 1.0
    assert math.isclose(knowledge_restored(10.0, 20.0, 80.0), -1 / 6)  # the attack removed more
    assert math.isnan(knowledge_restored(50.0, 30.0, 30.0))  # nothing was removed: undefined
    assert math.isnan(knowledge_restored(float("nan"), 30.0, 60.0))


def test_weights_changed_counts_quantized_values_that_moved(model, tokenizer):
    import copy

    from mnemoscope.engine.combined import CombinedLogits

    mode = Q.parse_mode("int8-channel")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert Q.weights_changed(model, state, mode) == 0.0
    total = sum(m.weight.numel() for _, m in Q.decoder_linears(model))
    name, module = next((n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head")
    moved = copy.deepcopy(state)
    moved[name + ".weight"][0, 0] += 1.0  # one weight far off: it, and at most the rest of its row (the scale), move
    changed = Q.weights_changed(model, moved, mode) * total
    assert 1 <= round(changed) <= module.weight.shape[1]
    w = state[name + ".weight"]
    codes, scales = Q.rtn_codes(w, 8)
    nudged = copy.deepcopy(state)  # one weight moved onto the next code, the row's largest left alone
    row_max = int(w[0].abs().argmax())
    j = 1 if row_max == 0 else 0
    nudged[name + ".weight"][0, j] = (codes[0, j] + (1 if codes[0, j] < 0 else -1)) * scales[0, 0]
    assert round(Q.weights_changed(model, nudged, mode) * total) == 1  # exactly that code differs
    tiny = copy.deepcopy(state)
    tiny[name + ".weight"][1:, :] += 1e-9  # far below a quantization step: nothing moves
    assert Q.weights_changed(model, tiny, mode) == 0.0
    combo = CombinedLogits({"base": model, "other": copy.deepcopy(model)}, lambda d: d["base"], base="base")
    assert math.isnan(Q.weights_changed(combo, state, mode))
