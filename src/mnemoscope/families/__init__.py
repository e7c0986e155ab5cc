"""Measurement families: one module each, read → plan → measure → Result (see ``families.base``).

``FAMILIES`` lists them in the order ``mnemoscope audit`` runs them and the report shows them;
adding a family is its module plus one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES: dict[str, str] = {
    "blind": "mnemoscope.families.blind",  # first: the summary and report open with what the sets say without the model
    "membership": "mnemoscope.families.membership",
    "extraction": "mnemoscope.families.extraction",
    "pythia": "mnemoscope.families.pythia",
    "verbmem": "mnemoscope.families.verbmem",
    "knowmem": "mnemoscope.families.knowmem",
    "multichoice": "mnemoscope.families.multichoice",
    "tofu": "mnemoscope.families.tofu",
    "target": "mnemoscope.families.target",
    "recognition": "mnemoscope.families.recognition",
    "recall": "mnemoscope.families.recall",
    "sort": "mnemoscope.families.sort",
    "reasoning": "mnemoscope.families.reasoning",
    "limem": "mnemoscope.families.limem",
    "approximate": "mnemoscope.families.approximate",
    "untargeted": "mnemoscope.families.untargeted",
    "acr": "mnemoscope.families.acr",
    "provenance": "mnemoscope.families.provenance",
    "forecast": "mnemoscope.families.forecast",
    "mechanisms": "mnemoscope.families.mechanisms",
}


def family(name: str) -> ModuleType:
    """The module of family ``name``."""
    return importlib.import_module(FAMILIES[name])


def all_families() -> list[ModuleType]:
    """Every registered family module, in registry order."""
    return [family(name) for name in FAMILIES]
