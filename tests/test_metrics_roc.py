import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.roc import (
    bootstrap_auc_ci,
    bootstrap_aucs,
    membership_report,
    roc_auc,
    roc_curve_points,
    tpr_at_fpr,
)

# members 0.9, 0.8, 0.3; non-members 0.7, 0.2, 0.1, 0.05
Y = np.array([1, 1, 1, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.05])


@st.composite
def labelled_scores(draw, max_n=60, tie_levels=None):
    n_pos = draw(st.integers(2, max_n))
    n_neg = draw(st.integers(2, max_n))
    levels = draw(st.integers(1, 8)) if tie_levels is None else tie_levels
    scores = draw(st.lists(st.integers(0, levels), min_size=n_pos + n_neg, max_size=n_pos + n_neg))
    noise = draw(st.booleans())
    s = np.asarray(scores, dtype=float)
    if noise:
        s = s + draw(st.floats(0, 1)) * np.arange(s.size) / s.size
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    perm = np.random.default_rng(draw(st.integers(0, 2**16))).permutation(y.size)
    return y[perm], s[perm]


def test_auc_hand():
    # member/non-member pairs won: 0.9 beats 4, 0.8 beats 4, 0.3 beats 3 -> 11/12
    assert roc_auc(Y, S) == pytest.approx(11 / 12)


def test_auc_ties_count_half():
    assert roc_auc([1, 1, 0, 0], [1.0, 1.0, 1.0, 1.0]) == 0.5
    assert roc_auc([1, 1, 0, 0], [2.0, 1.0, 1.0, 0.0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)


@settings(max_examples=80, deadline=None)
@given(labelled_scores())
def test_auc_equals_sklearn(data):
    y, s = data
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labelled_scores(), st.integers(0, 2**16))
def test_auc_permutation_invariant(data, seed):
    y, s = data
    perm = np.random.default_rng(seed).permutation(y.size)
    assert roc_auc(y[perm], s[perm]) == pytest.approx(roc_auc(y, s), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(labelled_scores())
def test_flipping_labels_gives_one_minus_auc(data):
    y, s = data
    assert roc_auc(1 - y, s) == pytest.approx(1 - roc_auc(y, s), abs=1e-12)


def test_score_direction():
    rng = np.random.default_rng(3)
    members = rng.normal(1.0, 1.0, 200)  # higher log-prob => member
    non = rng.normal(0.0, 1.0, 200)
    y = np.r_[np.ones(200), np.zeros(200)]
    assert roc_auc(y, np.r_[members, non]) > 0.7


@pytest.mark.parametrize(
    "y, s, match",
    [
        ([1, 0, 0, 0], [1, 2, 3, 4], "got 1 members and 3 non-members"),
        ([1, 1, 1, 0], [1, 2, 3, 4], "got 3 members and 1 non-members"),
        ([1, 2, 0, 0], [1, 2, 3, 4], "only 0"),
        ([1, 1, 0, 0], [1, np.nan, 3, 4], "nan"),
        ([1, 1, 0], [1, 2, 3, 4], "equal length"),
    ],
)
def test_bad_input_raises(y, s, match):
    with pytest.raises(MnemoscopeError, match=match):
        roc_auc(y, s)


def test_bool_labels_accepted():
    assert roc_auc(Y.astype(bool), S) == pytest.approx(11 / 12)


def test_bootstrap_deterministic_and_contains_auc():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50), np.zeros(70)].astype(int)
    s = np.r_[rng.normal(0.5, 1, 50), rng.normal(0, 1, 70)]
    a = bootstrap_auc_ci(y, s, n_boot=500, seed=7)
    b = bootstrap_auc_ci(y, s, n_boot=500, seed=7)
    c = bootstrap_auc_ci(y, s, n_boot=500, seed=8)
    assert a == b
    assert a != c
    lo, hi = a
    assert lo < roc_auc(y, s) < hi
    lo90, hi90 = bootstrap_auc_ci(y, s, n_boot=500, alpha=0.1, seed=7)
    assert lo <= lo90 and hi90 <= hi


def test_bootstrap_replicates_equal_sklearn_on_the_same_resamples():
    """Reconstruct each stratified resample from the generator and score it with sklearn."""
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(9), np.zeros(12)].astype(int)
    s = np.round(rng.normal(0, 1, 21), 1)  # rounding creates ties
    reps = bootstrap_aucs(y, s, n_boot=50, seed=3)
    pos, neg = s[y == 1], np.sort(s[y == 0])  # counts index the sorted non-members
    gen = np.random.default_rng(3)
    w_pos = gen.multinomial(pos.size, np.full(pos.size, 1 / pos.size), size=50)
    w_neg = gen.multinomial(neg.size, np.full(neg.size, 1 / neg.size), size=50)
    for b in range(50):
        sp = np.repeat(pos, w_pos[b])
        sn = np.repeat(neg, w_neg[b])
        expected = roc_auc_score(np.r_[np.ones(sp.size), np.zeros(sn.size)], np.r_[sp, sn])
        assert reps[b] == pytest.approx(expected, abs=1e-12)


def test_bootstrap_matches_naive_loop_in_distribution():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(40), np.zeros(40)].astype(int)
    s = np.r_[rng.normal(0.7, 1, 40), rng.normal(0, 1, 40)]
    reps = bootstrap_aucs(y, s, n_boot=2000, seed=0)
    pos, neg = s[:40], s[40:]
    naive_rng = np.random.default_rng(99)
    naive = []
    for _ in range(400):
        sp = pos[naive_rng.integers(0, 40, 40)]
        sn = neg[naive_rng.integers(0, 40, 40)]
        naive.append(roc_auc_score(np.r_[np.ones(40), np.zeros(40)], np.r_[sp, sn]))
    assert reps.mean() == pytest.approx(np.mean(naive), abs=0.01)
    assert reps.std() == pytest.approx(np.std(naive), rel=0.15)


def test_bootstrap_degenerate_cases():
    y = [1, 1, 1, 0, 0, 0]
    assert bootstrap_auc_ci(y, [4, 5, 6, 1, 2, 3], n_boot=200) == (1.0, 1.0)
    assert bootstrap_auc_ci(y, [1, 1, 1, 1, 1, 1], n_boot=200) == (0.5, 0.5)


def test_bootstrap_chunking_covers_all_replicates(monkeypatch):
    import mnemoscope.metrics.roc as roc

    monkeypatch.setattr(roc, "_CHUNK_CELLS", 10)  # 7 samples -> 1 replicate per chunk
    reps = roc.bootstrap_aucs(Y, S, n_boot=37, seed=0)
    assert reps.shape == (37,)
    assert ((reps >= 0) & (reps <= 1)).all()


def test_bootstrap_bad_args():
    with pytest.raises(MnemoscopeError, match="n_boot"):
        bootstrap_aucs(Y, S, n_boot=0)
    with pytest.raises(MnemoscopeError, match="alpha"):
        bootstrap_auc_ci(Y, S, alpha=1.5)


@settings(max_examples=60, deadline=None)
@given(labelled_scores())
def test_roc_curve_equals_sklearn(data):
    y, s = data
    fpr, tpr = roc_curve_points(y, s)
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_tpr_at_fpr_hand():
    # ROC points: (0,0) (0,1/3) (0,2/3) (1/4,2/3) (1/4,1) (1/2,1) (3/4,1) (1,1)
    assert tpr_at_fpr(Y, S, 0.1) == (pytest.approx(2 / 3), True)  # 4 negatives < 1/0.1
    assert tpr_at_fpr(Y, S, 0.25) == (1.0, False)  # 4 negatives = 1/0.25
    assert tpr_at_fpr(Y, S, 0.2) == (pytest.approx(2 / 3), True)  # 4 < 5


@settings(max_examples=60, deadline=None)
@given(labelled_scores(), st.sampled_from([0.01, 0.05, 0.1, 0.3, 0.5, 1.0]))
def test_tpr_at_fpr_against_sklearn_curve(data, target):
    y, s = data
    ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
    tpr, under = tpr_at_fpr(y, s, target)
    assert tpr == pytest.approx(ref_tpr[ref_fpr <= target].max())
    assert under == ((y == 0).sum() < 1 / target)


def test_underpowered_boundary():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(10), np.zeros(1000)].astype(int)
    s = rng.normal(size=1010)
    assert tpr_at_fpr(y, s, 0.001)[1] is False
    assert tpr_at_fpr(y[:-1], s[:-1], 0.001)[1] is True


def test_tpr_at_fpr_bad_fpr():
    with pytest.raises(MnemoscopeError, match="fpr"):
        tpr_at_fpr(Y, S, 0.0)


def test_membership_report_keys_and_values():
    rep = membership_report(Y, S, n_boot=200, seed=1)
    assert set(rep) == {
        "auc",
        "auc/ci_lo",
        "auc/ci_hi",
        "tpr@fpr=0.001",
        "tpr@fpr=0.001/underpowered",
        "tpr@fpr=0.01",
        "tpr@fpr=0.01/underpowered",
        "tpr@fpr=0.05",
        "tpr@fpr=0.05/underpowered",
        "n_members",
        "n_nonmembers",
    }
    assert rep["auc"] == pytest.approx(11 / 12)
    assert (rep["auc/ci_lo"], rep["auc/ci_hi"]) == bootstrap_auc_ci(Y, S, n_boot=200, seed=1)
    assert rep["tpr@fpr=0.05"] == pytest.approx(2 / 3)
    assert rep["tpr@fpr=0.05/underpowered"] == 1
    assert rep["n_members"] == 3 and rep["n_nonmembers"] == 4
    assert membership_report(Y, S, n_boot=200, seed=1) == rep


# --------------------------------------------------------------------------- cluster bootstrap


def _grouped(rng, n_groups=10, per_group=20, spread=1.0, noise=0.2):
    """Members and non-members drawn alike (true AUC 0.5), each group with its own offset."""
    labels, scores, groups = [], [], []
    for label in (1, 0):
        for g in range(n_groups):
            offset = rng.normal(0.0, spread)
            scores += list(offset + rng.normal(0.0, noise, per_group))
            labels += [label] * per_group
            groups += [f"{label}-{g}"] * per_group
    return np.array(labels), np.array(scores), np.array(groups)


def test_cluster_ci_covers_between_group_spread_and_text_ci_does_not():
    rng = np.random.default_rng(7)
    covered = {"text": 0, "cluster": 0}
    trials = 60
    for t in range(trials):
        y, s, g = _grouped(rng)
        lo, hi = bootstrap_auc_ci(y, s, n_boot=300, seed=t)
        covered["text"] += lo <= 0.5 <= hi
        lo, hi = bootstrap_auc_ci(y, s, n_boot=300, seed=t, groups=g)
        covered["cluster"] += lo <= 0.5 <= hi
    assert covered["cluster"] / trials >= 0.85  # nominal 95%; few groups make it a little lower
    assert covered["text"] / trials <= 0.5  # the text CI pretends 400 independent texts


def test_cluster_replicates_match_a_naive_group_resampling():
    rng = np.random.default_rng(3)
    y, s, g = _grouped(rng, n_groups=6, per_group=5)
    ours = bootstrap_aucs(y, s, n_boot=4000, seed=1, groups=g)
    naive_rng = np.random.default_rng(99)
    naive = []
    for _ in range(4000):
        idx = []
        for label in (1, 0):
            names = sorted(set(g[y == label]))
            for name in naive_rng.choice(names, size=len(names), replace=True):
                idx += list(np.flatnonzero(g == name))
        naive.append(roc_auc_score(y[idx], s[idx]))
    assert abs(ours.mean() - np.mean(naive)) < 0.01
    assert abs(ours.std() - np.std(naive)) < 0.01


def test_singleton_groups_give_the_text_bootstrap_spread():
    rng = np.random.default_rng(4)
    y = np.array([1] * 150 + [0] * 150)
    s = rng.normal(0, 1, 300) + 0.5 * y
    g = np.arange(300).astype(str)
    text = bootstrap_aucs(y, s, n_boot=3000, seed=0)
    cluster = bootstrap_aucs(y, s, n_boot=3000, seed=0, groups=g)
    assert abs(text.std() - cluster.std()) < 0.004
    assert abs(text.mean() - cluster.mean()) < 0.004


def test_membership_report_names_the_resampling_units():
    rng = np.random.default_rng(5)
    y, s, g = _grouped(rng, n_groups=4, per_group=3)
    report = membership_report(y, s, n_boot=50, groups=g)
    assert report["n_member_groups"] == 4 and report["n_nonmember_groups"] == 4
    assert "n_member_groups" not in membership_report(y, s, n_boot=50)


@pytest.mark.parametrize("groups, match", [
    (["a"] * 3, "one group per text"),
    (["a", "a", "b", "b"], "at least 2 member groups"),
    (["a", "b", None, "c"], "every text needs a group"),
])
def test_cluster_bootstrap_bad_groups(groups, match):
    with pytest.raises(MnemoscopeError, match=match):
        bootstrap_aucs([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], n_boot=10, groups=groups)
