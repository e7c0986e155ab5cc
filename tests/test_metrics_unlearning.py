import numpy as np
import pytest

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.roc import roc_auc
from mnemoscope.metrics.unlearning import privleak, privleak_from_scores

HOLDOUT = [1.0, 2.0, 3.0, 4.0]
RETRAIN_FORGET = [1.0, 2.0, 3.0, 4.0]  # retrain model: forget set looks like holdout -> AUC 0.5


def test_privleak_hand():
    # MUSE's convention: (A_r − A_u)/(1 − A_r)·100 with our AUCs (forget = member)
    assert privleak(0.6, 0.5) == pytest.approx(-20.0)
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(0.25, 0.5) == pytest.approx(50.0)
    assert privleak(0.9, 0.6) == pytest.approx((0.6 - 0.9) / 0.4 * 100)  # the denominator is 1 − A_r, not A_r
    assert privleak(0.5, 0.0) == pytest.approx(-50.0)
    with pytest.raises(MnemoscopeError, match="retrained"):
        privleak(0.5, 1.0)


def test_sign_under_unlearning_is_negative():
    # unlearned model still scores the forget set as members (higher scores): MUSE's target ≈ −100
    out = privleak_from_scores([5.0, 6.0, 7.0, 8.0], HOLDOUT, RETRAIN_FORGET, HOLDOUT)
    assert out["auc/unlearned"] == 1.0
    assert out["auc/retrain"] == 0.5
    assert out["privleak"] == pytest.approx(-100.0)


def test_sign_over_unlearning_is_positive():
    # forget set pushed below fresh data
    out = privleak_from_scores([-4.0, -3.0, -2.0, -1.0], HOLDOUT, RETRAIN_FORGET, HOLDOUT)
    assert out["auc/unlearned"] == 0.0
    assert out["privleak"] == pytest.approx(100.0)


def test_perfect_unlearning_is_zero_and_labels_are_not_swapped():
    rng = np.random.default_rng(0)
    f_u, h_u = rng.normal(0.3, 1, 30), rng.normal(0, 1, 30)
    out = privleak_from_scores(f_u, h_u, f_u, h_u)
    assert out["privleak"] == 0.0
    # forget = label 1: the AUC equals roc_auc with members first, not 1 - it
    expected = roc_auc(np.r_[np.ones(30), np.zeros(30)], np.r_[f_u, h_u])
    assert out["auc/unlearned"] == pytest.approx(expected)
    swapped = privleak_from_scores(h_u, f_u, RETRAIN_FORGET, HOLDOUT)
    assert swapped["auc/unlearned"] == pytest.approx(1 - expected)


def test_too_few_samples_raise():
    with pytest.raises(MnemoscopeError, match="members"):
        privleak_from_scores([1.0], HOLDOUT, RETRAIN_FORGET, HOLDOUT)


def _muse_auc_by_hand(forget_nll_like, holdout_nll_like):
    """MUSE metrics/privleak.py, written out: labels 0 for the first split (forget), 1 for the
    second (holdout); roc_curve on −score where score is MUSE's "ppl"-like value (higher = less
    member-like, e.g. Min-40% = −mean of the lowest log-probs); AUC by the trapezoid rule."""
    from sklearn.metrics import auc, roc_curve

    ppl = np.array(list(forget_nll_like) + list(holdout_nll_like))
    y = np.array([0] * len(forget_nll_like) + [1] * len(holdout_nll_like))
    fpr, tpr, _ = roc_curve(y, -ppl)
    return auc(fpr, tpr)


def test_privleak_equals_muse_formula_by_hand():
    rng = np.random.default_rng(3)
    # membership scores, higher = member (ours); MUSE's Min-40% value is their negation
    f_u, h_u = rng.normal(1.0, 1, 25), rng.normal(0, 1, 20)
    f_r, h_r = rng.normal(0.2, 1, 25), rng.normal(0, 1, 20)
    auc_muse_u = _muse_auc_by_hand(-f_u, -h_u)
    auc_muse_r = _muse_auc_by_hand(-f_r, -h_r)
    muse = (auc_muse_u - auc_muse_r) / auc_muse_r * 100  # eval.py: (auc − AUC_RETRAIN) / AUC_RETRAIN × 100
    out = privleak_from_scores(f_u, h_u, f_r, h_r)
    assert out["privleak"] == pytest.approx(muse, rel=1e-12)
    assert out["auc/unlearned"] == pytest.approx(1 - auc_muse_u) and out["auc/retrain"] == pytest.approx(1 - auc_muse_r)
    assert muse < 0  # the forget set is still member-like: under-unlearning reads negative, as in MUSE


def test_privleak_by_hand_on_four_texts():
    # forget Min-40% values (MUSE: −mean lowest log p) 1.0, 3.0; holdout 2.0, 4.0 under the unlearned
    # model. MUSE AUC = P(holdout's −value > forget's −value) = P(h < f) = 1/4 → our A_u = 3/4.
    # Retrained: forget 2.0, 3.0; holdout 1.0, 4.0 → MUSE AUC = 2/4 → A_r = 1/2.
    # PrivLeak = (0.25 − 0.5)/0.5 × 100 = −50.
    out = privleak_from_scores([-1.0, -3.0], [-2.0, -4.0], [-2.0, -3.0], [-1.0, -4.0])
    assert out["auc/unlearned"] == pytest.approx(0.75) and out["auc/retrain"] == pytest.approx(0.5)
    assert out["privleak"] == pytest.approx(-50.0)
    assert _muse_auc_by_hand([1.0, 3.0], [2.0, 4.0]) == pytest.approx(0.25)
