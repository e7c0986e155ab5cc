"""Untargeted extraction, approximate memorization, ACR, provenance and forecasting families,
called through read → plan → measure with configs built from their DEFAULTS."""

import copy
import json

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import acr, approximate, forecast, provenance, untargeted
from mnemoscope.families.base import Context
from mnemoscope.lab.tiny import build_model
from mnemoscope.metrics.provenance import spearman
from mnemoscope.probes.corpus import background_documents

from .conftest import MICRO
from .helpers import memorize


def _write(path, texts, ids=None):
    recs = [{"text": t} if ids is None else {"id": i, "text": t} for t, i in zip(texts, ids or texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def run(family, cfg, engine, ctx=None):
    ctx = ctx or Context()
    inputs = family.read(cfg, ctx)
    result = family.measure(family.plan(inputs, engine, ctx), engine, ctx)
    for k, v in ctx.notes.items():
        result.note(k, v)
    return result


@pytest.fixture(scope="module")
def lab(tokenizer):
    docs = background_documents(12, seed=21, sentences_per_doc=(1, 2))
    model = memorize(tokenizer, docs[:4], steps=120)
    return Engine(model, tokenizer), docs


def cfg_of(family, **section):
    cfg = copy.deepcopy(family.DEFAULTS)
    cfg[family.NAME].update(section)
    return cfg


# ------------------------------------------------------------------ untargeted

def test_untargeted_finds_verbatim_spans_and_the_filter_removes_them(lab, tmp_path):
    engine, docs = lab
    corpus = _write(tmp_path / "corpus.jsonl", docs, [f"d{i}" for i in range(len(docs))])
    prompts = _write(tmp_path / "prompts.jsonl", [" ".join(d.split()[:2]) for d in docs[:4]])
    cfg = cfg_of(untargeted, corpus=corpus, prompts=prompts, min_tokens=8, max_new_tokens=24, n_samples=8, start=False,
                 filter=True, filter_n=4)
    res = run(untargeted, cfg, engine)
    m, s = res.metrics, res.samples
    assert m["untargeted/extracted/rate@mode=greedy"] > 0
    assert m["untargeted/generations/n"] == 12
    plain = s[s["filter"] == "none"]
    assert len(plain) > 0
    for _, row in plain.iterrows():  # every reported span is verbatim in its corpus document
        doc = engine.text_ids(docs[row["doc"]])
        span = list(row["span_ids"])
        assert len(span) >= 8 and row["doc_id"] == f"d{row['doc']}"
        assert any(doc[i : i + len(span)] == span for i in range(len(doc) - len(span) + 1))
    # MemFree bans every corpus 4-gram: no 8-token verbatim span can survive (no false negatives)
    assert m["untargeted/extracted/count@filter=memfree"] == 0
    assert (s["filter"] == "memfree").sum() == 0


def test_untargeted_bad_input(lab, tmp_path):
    engine, docs = lab
    with pytest.raises(MnemoscopeError, match="no such file"):
        untargeted.read(cfg_of(untargeted, corpus=str(tmp_path / "missing.jsonl")))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(MnemoscopeError, match="holds no texts"):
        untargeted.read(cfg_of(untargeted, corpus=str(tmp_path / "empty.jsonl")))
    corpus = _write(tmp_path / "c.jsonl", docs)
    with pytest.raises(MnemoscopeError, match="larger than the generations"):
        untargeted.read(cfg_of(untargeted, corpus=corpus, min_tokens=50, max_new_tokens=32))
    assert untargeted.read(cfg_of(untargeted)) is None
    with pytest.raises(MnemoscopeError, match="exceeds the model's context"):
        untargeted.plan(untargeted.read(cfg_of(untargeted, corpus=corpus, max_new_tokens=500, min_tokens=10)), engine)


def test_untargeted_default_prompt_is_document_start(lab, tmp_path):
    engine, docs = lab
    cfg = cfg_of(untargeted, corpus=_write(tmp_path / "c.jsonl", docs), min_tokens=6, max_new_tokens=12, n_samples=2)
    plan = untargeted.plan(untargeted.read(cfg), engine)
    assert plan.prompts == [[engine.tokenizer.eos_token_id]]


# ------------------------------------------------------------------ approximate

def test_approximate_exact_vs_filtered(lab, tmp_path):
    engine, docs = lab
    texts = _write(tmp_path / "t.jsonl", docs[:4])
    cfg = cfg_of(approximate, texts=texts, prefix_tokens=6, suffix_tokens=16, filter=True, filter_n=4)
    ctx = Context()
    res = run(approximate, cfg, engine, ctx)
    m = res.metrics
    assert m["approx/exact/rate"] == 1.0 and m["approx/memorized/rate"] == 1.0
    assert m["approx/exact/rate@filter=memfree"] == 0.0  # every 4-gram of the suffix is banned
    assert 0 < m["approx/edit_similarity/mean@filter=memfree"] < 1
    assert set(res.samples["filter"]) == {"none", "memfree"}
    by = approximate.rates_by(res.samples, {str(i): ("a" if i < 2 else "b") for i in range(4)}, key="group")
    assert by["approx/exact/rate@group=a"] == 1.0 and "approx/bleu/mean@group=b,filter=memfree" in by


def test_approximate_short_texts_noted(lab, tmp_path):
    engine, docs = lab
    cfg = cfg_of(approximate, texts=_write(tmp_path / "t.jsonl", ["short text", docs[0]]), prefix_tokens=6,
                 suffix_tokens=16)
    res = run(approximate, cfg, engine)
    assert res.metrics["approx/n"] == 1 and "approx/memorized/rate" in res.notes


# ------------------------------------------------------------------ ACR

def test_acr_finds_a_known_short_trigger(tokenizer, tmp_path):
    target = " The museum keeps a collection of old lamps and maps."
    trigger = " was born"  # two tokens of the test tokenizer
    model = memorize(tokenizer, [trigger + target], steps=80)
    engine = Engine(model, tokenizer)
    t_ids = engine.text_ids(target)
    assert len(engine.text_ids(trigger)) == 2
    assert engine.generate([engine.text_ids(trigger)], max_new_tokens=len(t_ids))[0].token_ids == t_ids
    cfg = cfg_of(acr, targets=_write(tmp_path / "targets.jsonl", [target]), start_tokens=2, max_prompt_tokens=6,
                 steps=40, budget_steps=200, batch_size=64, topk=64)
    res = run(acr, cfg, engine)
    row = res.samples.iloc[0]
    assert row["prompt_tokens"] is not None and row["prompt_tokens"] <= 2, row.to_dict()
    out = engine.generate([list(row["prompt_ids"])], max_new_tokens=len(t_ids), min_new_tokens=len(t_ids))[0]
    assert out.token_ids == t_ids  # the found prompt really reproduces the target
    assert row["acr"] == len(t_ids) / row["prompt_tokens"] and res.metrics["acr/memorized/rate"] == 1.0


def test_acr_budget_is_reported(model, tokenizer, tmp_path):
    engine = Engine(model, tokenizer)  # an untrained model: no short prompt reproduces a long text
    cfg = cfg_of(acr, targets=_write(tmp_path / "t.jsonl", ["Alice Smith was born in Springfield in 1901."]),
                 start_tokens=2, max_prompt_tokens=30, steps=2, budget_steps=3, batch_size=8, topk=8)
    res = run(acr, cfg, engine)
    assert res.samples.iloc[0]["status"] == "budget"
    assert res.metrics["acr/budget_exhausted/count"] == 1 and "ran out" in res.notes["acr/memorized/rate"]
    assert res.metrics["acr/ratio/mean"] is None


def test_acr_target_longer_than_context_refused(model, tokenizer, tmp_path):
    engine = Engine(model, tokenizer)
    long = " ".join(["lantern"] * 200)
    cfg = cfg_of(acr, targets=_write(tmp_path / "t.jsonl", [long]))
    with pytest.raises(MnemoscopeError, match="exceeds the model's context"):
        acr.plan(acr.read(cfg), engine)


# ------------------------------------------------------------------ provenance

def test_provenance_statistic_and_mismatched_order(lab, tmp_path):
    engine, docs = lab
    ids = [f"x{i}" for i in range(len(docs))]
    texts = _write(tmp_path / "train.jsonl", docs, ids)
    order = tmp_path / "order.txt"
    order.write_text("\n".join(reversed(ids)) + "\n")
    res = run(provenance, cfg_of(provenance, texts=texts, order=str(order), n_perm=999), engine)
    nll = np.array([s.nll for s in engine.score(docs)])
    positions = np.array([len(ids) - 1 - i for i in range(len(ids))])
    assert res.metrics["provenance/rho"] == pytest.approx(spearman(-nll, positions))
    assert 0 < res.metrics["provenance/p_value"] <= 1
    from scipy.stats import spearmanr  # the authors' p-value, reported next to ours

    assert res.metrics["provenance/p_value_two_sided"] == pytest.approx(spearmanr(-nll, positions).pvalue, rel=1e-6)
    # JSON-lines order with positions (ties allowed)
    jorder = _write(tmp_path / "order.jsonl", [])  # replaced below
    (tmp_path / "order.jsonl").write_text("".join(json.dumps({"id": x, "position": i // 2}) + "\n"
                                                  for i, x in enumerate(ids)))
    assert provenance.read(cfg_of(provenance, texts=texts, order=jorder)).positions[3] == 1
    for content, match in [("\n".join(ids[:-1]), "without a position"), ("\n".join(ids + ["zz"]), "not in"),
                           ("\n".join(ids + [ids[0]]), "appears twice"), ("", "holds no ids")]:
        order.write_text(content)
        with pytest.raises(MnemoscopeError, match=match):
            provenance.read(cfg_of(provenance, texts=texts, order=str(order)))
    with pytest.raises(MnemoscopeError, match="needs both"):
        provenance.read(cfg_of(provenance, texts=texts))


# ------------------------------------------------------------------ forecasting

def test_forecast_precision_recall_of_predictors(lab, model, tmp_path):
    engine, docs = lab
    torch.manual_seed(0)
    untrained = Engine(build_model(MICRO, engine.tokenizer, seed=3).eval(), engine.tokenizer)
    cfg = cfg_of(forecast, texts=_write(tmp_path / "t.jsonl", docs[:8]), models=["a", "b"], fractions=[0.1, 1.0],
                 prefix=6, suffix=10)
    ctx = Context(engines={"forecast.models": [untrained, engine]})
    res = run(forecast, cfg, engine, ctx)
    m = res.metrics
    assert m["forecast/memorized/rate"] == pytest.approx(0.5)  # the 4 memorized docs of 8
    assert m["forecast/precision@fraction=1"] == 1.0 and m["forecast/recall@fraction=1"] == 1.0
    assert m["forecast/precision@fraction=0.1"] is None and "forecast/precision@fraction=0.1" in res.notes
    assert m["forecast/recall@fraction=0.1"] == 0.0
    with pytest.raises(MnemoscopeError, match="one compute fraction per model"):
        forecast.read(cfg_of(forecast, texts=cfg["forecast"]["texts"], models=["a"], fractions=[]))


def test_forecast_refuses_a_predictor_with_another_tokenizer(lab, bos_model, bos_tokenizer, tmp_path):
    """The prompts are the final model's token ids: a checkpoint with another BOS policy (or
    vocabulary) would score other text. Refused before anything is generated."""
    engine, docs = lab
    other = Engine(bos_model, bos_tokenizer)
    cfg = cfg_of(forecast, texts=_write(tmp_path / "t.jsonl", docs[:4]), models=["a", "b"], fractions=[0.5, 1.0],
                 prefix=6, suffix=10)
    calls = []
    real = engine.generate
    engine.generate = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        with pytest.raises(MnemoscopeError, match=r"forecast.models\[1\] does not share .*BOS policies differ"):
            run(forecast, cfg, engine, Context(engines={"forecast.models": [engine, other]}))
    finally:
        del engine.generate
    assert calls == []


def test_families_run_on_a_saved_model(saved_model_dir, corpus, tmp_path):
    """Each family on a model loaded from disk, as ``mnemoscope audit`` will run it."""
    from mnemoscope.engine import load_model

    loaded = load_model(str(saved_model_dir), device="cpu")
    engine = Engine.from_loaded(loaded)
    docs = [d.split(". ")[0] + "." for d in corpus[:12]]
    ids = [f"d{i}" for i in range(len(docs))]
    texts = _write(tmp_path / "docs.jsonl", docs, ids)
    (tmp_path / "order.txt").write_text("\n".join(ids))
    assert run(untargeted, cfg_of(untargeted, corpus=texts, min_tokens=4, max_new_tokens=8, n_samples=2),
               engine).metrics["untargeted/generations/n"] == 3
    assert run(approximate, cfg_of(approximate, texts=texts, prefix_tokens=3, suffix_tokens=4),
               engine).metrics["approx/n"] > 0
    assert run(provenance, cfg_of(provenance, texts=texts, order=str(tmp_path / "order.txt"), n_perm=99),
               engine).metrics["provenance/n"] == 12
    assert run(acr, cfg_of(acr, targets=texts, start_tokens=1, max_prompt_tokens=2, steps=1, budget_steps=1,
                            batch_size=4, topk=4), engine).metrics["acr/n"] == 12


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
    t = _write(tmp_path / "t.jsonl", ["a b c"])
    for key, value, match in [("max_prompt_tokens", -1, "max_prompt_tokens"), ("restart", "again", "acr.restart")]:
        with pytest.raises(MnemoscopeError, match=match):
            acr.read(cfg_of(acr, targets=t, **{key: value}))


def test_acr_five_times_cap_clipped_to_the_context_with_a_note(model, tokenizer, tmp_path, monkeypatch):
    _ScriptedGCG(need=10**6).install(monkeypatch)
    engine = Engine(model, tokenizer)
    text = " ".join(["lantern"] * 30)
    n = len(engine.text_ids(text))
    cfg = cfg_of(acr, targets=_write(tmp_path / "t.jsonl", [text]), steps=1, budget_steps=10_000)
    res = run(acr, cfg, engine)
    room = engine.max_length - len(engine.prefix_ids()) - n
    assert 5 * n > room and res.samples.iloc[0]["max_prompt_tokens"] == room
    assert "exceeds the model's context" in res.notes["acr/memorized/rate"]
    assert max(k for k, _ in eval(res.samples.iloc[0]["attempts"])) == room
