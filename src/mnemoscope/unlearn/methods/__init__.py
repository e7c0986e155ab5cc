"""Unlearning methods: one module each holding ``METHOD`` (see ``methods.base.Method``).

``METHODS`` maps a method's name to its module; the runner, the recipe, the CLI help and the docs
table all read it. Adding a method is its module plus one line here.
"""

from __future__ import annotations

import difflib
import importlib

from mnemoscope.errors import MnemoscopeError

METHODS: dict[str, str] = {
    "ga": "mnemoscope.unlearn.methods.ga",
    "gd": "mnemoscope.unlearn.methods.gd",
    "kl": "mnemoscope.unlearn.methods.kl",
    "npo": "mnemoscope.unlearn.methods.npo",
    "npo_gd": "mnemoscope.unlearn.methods.npo_gd",
    "npo_kl": "mnemoscope.unlearn.methods.npo_kl",
    "simnpo": "mnemoscope.unlearn.methods.simnpo",
    "simnpo_gd": "mnemoscope.unlearn.methods.simnpo_gd",
    "task_vector": "mnemoscope.unlearn.methods.task_vector",
    "rmu": "mnemoscope.unlearn.methods.rmu",
    "whp": "mnemoscope.unlearn.methods.whp",
    "uld": "mnemoscope.unlearn.methods.uld",
    "flat": "mnemoscope.unlearn.methods.flat",
    "idkdpo": "mnemoscope.unlearn.methods.idkdpo",
    "undial": "mnemoscope.unlearn.methods.undial",
    "wga": "mnemoscope.unlearn.methods.wga",
    "satimp": "mnemoscope.unlearn.methods.satimp",
    "ceu": "mnemoscope.unlearn.methods.ceu",
}

__all__ = ["METHODS", "get_method"]


def get_method(name: str):
    """The ``Method`` registered as ``name``; an unknown name is an error suggesting the nearest."""
    if name not in METHODS:
        known = sorted(METHODS)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise MnemoscopeError(f"unlearning method {name!r} is unknown.{hint} Set the method to one of: "
                              f"{', '.join(known)}")
    return importlib.import_module(METHODS[name]).METHOD
