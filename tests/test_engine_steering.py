"""Activations and steering in the engine, on every architecture family the engine claims to
support (tiny random configs built here), checked against hand-written hooks and transformers'
own hidden states."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import transformers as T

from mnemoscope.engine import Engine
from mnemoscope.engine.activations import find_blocks, find_sublayers
from mnemoscope.engine.encoding import Encoded
from mnemoscope.engine.steering import Ablate, Add, ScaleProjection
from mnemoscope.errors import MnemoscopeError

PROMPTS = ["The river", "a quiet morning in the old town, where the", "Seven", "people often say that the best"]
TEXTS = ["the house stood on a hill above the valley", "one two", "she wrote a letter to the mayor about it"]


def _config(kind: str, vocab: int, tok) -> T.PretrainedConfig:
    ids = {"vocab_size": vocab, "pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id,
           "eos_token_id": tok.eos_token_id}
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                 max_position_embeddings=128, **ids)
    return {
        "llama": lambda: T.LlamaConfig(num_key_value_heads=2, **small),
        "mistral": lambda: T.MistralConfig(num_key_value_heads=2, **small),
        "qwen2": lambda: T.Qwen2Config(num_key_value_heads=2, **small),
        "gemma": lambda: T.GemmaConfig(num_key_value_heads=2, head_dim=8, **small),
        "gemma2": lambda: T.Gemma2Config(num_key_value_heads=2, head_dim=8, **small),  # soft-capped logits
        "gpt_neox": lambda: T.GPTNeoXConfig(**small),
        "gpt2": lambda: T.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=128, **ids),
        "opt": lambda: T.OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=3, num_attention_heads=4,
                                   max_position_embeddings=128, word_embed_proj_dim=32, **ids),
        "phi": lambda: T.PhiConfig(**small),
        "olmo": lambda: T.OlmoConfig(**small),
        "olmo2": lambda: T.Olmo2Config(**small),
        "mpt": lambda: T.MptConfig(d_model=32, n_heads=4, n_layers=3, max_seq_len=128, expansion_ratio=2, **ids),
    }[kind]()


ARCHS = ["llama", "mistral", "qwen2", "gemma", "gemma2", "gpt_neox", "gpt2", "opt", "phi", "olmo", "olmo2", "mpt"]


def _arch_model(kind, tok):
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(_config(kind, len(tok), tok)).eval()
    with torch.no_grad():  # random init is near-uniform: sharpen it so greedy choices are not near-ties
        model.get_input_embeddings().weight.mul_(8.0)
        head = model.get_output_embeddings().weight
        if head is not model.get_input_embeddings().weight:
            head.mul_(8.0)
    return model


@pytest.fixture(scope="module", params=ARCHS)
def arch(request, tokenizer):
    return request.param, Engine(_arch_model(request.param, tokenizer), tokenizer)


def _alpha(engine, layer, scale):
    """``scale`` × the mean norm of the residual stream at ``layer`` over PROMPTS."""
    return float(scale * np.linalg.norm(engine.activations(PROMPTS, layers=[layer]).at(layer), axis=1).mean())


def _unit(d, seed=0):
    r = np.random.default_rng(seed).normal(size=d).astype(np.float32)
    return r / np.linalg.norm(r)


def _hooked_logits(model, blocks, ids, layer, fn):
    """Reference: one unpadded sequence, ``fn(h)`` applied to block ``layer``'s output by a hook
    written here (not the engine's)."""
    handle = blocks[layer].register_forward_hook(
        lambda m, a, out: (fn(out[0]), *out[1:]) if isinstance(out, tuple) else fn(out))
    try:
        with torch.no_grad():
            return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    finally:
        handle.remove()


def test_rmu_takes_the_same_blocks_on_every_architecture(arch):
    """RMU's layer tap uses the engine's generic block rule (MPT's blocks are ``transformer.blocks``,
    which a name-based rule missed)."""
    from mnemoscope.unlearn.methods.rmu import decoder_layers

    _, engine = arch
    assert decoder_layers(engine.model) is find_blocks(engine.model) and len(decoder_layers(engine.model)) == 3


def test_every_architecture_reads_and_steers(arch, tokenizer):
    kind, engine = arch
    n, d = engine.n_layers, engine.hidden_size
    assert n == 3 and len(engine.decoder_blocks()) == 3
    # batched (right-padded, mixed lengths) vs one at a time
    batched = engine.activations(PROMPTS, position="mean")
    single = Engine(engine.model, tokenizer, max_batch_size=1).activations(PROMPTS, position="mean")
    assert batched.values.shape == (len(PROMPTS), n + 1, d) and batched.values.dtype == np.float32
    np.testing.assert_allclose(batched.values, single.values, atol=1e-5, rtol=1e-5)
    # α = 0: bit-identical; α ≠ 0: something moves, at every layer including the embeddings
    base = engine.score(TEXTS)
    r = _unit(d)
    with engine.steer(Add(1, r, 0.0)):
        zero = engine.score(TEXTS)
    assert all(np.array_equal(a.logprobs, b.logprobs) for a, b in zip(base, zero))
    for layer in (-1, 0, n - 1):
        with engine.steer(Add(layer, r, 4.0)):
            moved = engine.score(TEXTS)
        assert max(np.abs(a.logprobs - b.logprobs).max() for a, b in zip(base, moved)) > 1e-3, (kind, layer)
    # steered generation runs and is batch-invariant
    alpha = _alpha(engine, 1, 1.0)
    plain = engine.generate(PROMPTS, max_new_tokens=4, min_new_tokens=4)
    with engine.steer(Add(1, r, alpha, start=-1)):
        gen = engine.generate(PROMPTS, max_new_tokens=4, min_new_tokens=4)
    one = Engine(engine.model, tokenizer, max_batch_size=1)
    with one.steer(Add(1, r, alpha, start=-1)):
        alone = one.generate(PROMPTS, max_new_tokens=4, min_new_tokens=4)
    assert [g.token_ids for g in gen] == [g.token_ids for g in alone]
    assert [g.token_ids for g in gen] != [g.token_ids for g in plain]


def test_steered_score_matches_a_hand_written_hook(arch):
    kind, engine = arch
    r, alpha, layer = _unit(engine.hidden_size, 1), 5.0, 1
    items = [engine.encode_text(t) for t in TEXTS]
    for start in (None, 2, -1):
        with engine.steer(Add(layer, r, alpha, start=start)):
            got = engine.score_encoded(items)
        for it, sc in zip(items, got):
            first = 0 if start is None else start if start >= 0 else it.score_from + start

            def add(h, first=first):
                h = h.clone()
                h[:, first:] += alpha * torch.tensor(r)
                return h

            ref = _hooked_logits(engine.model, engine.decoder_blocks(), it.ids, layer, add)
            want = ref[torch.arange(it.score_from - 1, len(it.ids) - 1), torch.tensor(it.ids[it.score_from:])]
            np.testing.assert_allclose(sc.logprobs, want.numpy(), atol=2e-4, rtol=1e-4, err_msg=f"{kind} start={start}")


def test_greedy_with_and_without_kv_cache_agree_under_steering(arch):
    kind, engine = arch
    r = _unit(engine.hidden_size, 2)
    a0, a1, a2 = (_alpha(engine, layer, 0.5) for layer in (0, 1, 2))
    for iv in (Add(1, r, a1), Add(0, r, a0, start=-1), Add(2, r, a2, start=5), Ablate(r), ScaleProjection(r, 0.5)):
        with engine.steer(iv):
            cached = engine.generate(PROMPTS, max_new_tokens=5)  # no forced length: EOS stays the argmax
            engine.use_cache = False
            try:
                plain = engine.generate(PROMPTS, max_new_tokens=5)
            finally:
                engine.use_cache = True
            # the continuation is the argmax of the steered teacher-forced pass too (score = no cache)
            items = [Encoded(ids=engine.encode_prompt(p) + c.token_ids, score_from=len(engine.encode_prompt(p)),
                             bos=engine.bos) for p, c in zip(PROMPTS, cached)]
            teacher = engine.score_encoded(items)
        assert [c.token_ids for c in cached] == [c.token_ids for c in plain], (kind, iv)
        assert all(t.argmax.all() for t in teacher), (kind, iv)


def test_first_generated_token_is_steered(arch):
    kind, engine = arch
    r, alpha, layer = _unit(engine.hidden_size, 3), 40.0, engine.n_layers - 1
    plain = engine.generate(PROMPTS, max_new_tokens=1, min_new_tokens=1)
    with engine.steer(Add(layer, r, alpha, start=-1)):
        steered = engine.generate(PROMPTS, max_new_tokens=1, min_new_tokens=1)
    longest = max(len(engine.encode_prompt(p)) for p in PROMPTS)
    with engine.steer(Add(layer, r, alpha, start=longest)):  # from the first new token on: too late for it
        late = engine.generate(PROMPTS, max_new_tokens=1, min_new_tokens=1)
    assert [t.token_ids for t in late] == [t.token_ids for t in plain], kind
    for p, s in zip(PROMPTS, steered):
        ids = engine.encode_prompt(p)

        def add_last(h):
            h = h.clone()
            h[:, -1] += alpha * torch.tensor(r)
            return h

        ref = _hooked_logits(engine.model, engine.decoder_blocks(), ids, layer, add_last)
        assert s.token_ids[0] == int(ref[-1].argmax()), kind
    assert any(s.token_ids != p.token_ids for s, p in zip(steered, plain)), kind


def test_ablation_removes_the_component(arch):
    kind, engine = arch
    r = _unit(engine.hidden_size, 4)
    layers = list(range(-1, engine.n_layers))
    before = engine.activations(TEXTS, position="mean", layers=layers)
    assert np.abs(before.values @ r).max() > 1e-2
    with engine.steer(Ablate(r, layers=(1,))):
        one = engine.activations(TEXTS, position="mean", layers=layers)
    with engine.steer(Ablate(r)):
        every = engine.activations(TEXTS, position="mean", layers=layers)
    np.testing.assert_allclose(one.at(0), before.at(0), atol=1e-6)  # earlier layers untouched
    # block 1's attention and MLP wrote nothing along r̂: its output keeps exactly what it received
    np.testing.assert_allclose(one.at(1) @ r, before.at(0) @ r, atol=1e-4, err_msg=kind)
    assert np.abs(before.at(1) @ r - before.at(0) @ r).max() > 1e-3, kind  # unablated, they did write some
    assert np.abs(every.values @ r).max() < 1e-4, kind


def _final_norm(model, blocks):
    """The norm between the last block and the head (found here by name, independently of the engine)."""
    inside = {id(m) for m in blocks.modules()}
    norms = [m for name, m in model.named_modules() if id(m) not in inside
             and name.rsplit(".", 1)[-1] in ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")]
    assert len(norms) == 1, norms
    return norms[0]


def _sublayer_readers(kind, model, blocks):
    """Every module that reads the residual stream: each block's attention and MLP (OPT's inline MLP
    reads through fc1) and the final norm."""
    readers = []
    for block in blocks:
        mlp = {"opt": "fc1", "mpt": "ffn"}.get(kind)
        readers += [find_sublayers(block).attention, getattr(block, mlp) if mlp else find_sublayers(block).mlp]
    return readers + [_final_norm(model, blocks)]


def _largest_read_along(model, readers, r, fn):
    """max over every reader's input of |x·r̂| / ‖x‖ while ``fn`` runs."""
    seen = []

    def record(module, args, kwargs):
        x = (args[0] if args else kwargs["hidden_states"]).float()
        seen.append(((x @ r).abs() / x.norm(dim=-1).clamp_min(1e-12)).max().item())

    handles = [m.register_forward_pre_hook(record, with_kwargs=True) for m in readers]
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    assert len(seen) >= len(readers)
    return max(seen)


def test_no_sublayer_reads_the_ablated_direction(arch, tokenizer):
    """Directional ablation on every write (embeddings, attention and MLP outputs): no attention, MLP
    or final norm anywhere sees a component along r̂. The direction has zero mean, so a LayerNorm's
    mean subtraction cannot create a component (the tiny models' norms have unit gains, zero biases)."""
    kind, batched = arch
    engine = Engine(batched.model, tokenizer, max_batch_size=1)  # one item per call: no pads (never touched) to read
    model, blocks = engine.model, engine.decoder_blocks()
    r = _unit(engine.hidden_size, 8)
    r = (r - r.mean()) / np.linalg.norm(r - r.mean())
    rt = torch.tensor(r)
    readers = _sublayer_readers(kind, model, blocks)
    assert _largest_read_along(model, readers, rt, lambda: engine.score(TEXTS)) > 1e-2
    with engine.steer(Ablate(r)):
        assert _largest_read_along(model, readers, rt, lambda: engine.score(TEXTS)) < 1e-4, kind
        assert _largest_read_along(model, readers, rt, lambda: engine.generate(PROMPTS, max_new_tokens=2)) < 1e-4
    # the old form (the embeddings and each block's output only) lets a sequential block's MLP read
    # what its own attention wrote: the check above would catch it
    if kind not in ("gpt_neox", "phi"):  # parallel residual: the MLP reads the block's input, not the attention's write
        def project_out(h):
            return h - (h.float() @ rt)[..., None].to(h.dtype) * rt.to(h.dtype)

        def on_embeddings(module, args, kwargs):
            if args:
                return (project_out(args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": project_out(kwargs["hidden_states"])}

        handles = [blocks[0].register_forward_pre_hook(on_embeddings, with_kwargs=True)]
        handles += [b.register_forward_hook(lambda m, a, out: (project_out(out[0]), *out[1:]) if isinstance(out, tuple)
                                            else project_out(out)) for b in blocks]
        try:
            assert _largest_read_along(model, readers, rt, lambda: engine.score(TEXTS)) > 1e-3, kind
        finally:
            for h in handles:
                h.remove()


def _paper_hooks(model, r, scale):
    """The seed paper's intervention, written out from its description (independently of the engine):
    on ``model.layers``, a pre-hook on every block editing its input in place and forward hooks on
    every ``self_attn`` and ``mlp`` editing their outputs in place, all by x += s·(x·r̂)r̂ at every
    position."""
    r = torch.tensor(r)

    def edit(x):
        x[:, :, :] = x + scale * (x @ r).unsqueeze(-1) * r

    def on_input(module, args, kwargs):
        edit(args[0] if args else kwargs["hidden_states"])

    def on_output(module, args, output):
        edit(output[0] if isinstance(output, tuple) else output)

    handles = []
    for block in model.model.layers:
        handles.append(block.register_forward_pre_hook(on_input, with_kwargs=True))
        handles.append(block.self_attn.register_forward_hook(on_output))
        handles.append(block.mlp.register_forward_hook(on_output))
    return handles


PAPER_ARCHS = ["llama", "qwen2", "gemma", "gemma2", "olmo", "olmo2", "phi"]  # model.layers[i].self_attn / .mlp


@pytest.mark.parametrize("kind", PAPER_ARCHS)
def test_projection_scaling_matches_the_papers_hooks(kind, tokenizer):
    """Reference test: the engine's ScaleProjection (batched, right-padded) against the paper's
    in-place hooks on one unpadded sequence at a time."""
    model = _arch_model(kind, tokenizer)
    engine = Engine(model, tokenizer)
    r, scale = _unit(engine.hidden_size, 9), 0.7
    items = [engine.encode_text(t) for t in TEXTS]
    with engine.steer(ScaleProjection(r, scale)):
        got = engine.score_encoded(items)
    plain = engine.score_encoded(items)
    moved = 0.0
    for it, sc, base in zip(items, got, plain):
        handles = _paper_hooks(model, r, scale)
        try:
            with torch.no_grad():
                ref = torch.log_softmax(model(input_ids=torch.tensor([it.ids])).logits[0].float(), -1)
        finally:
            for h in handles:
                h.remove()
        want = ref[torch.arange(it.score_from - 1, len(it.ids) - 1), torch.tensor(it.ids[it.score_from:])]
        np.testing.assert_allclose(sc.logprobs, want.numpy(), atol=2e-4, rtol=1e-4, err_msg=kind)
        moved = max(moved, float(np.abs(sc.logprobs - base.logprobs).max()))
    assert moved > 1e-3, kind


def test_projection_scaling_zero_is_bit_identical_and_reaches_every_layer(arch):
    kind, engine = arch
    r = _unit(engine.hidden_size, 10)
    base = engine.score(TEXTS)
    base_gen = engine.generate(PROMPTS, max_new_tokens=3)
    with engine.steer(ScaleProjection(r, 0.0)):
        zero = engine.score(TEXTS)
        zero_gen = engine.generate(PROMPTS, max_new_tokens=3)
    assert all(np.array_equal(a.logprobs, b.logprobs) for a, b in zip(base, zero)), kind
    assert [g.token_ids for g in zero_gen] == [g.token_ids for g in base_gen]
    layers = list(range(-1, engine.n_layers))
    before = engine.activations(TEXTS, position="mean", layers=layers)
    with engine.steer(ScaleProjection(r, -1.0)):  # s = −1 removes the component at each block's input
        after = engine.activations(TEXTS, position="mean", layers=layers)
    assert np.abs(after.at(-1) @ r).max() < 1e-4, kind  # the embeddings
    assert np.abs(before.at(-1) @ r).max() > 1e-2
    with pytest.raises(MnemoscopeError, match="finite"), engine.steer(ScaleProjection(r, float("nan"))):
        pass


def test_an_unknown_block_layout_is_named():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mixer, self.out = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    with pytest.raises(MnemoscopeError, match="sublayers of Block"):
        find_sublayers(Block())


def test_pads_are_never_touched(tokenizer, model):
    engine = Engine(model, tokenizer)
    r = _unit(engine.hidden_size, 5)
    block = engine.decoder_blocks()[0]
    engine.score(TEXTS[:1])  # settles the engine's one-off body/head check before hooks count calls
    # what each intervention edits directly: block 0's output, or (the paper's) its input = the embeddings
    for iv in (Add(0, r, 9.0), Ablate(r, layers=(0,)), ScaleProjection(r, 0.5)):
        runs = []
        for ctx in (contextlib.nullcontext(), engine.steer(iv)):
            seen = []
            with ctx:
                if isinstance(iv, ScaleProjection):  # registered after the steering pre-hook: sees its edit
                    handle = block.register_forward_pre_hook(
                        lambda m, a, k, seen=seen: seen.append((a[0] if a else k["hidden_states"]).detach().clone()),
                        with_kwargs=True)
                else:
                    handle = block.register_forward_hook(lambda m, a, out, seen=seen: seen.append(out.detach().clone()))
                try:
                    engine.score(TEXTS)  # right padding
                    engine.generate(PROMPTS, max_new_tokens=2, min_new_tokens=2)  # left padding, then one step
                finally:
                    handle.remove()
            runs.append(seen)
        plain, seen = runs
        lengths = sorted((len(engine.encode_text(t).ids) for t in TEXTS), reverse=True)
        score_out, plain_score = seen[0], plain[0]
        for b, n in enumerate(lengths):
            assert torch.equal(score_out[b, n:], plain_score[b, n:])  # right pads as they were
            assert not torch.equal(score_out[b, :n], plain_score[b, :n])
        prefill, plain_prefill = seen[1], plain[1]
        widths = sorted((len(engine.encode_prompt(p)) for p in PROMPTS), reverse=True)
        for b, n in enumerate(widths):
            pads = prefill.shape[1] - n
            assert torch.equal(prefill[b, :pads], plain_prefill[b, :pads])  # left pads as they were


def test_layer_minus_one_and_blocks_match_transformers_hidden_states(arch):
    _, engine = arch
    ids = engine.encode_prompt(PROMPTS[1])
    with torch.no_grad():
        hs = engine.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    got = engine.activations([PROMPTS[1]], position="last")
    # hidden_states[0] is the embeddings as the first block sees them; hidden_states[l + 1] the output
    # of block l, except the last entry, which has the final norm applied (the classic trap)
    for layer in range(-1, engine.n_layers - 1):
        np.testing.assert_allclose(got.at(layer)[0], hs[layer + 1][0, -1].numpy(), atol=1e-5, rtol=1e-5)


def test_position_rules(tokenizer, bos_tokenizer, bos_model):
    engine = Engine(bos_model, bos_tokenizer)
    pairs = [("The capital of the valley is", " a town"), ("He said", " that the river was wide")]
    items = [engine.encode_pair(c, t) for c, t in pairs]
    with torch.no_grad():
        hs = [engine.model(input_ids=torch.tensor([it.ids]), output_hidden_states=True).hidden_states[1][0]
              for it in items]
    last = engine.activations(pairs, layers=[0], position="last").at(0)
    mean = engine.activations(pairs, layers=[0], position="mean").at(0)
    answer = engine.activations(pairs, layers=[0], position="answer").at(0)
    for it, h, a, m, s in zip(items, hs, last, mean, answer):
        assert it.bos and it.ids[0] == bos_tokenizer.bos_token_id
        np.testing.assert_allclose(a, h[it.score_from - 1].numpy(), atol=1e-5)
        np.testing.assert_allclose(m, h[1:it.score_from].mean(0).numpy(), atol=1e-5)  # BOS excluded
        np.testing.assert_allclose(s, h[it.score_from:].mean(0).numpy(), atol=1e-5)
    with pytest.raises(MnemoscopeError, match="answer"):
        engine.activations(["just a prompt"], position="answer")
    with pytest.raises(MnemoscopeError, match="position rule"):
        engine.activations(["x"], position="first")


def test_capture_stops_after_the_deepest_layer(tokenizer, model):
    engine = Engine(model, tokenizer)
    calls = []
    handle = engine.decoder_blocks()[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        engine.activations(PROMPTS, layers=[0])
        assert calls == []
        engine.activations(PROMPTS, layers=[1])
        assert calls
    finally:
        handle.remove()


def test_hooks_are_removed_and_bad_requests_refused(tokenizer, model):
    engine = Engine(model, tokenizer)
    blocks = engine.decoder_blocks()
    r = _unit(engine.hidden_size)

    def n_hooks():
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

    before = n_hooks()
    with pytest.raises(ValueError), engine.steer(Add(0, r, 1.0), Ablate(r), ScaleProjection(r, 0.1)):
        assert n_hooks() > before
        raise ValueError("boom")
    assert n_hooks() == before and engine._steering is None
    with pytest.raises(MnemoscopeError, match="out of range"), engine.steer(Add(engine.n_layers, r, 1.0)):
        pass
    with pytest.raises(MnemoscopeError, match="hidden size"), engine.steer(Add(0, np.ones(7), 1.0)):
        pass
    with pytest.raises(MnemoscopeError, match="zero"), engine.steer(Add(0, np.zeros(engine.hidden_size), 1.0)):
        pass
    with pytest.raises(MnemoscopeError, match="nest"), engine.steer(Add(0, r, 1.0)), engine.steer(Add(0, r, 1.0)):
        pass
    with (pytest.raises(MnemoscopeError, match="already steered"),  # two engines, one model
          engine.steer(Add(0, r, 1.0)), Engine(model, tokenizer).steer(Add(0, r, 1.0))):
        pass
    with pytest.raises(MnemoscopeError, match="out of range"):
        engine.activations(["x"], layers=[-2])
    with pytest.raises(MnemoscopeError, match="no layer"):
        engine.activations(["x"], layers=[])
    assert n_hooks() == before
    assert {"activations", "steer"} <= engine.provides


def test_unknown_architecture_is_named(tokenizer):
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = T.PretrainedConfig(num_hidden_layers=3)
            self.first, self.second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    with pytest.raises(MnemoscopeError, match="cannot find the decoder blocks of Odd"):
        find_blocks(Odd())
    with pytest.raises(MnemoscopeError, match="Odd"):
        Engine(Odd(), tokenizer).activations(["x"])
    bare = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(MnemoscopeError, match="Sequential"):
        find_blocks(bare)


def test_out_of_memory_halves_capture_and_steered_batches(tokenizer, model):
    from mnemoscope.engine.activations import block_input

    items = TEXTS + PROMPTS
    r = _unit(model.config.hidden_size, 6)
    one = Engine(model, tokenizer, max_batch_size=1)
    want = one.activations(items, position="mean")
    with one.steer(Add(0, r, 2.0, start=-1)):
        want_gen = one.generate(PROMPTS, max_new_tokens=3, min_new_tokens=3)
    engine = Engine(model, tokenizer, max_batch_size=16)

    def flaky(module, args, kwargs):
        if block_input(args, kwargs).shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")

    handle = engine.decoder_blocks()[0].register_forward_pre_hook(flaky, with_kwargs=True)
    try:
        got = engine.activations(items, position="mean")
        with engine.steer(Add(0, r, 2.0, start=-1)):
            got_gen = engine.generate(PROMPTS, max_new_tokens=3, min_new_tokens=3)
    finally:
        handle.remove()
    assert engine.stats.oom_retries >= 2
    np.testing.assert_allclose(got.values, want.values, atol=1e-5)
    assert [g.token_ids for g in got_gen] == [g.token_ids for g in want_gen]
