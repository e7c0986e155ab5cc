"""Report section of the ``multichoice`` family (WMDP-style multiple choice): letter and cloze
accuracy side by side with chance, and a few items."""

from __future__ import annotations

from markupsafe import Markup

from mnemoscope.report.html import RunData, register_section
from mnemoscope.report.sections.families import (
    _examples,
    _notes_of,
    _with_examples,
    family_samples,
    metrics_table,
)


def section_multichoice(run: RunData) -> Markup | None:
    """Accuracy in the letter format (WMDP's number) and in the cloze format, with chance."""
    table = metrics_table(run, ["multichoice/"])
    if table is None:
        return None
    ex = _examples(family_samples(run, "multichoice"),
                   ["id", "question", "answer", "letter_pred", "cloze_pred", "letter_acc", "cloze_acc"], by="letter_acc")
    return _with_examples("Multiple choice (WMDP-style)", [table], ex, _notes_of(run, ("multichoice/",)),
                          "Accuracy = the right choice has the highest log-likelihood (lm-evaluation-harness's "
                          "acc; acc_norm divides by the choice's characters, acc_bytes by its UTF-8 bytes). "
                          "letter: the WMDP prompt, scoring \" A\", \" B\", …; cloze: the question alone, scoring "
                          "each choice's text. Letter accuracy at chance with cloze accuracy high means the "
                          "letter format is broken, not the knowledge.")


register_section(section_multichoice)
