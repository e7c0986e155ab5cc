"""The engine contract: what a measurement may ask of a model, whatever runs it.

A measurement family talks to a model through this class only. Two verbs do the work, as in
lm-evaluation-harness's ``LM``:

- ``score(texts | pairs)``: teacher-forced per-token statistics (:class:`TokenScores`);
- ``generate(prompts, max_new_tokens=, min_new_tokens=, sampling=, banned=)``: continuations
  (:class:`Continuation`), greedy unless ``sampling`` is given.

plus the encoding helpers a family needs to *plan* its work (the token ids of a text, the BOS
prefix, a (context, target) pair's split, the context limit) — so that no family calls a
tokenizer or a private name of a backend. Who owns the word-boundary space: in a pair, the
context's trailing whitespace moves onto the target (``encoding.split_context``).

A backend declares what it ``provides`` (names from :data:`CAPABILITIES`); a family declares
what it needs and calls :meth:`Backend.require`, which refuses with a one-line reason instead
of approximating. The Hugging Face engine (``engine.hf.HFEngine``) provides everything; other
backends (vLLM, remote workers) implement ``score_encoded`` and ``generate`` and inherit the
encoding verbs, so every backend tokenizes identically.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from mnemoscope.engine.encoding import Encoded, Encoder, text_ids
from mnemoscope.errors import MnemoscopeError

CAPABILITIES: dict[str, str] = {
    "logprobs": "per-token log p(t_i | t_<i) of texts and of (context, target) pairs",
    "distribution": "per scored token: mean μ and std σ of log p(v) over the whole vocabulary, entropy "
                    "and argmax hit (Min-K%++ and entropy-based scores need it)",
    "generate": "greedy continuations, with an exact (forced) length when asked",
    "sample": "sampled continuations (temperature, top-k, top-p), seeded",
    "banned": "a callback that bans tokens at each decoding step (e.g. a verbatim n-gram filter)",
    "activations": "residual-stream hidden states after each decoder block",
    "steer": "interventions on the residual stream during score and generate",
    "gradients": "gradients of a text's NLL with respect to parameters or input embeddings",
}


@dataclass
class TokenScores:
    """Teacher-forced statistics of one item's scored tokens (all arrays have length n_scored).

    ``mu``, ``sigma`` and ``argmax`` are None on a backend without the ``distribution``
    capability."""

    token_ids: np.ndarray  # int64, the scored tokens
    logprobs: np.ndarray  # float32, log p(t_i | t_<i)
    mu: np.ndarray | None  # float32, Σ_v p(v) log p(v) = −entropy
    sigma: np.ndarray | None  # float32, std of log p(v) under p
    argmax: np.ndarray | None  # bool, t_i is the argmax prediction
    bos: bool  # a BOS was prepended
    truncated: int = 0  # tokens dropped to fit the context

    @property
    def n_scored(self) -> int:
        return int(self.logprobs.shape[0])

    @property
    def entropy(self) -> np.ndarray:
        if self.mu is None:
            raise MnemoscopeError("entropy needs the 'distribution' capability, which this backend lacks")
        return -self.mu

    @property
    def nll(self) -> float:
        """NLL = −mean log p over scored tokens."""
        return float(-self.logprobs.astype(np.float64).mean())


@dataclass
class Continuation:
    """A continuation: the new tokens only (never the prompt), cut at EOS."""

    token_ids: list[int]
    text: str
    prompt_tokens: int


@dataclass(frozen=True)
class Sampling:
    """Sampled decoding: temperature > 0, top_k (0 = off), top_p (1 = off), and a seed that makes a
    call reproducible on the same backend, batch budget and machine."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise MnemoscopeError(f"sampling temperature must be > 0, got {self.temperature}")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise MnemoscopeError(f"sampling top_k must be ≥ 0 and top_p in (0, 1], got {self.top_k}, {self.top_p}")


class Backend:
    """Encoding verbs shared by every backend, and the measuring verbs each backend implements.

    Subclasses set ``name`` and ``provides`` and implement :meth:`score_encoded` and
    :meth:`generate`.
    """

    name = "abstract"
    provides: frozenset[str] = frozenset()

    def __init__(self, tokenizer, *, bos: str = "auto", max_length: int | None = None, truncation: str = "refuse"):
        self.tokenizer = tokenizer  # read it for decoding and vocabulary checks; encode through the verbs below
        self.encoder = Encoder(tokenizer, bos=bos, max_length=max_length, truncation=truncation)
        self.task = ""  # what the current calls are for, shown on progress bars (see ``working_on``)

    @contextmanager
    def working_on(self, task: str):
        """Label the calls made inside the block (progress bars read "<task>: score")."""
        previous, self.task = self.task, task
        try:
            yield self
        finally:
            self.task = previous

    # ------------------------------------------------------------------ capabilities
    def require(self, capability: str, what: str) -> None:
        """Refuse ``what`` with a one-line reason when this backend lacks ``capability``."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")
        if capability not in self.provides:
            raise MnemoscopeError(
                f"{what} needs '{capability}' ({CAPABILITIES[capability]}), which the {self.name} backend "
                "does not provide; use --backend hf for it")

    # ------------------------------------------------------------------ encoding
    @property
    def bos(self) -> bool:
        """Whether a BOS token is put at position 0 of every input."""
        return self.encoder.use_bos

    @property
    def max_length(self) -> int | None:
        """The context limit in tokens (BOS included), or None when unknown."""
        return self.encoder.max_length

    def prefix_ids(self) -> list[int]:
        """What goes before a text's own tokens: [BOS] or []."""
        return self.encoder.prefix_ids()

    def text_ids(self, text: str) -> list[int]:
        """A text's own token ids (no BOS, no special tokens)."""
        return text_ids(self.tokenizer, text)

    def encode_text(self, text: str) -> Encoded:
        return self.encoder.encode_text(text)

    def encode_pair(self, context: str, target: str, *, eos: bool = False) -> Encoded:
        """The pair tokenized whole and split at the context's token count (``eos=True``: the EOS
        after the target is scored as part of it); a pair longer than the context is refused
        (never cut), whatever the truncation policy of texts."""
        return self.encoder.encode_pair(context, target, truncate=False, eos=eos)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Prompt ids under the BOS policy (BOS only at position 0)."""
        ids = self.prefix_ids() + self.text_ids(prompt)
        if not ids:
            raise MnemoscopeError("empty prompt: generation needs at least one prompt token")
        return ids

    def char_spans(self, text: str) -> list[tuple[int, int]] | None:
        """(start, end) character offsets of each of the text's own tokens, or None when the
        tokenizer cannot tell (a slow tokenizer)."""
        if not getattr(self.tokenizer, "is_fast", False):
            return None
        return self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    def decode(self, ids) -> str:
        """Text of token ids, special tokens dropped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def fits(self, n_tokens: int) -> bool:
        """Whether ``n_tokens`` (BOS included) fit the context."""
        return self.max_length is None or n_tokens <= self.max_length

    def encode_texts(self, texts: list[str]) -> list[Encoded]:
        """``encode_text`` of each text, refusing texts with no token to score (fewer than 2
        tokens without a BOS)."""
        items = [self.encode_text(t) for t in texts]
        _check_scorable(items)
        return items

    def check_texts(self, texts: list[str]) -> int:
        """Encode without scoring (length and tokenizer errors surface early); returns how many
        would be truncated."""
        return sum(1 for it in self.encode_texts(texts) if it.truncated)

    # ------------------------------------------------------------------ measuring
    def score(self, texts: list[str] | None = None, *, pairs: list[tuple[str, str]] | None = None) -> list[TokenScores]:
        """Teacher-forced statistics for texts (all tokens after the first, or all with a BOS)
        or for (context, target) pairs (target tokens only)."""
        if (texts is None) == (pairs is None):
            raise ValueError("pass exactly one of texts or pairs")
        if texts is not None:
            items = self.encode_texts(texts)
        else:
            items = [self.encode_pair(c, t) for c, t in pairs]
        return self.score_encoded(items)

    def score_encoded(self, items: list[Encoded]) -> list[TokenScores]:
        raise NotImplementedError

    def generate(
        self,
        prompts: list[str] | list[list[int]],
        *,
        max_new_tokens: int,
        min_new_tokens: int | None = None,
        sampling: Sampling | None = None,
        banned=None,
    ) -> list[Continuation]:
        """Continuations of each prompt (a string, or token ids used as given — no BOS added).
        Greedy unless ``sampling``; ``min_new_tokens = max_new_tokens`` forces the exact length
        (EOS is suppressed until then); ``banned(ids) -> token ids`` bans tokens at each step."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds (worker processes, an engine's memory). Idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prompt_ids(self, prompts: list[str] | list[list[int]]) -> list[list[int]]:
        """Prompts as token ids: strings through :meth:`encode_prompt`, id lists as given."""
        ids = [list(p) if not isinstance(p, str) else self.encode_prompt(p) for p in prompts]
        if any(len(p) == 0 for p in ids):
            raise MnemoscopeError("empty prompt: generation needs at least one prompt token")
        return ids


def _check_scorable(items: list[Encoded]) -> None:
    for item in items:
        if len(item.ids) - item.score_from < 1:
            raise MnemoscopeError(
                "a text has fewer than 2 tokens, so no token can be scored: drop empty or one-token texts")
