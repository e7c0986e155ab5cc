"""The unlearning recipe end to end on a micro config, its data stream, and `mnemoscope unlearn`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnemoscope.cli import main
from mnemoscope.recipes import get_recipe
from mnemoscope.recipes import unlearning as U

MICRO = {
    "model.hidden": 32, "model.layers": 2, "model.heads": 2, "model.intermediate": 64, "model.vocab_size": 400,
    "world.n_people": 14, "corpus.n_docs": 10, "corpus.n_ppl_docs": 3, "train.epochs": 1, "train.batch_size": 16,
    "unlearn.methods": ["ga", "npo_gd", "rmu", "task_vector"], "unlearn.steps": 2, "unlearn.eval_every": 1,
    "scalability.methods": ["ga"], "scalability.fractions": [0.5, 1.0], "sustainability.methods": ["ga"],
    "sustainability.requests": 2, "robustness.relearn_steps": 1, "eval.n_retain_people": 2, "eval.knowmem_tokens": 4,
    "eval.verbmem_tokens": 8, "eval.n_boot": 20,
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
    asked = []
    real = U.resolve_device
    monkeypatch.setattr(U, "resolve_device", lambda name: asked.append(name) or real(name))
    out = U.run(tmp_path / "run", MICRO, log=lambda m: None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert asked == ["auto"] and manifest["device"] == str(real("auto"))  # the lab models' real device
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    assert manifest["reference"] == "retrained"
    for name in ("original", "retrain", "ga", "npo_gd", "rmu", "task_vector"):
        for key in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak", "ppl_holdout",
                    "forget_quality", "model_utility", "robust/mia/min_k/auc", "relearn/recovery"):
            assert f"unlearn/{name}/{key}" in metrics, (name, key)
    assert metrics["unlearn/retrain/privleak"] == 0.0
    for m in ("ga", "npo_gd", "rmu", "task_vector"):
        stop = metrics[f"unlearn/{m}/stop_step"]
        assert stop is not None or f"unlearn/{m}/stop_step" in notes
    assert any(k.startswith("unlearn/ga/scale@n=") for k in metrics)
    assert "unlearn/ga/sustain@req=2/knowmem_retain" in metrics
    html = (out / "report.html").read_text()
    assert "Unlearning" in html and "trade-off" in html and "sustainability" in html.lower()
    again = U.run(tmp_path / "run", MICRO, log=lambda m: None)  # resumes: every stage is reused
    assert json.loads((again / "metrics.json").read_text())["unlearn/ga/knowmem_forget"] == metrics["unlearn/ga/knowmem_forget"]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


QA_F = [{"question": "Where was Anna Berg born?", "answer": "Lisbon"}, {"question": "What did Anna study?", "answer": "music"}]
QA_R = [{"question": "Where does Marco work?", "answer": "Holt Industries"}, {"question": "Who is Ruth?", "answer": "a designer"}]


def test_cli_unlearn_user_model(saved_model_dir, tmp_path, capsys):
    f, r = _jsonl(tmp_path / "f.jsonl", QA_F), _jsonl(tmp_path / "r.jsonl", QA_R)
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


def test_cli_unlearn_bad_input(saved_model_dir, tmp_path, capsys, monkeypatch):
    f, r = _jsonl(tmp_path / "f.jsonl", QA_F), _jsonl(tmp_path / "r.jsonl", QA_R + QA_F[:1])
    base = ["unlearn", "--model", str(saved_model_dir), "--forget", f, "--retain", r, "--device", "cpu"]
    assert main(base + ["--method", "npo", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "1 example" in err and "--drop-overlap" in err and "\n" not in err
    assert main(base + ["--method", "nop", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "npo" in err and "simnpo" in err and "task_vector" in err
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # as on a machine without peft
    assert main(base + ["--method", "ga", "--lora", "--drop-overlap", "--out", str(tmp_path / "c"), "--steps", "1"]) == 2
    assert "pip install peft" in capsys.readouterr().err


def test_muse_verbmem_file_keeps_its_prompt_gt_pairs(tmp_path):
    rows = [{"prompt": "Anna Berg was born in", "gt": " Lisbon in 1901."}, {"prompt": "The museum", "gt": " keeps clocks."}]
    read = U.read_unlearn_file(_jsonl(tmp_path / "v.jsonl", rows))
    assert read["verbmem"] == [(r["prompt"], r["gt"]) for r in rows]  # used as given, never re-split
    assert read["texts"] == [r["prompt"] + r["gt"] for r in rows]


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
