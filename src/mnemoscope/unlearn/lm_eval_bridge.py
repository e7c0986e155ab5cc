"""Utility on real benchmarks: lm-evaluation-harness on the unlearned model, in memory.

Optional and off by default (``eval.lm_eval_tasks: []``). With task names, each evaluated model
is wrapped in lm-evaluation-harness's ``HFLM`` (the model object itself, never reloaded from
disk: a composite from WHP or ULD is passed as it is) and ``lm_eval.simple_evaluate`` runs the
tasks. ``eval.lm_eval_include`` adds a folder of task YAML files (e.g. local copies of a
benchmark on a machine without network). Keys: ``unlearn/<model>/utility/<task>`` (the task's
first reported metric, usually ``acc``) and ``unlearn/<model>/utility/<task>/<metric>`` for
every number the task reports (standard errors included as ``<metric>_stderr``).
"""

from __future__ import annotations

from collections.abc import Sequence

from mnemoscope.errors import MnemoscopeError


def require_lm_eval():
    """Import lm_eval or say how to get it, in one line."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM  # noqa: F401 (checks the HF wrapper is importable too)
    except ImportError:
        raise MnemoscopeError("eval.lm_eval_tasks needs the 'lm-eval' package, which is not installed: run "
                              "`pip install lm-eval` (or leave eval.lm_eval_tasks empty)") from None
    return lm_eval


def _metric_name(key: str) -> str:
    """lm-eval's ``"acc,none"`` → ``acc``; another filter keeps its name (``"exact_match,strict"`` →
    ``exact_match_strict``)."""
    name, _, flt = key.partition(",")
    return name if flt in ("", "none") else f"{name}_{flt}"


def utility(model, tokenizer, tasks: Sequence[str], *, limit: float | None = None, batch_size: int = 8,
            include_path: str = "", num_fewshot: int | None = None, seed: int = 0) -> dict[str, float]:
    """``{"<task>": primary, "<task>/<metric>": value, ...}`` from ``lm_eval.simple_evaluate`` on
    ``model`` (in memory). An unknown task name is a one-line error listing the nearest names."""
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path or None)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        import difflib

        near = difflib.get_close_matches(unknown[0], manager.all_tasks, n=3)
        raise MnemoscopeError(f"eval.lm_eval_tasks: lm-evaluation-harness has no task {unknown[0]!r}"
                              + (f"; did you mean {', '.join(near)}?" if near else "")
                              + " (eval.lm_eval_include adds a folder of task YAML files)")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot,
                                  task_manager=manager, log_samples=False, bootstrap_iters=0, random_seed=seed,
                                  numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
                                  verbosity="ERROR")
    values: dict[str, float] = {}
    for task in tasks:
        row = out["results"].get(task, {})
        numbers = [(k, v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and "," in k]  # metrics are "<name>,<filter>"; counts (sample_len) are not
        for key, value in numbers:
            values[f"{task}/{_metric_name(key)}"] = float(value)
        primary = [v for k, v in numbers if "_stderr" not in k]
        if primary:
            values[task] = float(primary[0])
    return values
