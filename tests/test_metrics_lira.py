"""LiRA's pure functions (metrics.lira) against hand computations and scipy.stats.norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.lira import lira_gaussians, lira_offline, lira_online, logit_confidence

# 4 shadows × 2 examples; example 0 is IN shadows 0 and 1, example 1 is IN shadows 1 and 3.
SHADOW = np.array([[3.0, -1.0], [5.0, 2.0], [0.0, -3.0], [1.0, 4.0]])
KEEP = np.array([[True, False], [True, True], [False, False], [False, True]])
PHI = np.array([2.0, 0.5])


def _pdf(x, mu, sd):  # the normal density written out, independent of scipy
    return math.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def test_logit_confidence_by_hand():
    p = 0.25
    assert logit_confidence([math.log(p)])[0] == pytest.approx(math.log(p / (1 - p)), rel=1e-12)
    # a long sequence: p underflows in float64, φ ≈ log p exactly (no clamp at log 1e-45)
    assert logit_confidence([-900.0])[0] == pytest.approx(-900.0, abs=1e-9)
    # probability exactly 1: the reference's floor, log(1) − log(1e-45)
    assert logit_confidence([0.0])[0] == pytest.approx(-math.log(1e-45))
    # monotone in the log-probability
    lp = np.linspace(-50, -1e-6, 200)
    assert np.all(np.diff(logit_confidence(lp)) > 0)


def test_logit_confidence_refuses_positive_and_nan():
    with pytest.raises(MnemoscopeError, match="> 0"):
        logit_confidence([0.1])
    with pytest.raises(MnemoscopeError, match="nan"):
        logit_confidence([float("nan")])


def test_gaussians_by_hand():
    g = lira_gaussians(SHADOW, KEEP)
    # example 0: IN {3, 5} → median 4, std 1; OUT {0, 1} → median 0.5, std 0.5
    assert g["mu_in"][0] == pytest.approx(4.0) and g["sigma_in"][0] == pytest.approx(1.0)
    assert g["mu_out"][0] == pytest.approx(0.5) and g["sigma_out"][0] == pytest.approx(0.5)
    # example 1: IN {2, 4} → 3, 1; OUT {-1, -3} → -2, 1
    assert g["mu_in"][1] == pytest.approx(3.0) and g["mu_out"][1] == pytest.approx(-2.0)
    assert g["sigma_in"][1] == pytest.approx(1.0) and g["sigma_out"][1] == pytest.approx(1.0)


def test_online_by_hand_and_scipy():
    got = lira_online(PHI, SHADOW, KEEP)
    hand0 = math.log(_pdf(2.0, 4.0, 1.0)) - math.log(_pdf(2.0, 0.5, 0.5))
    hand1 = math.log(_pdf(0.5, 3.0, 1.0)) - math.log(_pdf(0.5, -2.0, 1.0))
    assert got == pytest.approx([hand0, hand1], rel=1e-9)
    scipy_ref = norm.logpdf(PHI, [4.0, 3.0], [1.0, 1.0]) - norm.logpdf(PHI, [0.5, -2.0], [0.5, 1.0])
    assert got == pytest.approx(scipy_ref, rel=1e-9)


def test_online_fixed_variance_uses_the_in_spread_for_both():
    sd = np.std([3.0, 5.0, 2.0, 4.0])  # every IN pair, ddof 0
    got = lira_online(PHI, SHADOW, KEEP, fix_variance=True)
    ref = norm.logpdf(PHI, [4.0, 3.0], sd) - norm.logpdf(PHI, [0.5, -2.0], sd)
    assert got == pytest.approx(ref, rel=1e-9)


def test_offline_one_sided_and_two_sided():
    got = lira_offline(PHI, SHADOW, KEEP)
    assert got == pytest.approx(norm.logcdf(PHI, [0.5, -2.0], [0.5, 1.0]), rel=1e-9)
    # hand: Φ(3) for example 0 → log 0.99865
    assert math.exp(got[0]) == pytest.approx(0.5 * (1 + math.erf(3 / math.sqrt(2))), rel=1e-9)
    two = lira_offline(PHI, SHADOW, KEEP, one_sided=False)
    assert two == pytest.approx([-math.log(_pdf(2.0, 0.5, 0.5)), -math.log(_pdf(0.5, -2.0, 1.0))], rel=1e-9)
    fixed = lira_offline(PHI, SHADOW, KEEP, fix_variance=True)
    assert fixed == pytest.approx(norm.logcdf(PHI, [0.5, -2.0], np.std([0.0, 1.0, -1.0, -3.0])), rel=1e-9)


def test_offline_one_sided_is_monotone_in_the_target_confidence():
    """Properties: a higher target confidence never lowers the one-sided offline score; the
    online score is invariant to shifting every φ by the same constant."""
    rng = np.random.default_rng(0)
    shadow = rng.normal(size=(8, 5))
    keep = np.zeros((8, 5), dtype=bool)
    keep[:4] = True
    phis = np.linspace(-3, 3, 7)
    scores = np.array([lira_offline(np.full(5, x), shadow, keep) for x in phis])
    assert np.all(np.diff(scores, axis=0) > 0)
    phi = rng.normal(size=5)
    assert lira_online(phi + 7.0, shadow + 7.0, keep) == pytest.approx(lira_online(phi, shadow, keep), rel=1e-9)


def test_online_separates_members_in_a_simulation():
    """Members' φ drawn from the IN law, non-members' from the OUT law: online AUC well above 0.5,
    and above a global threshold on φ when the per-example offsets vary."""
    from mnemoscope.metrics.roc import roc_auc

    rng = np.random.default_rng(1)
    n, k = 400, 16
    offset = rng.normal(scale=3.0, size=n)  # per-example difficulty
    keep = np.zeros((k, n), dtype=bool)
    for i in range(n):
        keep[rng.permutation(k)[: k // 2], i] = True
    shadow = offset + keep * 1.0 + rng.normal(scale=0.3, size=(k, n))
    member = rng.random(n) < 0.5
    phi = offset + member * 1.0 + rng.normal(scale=0.3, size=n)
    online = roc_auc(member.astype(int), lira_online(phi, shadow, keep))
    assert online > 0.9
    assert online > roc_auc(member.astype(int), phi) + 0.2
    assert roc_auc(member.astype(int), lira_offline(phi, shadow, keep)) > 0.85


def test_bad_inputs_are_refused():
    with pytest.raises(MnemoscopeError, match="shape|needs"):
        lira_online(PHI[:1], SHADOW, KEEP)
    with pytest.raises(MnemoscopeError, match="only 1 shadow"):
        lira_online(PHI, SHADOW[:3], KEEP[:3])
    with pytest.raises(MnemoscopeError, match="nan or infinite"):
        lira_online(np.array([np.inf, 0.0]), SHADOW, KEEP)
    with pytest.raises(MnemoscopeError, match="boolean"):
        lira_offline(PHI, SHADOW, KEEP * 2)


# --------------------------------------------------------------------------- reference test
#
# The published procedure (tensorflow/privacy, research/mi_lira_2021: score.py turns a model's
# probabilities into log(p_true + 1e-45) − log(p_wrong + 1e-45); plot.py's generate_ours and
# generate_ours_offline fit per-example Gaussians on in_size/out_size-truncated shadow samples and
# sweep roc_curve(answers, −prediction)), written out one example at a time and run on micro
# models trained here, against mnemoscope's engine → recipes.lira.confidence → metrics.lira.


def _train_micro(tokenizer, texts, keep, seed):
    import torch

    from mnemoscope.lab.tiny import Preset, build_model

    model = build_model(Preset(hidden=32, layers=1, heads=2, intermediate=64, vocab=600, context=64), tokenizer,
                        seed=seed)
    rows = [tokenizer(t)["input_ids"] for t, k in zip(texts, keep) if k]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(40):
        ids = torch.tensor([rows[step % len(rows)]])
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _reference_confidence(model, tokenizer, text):
    """score.py for a sequence: float64 softmax with the max subtracted, p_true = the product of
    the scored tokens' probabilities, p_wrong = 1 − p_true (every other sequence)."""
    import torch

    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_true = float(np.prod([probs[i, ids[i + 1]] for i in range(len(ids) - 1)]))
    return math.log(p_true + 1e-45) - math.log((1.0 - p_true) + 1e-45)


def _reference_lira(keep, scores, check_keep, check_scores, *, online, fix_variance):
    """plot.py's generate_ours / generate_ours_offline (one augmentation), member-high scores."""
    dat_in = [scores[keep[:, j], j] for j in range(scores.shape[1])]
    dat_out = [scores[~keep[:, j], j] for j in range(scores.shape[1])]
    in_size, out_size = min(map(len, dat_in)), min(map(len, dat_out))
    dat_in = np.array([x[:in_size] for x in dat_in])
    dat_out = np.array([x[:out_size] for x in dat_out])
    mean_in, mean_out = np.median(dat_in, 1), np.median(dat_out, 1)
    if online:
        std_in = np.std(dat_in) if fix_variance else np.std(dat_in, 1)
        std_out = np.std(dat_in) if fix_variance else np.std(dat_out, 1)
        pr_in = -norm.logpdf(check_scores, mean_in, std_in + 1e-30)
        pr_out = -norm.logpdf(check_scores, mean_out, std_out + 1e-30)
        prediction = pr_in - pr_out
    else:
        std_out = np.std(dat_out) if fix_variance else np.std(dat_out, 1)
        prediction = norm.logpdf(check_scores, mean_out, std_out + 1e-30)
    return -prediction  # sweep() ranks by −prediction


def test_reference_lira_on_micro_models(tokenizer, corpus):
    from sklearn.metrics import roc_auc_score

    from mnemoscope.engine import Engine
    from mnemoscope.families.membership import attack_frame
    from mnemoscope.recipes.lira import confidence
    from mnemoscope.recipes.shadows import shadow_keep

    texts = [" ".join(doc.split()[:6]) for doc in corpus[:16]]
    keep = shadow_keep(4, len(texts), seed=0)  # shadows: each text in exactly 2 of 4
    target_keep = np.random.default_rng(5).permutation(len(texts)) < len(texts) // 2
    models = [_train_micro(tokenizer, texts, k, seed=j) for j, k in enumerate([*keep, target_keep])]

    frames = [attack_frame(texts, Engine(m, tokenizer).score(texts)) for m in models]
    ours = np.stack([confidence(f, clamp=True) for f in frames])  # the reference's formula (switch)
    ref = np.array([[_reference_confidence(m, tokenizer, t) for t in texts] for m in models])
    assert ours == pytest.approx(ref, rel=1e-4, abs=1e-3)
    exact = np.stack([confidence(f) for f in frames])  # ours by default: equal above the clamp, exact below
    above = ref > -90  # far enough above the clamp that its +1e-45 is below the tolerance
    assert 0 < above.sum() < ref.size
    assert exact[above] == pytest.approx(ref[above], rel=1e-4, abs=1e-3)
    clamped = ref < -103.6
    assert clamped.sum() > 1 and len(np.unique(exact[clamped].round(3))) == clamped.sum()  # ties broken

    for fixed in (False, True):
        mine = lira_online(ours[4], ours[:4], keep, fix_variance=fixed)
        theirs = _reference_lira(keep, ref[:4], target_keep, ref[4], online=True, fix_variance=fixed)
        assert mine == pytest.approx(theirs, rel=1e-3, abs=1e-3)
        assert roc_auc_score(target_keep, mine) == pytest.approx(roc_auc_score(target_keep, theirs))
        mine = lira_offline(ours[4], ours[:4], keep, fix_variance=fixed, one_sided=False)
        theirs = _reference_lira(keep, ref[:4], target_keep, ref[4], online=False, fix_variance=fixed)
        assert mine == pytest.approx(theirs, rel=1e-3, abs=1e-3)


def test_clamped_confidence_is_the_reference_formula():
    lp = np.array([-1.0, -50.0, -200.0, -300.0, 0.0])
    p = np.exp(lp)
    ref = np.log(p + 1e-45) - np.log(1 - p + 1e-45)
    assert logit_confidence(lp, clamp=True) == pytest.approx(ref, rel=1e-12)
    assert logit_confidence(lp, clamp=True)[2] == logit_confidence(lp, clamp=True)[3]  # tied below the clamp
    assert logit_confidence(lp)[2] == pytest.approx(logit_confidence(lp)[3] + 100)  # ours keeps them apart
