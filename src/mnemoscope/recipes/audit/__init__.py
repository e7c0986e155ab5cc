"""Audit: the runs of ``mnemoscope audit`` — every measurement family whose data the config names,
on the user's model, in one run (``recipe.py``). Not a ``mnemoscope run`` recipe (it needs a model
and data), so it is registered in ``recipes.RUN_KINDS``; its report sections are the families'
(``report/sections/``)."""

from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "audit",
    headlines=("mia/min_k_pp/auc", "mia/loss/auc", "extraction/exact/rate@set=member"),
    series=(Series("Membership AUC by attack", "mia/{x}/auc", "attack", chance=0.5),),
    summary="mnemoscope.recipes.audit.recipe:summary",
)
