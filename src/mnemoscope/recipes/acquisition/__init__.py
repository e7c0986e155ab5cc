"""Acquisition: fictional knowledge forming and fading during training (Chang et al. 2024). The
runnable module is ``recipe.py``; its report section (probe curves, retainability with decay fits)
is ``report.py``."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

GROUPS = ("paraphrase", "duplicate", "once")

RECIPE = Recipe(
    "acquisition",
    "mnemoscope.recipes.acquisition.recipe",
    claim=Claim(
        "acquisition",
        "Chang et al. 2024, How Do Large Language Models Acquire Factual Knowledge During Pretraining?",
        "Injected facts are forgotten once injections stop (probe loss rises by more than the never-seen "
        "control drifts), and facts injected as duplicates are forgotten faster than paraphrased ones.",
        (Effect("acquisition/nll/rise_after_last_vs_control@group=paraphrase,probe=memorization",
                "memorization-probe NLL rise after the last injection beyond the control (paraphrase)"),
         Effect("acquisition/retainability/decay_a@group=duplicate,probe=memorization",
                "decay a, duplicate − paraphrase (memorization probes)",
                minus="acquisition/retainability/decay_a@group=paraphrase,probe=memorization"),
         Effect("acquisition/retainability/decay_a@group=duplicate,probe=semantic",
                "decay a, duplicate − paraphrase (semantic probes)",
                minus="acquisition/retainability/decay_a@group=paraphrase,probe=semantic")),
        scale="Tiny scale: injections fill ~40% of a batch and the R² of the log-decay fits is low (0.2–0.4); "
              "--set scale=paper (GPU) uses the published spacing and window."),
    headlines=("acquisition/retainability/decay_a@group=*,probe=memorization",),
    series=(
        Series("Retainability decay (memorization probes)",
               "acquisition/retainability/decay_a@group={x},probe=memorization", "injection", GROUPS),
        Series("NLL rise beyond the control (memorization probes)",
               "acquisition/nll/rise_after_last_vs_control@group={x},probe=memorization", "injection", GROUPS),
    ),
    sections=("mnemoscope.recipes.acquisition.report",),
    pooled="mnemoscope.recipes.acquisition.pooled:pool",
)
