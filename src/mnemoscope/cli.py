"""The ``mnemoscope`` command.

    mnemoscope run [RECIPE] [--out DIR] [--set key=value ...]   (no recipe = quickstart)
    mnemoscope audit --model PATH_OR_ID --members FILE --nonmembers FILE [--out DIR]
    mnemoscope audit --model PATH_OR_ID --config audit.yaml [--out DIR]
    mnemoscope unlearn --model M --forget F --retain R --method NAME [--retrained RM] [--out DIR]
    mnemoscope report RUN_DIR
    mnemoscope analyze wemath FILE

User errors print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnemoscope.errors import MnemoscopeError
from mnemoscope.recipes import RECIPES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnemoscope", description="A lab for the memory of language models.")
    sub = p.add_subparsers(dest="command", required=False)

    r = sub.add_parser("run", help="run an experiment recipe (default: quickstart)")
    r.add_argument("recipe", nargs="?", default="quickstart", help=f"one of: {', '.join(sorted(RECIPES))}")
    r.add_argument("--out", default=None, help="run directory (default: runs/RECIPE)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=50 (repeatable)")

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
    a.add_argument("--dtype", help="auto | float32 | bfloat16 | float16")
    a.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    a.add_argument("--revision")
    a.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (off by default)")
    a.add_argument("--allow-pickle", action="store_true", help="load .bin/.pt weights (can run arbitrary code)")
    a.add_argument("--bos", choices=("auto", "always", "never"))
    a.add_argument("--truncation", choices=("refuse", "truncate"),
                   help="texts longer than the context: refuse (error) or truncate (kept head, counted)")
    a.add_argument("--max-length", type=int, help="context limit (default: the model's)")
    a.add_argument("--batch-size", type=int, help="largest batch (the token budget may make it smaller)")
    a.add_argument("--k", type=float, help="fraction of lowest tokens for min_k / min_k_pp (default 0.2)")
    a.add_argument("--n-boot", type=int, help="bootstrap replicates of each AUC's CI (default 1000)")
    a.add_argument("--no-extraction", action="store_true", help="skip the quick greedy extraction test")
    a.add_argument("--drop-overlap", action="store_true", help="drop texts present in both sets")
    a.add_argument("--seed", type=int)

    u = sub.add_parser("unlearn", help="unlearn a forget set from your own model and evaluate it six ways")
    u.add_argument("--model", required=True, help="local directory (save_pretrained) or hub id")
    u.add_argument("--forget", required=True, help="forget set: TOFU/QA (.json/.jsonl), MUSE prompt/gt, or texts")
    u.add_argument("--retain", required=True, help="retain set, same formats")
    u.add_argument("--method", required=True, help="ga, gd, kl, npo, npo_gd, npo_kl, simnpo, simnpo_gd, task_vector, rmu")
    u.add_argument("--retrained", default="", help="a model trained without the forget set (the gold standard)")
    u.add_argument("--holdout", default="", help="items drawn like the forget set but never trained (reference, PrivLeak)")
    u.add_argument("--ppl", default="", help="held-out general texts for perplexity")
    u.add_argument("--out", default="runs/unlearn")
    u.add_argument("--steps", type=int, default=30)
    u.add_argument("--lr", type=float, default=1e-5)
    u.add_argument("--batch-size", type=int, default=4)
    u.add_argument("--eval-every", type=int, default=10)
    u.add_argument("--lora", action="store_true", help="train LoRA adapters (needs `pip install peft`)")
    u.add_argument("--drop-overlap", action="store_true", help="drop retain items that are also in the forget set")
    u.add_argument("--dtype", default="auto")
    u.add_argument("--device", default="auto")
    u.add_argument("--seed", type=int, default=0)

    rep = sub.add_parser("report", help="(re)build report.html for a run directory")
    rep.add_argument("run_dir")

    an = sub.add_parser("analyze", help="compute metrics from a results table")
    an.add_argument("what", choices=("wemath",), help="wemath: IK/IG/CM/RM and score from per-item correctness")
    an.add_argument("file", help="CSV or JSONL with id, composite_correct, sub_correct")
    return p


def _summary(out: Path) -> str:
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = out / "manifest.json"
    recipe = json.loads(manifest.read_text()).get("recipe") if manifest.is_file() else None
    from mnemoscope.recipes import RECIPES, get_recipe

    if recipe in RECIPES and hasattr(get_recipe(recipe), "summary"):  # a recipe may print its own table
        return get_recipe(recipe).summary(metrics)
    lines = []
    doses = sorted({int(k.split("@dose=")[1].split(",")[0]) for k in metrics if "@dose=" in k})
    if doses:
        lines.append(f"{'dose':>5} {'exact extraction':>17} {'memorization':>13} {'AUC min_k_pp':>13} {'AUC loss':>9}")
        for d in doses:
            def g(key):
                v = metrics.get(key)
                return "-" if v is None else f"{v:.2f}"
            lines.append(f"{d:>5} {g(f'extraction/exact/rate@dose={d}'):>17} "
                         f"{g(f'extraction/memorization/mean@dose={d}'):>13} "
                         f"{g(f'mia/min_k_pp/auc@dose={d}'):>13} {g(f'mia/loss/auc@dose={d}'):>9}")
    elif any(k.startswith("mia/") and k.endswith("/auc") for k in metrics):
        for attack in sorted({k.split("/")[1] for k in metrics if k.startswith("mia/") and k.endswith("/auc")}):
            auc, lo, hi = (metrics.get(f"mia/{attack}/auc{s}") for s in ("", "/ci_lo", "/ci_hi"))
            lines.append(f"{attack:>10}  AUC {_fmt(auc)}  [{_fmt(lo)}, {_fmt(hi)}]")
    else:  # other recipes: the first ungrouped numbers; the report has the rest
        plain = [k for k in sorted(metrics) if "@" not in k and isinstance(metrics[k], (int, float))]
        lines += [f"{k:<48} {_fmt(metrics[k])}" for k in plain[:12]]
        lines.append(f"({len(metrics)} metrics in {out / 'metrics.json'})")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        if command == "run":
            from mnemoscope.config import parse_overrides
            from mnemoscope.recipes import get_recipe

            recipe = getattr(args, "recipe", "quickstart")
            module = get_recipe(recipe)
            out = module.run(getattr(args, "out", None) or f"runs/{recipe}",
                             parse_overrides(getattr(args, "overrides", [])))
        elif command == "audit":
            from mnemoscope.recipes import audit

            flags = {  # only the flags the user gave: they override the --config file
                "seed": "seed", "model": "model.name", "dtype": "model.dtype", "device": "model.device",
                "revision": "model.revision", "trust_remote_code": "model.trust_remote_code",
                "allow_pickle": "model.allow_pickle", "members": "data.members", "nonmembers": "data.nonmembers",
                "wikimia": "data.wikimia", "drop_overlap": "data.drop_overlap", "bos": "engine.bos",
                "truncation": "engine.truncation", "max_length": "engine.max_length",
                "batch_size": "engine.max_batch_size", "k": "audit.k", "n_boot": "audit.n_boot",
                "ref_model": "membership.ref_model", "ref_mismatch": "membership.ref_mismatch",
                "lowercase": "membership.lowercase",
            }
            overrides = audit.load_config_file(args.config) if hasattr(args, "config") else {}
            overrides.update({key: getattr(args, name) for name, key in flags.items() if hasattr(args, name)})
            if hasattr(args, "no_extraction"):
                overrides["audit.extraction"] = False
            out = audit.run(args.out, overrides)
        elif command == "unlearn":
            from mnemoscope.recipes import unlearning

            out = unlearning.run_user(args.out, {
                "seed": args.seed, "model.name": args.model, "model.dtype": args.dtype, "model.device": args.device,
                "data.forget": args.forget, "data.retain": args.retain, "data.retrained": args.retrained,
                "data.holdout": args.holdout, "data.ppl": args.ppl, "data.drop_overlap": args.drop_overlap,
                "unlearn.method": args.method, "unlearn.steps": args.steps, "unlearn.lr": args.lr,
                "unlearn.batch_size": args.batch_size, "unlearn.eval_every": args.eval_every, "unlearn.lora": args.lora,
            })
            print(f"report: {out / 'report.html'}")
            return 0
        elif command == "analyze":
            from mnemoscope.analyze import analyze_wemath, format_wemath

            print(format_wemath(analyze_wemath(args.file)))
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
