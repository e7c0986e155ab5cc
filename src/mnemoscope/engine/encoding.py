"""Tokenization with explicit bookkeeping: BOS policy, scored span, truncation.

A text t_1..t_n is scored from token 2 (no BOS) or token 1 (a BOS is prepended and only
conditions the first token). A (context, target) pair is tokenized as a whole and split at the
context's token count, as lm-evaluation-harness does; trailing spaces of the context move onto
the target. A BOS is only ever placed at position 0, never between a prefix and a text.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnemoscope.errors import MnemoscopeError

BOS_POLICIES = ("auto", "always", "never")
TRUNCATION_POLICIES = ("refuse", "truncate")


@dataclass
class Encoded:
    """One item ready to score: ``ids[score_from:]`` are the scored tokens."""

    ids: list[int]
    score_from: int
    bos: bool
    truncated: int = 0  # tokens dropped to fit the context window


def tokenizer_adds_bos(tokenizer) -> bool:
    """True when ``tokenizer(text)`` starts with the BOS token by itself (Llama-style)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return len(ids) > 0 and ids[0] == bos


def resolve_bos(tokenizer, policy: str) -> bool:
    """Whether to put a BOS at position 0. 'auto' follows the tokenizer's own default."""
    if policy not in BOS_POLICIES:
        raise MnemoscopeError(f"unknown bos policy '{policy}': use one of {', '.join(BOS_POLICIES)}")
    if policy == "never":
        return False
    if policy == "always":
        if tokenizer.bos_token_id is None:
            raise MnemoscopeError("bos policy 'always' but the tokenizer has no bos_token; use 'auto' or 'never'")
        return True
    return tokenizer_adds_bos(tokenizer)


def text_ids(tokenizer, texts):
    """A text's own token ids (no BOS, no special tokens); a list of texts gives a list of lists.
    The one place outside a backend where text becomes ids (training data is encoded here too)."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"]



def tokenizer_fingerprint(tokenizer) -> str:
    """SHA-256 of the tokenizer's vocabulary (token → id, sorted) and its special tokens: two
    tokenizers with the same fingerprint turn every text into the same ids."""
    import hashlib
    import json

    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted((str(k), str(v)) for k, v in tokenizer.special_tokens_map.items())
    return hashlib.sha256(json.dumps([vocab, special], ensure_ascii=False).encode("utf-8")).hexdigest()


def split_context(context: str, target: str) -> tuple[str, str]:
    """Move trailing whitespace of the context onto the target."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + target


class Encoder:
    """Turns texts and (context, target) pairs into ``Encoded`` items under one BOS policy."""

    def __init__(self, tokenizer, *, bos: str = "auto", max_length: int | None = None, truncation: str = "refuse"):
        if truncation not in TRUNCATION_POLICIES:
            raise MnemoscopeError(
                f"unknown truncation policy '{truncation}': use one of {', '.join(TRUNCATION_POLICIES)}"
            )
        self.tokenizer = tokenizer
        self.bos_policy = bos
        self.use_bos = resolve_bos(tokenizer, bos)
        self.max_length = max_length
        self.truncation = truncation

    def prefix_ids(self) -> list[int]:
        """[BOS] when the policy puts one at position 0, else []."""
        return [self.tokenizer.bos_token_id] if self.use_bos else []

    def encode_text(self, text: str) -> Encoded:
        ids = self.prefix_ids() + text_ids(self.tokenizer, text)
        # With a BOS every text token is scored; without one the first token has no context.
        return self._fit(Encoded(ids=ids, score_from=1, bos=self.use_bos), keep="head")

    def encode_pair(self, context: str, target: str, *, truncate: bool | None = None, eos: bool = False) -> Encoded:
        """``truncate``: None follows the policy; False refuses a pair longer than the context
        whatever the policy (measurements never cut the prompt a question is about). ``eos=True``
        appends the tokenizer's EOS after the target and scores it as part of the target, as TOFU
        and open-unlearning score an answer (answer tokens + EOS)."""
        context, target = split_context(context, target)
        if not target:
            raise MnemoscopeError("empty target in a (context, target) pair: every target needs at least one token")
        whole = self.prefix_ids() + text_ids(self.tokenizer, context + target)
        if eos:
            if self.tokenizer.eos_token_id is None:
                raise MnemoscopeError("scoring the EOS after a target needs a tokenizer with an eos_token")
            whole.append(self.tokenizer.eos_token_id)
        n_context = len(self.prefix_ids()) + (len(text_ids(self.tokenizer, context)) if context else 0)
        n_context = max(1, n_context)  # the first token of a text can never be scored
        if n_context >= len(whole):
            raise MnemoscopeError(f"target {target!r} adds no token after its context; check the pair")
        return self._fit(Encoded(ids=whole, score_from=n_context, bos=self.use_bos), keep="tail", truncate=truncate)

    def _fit(self, item: Encoded, keep: str, truncate: bool | None = None) -> Encoded:
        limit = self.max_length
        if limit is None or len(item.ids) <= limit:
            return item
        if truncate is False:
            raise MnemoscopeError(
                f"a prompt and its answer have {len(item.ids)} tokens but the model's context is {limit}; "
                "prompts are never cut (that would drop what the question is about): shorten it")
        if self.truncation == "refuse":
            raise MnemoscopeError(
                f"a text has {len(item.ids)} tokens but the model's context is {limit}: "
                "shorten it or pass --truncation truncate (engine.truncation)"
            )
        dropped = len(item.ids) - limit
        if keep == "head":  # texts keep their beginning
            return Encoded(ids=item.ids[:limit], score_from=item.score_from, bos=item.bos, truncated=dropped)
        # pairs keep their target: drop the oldest context tokens (after a BOS, which stays at 0)
        if len(item.ids) - item.score_from >= limit:
            raise MnemoscopeError(
                f"a target has {len(item.ids) - item.score_from} tokens, more than the model's context ({limit})"
            )
        head = item.ids[:1] if item.bos else []
        body = item.ids[len(head):]
        kept = head + body[dropped:]
        score_from = max(1, item.score_from - dropped)
        return Encoded(ids=kept, score_from=score_from, bos=item.bos, truncated=dropped)
