"""Recipes: the experiments a user runs. Each module has ``DEFAULTS`` (the nested config) and
``run(out, overrides, log) -> Path`` (writes a run directory). ``mnemoscope run NAME`` looks the
module up here; add a line to register a new recipe.
"""

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


def get_recipe(name: str):
    """The recipe module for ``name``; unknown names are an error suggesting the nearest."""
    import difflib
    import importlib

    from mnemoscope.errors import MnemoscopeError

    if name not in RECIPES:
        near = difflib.get_close_matches(name, RECIPES, n=1)
        raise MnemoscopeError(
            f"unknown recipe '{name}'" + (f"; did you mean '{near[0]}'?" if near else "")
            + f" (known: {', '.join(sorted(RECIPES))})"
        )
    return importlib.import_module(RECIPES[name])
