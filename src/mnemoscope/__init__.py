"""mnemoscope: a lab for the memory of language models.

The Python API (``mnemoscope.api``) mirrors the command: ``mnemoscope.run(recipe, **settings)``,
``mnemoscope.audit(model, members, nonmembers, ...)``, ``mnemoscope.contamination(model, benchmark, ...)``,
``mnemoscope.unlearn(model, forget, retain,
method=...)`` and ``mnemoscope.compare(*runs)``, each returning a run result (or a comparison).
"""

__version__ = "0.1.0"

from mnemoscope.api import RunResult, audit, contamination, run  # noqa: E402

__all__ = ["RunResult", "audit", "compare", "contamination", "run", "unlearn", "__version__"]


def __getattr__(name: str):
    """``compare`` and ``unlearn`` are a module and a package made callable (``modules.make_callable``),
    imported on first use so that ``import mnemoscope`` stays light."""
    if name in ("compare", "unlearn"):
        import importlib

        return importlib.import_module(f"mnemoscope.{name}")
    raise AttributeError(f"module 'mnemoscope' has no attribute '{name}'")
