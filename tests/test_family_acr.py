"""families.acr: the adversarial compression ratio (a short prompt found by GCG that makes the model
emit a target), the MiniPrompt schedule over prompt lengths, its budget, and bad input."""

from __future__ import annotations

import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import acr

from .helpers import family_config, memorize, run_family, write_texts


def test_acr_finds_a_known_short_trigger(tokenizer, tmp_path):
    target = " The museum keeps a collection of old lamps and maps."
    trigger = " was born"  # two tokens of the test tokenizer
    model = memorize(tokenizer, [trigger + target], steps=80)
    engine = Engine(model, tokenizer)
    t_ids = engine.text_ids(target)
    assert len(engine.text_ids(trigger)) == 2
    assert engine.generate([engine.text_ids(trigger)], max_new_tokens=len(t_ids))[0].token_ids == t_ids
    cfg = family_config(acr, targets=write_texts(tmp_path / "targets.jsonl", [target]), start_tokens=2,
                        max_prompt_tokens=6, steps=40, budget_steps=200, batch_size=64, topk=64)
    res = run_family(acr, cfg, engine)
    row = res.samples.iloc[0]
    assert row["prompt_tokens"] is not None and row["prompt_tokens"] <= 2, row.to_dict()
    out = engine.generate([list(row["prompt_ids"])], max_new_tokens=len(t_ids), min_new_tokens=len(t_ids))[0]
    assert out.token_ids == t_ids  # the found prompt really reproduces the target
    assert row["acr"] == len(t_ids) / row["prompt_tokens"] and res.metrics["acr/memorized/rate"] == 1.0


def test_acr_budget_is_reported(model, tokenizer, tmp_path):
    engine = Engine(model, tokenizer)  # an untrained model: no short prompt reproduces a long text
    texts = write_texts(tmp_path / "t.jsonl", ["Alice Smith was born in Springfield in 1901."])
    cfg = family_config(acr, targets=texts, start_tokens=2, max_prompt_tokens=30, steps=2, budget_steps=3, batch_size=8,
                        topk=8)
    res = run_family(acr, cfg, engine)
    assert res.samples.iloc[0]["status"] == "budget"
    assert res.metrics["acr/budget_exhausted/count"] == 1 and "ran out" in res.notes["acr/memorized/rate"]
    assert res.metrics["acr/ratio/mean"] is None


def test_acr_target_longer_than_context_refused(model, tokenizer, tmp_path):
    engine = Engine(model, tokenizer)
    long = " ".join(["lantern"] * 200)
    cfg = family_config(acr, targets=write_texts(tmp_path / "t.jsonl", [long]))
    with pytest.raises(MnemoscopeError, match="exceeds the model's context"):
        acr.plan(acr.read(cfg), engine)


class _ScriptedGCG:
    """Stands in for ``acr._GCG.run``: succeeds iff the prompt has ≥ ``need`` tokens; records each start."""

    def __init__(self, need):
        self.need, self.starts = need, []

    def install(self, monkeypatch):
        def run(gcg, prompt, steps):
            self.starts.append(list(prompt))
            ok = len(prompt) >= self.need
            return list(prompt), ok, (1 if ok else steps)
        monkeypatch.setattr(acr._GCG, "run", run)
        return self


def test_acr_schedule_tries_the_cap_itself(model, tokenizer, monkeypatch):
    """Cap 30, shortest prompt 28: the old loop stopped after 25 (``nxt >= hi``) and said "done"."""
    _ScriptedGCG(need=28).install(monkeypatch)
    s = {**acr.DEFAULTS["acr"], "max_prompt_tokens": 30, "steps": 10, "budget_steps": 10_000}
    res = acr.minimize_prompt(Engine(model, tokenizer), list(range(5, 45)), None, s, seed=0)
    assert res.attempts == [(5, False), (10, False), (15, False), (20, False), (25, False), (30, True), (29, True),
                            (28, True), (27, False)]
    assert res.status == "done" and len(res.prompt) == 28


def test_acr_default_cap_is_five_times_the_target(model, tokenizer, monkeypatch):
    _ScriptedGCG(need=10**6).install(monkeypatch)  # never succeeds
    s = {**acr.DEFAULTS["acr"], "steps": 10, "budget_steps": 10_000}
    assert s["max_prompt_tokens"] == 0
    res = acr.minimize_prompt(Engine(model, tokenizer), [7, 8, 9, 10], None, s, seed=0)
    assert [n for n, _ in res.attempts] == [5, 10, 15, 20] and res.prompt is None and res.status == "done"


@pytest.mark.parametrize("restart", ["random", "warm"])
def test_acr_restart_after_a_success(model, tokenizer, monkeypatch, restart):
    """The authors restart every attempt from random tokens; ``warm`` keeps the best prompt's tail."""
    script = _ScriptedGCG(need=3).install(monkeypatch)
    s = {**acr.DEFAULTS["acr"], "max_prompt_tokens": 8, "start_tokens": 5, "restart": restart}
    acr.minimize_prompt(Engine(model, tokenizer), [7, 8, 9], None, s, seed=1)
    first, second = script.starts[0], script.starts[1]
    assert len(first) == 5 and len(second) == 4
    assert (second == first[1:]) == (restart == "warm")


def test_acr_cap_and_restart_settings_checked(tmp_path):
    t = write_texts(tmp_path / "t.jsonl", ["a b c"])
    for key, value, match in [("max_prompt_tokens", -1, "max_prompt_tokens"), ("restart", "again", "acr.restart")]:
        with pytest.raises(MnemoscopeError, match=match):
            acr.read(family_config(acr, targets=t, **{key: value}))


def test_acr_five_times_cap_clipped_to_the_context_with_a_note(model, tokenizer, tmp_path, monkeypatch):
    _ScriptedGCG(need=10**6).install(monkeypatch)
    engine = Engine(model, tokenizer)
    text = " ".join(["lantern"] * 30)
    n = len(engine.text_ids(text))
    cfg = family_config(acr, targets=write_texts(tmp_path / "t.jsonl", [text]), steps=1, budget_steps=10_000)
    res = run_family(acr, cfg, engine)
    room = engine.max_length - len(engine.prefix_ids()) - n
    assert 5 * n > room and res.samples.iloc[0]["max_prompt_tokens"] == room
    assert "exceeds the model's context" in res.notes["acr/memorized/rate"]
    assert max(k for k, _ in eval(res.samples.iloc[0]["attempts"])) == room
