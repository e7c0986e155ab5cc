"""The mechanisms family: read → plan → measure → save on a micro model that memorised its answers."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine, load_model
from mnemoscope.engine.steering import load_directions, model_identity, save_directions
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import mechanisms as mech
from mnemoscope.families.base import Context

from .helpers import memorize

# every text starts with its own word, so after it the whole text can be memorised
A = [("north red fox says", "hello"), ("south red bird sings", "hello"), ("east red cat says", "hello"),
     ("west red dog barks", "hello")]
B = [("up blue owl says", "goodbye"), ("down blue fish swims", "goodbye"), ("left blue cow says", "goodbye"),
     ("right blue bee hums", "goodbye")]


@pytest.fixture(scope="module")
def trained(tokenizer):
    # each text ends with EOS, so a greedy answer stops after it
    return memorize(tokenizer, [f"{p} {a}{tokenizer.eos_token}" for p, a in A + B], steps=120)


def _write(path, items, alternative=None):
    with open(path, "w") as f:
        for i, (p, a) in enumerate(items):
            row = {"id": f"x{i}", "prompt": p, "answer": a}
            if alternative:
                row["alternative"] = alternative
            f.write(json.dumps(row) + "\n")
    return str(path)


def _cfg(tmp_path, **changes):
    cfg = copy.deepcopy(mech.DEFAULTS)
    cfg["mechanisms"].update(a=_write(tmp_path / "a.jsonl", A, "goodbye"), b=_write(tmp_path / "b.jsonl", B),
                             a_name="red", b_name="blue", alphas=[-1.0, 0.0, 1.0], steer_layers=[0, 1])
    cfg["mechanisms"].update(changes)
    return cfg


def _run(cfg, engine, ctx=None):
    ctx = ctx or Context(n_boot=50)
    inputs = mech.read(cfg, ctx)
    return mech.measure(mech.plan(inputs, engine, ctx), engine, ctx)


def test_measure_and_save(tmp_path, trained, tokenizer):
    engine = Engine(trained, tokenizer)
    result = _run(_cfg(tmp_path), engine)
    m = result.metrics
    for layer in (-1, 0, 1):
        assert 0.0 <= m[f"mechanisms/probe/auc@layer={layer}"] <= 1.0
        assert m[f"mechanisms/probe/auc/ci_lo@layer={layer}"] <= m[f"mechanisms/probe/auc@layer={layer}"]
        assert m[f"mechanisms/mean_norm@layer={layer}"] > 0
    # block outputs separate the sets perfectly; the embeddings of the last token cannot ("says" is in both)
    assert m["mechanisms/probe/auc@layer=1"] == 1.0
    assert m["mechanisms/best_layer"] in (0.0, 1.0)
    sweep = result.tables["sweep"]
    assert len(sweep) == 2 * 2 * 3 * 2  # sets × steering layers × α × (direction, random)
    at0 = sweep[sweep["alpha"] == 0]
    assert (at0["accuracy"] == 1.0).all()  # memorised: every eval answer right without steering
    assert (at0.groupby("set")["answer_logprob"].nunique() == 1).all()  # the α = 0 row is shared
    assert m["mechanisms/steer/accuracy@set=red,layer=0,alpha=0,direction=random"] == 1.0
    assert "mechanisms/steer/alternative_rate@set=red,layer=0,alpha=1,direction=direction" in m
    assert "mechanisms/steer/alternative_rate@set=blue,layer=0,alpha=1,direction=direction" not in m
    assert "mechanisms/steer/shift@set=blue,direction=direction" in m
    assert set(result.tables["ablation"]["direction"]) == {"direction", "random", "none"}
    samples = result.samples
    assert list(samples["set"]) == ["red"] * 4 + ["blue"] * 4
    assert (samples.groupby("set")["split"].value_counts() == 2).all()
    assert samples["correct"].isna().sum() == 4  # fit items are not steered
    folder = mech.save(result, tmp_path / "run")
    for name in ("probe", "sweep", "ablation", "items"):
        assert (folder / f"{name}.parquet").is_file()
    directions, meta = load_directions(folder / "directions.safetensors", model_identity(trained))
    assert sorted(directions) == [-1, 0, 1] and meta["position"] == "last" and meta["hidden_size"] == 64
    np.testing.assert_allclose(directions[1], result.directions[1], rtol=1e-6)
    from safetensors.numpy import load_file
    assert load_file(folder / "activations.safetensors")["values"].shape == (8, 3, 64)


def test_both_interventions_share_the_unsteered_run(tmp_path, trained, tokenizer):
    engine = Engine(trained, tokenizer)
    result = _run(_cfg(tmp_path, interventions=["add", "scale"], scales=[-1.0, 0.0, 2.0], steer_layers=[1],
                       ablate=False), engine)
    sweep, m = result.tables["sweep"], result.metrics
    assert len(sweep) == 2 * 2 * (3 + 3)  # sets × (direction, random) × (α grid + s grid)
    assert set(sweep["intervention"]) == {"add", "scale"}
    assert np.isnan(sweep.loc[sweep["intervention"] == "scale", "alpha_abs"]).all()
    for name in ("red", "blue"):
        want = m[f"mechanisms/steer/answer_logprob@set={name},layer=1,alpha=0,direction=direction"]
        assert m[f"mechanisms/scale/answer_logprob@set={name},layer=1,scale=0,direction=direction"] == want
        assert m[f"mechanisms/scale/answer_logprob@set={name},layer=1,scale=2,direction=direction"] != want
        assert f"mechanisms/scale/shift@set={name},direction=random" in m
    # s = −1 with a random direction at every site removes one of 64 dimensions: the memorised answers survive
    assert m["mechanisms/scale/accuracy@set=red,layer=1,scale=-1,direction=random"] == 1.0


def test_best_layer_is_chosen_on_the_fit_half_and_scored_on_the_other(tmp_path, trained, tokenizer):
    """Layer 0 separates the eval items perfectly and the fit items not at all; layer 1 the reverse.
    The best layer is 1 (the fit half decides, whatever the eval items would say), and its reported
    AUC is the eval half's, computed here with scikit-learn."""
    from sklearn.metrics import roc_auc_score

    from mnemoscope.engine.activations import Activations

    engine = Engine(trained, tokenizer)
    cfg = _cfg(tmp_path, layers=[0, 1], steer_layers=[], ablate=False)
    for key in ("a", "b"):  # prompts only: no sweep, the choice of layer is what is tested
        with open(cfg["mechanisms"][key], "w") as f:
            f.writelines(json.dumps({"prompt": p}) + "\n" for p, _ in (A if key == "a" else B))
    ctx = Context(n_boot=50)
    plan = mech.plan(mech.read(cfg, ctx), engine, ctx)
    y = np.array([x["label"] for x in plan.items])
    fit = np.array([x["split"] == "fit" for x in plan.items])
    rng = np.random.default_rng(0)
    values = rng.normal(scale=0.1, size=(len(y), 2, engine.hidden_size)).astype(np.float32)
    sign = np.where(y == 1, 1.0, -1.0)
    values[~fit, 0, 0] += 3 * sign[~fit]  # layer 0: only the eval items separate
    values[fit, 1, 0] += 3 * sign[fit]  # layer 1: only the fit items separate
    values[fit, 0, 1] += np.array([1.0, -1.0, 1.0, -1.0])  # layer 0, fit half: within-set spread, no class signal
    engine.activations = lambda features, layers, position: Activations(list(layers), values, position)
    result = mech.measure(plan, engine, ctx)
    m = result.metrics
    assert m["mechanisms/probe/fit_auc@layer=1"] == 1.0 > m["mechanisms/probe/fit_auc@layer=0"]
    assert m["mechanisms/best_layer"] == 1.0
    r = result.directions[1]
    want = roc_auc_score(y[~fit], values[~fit, 1] @ r)
    assert m["mechanisms/best_layer/auc"] == pytest.approx(want)
    assert m["mechanisms/best_layer/auc/ci_lo"] <= want <= m["mechanisms/best_layer/auc/ci_hi"]
    assert "held-out AUC" in mech.headline(m)[0]
    cfg["mechanisms"]["fit_fraction"] = 1.0
    whole = mech.measure(mech.plan(mech.read(cfg, ctx), engine, ctx), engine, ctx)
    assert whole.metrics["mechanisms/best_layer/auc"] is None and "no held-out" in whole.notes["mechanisms/best_layer/auc"]


def test_direction_is_the_hand_computed_difference_of_fit_means(tmp_path, trained, tokenizer):
    engine = Engine(trained, tokenizer)
    cfg = _cfg(tmp_path, steer_layers=[], alphas=[0.0, 1.0], ablate=False)
    result = _run(cfg, engine)
    fit = result.samples["split"] == "fit"
    prompts = [p for p, _ in A + B]
    h = engine.activations(prompts, layers=[0], position="last").at(0).astype(np.float64)
    red = (result.samples["set"] == "red").to_numpy()
    r = h[fit & red].mean(0) - h[fit & ~red].mean(0)
    np.testing.assert_allclose(result.directions[0], r / np.linalg.norm(r), atol=1e-6)
    best = int(result.metrics["mechanisms/best_layer"])
    assert set(result.tables["sweep"]["layer"]) == {best}


def test_saved_model_and_direction_reuse(tmp_path, trained, tokenizer):
    path = tmp_path / "model"
    trained.save_pretrained(path)
    tokenizer.save_pretrained(path)
    loaded = load_model(str(path), device="cpu", dtype="float32")
    engine = Engine.from_loaded(loaded)
    result = _run(_cfg(tmp_path, ablate=False), engine)
    folder = mech.save(result, tmp_path / "run")
    again = _run(_cfg(tmp_path, direction=str(folder / "directions.safetensors"), steer_layers=[]), engine)
    assert set(again.tables["sweep"]["layer"]) == {-1, 0, 1}  # the file's layers
    np.testing.assert_allclose(again.directions[0], result.directions[0])
    # the same weights saved under another name are another model
    other = tmp_path / "other"
    trained.save_pretrained(other)
    tokenizer.save_pretrained(other)
    elsewhere = Engine.from_loaded(load_model(str(other), device="cpu", dtype="float32"))
    cfg = _cfg(tmp_path, direction=str(folder / "directions.safetensors"))
    with pytest.raises(MnemoscopeError, match="computed on"):
        mech.plan(mech.read(cfg, Context()), elsewhere, Context())


def test_without_answers_no_sweep(tmp_path, trained, tokenizer):
    for name, items in (("a", A), ("b", B)):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps({"prompt": p}) + "\n" for p, _ in items)
    cfg = copy.deepcopy(mech.DEFAULTS)
    cfg["mechanisms"].update(a=str(tmp_path / "a.jsonl"), b=str(tmp_path / "b.jsonl"), position="mean")
    result = _run(cfg, Engine(trained, tokenizer))
    assert result.metrics["mechanisms/steer/shift"] is None and "answer" in result.notes["mechanisms/steer/shift"]
    assert "mechanisms/probe/auc@layer=0" in result.metrics and result.tables["sweep"].empty


def test_bad_input(tmp_path, trained, tokenizer):
    engine = Engine(trained, tokenizer)
    ctx = Context()

    def fails(match, cfg=None, **changes):
        cfg = cfg or _cfg(tmp_path, **changes)
        with pytest.raises(MnemoscopeError, match=match):
            mech.plan(mech.read(cfg, ctx), engine, ctx)

    fails("at least 2", a=_write(tmp_path / "one.jsonl", A[:1]))
    fails("both sets", b=_write(tmp_path / "overlap.jsonl", B[:2] + A[:1]))
    fails("out of range", layers=[0, 2])
    fails("out of range", steer_layers=[-2])
    fails("position", position="first")
    fails("method", method="svm")
    fails("fit_fraction", fit_fraction=0.0)
    fails("alphas", alphas=[])
    fails("scales", scales=[float("nan")])
    fails("interventions", interventions=["add", "steer"])
    fails("interventions", interventions=[])
    fails("differ", a_name="x", b_name="x")
    fails("both prompt sets", b="")
    with open(tmp_path / "mixed.jsonl", "w") as f:
        f.write(json.dumps({"prompt": "p one", "answer": "x"}) + "\n" + json.dumps({"prompt": "p two"}) + "\n")
    fails("answer or none", b=str(tmp_path / "mixed.jsonl"))
    # a direction of another hidden size
    save_directions(tmp_path / "narrow.safetensors", {0: np.ones(32)},
                    {**model_identity(trained), "hidden_size": 32, "position": "last"})
    fails("hidden size 32", direction=str(tmp_path / "narrow.safetensors"))
    fails("not found", direction=str(tmp_path / "missing.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    fails("not a readable", direction=str(tmp_path / "junk.safetensors"))
    # an architecture whose blocks cannot be found

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            from transformers import PretrainedConfig
            self.config = PretrainedConfig(num_hidden_layers=2)
            self.w = torch.nn.Linear(2, 2)

    with pytest.raises(MnemoscopeError, match="decoder blocks of Odd"):
        mech.plan(mech.read(_cfg(tmp_path), ctx), Engine(Odd(), tokenizer), ctx)
    from mnemoscope.engine import Backend

    class Bare(Backend):  # a backend that can score and generate but not look inside
        name = "bare"
        provides = frozenset({"logprobs", "generate"})

    with pytest.raises(MnemoscopeError, match="needs 'activations'"):
        mech.plan(mech.read(_cfg(tmp_path), ctx), Bare(tokenizer), ctx)
    assert not (tmp_path / "run").exists()  # nothing was written by any of these
    assert mech.read(copy.deepcopy(mech.DEFAULTS), ctx) is None
