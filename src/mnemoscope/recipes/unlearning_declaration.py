"""The declarations of the unlearning runs (to move into the unlearning recipe's folder, beside its
code, once that code is split into the lab recipe and the user-facing run):

- ``unlearning``, the lab recipe (``mnemoscope run unlearning``, ``recipes/unlearning.py``): a tiny
  model trained on fictional people, each method unlearning a forget set, the six-way evaluation;
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
    "mnemoscope.recipes.unlearning",
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
    summary="mnemoscope.recipes.unlearning:summary",
)

USER_RUN = Recipe("unlearn", headlines=HEADLINES, tradeoff=True, sections=SECTIONS)
