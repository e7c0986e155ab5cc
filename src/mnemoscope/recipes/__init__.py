"""Recipes: the experiments a user runs, each a plug-in declaring what it is.

A recipe is a folder ``recipes/<name>/``: ``__init__.py`` holds its declaration
(``RECIPE = plugin.Recipe(...)``: claim, headline keys, comparison panels, report sections, terminal
summary; light — no torch), ``recipe.py`` the runnable module (``DEFAULTS`` and
``run(out, overrides, log) -> Path``) and, where it has one, ``report.py`` its report section.

Two registries, one line each, map a run kind (the manifest's ``"recipe"``) to the module holding
its declaration:

- ``RECIPES``: what ``mnemoscope run NAME`` runs (and ``--seeds``, ``mnemoscope.run``).
- ``RUN_KINDS``: runs that a command writes (``mnemoscope audit``, ``unlearn``, ``contamination``):
  not runnable with ``mnemoscope run``, declared so that ``compare``, the comparison page and the
  report know their headlines and sections. A module may hold several declarations (the
  contamination folder declares the lab recipe and the check); the one whose ``name`` matches is used.

``claims``, ``compare``, ``runs``, ``report.html`` and ``report.comparison`` read the declarations
through :func:`declaration` / :func:`declarations`; none of them names a recipe.
"""

from __future__ import annotations

RECIPES = {
    "quickstart": "mnemoscope.recipes.quickstart",
    "unlearning": "mnemoscope.recipes.unlearning",
    "acquisition": "mnemoscope.recipes.acquisition",
    "retention": "mnemoscope.recipes.retention",
    "capacity": "mnemoscope.recipes.capacity",
    "reasoning": "mnemoscope.recipes.reasoning",
    "sort": "mnemoscope.recipes.sort",
    "extraction": "mnemoscope.recipes.extraction",
    "mechanisms": "mnemoscope.recipes.mechanisms",
    "contamination": "mnemoscope.recipes.contamination",
}

RUN_KINDS = {
    "audit": "mnemoscope.recipes.audit",
    "unlearn": "mnemoscope.recipes.unlearning",
    "contamination-check": "mnemoscope.recipes.contamination",
}


def declaration(name: str | None):
    """The :class:`~mnemoscope.recipes.plugin.Recipe` declared for run kind ``name`` (a recipe or a
    command's runs); None for a name no registry holds (e.g. a run written by another version)."""
    import importlib

    from mnemoscope.recipes.plugin import Recipe

    path = RECIPES.get(name or "") or RUN_KINDS.get(name or "")
    if path is None:
        return None
    module = importlib.import_module(path)
    found = [v for v in vars(module).values() if isinstance(v, Recipe) and v.name == name]
    if not found:
        raise ValueError(f"{path} declares no Recipe named {name!r} (registered in mnemoscope.recipes)")
    return found[0]


def declarations() -> list:
    """Every registered declaration: the runnable recipes, then the commands' run kinds."""
    return [declaration(name) for name in [*RECIPES, *RUN_KINDS]]


def get_recipe(name: str):
    """The runnable module of recipe ``name``; unknown names are an error suggesting the nearest."""
    import difflib

    from mnemoscope.errors import MnemoscopeError

    if name not in RECIPES:
        near = difflib.get_close_matches(name, RECIPES, n=1)
        raise MnemoscopeError(
            f"unknown recipe '{name}'" + (f"; did you mean '{near[0]}'?" if near else "")
            + f" (known: {', '.join(sorted(RECIPES))})"
        )
    return declaration(name).load()


def claim_for(name: str | None):
    """The :class:`~mnemoscope.claims.Claim` the run kind ``name`` declares; None when it declares
    none or no registry holds it."""
    found = declaration(name)
    return None if found is None else found.claim
