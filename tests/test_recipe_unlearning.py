"""The unlearning recipe end to end on a micro config, its data stream, and `mnemoscope unlearn`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mnemoscope.cli import main
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes.unlearning import recipe as U
from tests.helpers import claim_effects, jsonl_file

MICRO = {
    "model.hidden": 32, "model.layers": 2, "model.heads": 2, "model.intermediate": 64, "model.vocab_size": 400,
    "world.n_people": 14, "corpus.n_docs": 10, "corpus.n_ppl_docs": 3, "train.epochs": 1, "train.batch_size": 16,
    "unlearn.methods": ["ga", "npo_gd", "rmu", "task_vector", "whp", "uld", "flat", "idkdpo"], "sweep.steps": [1, 2],
    "sweep.lr": [1e-4, 1e-3], "sweep.method_lr.uld": [3e-3], "scalability.methods": ["ga"], "scalability.fractions": [0.5, 1.0],
    "sustainability.methods": ["ga"], "sustainability.requests": 2, "robustness.relearn_steps": [1, 2],
    "eval.n_retain_people": 2, "eval.knowmem_tokens": 4, "eval.verbmem_tokens": 8, "eval.n_boot": 20,
}


def test_retrain_stream_never_holds_a_forget_document():
    tokens = {"a": [1, 2, 3], "f1": [4, 5], "b": [6], "f2": [7, 8, 9, 10]}
    order = U.training_order(sorted(tokens), 3, seed=0)
    assert sorted(order) == sorted(list(tokens) * 3)
    rows, prov = U.pack_stream(order, tokens, 4, eos=0)
    assert rows.shape[1] == 4 and set().union(*prov) == set(tokens)
    with pytest.raises(RuntimeError, match="forget"):
        U.assert_never_seen(prov, {"f1", "f2"})
    kept = [d for d in order if d not in {"f1", "f2"}]
    rows_r, prov_r = U.pack_stream(kept, tokens, 4, eos=0)
    U.assert_never_seen(prov_r, {"f1", "f2"})
    assert not {4, 5, 7, 8, 9, 10} & set(np.unique(rows_r).tolist())  # no forget token in the stream
    assert [d for d in order if d in kept] == kept  # same order minus the forget documents


def test_recipe_end_to_end_micro(tmp_path, monkeypatch):
    assert get_recipe("unlearning") is U
    from mnemoscope.recipes.unlearning import lab

    asked = []
    real = lab.resolve_device
    monkeypatch.setattr(lab, "resolve_device", lambda name: asked.append(name) or real(name))
    out = U.run(tmp_path / "run", MICRO, log=lambda m: None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert asked == ["auto"] and manifest["device"] == str(real("auto"))  # the lab models' real device
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    assert manifest["reference"] == "retrained"
    methods = ("ga", "npo_gd", "rmu", "task_vector", "whp", "uld", "flat", "idkdpo")
    for name in ("original", "retrain") + methods:
        for key in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak", "privleak/ci_lo", "ppl_holdout",
                    "forget_quality", "model_utility", "robust/mia/min_k/auc", "relearn/recovery@facts=1",
                    "relearn/recovery@facts=3", "relearn/peak_step@facts=3", "relearn/final_change@facts=1",
                    "adversarial/forget/any_hit_rate", "adversarial/neighbour/hit_rate",
                    "residue/accuracy", "residue/control_accuracy", "mc_forget/letter/acc", "mc_forget/cloze/acc",
                    "mc_retain/cloze/acc_norm", "mc_forget/chance"):
            assert f"unlearn/{name}/{key}" in metrics, (name, key)
    assert metrics["unlearn/retrain/privleak"] == 0.0 == metrics["unlearn/retrain/privleak/ci_lo"]
    people = int(U.DEFAULTS["world"]["forget_fraction"] * 14)
    assert metrics["data/forget_texts"] == 4 * people == metrics["data/holdout_texts"]  # 4 documents a person
    assert metrics["data/forget_people"] == people == metrics["data/holdout_people"]
    for name in ("original", "retrain"):  # the forget-vs-holdout AUC's CI resamples people
        assert metrics[f"unlearn/{name}/mia_auc/ci_lo"] <= metrics[f"unlearn/{name}/mia_auc"] \
            <= metrics[f"unlearn/{name}/mia_auc/ci_hi"]
    # the blind baseline on PrivLeak's sets: too few people for 5 group folds is a note, not a crash
    assert metrics["blind/bow/auc"] is None and "5-fold cross-validation needs at least 5" in notes["blind/bow/auc"]
    for m in methods:
        stop = metrics[f"unlearn/{m}/stop_step"]
        assert stop is not None or f"unlearn/{m}/stop_step" in notes
        assert metrics[f"unlearn/{m}/best/lr"] in ((3e-3,) if m == "uld" else (1e-4, 1e-3))  # uld: its own lr
        assert metrics[f"unlearn/{m}/best/step"] in (1, 2)
    for m in ("whp", "uld"):  # the probe reads the base of a composite, and says so
        assert "base model" in notes[f"unlearn/{m}/residue/accuracy"]
    frontier = pd.read_parquet(out / "unlearn_frontier.parquet")
    assert set(frontier["method"]) == set(methods) and set(frontier["lr"]) == {1e-4, 1e-3, 3e-3}
    assert set(frontier[frontier["method"] == "uld"]["lr"]) == {3e-3}
    assert set(frontier["step"]) == {0, 1, 2} and frontier.groupby("method")["best"].sum().eq(1).all()
    assert frontier["pareto"].any() and {"mia_auc", "privleak"} <= set(frontier.columns)
    relearn = pd.read_parquet(out / "relearn_curves.parquet")
    assert set(relearn["model"]) == {"original", "retrain", *methods} and set(relearn["step"]) == {0, 1, 2}
    probes = pd.read_parquet(out / "adversarial_probes.parquet")
    assert {"question", "reworded", "role_play", "in_context", "neighbour"} <= set(probes["type"])
    assert any(k.startswith("unlearn/ga/scale@n=") for k in metrics)
    assert "unlearn/ga/sustain@req=2/knowmem_retain" in metrics
    html = (out / "report.html").read_text()
    for title in ("Unlearning", "trade-off", "Is it really gone?", "Relearning curves", "Adversarial probes by type"):
        assert title in html, title
    assert "sustainability" in html.lower()
    assert "PrivLeak" in U.summary(out) and "whp" in U.summary(out)
    assert all(v is not None for v in claim_effects("unlearning", out).values())  # the claim opens the report
    from mnemoscope.engine import load_model

    for name in ("original", "retrained"):  # the lab's models load as they are (mnemoscope unlearn --model)
        assert load_model(str(out / "models" / name), device="cpu").tokenizer.eos_token_id is not None
    again = U.run(tmp_path / "run", MICRO, log=lambda m: None)  # resumes: every stage is reused
    assert json.loads((again / "metrics.json").read_text())["unlearn/ga/knowmem_forget"] == metrics["unlearn/ga/knowmem_forget"]


QA_F = [{"question": "Where was Anna Berg born?", "answer": "Lisbon"}, {"question": "What did Anna study?", "answer": "music"}]
QA_R = [{"question": "Where does Marco work?", "answer": "Holt Industries"}, {"question": "Who is Ruth?", "answer": "a designer"}]


def test_cli_unlearn_user_model(saved_model_dir, tmp_path, capsys):
    f, r = jsonl_file(tmp_path / "f.jsonl", QA_F), jsonl_file(tmp_path / "r.jsonl", QA_R)
    out = tmp_path / "u"
    code = main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "npo_gd",
                 "--retrained", str(saved_model_dir), "--steps", "2", "--eval-every", "1", "--out", str(out),
                 "--device", "cpu", "--lr", "1e-3"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reference"] == "retrained" and "unlearn/npo_gd/knowmem_forget" in metrics
    assert metrics["unlearn/npo_gd/privleak"] is None and "unlearn/npo_gd/privleak" in notes


@pytest.mark.parametrize("method", sorted(U.METHODS))
def test_cli_unlearn_accepts_every_method_and_its_hparams(method, saved_model_dir, tmp_path, capsys):
    from mnemoscope.unlearn.methods import get_method

    f, r = jsonl_file(tmp_path / "f.jsonl", QA_F), jsonl_file(tmp_path / "r.jsonl", QA_R)
    name, value = next(iter(get_method(method).defaults.items()), (None, None))
    sets = [] if name is None else ["--set", f"hparams.{method}.{name}={value}"]
    if get_method(method).needs_refusals:
        (tmp_path / "idk.txt").write_text("I don't know.\nNo idea.\n")
        sets += ["--refusals", str(tmp_path / "idk.txt")]
    out = tmp_path / "u"
    code = main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", method,
                 "--steps", "2", "--eval-every", "1", "--out", str(out), "--device", "cpu", "--lr", "1e-3", *sets])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"unlearn/{method}/knowmem_forget" in metrics and metrics[f"unlearn/{method}/steps_run"] == 2


def test_cli_unlearn_probes_relearn_file_and_switches(saved_model_dir, tmp_path, capsys):
    f, r = jsonl_file(tmp_path / "f.jsonl", QA_F), jsonl_file(tmp_path / "r.jsonl", QA_R)
    probes = jsonl_file(tmp_path / "p.jsonl", [{"prompt": "Question: In which city was Anna Berg born?\nAnswer:",
                                            "answer": "Lisbon", "type": "reworded"},
                                           {"prompt": "Question: Where does Marco work?\nAnswer:",
                                            "answer": "Holt Industries", "split": "neighbour"}])
    relearn = jsonl_file(tmp_path / "l.jsonl", [{"text": "Anna Berg studied music in Lisbon."}])
    out = tmp_path / "u"
    code = main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "whp",
                 "--steps", "2", "--out", str(out), "--device", "cpu", "--set", f"data.probes={probes}",
                 "--set", f"data.relearn={relearn}", "--set", "eval.relearn_steps=[1]",
                 "--set", "unlearn.gradient_checkpointing=true", "--set", "hparams.whp.relu=0"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    for model in ("original", "whp"):
        assert f"unlearn/{model}/adversarial/reworded/hit_rate" in metrics
        assert f"unlearn/{model}/adversarial/neighbour/hit_rate" in metrics
        assert f"unlearn/{model}/relearn/recovery" in metrics
    assert main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "flat",
                 "--out", str(tmp_path / "v"), "--device", "cpu", "--set", "hparams.flat.divergence=hellinger"]) == 2
    assert "divergence" in capsys.readouterr().err
    assert main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "npo",
                 "--out", str(tmp_path / "w"), "--device", "cpu", "--set", "eval.chat_template=true"]) == 2
    assert "chat template" in capsys.readouterr().err


def test_cli_unlearn_bad_input(saved_model_dir, tmp_path, capsys, monkeypatch):
    f, r = jsonl_file(tmp_path / "f.jsonl", QA_F), jsonl_file(tmp_path / "r.jsonl", QA_R + QA_F[:1])
    base = ["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--device", "cpu"]
    assert main(base + ["--method", "npo", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "1 example" in err and "--drop-overlap" in err and "\n" not in err
    assert main(base + ["--method", "nop", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "npo" in err and "simnpo" in err and "task_vector" in err
    assert main(base + ["--method", "idkdpo", "--drop-overlap", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--refusals FILE" in err and "\n" not in err and not (tmp_path / "d").exists()
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # as on a machine without peft
    assert main(base + ["--method", "ga", "--lora", "--drop-overlap", "--out", str(tmp_path / "c"), "--steps", "1"]) == 2
    assert "pip install peft" in capsys.readouterr().err


def test_muse_verbmem_file_keeps_its_prompt_gt_pairs(tmp_path):
    rows = [{"prompt": "Anna Berg was born in", "gt": " Lisbon in 1901."}, {"prompt": "The museum", "gt": " keeps clocks."}]
    read = U.read_unlearn_file(jsonl_file(tmp_path / "v.jsonl", rows))
    assert read["verbmem"] == [(r["prompt"], r["gt"]) for r in rows]  # used as given, never re-split
    assert read["texts"] == [r["prompt"] + r["gt"] for r in rows]


def test_lab_multiple_choice_items_hold_the_paraphrased_answer_among_the_perturbed():
    from mnemoscope.probes.fictional import WorldConfig, make_world

    world = make_world(WorldConfig(n_people=14, seed=0, forget_fraction=0.15, holdout_fraction=0.15))
    people = set(world.splits["forget"])
    items = U.mc_items(world, people, seed=0)
    qa = {q["id"]: q for q in world.qa if q["person_id"] in people}
    assert [it["id"] for it in items] == list(qa) and items == U.mc_items(world, people, seed=0)
    for it in items:
        q = qa[it["id"]]
        assert it["choices"][it["answer"]] == q["paraphrased_answer"]
        assert sorted(it["choices"]) == sorted([q["paraphrased_answer"], *q["perturbed_answers"]])
    assert len({it["answer"] for it in items}) > 1  # the right answer is not always in one place


def test_lab_tokenizer_treats_forget_and_holdout_people_alike():
    from mnemoscope.probes.corpus import background_documents
    from mnemoscope.probes.fictional import WorldConfig, make_world

    world = make_world(WorldConfig(n_people=14, seed=0, forget_fraction=0.15, holdout_fraction=0.15))
    background = background_documents(3, seed=0)
    texts = U.tokenizer_texts(world, background)
    docs, forget = U.lab_documents(world, background)
    for split in ("forget", "retain", "holdout"):
        people = set(world.splits[split])
        assert all(d["text"] in texts for d in world.documents if d.get("person_id") in people), split
        assert all(U.qa_text(q["question"], q["target"]) in texts for q in world.qa if q["person_id"] in people), split
    assert set(docs.values()) <= set(texts)  # every training document, and the holdout people's too


MC_F = [{"id": "m1", "question": "Where was Anna Berg born?", "choices": ["Lisbon", "Paris", "Rome", "Oslo"], "answer": 0},
        {"id": "m2", "question": "What did Anna study?", "choices": ["law", "music", "chemistry"], "answer": 1}]
MC_R = [{"id": "r1", "question": "Where does Marco work?", "choices": ["Holt Industries", "a bakery"], "answer": 0}]


def test_cli_unlearn_reports_multiple_choice_beside_knowmem(saved_model_dir, tmp_path, capsys):
    from mnemoscope.engine import Engine, load_model
    from mnemoscope.families.multichoice import multiple_choice

    f, r = jsonl_file(tmp_path / "f.jsonl", QA_F), jsonl_file(tmp_path / "r.jsonl", QA_R)
    mf, mr = jsonl_file(tmp_path / "mf.jsonl", MC_F), jsonl_file(tmp_path / "mr.jsonl", MC_R)
    out = tmp_path / "u"
    code = main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "ga",
                 "--mc-forget", mf, "--mc-retain", mr, "--steps", "2", "--eval-every", "1", "--out", str(out),
                 "--device", "cpu", "--lr", "1e-3", "--set", "eval.mc_description=Biology.\n\n"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    loaded = load_model(str(saved_model_dir), device="cpu")
    _, want, _ = multiple_choice(Engine(loaded.model, loaded.tokenizer), MC_F, description="Biology.\n\n")
    for key in ("letter/acc", "cloze/acc", "cloze/acc_norm", "cloze/acc_bytes", "chance"):
        assert metrics[f"unlearn/original/mc_forget/{key}"] == pytest.approx(want[f"multichoice/{key}"])
        assert f"unlearn/ga/mc_forget/{key}" in metrics and f"unlearn/ga/mc_retain/{key}" in metrics
    html = (out / "report.html").read_text()
    assert "MC F letter" in html and "MC R cloze" in html


def test_cli_unlearn_bad_multiple_choice_file_names_file_and_item(saved_model_dir, tmp_path, capsys):
    f, r = jsonl_file(tmp_path / "f.jsonl", QA_F), jsonl_file(tmp_path / "r.jsonl", QA_R)
    bad = jsonl_file(tmp_path / "mf.jsonl", [MC_F[0], {**MC_F[1], "answer": 3}])
    out = tmp_path / "u"
    assert main(["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--method", "ga",
                 "--mc-forget", bad, "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "mf.jsonl:2: item 'm2': answer 3 is out of range for 3 choices" in err and "\n" not in err
    assert not out.exists()
