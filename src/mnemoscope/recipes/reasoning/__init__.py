"""Reasoning: Knights-and-Knaves puzzles memorised by fine-tuning, tested on locally perturbed and
unseen puzzles (Xie et al. 2024). The runnable module is ``recipe.py``; its report section (accuracy
and LiMem over fine-tuning, before/after table) is ``report.py``."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "reasoning",
    "mnemoscope.recipes.reasoning.recipe",
    claim=Claim(
        "reasoning", "Xie et al. 2024, On Memorization of Large Language Models in Logical Reasoning",
        "Fine-tuned models solve their training puzzles but fail locally perturbed versions of them "
        "(LiMem > 0), while fine-tuning also lifts accuracy on unseen puzzles above chance.",
        (Effect("reasoning/accuracy@split=train,phase=after", "accuracy, training − perturbed puzzles",
                minus="reasoning/accuracy@split=perturbed,phase=after"),
         Effect("reasoning/limem/limem@phase=after", "LiMem after fine-tuning"),
         # chance = mean over puzzle sizes of 2^-people: 0.1875 for the default 2- and 3-person puzzles
         Effect("reasoning/accuracy@split=unseen,phase=after", "accuracy on unseen puzzles vs chance (2–3 people)",
                ">", 0.1875)),
        scale="A random-init ~1 M-parameter model memorises; it is not expected to generalise to unseen "
              "puzzles (the third effect). --set model.init=DIR scale=gpu fine-tunes a pretrained model."),
    headlines=("reasoning/accuracy@split=train,phase=after", "reasoning/accuracy@split=unseen,phase=after",
               "reasoning/limem/limem@phase=after"),
    series=(Series("Puzzle accuracy after training", "reasoning/accuracy@split={x},phase=after", "split",
                   order=("train", "perturbed", "unseen")),),
    sections=("mnemoscope.recipes.reasoning.report",),
    pooled="mnemoscope.recipes.reasoning.sweep:pool",
)
