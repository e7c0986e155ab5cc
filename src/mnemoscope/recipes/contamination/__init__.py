"""Contamination: did a model see a benchmark? Two kinds of run, both written by ``recipe.py``:

- ``contamination``, the lab recipe (``mnemoscope run contamination``): a benchmark planted at known
  doses in a tiny model's training corpus, then each signal's detection rate by dose;
- ``contamination-check``, the runs of the command ``mnemoscope contamination`` (``recipe.run_user``)
  on the user's model, benchmark, corpus and reference set.

Both share the report section in ``report.py`` (each signal's result, what it can show, the items
that trip more than one signal, and the lab's rates by dose) and the terminal summary.
"""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

SECTIONS = ("mnemoscope.recipes.contamination.report",)
SUMMARY = "mnemoscope.recipes.contamination.recipe:summary"

RECIPE = Recipe(
    "contamination",
    "mnemoscope.recipes.contamination.recipe",
    claim=Claim(
        "contamination", "Golchin & Surdeanu 2024 (guided completion); Oren et al. 2024 (order test); "
        "lm-evaluation-harness decontamination",
        "A benchmark planted in training is caught more often than never-planted items of the same benchmark: "
        "guided completion recites heavily planted items from their first half, membership scores them above a "
        "held-out reference, and the order test rejects for items seen in their canonical order.",
        (Effect("contam/guided/detect@dose=64", "guided-completion detection, dose 64 − never planted",
                minus="contam/guided/detect@dose=0"),
         Effect("contam/membership/detect@dose=16", "membership detection (p ≤ 0.05), dose 16 − never planted",
                minus="contam/membership/detect@dose=0"),
         Effect("contam/order/power@dose=16", "order-test power (p ≤ 0.05), dose 16 − never planted",
                minus="contam/order/power@dose=0")),
        scale="Overlap is exact by construction (the corpus is known). The tiny model recites planted items only at "
              "dose 64, and with or without the dataset name alike (the guided − general gap the paper reads is ~0 "
              "here: an item's own first half already identifies it); the papers' settings are pretrained LLMs."),
    headlines=("contam/*/detect@dose=*", "contam/order/power@dose=*"),
    series=(
        Series("Overlap (lm-eval 13-gram) detection by dose", "contam/overlap/detect@dose={x}", "dose"),
        Series("Membership detection by dose (p ≤ 0.05 vs reference)", "contam/membership/detect@dose={x}", "dose"),
        Series("Guided-completion detection by dose", "contam/guided/detect@dose={x}", "dose"),
        Series("Order test power by dose", "contam/order/power@dose={x}", "dose"),
    ),
    sections=SECTIONS,
    summary=SUMMARY,
)

CHECK = Recipe(
    "contamination-check",
    headlines=("contam/overlap/rate", "contam/membership/flagged/rate", "contam/guided/rouge_l/diff",
               "contam/order/p_value"),
    sections=SECTIONS,
    summary=SUMMARY,
)
