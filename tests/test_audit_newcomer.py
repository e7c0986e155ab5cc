"""The audit as a newcomer meets it: failures leave no debris, paths are relative to the YAML,
errors name the family, record and setting, and nothing is cut or skipped in silence."""

from __future__ import annotations

import json
import os

from mnemoscope.cli import main
from mnemoscope.probes.knights_knaves import generate_puzzles, save_puzzles

from .helpers import MEMBERS, NONMEMBERS, STORY
from .test_audit_suite import _jsonl, _write_yaml


def _audit(model, config, out, *extra):
    return main(["audit", "--model", str(model), "--config", str(config), "--out", str(out), "--device", "cpu",
                 *extra])


def _clean_failure(code, capsys, out, *patterns):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for p in patterns:
        assert p in err, err
    assert not out.exists()
    return err


def test_a_puzzle_without_a_unique_solution_is_refused_before_any_work(tmp_path, wide_dirs, capsys):
    save_puzzles(tmp_path / "p.jsonl", generate_puzzles(1, 2, seed=0))
    liar = {"id": "kk-liar", "names": ["Ann"], "statements": [["knave", 0]]}  # "I am a knave": no consistent role
    with open(tmp_path / "p.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(liar) + "\n")
    config = _write_yaml(tmp_path, {"puzzles": {"file": "p.jsonl"}})
    out = tmp_path / "run"
    _clean_failure(_audit(wide_dirs[0], config, out), capsys, out, "p.jsonl", "kk-liar", "has 0 solutions")


def test_model_paths_in_a_yaml_are_relative_to_the_yaml_not_the_working_directory(tmp_path, wide_dirs,
                                                                                 monkeypatch, capsys):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "ref2").symlink_to(wide_dirs[1])
    _jsonl(tmp_path / "cfg" / "m.jsonl", [{"text": t} for t in MEMBERS])
    _jsonl(tmp_path / "cfg" / "n.jsonl", [{"text": t} for t in NONMEMBERS])
    base = {"data": {"members": "m.jsonl", "nonmembers": "n.jsonl"}, "audit": {"extraction": False, "n_boot": 20}}
    monkeypatch.chdir(tmp_path)  # ref2/ exists here, next to cfg/, not inside it
    config = _write_yaml(tmp_path / "cfg", {**base, "membership": {"ref_model": "ref2"}})
    out = tmp_path / "run"
    _clean_failure(_audit(wide_dirs[0], config, out), capsys, out, "membership.ref_model 'ref2'",
                   "relative to its folder")
    config = _write_yaml(tmp_path / "cfg", {**base, "membership": {"ref_model": "../ref2"}})
    assert _audit(wide_dirs[0], config, out) == 0
    assert json.loads((out / "metrics.json").read_text())["mia/ref/auc"] is not None


def test_a_sort_excerpt_longer_than_the_context_names_the_family_record_and_setting(tmp_path, wide_dirs, capsys):
    _jsonl(tmp_path / "story.jsonl", [{"text": " ".join([STORY] * 6)}])
    config = _write_yaml(tmp_path, {"sort": {"texts": "story.jsonl", "segment_words": 20, "n_pairs": 2}})
    out = tmp_path / "run"
    err = _clean_failure(_audit(wide_dirs[0], config, out, "--truncation", "truncate"), capsys, out,
                         "sort record", "prompts are never cut", "sort.excerpt_words")
    assert "context is 512" in err


def test_every_table_carries_ids_and_texts_to_join_on(tmp_path, wide_dirs):
    import pandas as pd

    _jsonl(tmp_path / "m.jsonl", [{"id": f"m{i}", "text": t} for i, t in enumerate(MEMBERS)])
    config = _write_yaml(tmp_path, {"extraction": {"texts": "m.jsonl", "prefix_lengths": [2], "suffix_len": 3,
                                                   "pythia": True, "pythia_prefix": 2, "pythia_suffix": 3},
                                    "recall": {"texts": "m.jsonl"}})
    out = tmp_path / "run"
    assert _audit(wide_dirs[0], config, out) == 0
    for family in ("extraction", "pythia", "recall"):
        frame = pd.read_parquet(out / "family_samples" / f"{family}.parquet")
        assert frame["id"].tolist()[:2] == ["m0", "m1"] and frame["text"].tolist()[0] == MEMBERS[0], family


def _full_example() -> str:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")
    start = doc.index("A full example")
    block = doc[doc.index("```yaml\n", start) + len("```yaml\n"):]
    return block[: block.index("```")]


def test_the_full_example_in_the_docs_names_every_key_and_runs_as_written(tmp_path, wide_dirs, capsys):
    import yaml

    from mnemoscope.config import flatten
    from mnemoscope.recipes.audit import recipe as audit

    text = _full_example()
    cfg = yaml.safe_load(text)
    assert set(flatten(audit.DEFAULTS)) - {"model.name"} == set(flatten(cfg)), "docs/formats.md is incomplete"
    d = tmp_path / "work"
    d.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "ref").symlink_to(wide_dirs[1])
    long_members = [" ".join([t] * 12) for t in MEMBERS]  # long enough for prefix 64 + suffix 50
    _jsonl(d / "members.jsonl", [{"id": f"m{i}", "text": t} for i, t in enumerate(long_members)])
    (d / "order.txt").write_text("".join(f"m{i}\n" for i in range(len(long_members))))
    _jsonl(d / "corpus.jsonl", [{"text": t} for t in long_members + NONMEMBERS])
    _jsonl(d / "acr.jsonl", [{"id": "a0", "text": " studied music.", "prompt": "Anna Berg"}])
    _jsonl(d / "reasoning.jsonl", [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(8)])
    _jsonl(d / "memory.jsonl", [{"prompt": f"Where was {t.split()[0]} born?", "answer": "Lisbon"}
                                for t in MEMBERS + NONMEMBERS])
    _jsonl(d / "nonmembers.jsonl", [{"text": t} for t in NONMEMBERS])  # short: ReCaLL conditions on them
    _jsonl(d / "pool.jsonl", [{"text": t} for t in NONMEMBERS])
    _jsonl(d / "verbmem.jsonl", [{"prompt": "The museum in Alder keeps", "gt": " a collection of old clocks."}])
    _jsonl(d / "qa.jsonl", [{"question": "Where was Anna Berg born?", "answer": "Lisbon"},
                            {"question": "What does the museum keep?", "answer": "old clocks"}])
    _jsonl(d / "mc.jsonl", [{"question": "Where was Anna Berg born?", "choices": ["Lisbon", "Porto"], "answer": 0}])
    _jsonl(d / "tofu.jsonl", [{"question": "Where was Anna Berg born?", "answer": "In Lisbon.",
                               "paraphrased_answer": "Lisbon is her birthplace.", "perturbed_answer": ["In Porto."]}])
    _jsonl(d / "probes.jsonl", [{"prefix": "Anna Berg was born in", "target": " Lisbon"}])
    _jsonl(d / "story.jsonl", [{"text": STORY}])
    save_puzzles(d / "puzzles.jsonl", generate_puzzles(2, 2, seed=0))
    (d / "audit.yaml").write_text(text.replace("n_boot: 1000", "n_boot: 50"), encoding="utf-8")  # faster CI
    out = tmp_path / "run"
    assert _audit(wide_dirs[0], d / "audit.yaml", out) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mia/min_k_pp/auc", "mia/nll_ratio/auc", "extraction/exact/rate@prefix=64",
                "extraction/pythia/score/mean", "verbmem/rouge_l_f1/mean", "knowmem/rouge_l_f1/mean",
                "multichoice/letter/acc", "multichoice/cloze/acc", "tofu/probability/mean", "target/nll/mean", "recognition/2afc/accuracy@foil=novel",
                "recall/match_rate/mean",
                "sort/short_term/accuracy", "reasoning/kk/accuracy", "reasoning/limem/acc@perturb=statement",
                "mia/neighbourhood/auc", "mia/recall/auc", "mia/dcpdd/auc", "approx/memorized/rate",
                "untargeted/extracted/rate", "acr/n", "provenance/p_value", "forecast/n", "mechanisms/best_layer"):
        assert metrics.get(key) is not None, key
    from .browser import assert_renders, find_browser

    page = (out / "report.html").read_text(encoding="utf-8")
    for title in ("Adversarial compression (ACR)", "Approximate memorization", "Untargeted extraction",
                  "Provenance (palimpsestic test)", "Forecasting memorization"):  # each family's own section
        assert f"<h2>{title}</h2>" in page, title
    if find_browser() or os.environ.get("CI"):  # every section of the full report, in a real browser
        assert_renders(out / "report.html", tmp_path)
