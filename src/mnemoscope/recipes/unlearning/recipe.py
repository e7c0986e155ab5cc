"""The unlearning recipe's runnable module (``get_recipe("unlearning")``): ``DEFAULTS``, ``run`` and
``summary`` are the lab's (``lab.py``), ``run_user`` is ``mnemoscope unlearn`` (``user.py``); the
data helpers callers use are re-exported from ``world.py``."""

from mnemoscope.recipes.unlearning.lab import ALL_METHODS, DEFAULTS, METHODS, SCALES, best_point, pareto, run, summary
from mnemoscope.recipes.unlearning.user import USER_DEFAULTS, read_unlearn_file, run_user
from mnemoscope.recipes.unlearning.world import (
    assert_never_seen,
    lab_documents,
    mc_items,
    pack_stream,
    qa_text,
    tokenizer_texts,
    training_order,
)

__all__ = ["ALL_METHODS", "DEFAULTS", "METHODS", "SCALES", "USER_DEFAULTS", "assert_never_seen", "best_point", "lab_documents",
           "mc_items", "pack_stream", "pareto", "qa_text", "read_unlearn_file", "run", "run_user", "summary",
           "tokenizer_texts", "training_order"]
