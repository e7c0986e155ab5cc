"""Blind-baseline benchmark: what the blind baseline (families.blind: a cross-validated bag-of-words
classifier and the date detector) costs inside a whole ``mnemoscope audit`` of members and
non-members, both timed in this process.

    python -m benchmarks.blind [--texts 1000] [--model DIR] [--smoke]

The audit runs with its defaults (the blind baseline, the likelihood attacks, the quick greedy
extraction test, the report) on ``--texts`` texts (half members, half non-members) of 16–64 tokens
from the lab corpus, with a fresh tiny lab model unless ``--model`` is given. The blind baseline's
time is its phase in the run's manifest (``timings_s.blind``: its scikit-learn import, 5-fold
TF-IDF + logistic regression, the date detector, the bootstrap CIs); the audit's time is the whole
``recipes.audit.recipe.run`` call (model loading to report). The last line is:
    blind: share_of_audit=X blind_s=B audit_s=A
``--smoke`` runs every code path at the smallest size (micro model, 20 texts; the test suite runs
it); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.engine import mixed_length_texts
from mnemoscope.lab.tiny import build_model, count_parameters, get_preset, train_tokenizer
from mnemoscope.probes.corpus import background_documents
from mnemoscope.recipes.audit import recipe as audit


def _write(path: Path, texts: list[str]) -> str:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return str(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a local model directory (default: a fresh tiny lab model)")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="smallest size, for the test suite (figures mean nothing)")
    args = ap.parse_args(argv)
    n = 20 if args.smoke else args.texts
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = "micro" if args.smoke else "tiny"
        tokenizer = train_tokenizer(background_documents(200 if args.smoke else 800, seed=0), get_preset(size).vocab)
        if args.model:
            model_dir = args.model
        else:
            model = build_model(size, tokenizer, seed=0)
            model.save_pretrained(root / "model")
            tokenizer.save_pretrained(root / "model")
            model_dir = str(root / "model")
            print(f"model: {count_parameters(model) / 1e6:.2f} M parameters, threads={torch.get_num_threads()}")
        texts = mixed_length_texts(tokenizer, n, 8 if args.smoke else 16, 16 if args.smoke else 64)
        members, nonmembers = _write(root / "m.jsonl", texts[: n // 2]), _write(root / "n.jsonl", texts[n // 2 :])
        overrides = {"model.name": model_dir, "model.device": "cpu", "data.members": members,
                     "data.nonmembers": nonmembers}
        start = time.perf_counter()
        out = audit.run(root / "run", overrides, log=lambda _: None, warn=lambda _: None)
        total = time.perf_counter() - start
        timings = json.loads((out / "manifest.json").read_text())["timings_s"]
    blind = timings["blind"]
    print(f"  {n} texts: audit {total:.2f} s; phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    print(f"blind: share_of_audit={blind / total:.4f} blind_s={blind:.3f} audit_s={total:.2f}")


if __name__ == "__main__":
    main()
