"""The Hugging Face backend: the engine contract (``engine.backend``) on a transformers model.

- ``score``: teacher-forced per-token statistics of texts or (context, target) pairs;
- ``generate``: batched continuations (greedy, or sampled) with exact length control.
Both sort items by length, batch them under a token budget that halves on out-of-memory, and
return results in the caller's order. It provides every capability of ``backend.CAPABILITIES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mnemoscope.engine.backend import (
    Backend,
    Continuation,
    Sampling,
    TokenScores,
    _check_scorable,
)
from mnemoscope.engine.encoding import Encoded
from mnemoscope.engine.loading import LoadedModel, ensure_pad_token
from mnemoscope.engine.stats import chunk_rows, token_stats
from mnemoscope.errors import MnemoscopeError


@dataclass
class EngineStats:
    """Counters that let tests and benchmarks check the work done."""

    forward_calls: int = 0
    items_forwarded: int = 0
    oom_retries: int = 0
    generate_calls: int = 0
    per_call: list[int] = field(default_factory=list)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class HFEngine(Backend):
    """Scores and generates with one transformers model under one tokenization policy."""

    name = "hf"
    provides = frozenset({"logprobs", "distribution", "generate", "sample", "banned", "gradients"})

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        bos: str = "auto",
        max_length: int | None = None,
        truncation: str = "refuse",
        max_batch_size: int = 64,
        max_tokens: int | None = None,
        progress: bool = False,
    ):
        ensure_pad_token(tokenizer)
        self.model = model
        if max_length is None:
            max_length = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        super().__init__(tokenizer, bos=bos, max_length=max_length, truncation=truncation)
        self.max_batch_size = max_batch_size
        # Padded tokens per batch. On a CPU small, length-homogeneous batches waste the least work;
        # on a GPU large batches keep the device busy (halved automatically on out-of-memory).
        # Generation is bound by per-step overhead, so it takes wider batches (8× the budget).
        if max_tokens is None:
            max_tokens = 32768 if self.device.type == "cuda" else 2048
        self.max_tokens = max_tokens
        self.max_gen_tokens = 8 * max_tokens
        self.progress = progress
        self.stats = EngineStats()
        self._split = None  # (body, head) once checked; False when the model needs full logits
        self._head_rows = 0

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, **kwargs) -> "HFEngine":
        return cls(loaded.model, loaded.tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ batching
    def _run_batched(self, lengths: list[int], fn, desc: str, budget_attr: str = "max_tokens") -> list:
        """Apply ``fn(indices)`` over length-sorted batches of ≤ ``self.<budget_attr>`` padded
        tokens, halving that budget on out-of-memory."""
        results: list = [None] * len(lengths)
        bar = self._bar(len(lengths), desc)
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        pos = 0
        while pos < len(order):
            longest = max(lengths[order[pos]], 1)
            n = max(1, min(self.max_batch_size, getattr(self, budget_attr) // longest))
            batch = order[pos : pos + n]
            try:
                outputs = fn(batch)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
                if not _is_oom(exc):
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if len(batch) == 1:
                    raise MnemoscopeError(
                        f"out of memory on a single item of {longest} tokens: use a smaller dtype, "
                        "a shorter --max-length, or a larger device"
                    ) from exc
                self.stats.oom_retries += 1
                setattr(self, budget_attr, max(longest, (len(batch) // 2) * longest))
                continue
            for i, out in zip(batch, outputs):
                results[i] = out
            pos += len(batch)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return results

    def _bar(self, total: int, desc: str):
        if not self.progress or total == 0:
            return None
        from tqdm.auto import tqdm

        label = f"{self.task}: {desc}" if self.task else desc
        return tqdm(total=total, desc=label, unit="item", leave=False)

    # ------------------------------------------------------------------ score
    def _body_and_head(self):
        """(body, head) when ``model(ids).logits == head(body(ids).last_hidden_state)``, else None.

        Checked once on a short probe input, so a model that post-processes its logits (soft-capping,
        scaling) falls back to full logits. The split lets the output head run only on scored
        positions, never on pads, and never materialise a [batch, seq, vocab] tensor.
        """
        if self._split is None:
            self._split = False
            head = getattr(self.model, "get_output_embeddings", lambda: None)()
            body = getattr(self.model, "base_model", None)
            if isinstance(head, torch.nn.Module) and isinstance(body, torch.nn.Module) and body is not self.model:
                vocab = head.weight.shape[0]
                probe = (torch.arange(1, 9, device=self.device) % vocab)[None]
                with torch.inference_mode():
                    try:
                        full = self.model(input_ids=probe).logits.float()
                        split = head(body(input_ids=probe).last_hidden_state).float()
                    except (TypeError, AttributeError, RuntimeError):
                        split = None
                if split is not None and split.shape == full.shape and torch.allclose(split, full, atol=1e-4, rtol=1e-3):
                    self._split = (body, head)
                    self._head_rows = chunk_rows(vocab, self.device)
        return self._split or None

    def score_encoded(self, items: list[Encoded]) -> list[TokenScores]:
        _check_scorable(items)
        lengths = [len(it.ids) for it in items]
        return self._run_batched(lengths, lambda idx: self._score_batch([items[i] for i in idx]), "score")

    @torch.inference_mode()
    def _score_batch(self, items: list[Encoded]) -> list[TokenScores]:
        device = self.device
        width = max(len(it.ids) for it in items)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(items), width), pad, dtype=torch.long)
        rows, cols = [], []
        for b, it in enumerate(items):
            ids[b, : len(it.ids)] = torch.tensor(it.ids, dtype=torch.long)
            positions = range(it.score_from, len(it.ids))
            rows.extend([b] * len(positions))
            cols.extend(positions)
        ids = ids.to(device)
        r = torch.tensor(rows, dtype=torch.long, device=device)
        c = torch.tensor(cols, dtype=torch.long, device=device)
        targets = ids[r, c]
        # Right padding: every real token precedes every pad, so causal masking alone keeps pads out
        # of real positions' context (pad positions' outputs are never read). No attention mask lets
        # attention take its fused causal path; tests check equality with unpadded scoring.
        # Position j−1 scores token j.
        split = self._body_and_head()
        if split is not None:  # the head runs on scored positions only, chunk by chunk
            body, head = split
            hidden = body(input_ids=ids).last_hidden_state[r, c - 1]
            parts = [token_stats(head(hidden[i : i + self._head_rows]), targets[i : i + self._head_rows])
                     for i in range(0, len(rows), self._head_rows)]
            st = {k: torch.cat([p[k] for p in parts]).cpu().numpy() for k in parts[0]}
        else:
            logits = self.model(input_ids=ids).logits
            st = {k: v.cpu().numpy() for k, v in token_stats(logits[r, c - 1], targets).items()}
        self.stats.forward_calls += 1
        self.stats.items_forwarded += len(items)
        targets_np = targets.cpu().numpy()
        out, start = [], 0
        for it in items:
            n = len(it.ids) - it.score_from
            sl = slice(start, start + n)
            out.append(
                TokenScores(
                    token_ids=targets_np[sl],
                    logprobs=st["logp"][sl],
                    mu=st["mu"][sl],
                    sigma=st["sigma"][sl],
                    argmax=st["argmax"][sl],
                    bos=it.bos,
                    truncated=it.truncated,
                )
            )
            start += n
        return out

    # ------------------------------------------------------------------ generate
    def generate(
        self,
        prompts: list[str] | list[list[int]],
        *,
        max_new_tokens: int,
        min_new_tokens: int | None = None,
        sampling: Sampling | None = None,
        banned=None,
    ) -> list[Continuation]:
        """See ``Backend.generate``. Sampled batches are seeded with ``sampling.seed`` plus the
        batch's first item index, under a forked RNG (the global RNG is left as it was)."""
        if max_new_tokens < 1:
            raise MnemoscopeError("max_new_tokens must be ≥ 1")
        prompt_ids = self.prompt_ids(prompts)
        lengths = [len(p) + max_new_tokens for p in prompt_ids]
        return self._run_batched(
            lengths,
            lambda idx: self._generate_batch([prompt_ids[i] for i in idx], max_new_tokens, min_new_tokens,
                                             sampling, banned, min(idx)),
            "generate",
            budget_attr="max_gen_tokens",
        )

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[list[int]], max_new: int, min_new: int | None,
                        sampling: Sampling | None, banned, first: int) -> list[Continuation]:
        from transformers import GenerationConfig, LogitsProcessorList

        device = self.device
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):  # left padding keeps every prompt's last token aligned
            ids[b, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[b, width - len(p) :] = 1
        eos = self.tokenizer.eos_token_id
        decoding = dict(do_sample=False)
        if sampling is not None:
            decoding = dict(do_sample=True, temperature=sampling.temperature, top_k=sampling.top_k or None,
                            top_p=sampling.top_p)
        config = GenerationConfig(
            num_beams=1,
            max_new_tokens=max_new,
            min_new_tokens=min_new or 0,
            pad_token_id=pad,
            eos_token_id=eos,
            bos_token_id=self.tokenizer.bos_token_id,
            **decoding,
        )
        processors = LogitsProcessorList([_BanProcessor(banned, [width - len(p) for p in prompts])] if banned else [])
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=sampling is not None):
            if sampling is not None:
                torch.manual_seed(sampling.seed * 1_000_003 + first)
            seqs = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                       generation_config=config, logits_processor=processors)
        self.stats.generate_calls += 1
        new = seqs[:, width:].cpu().tolist()
        out = []
        for p, toks in zip(prompts, new):
            if eos is not None and eos in toks:
                toks = toks[: toks.index(eos)]
            out.append(Continuation(token_ids=toks, text=self.decode(toks), prompt_tokens=len(p)))
        return out

    # ------------------------------------------------------------------ gradients
    def gradient_norms(self, texts: list[str], *, p: float = float("inf")) -> list:
        """Per text: p-norms of ∇NLL w.r.t. each parameter tensor and the input embeddings
        (``engine.gradients.GradNorms``); one forward + backward pass per text."""
        from mnemoscope.engine.gradients import nll_gradient_norms

        items = [self.encode_text(t) for t in texts]
        _check_scorable(items)
        out = []
        for it in items:
            out.append(nll_gradient_norms(self.model, it.ids, it.score_from, p))
            self.stats.forward_calls += 1
            self.stats.items_forwarded += 1
        return out

    def prompt_gradients(self, prompt: list[int], target: list[int]):
        """(∂ mean NLL(target | prefix_ids() + prompt) / ∂ one-hot(prompt) [len(prompt), V], that NLL):
        the gradient a GCG search over prompt tokens follows."""
        from mnemoscope.engine.gradients import one_hot_gradients

        if not prompt or not target:
            raise MnemoscopeError("prompt_gradients needs at least one prompt and one target token")
        self.stats.forward_calls += 1
        return one_hot_gradients(self.model, self.prefix_ids(), list(prompt), list(target))


class _BanProcessor:
    """Sets the logits of the tokens ``banned(ids)`` names to −inf, row by row, where ``ids`` is
    the row's prompt + generated tokens so far (left pads removed)."""

    def __init__(self, banned, pads: list[int]):
        self.banned, self.pads = banned, pads

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for row, pad in enumerate(self.pads):
            ban = list(self.banned(input_ids[row, pad:].tolist()))
            if ban:
                scores[row, ban] = -float("inf")
        return scores


Engine = HFEngine  # the default backend, under its historical name
