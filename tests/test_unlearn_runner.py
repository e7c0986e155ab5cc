"""Tests for mnemoscope.unlearn.runner: methods on the shared loop, streams, stop rule, divergence, LoRA
and gradient checkpointing."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.unlearn import losses as L
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.methods.rmu import decoder_layers
from mnemoscope.unlearn.refusals import LAB_REFUSALS, with_refusals

from .helpers import FORGET, OU_METHODS, OU_QA, OU_RETAIN, OU_TEXTS, RETAIN, mean_nll, unlearn_cfg


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_runs_on_the_loop(method, fresh, tokenizer, tmp_path):
    start = R.fingerprint(fresh)
    forget = with_refusals(R.text_examples(FORGET), LAB_REFUSALS)  # IdkDPO's preferred answers
    res = R.unlearn(fresh, tokenizer, forget, R.text_examples(RETAIN), unlearn_cfg(method, steps=2), tmp_path)
    assert res.start_fingerprint == start and res.end_fingerprint != start
    assert len(res.history) == 2 and all(np.isfinite(h["loss"]) for h in res.history)
    assert (tmp_path / "done.json").exists() and (tmp_path / "model.safetensors").exists()


def test_done_run_is_reused_not_retrained(fresh, tokenizer, tmp_path, model):
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga"), tmp_path)
    again = copy.deepcopy(model)
    res2 = R.unlearn(again, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga"), tmp_path)
    assert res2.end_fingerprint == res.end_fingerprint == R.fingerprint(again)


def test_a_folder_filled_from_another_starting_model_is_refused(fresh, tokenizer, tmp_path, model):
    """Reusing a finished (or interrupted) run made from another model would report that model's
    results as this one's: the run refuses, naming the folder."""
    R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga"), tmp_path / "done")
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    with pytest.raises(MnemoscopeError, match=r"done: a run from another starting model .* another output folder"):
        R.unlearn(other, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga"), tmp_path / "done")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / R.START).write_text('{"fingerprint": "0123456789abcdef"}')
    with pytest.raises(MnemoscopeError, match="another starting model"):
        R.unlearn(copy.deepcopy(model), tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga"), tmp_path / "half")
    assert not (tmp_path / "half" / "done.json").exists()


def test_unknown_method_and_hparam_list_known_names(fresh, tokenizer, tmp_path):
    with pytest.raises(MnemoscopeError, match="npo_gd"):
        R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("npo-gd"), tmp_path)
    with pytest.raises(MnemoscopeError, match="beta"):
        R.resolve_hparams("npo", {"alpha": 1.0})
    assert R.resolve_hparams("npo", {"beta": 0.5}) == {"beta": 0.5}


def test_missing_retain_set_for_a_retain_method(fresh, tokenizer, tmp_path):
    with pytest.raises(MnemoscopeError, match="retain"):
        R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("gd"), tmp_path)


def test_lora_without_peft_says_how_to_install(fresh, tokenizer, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(MnemoscopeError, match=r"pip install peft"):
        R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga", lora=True), tmp_path)


@pytest.mark.parametrize("method", ["ga", "npo"])
def test_lora_unlearning_trains_adapters_and_returns_a_merged_model(fresh, tokenizer, tmp_path, method):
    pytest.importorskip("peft")
    before = mean_nll(fresh, tokenizer, FORGET)
    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None,
                    unlearn_cfg(method, steps=5, lr=5e-3, lora=True, lora_rank=4), tmp_path)
    names = [n for n, _ in res.model.named_parameters()]
    assert not any("lora" in n for n in names)  # adapters merged into a plain model
    assert set(names) == {n for n, _ in fresh.named_parameters()}
    assert res.end_fingerprint != res.start_fingerprint
    assert mean_nll(res.model, tokenizer, FORGET) > before
    assert all(p.requires_grad for p in res.model.parameters())  # relearning attacks fine-tune it
    again = R.finetune(copy.deepcopy(res.model), tokenizer, R.text_examples(FORGET), unlearn_cfg("ga", steps=1),
                       tmp_path / "relearn")
    assert again.steps_run == 1


def test_overlap_is_counted_refused_or_dropped():
    f = R.text_examples(["a b", "c d"])
    r = R.text_examples(["c d", "e f", "a b"])
    with pytest.raises(MnemoscopeError, match="2 example"):
        R.check_overlap(f, r)
    f2, r2, n = R.check_overlap(f, r, drop=True)
    assert n == 2 and [e.target for e in r2] == ["e f"] and f2 == f


def test_encode_examples_masks_prompt_and_windows_long_texts(tokenizer):
    qa = R.qa_examples([{"question": "Where was Anna born?", "answer": "Lisbon"}])
    enc = R.encode_examples(qa, tokenizer, max_length=64)[0]
    answer_ids = tokenizer(" Lisbon", add_special_tokens=False)["input_ids"]
    scored = [t for t in enc.labels if t != L.IGNORE_INDEX]
    assert scored == answer_ids and list(enc.ids[-len(answer_ids):]) == answer_ids
    long_text = " ".join(FORGET * 6)
    windows = R.encode_examples(R.text_examples([long_text]), tokenizer, max_length=16)
    n = len(tokenizer(long_text, add_special_tokens=False)["input_ids"])
    assert sum(len(w.ids) for w in windows) == n and all(len(w.ids) <= 16 for w in windows)


def test_batch_stream_is_deterministic_and_covers_each_epoch(tokenizer):
    items = R.encode_examples(R.text_examples(FORGET + RETAIN + FORGET[:1]), tokenizer, max_length=64)
    s1, s2 = R.BatchStream(items, 2, 7, 0), R.BatchStream(items, 2, 7, 0)
    assert [s1.indices(k) for k in range(6)] == [s2.indices(k) for k in range(6)]
    epoch = sum((s1.indices(k) for k in range(s1.per_epoch)), [])
    assert sorted(epoch) == list(range(len(items)))
    b = s1.batch(0)
    assert (b.labels[b.attention_mask == 0] == L.IGNORE_INDEX).all()


def test_sequential_requests_start_from_the_previous_result(fresh, tokenizer, tmp_path):
    original = R.fingerprint(fresh)
    reqs = [R.text_examples(FORGET[:1]), R.text_examples(FORGET[1:])]
    results = R.unlearn_sequence(fresh, tokenizer, reqs, None, unlearn_cfg("ga", steps=2), tmp_path)
    assert results[0].start_fingerprint == original
    assert results[1].start_fingerprint == results[0].end_fingerprint != original
    assert results[1].end_fingerprint != results[0].end_fingerprint


def test_stop_rule_keeps_the_first_satisfying_state(fresh, tokenizer, tmp_path):
    seen = []

    def evaluate(m):
        seen.append(R.fingerprint(m))
        return {"knowmem_forget": 10.0 - 3 * (len(seen) - 1)}  # 10, 7, 4, 1 at steps 0, 1, 2, 3

    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga", eval_every=1), tmp_path,
                    evaluate=evaluate, stop_when=lambda p: p["knowmem_forget"] <= 5.0)
    assert res.stop_step == 2 and [p["step"] for p in res.curve] == [0, 1, 2, 3]
    assert res.end_fingerprint == seen[2] != seen[3]
    assert any("step 2" in n for n in res.notes)


def test_divergence_stops_and_restores_last_good_state(fresh, tokenizer, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = L.ga_loss

    def flaky(nll):
        calls["n"] += 1
        out = real(nll)
        return out * float("nan") if calls["n"] == 4 else out

    monkeypatch.setattr(L, "ga_loss", flaky)
    seen = []

    def evaluate(m):
        seen.append(R.fingerprint(m))
        return {}

    res = R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga", steps=6, eval_every=2), tmp_path,
                    evaluate=evaluate)
    assert res.diverged_at == 3 and res.restored_step == 2
    assert res.end_fingerprint == seen[-1]  # the state evaluated at step 2
    assert any("diverged" in n and "step 3" in n for n in res.notes)


def test_each_sequential_request_is_measured_in_its_own_state(fresh, tokenizer, tmp_path):
    """The model is updated in place: a measurement after the loop would see only the last state."""
    seen = []
    reqs = [R.text_examples(FORGET[:1]), R.text_examples(FORGET[1:])]
    results = R.unlearn_sequence(fresh, tokenizer, reqs, None, unlearn_cfg("ga", steps=2), tmp_path,
                                 after_request=lambda k, m: seen.append((k, R.fingerprint(m))))
    assert [k for k, _ in seen] == [1, 2]
    assert seen[0][1] == results[0].end_fingerprint != seen[1][1] == results[1].end_fingerprint


def test_a_method_keeps_no_state_of_its_own_the_run_holds_it(fresh, tokenizer, tmp_path, monkeypatch):
    """RMU's taps and control vector are the run's (``UnlearnRun.method_state``): the shared method
    object is unchanged by a run, the hooks are gone afterwards, and two runs do not share state."""
    from mnemoscope.unlearn.methods import get_method

    rmu = get_method("rmu")
    before = dict(vars(rmu))
    layer = decoder_layers(fresh)[len(decoder_layers(fresh)) // 2]
    states = []
    real_start = type(rmu).start
    monkeypatch.setattr(type(rmu), "start", lambda self, *a: states.append(real_start(self, *a)) or states[-1])
    for k in (1, 2):
        run = R.UnlearnRun(fresh, tokenizer, R.text_examples(FORGET), R.text_examples(RETAIN),
                           unlearn_cfg("rmu", steps=1), tmp_path / f"rmu{k}")
        run.run()
        assert run.method_state is states[-1] and run.method_state.control.shape == (fresh.config.hidden_size,)
    assert dict(vars(rmu)) == before  # nothing stored on the shared object
    assert states[0] is not states[1] and states[0].tap is not states[1].tap
    assert not layer._forward_hooks  # both runs removed their hooks


def test_nothing_under_methods_imports_the_runner():
    import ast
    from pathlib import Path

    import mnemoscope.unlearn.methods as methods

    for path in Path(methods.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "mnemoscope.unlearn.runner", path.name
                assert not (node.module == "mnemoscope.unlearn" and any(a.name == "runner" for a in node.names)), path.name
            elif isinstance(node, ast.Import):
                assert all(a.name != "mnemoscope.unlearn.runner" for a in node.names), path.name


def test_the_run_goes_through_its_named_phases_in_order(fresh, tokenizer, tmp_path, monkeypatch):
    calls = []
    for phase in ("prepare", "evaluate", "stop", "finish"):
        real = getattr(R.UnlearnRun, phase)
        monkeypatch.setattr(R.UnlearnRun, phase, lambda self, *a, _real=real, _name=phase: calls.append(_name) or _real(self, *a))
    R.unlearn(fresh, tokenizer, R.text_examples(FORGET), None, unlearn_cfg("ga", steps=2, eval_every=1), tmp_path / "u",
              evaluate=lambda m: {"knowmem_forget": 1.0}, stop_when=lambda p: False)
    assert calls == ["prepare", "evaluate", "stop", "evaluate", "stop", "evaluate", "stop", "finish"]


@pytest.mark.parametrize("name", OU_METHODS)
def test_each_method_runs_on_the_loop(name, model, tokenizer, tmp_path):
    forget = with_refusals(R.qa_examples(OU_QA) + R.text_examples(OU_TEXTS), LAB_REFUSALS, seed=0)
    fresh = copy.deepcopy(model)
    res = R.unlearn(fresh, tokenizer, forget, R.text_examples(OU_RETAIN),
                    R.UnlearnConfig(name, steps=3, lr=1e-3, batch_size=2, max_length=64), tmp_path)
    assert res.steps_run == 3 and res.diverged_at is None
    assert res.end_fingerprint != res.start_fingerprint
    assert all(math.isfinite(h["loss"]) for h in res.history)


def test_sustainability_refuses_a_combining_method(fresh, tokenizer, tmp_path):
    with pytest.raises(MnemoscopeError, match="combines"):
        R.unlearn_sequence(fresh, tokenizer, [R.text_examples(FORGET[:1])], None, unlearn_cfg("whp"), tmp_path)


def _capture_training(monkeypatch):
    """Record, for each module the runner trains, its trainable parameter names and its LoRA B
    matrices right after training (before the adapters are merged)."""
    seen = []
    real = R.train

    def spy(model, *args, **kwargs):
        history = real(model, *args, **kwargs)
        seen.append({"trainable": {n for n, p in model.named_parameters() if p.requires_grad},
                     "adapters": {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}})
        return history

    monkeypatch.setattr(R, "train", spy)
    return seen


@pytest.mark.parametrize("method", sorted(R.METHODS))
def test_every_method_trains_lora_adapters(method, fresh, tokenizer, tmp_path, monkeypatch):
    pytest.importorskip("peft")
    seen = _capture_training(monkeypatch)
    qa = R.qa_examples([{"question": "Where was Anna Berg born?", "answer": "Lisbon"}])
    # SimNPO's loss saturates on texts the random micro model finds very unlikely (softplus(−45)):
    # γ moves it back into range so its update shows in the merged weights
    hp = {"gamma": 40.0} if method.startswith("simnpo") else {}
    forget = with_refusals(R.text_examples(FORGET) + qa, LAB_REFUSALS)  # IdkDPO's preferred answers
    res = R.unlearn(fresh, tokenizer, forget, R.text_examples(RETAIN),
                    unlearn_cfg(method, steps=2, lr=1e-2, lora=True, lora_rank=2, hparams=hp), tmp_path)
    (trained,) = seen
    assert trained["trainable"] and all("lora_" in n for n in trained["trainable"])  # only adapters train
    assert trained["adapters"] and all(float(b.abs().max()) > 0 for b in trained["adapters"].values())  # B starts at 0
    assert not any("lora" in n for n, _ in res.model.named_parameters())  # merged into plain weights
    assert res.end_fingerprint != res.start_fingerprint


def test_gradient_checkpointing_still_trains_the_adapters_with_the_same_gradients(model, tokenizer, tmp_path,
                                                                                  monkeypatch):
    pytest.importorskip("peft")
    seen = _capture_training(monkeypatch)
    runs = {}
    for ckpt in (False, True):
        m = copy.deepcopy(model)
        res = R.unlearn(m, tokenizer, R.text_examples(FORGET), R.text_examples(RETAIN),
                        unlearn_cfg("npo_gd", steps=2, lr=1e-2, lora=True, lora_rank=2, gradient_checkpointing=ckpt),
                        tmp_path / str(ckpt))
        runs[ckpt] = (seen[-1]["adapters"], res)
    with_ckpt, without = runs[True][0], runs[False][0]
    assert with_ckpt and all(float(v.abs().max()) > 0 for v in with_ckpt.values())
    for name, value in without.items():  # the same updates: checkpointing recomputes, it does not change gradients
        torch.testing.assert_close(with_ckpt[name], value, atol=1e-5, rtol=1e-4)
    assert not getattr(runs[True][1].model, "is_activation_checkpointing", False)  # switched off again


def test_gradient_checkpointing_full_finetune_matches(model, tokenizer, tmp_path):
    outs = []
    for ckpt in (False, True):
        res = R.unlearn(copy.deepcopy(model), tokenizer, R.text_examples(FORGET), None,
                        unlearn_cfg("ga", steps=2, gradient_checkpointing=ckpt), tmp_path / str(ckpt))
        outs.append(res.model.state_dict())
    for key, value in outs[0].items():
        torch.testing.assert_close(outs[1][key], value, atol=1e-5, rtol=1e-4)
