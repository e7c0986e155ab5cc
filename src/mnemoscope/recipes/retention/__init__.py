"""Retention: recognition, recall and forgetting of texts studied a few times (Orhan 2023). The
runnable module is ``recipe.py``; its report section (by exposure group, retention curves with
decay fits, continual-learning metrics) is ``report.py``."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "retention",
    "mnemoscope.recipes.retention.recipe",
    claim=Claim(
        "retention", "Orhan 2023, Recognition, recall, and retention of few-shot memories in large language models",
        "After a few exposures, studied texts are recognised and recalled better than never-studied ones, "
        "recognition improves with the number of exposures, and it fades under continued training on other text.",
        (Effect("recognition/2afc/gain@exposures=3,phase=after_study",
                "2AFC accuracy, 3 exposures − never studied (after study)"),
         Effect("recall/unguessed/gain@exposures=3,phase=after_study",
                "recall of tokens the model could not guess before study, 3 exposures − never studied"),
         Effect("retention/compare/accuracy_gap@a=3,b=1,phase=after_study", "2AFC accuracy, 3 exposures − 1 exposure"),
         Effect("retention/recognition/decay_a@exposures=3", "recognition decay per decade of steps (3 exposures)")),
        scale="One tiny model studies all groups at once, 48 items per group: a single seed's interval on a "
              "one-exposure difference is about ±0.13. --set scale=gpu (200 items per group) narrows it."),
    headlines=("recognition/2afc/accuracy@exposures=*,phase=after_study", "continual/bwt"),
    series=(
        Series("Recognition (2AFC) after study", "recognition/2afc/accuracy@exposures={x},phase=after_study",
               "exposures", chance=0.5),
        Series("Recognition (2AFC) at the end", "recognition/2afc/accuracy@exposures={x},phase=end", "exposures",
               chance=0.5),
        Series("Recall after study", "recall/match_rate/mean@exposures={x},phase=after_study", "exposures"),
    ),
    sections=("mnemoscope.recipes.retention.report",),
)
