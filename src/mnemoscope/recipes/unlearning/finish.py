"""The unlearning runs' last step: metrics, notes and tables into the run, then the manifest and the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mnemoscope import rundir
from mnemoscope.recipes.common import finish_run


def finish(run: rundir.Run, metrics: dict, notes: dict, tables: dict, device, extra: dict) -> Path:
    """Metrics (NaN = not computed: null), notes, the tables (``samples``: the per-model frames,
    object columns as text), then the manifest and the report."""
    run.metrics.update(metrics)
    for key, reason in notes.items():
        if reason:
            run.note(key, reason)
    for name, table in tables.items():
        if name == "samples":
            table = pd.concat(table, ignore_index=True)
            table = table.astype({c: str for c in table.columns if table[c].dtype == object})
        run.add_table(name, table)
    return finish_run(run, device=str(device), extra=extra)
