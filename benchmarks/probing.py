"""Probing overhead at the default acquisition schedule.

    python -m benchmarks.probing [--train-steps 20] [--probe-calls 5] [--smoke]

Builds the default ``acquisition`` setup (world, probes, tokenizer, model, batch size), times
``--train-steps`` optimizer steps without probing and ``--probe-calls`` probe measurements (one
batched engine call each), taking each step's / call's median time, then extrapolates to the
whole default schedule:

    overhead_fraction = n_probed_steps × probe_call_s / (train.steps × train_step_s)

The last line is:  probing: overhead_fraction=X
``--smoke`` runs every code path at the smallest size (a micro model, a small world and corpus,
one step and one probe call; the test suite runs it); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def main(argv: list[str] | None = None) -> None:
    from mnemoscope.lab.tiny import build_model, count_parameters, train_tokenizer
    from mnemoscope.probes.corpora import load_corpus
    from mnemoscope.probes.fictional import WorldConfig, make_world
    from mnemoscope.recipes.acquisition.recipe import DEFAULTS, select_probes
    from mnemoscope.lab.factory import preset_from
    from mnemoscope.train.data import injection_steps
    from mnemoscope.train.loop import TrainConfig, causal_lm_loss, make_optimizer
    from mnemoscope.train.probing import Prober, probe_schedule

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--probe-calls", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="smallest size, for the test suite (figures mean nothing)")
    args = ap.parse_args(argv)

    cfg = copy.deepcopy(DEFAULTS)
    if args.smoke:
        args.train_steps, args.probe_calls = 1, 1
        cfg["model"].update({"size": "micro", "hidden": None, "layers": None, "heads": None, "intermediate": None,
                             "vocab_size": 512})
        cfg["corpus"]["n_docs"] = 50
        cfg["world"].update({"n_people": 6, "n_paraphrases": 1})
        cfg["train"].update({"batch_size": 2, "seq_len": 64})
        cfg["probes"]["per_kind"] = 1
    t = cfg["train"]
    world = make_world(WorldConfig(n_people=cfg["world"]["n_people"], n_paraphrases=cfg["world"]["n_paraphrases"]))
    texts = load_corpus("generated", n_docs=cfg["corpus"]["n_docs"], seed=0)
    tok = train_tokenizer(texts + [d["text"] for d in world.documents if d["kind"] == "document"],
                          cfg["model"]["vocab_size"])
    model = build_model(preset_from(cfg["model"]), tok, seed=0)
    probes = select_probes(world.probes, cfg["probes"]["per_kind"], 0)
    steps = injection_steps(cfg["injection"]["relative_steps"], cfg["injection"]["start"])
    schedule = probe_schedule(steps, t["steps"], cfg["probes"]["window"])
    tcfg = TrainConfig(**{k: v for k, v in t.items()})
    optimizer = make_optimizer(model, tcfg)
    rows = torch.randint(3, len(tok), (args.train_steps + 1, t["batch_size"], t["seq_len"]))
    model.train()
    step_times = []
    for i in range(args.train_steps + 1):  # the first step warms up and is not counted
        began = time.perf_counter()
        loss = causal_lm_loss(model, rows[i])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            step_times.append(time.perf_counter() - began)
    prober = Prober(tok, probes, schedule)
    prober.measure(0, model)  # warm-up
    call_times = []
    for i in range(args.probe_calls):
        began = time.perf_counter()
        prober.measure(i + 1, model)
        call_times.append(time.perf_counter() - began)
    step_s, call_s = statistics.median(step_times), statistics.median(call_times)
    overhead = len(schedule) * call_s / (t["steps"] * step_s)
    print(f"model {count_parameters(model) / 1e6:.2f} M parameters, batch {t['batch_size']} × {t['seq_len']}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"train step {step_s * 1000:.1f} ms × {t['steps']} steps; probe call {call_s * 1000:.1f} ms "
          f"({len(probes)} probes) × {len(schedule)} probed steps")
    print(f"probing: overhead_fraction={overhead:.3f}")


if __name__ == "__main__":
    main()
