"""Unlearning: the declarations of its two run kinds. The code: ``lab.py`` (the lab recipe, top to
bottom: write a fictional world into a tiny model, remove part of it, check), ``world.py`` (its
data), ``user.py`` (``mnemoscope unlearn`` for a user's own model), ``finish.py`` (writing both);
``recipe.py`` is the runnable module (``DEFAULTS``, ``run``, ``summary`` are the lab's). Every model
of both is evaluated by ``unlearn.model_eval.Evaluator``.

- ``unlearning``, the lab recipe (``mnemoscope run unlearning``): a tiny model trained on fictional
  people, each method unlearning a forget set, the six-way evaluation;
- ``unlearn``, the runs of the command ``mnemoscope unlearn`` on the user's model and files.

Both are drawn on the comparison page's unlearning trade-off and share the unlearning report
sections (``report/sections/unlearning.py``, ``unlearning_stress.py``).
"""

from mnemoscope.claims import Claim, Effect
from mnemoscope.recipes.plugin import Recipe

HEADLINES = ("unlearn/*/knowmem_forget", "unlearn/*/knowmem_retain")
SECTIONS = ("mnemoscope.report.sections.unlearning", "mnemoscope.report.sections.unlearning_stress")

RECIPE = Recipe(
    "unlearning",
    "mnemoscope.recipes.unlearning.recipe",
    claim=Claim(
        "unlearning", "Shi et al. 2024, MUSE: Machine Unlearning Six-Way Evaluation for Language Models",
        "Unlearning removes knowledge of the forget set but also damages knowledge of the retain set: "
        "after NPO+GD, KnowMem on the forget set falls and KnowMem on the retain set falls too.",
        (Effect("unlearn/original/knowmem_forget", "KnowMem on the forget set, original − unlearned (NPO+GD)",
                minus="unlearn/npo_gd/knowmem_forget"),
         Effect("unlearn/original/knowmem_retain", "KnowMem on the retain set, original − unlearned (NPO+GD)",
                minus="unlearn/npo_gd/knowmem_retain")),
        scale="The person, not the text, is the unit that varies: one run's membership figures move "
              "noticeably from seed to seed (docs/recipes.md, unlearning)."),
    headlines=HEADLINES,
    tradeoff=True,
    sections=SECTIONS,
    summary="mnemoscope.recipes.unlearning.recipe:summary",
)

USER_RUN = Recipe("unlearn", headlines=HEADLINES, tradeoff=True, sections=SECTIONS)
