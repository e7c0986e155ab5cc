"""The ``mnemoscope`` command.

    mnemoscope run [RECIPE] [--out DIR] [--set key=value ...]   (no recipe = quickstart)
    mnemoscope run RECIPE --seeds 0,1,2 [--out FOLDER]           (FOLDER/seed=N + the comparison)
    mnemoscope audit --model PATH_OR_ID --members FILE --nonmembers FILE [--out DIR]
    mnemoscope audit --model PATH_OR_ID --config audit.yaml [--out DIR]
    mnemoscope unlearn --model M --forget F --retain R --method NAME [--retrained RM] [--out DIR]
    mnemoscope contamination --model M --benchmark FILE [--corpus C | --corpus-index I.npz] [--reference R]
    mnemoscope report RUN_DIR
    mnemoscope analyze wemath FILE
    mnemoscope compare RUN_OR_FOLDER ... [--metrics PATTERN ...] [--format md|csv|json] [--html FILE]
    mnemoscope runs [FOLDER] [--format md|csv|json]              (and FOLDER/index.html)
    mnemoscope track RUN_DIR ... --to wandb|mlflow
    (run, audit and unlearn also take --track wandb|mlflow)

User errors print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnemoscope import api, tracking
from mnemoscope.config import parse_overrides
from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import RECIPES
from mnemoscope.tracking import TRACKERS
from mnemoscope.unlearn.methods import METHODS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnemoscope", description="A lab for the memory of language models.")
    sub = p.add_subparsers(dest="command", required=False)
    for add in (_add_run, _add_audit, _add_unlearn, _add_contamination, _add_tools):
        add(sub)
    return p


def _add_loading_flags(p, *, remote: bool = True) -> None:
    """How a model is loaded: dtype, device and (``remote``) the two opt-ins that can run its code."""
    p.add_argument("--dtype", help="auto | float32 | bfloat16 | float16")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    if remote:
        p.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (off by default)")
        p.add_argument("--allow-pickle", action="store_true", help="load .bin/.pt weights (can run arbitrary code)")


def _add_run(sub) -> None:
    """The ``mnemoscope run RECIPE`` arguments."""
    r = sub.add_parser("run", help="run an experiment recipe (default: quickstart)")
    r.add_argument("recipe", nargs="?", default="quickstart", help=f"one of: {', '.join(sorted(RECIPES))}")
    r.add_argument("--out", default=None, help="run directory (default: runs/RECIPE)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=50 (repeatable)")
    r.add_argument("--seeds", default=None, metavar="0,1,2",
                   help="run once per seed into OUT/seed=N (default OUT: runs/RECIPE-seeds) and write the "
                        "comparison with the spread into OUT")
    r.add_argument("--track", choices=TRACKERS, default=None, help="also log the run to wandb or mlflow")


def _add_audit(sub) -> None:
    """The ``mnemoscope audit`` arguments."""
    a = sub.add_parser("audit", argument_default=argparse.SUPPRESS,
                       help="every memory measurement on your own model and data (flags and/or a YAML config)")
    a.add_argument("--model", help="local directory (save_pretrained) or hub id")
    a.add_argument("--config", help="YAML naming the data of each family (docs/formats.md, 'Audit config'); "
                   "flags given as well override it")
    a.add_argument("--members", help="texts the model saw (.jsonl with 'text', .txt, .parquet)")
    a.add_argument("--nonmembers", help="texts it did not see, from the same distribution")
    a.add_argument("--wikimia", help="members and non-members in one file ({input, label}) instead")
    a.add_argument("--ref-model", help="reference model for the ref and ratio attacks")
    a.add_argument("--ref-mismatch", choices=("refuse", "per_byte"),
                   help="reference with another tokenizer: refuse (default) or compare NLL per UTF-8 byte")
    a.add_argument("--lowercase", action="store_true", help="add the lowercase attack")
    a.add_argument("--out", default="runs/audit")
    _add_loading_flags(a)
    a.add_argument("--revision")
    a.add_argument("--bos", choices=("auto", "always", "never"))
    a.add_argument("--truncation", choices=("refuse", "truncate"),
                   help="texts longer than the context: refuse (error) or truncate (kept head, counted)")
    a.add_argument("--max-length", type=int, help="context limit (default: the model's)")
    a.add_argument("--batch-size", type=int, help="largest batch (the token budget may make it smaller)")
    a.add_argument("--backend", choices=("hf", "vllm"), help="what runs the model: hf (default) or vllm "
                   "(needs the vllm extra; see docs/scale.md)")
    a.add_argument("--workers", type=int, help="share every family's items between N worker processes "
                   "(one per GPU, or one CPU thread each) or Ray actors (--executor ray)")
    a.add_argument("--executor", choices=("processes", "ray"), help="where the --workers run")
    a.add_argument("--vllm-distribution", action="store_true",
                   help="vLLM: return the whole distribution per token (Min-K%%++; slower); off: such attacks are refused")
    a.add_argument("--k", type=float, help="fraction of lowest tokens for min_k / min_k_pp (default 0.2)")
    a.add_argument("--n-boot", type=int, help="bootstrap replicates of each AUC's CI (default 1000)")
    a.add_argument("--no-extraction", action="store_true", help="skip the quick greedy extraction test")
    a.add_argument("--drop-overlap", action="store_true", help="drop texts present in both sets")
    a.add_argument("--seed", type=int)
    a.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set knowmem.max_new_tokens=16 (applied last; repeatable)")
    a.add_argument("--track", choices=TRACKERS, help="also log the run to wandb or mlflow")


def _add_unlearn(sub) -> None:
    """The ``mnemoscope unlearn`` arguments."""
    u = sub.add_parser("unlearn", argument_default=argparse.SUPPRESS,
                       help="unlearn a forget set from your own model and evaluate it six ways")
    u.add_argument("--model", required=True, help="local directory (save_pretrained) or hub id")
    u.add_argument("--forget", required=True, help="forget set: TOFU/QA (.json/.jsonl), MUSE prompt/gt, or texts")
    u.add_argument("--retain", required=True, help="retain set, same formats")
    u.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    u.add_argument("--retrained", help="a model trained without the forget set (the gold standard)")
    u.add_argument("--holdout", help="items drawn like the forget set but never trained (reference, PrivLeak)")
    u.add_argument("--ppl", help="held-out general texts for perplexity")
    u.add_argument("--mc-forget", help="WMDP-style multiple-choice items about the forget set (question, choices, answer)")
    u.add_argument("--mc-retain", help="multiple-choice items for utility, same format")
    u.add_argument("--refusals", help="refusal answers, one a line (\"I don't know.\"), for methods that need them (idkdpo)")
    u.add_argument("--out", default="runs/unlearn")
    u.add_argument("--steps", type=int, help="unlearning steps (default 30)")
    u.add_argument("--lr", type=float, help="learning rate (default 1e-5)")
    u.add_argument("--batch-size", type=int, help="examples per step (default 4)")
    u.add_argument("--eval-every", type=int, help="steps between curve points (default 10)")
    u.add_argument("--lora", action="store_true", help="train LoRA adapters (needs `pip install peft`)")
    u.add_argument("--drop-overlap", action="store_true", help="drop retain items that are also in the forget set")
    _add_loading_flags(u, remote=False)
    u.add_argument("--seed", type=int)
    u.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set unlearn.hparams... (see docs/unlearning.md); repeatable")
    u.add_argument("--track", choices=TRACKERS, help="also log the run to wandb or mlflow")


def _add_contamination(sub) -> None:
    """The ``mnemoscope contamination`` arguments."""
    ct = sub.add_parser("contamination", argument_default=argparse.SUPPRESS,
                        help="did the model see this benchmark? overlap, membership, guided completion, order test")
    ct.add_argument("--model", required=True, help="local directory (save_pretrained) or hub id")
    ct.add_argument("--benchmark", required=True,
                    help="items: .jsonl / .parquet (question, choices, answer[, split, dataset]) or an lm-eval "
                         "samples_<task>_<date>.jsonl export; file order is the canonical order")
    ct.add_argument("--corpus", help="the training corpus (.jsonl 'text', .txt, .parquet) for the overlap signal")
    ct.add_argument("--corpus-index", help="a corpus index saved by --save-index (same tokenizer) instead of --corpus")
    ct.add_argument("--save-index", help="save the corpus index built from --corpus to this .npz")
    ct.add_argument("--reference", help="items drawn like the benchmark but never released (membership baseline); "
                                        "without it each item is compared with perturbed copies of itself")
    ct.add_argument("--dataset", help="dataset name for items without one (guided completion)")
    ct.add_argument("--split", help="split for items without one (guided completion)")
    ct.add_argument("--signals", help="comma-separated subset of overlap,membership,guided,order (default: all)")
    ct.add_argument("--out", default="runs/contamination-check")
    _add_loading_flags(ct)
    ct.add_argument("--seed", type=int)
    ct.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override any setting, e.g. --set contamination.order_shards=20 (repeatable)")


def _add_tools(sub) -> None:
    """The tools over finished runs: report, analyze, compare, runs and track."""
    rep = sub.add_parser("report", help="(re)build report.html for a run directory")
    rep.add_argument("run_dir")

    an = sub.add_parser("analyze", help="compute metrics from a results table")
    an.add_argument("what", choices=("wemath",), help="wemath: IK/IG/CM/RM and score from per-item correctness")
    an.add_argument("file", help="CSV or JSONL with id, composite_correct, sub_correct")

    c = sub.add_parser("compare", help="runs side by side: metrics table, differing config, spread, HTML page")
    c.add_argument("targets", nargs="+", metavar="RUN_OR_FOLDER", help="run directories or folders holding runs")
    c.add_argument("--metrics", "-m", action="append", default=[], metavar="PATTERN",
                   help="metric key or glob (* within a /-segment, ** across), e.g. 'mia/*/auc@dose=*' "
                        "(repeatable; default: the recipes' headline metrics)")
    c.add_argument("--format", choices=("md", "csv", "json"), default="md", help="table format on stdout")
    c.add_argument("--spread", action="store_true", help="print each group's n, mean, sd, min, max instead")
    c.add_argument("--html", default=None, metavar="FILE", help="also write the self-contained comparison page")
    c.add_argument("--list-keys", action="store_true", help="print every metric key of the runs and stop")

    ls = sub.add_parser("runs", help="list runs with their status and headline metrics; write FOLDER/index.html")
    ls.add_argument("folder", nargs="?", default="runs")
    ls.add_argument("--format", choices=("md", "csv", "json"), default="md")
    ls.add_argument("--no-index", action="store_true", help="do not write FOLDER/index.html")

    t = sub.add_parser("track", help="log finished runs to wandb or mlflow")
    t.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    t.add_argument("--to", required=True, choices=TRACKERS)


def _summary(out: Path) -> str:
    """The terminal summary the run's kind declares (``mnemoscope.recipes``), else its first
    ungrouped numbers."""
    from mnemoscope.recipes import declaration
    from mnemoscope.recipes.plugin import first_numbers

    declared = declaration(json.loads((out / "manifest.json").read_text()).get("recipe"))
    return declared.summarize(out) if declared is not None else first_numbers(out)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    track = getattr(args, "track", None)
    command_line = "mnemoscope " + " ".join(sys.argv[1:] if argv is None else argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        if track:
            tracking.require(track)  # a missing package fails now, not after the run
        if command == "run":
            from mnemoscope.recipes import get_recipe

            recipe = getattr(args, "recipe", "quickstart")
            get_recipe(recipe)  # an unknown name fails here, before anything else
            overrides = parse_overrides(getattr(args, "overrides", []))
            if getattr(args, "seeds", None):
                return _run_seeds(recipe, args, overrides, track, command_line)
            out = api.run(recipe, out=getattr(args, "out", None), command=command_line, **overrides).path
        elif command == "audit":
            given = {name: getattr(args, name) for name in api.AUDIT_FLAGS if hasattr(args, name)}
            if hasattr(args, "no_extraction"):
                given["audit.extraction"] = False
            out = api.audit(config=getattr(args, "config", None), out=args.out, command=command_line,
                            **{**given, **parse_overrides(args.overrides)}).path
        elif command == "unlearn":
            given = {name: getattr(args, name) for name in api.UNLEARN_FLAGS if hasattr(args, name)}
            out = api.unlearn(out=args.out, command=command_line, **{**given, **parse_overrides(args.overrides)}).path
            print(f"report: {out / 'report.html'}")
            if track:
                print(f"tracked: {tracking.log_run(track, out)}")
            return 0
        elif command == "contamination":
            given = {name: getattr(args, name) for name in api.CONTAMINATION_FLAGS if hasattr(args, name)}
            out = api.contamination(out=args.out, command=command_line,
                                    **{**given, **parse_overrides(args.overrides)}).path
        elif command == "analyze":
            from mnemoscope.analyze import analyze_wemath, format_wemath

            print(format_wemath(analyze_wemath(args.file)))
            return 0
        elif command == "compare":
            return _compare(args)
        elif command == "runs":
            return _runs(args)
        elif command == "track":
            from mnemoscope import runs as runlib

            for run_dir in args.run_dirs:
                if runlib.status_of(Path(run_dir)) != runlib.COMPLETE or not runlib.is_run_dir(Path(run_dir)):
                    raise MnemoscopeError(f"{run_dir} is not a complete run directory (no manifest.json and "
                                          "metrics.json): `mnemoscope runs` shows the status of each run")
                print(f"{run_dir}: tracked: {tracking.log_run(args.to, run_dir)}")
            return 0
        else:
            from mnemoscope.report.html import write_report

            out = Path(args.run_dir)
            print(f"report: {write_report(out)}")
            return 0
    except MnemoscopeError as exc:
        print(f"mnemoscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mnemoscope: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(_summary(out))
    print(f"report: {out / 'report.html'}")
    if track:
        try:
            print(f"tracked: {tracking.log_run(track, out)}")
        except MnemoscopeError as exc:
            print(f"mnemoscope: error: {exc}", file=sys.stderr)
            return 2
    return 0


def _run_seeds(recipe: str, args, overrides: dict, track: str | None, command_line: str) -> int:
    from mnemoscope.compare import compare, format_table
    from mnemoscope.recipes.seeds import check_out, parse_seeds, run_seeds

    seeds = parse_seeds(args.seeds)
    out = Path(getattr(args, "out", None) or f"runs/{recipe}-seeds")
    check_out(out, overrides)

    def after_each(run_dir: Path) -> None:
        print(f"report: {run_dir / 'report.html'}")
        if track:
            print(f"tracked: {tracking.log_run(track, run_dir)}")

    dirs = run_seeds(recipe, out, overrides, seeds, after_each=after_each, command=command_line)
    print(format_table(compare(dirs), "md", spread=True), end="")
    print(f"comparison: {out / 'comparison.html'} (every metric: {out / 'comparison.json'}, {out / 'spread.csv'})")
    return 0


def _compare(args) -> int:
    from mnemoscope.compare import compare, format_table, match_keys
    from mnemoscope.runs import gather

    if args.list_keys:
        keys = set().union(*(r.metrics for r in gather(args.targets)))
        print("\n".join(match_keys(keys, "**")))
        return 0
    if args.html:
        from mnemoscope.report.comparison import check_page_path

        check_page_path(args.html)
    comparison = compare(args.targets, args.metrics or None)
    for warning in comparison.warnings:
        print(f"mnemoscope: warning: {warning}", file=sys.stderr)
    for note in comparison.notes:
        print(f"mnemoscope: note: {note}", file=sys.stderr)
    print(format_table(comparison, args.format, spread=args.spread), end="")
    if args.html:
        from mnemoscope.report.comparison import write_comparison

        print(f"comparison: {write_comparison(comparison, args.html)}", file=sys.stderr)
    return 0


def _runs(args) -> int:
    from mnemoscope.report.index import listing, write_index
    from mnemoscope.runs import gather

    folder = Path(args.folder)
    run_list = gather([folder])
    print(listing(run_list, args.format), end="")
    if not args.no_index:
        print(f"index: {write_index(folder, run_list)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
