"""The Hugging Face backend: the engine contract (``engine.backend``) on a transformers model.

- ``score``: teacher-forced per-token statistics of texts or (context, target) pairs;
- ``generate``: batched continuations (greedy, or sampled) with exact length control.
- ``activations``: residual-stream features after each decoder block (``engine.activations``);
- ``steer``: a context manager that adds, scales or ablates directions during the calls above
  (``engine.steering``).
All sort items by length, batch them under a token budget that halves on out-of-memory, and
return results in the caller's order. It provides every capability of ``backend.CAPABILITIES``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from mnemoscope.engine.activations import (
    EMBEDDINGS,
    Activations,
    StopForward,
    block_input,
    block_output,
    check_layers,
    check_position,
    find_blocks,
    hidden_size,
    position_weights,
    span,
)
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
from mnemoscope.engine.steering import Rows, Steering, model_identity
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
    provides = frozenset({"logprobs", "distribution", "generate", "sample", "banned", "gradients", "activations",
                          "steer"})

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
        if self._steering is not None:
            self._steering.rows = _right_padded_rows(items, width, [it.score_from for it in items], device)
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
        if self._steering is not None:
            self._steering.rows = None
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
            use_cache=self.use_cache,
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
            if self._steering is not None:  # the hooks read each step's layout from the attention mask
                self._steering.prompt_lens = torch.tensor([len(p) for p in prompts], device=device)
            try:
                seqs = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                           generation_config=config, logits_processor=processors)
            finally:
                if self._steering is not None:
                    self._steering.prompt_lens = self._steering.rows = None
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


    # ------------------------------------------------------------------ inside the model
    # Plain PyTorch hooks on the decoder blocks (engine.activations, engine.steering): the engine's
    # own batching, pad layout and fused attention path stay exactly as they are.
    _blocks = None
    _steering = None  # the active steering.Steering, inside a steer() context
    use_cache = True  # generate with the KV cache (tests turn it off to check steering without it)

    def decoder_blocks(self) -> torch.nn.ModuleList:
        """The model's decoder blocks (``activations.find_blocks``); a one-line error naming the
        model class when they cannot be found."""
        if self._blocks is None:
            self._blocks = find_blocks(self.model)
        return self._blocks

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks L (layers are −1 … L−1, −1 = the embeddings)."""
        return len(self.decoder_blocks())

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream."""
        return hidden_size(self.model)

    def model_identity(self) -> dict:
        """Name, revision, type, depth and hidden size of the model (what a direction file records)."""
        return model_identity(self.model)

    def activations(self, items: list, *, layers=None, position: str = "last") -> Activations:
        """Residual-stream features of each item at ``layers`` (None: −1 … L−1) under a position rule
        (``last``, ``mean``, ``answer``; see ``engine.activations``), float32, in the caller's order.

        An item is a prompt string (encoded as ``encode_prompt``), a (context, target) pair, or an
        ``Encoded`` whose ``ids[:score_from]`` is the prompt. Batched like ``score`` (length-sorted,
        right-padded, token budget halved on out-of-memory); the forward pass stops after the deepest
        wanted layer. Inside a ``steer`` context the features are those of the steered model."""
        layers = check_layers(layers, self.n_layers)
        if not layers:
            raise MnemoscopeError("activations: no layer asked for; pass layers=None for all of them")
        check_position(position)
        encoded = [self._activation_item(x, position) for x in items]
        lengths = [len(it.ids) for it in encoded]
        rows = self._run_batched(lengths, lambda idx: self._capture_batch([encoded[i] for i in idx], layers, position),
                                 "activations")
        d = self.hidden_size
        values = np.stack(rows) if rows else np.zeros((0, len(layers), d), dtype=np.float32)
        return Activations(layers=layers, values=values, position=position)

    def _activation_item(self, item, position: str) -> Encoded:
        if isinstance(item, Encoded):
            enc = item
        elif isinstance(item, str):
            ids = self.encode_prompt(item)
            if not self.fits(len(ids)):
                raise MnemoscopeError(f"a prompt has {len(ids)} tokens but the model's context is {self.max_length}: "
                                      "shorten it")
            enc = Encoded(ids=ids, score_from=len(ids), bos=self.bos)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            enc = self.encode_pair(*item)
        else:
            raise MnemoscopeError(f"an activation item must be a prompt, a (context, target) pair or Encoded, got "
                                  f"{type(item).__name__}")
        if position == "answer" and enc.score_from >= len(enc.ids):
            raise MnemoscopeError("position 'answer' needs (context, target) pairs: a prompt has no answer span")
        if enc.score_from < 1:
            raise MnemoscopeError("an activation item needs at least one prompt token")
        return enc

    @torch.inference_mode()
    def _capture_batch(self, items: list[Encoded], layers: list[int], position: str) -> list[np.ndarray]:
        device = self.device
        width = max(len(it.ids) for it in items)
        ids = torch.full((len(items), width), self.tokenizer.pad_token_id, dtype=torch.long)
        for b, it in enumerate(items):
            ids[b, : len(it.ids)] = torch.tensor(it.ids, dtype=torch.long)
        weights = position_weights([span(len(it.ids), it.score_from, it.bos, position) for it in items], width, device)
        if self._steering is not None:
            self._steering.rows = _right_padded_rows(items, width, [it.score_from for it in items], device)
        feats: dict[int, torch.Tensor] = {}
        deepest = max(layers)

        def grab(layer: int, hidden: torch.Tensor) -> None:
            # Σ_t w[b, t] h[b, t] in float32; pads have weight 0 and are masked, not multiplied
            h = torch.where(weights[..., None] > 0, hidden.float(), 0.0)
            feats[layer] = torch.einsum("bt,btd->bd", weights, h)
            if layer == deepest:
                raise StopForward

        blocks, handles = self.decoder_blocks(), []
        try:
            for layer in layers:
                if layer == EMBEDDINGS:
                    handles.append(blocks[0].register_forward_pre_hook(
                        lambda m, args, kwargs: grab(EMBEDDINGS, block_input(args, kwargs)), with_kwargs=True))
                else:
                    handles.append(blocks[layer].register_forward_hook(
                        lambda m, args, out, layer=layer: grab(layer, block_output(out))))
            split = self._body_and_head()
            try:
                (split[0] if split else self.model)(input_ids=ids.to(device))
            except StopForward:
                pass
        finally:
            for handle in handles:
                handle.remove()
            if self._steering is not None:
                self._steering.rows = None
        self.stats.forward_calls += 1
        self.stats.items_forwarded += len(items)
        stacked = torch.stack([feats[layer] for layer in layers], dim=1).cpu().numpy()
        return list(stacked)

    @contextmanager
    def steer(self, *interventions):
        """Apply ``steering.Add`` (ours), ``steering.ScaleProjection`` (the seed paper's) and
        ``steering.Ablate`` interventions to every ``score``, ``generate`` and ``activations`` call
        inside ``with engine.steer(...):``; the hooks are removed on exit, whatever happens. Pads
        are never touched; α = 0 and s = 0 change nothing."""
        if self._steering is not None:
            raise MnemoscopeError("steer() contexts do not nest: pass every intervention to one steer(...) call")
        self._body_and_head()  # settle the body/head check before any hook can see its probe input
        state = Steering(self.model, self.decoder_blocks(), interventions, self.device)
        try:
            state.attach(self.model)
            self._steering = state
            yield state
        finally:
            self._steering = None
            state.detach()


def _right_padded_rows(items: list[Encoded], width: int, first: list[int], device) -> Rows:
    """Layout of a right-padded batch: real positions are each item's own, token index = position."""
    lengths = torch.tensor([len(it.ids) for it in items], device=device)
    index = torch.arange(width, device=device).expand(len(items), width)
    return Rows(real=index < lengths[:, None], index=index, first=torch.tensor(first, device=device))


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
