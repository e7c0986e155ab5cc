"""Open a backend by name: what ``--backend hf|vllm`` and ``--workers N`` resolve to.

``open_backend("hf", model)`` loads a transformers model (``HFEngine``); ``open_backend("vllm",
model)`` a vLLM engine (``VLLMBackend``, optional dependency); ``workers=N > 1`` starts N
worker processes (or Ray actors, ``executor="ray"``), each holding its own backend of that kind,
behind one ``ShardedBackend`` that splits every call's items between them. All of them tokenize
through the same encoding verbs, so they score the same tokens.

A :class:`BackendSpec` is the picklable recipe a worker process opens its backend from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mnemoscope.engine.backend import Backend
from mnemoscope.errors import MnemoscopeError

BACKENDS = ("hf", "vllm")
EXECUTORS = ("processes", "ray")


@dataclass(frozen=True)
class BackendSpec:
    """Everything needed to open one backend, in any process.

    ``options``: backend keyword arguments (HF engine: ``max_batch_size``, ``max_tokens``; vLLM:
    ``distribution``, ``kv_cache_gib``, ``tensor_parallel_size``...)."""

    kind: str
    model: str
    dtype: str = "auto"
    device: str = "auto"
    bos: str = "auto"
    max_length: int | None = None
    truncation: str = "refuse"
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise MnemoscopeError(f"unknown backend '{self.kind}': use one of {', '.join(BACKENDS)}")

    def on(self, device: str) -> "BackendSpec":
        return replace(self, device=device)

    def open(self) -> Backend:
        """Open the backend in this process."""
        common = dict(bos=self.bos, max_length=self.max_length, truncation=self.truncation)
        if self.kind == "vllm":
            from mnemoscope.engine.vllm import VLLMBackend

            return VLLMBackend(self.model, dtype=self.dtype, device=self.device, revision=self.revision,
                               trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle,
                               **common, **self.options)
        from mnemoscope.engine.hf import HFEngine
        from mnemoscope.engine.loading import load_model

        loaded = load_model(self.model, dtype=self.dtype, device=self.device, revision=self.revision,
                            trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle)
        return HFEngine.from_loaded(loaded, **common, **self.options)


def open_backend(
    kind: str,
    model: str,
    *,
    workers: int = 1,
    executor: str = "processes",
    dtype: str = "auto",
    device: str = "auto",
    bos: str = "auto",
    max_length: int | None = None,
    truncation: str = "refuse",
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    **options,
) -> Backend:
    """The backend ``kind`` on ``model``; with ``workers > 1``, N of them behind a
    :class:`~mnemoscope.engine.workers.ShardedBackend` (``executor``: ``processes`` on this
    machine, one per GPU or one CPU thread each; ``ray``: Ray actors on a cluster).
    Close it with ``close()`` (a no-op for a single HF engine)."""
    spec = BackendSpec(kind, str(model), dtype=dtype, device=device, bos=bos, max_length=max_length,
                       truncation=truncation, revision=revision, trust_remote_code=trust_remote_code,
                       allow_pickle=allow_pickle, options=dict(options))
    if executor not in EXECUTORS:
        raise MnemoscopeError(f"unknown executor '{executor}': use one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise MnemoscopeError(f"--workers must be ≥ 1, got {workers}")
    if workers == 1 and executor == "processes":
        return spec.open()
    from mnemoscope.engine.workers import ShardedBackend

    return ShardedBackend(spec, workers, executor=executor)
