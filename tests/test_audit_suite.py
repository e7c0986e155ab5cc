"""`mnemoscope audit` as the one-stop audit: a YAML covering every family, bad input, small sets."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import build_model
from mnemoscope.probes.knights_knaves import generate_puzzles, save_puzzles
from mnemoscope.recipes.audit import recipe as audit

from .conftest import WIDE, save_model_dir
from .helpers import MEMBERS, NONMEMBERS, STORY


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.name


def _every_family(d) -> dict:
    """Data files for every family in folder ``d``, and a YAML config naming them (relative paths)."""
    _jsonl(d / "members.jsonl", [{"text": t} for t in MEMBERS])
    _jsonl(d / "nonmembers.jsonl", [{"text": t} for t in NONMEMBERS])
    _jsonl(d / "verbmem.jsonl", [{"prompt": "The museum in Alder keeps", "gt": " a collection of old clocks."},
                                 {"prompt": "Every spring the market", "gt": " in Fern sells apples."}])
    _jsonl(d / "qa.jsonl", [{"question": "Where was Anna Berg born?", "answer": "Lisbon"},
                            {"question": "What does the museum keep?", "answer": "old clocks"},
                            {"question": "When did Marco join Holt?", "answer": "1950"}])
    _jsonl(d / "tofu.jsonl", [{"question": "Where was Anna Berg born?", "answer": "In Lisbon.",
                               "paraphrased_answer": "Lisbon is her birthplace.",
                               "perturbed_answer": ["In Porto.", "In Madrid."]},
                              {"question": "What did Anna study?", "answer": "Music.",
                               "paraphrased_answer": "She studied music.", "perturbed_answer": ["Law."]}])
    _jsonl(d / "probes.jsonl", [{"prefix": "Anna Berg was born in", "target": " Lisbon", "group": "memorization"},
                                {"prefix": "Marco joined", "target": " Holt Industries", "group": "memorization"},
                                {"prefix": "Anna's birthplace is", "target": " Lisbon", "group": "semantic"}])
    _jsonl(d / "story.jsonl", [{"text": STORY}])
    save_puzzles(d / "puzzles.jsonl", generate_puzzles(2, 2, seed=0))
    cfg = {
        "seed": 0,
        "data": {"members": "members.jsonl", "nonmembers": "nonmembers.jsonl"},
        "audit": {"n_boot": 50},
        "membership": {"ref_model": "../models/ref", "lowercase": True},
        "extraction": {"prefix_lengths": [2, 4, 600], "suffix_len": 4, "pythia": True,
                       "pythia_prefix": 4, "pythia_suffix": 4},
        "verbmem": {"file": "verbmem.jsonl", "max_new_tokens": 8},
        "knowmem": {"file": "qa.jsonl", "n_shots": 1, "max_new_tokens": 8},
        "tofu": {"file": "tofu.jsonl", "max_new_tokens": 8},
        "target": {"file": "probes.jsonl"},
        "recognition": {"seen": "members.jsonl", "foils": ["shuffled_words", "swap_word"]},
        "recall": {"texts": "members.jsonl"},
        "sort": {"texts": "story.jsonl", "segment_words": 5, "n_pairs": 4, "long_term": True},
        "puzzles": {"file": "puzzles.jsonl", "max_new_tokens": 12, "instruction": False},
    }
    return cfg


def _write_yaml(d, cfg):
    (d / "audit.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return d / "audit.yaml"


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, wide_dirs):
    target, ref = wide_dirs
    root = tmp_path_factory.mktemp("full")
    (root / "models").symlink_to(ref.parent)
    data = root / "data"
    data.mkdir()
    config = _write_yaml(data, _every_family(data))
    out = root / "run"
    code = main(["audit", "--model", str(target), "--config", str(config), "--out", str(out), "--device", "cpu"])
    assert code == 0
    return out


FAMILY_KEYS = [
    *(f"mia/{a}/auc" for a in ("loss", "zlib", "min_k", "min_k_pp", "ref", "ratio", "lowercase")),
    "extraction/exact/rate@set=member",
    "extraction/exact/rate@prefix=2", "extraction/exact/rate@prefix=4", "extraction/pythia/score/mean",
    "verbmem/rouge_l_f1/mean", "knowmem/rouge_l_f1/mean", "tofu/probability/mean", "tofu/truth_ratio/summary",
    "target/nll/mean@group=semantic", "recognition/2afc/accuracy@foil=shuffled_words",
    "recognition/2afc/accuracy@foil=swap_word", "recall/match_rate/mean", "sort/short_term/accuracy",
    "sort/long_term/accuracy", "reasoning/kk/accuracy", "reasoning/limem/n_items@perturb=statement",
]
SECTIONS = ["Membership inference", "Extraction by prefix length", "VerbMem", "KnowMem", "TOFU",
            "Target log-probability", "Recognition (two-alternative forced choice)", "Recall",
            "Sequence order recall (SORT)", "Knights and Knaves", "Notes: skipped and not computed"]


def test_every_family_writes_its_keys_samples_and_report_section(full_run):
    metrics = json.loads((full_run / "metrics.json").read_text())
    for key in FAMILY_KEYS:
        assert isinstance(metrics.get(key), (int, float)), key
    assert 0 <= metrics["recognition/2afc/accuracy"] <= 1
    assert metrics["knowmem/n"] == 2 and metrics["knowmem/n_shots"] == 1  # first QA pair used as the shot
    assert metrics["sort/short_term/n"] == 8  # 4 pairs, both orders
    html = (full_run / "report.html").read_text()
    for title in SECTIONS:
        assert title in html, title
    for family in ("extraction", "pythia", "verbmem", "knowmem", "tofu", "target", "recognition", "recall",
                   "sort", "reasoning", "limem"):
        assert len(pd.read_parquet(full_run / "family_samples" / f"{family}.parquet")) > 0, family
    samples = pd.read_parquet(full_run / "samples.parquet")
    assert list(samples["label"]) == [1] * 4 + [0] * 4
    assert {"score/ref", "score/ratio", "score/lowercase", "ref/nll_ref"} <= set(samples.columns)
    assert set(samples["ref/unit"]) == {"token"}
    manifest = json.loads((full_run / "manifest.json").read_text())
    assert "membership" in manifest["families"] and "sort" in manifest["families"]


def test_a_prefix_longer_than_the_context_is_noted_not_invented(full_run):
    metrics = json.loads((full_run / "metrics.json").read_text())
    notes = json.loads((full_run / "notes.json").read_text())
    assert [k for k in metrics if "@prefix=600" in k] == ["extraction/exact/rate@prefix=600"]
    assert metrics["extraction/exact/rate@prefix=600"] is None
    assert "prefix=600: not computed" in notes["extraction/exact/rate@prefix=600"]
    assert "context (512)" in notes["extraction/exact/rate@prefix=600"]
    assert metrics["mia/loss/tpr@fpr=0.01"] is None
    assert any("underpowered" in n for k, n in notes.items() if k.startswith("mia/"))


def test_ref_model_with_another_tokenizer_is_refused_before_anything_is_written(
        wide_dirs, tmp_path, bos_tokenizer, capsys):
    target, _ = wide_dirs
    other = save_model_dir(build_model(WIDE, bos_tokenizer, seed=2), bos_tokenizer, tmp_path / "other")
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in MEMBERS))
    (tmp_path / "n.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in NONMEMBERS))
    out = tmp_path / "run"
    code = main(["audit", "--model", str(target), "--members", str(tmp_path / "m.jsonl"), "--nonmembers",
                 str(tmp_path / "n.jsonl"), "--ref-model", str(other), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not compatible" in err and "per_byte" in err and err.count("\n") == 0
    assert not out.exists()


def test_unknown_yaml_key_names_the_file_and_the_nearest_key(tmp_path, wide_dirs, capsys):
    config = _write_yaml(tmp_path, {"knowmem": {"fle": "qa.jsonl"}})
    out = tmp_path / "run"
    assert main(["audit", "--model", str(wide_dirs[0]), "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'knowmem.fle'" in err and "audit.yaml" in err and "'knowmem.file'" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "name, content, section, pattern",
    [
        ("qa.jsonl", '{"question": "Who?", "answer": ""}\n', {"knowmem": {"file": "qa.jsonl"}},
         "qa.jsonl:1: field 'answer' is empty"),
        ("qa.jsonl", '{"question": "Who?", "reply": "Anna"}\n', {"knowmem": {"file": "qa.jsonl"}},
         "qa.jsonl:1: missing field 'answer'"),
        ("tofu.jsonl", '{"question": "Q", "answer": "A", "perturbed_answer": ["B"]}\n', {"tofu": {"file": "tofu.jsonl"}},
         "missing field 'paraphrased_answer'"),
        ("t.txt", b"caf\xe9 au lait\n", {"recall": {"texts": "t.txt"}}, "t.txt:1: not valid UTF-8"),
        ("pz.jsonl", '{"names": ["A", "B"], "statements": [["knight", 5], ["knave", 0]]}\n',
         {"puzzles": {"file": "pz.jsonl"}}, "pz.jsonl:1"),
        ("pz.jsonl", b"\xff\n", {"puzzles": {"file": "pz.jsonl"}}, "pz.jsonl:1: not valid UTF-8"),
        ("p.jsonl", '{"prefix": "Anna was born in"}\n', {"target": {"file": "p.jsonl"}}, "p.jsonl:1: missing field 'target'"),
        ("pairs.jsonl", '{"seen": "a b c", "false": "c b a"}\n', {"recognition": {"pairs": "pairs.jsonl"}},
         "pairs.jsonl:1: missing field 'foil'"),
        ("w.jsonl", '{"input": "some text", "label": 1}\n', {"data": {"wikimia": "w.jsonl"}}, "no non-members"),
        ("s.jsonl", '{"text": "one two three four five six seven eight"}\n',
         {"sort": {"texts": "s.jsonl", "segment_words": 0}}, "sort.segment_words must be ≥ 1"),
    ],
)
def test_a_bad_file_in_the_yaml_fails_with_one_line_and_no_run_dir(
        tmp_path, wide_dirs, capsys, name, content, section, pattern):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    config = _write_yaml(tmp_path, section)
    out = tmp_path / "run"
    assert main(["audit", "--model", str(wide_dirs[0]), "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert pattern in err and err.count("\n") == 0, err
    assert not out.exists()


def test_too_small_sets_are_reported_not_computed(tmp_path, wide_dirs):
    _jsonl(tmp_path / "qa.jsonl", [{"question": "Where was Anna born?", "answer": "Lisbon"}])
    _jsonl(tmp_path / "short.jsonl", [{"text": "too short for two segments"}])
    _jsonl(tmp_path / "probes.jsonl", [{"prefix": "Anna Berg was born in", "target": " Lisbon"}])
    config = _write_yaml(tmp_path, {"knowmem": {"file": "qa.jsonl", "n_shots": 1},
                                    "sort": {"texts": "short.jsonl", "segment_words": 5},
                                    "target": {"file": "probes.jsonl"}})
    out = tmp_path / "run"
    assert main(["audit", "--model", str(wide_dirs[0]), "--config", str(config), "--out", str(out),
                 "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    assert metrics["knowmem/rouge_l_f1/mean"] is None and metrics["sort/short_term/accuracy"] is None
    assert not [k for k, v in metrics.items() if k.startswith(("knowmem/", "sort/")) and v is not None and k != "knowmem/n_shots"]
    assert "not computed" in notes["knowmem/rouge_l_f1/mean"] and "1 QA pair" in notes["knowmem/rouge_l_f1/mean"]
    assert "sort: not computed" in notes["sort/short_term/accuracy"]
    assert math.isfinite(metrics["target/nll/mean"])
    html = (out / "report.html").read_text()
    assert "Notes: skipped and not computed" in html and "KnowMem (question" not in html


def test_nothing_to_measure_is_an_error(tmp_path, wide_dirs):
    with pytest.raises(MnemoscopeError, match="nothing to measure"):
        audit.run(tmp_path / "run", {"model.name": str(wide_dirs[0])})
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- functions


def test_load_config_file_resolves_paths_next_to_the_yaml(tmp_path):
    (tmp_path / "sub").mkdir()
    config = _write_yaml(tmp_path / "sub", {"data": {"members": "m.jsonl", "nonmembers": "/abs/n.jsonl"},
                                            "model": {"name": "org/hub-model"}, "audit": {"k": 0.5}})
    flat = audit.load_config_file(config)
    assert flat["data.members"] == str((tmp_path / "sub" / "m.jsonl").resolve())
    assert flat["data.nonmembers"] == "/abs/n.jsonl"
    assert flat["model.name"] == "org/hub-model"  # not a local path: left as a hub id
    assert flat["audit.k"] == 0.5


@pytest.mark.parametrize("text, pattern", [("[1, 2]\n", "mapping"), ("data: [\n", "not valid YAML"),
                                           ("audit:\n  k: high\n", "expects float"),
                                           ("audit:\n  k: 1.5\n", r"'audit.k' \(.*a.yaml\) must be a fraction"),
                                           ("data:\n  members: a.jsonl\ndata:\n  members: b.jsonl\n",
                                            r"a.yaml:3: .*key 'data' appears twice"),
                                           ("audit:\n  k: 0.2\n  k: 0.5\n", "key 'k' appears twice"),
                                           ("data: [m.jsonl]\n", r"section 'data:' must hold 'key: value' lines"),
                                           ("qqqqzzzz: 1\n", r"unknown config key 'qqqqzzzz' .*; known: sections ")])
def test_load_config_file_rejects_bad_yaml(tmp_path, text, pattern):
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(MnemoscopeError, match=pattern):
        audit.load_config_file(tmp_path / "a.yaml")


def test_an_empty_section_sets_nothing(tmp_path):
    (tmp_path / "a.yaml").write_text("knowmem:\naudit:\n  k: 0.5\n")
    assert audit.load_config_file(tmp_path / "a.yaml") == {"audit.k": 0.5}


def test_the_end_of_run_summary_has_a_headline_per_family_and_the_notes_count(full_run):
    text = audit.summary(full_run)
    for title in ("Extraction sweep", "Pythia memorization score", "VerbMem", "KnowMem", "TOFU",
                  "Target log-probability", "Recognition", "Recall", "Sequence order recall", "Knights and Knaves"):
        assert title in text, title
    assert "min_k_pp  AUC" in text and "exact extraction: members" in text
    assert "note(s) on what was skipped or not computed" in text
    assert "knowmem/n " not in text  # headlines only, not every key
