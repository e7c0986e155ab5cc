"""Extraction: exact, approximate and untargeted extraction of canaries by dose, with and without
the MemFree verbatim filter, the adversarial compression ratio, the provenance test of a derived
and an independent model, and forecasting from checkpoints (Ippolito et al. 2023; Kuditipudi et al.
2025). The runnable module is ``recipe.py``; its by-dose report section is ``report.py`` (each
family's own section is in ``report/sections/extraction_families.py``)."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe

RECIPE = Recipe(
    "extraction",
    "mnemoscope.recipes.extraction.recipe",
    claim=Claim(
        "extraction", "Ippolito et al. 2023; Kuditipudi et al. 2025",
        "Blocking verbatim training n-grams (MemFree) stops exact extraction of heavily repeated canaries, "
        "and the order of training data is detectable in a model fine-tuned from the original but not in "
        "one trained independently.",
        (Effect("approx/exact/rate@dose=64", "exact extraction at dose 64, unfiltered − MemFree",
                minus="approx/exact/rate@dose=64,filter=memfree"),
         Effect("provenance/p_value@suspect=derived", "provenance p-value, derived model", "<", 0.01),
         Effect("provenance/p_value@suspect=independent", "provenance p-value, independent model", ">", 0.01)),
        scale="Ippolito et al.'s second finding (approximate memorization survives the filter) is not "
              "reproduced: the tiny model's filtered continuations drift rather than rephrase."),
    sections=("mnemoscope.recipes.extraction.report",),
    summary="mnemoscope.recipes.extraction.recipe:summary",
)
