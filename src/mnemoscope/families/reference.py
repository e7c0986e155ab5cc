"""Membership attacks that need a second likelihood: a reference model or the lower-cased text.

Every score oriented higher = more likely a member:

- ``score/ref``       = −(NLL_target(x) − NLL_ref(x))
- ``score/ratio``     = −ppl_target(x) / ppl_ref(x) = −exp(NLL_target(x) − NLL_ref(x)) (ranks exactly
  like ``ref``: a monotone function of the same difference)
- ``score/nll_ratio`` = −NLL_target(x) / NLL_ref(x) (Carlini et al.'s log-perplexity ratio)
- ``score/lowercase`` = −log ppl(x) / log ppl(lower(x)) = −NLL(x) / NLL(lower(x))

Both functions return a per-text frame only (like ``membership.score_texts``); feed its
``score/*`` columns to ``membership.membership_metrics`` for AUC / TPR keys ``mia/<attack>/...``.

Tokenizer check: target and reference scores are only comparable per token when both engines
turn every text into the same token ids. The engines *match* when their vocabularies
(``get_vocab()``) are equal, their BOS policies are equal (BOS used or not, same BOS id) and every
text encodes to the same ids. Otherwise ``mismatch="refuse"`` (default) raises MnemoscopeError and
``mismatch="per_byte"`` normalises each model's NLL per UTF-8 byte of its own scored span:

    NLL_byte = (−Σ_i log p_i over the scored tokens, in nats) / bytes(scored span)

The scored span of a text is ``text[c0:c1]``, where c0 is the character offset where the first
scored token starts and c1 where the last scored token ends (the fast tokenizer's offset
mapping). With a BOS every text token is scored, so the span is the whole text (unless
truncated); without one the first token conditions and is not scored, so its characters are
left out. A character split across the unscored and the first scored token counts in the span.
Slow tokenizers (no offsets) use the UTF-8 length of the decoded scored tokens instead.
The frame's ``unit`` column says ``"token"`` or ``"byte"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mnemoscope.engine import Engine, TokenScores
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.membership import (
    lowercase_score,
    nll_ratio_score,
    ratio_score,
    ref_score,
)

MISMATCH_POLICIES = ("refuse", "per_byte")


def tokenizer_mismatch(target_engine: Engine, ref_engine: Engine, texts: Sequence[str]) -> str | None:
    """Why the two engines' token ids are not comparable (one line), or None when they are."""
    vt, vr = target_engine.tokenizer.get_vocab(), ref_engine.tokenizer.get_vocab()
    if vt != vr:
        return f"the vocabularies differ ({len(vt)} vs {len(vr)} entries)"
    bt, br = target_engine.prefix_ids(), ref_engine.prefix_ids()
    if bt != br:
        return f"the BOS policies differ (target prefix {bt}, reference prefix {br})"
    for text in texts:
        if target_engine.text_ids(text) != ref_engine.text_ids(text):
            return f"the tokenizers split {text[:40]!r} differently"
    return None


def scored_span_bytes(engine: Engine, text: str, scores: TokenScores) -> int:
    """UTF-8 bytes of the scored span of ``text`` (see the module docstring)."""
    first = 0 if scores.bos else 1  # index (in the text's own tokens) of the first scored token
    last = first + scores.n_scored - 1
    spans = engine.char_spans(text)
    if spans is not None:
        n = len(text[spans[first][0] : spans[last][1]].encode("utf-8"))
    else:
        n = len(engine.decode(scores.token_ids).encode("utf-8"))
    if n == 0:
        raise MnemoscopeError(f"the scored span of {text[:40]!r} has 0 bytes; drop this text")
    return n


def _per_byte_nll(engine: Engine, texts: Sequence[str], scored: Sequence[TokenScores]) -> np.ndarray:
    """Total NLL (nats) over the scored tokens / bytes of the scored span, per text."""
    return np.array(
        [
            -float(s.logprobs.astype(np.float64).sum()) / scored_span_bytes(engine, t, s)
            for t, s in zip(texts, scored)
        ]
    )


def ref_ratio_scores(
    target_engine: Engine,
    ref_engine: Engine,
    texts: Sequence[str],
    *,
    mismatch: str = "refuse",
    target_scores: Sequence[TokenScores] | None = None,
) -> pd.DataFrame:
    """Reference and ratio attacks → columns ``nll_target, nll_ref, unit, score/ref, score/ratio``.

    ``target_scores``: the target engine's ``score(texts)`` output when already computed (one pass,
    many metrics); otherwise one batched score call per engine. ``mismatch``: ``"refuse"`` or
    ``"per_byte"`` (see the module docstring); NLLs are per token or per byte as ``unit`` says.
    """
    if mismatch not in MISMATCH_POLICIES:
        raise MnemoscopeError(f"unknown ref mismatch policy '{mismatch}': use one of {', '.join(MISMATCH_POLICIES)}")
    texts = list(texts)
    if target_scores is not None and len(target_scores) != len(texts):
        raise MnemoscopeError(f"target_scores has {len(target_scores)} entries for {len(texts)} texts; pass one per text")
    reason = tokenizer_mismatch(target_engine, ref_engine, texts)
    if reason is not None and mismatch == "refuse":
        raise MnemoscopeError(
            f"target and reference tokenizers are not compatible: {reason}; pass a reference model that "
            "shares the target's tokenizer, or --ref-mismatch per_byte to compare NLL per UTF-8 byte"
        )
    st = list(target_scores) if target_scores is not None else target_engine.score(texts)
    sr = ref_engine.score(texts)
    if reason is None:
        unit = "token"
        nll_t = np.array([s.nll for s in st])
        nll_r = np.array([s.nll for s in sr])
    else:
        unit = "byte"
        nll_t = _per_byte_nll(target_engine, texts, st)
        nll_r = _per_byte_nll(ref_engine, texts, sr)
    return pd.DataFrame(
        {
            "nll_target": nll_t,
            "nll_ref": nll_r,
            "n_scored_target": [s.n_scored for s in st],
            "n_scored_ref": [s.n_scored for s in sr],
            "unit": unit,
            "score/ref": np.atleast_1d(ref_score(nll_t, nll_r)),
            "score/ratio": np.atleast_1d(ratio_score(nll_t, nll_r)),
            "score/nll_ratio": np.atleast_1d(nll_ratio_score(nll_t, nll_r)),
        }
    )


def lowercase_scores(
    engine: Engine, texts: Sequence[str], *, scores: Sequence[TokenScores] | None = None
) -> pd.DataFrame:
    """Lowercase attack → columns ``nll, nll_lower, score/lowercase``.

    One batched score call over ``texts + lower(texts)``, or over ``lower(texts)`` only when the
    texts' ``scores`` are given. ``score/lowercase`` is nan where NLL(lower(x)) = 0.
    """
    texts = list(texts)
    lowered = [t.lower() for t in texts]
    if scores is None:
        both = engine.score(texts + lowered)
        scores, low = both[: len(texts)], both[len(texts) :]
    else:
        if len(scores) != len(texts):
            raise MnemoscopeError(f"scores has {len(scores)} entries for {len(texts)} texts; pass one per text")
        low = engine.score(lowered)
    nll = np.array([s.nll for s in scores])
    nll_lower = np.array([s.nll for s in low])
    return pd.DataFrame(
        {"nll": nll, "nll_lower": nll_lower, "score/lowercase": np.atleast_1d(lowercase_score(nll, nll_lower))}
    )
