"""What every measurement family is: read → plan → measure → :class:`Result`.

A family is one module in ``mnemoscope/families/`` registered in ``families.FAMILIES``. It
declares, as module constants:

- ``NAME``: registry key; its per-item table is ``family_samples/<NAME>.parquet`` (or ``SAMPLES``);
- ``TITLE``: a human title (report section, progress bars, summaries);
- ``DEFAULTS``: the config section(s) it reads, with defaults (merged into ``mnemoscope audit``'s
  config, so ``--config`` YAML and ``--set`` reach it);
- ``PATH_KEYS``: dotted config keys that hold input files (relative to the YAML file);
- ``MODEL_KEYS`` (optional): dotted keys naming further models (loaded by the caller into
  ``Context.engines`` under that key);
- ``NEEDS``: the engine capabilities it cannot do without (``engine.backend.CAPABILITIES``);

and three functions:

- ``read(cfg, ctx) -> inputs | None``: read and validate the files its section names, without a
  model (None: the section names no data, the family does not run);
- ``plan(inputs, engine, ctx) -> plan``: encode everything it will ask the engine (prompts as
  token ids, (context, target) pairs as ``Encoded``), so length and tokenizer problems fail
  before anything is written — and the measurement runs exactly what was checked;
- ``measure(plan, engine, ctx) -> Result``.

Families never call a tokenizer or a private name of the engine; they use the engine contract.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from mnemoscope.errors import MnemoscopeError
from mnemoscope.rundir import add_note


@dataclass
class Result:
    """What a measurement returns: a per-item table, flat metrics and notes.

    ``metrics``: ``{"family/metric[/stat][@group]": value}``; a value that cannot be computed is
    None (null in metrics.json) and ``notes[key]`` says why — one convention everywhere.
    ``notes`` also explains partial results (e.g. items that were skipped). A Result unpacks as
    ``samples, metrics, notes``.
    """

    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.samples, self.metrics, self.notes))

    def note(self, key: str, reason: str) -> None:
        """Record why ``key`` is null, partial or absent (several reasons are joined by '; ')."""
        add_note(self.notes, key, reason)

    def not_computed(self, key: str, reason: str) -> None:
        """``key`` is null and ``reason`` says why."""
        self.metrics[key] = None
        self.note(key, reason)

    def update(self, other: Result) -> Result:
        """Add another result's metrics and notes, and append its rows to the samples."""
        self.metrics.update(other.metrics)
        for key, reason in other.notes.items():
            self.note(key, reason)
        if len(other.samples):
            self.samples = other.samples if not len(self.samples) else pd.concat(
                [self.samples, other.samples], ignore_index=True)
        return self


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass
class Context:
    """What a family may use besides its inputs and the engine: the run's seed and bootstrap
    size, further engines named by ``MODEL_KEYS``, notes gathered while reading and planning
    (the caller adds them to the family's Result), and where to print."""

    seed: int = 0
    n_boot: int = 1000
    engines: dict = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print
    warn: Callable[[str], None] = _stderr

    def note(self, key: str, reason: str) -> None:
        add_note(self.notes, key, reason)


def plan_and_measure(plan, measure, inputs, engine, ctx: Context | None = None) -> Result:
    """``measure(plan(inputs))`` with the notes gathered while planning added to the Result: what
    the audit does for one family, for callers that hold inputs already (recipes, tests)."""
    ctx = ctx or Context()
    result = measure(plan(inputs, engine, ctx), engine, ctx)
    for key, reason in ctx.notes.items():
        result.note(key, reason)
    return result


def encode_each(encode, items, what: str, ids=None, hint: str = "") -> list:
    """``[encode(item) for item in items]``, an encoding error naming the family's item (its id
    when given, else its position) and, with ``hint``, the setting that helps."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(encode(item))
        except MnemoscopeError as err:
            name = ids[i] if ids is not None else i
            raise MnemoscopeError(f"{what} {name!r}: {err}" + (f" ({hint})" if hint else "")) from None
    return out


def check_generation(engine, prompts: list[list[int]], max_new: int, what: str, key: str,
                     ids: list[str] | None = None) -> None:
    """Prompt tokens + new tokens must fit the context (generation never truncates): a one-line
    error naming the item (its id when given) and the setting to change."""
    for i, p in enumerate(prompts):
        if not engine.fits(len(p) + max_new):
            name = f"{what} {ids[i]!r}" if ids is not None else f"{what} {i}"
            raise MnemoscopeError(f"{name}: a prompt of {len(p)} tokens + {key}={max_new} new tokens exceeds the "
                                  f"model's context ({engine.max_length}); shorten the prompt or lower {key}")


def field_pair(item, keys: tuple[str, str], where: str) -> tuple[str, str]:
    """(a, b) from a 2-tuple or from a mapping with ``keys``, both strings."""
    if isinstance(item, Mapping):
        missing = [k for k in keys if k not in item]
        if missing:
            raise MnemoscopeError(f"{where}: missing field(s) {missing}")
        a, b = item[keys[0]], item[keys[1]]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        a, b = item
    else:
        raise MnemoscopeError(f"{where}: expected a ({keys[0]}, {keys[1]}) pair or an object with those fields")
    if not isinstance(a, str) or not isinstance(b, str):
        raise MnemoscopeError(f"{where}: fields {keys[0]} and {keys[1]} must be strings")
    return a, b
