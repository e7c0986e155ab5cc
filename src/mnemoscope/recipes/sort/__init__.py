"""SORT: which of two segments of a book came first, with the excerpt in context and from training
alone (Pink et al. 2024). The runnable module is ``recipe.py``; its report section (short- and
long-term accuracy before and after training, by segment distance) is ``report.py``."""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe, Series

RECIPE = Recipe(
    "sort",
    "mnemoscope.recipes.sort.recipe",
    claim=Claim(
        "sort", "Pink et al. 2024, Assessing Episodic Memory in LLMs with Sequence Order Recall Tasks",
        "With the excerpt in context a model tells which of two segments came first above chance; after "
        "training on the book without the excerpt in context, order recall is far worse than in context.",
        (Effect("sort/short_term/accuracy@phase=after", "in-context SORT accuracy vs chance", ">", 0.5),
         Effect("sort/short_term/accuracy@phase=after", "SORT accuracy, in context − from training (long-term)",
                minus="sort/long_term/accuracy@phase=after")),
        scale="The paper evaluates pretrained LLMs on real books; --set model.init=DIR scale=gpu runs that."),
    headlines=("sort/short_term/accuracy@phase=after", "sort/long_term/accuracy@phase=after"),
    series=(
        Series("SORT short-term accuracy", "sort/short_term/accuracy@phase={x}", "phase", ("before", "after"), 0.5),
        Series("SORT long-term accuracy", "sort/long_term/accuracy@phase={x}", "phase", ("before", "after"), 0.5),
    ),
    sections=("mnemoscope.recipes.sort.report",),
)
