"""Logit arithmetic between causal LMs: one composite model that scores and generates.

``CombinedLogits(models, combine, base=...)`` wraps several causal LMs that share a tokenizer
and vocabulary (e.g. a target model and a model fine-tuned further on the forget set) and
behaves like one causal LM whose next-token logits are ``combine({name: logits})``:

- ``forward(input_ids, attention_mask=None)`` returns ``.logits`` = the combined logits at every
  position (differentiable: a relearning attack can fine-tune the composite as a whole);
- ``generate(input_ids=, attention_mask=, generation_config=, logits_processor=)`` decodes from
  the combined logits step by step (``combine_generate({name: logits})`` when given: a method
  whose decoding rule differs from its scoring rule, as ULD's does), every member with its own KV cache, honouring what the
  engine asks of ``transformers``' ``generate``: greedy or sampled (temperature, top-k, top-p),
  ``max_new_tokens``, ``min_new_tokens`` (EOS suppressed until then), EOS, pad, left padding,
  extra logits processors (the engine's banned-token callback), and ``use_cache``.

So ``HFEngine(CombinedLogits(...), tokenizer)`` runs every family unchanged: the engine knows
nothing of the arithmetic. Hidden states have no single meaning in a composite; ``hidden_model``
names the member whose residual stream stands for it (the base, whose weights the arithmetic
leaves untouched).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from transformers.modeling_outputs import CausalLMOutput

from mnemoscope.errors import MnemoscopeError

Combine = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class CombinedLogits(torch.nn.Module):
    """Several causal LMs seen as one: logits = ``combine({name: member logits})``."""

    def __init__(self, models: Mapping[str, torch.nn.Module], combine: Combine, *, base: str, name: str = "",
                 combine_generate: Combine | None = None):
        super().__init__()
        if base not in models:
            raise MnemoscopeError(f"CombinedLogits: the base member {base!r} is not among {sorted(models)}")
        sizes = {n: _vocab(m) for n, m in models.items()}
        if len(set(sizes.values())) != 1:
            raise MnemoscopeError(f"CombinedLogits: the members' vocabularies differ ({sizes}); logit arithmetic "
                                  "needs models that share one tokenizer")
        self.members = torch.nn.ModuleDict(dict(models))
        self.combine = combine
        self.combine_generate = combine_generate or combine
        self.base = base
        self.name = name or "+".join(models)

    # ------------------------------------------------------------------ what the engine reads
    @property
    def config(self):
        return self.members[self.base].config

    @property
    def generation_config(self):
        return self.members[self.base].generation_config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def name_or_path(self) -> str:
        return self.name

    def tie_weights(self) -> None:
        """Each member keeps its own tying (what ``transformers`` callers expect to be able to call)."""
        for member in self.members.values():
            if hasattr(member, "tie_weights"):
                member.tie_weights()

    @property
    def hidden_model(self) -> torch.nn.Module:
        """The member whose hidden states stand for the composite's (its base)."""
        return self.members[self.base]

    # ------------------------------------------------------------------ scoring
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_ignored) -> CausalLMOutput:
        """Combined logits at every position of ``input_ids`` [B, T] (→ [B, T, V], float32)."""
        logits = {n: m(input_ids=input_ids, attention_mask=attention_mask).logits.float()
                  for n, m in self.members.items()}
        return CausalLMOutput(logits=self.combine(logits))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, generation_config=None,
                 logits_processor=None, stopping_criteria=None, **kwargs) -> torch.Tensor:
        """``input_ids`` [B, T] (left-padded) → [B, T + new] with pads after a row's EOS, like
        ``transformers``' ``generate``. Without a ``generation_config``, its fields come from the
        keyword arguments (``max_length`` counts the prompt, as in transformers); a row also ends
        when ``stopping_criteria`` says so."""
        from transformers import (
            GenerationConfig,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        cfg = generation_config
        if cfg is None:
            known = {k: v for k, v in kwargs.items() if hasattr(GenerationConfig(), k)}
            if "max_new_tokens" not in known and known.get("max_length") is not None:
                known["max_new_tokens"] = int(known.pop("max_length")) - input_ids.shape[1]
            known.setdefault("eos_token_id", self.generation_config.eos_token_id)
            known.setdefault("pad_token_id", self.generation_config.pad_token_id)
            cfg = GenerationConfig(**{k: v for k, v in known.items() if k != "max_length"})
        if getattr(cfg, "num_beams", 1) not in (1, None):
            raise MnemoscopeError("CombinedLogits generates greedily or by sampling; beam search is not supported")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        eos = cfg.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos[0] if eos else 0)
        warpers = []
        if cfg.do_sample:
            if cfg.temperature is not None and cfg.temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(cfg.temperature))
            if cfg.top_k:
                warpers.append(TopKLogitsWarper(cfg.top_k))
            if cfg.top_p is not None and cfg.top_p < 1.0:
                warpers.append(TopPLogitsWarper(cfg.top_p))
        use_cache = bool(getattr(cfg, "use_cache", True))
        seqs, mask = input_ids, attention_mask.long()
        done = torch.zeros(len(seqs), dtype=torch.bool, device=seqs.device)
        caches: dict[str, object] = {n: None for n in self.members}
        cache_arg = {n: _cache_argument(m) for n, m in self.members.items()}
        step_ids = seqs
        for t in range(int(cfg.max_new_tokens if cfg.max_new_tokens is not None else 20)):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = {}
            for n, m in self.members.items():
                if use_cache:
                    out = m(input_ids=step_ids, attention_mask=mask, position_ids=positions[:, -step_ids.shape[1]:],
                            use_cache=True, **{cache_arg[n]: caches[n]})
                    caches[n] = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
                else:
                    out = m(input_ids=seqs, attention_mask=mask, position_ids=positions, use_cache=False)
                logits[n] = out.logits[:, -1:, :].float()
            scores = self.combine_generate(logits)[:, -1, :]
            if t < int(cfg.min_new_tokens or 0) and eos:
                scores[:, eos] = -float("inf")
            for processor in logits_processor or ():
                scores = processor(seqs, scores)
            for warper in warpers:
                scores = warper(seqs, scores)
            if cfg.do_sample:
                nxt = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
            else:
                nxt = scores.argmax(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            step_ids = nxt[:, None]
            if eos:
                done |= torch.isin(nxt, torch.tensor(eos, device=nxt.device))
            if stopping_criteria is not None:
                stop = stopping_criteria(seqs, scores)
                done |= stop if isinstance(stop, torch.Tensor) else torch.full_like(done, bool(stop))
            if bool(done.all()):
                break
        return seqs


def _cache_argument(model: torch.nn.Module) -> str:
    """The name of the forward argument that takes the KV cache: ``cache`` in recent transformers,
    ``past_key_values`` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _vocab(model: torch.nn.Module) -> int | None:
    head = getattr(model, "get_output_embeddings", lambda: None)()
    if isinstance(head, torch.nn.Module) and hasattr(head, "weight"):
        return int(head.weight.shape[0])
    return getattr(getattr(model, "config", None), "vocab_size", None)
