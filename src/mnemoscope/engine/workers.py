"""Data-parallel measurement: one backend per worker, every call's items shared between them.

``ShardedBackend(spec, workers=N)`` starts N workers, each opening its own backend from a
picklable spec (``factory.BackendSpec``: kind, model, dtype, ...):

- ``executor="processes"``: N spawned processes on this machine, worker i on GPU i (N ≤ the
  number of GPUs) or, on a CPU, with ``threads`` torch threads each (default 1; N × threads ≤
  the cores this process may use);
- ``executor="ray"``: N Ray actors (``pip install 'mnemoscope[ray]'``), placed by Ray on the
  cluster that ``ray.init()`` joins (``RAY_ADDRESS``), one GPU each when the spec asks for CUDA.
  Plain actors, not a Ray Data pipeline: they hold their model across every call of a run
  (a Ray Data ``map_batches`` would reload it for each call).

The wrapper encodes in the calling process with the same encoding verbs and tokenizer as the
workers, so items travel as token ids. ``score_encoded`` and ``generate`` split the items into
N shards of near-equal token counts (longest first, each to the least-loaded worker), run the
shards in parallel, and put the results back in the caller's order: one worker's results, up to
float tolerance. Greedy generation is identical; sampled generation is reproducible for the
same number of workers (each backend seeds by the item's index within its shard).

A worker that dies mid-call (killed, out of memory) stops the call with a one-line error: the
call returns nothing, so nothing downstream is written, and every worker is shut down.
"""

from __future__ import annotations

import os
import pickle
import traceback

from mnemoscope.engine.backend import (
    Backend,
    Continuation,
    TokenScores,
    _check_scorable,
)
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError

START_TIMEOUT = 900  # seconds for every worker to load its model


# --------------------------------------------------------------------------- sharding


def shard(costs: list[int], parts: int) -> list[list[int]]:
    """Indices split into ``parts`` lists of near-equal total cost (longest-processing-time first:
    items by decreasing cost, each to the currently least-loaded part). Each list is ascending."""
    loads = [0] * parts
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        k = min(range(parts), key=lambda k: (loads[k], k))
        out[k].append(i)
        loads[k] += costs[i]
    return [sorted(o) for o in out]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def assign_devices(device: str, workers: int, threads: int = 1) -> list[str]:
    """One device per worker: ``cuda:i`` for worker i on GPUs, ``cpu`` otherwise. Refuses more
    workers than devices (GPUs, or cores at ``threads`` each)."""
    import torch

    from mnemoscope.engine.loading import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            raise MnemoscopeError(f"--workers {workers} with --device {device}: give --device cuda and each worker takes one GPU")
        gpus = torch.cuda.device_count()
        if workers > gpus:
            raise MnemoscopeError(f"--workers {workers} but this machine has {gpus} GPU(s): one worker per GPU; "
                                  f"use --workers {gpus} or --executor ray on a cluster")
        return [f"cuda:{i}" for i in range(workers)]
    cores = usable_cores()
    if workers * threads > cores:
        raise MnemoscopeError(f"--workers {workers} × {threads} thread(s) but this process may use {cores} CPU core(s): "
                              f"use --workers {max(1, cores // threads)} or fewer")
    return ["cpu"] * workers


# --------------------------------------------------------------------------- one worker


class _Worker:
    """What runs inside a worker: one backend, and the verbs the wrapper calls on it."""

    def __init__(self, spec, threads: int, visible_gpu: str | None = None):
        import torch

        if visible_gpu is not None:  # the worker sees only its GPU, as cuda:0 (vLLM needs this)
            os.environ["CUDA_VISIBLE_DEVICES"] = visible_gpu
            spec = spec.on("cuda")
        torch.set_num_threads(threads)
        self.backend = spec.open()

    def meta(self) -> dict:
        b = self.backend
        return {"name": b.name, "provides": sorted(b.provides), "max_length": b.max_length, "bos": b.bos}

    def call(self, verb: str, args: tuple, kwargs: dict):
        return getattr(self.backend, verb)(*args, **kwargs)


def _serve(conn, spec, threads: int, visible_gpu: str | None) -> None:
    """A worker process: open the backend, then answer (verb, args, kwargs) messages until None.
    Replies ("ok", value), ("user", message) for a MnemoscopeError, ("error", traceback)."""
    try:
        worker = _Worker(spec, threads, visible_gpu)
        conn.send(("ok", worker.meta()))
    except MnemoscopeError as exc:
        conn.send(("user", str(exc)))
        return
    except BaseException:  # noqa: BLE001 — reported to the parent, which raises
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the parent went away
            return
        if msg is None:
            break
        try:
            conn.send(("ok", worker.call(*msg)))
        except MnemoscopeError as exc:
            conn.send(("user", str(exc)))
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))
    worker.backend.close()


def _raise(reply, where: str):
    status, value = reply
    if status == "user":
        raise MnemoscopeError(value)
    if status == "error":
        raise RuntimeError(f"{where} failed:\n{value}")
    return value


# --------------------------------------------------------------------------- pools


class ProcessPool:
    """N spawned worker processes on this machine, one pipe each."""

    def __init__(self, spec, workers: int, threads: int = 1):
        self.spec, self.n, self.threads = spec, workers, threads
        self.devices = assign_devices(spec.device, workers, threads)
        self.procs, self.conns = [], []

    def where(self, i: int) -> str:
        return f"worker {i} ({self.devices[i]})"

    def start(self) -> list[dict]:
        import atexit
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # a fork would copy a parent's torch threads and CUDA state
        # Registered after multiprocessing's own exit hook, so it runs first (LIFO): the workers
        # are told to stop before multiprocessing joins them.
        atexit.register(self.close)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        for i, device in enumerate(self.devices):
            gpu = None
            if device.startswith("cuda"):
                gpu = visible[i] if visible != [""] else str(i)
            parent, child = ctx.Pipe()
            # Not a daemon: a daemonic process may not start children (vLLM on a GPU spawns its
            # engine). A worker whose parent dies reads EOF from its pipe and exits.
            proc = ctx.Process(target=_serve, args=(child, self.spec, self.threads, gpu), daemon=False,
                               name=f"mnemoscope-worker-{i}")
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        return self._gather(range(self.n), "starting", START_TIMEOUT)

    def run(self, verb: str, jobs: dict[int, tuple], kwargs: dict) -> dict[int, object]:
        for i, args in jobs.items():
            self.conns[i].send((verb, args, kwargs))
        return self._gather(jobs, verb, None)

    def _gather(self, which, verb: str, timeout: float | None) -> dict | list:
        """Wait for one reply from each worker in ``which``; a worker that exits first is dead."""
        from multiprocessing.connection import wait

        pending = set(which)
        replies: dict[int, tuple] = {}
        while pending:
            by_conn = {self.conns[i]: i for i in pending}
            by_sentinel = {self.procs[i].sentinel: i for i in pending}
            ready = wait(list(by_conn) + list(by_sentinel), timeout=timeout)
            if not ready:
                self.close(force=True)
                raise MnemoscopeError(f"workers did not answer within {timeout} s while {verb}: shut them down")
            for obj in ready:
                i = by_conn.get(obj, by_sentinel.get(obj))
                if i not in pending:
                    continue
                conn = self.conns[i]
                try:
                    if obj is conn or conn.poll():
                        replies[i] = conn.recv()
                        pending.discard(i)
                        continue
                except (EOFError, OSError):
                    pass
                self.procs[i].join(timeout=5)
                code = self.procs[i].exitcode
                self.close(force=True)
                raise MnemoscopeError(
                    f"{self.where(i)} died (exit code {code}) while {verb}: the call returned nothing and nothing was "
                    "written; all workers were stopped. An exit code of -9 is usually the out-of-memory killer: "
                    "use fewer --workers or a smaller model, then rerun (finished runs resume)")
        errors = [(i, r) for i, r in sorted(replies.items()) if r[0] != "ok"]
        if errors and verb == "starting":
            self.close(force=True)
        for i, reply in errors:
            _raise(reply, f"{self.where(i)} {verb}")
        values = {i: r[1] for i, r in replies.items()}
        return [values[i] for i in sorted(values)] if verb == "starting" else values

    def close(self, force: bool = False) -> None:
        import atexit

        atexit.unregister(self.close)
        for conn, proc in zip(self.conns, self.procs):
            if not force and proc.is_alive():
                try:
                    conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for proc in self.procs:
            proc.join(timeout=0 if force else 30)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []


def require_ray():
    try:
        import ray
    except ImportError:
        raise MnemoscopeError("--executor ray needs the 'ray' package, which is not installed: "
                              "pip install 'mnemoscope[ray]' (or use the default executor, processes)") from None
    return ray


class RayPool:
    """N Ray actors, each holding a backend, on the cluster ``ray.init()`` joins."""

    def __init__(self, spec, workers: int, threads: int = 1):
        self.ray = require_ray()
        self.spec, self.n, self.threads = spec, workers, threads
        self.actors = []
        self.gpu = str(spec.device).startswith("cuda")

    def where(self, i: int) -> str:
        return f"Ray worker {i}"

    def start(self) -> list[dict]:
        ray = self.ray
        if not ray.is_initialized():
            # Joins RAY_ADDRESS's cluster when set, else starts a local one.
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        have = ray.cluster_resources()
        need, what = ("GPU", "GPU(s)") if self.gpu else ("CPU", "CPU core(s)")
        per = 1 if self.gpu else self.threads
        if self.n * per > have.get(need, 0):
            raise MnemoscopeError(f"--workers {self.n} needs {self.n * per} {what} but the Ray cluster has "
                                  f"{int(have.get(need, 0))}: use fewer --workers or add nodes")
        actor = ray.remote(num_cpus=0 if self.gpu else self.threads, num_gpus=1 if self.gpu else 0,
                           max_restarts=0)(_Worker)
        # Ray already narrows CUDA_VISIBLE_DEVICES to the actor's GPU.
        self.actors = [actor.remote(self.spec, self.threads, None) for _ in range(self.n)]
        return [self._get(ref, i, "starting") for i, ref in enumerate([a.meta.remote() for a in self.actors])]

    def run(self, verb: str, jobs: dict[int, tuple], kwargs: dict) -> dict[int, object]:
        refs = {i: self.actors[i].call.remote(verb, args, kwargs) for i, args in jobs.items()}
        return {i: self._get(ref, i, verb) for i, ref in refs.items()}

    def _get(self, ref, i: int, verb: str):
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise MnemoscopeError(
                f"{self.where(i)} died while {verb}: the call returned nothing and nothing was written; all "
                f"workers were stopped ({str(exc).splitlines()[0][:200]})") from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, MnemoscopeError):
                raise MnemoscopeError(str(cause)) from None
            raise

    def close(self, force: bool = False) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []


# --------------------------------------------------------------------------- the wrapper


SHARDED_VERBS = frozenset({"logprobs", "distribution", "generate", "sample", "banned"})


class ShardedBackend(Backend):
    """A backend whose calls run on ``workers`` backends opened from ``spec`` (see the module
    docstring). ``spec`` is a ``factory.BackendSpec`` or any picklable object with ``open()``,
    ``on(device)``, ``device``, ``model``, ``bos``, ``truncation``, ``revision`` and
    ``trust_remote_code``."""

    def __init__(self, spec, workers: int, *, executor: str = "processes", threads: int = 1):
        from mnemoscope.engine.loading import load_tokenizer

        if workers < 1:
            raise MnemoscopeError(f"--workers must be ≥ 1, got {workers}")
        if threads < 1:
            raise MnemoscopeError(f"worker threads must be ≥ 1, got {threads}")
        tokenizer = load_tokenizer(spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
        if executor == "ray":
            self.pool = RayPool(spec, workers, threads)
        elif executor == "processes":
            self.pool = ProcessPool(spec, workers, threads)
        else:
            raise MnemoscopeError(f"unknown executor '{executor}': use processes or ray")
        self.workers = workers
        metas = self.pool.start()
        first = metas[0]
        if any(m != first for m in metas[1:]):
            self.pool.close(force=True)
            raise RuntimeError(f"workers opened different backends: {metas}")
        super().__init__(tokenizer, bos=spec.bos, max_length=first["max_length"], truncation=spec.truncation)
        if self.bos != first["bos"]:
            self.pool.close(force=True)
            raise RuntimeError("the workers' BOS policy differs from the caller's")
        self.name = f"{first['name']} ×{workers}"
        # only the verbs shared between workers: what reads or changes one model's insides
        # (activations, steering, gradients) stays with a single engine
        self.provides = frozenset(first["provides"]) & SHARDED_VERBS
        self._open = True

    def _run(self, verb: str, costs: list[int], payload, kwargs: dict) -> list:
        """Shard ``payload`` (a list) by ``costs``, call ``verb`` on each worker's shard, merge."""
        if not self._open:
            raise MnemoscopeError("this sharded backend was closed (a worker died or close() was called): open a new one")
        if not payload:
            return []
        shards = [s for s in shard(costs, self.workers)]
        jobs = {k: ([payload[i] for i in s],) for k, s in enumerate(shards) if s}
        try:
            replies = self.pool.run(verb, jobs, kwargs)
        except MnemoscopeError:
            if not self.pool_alive():
                self._open = False
            raise
        merged: list = [None] * len(payload)
        for k, s in enumerate(shards):
            for i, value in zip(s, replies.get(k, [])):
                merged[i] = value
        return merged

    def pool_alive(self) -> bool:
        procs = getattr(self.pool, "procs", None)
        return bool(procs) if procs is not None else bool(getattr(self.pool, "actors", None))

    def score_encoded(self, items: list[Encoded]) -> list[TokenScores]:
        _check_scorable(items)
        return self._run("score_encoded", [len(it.ids) for it in items], list(items), {})

    def generate(self, prompts, *, max_new_tokens: int, min_new_tokens: int | None = None, sampling=None,
                 banned=None) -> list[Continuation]:
        if max_new_tokens < 1:
            raise MnemoscopeError("max_new_tokens must be ≥ 1")
        if banned is not None:
            self.require("banned", "a banned-token filter during generation")
            try:
                pickle.dumps(banned)
            except Exception:  # noqa: BLE001 — pickling raises many types
                raise MnemoscopeError("the banned-token filter cannot be sent to worker processes (it is not "
                                      "picklable: define it at module level): use --workers 1") from None
        ids = self.prompt_ids(prompts)  # as token ids: the workers add no BOS
        kwargs = dict(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, sampling=sampling, banned=banned)
        return self._run("generate", [len(p) + max_new_tokens for p in ids], ids, kwargs)

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            self.pool.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 — interpreter shutdown
            pass
