"""Audit any causal LM: every measurement family whose data the config names, in one run.

Read top to bottom:

1. config: defaults (the common sections below + each family's ``DEFAULTS``) < YAML file < flags;
2. each family reads and validates its input files (no model needed yet);
3. load the model, and any further model a family names (e.g. ``membership.ref_model``);
4. each family plans its work: every prompt and pair is encoded, so a text longer than the
   context or a tokenizer mismatch fails here — before the run directory exists;
5. open the run directory; each family measures; write metrics.json, notes.json, the tables
   (``samples.parquet`` for membership, ``family_samples/<family>.parquet`` for the others),
   manifest.json and the report.

The families and their config sections are listed in ``families.FAMILIES`` and described in
docs/formats.md ("Audit config"). What cannot be computed is null in metrics.json and explained
in notes.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from mnemoscope import rundir
from mnemoscope.config import Typed, flatten, merge_sections, resolve
from mnemoscope.engine import Backend, open_backend
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import all_families
from mnemoscope.families.base import Context
from mnemoscope.recipes.common import finish_run
from mnemoscope.summary import fmt_metric

FAMILIES = all_families()
COMMON = {
    "seed": 0,
    "model": {"name": "", "dtype": "auto", "device": "auto", "revision": Typed(str), "trust_remote_code": False,
              "allow_pickle": False},
    "engine": {"bos": "auto", "truncation": "refuse", "max_length": Typed(int), "max_batch_size": 64, "max_tokens": 16384,
               "backend": "hf", "workers": 1, "executor": "processes", "vllm_distribution": False},
    "audit": {"n_boot": 1000},
}
DEFAULTS = merge_sections(COMMON, *(f.DEFAULTS for f in FAMILIES))
# Config keys holding input files (relative to the YAML file) and models (relative when that path exists).
PATH_KEYS = tuple(key for f in FAMILIES for key in f.PATH_KEYS)
MODEL_KEYS = ("model.name", *(key for f in FAMILIES for key in getattr(f, "MODEL_KEYS", ())))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, but a key written twice in one mapping is an error (PyYAML keeps the
    last silently, so a second ``data:`` section would replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one section; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config_file(path: str | Path) -> dict[str, object]:
    """A YAML audit config → dotted overrides, checked against ``DEFAULTS`` (an unknown key is an
    error naming the file and the nearest known key). Relative file paths become relative to the
    YAML file's folder."""
    path = Path(path)
    if not path.is_file():
        raise MnemoscopeError(f"{path}: audit config not found; check the --config path")
    try:
        tree = yaml.load(path.read_bytes().decode("utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as exc:
        raise MnemoscopeError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise MnemoscopeError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                              "fix the syntax (see docs/formats.md, 'Audit config')") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise MnemoscopeError(f"{path}: an audit config must be a YAML mapping of sections (data:, knowmem:, ...)")
    for name, section in list(tree.items()):
        if not isinstance(DEFAULTS.get(name), dict) or isinstance(section, dict):
            continue  # a known section as a mapping, or a key resolve() will judge
        if section is None:
            del tree[name]  # a section written with nothing under it sets nothing
        else:
            raise MnemoscopeError(f"{path}: section '{name}:' must hold 'key: value' lines "
                                  f"(e.g. '{name}: {{{next(iter(DEFAULTS[name]))}: ...}}'), got {section!r}")
    flat = flatten(tree)
    resolve(DEFAULTS, flat, where=str(path))  # unknown keys and wrong types fail here, naming the file
    base = path.resolve().parent
    for key in PATH_KEYS + MODEL_KEYS:
        value = flat.get(key)
        if isinstance(value, list):
            flat[key] = [_relative_to(base, path, key, v) for v in value]
        elif value:
            flat[key] = _relative_to(base, path, key, value)
    return flat


def _relative_to(base: Path, config: Path, key: str, value):
    """A relative path in a config file, resolved against the file's folder. A model key's value
    that exists only from the working directory is refused; one that exists nowhere is a hub id
    (loading checks the local cache and the hub at once)."""
    if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
        return value
    candidate = base / Path(value).expanduser()
    if key in PATH_KEYS or candidate.exists():
        return str(candidate)
    if Path(value).exists():
        raise MnemoscopeError(f"{config}: {key} '{value}' is not found relative to the config file "
                              f"({candidate}); paths in a config file are relative to its folder")
    return value


def open_engine(cfg: dict, name: str) -> Backend:
    """The model ``name`` under the run's model and engine settings: the HF engine, the vLLM
    backend (``engine.backend: vllm``), either shared between ``engine.workers`` processes or Ray
    actors (``engine.executor``). See docs/scale.md."""
    m, e = cfg["model"], cfg["engine"]
    options = dict(distribution=e["vllm_distribution"]) if e["backend"] == "vllm" else \
        dict(max_batch_size=e["max_batch_size"], max_tokens=e["max_tokens"], progress=e["workers"] == 1)
    return open_backend(e["backend"], name, workers=int(e["workers"]), executor=e["executor"], dtype=m["dtype"],
                        device=m["device"], bos=e["bos"], max_length=e["max_length"], truncation=e["truncation"],
                        revision=m["revision"], trust_remote_code=m["trust_remote_code"],
                        allow_pickle=m["allow_pickle"], **options)


def in_memory_engine(cfg: dict, model, tokenizer) -> Backend:
    """The HF engine over a model already in memory, under the run's engine settings."""
    from mnemoscope.engine.hf import HFEngine

    e = cfg["engine"]
    if e["backend"] != "hf" or int(e["workers"]) != 1:
        raise MnemoscopeError("an in-memory model runs on the hf backend in this process: drop backend/workers, "
                              "or save it (save_pretrained) and pass its folder")
    return HFEngine(model, tokenizer, bos=e["bos"], max_length=e["max_length"], truncation=e["truncation"],
                    max_batch_size=e["max_batch_size"], max_tokens=e["max_tokens"], progress=True)


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def run(out: str | Path, overrides: dict, log=print, warn=None, loaded: tuple | None = None) -> Path:
    """``loaded``: an in-memory ``(model, tokenizer)`` measured as it is, instead of loading
    ``model.name`` (the Python API's ``mnemoscope.audit(model, tokenizer=...)``)."""
    cfg = resolve(DEFAULTS, overrides)
    warn = warn or (lambda m: print(m, file=sys.stderr))
    if not cfg["model"]["name"]:
        raise MnemoscopeError("audit needs --model PATH_OR_HUB_ID (or model.name in the --config file)")

    # read and validate every input file: no model yet
    reading, skipped = [], []
    for fam in FAMILIES:
        ctx = Context(seed=cfg["seed"], n_boot=cfg["audit"]["n_boot"], log=log, warn=warn)
        inputs = fam.read(cfg, ctx)
        if inputs is not None:
            reading.append((fam, inputs, ctx))
        elif ctx.notes:  # the section names data, but nothing in it can be measured: say why
            skipped.append(ctx)
    if not reading and not skipped:
        raise MnemoscopeError("audit has nothing to measure: give --members and --nonmembers, or a --config file "
                              "naming data for at least one family (see docs/formats.md, 'Audit config')")

    # the models, then every family's plan: too long, mismatched tokenizers fail before anything is written
    engines = [open_engine(cfg, cfg["model"]["name"]) if loaded is None else in_memory_engine(cfg, *loaded)]
    try:
        return _measure(cfg, reading, skipped, engines, out, log)
    finally:
        for backend in engines:
            backend.close()


def _measure(cfg, reading, skipped, engines, out, log) -> Path:
    engine = engines[0]
    extra = {}  # further models by config key: one engine, or a list for a list of models
    for key in MODEL_KEYS[1:]:
        value = _get(cfg, key)
        if isinstance(value, list):
            extra[key] = [open_engine(cfg, v) for v in value]
            engines += extra[key]
        elif value:
            extra[key] = open_engine(cfg, value)
            engines.append(extra[key])
    plans = []
    for fam, inputs, ctx in reading:
        ctx.engines = extra
        for need in fam.NEEDS:
            engine.require(need, fam.TITLE)
        plans.append((fam, fam.plan(inputs, engine, ctx), ctx))

    run = rundir.Run(out, cfg, "audit")
    for ctx in skipped:
        for key, reason in ctx.notes.items():
            run.note(key, reason)
    for fam, plan, ctx in plans:
        with run.phase(fam.NAME), engine.working_on(fam.TITLE):
            result = fam.measure(plan, engine, ctx)
        for key, reason in ctx.notes.items():
            result.note(key, reason)
        table = getattr(fam, "SAMPLES", f"family_samples/{fam.NAME}.parquet").removesuffix(".parquet")
        run.add(result, table)
        if hasattr(fam, "save"):  # a family with more than a table to keep (arrays, direction files)
            fam.save(result, run.out)
    for key, reason in run.notes.items():
        log(f"note: {key}: {reason}")
    model = getattr(engine, "model", None)
    extra = {"model": cfg["model"]["name"], "bos": engine.bos, "backend": engine.name,
             "families": [fam.NAME for fam, _, _ in plans]}
    if model is not None:  # a single HF engine: what was loaded, exactly
        extra.update(dtype=str(next(model.parameters()).dtype), parameters=sum(p.numel() for p in model.parameters()))
    return finish_run(run, device=str(getattr(engine, "device", cfg["model"]["device"])), extra=extra)


def summary(out: Path) -> str:
    """One headline line per family that ran (membership: one per attack), and the notes count."""
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    notes = json.loads((Path(out) / "notes.json").read_text())
    lines = []
    for fam in FAMILIES:
        if hasattr(fam, "headline"):
            lines += fam.headline(metrics)
            continue
        shown = [f"{key} {fmt_metric(key, metrics[key])}" for key in fam.HEADLINE if metrics.get(key) is not None]
        if shown:
            lines.append(f"{fam.TITLE}: " + ", ".join(shown))
    if notes:
        lines.append(f"{len(notes)} note(s) on what was skipped or not computed: {Path(out) / 'notes.json'}")
    return "\n".join(lines)

