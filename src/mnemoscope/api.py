"""The Python API: what the ``mnemoscope`` command does, callable from a notebook.

    import mnemoscope
    res = mnemoscope.run("quickstart", out="runs/qs", train={"steps": 50})
    res.metrics["mia/min_k_pp/auc"], res.samples["samples"].head(), res.report()
    audit = mnemoscope.audit(model, members=["..."], nonmembers=["..."], tokenizer=tok, out="runs/a")
    table = mnemoscope.compare("runs/", metrics=["mia/*/auc"]).values

Each call takes what its command takes — paths, hub ids, the same flag names (``dtype``,
``device``, ``k``, ``n_boot``, ``method``, ``steps``...) and any config key, dotted
(``**{"train.steps": 50}``) or nested (``train={"steps": 50}``) — and also in-memory objects:

- texts as Python lists of strings (written once, content-addressed, to ``<out>-inputs/`` beside
  the run, so the run's config names a file, its manifest hashes it, and a rerun resumes);
- a ``transformers`` model with its tokenizer. ``audit`` measures it as it is in memory (the
  manifest records its class and parameter count: no file to hash); ``unlearn`` trains a copy, so
  the model is saved once (safetensors) to ``<out>-inputs/model-<hash>/`` and unlearned from there.

Each returns a :class:`RunResult` over the run directory. The CLI (``cli.py``) is a thin layer
over these functions.

``mnemoscope.compare`` and ``mnemoscope.unlearn`` are also the names of a module and a package;
:func:`callable_module` makes them callable, so ``mnemoscope.unlearn(...)`` runs the API call
while ``mnemoscope.unlearn.methods`` stays the package it was.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mnemoscope.errors import MnemoscopeError
from mnemoscope.modules import make_callable
from mnemoscope.runs import recording_failure

# The CLI's flags, by the name argparse gives them, and the config key each sets.
AUDIT_FLAGS = {
    "seed": "seed", "model": "model.name", "dtype": "model.dtype", "device": "model.device",
    "revision": "model.revision", "trust_remote_code": "model.trust_remote_code",
    "allow_pickle": "model.allow_pickle", "members": "data.members", "nonmembers": "data.nonmembers",
    "wikimia": "data.wikimia", "drop_overlap": "data.drop_overlap", "bos": "engine.bos",
    "truncation": "engine.truncation", "max_length": "engine.max_length",
    "batch_size": "engine.max_batch_size", "k": "audit.k", "n_boot": "audit.n_boot",
    "backend": "engine.backend", "workers": "engine.workers", "executor": "engine.executor",
    "vllm_distribution": "engine.vllm_distribution",
    "ref_model": "membership.ref_model", "ref_mismatch": "membership.ref_mismatch",
    "lowercase": "membership.lowercase",
}
UNLEARN_FLAGS = {
    "seed": "seed", "model": "model.name", "dtype": "model.dtype", "device": "model.device",
    "forget": "data.forget", "retain": "data.retain", "retrained": "data.retrained",
    "holdout": "data.holdout", "ppl": "data.ppl", "drop_overlap": "data.drop_overlap",
    "refusals": "data.refusals", "mc_forget": "data.mc_forget", "mc_retain": "data.mc_retain",
    "method": "unlearn.method", "steps": "unlearn.steps", "lr": "unlearn.lr",
    "batch_size": "unlearn.batch_size", "eval_every": "unlearn.eval_every", "lora": "unlearn.lora",
}
CONTAMINATION_FLAGS = {
    "seed": "seed", "model": "model.name", "dtype": "model.dtype", "device": "model.device",
    "trust_remote_code": "model.trust_remote_code", "allow_pickle": "model.allow_pickle",
    "benchmark": "contamination.benchmark", "corpus": "contamination.corpus",
    "corpus_index": "contamination.corpus_index", "save_index": "contamination.save_index",
    "reference": "contamination.reference", "dataset": "contamination.dataset",
    "split": "contamination.split", "signals": "contamination.signals",
}


@dataclass(frozen=True)
class RunResult:
    """A finished run directory, read lazily: ``metrics`` (flat keys; None = not computed),
    ``notes`` (why), ``samples`` (every Parquet table by its path without the suffix, e.g.
    ``"samples"``, ``"family_samples/knowmem"``), ``manifest``, ``config`` and ``report()``."""

    path: Path

    def _json(self, name: str) -> dict:
        return json.loads((self.path / name).read_text())

    @property
    def metrics(self) -> dict:
        return self._json("metrics.json")

    @property
    def notes(self) -> dict:
        return self._json("notes.json")

    @property
    def manifest(self) -> dict:
        return self._json("manifest.json")

    @property
    def config(self) -> dict:
        import yaml

        return yaml.safe_load((self.path / "config.yaml").read_text())

    @property
    def samples(self) -> dict:
        import pandas as pd

        return {str(p.relative_to(self.path).with_suffix("")): pd.read_parquet(p)
                for p in sorted(self.path.rglob("*.parquet")) if _is_table(p, self.path)}

    def report(self) -> Path:
        """The path of ``report.html`` (written again from the run directory when it is missing)."""
        path = self.path / "report.html"
        if not path.is_file():
            from mnemoscope.report.html import write_report

            path = write_report(self.path)
        return path

    def __repr__(self) -> str:
        return f"RunResult({str(self.path)!r})"


def _is_table(path: Path, run_dir: Path) -> bool:
    """A run's own table, not a file inside a model or checkpoint folder it keeps."""
    parts = path.relative_to(run_dir).parts[:-1]
    return "checkpoints" not in parts and not any(
        (run_dir.joinpath(*parts[: i + 1]) / "config.json").is_file() for i in range(len(parts)))


def settings_to_overrides(settings: dict) -> dict:
    """``{"train": {"steps": 5}, "audit.k": 0.1}`` → ``{"train.steps": 5, "audit.k": 0.1}``."""
    flat: dict = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            for sub, inner in settings_to_overrides(value).items():
                flat[f"{key}.{sub}"] = inner
        else:
            flat[key] = value
    return flat


def _overrides(flags: dict, given: dict) -> dict:
    """Flag names (``dtype``) become their config keys (``model.dtype``); config keys pass through."""
    return settings_to_overrides({flags.get(k, k): v for k, v in given.items() if v is not None})


def _inputs_dir(out: Path) -> Path:
    return out.parent / f"{out.name}-inputs"


def records_file(records, out: Path, role: str) -> str:
    """A list of JSON objects (benchmark items: question, choices, answer ...) as a JSONL file named
    by its content, like :func:`texts_file`; a path is returned as it is."""
    if isinstance(records, (str, Path)):
        return str(records)
    if not isinstance(records, (list, tuple)) or not all(isinstance(r, dict) for r in records):
        raise MnemoscopeError(f"{role}: give a file path or a list of dicts (one per item)")
    return _content_file("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), out, role)


def _content_file(body: str, out: Path, role: str) -> str:
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    path = _inputs_dir(out) / f"{role}-{digest}.jsonl"
    if not path.is_file():
        from mnemoscope.files import write_text

        write_text(path, body)
    return str(path)


def texts_file(texts, out: Path, role: str) -> str:
    """A list of texts as a JSONL file (``{"text": ...}`` per line) named by its content, so the
    same texts give the same path (and a rerun resumes); a path is returned as it is."""
    if isinstance(texts, (str, Path)):
        return str(texts)
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise MnemoscopeError(f"{role}: give a file path or a list of strings")
    return _content_file("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), out, role)


def _in_memory(model, tokenizer) -> bool:
    """Whether ``model`` is a model object (not a path, a hub id, or None: the config's)."""
    if model is None or isinstance(model, (str, Path)):
        return False
    if tokenizer is None:
        raise MnemoscopeError("an in-memory model needs its tokenizer: pass tokenizer=")
    return True


def saved_model(model, tokenizer, out: Path) -> str:
    """Save an in-memory model and tokenizer (safetensors) under ``<out>-inputs/model-<hash>``,
    the hash over its parameters, so the same weights give the same folder."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    folder = _inputs_dir(out) / f"model-{h.hexdigest()[:16]}"
    if not (folder / "config.json").is_file():
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
    return str(folder)


def run(recipe: str = "quickstart", *, out: str | Path | None = None, seeds=None, command: str | None = None,
        **settings):
    """Run a recipe (``mnemoscope run RECIPE``): a :class:`RunResult`; with ``seeds`` (a list or
    ``"0,1,2"``) one run per seed under ``out/seed=N`` and the comparison, as a list of results."""
    from mnemoscope.recipes import get_recipe

    module = get_recipe(recipe)
    overrides = settings_to_overrides(settings)
    if seeds is not None:
        from mnemoscope.recipes.seeds import check_out, parse_seeds, run_seeds

        seed_list = parse_seeds(seeds if isinstance(seeds, str) else ",".join(map(str, seeds)))
        folder = Path(out or f"runs/{recipe}-seeds")
        check_out(folder, overrides)
        return [RunResult(Path(d)) for d in run_seeds(recipe, folder, overrides, seed_list)]
    target = Path(out or f"runs/{recipe}")
    with recording_failure(target, command or f"mnemoscope.run({recipe!r})"):
        return RunResult(Path(module.run(target, overrides)))


def audit(model=None, members=None, nonmembers=None, *, tokenizer=None, config: str | Path | None = None,
          out: str | Path = "runs/audit", log=print, command: str | None = None, **settings) -> RunResult:
    """Audit a model (``mnemoscope audit``). ``model``: a path, a hub id, or a transformers model
    (with ``tokenizer``); ``members`` / ``nonmembers``: files or lists of texts; ``config``: an
    audit YAML (docs/formats.md); ``settings``: flag names or config keys."""
    from mnemoscope.recipes.audit import recipe

    out = Path(out)
    overrides = recipe.load_config_file(config) if config is not None else {}
    in_memory = _in_memory(model, tokenizer)
    given = {"model": f"in-memory {type(model).__name__}" if in_memory else model,  # later entries win
             "members": members, "nonmembers": nonmembers, **settings}
    for role in ("members", "nonmembers"):
        if given[role] is not None:
            given[role] = texts_file(given[role], out, role)
    overrides.update(_overrides(AUDIT_FLAGS, given))
    loaded = (model, tokenizer) if in_memory else None
    with recording_failure(out, command or "mnemoscope.audit(...)"):
        return RunResult(Path(recipe.run(out, overrides, log=log, loaded=loaded)))


def unlearn(model=None, forget=None, retain=None, *, method: str | None = None, tokenizer=None,
            out: str | Path = "runs/unlearn", log=print, command: str | None = None, **settings) -> RunResult:
    """Unlearn ``forget`` from a model and evaluate it six ways (``mnemoscope unlearn``).
    ``forget`` / ``retain`` (and ``holdout``, ``retrained``, ``ppl`` ...): files, or for plain
    texts lists of strings; ``method``: a name from ``unlearn.methods.METHODS``."""
    from mnemoscope.recipes.unlearning import recipe

    out = Path(out)
    given = {"model": saved_model(model, tokenizer, out) if _in_memory(model, tokenizer) else model,  # later win
             "forget": forget, "retain": retain, "method": method, **settings}
    for role in ("forget", "retain", "holdout", "ppl"):
        if given.get(role) is not None:
            given[role] = texts_file(given[role], out, role)
    with recording_failure(out, command or "mnemoscope.unlearn(...)"):
        return RunResult(Path(recipe.run_user(out, _overrides(UNLEARN_FLAGS, given), log=log)))


def contamination(model=None, benchmark=None, *, corpus=None, reference=None, tokenizer=None,
                  out: str | Path = "runs/contamination-check", log=print, command: str | None = None,
                  **settings) -> RunResult:
    """Did the model see this benchmark? (``mnemoscope contamination``): overlap with ``corpus``,
    membership against ``reference``, guided completion and the order test. ``benchmark``: a file
    or a list of item dicts (question, choices, answer[, split, dataset]) in canonical order;
    ``corpus`` / ``reference``: files or lists of texts; ``signals``: a subset of
    ``["overlap", "membership", "guided", "order"]``."""
    from mnemoscope.recipes.contamination import recipe

    out = Path(out)
    in_memory = _in_memory(model, tokenizer)
    given = {"model": f"in-memory {type(model).__name__}" if in_memory else model, **settings}
    if benchmark is not None:
        given["benchmark"] = records_file(benchmark, out, "benchmark")
    for role, texts in (("corpus", corpus), ("reference", reference)):
        if texts is not None:
            given[role] = texts_file(texts, out, role)
    if isinstance(given.get("signals"), str):
        given["signals"] = [x.strip() for x in given["signals"].split(",") if x.strip()]
    loaded = (model, tokenizer) if in_memory else None
    with recording_failure(out, command or "mnemoscope.contamination(...)"):
        return RunResult(Path(recipe.run_user(out, _overrides(CONTAMINATION_FLAGS, given), log=log, loaded=loaded)))


def compare(*targets, metrics: list[str] | None = None):
    """Runs side by side (``mnemoscope compare``): a ``compare.Comparison`` whose ``values`` is a
    DataFrame (rows = runs, columns = metric keys). ``targets``: run directories, folders of
    runs, or :class:`RunResult` objects."""
    from mnemoscope.compare import compare_targets

    return compare_targets(*targets, metrics=metrics)


def callable_module(module_name: str, function_name: str) -> None:
    """Make the imported module ``module_name`` callable as this module's ``function_name``
    (``modules.make_callable``)."""
    make_callable(module_name, globals()[function_name])
