"""Unlearning under stress (unlearn/stress.py): evaluation under quantization, benign and
in-context relearning, knowledge restored, and both recipes end to end."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from mnemoscope.cli import main
from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.text import knowmem_prompt
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import quantize as Q
from mnemoscope.unlearn import stress as S
from mnemoscope.unlearn.runner import text_examples

from .helpers import jsonl_file

QA = [{"id": "a1", "question": "Where was Anna born?", "answer": "Lisbon"},
      {"id": "a2", "question": "What did Anna study?", "answer": "music"},
      {"id": "b1", "question": "Where does Marco work?", "answer": "Holt"},
      {"id": "a3", "question": "Who was Anna's mentor?", "answer": "Ruth"}]


def test_neighbours_by_person_and_by_file_order():
    near = S.neighbours(4, ["anna", "anna", "marco", "anna"], seed=0)
    assert sorted(near[0]) == [1, 3] and sorted(near[1]) == [0, 3] and near[2] == [] and sorted(near[3]) == [0, 1]
    assert S.neighbours(4, ["anna", "anna", "marco", "anna"], seed=0) == near  # seeded
    assert S.neighbours(4) == [[1, 2, 3], [0, 2, 3], [1, 3, 0], [2, 1, 0]]  # nearest in file order first
    with pytest.raises(MnemoscopeError, match="groups"):
        S.neighbours(3, ["a"])


def test_in_context_prompts_put_the_neighbour_facts_before_the_question():
    data = ev.EvalData(shots=[{"question": "Q0?", "answer": "A0"}])
    near = [[1, 3], [0, 3], [], [0, 1]]
    one = S.in_context_prompts(QA, near, 1, data)
    assert one[0] == knowmem_prompt([("Q0?", "A0"), ("What did Anna study?", "music")], "Where was Anna born?")
    assert one[2] == knowmem_prompt([("Q0?", "A0")], "Where does Marco work?")  # no neighbour: the plain prompt
    two = S.in_context_prompts(QA, near, 2, data)
    assert "Ruth" in two[0] and "music" in two[0] and "Lisbon" not in two[0]  # never the item's own answer
    chat = ev.EvalData(qa_prompt=lambda shots, q: f"<{len(shots)}>{q}")
    assert S.in_context_prompts(QA, near, 2, chat)[3] == "<2>Who was Anna's mentor?"


def test_restoration_by_hand_and_null_with_a_note():
    metrics = {"unlearn/original/knowmem_forget": 80.0, "unlearn/original/verbmem_forget": 50.0,
               "unlearn/original/quant@int4-group/knowmem_forget": 70.0,
               "unlearn/original/relearn/knowmem_before": 60.0, "unlearn/original/relearn/recovery@facts=1": 5.0,
               "unlearn/original/benign_retain/knowmem_before": 80.0, "unlearn/original/benign_retain/recovery": 0.0,
               "unlearn/ga/knowmem_forget": 20.0, "unlearn/ga/verbmem_forget": 50.0,
               "unlearn/ga/quant@int4-group/knowmem_forget": 65.0, "unlearn/ga/quant@int4-group/verbmem_forget": 40.0,
               "unlearn/ga/relearn/knowmem_before": 10.0, "unlearn/ga/relearn/recovery@facts=1": 20.0,
               "unlearn/ga/benign_retain/knowmem_before": 20.0, "unlearn/ga/benign_retain/recovery": 15.0}
    values, notes = S.restoration(metrics, ["original", "ga"])
    assert math.isclose(values["unlearn/ga/restored/quant@int4-group/knowmem_forget"], (65 - 20) / (80 - 20))
    assert math.isclose(values["unlearn/ga/restored/relearn@facts=1/knowmem_forget"], (30 - 10) / (60 - 10))
    assert math.isclose(values["unlearn/ga/restored/benign_retain/knowmem_forget"], 15 / 60)
    assert math.isnan(values["unlearn/ga/restored/quant@int4-group/verbmem_forget"])  # VerbMem F: 50 = 50
    assert "nothing was removed" in notes["unlearn/ga/restored/quant@int4-group/verbmem_forget"]
    assert not any(k.startswith("unlearn/original/restored") for k in values)
    assert set(notes) == {"unlearn/ga/restored/quant@int4-group/verbmem_forget"}
    table = S.summary({**metrics, **values}).splitlines()  # the CLI's closing table
    assert table[-2].split() == ["model", "int4-group", "relearn-1", "benign-retain"]
    assert table[-1].split() == ["ga", "0.75", "0.40", "0.25"]
    assert S.summary(metrics) == ""


def test_settings_refuse_bad_values_in_one_line():
    good = copy.deepcopy(S.LAB_DEFAULTS)
    conf = S.settings(good, "cpu", ("retain", "background"))
    assert [m.name for m in conf.modes] == ["int8-channel", "int4-channel", "int4-group"] and conf.facts == [1, 2, 4]
    assert conf.modes[2].group_size == 32
    for path, value, match in ((("benign", "sources"), ["retain", "forget"], "unknown source 'forget'"),
                               (("benign", "steps"), [0, 5], "whole number ≥ 1"),
                               (("in_context", "facts"), [1.5], "whole number ≥ 1"),
                               (("benign", "lr"), 0.0, "lr must be"),
                               (("quantize", "max_retain_texts"), 0, "whole number ≥ 1"),
                               (("quantize", "modes"), ["gptq"], "unknown quantization mode"),
                               (("quantize", "modes"), ["bnb-nf4"], "int4-group")):
        bad = copy.deepcopy(S.LAB_DEFAULTS)
        bad[path[0]][path[1]] = value
        with pytest.raises(MnemoscopeError, match=match) as info:
            S.settings(bad, "cpu", ("retain", "background"))
        assert "\n" not in str(info.value)


def test_quantized_eval_measures_the_quantized_weights(model, tokenizer, corpus):
    corpus = [" ".join(t.split()[:25]) for t in corpus[:15]]  # within the micro model's context
    data = ev.EvalData(forget_qa=QA[:2], retain_qa=QA[2:], forget_texts=corpus[:6], holdout_texts=corpus[6:12],
                       knowmem_tokens=4, verbmem_tokens=6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mode = Q.parse_mode("int2-channel")
    values, notes = S.quantized_eval(model, tokenizer, data, None, [mode], corpus[12:15])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights put back
    manual = copy.deepcopy(model)
    with torch.no_grad():
        for _, module in Q.decoder_linears(manual):
            module.weight.copy_(Q.rtn(module.weight, 2))
    f = ev.min_k_scores(Engine(manual, tokenizer), data.forget_texts)
    h = ev.min_k_scores(Engine(manual, tokenizer), data.holdout_texts)
    assert values["quant@int2-channel/mia_auc"] == pytest.approx(ev.auc_forget_vs_holdout(f, h))
    assert not np.allclose(f, ev.min_k_scores(Engine(model, tokenizer), data.forget_texts))  # two bits change it
    assert values["quant@int2-channel/verbmem_retain"] == pytest.approx(S.verbmem_mean(Engine(manual, tokenizer),
                                                                                        corpus[12:15], data))
    for key in ("knowmem_forget", "knowmem_retain", "verbmem_forget"):
        assert math.isfinite(values[f"quant@int2-channel/{key}"])
    assert math.isnan(values["quant@int2-channel/privleak"]) and "retrained" in notes["quant@int2-channel/privleak"]


def test_relearn_routes_fine_tune_a_copy_and_read_the_prompts(model, tokenizer, corpus, tmp_path, monkeypatch):
    corpus = [" ".join(t.split()[:25]) for t in corpus[:8]]
    data = ev.EvalData(forget_qa=QA, knowmem_tokens=3)
    conf = S.Settings(sources=["retain", "background"], steps=[1, 2], lr=1e-3, facts=[1, 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    real = Engine.generate

    def spy(self, prompts, **kw):
        seen.append([self.decode(p) if not isinstance(p, str) else p for p in prompts])
        return real(self, prompts, **kw)

    monkeypatch.setattr(Engine, "generate", spy)
    near = S.neighbours(4, ["a", "a", "m", "a"])
    values, notes, rows = S.relearn_routes(model, tokenizer, data, conf,
                                           {"retain": text_examples(corpus[:8]), "background": []}, near, tmp_path,
                                           batch_size=2, max_length=64)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the attack ran on a copy
    frame = pd.DataFrame(rows)
    assert set(frame[frame["route"] == "benign_retain"]["step"]) == {0, 1, 2}
    assert list(frame[frame["route"] == "in_context"]["facts"]) == [0, 1, 2]
    for key in ("benign_retain/recovery", "benign_retain/knowmem@step=2", "in_context/knowmem@facts=2",
                "in_context/knowmem_before", "in_context/peak_step"):
        assert math.isfinite(values[key]), key
    assert math.isnan(values["benign_background/recovery"]) and "no background texts" in notes["benign_background/recovery"]
    assert "1 of 4 forget items" in notes["in_context/recovery"]  # Marco has no neighbour
    two = [p for batch in seen for p in batch if "Who was Anna's mentor?" in p and "Lisbon" in p and "music" in p]
    assert two  # with 2 facts, Anna's other two answers precede her third question


# --------------------------------------------------------------------------- the recipes


def test_lab_reports_quantization_and_relearning_routes(tmp_path):
    from mnemoscope.recipes.unlearning import recipe as U
    from tests.test_recipe_unlearning import MICRO

    cfg = {**MICRO, "unlearn.methods": ["ga", "whp"], "scalability.methods": [], "sustainability.methods": [],
           "stress.benign.steps": [1, 2], "stress.in_context.facts": [1, 3]}
    out = U.run(tmp_path / "run", cfg, log=lambda m: None)
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    for name in ("original", "retrain", "ga", "whp"):
        for mode in ("int8-channel", "int4-channel", "int4-group"):
            for key in ("knowmem_forget", "knowmem_retain", "verbmem_forget", "verbmem_retain", "mia_auc", "privleak"):
                assert f"unlearn/{name}/quant@{mode}/{key}" in metrics, (name, mode, key)
        for route in ("benign_retain", "benign_background", "in_context"):
            assert f"unlearn/{name}/{route}/recovery" in metrics
    for name in ("retrain", "ga", "whp"):
        for route in ("quant@int4-group", "relearn@facts=1", "relearn@facts=3", "benign_retain", "in_context"):
            key = f"unlearn/{name}/restored/{route}/knowmem_forget"
            assert key in metrics and (metrics[key] is not None or key in notes), key
    assert metrics["unlearn/retrain/quant@int8-channel/privleak"] is not None
    assert metrics["unlearn/original/quant@int4-group/weights_changed"] == 0.0
    assert 0 < metrics["unlearn/ga/quant@int4-group/weights_changed"] <= 1
    assert metrics["unlearn/whp/quant@int4-group/weights_changed"] is None  # a composite: not the original's weights
    assert "combines models" in notes["unlearn/whp/quant@int4-group/weights_changed"]
    curves = pd.read_parquet(out / "stress_curves.parquet")
    assert set(curves["model"]) == {"original", "retrain", "ga", "whp"}
    assert set(curves["route"]) == {"benign_retain", "benign_background", "in_context"}
    timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    assert timings["quantize"] > 0 and timings["stress_relearn"] > 0
    html = (out / "report.html").read_text()
    for title in ("Quantization attack", "Knowledge restored by each attack", "Benign and in-context relearning"):
        assert title in html, title


def test_cli_unlearn_reports_quantization_and_relearning(saved_model_dir, tmp_path, capsys):
    f = jsonl_file(tmp_path / "f.jsonl", QA[:2] + QA[3:])
    r = jsonl_file(tmp_path / "r.jsonl", [{"text": "Marco works at Holt Industries in the old harbour district."},
                                       {"text": "Ruth designs bridges and teaches on Thursdays."}])
    benign = jsonl_file(tmp_path / "b.jsonl", [{"text": "The river floods every spring and the town moves uphill."}])
    base = ["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "ga", "--steps", "1",
            "--device", "cpu", "--set", "eval.verbmem_tokens=8", "--set", "eval.knowmem_tokens=4"]
    out = tmp_path / "u"
    code = main(base + ["--retrained", str(saved_model_dir), "--out", str(out), "--set", f"data.benign={benign}",
                        "--set", "stress.benign.sources=[retain, benign]", "--set", "stress.benign.steps=[1]",
                        "--set", "stress.quantize.modes=[int4-group]", "--set", "stress.quantize.group_size=16"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    for name in ("original", "retrain", "ga"):
        for key in ("quant@int4-group/knowmem_forget", "quant@int4-group/verbmem_retain", "benign_retain/recovery",
                    "benign_benign/recovery", "in_context/knowmem@facts=2"):
            assert metrics.get(f"unlearn/{name}/{key}") is not None, (name, key)
        assert metrics[f"unlearn/{name}/quant@int4-group/verbmem_forget"] is None  # the forget file holds QA only
    key = "unlearn/ga/restored/quant@int4-group/knowmem_forget"
    assert key in metrics and (metrics[key] is not None or key in notes)
    assert set(pd.read_parquet(out / "stress_curves.parquet")["route"]) == {"benign_retain", "benign_benign", "in_context"}
    assert main(base + ["--out", str(tmp_path / "v"), "--set", "stress.quantize.modes=[bnb-nf4]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "int4-group" in err and "\n" not in err and not (tmp_path / "v").exists()
    assert main(base + ["--out", str(tmp_path / "w"), "--set", "stress.benign.sources=[benign]"]) == 2
    assert "unknown source 'benign'" in capsys.readouterr().err and not (tmp_path / "w").exists()
