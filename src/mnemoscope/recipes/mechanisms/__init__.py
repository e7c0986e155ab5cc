"""Mechanisms: one residual-stream direction that switches a model between recalling and computing,
found with probes and tested by steering and ablation. The runnable module is ``recipe.py``; its
report section follows the mechanisms family's data, so it stays in ``report/sections/mechanisms.py``."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe

RECIPE = Recipe(
    "mechanisms",
    "mnemoscope.recipes.mechanisms.recipe",
    claim=Claim(
        "mechanisms",
        "The Reasoning-Memorization Interplay in Language Models Is Mediated by a Single Direction (2025)",
        "One residual-stream direction switches the model between recalling and computing: steering along "
        "it moves memorised exceptions to the rule's answer and rule prompts to the memorised answer, "
        "far more than a random direction of the same norm.",
        (Effect("mechanisms/recipe/to_rule", "exceptions steered to the rule's answer, direction − random "
                "(ours: add α·‖h̄‖·r̂ at one layer)", minus="mechanisms/recipe/to_rule@direction=random"),
         Effect("mechanisms/recipe/to_memory", "rule prompts steered to the memorised answer, direction − random "
                "(ours)", minus="mechanisms/recipe/to_memory@direction=random"),
         Effect("mechanisms/recipe/to_rule@intervention=scale", "exceptions steered to the rule's answer, "
                "direction − random (the paper's: scale h·r̂ at every layer)",
                minus="mechanisms/recipe/to_rule@intervention=scale,direction=random"),
         Effect("mechanisms/recipe/to_memory@intervention=scale", "rule prompts steered to the memorised answer, "
                "direction − random (the paper's)",
                minus="mechanisms/recipe/to_memory@intervention=scale,direction=random")),
        scale="With the default mode cue the switch lives at the embeddings and block 0, and the paper's "
              "intervention reaches it only at s = −2 (a reflection of the component; for s ≥ −1 an item's "
              "projection keeps its sign); without the cue (--set scale=powered, 5 seeds) a weak direction forms in the "
              "last block (AUC 0.59) and steers 9 points better than a random direction, which itself moves a third."),
    summary="mnemoscope.recipes.mechanisms.recipe:summary",
    pooled="mnemoscope.recipes.mechanisms.pooled:pool",
)
