"""Blind baselines (Das, Zhang & Tramèr 2024): telling members from non-members without the model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families.blind import Settings, blind_baseline, headline
from mnemoscope.metrics.blind import bag_of_words_scores, verdict

WORDS = ("the a of and to in is was for on with as by at from that this it be are river bank city house garden "
         "music story school road market window").split()
RIVER = "river boat fish water shore current bridge".split()
MONEY = "stock price trade profit share market loan".split()


def _texts(rng, n, extra=(), share=0.0):
    """n texts of 14 common words; with ``extra``, each word is from ``extra`` with probability ``share``."""
    out = []
    for _ in range(n):
        words = [rng.choice(extra) if extra and rng.random() < share else rng.choice(WORDS) for _ in range(14)]
        out.append(" ".join(words))
    return out


ATTACKS = {"mia/loss/auc": 0.62, "mia/loss/auc/ci_lo": 0.55, "mia/loss/auc/ci_hi": 0.69}


def test_a_topic_shift_is_flagged():
    rng = np.random.default_rng(0)
    members, nonmembers = _texts(rng, 60, RIVER, 0.3), _texts(rng, 60, MONEY, 0.3)
    result = blind_baseline(members + nonmembers, [1] * 60 + [0] * 60, n_boot=200)
    assert result.metrics["blind/bow/auc/ci_lo"] > 0.9
    said = verdict({**result.metrics, **ATTACKS})
    assert said.startswith("WARNING") and "cannot be read as membership" in said
    assert said in headline({**result.metrics, **ATTACKS})
    assert result.metrics["blind/date/auc"] is None  # no years in these texts: a note, not a number
    assert "write a year" in result.notes["blind/date/auc"]


def test_a_year_shift_is_flagged_by_the_date_detector():
    rng = np.random.default_rng(1)
    body = _texts(rng, 80)
    years = [int(y) for y in rng.integers(1990, 2020, 40)] + [int(y) for y in rng.integers(2021, 2024, 40)]
    texts = [f"{t} in {y}" for t, y in zip(body, years)]
    result = blind_baseline(texts, [1] * 40 + [0] * 40, n_boot=200)
    assert result.metrics["blind/date/auc/ci_lo"] > 0.9 and result.metrics["blind/date/share_with_year"] == 1.0
    assert verdict({**result.metrics, **ATTACKS}).startswith("WARNING")


def test_a_random_split_is_not_flagged():
    rng = np.random.default_rng(2)
    texts = _texts(rng, 120, RIVER + MONEY, 0.2)
    labels = rng.permutation([1] * 60 + [0] * 60)
    result = blind_baseline(texts, labels, n_boot=200)
    assert result.metrics["blind/bow/auc/ci_lo"] <= 0.5 <= result.metrics["blind/bow/auc/ci_hi"]
    assert verdict({**result.metrics, **ATTACKS}) is None
    assert headline({**result.metrics, **ATTACKS})[0].startswith("blind baseline (bag of words")


def test_verdict_cautions_when_the_attacks_are_well_above_the_blind_baseline():
    metrics = {"blind/bow/auc": 0.6, "blind/bow/auc/ci_lo": 0.55, "blind/bow/auc/ci_hi": 0.65,
               "mia/min_k/auc": 0.95, "mia/min_k/auc/ci_lo": 0.9, "mia/min_k/auc/ci_hi": 0.98, **ATTACKS}
    said = verdict(metrics)
    assert said.startswith("Caution") and "min_k" in said
    assert verdict({k: v for k, v in metrics.items() if k.startswith("blind/")}).startswith("The member")
    assert verdict({"blind/bow/auc": None}) is None


def test_out_of_fold_scores_match_sklearn_cross_val_predict():
    rng = np.random.default_rng(3)
    texts = _texts(rng, 40, RIVER, 0.2) + _texts(rng, 40, MONEY, 0.1)
    y = np.array([1] * 40 + [0] * 40)
    ours = bag_of_words_scores(texts, y, folds=4, ngram_max=2, seed=7)
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000))
    ref = cross_val_predict(pipe, np.array(texts, dtype=object), y,
                            cv=StratifiedKFold(4, shuffle=True, random_state=7), method="predict_proba")[:, 1]
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    result = blind_baseline(texts, y, settings=Settings(folds=4), n_boot=50, seed=7)
    assert result.metrics["blind/bow/auc"] == pytest.approx(roc_auc_score(y, ref))


def test_grouped_texts_keep_each_group_on_one_side_of_every_split():
    rng = np.random.default_rng(4)
    texts = _texts(rng, 60, RIVER, 0.1)
    y = np.array([1] * 30 + [0] * 30)
    groups = np.array([f"p{i // 3}" for i in range(60)])
    ours = bag_of_words_scores(texts, y, folds=5, seed=1, groups=groups)
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000))
    ref = cross_val_predict(pipe, np.array(texts, dtype=object), y, groups=groups,
                            cv=StratifiedGroupKFold(5, shuffle=True, random_state=1), method="predict_proba")[:, 1]
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    result = blind_baseline(texts, y, groups=list(groups), n_boot=50)
    assert result.metrics["blind/bow/n_member_groups"] == 10
    assert "resample groups" in result.notes["blind/*/auc/ci_lo"]


def test_fewer_texts_than_folds_is_a_note_not_a_crash():
    texts = ["alpha beta in 1999", "gamma delta in 1998", "epsilon in 2022", "zeta eta in 2023"]
    result = blind_baseline(texts, [1, 1, 0, 0], n_boot=20)
    assert result.metrics["blind/bow/auc"] is None and result.metrics["blind/date/auc"] is None
    assert "5-fold cross-validation needs at least 5 member and 5 non-member texts, got 2 and 2" in \
        result.notes["blind/bow/auc"]
    assert "blind.cutoff_year" in result.notes["blind/date/auc"]
    # a given cutoff needs no fitting: Das et al.'s rule runs on any number of texts
    ruled = blind_baseline(texts, [1, 1, 0, 0], settings=Settings(cutoff_year=2020), n_boot=20)
    assert ruled.metrics["blind/date/auc"] == 1.0
    with pytest.raises(MnemoscopeError, match="at least 3 member"):
        bag_of_words_scores(texts, [1, 1, 0, 0], folds=3)


def test_the_audit_opens_its_membership_table_with_the_blind_baseline(tmp_path, saved_model_dir):
    rng = np.random.default_rng(6)
    for name, topic in (("members", RIVER), ("nonmembers", MONEY)):
        rows = [{"text": t, "group": f"{name}-{i // 2}"} for i, t in enumerate(_texts(rng, 20, topic, 0.4))]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    assert main(["audit", "--model", str(saved_model_dir), "--members", str(tmp_path / "members.jsonl"),
                 "--nonmembers", str(tmp_path / "nonmembers.jsonl"), "--out", str(out), "--device", "cpu",
                 "--set", "audit.n_boot=100", "--set", "audit.extraction=false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    notes = json.loads((out / "notes.json").read_text())
    assert metrics["blind/bow/auc/ci_lo"] > 0.5 and metrics["mia/loss/n_member_groups"] == 10
    assert "resample groups (10 member and 10 non-member groups)" in notes["mia/*/auc/ci_lo"]
    assert len(pd.read_parquet(out / "family_samples" / "blind.parquet")) == 40
    html = (out / "report.html").read_text()
    table = html[html.index("<h3>Membership inference</h3>"):]
    assert table.index("blind baseline: bag of words (no model)") < table.index(">loss<")
    assert "differ without the model" in html


def test_a_group_field_in_one_set_only_is_refused(tmp_path, saved_model_dir, capsys):
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"text": f"t {i}", "group": "a"}) + "\n" for i in range(3)))
    (tmp_path / "n.jsonl").write_text("".join(json.dumps({"text": f"u {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "run"
    assert main(["audit", "--model", str(saved_model_dir), "--members", str(tmp_path / "m.jsonl"),
                 "--nonmembers", str(tmp_path / "n.jsonl"), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "m.jsonl gives each text a 'group' and" in err and "n.jsonl does not" in err
    assert not out.exists()


@pytest.mark.parametrize("key, value, match", [
    ("folds", 1, "blind.folds must be ≥ 2"),
    ("ngram_max", 0, "blind.ngram_max must be ≥ 1"),
    ("years", "iso", "blind.years 'iso': use standalone"),
])
def test_bad_blind_settings_are_refused_in_one_line(key, value, match):
    from mnemoscope.families.blind import DEFAULTS, settings_from

    with pytest.raises(MnemoscopeError, match=match):
        settings_from({**DEFAULTS["blind"], key: value})


def _das_bag_of_words_auc(texts, labels, trials=10):
    """Das et al.'s WikiMIA setting written out: TF-IDF with 34 features, Gaussian naive Bayes, the
    mean test AUC over 10 random 80/20 splits."""
    from sklearn.model_selection import train_test_split
    from sklearn.naive_bayes import GaussianNB

    aucs = []
    for t in range(trials):
        x_tr, x_te, y_tr, y_te = train_test_split(texts, labels, test_size=0.2, random_state=t, stratify=labels)
        vec = TfidfVectorizer(max_features=34)
        model = GaussianNB().fit(vec.fit_transform(x_tr).toarray(), y_tr)
        aucs.append(roc_auc_score(y_te, model.predict_proba(vec.transform(x_te).toarray())[:, 1]))
    return float(np.mean(aucs))


def test_ours_and_das_et_al_s_classifier_agree_on_shifted_and_random_sets():
    rng = np.random.default_rng(8)
    shifted = _texts(rng, 60, RIVER, 0.3) + _texts(rng, 60, MONEY, 0.3)
    labels = np.array([1] * 60 + [0] * 60)
    ours = blind_baseline(shifted, labels, n_boot=100).metrics["blind/bow/auc"]
    assert ours > 0.9 and _das_bag_of_words_auc(shifted, labels) > 0.9
    alike = _texts(rng, 120, RIVER + MONEY, 0.2)
    ours = blind_baseline(alike, labels, n_boot=100).metrics
    assert ours["blind/bow/auc/ci_lo"] <= 0.5 <= ours["blind/bow/auc/ci_hi"]
    assert abs(_das_bag_of_words_auc(alike, labels) - 0.5) < 0.12


def test_the_unlearning_report_shows_the_blind_baseline_and_the_people_ci(tmp_path):
    from mnemoscope.report.html import RunData
    from mnemoscope.report.sections import unlearning as section

    metrics = {"unlearn/original/knowmem_forget": 80.0, "unlearn/retrain/knowmem_forget": 10.0,
               "unlearn/original/mia_auc": 0.97, "unlearn/original/mia_auc/ci_lo": 0.93,
               "unlearn/original/mia_auc/ci_hi": 1.0, "unlearn/retrain/mia_auc": 0.47,
               "unlearn/retrain/mia_auc/ci_lo": 0.35, "unlearn/retrain/mia_auc/ci_hi": 0.60,
               "data/forget_texts": 120, "data/holdout_texts": 120, "data/forget_people": 30,
               "data/holdout_people": 30, "blind/bow/auc": 0.96, "blind/bow/auc/ci_lo": 0.94, "blind/bow/auc/ci_hi": 0.99}
    html = str(section.section_unlearning(RunData(tmp_path, metrics, pd.DataFrame())))
    assert "over the people (30 forget, 30 holdout" in html and "0.47 [0.35, 0.60]" in html
    assert "Blind baseline: forget vs holdout texts without the model" in html
    assert "WARNING: the member and non-member sets differ without the model" in html and "original" in html
    metrics.update({"blind/bow/auc": 0.5, "blind/bow/auc/ci_lo": 0.4, "blind/bow/auc/ci_hi": 0.6})
    html = str(section.section_unlearning(RunData(tmp_path, metrics, pd.DataFrame())))
    assert "does not tell the sets apart" in html and "WARNING" not in html


def test_texts_without_words_leave_the_bag_of_words_null_with_a_note():
    texts = ["1 2 3", "4 5 6", "7 8", "9 0", "1 1"] * 4
    result = blind_baseline(texts, [1] * 10 + [0] * 10, n_boot=20)
    assert result.metrics["blind/bow/auc"] is None
    assert "could not be fitted" in result.notes["blind/bow/auc"]
