"""Unlearning objectives as pure torch functions (the methods in ``unlearn.methods`` compose them).

Every objective takes already-computed quantities (per-example NLLs, sequence log-likelihoods,
logits, hidden states) and returns a scalar loss to MINIMISE. No model, no optimizer, no I/O:
the training loop computes the inputs, these functions only state the formulas. A shape that does
not fit is a programming error (ValueError); a bad hyperparameter or data without a scored token
is the user's (MnemoscopeError).

Notation: F = forget set, R = retain set, π_θ = model being unlearned, π_ref = the frozen model
before unlearning. log π(y|x) is a *sequence* log-likelihood: the sum of log p over the scored
(answer) tokens. NLL is the per-example mean of −log p over its scored tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnemoscope.errors import MnemoscopeError

IGNORE_INDEX = -100


# --------------------------------------------------------------------------- token bookkeeping


def _check_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 3 or labels.dim() != 2 or tuple(logits.shape[:2]) != tuple(labels.shape):
        raise ValueError(
            f"logits/labels: expected logits [batch, seq, vocab] and labels [batch, seq], got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}; pass the model's full logits"
        )


def next_token_mask(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Bool mask [batch, seq] over logit positions: position i is scored iff labels[i+1] != ignore.

    The last position never scores anything (there is no token after it).
    """
    mask = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    mask[:, :-1] = labels[:, 1:] != ignore_index
    return mask


def token_counts(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Scored tokens per sequence, |y| = #{i ≥ 2 : labels_i != ignore_index} (causal shift)."""
    return (labels[:, 1:] != ignore_index).sum(dim=-1)


def sequence_logprob(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """log π(y|x) = Σ_i log p(labels_{i+1} | logits_i) over non-ignored labels → tensor[batch].

    Causal shift: logits at position i score label i+1. The log-softmax is taken in float32,
    and only on scored positions (so answer-only labels never upcast the whole [B, T, V] tensor).
    Differentiable with respect to ``logits``.
    """
    _check_labels(logits, labels)
    batch = labels.shape[0]
    shift_labels = labels[:, 1:]
    mask = shift_labels != ignore_index
    rows = torch.arange(batch, device=labels.device).unsqueeze(1).expand_as(shift_labels)
    scored = logits[:, :-1, :][mask].float()  # [N, V]
    targets = shift_labels[mask].long()
    token_logp = scored.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scored, -1)
    out = torch.zeros(batch, dtype=torch.float32, device=logits.device)
    return out.index_add(0, rows[mask], token_logp)


def sequence_nll(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-example NLL = −log π(y|x) / |y| → tensor[batch]. Every example must score ≥ 1 token."""
    counts = token_counts(labels, ignore_index)
    if bool((counts == 0).any()):
        raise MnemoscopeError(
            "labels: an example has no scored tokens (all labels after the first are ignore_index); "
            "check the answer mask / truncation length"
        )
    return -sequence_logprob(logits, labels, ignore_index) / counts.to(torch.float32)


# --------------------------------------------------------------------------- retain terms


def kl_retain(
    logits_theta: torch.Tensor, logits_ref: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over masked positions of KL(π_ref ‖ π_θ) = Σ_v p_ref(v) (log p_ref(v) − log p_θ(v)).

    ``logits_*`` are [..., vocab] at the same positions; ``mask`` is bool [...] selecting the
    positions that count (for causal LMs use :func:`next_token_mask`). Full distributions,
    float32. The reference side is detached. Terms with p_ref(v) = 0 contribute 0.
    """
    if logits_theta.shape != logits_ref.shape or tuple(mask.shape) != tuple(logits_theta.shape[:-1]):
        raise ValueError(
            f"kl_retain: logits_theta {tuple(logits_theta.shape)}, logits_ref "
            f"{tuple(logits_ref.shape)} and mask {tuple(mask.shape)} must agree (mask = logits "
            "without the vocab axis); score theta and ref on the same retain batch"
        )
    mask = mask.bool()
    n = int(mask.sum())
    if n == 0:
        raise MnemoscopeError("kl_retain: mask selects no positions; the retain batch has no scored tokens")
    logp_theta = torch.log_softmax(logits_theta[mask].float(), dim=-1)
    logp_ref = torch.log_softmax(logits_ref[mask].detach().float(), dim=-1)
    p_ref = logp_ref.exp()
    terms = torch.where(p_ref > 0, p_ref * (logp_ref - logp_theta), torch.zeros_like(p_ref))
    return terms.sum() / n


def _check_weight(value: float, name: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise MnemoscopeError(f"{name}: must be a finite number ≥ 0, got {value!r}")


def _check_beta(beta: float) -> None:
    if not math.isfinite(beta) or beta <= 0:
        raise MnemoscopeError(f"beta: must be a finite number > 0, got {beta!r}")


# --------------------------------------------------------------------------- objectives


def ga_loss(nll_forget: torch.Tensor) -> torch.Tensor:
    """Gradient ascent: L = −mean NLL_F."""
    return -nll_forget.float().mean()


def gd_loss(
    nll_forget: torch.Tensor, nll_retain: torch.Tensor, retain_weight: float = 1.0
) -> torch.Tensor:
    """Gradient difference: L = −mean NLL_F + w · mean NLL_R."""
    _check_weight(retain_weight, "retain_weight")
    return ga_loss(nll_forget) + retain_weight * nll_retain.float().mean()


def kl_loss(
    nll_forget: torch.Tensor,
    logits_theta_r: torch.Tensor,
    logits_ref_r: torch.Tensor,
    mask: torch.Tensor,
    retain_weight: float = 1.0,
) -> torch.Tensor:
    """GA + KL on R: L = −mean NLL_F + w · mean_tokens KL(π_ref ‖ π_θ)."""
    _check_weight(retain_weight, "retain_weight")
    return ga_loss(nll_forget) + retain_weight * kl_retain(logits_theta_r, logits_ref_r, mask)


def npo_loss(
    seq_logp_theta: torch.Tensor, seq_logp_ref: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """NPO: L = (2/β) · mean log(1 + (π_θ(y|x)/π_ref(y|x))^β)
             = (2/β) · mean softplus(β · (log π_θ(y|x) − log π_ref(y|x))).

    Inputs are *sequence* log-likelihoods [batch] (see :func:`sequence_logprob`); the
    reference side is detached. dL/dlog π_θ = (2/N)·σ(β Δ) > 0, so minimising lowers π_θ.
    """
    _check_beta(beta)
    if seq_logp_theta.shape != seq_logp_ref.shape:
        raise ValueError(
            f"npo_loss: seq_logp_theta {tuple(seq_logp_theta.shape)} and seq_logp_ref "
            f"{tuple(seq_logp_ref.shape)} must have the same shape (one value per forget example)"
        )
    delta = seq_logp_theta.float() - seq_logp_ref.detach().float()
    return (2.0 / beta) * F.softplus(beta * delta).mean()


def npo_gd_loss(
    seq_logp_theta: torch.Tensor,
    seq_logp_ref: torch.Tensor,
    nll_retain: torch.Tensor,
    beta: float = 0.1,
    retain_weight: float = 1.0,
) -> torch.Tensor:
    """NPO + w · mean NLL_R."""
    _check_weight(retain_weight, "retain_weight")
    return npo_loss(seq_logp_theta, seq_logp_ref, beta) + retain_weight * nll_retain.float().mean()


def npo_kl_loss(
    seq_logp_theta: torch.Tensor,
    seq_logp_ref: torch.Tensor,
    logits_theta_r: torch.Tensor,
    logits_ref_r: torch.Tensor,
    mask: torch.Tensor,
    beta: float = 0.1,
    retain_weight: float = 1.0,
) -> torch.Tensor:
    """NPO + w · mean_tokens KL(π_ref ‖ π_θ) on R."""
    _check_weight(retain_weight, "retain_weight")
    return npo_loss(seq_logp_theta, seq_logp_ref, beta) + retain_weight * kl_retain(
        logits_theta_r, logits_ref_r, mask
    )


def simnpo_loss(
    seq_logp_theta: torch.Tensor, lengths: torch.Tensor, beta: float = 4.5, gamma: float = 0.0
) -> torch.Tensor:
    """SimNPO: L = −(2/β) · mean log σ(−(β/|y|) · log π_θ(y|x) − γ)
                = (2/β) · mean softplus((β/|y|) · log π_θ(y|x) + γ).

    ``lengths`` = |y|, scored tokens per example (see :func:`token_counts`), all > 0.
    Reference-free: length-normalised log-likelihood replaces the ratio to π_ref.
    """
    _check_beta(beta)
    if not math.isfinite(gamma):
        raise MnemoscopeError(f"gamma: must be a finite number, got {gamma!r}")
    if seq_logp_theta.shape != lengths.shape:
        raise ValueError(
            f"simnpo_loss: seq_logp_theta {tuple(seq_logp_theta.shape)} and lengths "
            f"{tuple(lengths.shape)} must have the same shape (one value per forget example)"
        )
    if bool((lengths <= 0).any()):
        raise MnemoscopeError("simnpo_loss: lengths must all be > 0; an example has no scored tokens")
    z = (beta / lengths.float()) * seq_logp_theta.float() + gamma
    return (2.0 / beta) * F.softplus(z).mean()


def simnpo_gd_loss(
    seq_logp_theta: torch.Tensor,
    lengths: torch.Tensor,
    nll_retain: torch.Tensor,
    beta: float = 4.5,
    gamma: float = 0.0,
    retain_weight: float = 1.0,
) -> torch.Tensor:
    """SimNPO + w · mean NLL_R (the retain-regularised form used in the SimNPO paper)."""
    _check_weight(retain_weight, "retain_weight")
    return simnpo_loss(seq_logp_theta, lengths, beta, gamma) + retain_weight * nll_retain.float().mean()


# --------------------------------------------------------------------------- RMU


def make_control_vector(dim: int, seed: int = 0) -> torch.Tensor:
    """Fixed random unit vector u ∈ R^dim (float32): entries ~ U[0, 1) from ``seed``, then u / ‖u‖.

    Uniform-then-normalise follows the RMU paper's description of u.
    """
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise MnemoscopeError(f"dim: the hidden size must be a positive integer, got {dim!r}")
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(dim, generator=gen, dtype=torch.float32)
    return u / u.norm()


def _masked_sq_norm_mean(diff: torch.Tensor, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    sq = diff.pow(2).sum(dim=-1)  # [...]
    if mask is None:
        return sq.mean()
    if tuple(mask.shape) != tuple(sq.shape):
        raise ValueError(
            f"rmu_loss: {name} has shape {tuple(mask.shape)}, expected {tuple(sq.shape)} "
            "(the activations' shape without the hidden axis)"
        )
    mask = mask.bool()
    n = int(mask.sum())
    if n == 0:
        raise MnemoscopeError(f"rmu_loss: {name} selects no positions")
    return sq[mask].sum() / n


def rmu_loss(
    h_forget: torch.Tensor,
    h_retain: torch.Tensor,
    h_retain_ref: torch.Tensor,
    control_vec: torch.Tensor,
    steering_coef: float,
    alpha: float,
    forget_mask: torch.Tensor | None = None,
    retain_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """RMU: L = mean_tokens ‖h_F − c·u‖² + α · mean_tokens ‖h_R − h_R^ref‖².

    ``h_*`` are one layer's activations [..., hidden] in float32 arithmetic; ``u`` is a fixed
    unit vector (see :func:`make_control_vector`), ``c`` = ``steering_coef``. Optional bool
    masks [...] restrict each mean to real (non-pad) tokens. The reference side is detached.
    """
    _check_weight(alpha, "alpha")
    if not math.isfinite(steering_coef):
        raise MnemoscopeError(f"steering_coef: must be a finite number, got {steering_coef!r}")
    hidden = h_forget.shape[-1]
    if control_vec.shape != (hidden,) or h_retain.shape[-1] != hidden:
        raise ValueError(
            f"rmu_loss: control_vec {tuple(control_vec.shape)} and activations (hidden sizes "
            f"{hidden}, {h_retain.shape[-1]}) must share one hidden size; build u with "
            "make_control_vector(hidden_size)"
        )
    if h_retain.shape != h_retain_ref.shape:
        raise ValueError(
            f"rmu_loss: h_retain {tuple(h_retain.shape)} and h_retain_ref "
            f"{tuple(h_retain_ref.shape)} must have the same shape (same retain batch, same layer)"
        )
    target = steering_coef * control_vec.to(device=h_forget.device, dtype=torch.float32)
    forget_term = _masked_sq_norm_mean(h_forget.float() - target, forget_mask, "forget_mask")
    retain_term = _masked_sq_norm_mean(
        h_retain.float() - h_retain_ref.detach().float(), retain_mask, "retain_mask"
    )
    return forget_term + alpha * retain_term


# --------------------------------------------------------------------------- FLAT and ULD

FLAT_DIVERGENCES = ("kl", "js", "tv", "pearson")
FLAT_AVERAGES = ("answer", "padded")


def mean_token_prob(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per example, the mean probability of its scored tokens, (1/|y|)·Σ_i p(y_i | y_<i, x) → [batch]."""
    _check_labels(logits, labels)
    shift = labels[:, 1:]
    mask = shift != ignore_index
    counts = mask.sum(-1)
    if bool((counts == 0).any()):
        raise MnemoscopeError("labels: an example has no scored tokens; check the answer mask / truncation length")
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    p = logp.gather(-1, shift.clamp(min=0).unsqueeze(-1)).squeeze(-1).exp() * mask
    return p.sum(-1) / counts.float()


def padded_token_prob(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Per example, Σ_i p(y_i | ·) over its scored tokens divided by *every* next-token position
    of the padded batch (T − 1; prompt and pad positions count as 0) → [batch]. FLAT's code
    (``ProbLossStable``: NLLLoss on softmax with ignore_index, then ``.mean()`` over the padded
    rows) averages this way, so its value shrinks with the padding."""
    _check_labels(logits, labels)
    shift = labels[:, 1:]
    mask = shift != ignore_index
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    p = logp.gather(-1, shift.clamp(min=0).unsqueeze(-1)).squeeze(-1).exp() * mask
    return p.sum(-1) / shift.shape[1]


def flat_loss(p_template: torch.Tensor, p_forget: torch.Tensor, divergence: str = "kl") -> torch.Tensor:
    """FLAT (Wang et al. 2024, *LLM Unlearning via Loss Adjustment with Only Forget Data*): the
    negated variational form of an f-divergence between the template ("good") responses and the
    forget responses, L = −g*(P_e) + f*(g*(P_f)), with P_e, P_f the batch means of the per-example
    mean token probabilities (:func:`mean_token_prob`) of the template and the forget answers.
    With the authors' activation g* and conjugate f* (their ``get_contrastive_loss``):

    - ``kl``:      L = −P_e + exp(P_f − 1)
    - ``js``:      L = softplus(−P_e) + softplus(P_f) − 2·log 2
    - ``tv``:      L = −tanh(P_e)/2 + tanh(P_f)/2
    - ``pearson``: L = −P_e + P_f²/4 + P_f

    Minimising raises the template's probability and lowers the forget answer's, with weights
    set by the divergence (no retain set)."""
    if divergence not in FLAT_DIVERGENCES:
        raise MnemoscopeError(f"flat divergence {divergence!r} is unknown: use one of {', '.join(FLAT_DIVERGENCES)}")
    pe, pf = p_template.float().mean(), p_forget.float().mean()
    if divergence == "kl":
        return -pe + torch.exp(pf - 1.0)
    if divergence == "js":
        return F.softplus(-pe) + F.softplus(pf) - 2.0 * math.log(2.0)
    if divergence == "tv":
        return -torch.tanh(pe) / 2.0 + torch.tanh(pf) / 2.0
    return -pe + pf * pf / 4.0 + pf


def uniform_kl(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked positions of KL(U ‖ π_θ) = Σ_v (1/V)(log(1/V) − log p_θ(v)) = −log V − mean_v log p_θ(v):
    how far the model is from the uniform distribution (ULD's "forget the retain set" term for
    its assistant). ``mask`` is bool [...] over ``logits`` [..., V] positions."""
    if tuple(mask.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"uniform_kl: mask {tuple(mask.shape)} must be logits {tuple(logits.shape)} without the vocab axis")
    mask = mask.bool()
    n = int(mask.sum())
    if n == 0:
        raise MnemoscopeError("uniform_kl: mask selects no positions; the retain batch has no scored tokens")
    logp = torch.log_softmax(logits[mask].float(), dim=-1)
    vocab = logits.shape[-1]
    return (-math.log(vocab) - logp.mean(dim=-1)).sum() / n


# --------------------------------------------------------------------------- DPO and token-level objectives


def dpo_loss(
    win_theta: torch.Tensor, win_ref: torch.Tensor, lose_theta: torch.Tensor, lose_ref: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """DPO with the forget answer as the loser: with r = log π_θ − log π_ref per sequence,
    L = −(2/β) · mean log σ(β · (r_win − r_lose)) = (2/β) · mean softplus(−β · (r_win − r_lose)).

    IdkDPO's winner is a refusal ("I don't know") to the same prompt. Inputs are *sequence*
    log-likelihoods [batch] (:func:`sequence_logprob`); the reference sides are detached. The
    2/β scale is open-unlearning's (``compute_dpo_loss``); Rafailov et al.'s DPO has 1."""
    _check_beta(beta)
    shapes = {tuple(t.shape) for t in (win_theta, win_ref, lose_theta, lose_ref)}
    if len(shapes) != 1:
        raise ValueError(f"dpo_loss: the four sequence log-likelihoods must have one shape, got {sorted(shapes)}")
    margin = (win_theta.float() - win_ref.detach().float()) - (lose_theta.float() - lose_ref.detach().float())
    return (2.0 / beta) * F.softplus(-beta * margin).mean()


def _scored(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX):
    """The scored positions' logits [N, V] (float32) and targets [N], row-major, causal shift."""
    _check_labels(logits, labels)
    shift = labels[:, 1:]
    mask = shift != ignore_index
    if not bool(mask.any()):
        raise MnemoscopeError("labels: the batch has no scored tokens; check the answer mask / truncation length")
    return logits[:, :-1, :][mask].float(), shift[mask].long(), mask


def _weighted_ascent(logits: torch.Tensor, labels: torch.Tensor, weight_fn) -> torch.Tensor:
    """−mean over the batch's scored tokens of w(p)·(−log p), w computed from p and detached."""
    scored, targets, _ = _scored(logits, labels)
    nll = F.cross_entropy(scored, targets, reduction="none")
    p = torch.exp(-nll).detach()
    return -(weight_fn(p) * nll).mean()


def wga_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """WGA (weighted gradient ascent, Wang et al. 2025, *Rethinking LLM Unlearning Objectives: A
    Gradient Perspective and Go Beyond*): L = −mean_tokens p^β · NLL_token, with p = π_θ(y_i | ·)
    detached (confident tokens get the most ascent), the mean over every scored token of the
    batch."""
    if not math.isfinite(beta) or beta < 0:
        raise MnemoscopeError(f"beta: must be a finite number ≥ 0, got {beta!r}")
    return _weighted_ascent(logits, labels, lambda p: p**beta)


def satimp_loss(logits: torch.Tensor, labels: torch.Tensor, beta1: float = 5.0, beta2: float = 1.0) -> torch.Tensor:
    """SatImp (Yang et al. 2025, *Exploring Criteria of Loss Reweighting to Enhance LLM
    Unlearning*): L = −mean_tokens p^β₁ (1 − p)^β₂ · NLL_token, p detached (saturation × importance
    weights), the mean over every scored token of the batch."""
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if not math.isfinite(value) or value < 0:
            raise MnemoscopeError(f"{name}: must be a finite number ≥ 0, got {value!r}")
    return _weighted_ascent(logits, labels, lambda p: p**beta1 * (1.0 - p) ** beta2)


def undial_loss(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, beta: float = 10.0) -> torch.Tensor:
    """UNDIAL (Dong et al. 2025, *UNDIAL: Self-Distillation with Adjusted Logits for Robust
    Unlearning in Large Language Models*): self-distillation towards the reference's distribution
    with the true token's logit lowered by β: target q = softmax(l_ref − β·e_y), L = mean over the
    scored positions of the cross-entropy −Σ_v q(v) log π_θ(v)."""
    if not math.isfinite(beta) or beta < 0:
        raise MnemoscopeError(f"beta: must be a finite number ≥ 0, got {beta!r}")
    if logits.shape != ref_logits.shape:
        raise ValueError(f"undial_loss: logits {tuple(logits.shape)} and ref_logits {tuple(ref_logits.shape)} differ")
    scored, targets, mask = _scored(logits, labels)
    ref = ref_logits[:, :-1, :][mask].detach().float()
    ref = ref - beta * F.one_hot(targets, ref.shape[-1]).float()
    return -(torch.softmax(ref, -1) * torch.log_softmax(scored, -1)).sum(-1).mean()


def drop_first_target_tokens(labels: torch.Tensor, n: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``labels`` with each row's first ``n`` non-ignored labels set to ``ignore_index``."""
    kept = labels != ignore_index
    return labels.masked_fill(kept & (kept.cumsum(-1) <= n), ignore_index)


def ceu_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_first: int = 1) -> torch.Tensor:
    """CE-U (Yang et al. 2025, *CE-U: Cross Entropy Unlearning*): at every scored position the
    target is the model's own (detached) distribution with the true token removed,
    q = softmax(l with l_y = −∞); L = mean over positions of −Σ_v q(v) log π_θ(v). The first
    ``ignore_first`` target tokens of each row are not scored (the paper's footnote; open-unlearning
    drops 1). A batch left with no scored token gives 0 (nothing to unlearn in it)."""
    labels = drop_first_target_tokens(labels, int(ignore_first))
    _check_labels(logits, labels)
    mask = labels[:, 1:] != IGNORE_INDEX
    if not bool(mask.any()):
        return logits.sum() * 0.0
    scored = logits[:, :-1, :][mask].float()
    targets = labels[:, 1:][mask].long()
    target_logits = scored.detach().scatter(-1, targets.unsqueeze(-1), float("-inf"))
    return -(torch.softmax(target_logits, -1) * torch.log_softmax(scored, -1)).sum(-1).mean()
