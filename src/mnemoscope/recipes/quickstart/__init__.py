"""Quickstart: canaries written into a tiny model at known doses (1–64 repetitions), then audited by
dose — membership inference and verbatim extraction rise with the dose. The runnable module is
``recipe.py``; its sections are the membership ones it shares with ``mnemoscope audit``
(``report/sections/membership.py``)."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "quickstart",
    "mnemoscope.recipes.quickstart.recipe",
    claim=Claim(
        "quickstart", "Carlini et al. 2023, Quantifying Memorization Across Neural Language Models",
        "Memorization grows with duplication: canaries trained 64 times are extracted verbatim more often "
        "and told apart from never-seen controls better than canaries trained once.",
        (Effect("extraction/exact/rate@dose=64", "exact extraction, dose 64 − dose 1",
                minus="extraction/exact/rate@dose=1"),
         Effect("mia/min_k_pp/auc@dose=64", "Min-K%++ AUC, dose 64 − dose 1", minus="mia/min_k_pp/auc@dose=1"),
         Effect("mia/min_k_pp/auc@dose=64", "Min-K%++ AUC at dose 64 vs chance", ">", 0.5)),
        scale="At the tiny scale the trend with dose is what can be shown; doses are exact repetitions of "
              "synthetic canaries, not duplicates found in a web corpus."),
    headlines=("mia/min_k_pp/auc", "mia/loss/auc", "train/final_loss", "extraction/exact/rate@dose=*"),
    series=(
        Series("Membership AUC (Min-K%++) by dose", "mia/min_k_pp/auc@dose={x}", "dose", chance=0.5),
        Series("Membership AUC (loss) by dose", "mia/loss/auc@dose={x}", "dose", chance=0.5),
        Series("Exact extraction by dose", "extraction/exact/rate@dose={x}", "dose"),
        Series("Memorization score by dose", "extraction/memorization/mean@dose={x}", "dose"),
    ),
    summary="mnemoscope.recipes.quickstart.recipe:summary",
)
