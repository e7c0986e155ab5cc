"""Acquisition: watch fictional knowledge form and fade during training (PROTOCOLS §7, Chang et al. 2024).

Read top to bottom: fictional world → background corpus → tokenizer → three injection groups
(paraphrase: a different paraphrase at each injection; duplicate: the same text each time; once:
the first injection only) on the published schedule, scaled down → train while probing every
memorization / semantic / compositional probe (every step near injections, log-spaced after) →
effectivity, retainability, decay fits, IQR outlier filter, group comparison → run directory →
report. Never-seen people are probed too, as a control for drift that is not learning.

``--set scale=paper`` switches to the published schedule (injections every 100 steps, window 50)
with a larger model; the default ``tiny`` scale runs in a few minutes on a CPU. ``--set
scale=powered`` is docs/recipes.md's powered design: a pretraining phase first (``pretrain.steps``
on background text and other people's biographies, its checkpoint shared by every seed through
``lab.pretrain``), then many people per group injected in ``injection.cohorts`` cohorts, each on
the schedule shifted by ``injection.cohort_gap`` steps, so that a batch holds a few people at a time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnemoscope import rundir
from mnemoscope.engine.encoding import text_ids
from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.factory import lab_model, lab_tokenizer, save_model_dir
from mnemoscope.lab.pretrain import pretrained_start
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.metrics.dynamics import (
    compare_decay_fits,
    effectivity,
    iqr_mask,
    retainability,
    tokens_from_steps,
)
from mnemoscope.probes.corpora import load_corpus
from mnemoscope.probes.fictional import (
    GROUPS,
    WorldConfig,
    check_probe_targets,
    make_world,
)
from mnemoscope.recipes.common import (
    finish_lab_run,
    resolve_scaled,
)
from mnemoscope.train.data import (
    InjectedData,
    injection_steps,
    place_events,
    schedule_documents,
)
from mnemoscope.train.loop import TrainConfig
from mnemoscope.train.packing import pack_corpus
from mnemoscope.train.phase import train_phase
from mnemoscope.train.probing import Prober, probe_schedule

KINDS = ("memorization", "semantic", "compositional")
CONTROL = "control"  # group label of never-seen people's probes

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | paper | powered (see SCALES)
    "model": {"size": "tiny", "hidden": 128, "layers": 4, "heads": 4, "intermediate": 352, "vocab_size": 2048,
              "device": "auto"},
    "corpus": {"source": "generated", "n_docs": 3000, "field": "text", "split": "train"},
    # never_seen_fraction: the share of people never trained (the control); holdout: left out entirely
    "world": {"n_people": 12, "n_paraphrases": 9, "never_seen_fraction": 0.1, "holdout_fraction": 0.1},
    # pretrain.steps set (None: no pretraining): first train on background text + the biographies of pretrain.people other
    # people (a world of their own), once, cached in pretrain.cache (default: the run's parent folder)
    "pretrain": {"steps": None, "people": 0, "seed": 0, "cache": None},
    # Published: relative steps 0, 100, …, 900 and w = 50; here 10× closer together. cohorts: people of
    # each group split into this many cohorts, cohort c injected at every step + c·cohort_gap.
    "injection": {"start": 40, "relative_steps": [0, 20, 40, 60, 80, 100, 120, 140, 160, 180], "dose": 1,
                  "placement": "replace", "cohorts": 1, "cohort_gap": 1},
    "train": {"steps": 600, "batch_size": 8, "seq_len": 256, "lr": 1e-3, "warmup": 20, "schedule": "constant",
              "checkpoint_every": 100, "grad_accum": 1, "bf16": False},
    # window: every step in [t_i, t_i + window] is probed; per_kind: probes of each kind per person
    "probes": {"window": 5, "per_kind": 5},
    "analysis": {"iqr_factor": 2.0},
}

SCALES = {
    "tiny": {},
    "paper": {
        "model": {"size": "small", "hidden": None, "layers": None, "heads": None, "intermediate": None,
                  "vocab_size": 16384},
        "corpus": {"n_docs": 100000},
        "world": {"n_people": 120},
        "injection": {"start": 1000, "relative_steps": list(range(0, 1000, 100))},
        "train": {"steps": 6000, "batch_size": 64, "seq_len": 512, "lr": 4e-4, "warmup": 200,
                  "checkpoint_every": 500, "bf16": True},
        "probes": {"window": 50, "per_kind": 5},
    },
    # docs/recipes.md "Powered design for acquisition" (issue 23 item 2): a model pretrained once,
    # 48 people per group and 48 never-seen, injected in 16 cohorts one step apart.
    "powered": {
        "world": {"n_people": 192, "never_seen_fraction": 0.25, "holdout_fraction": 0.0},
        "pretrain": {"steps": 2000, "people": 300},
        "injection": {"cohorts": 16, "cohort_gap": 1},
        "train": {"steps": 600},
        "probes": {"per_kind": 3},
    },
}


def resolve_config(overrides: dict | None) -> dict:
    """Defaults, then the ``scale`` preset, then the user's overrides."""
    return resolve_scaled(DEFAULTS, SCALES, overrides)


def run(out: str | Path = "runs/acquisition", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve_config(overrides)
    run = rundir.Run(out, cfg, "acquisition")
    seed, t, inj, w = cfg["seed"], cfg["train"], cfg["injection"], cfg["world"]

    with run.phase("data"):
        world = make_world(WorldConfig(n_people=w["n_people"], n_paraphrases=w["n_paraphrases"], seed=seed,
                                       never_seen_fraction=w["never_seen_fraction"],
                                       holdout_fraction=w["holdout_fraction"]))
        documents = [d for d in world.documents if d["kind"] == "document"]
        versions: dict[str, dict[str, list[str]]] = {g: {} for g in GROUPS}
        for d in sorted(documents, key=lambda d: (d["person_id"], d["version"])):
            if d["group"] in versions:
                versions[d["group"]].setdefault(d["person_id"], []).append(d["id"])
        cohort_of, cohort_steps = cohorts(versions, injection_steps(inj["relative_steps"], inj["start"]),
                                          inj["cohorts"], inj["cohort_gap"])
        texts = background_texts(cfg, seed if not cfg["pretrain"]["steps"] else CONTINUATION + seed)
    with run.phase("pretrain"):
        model, tokenizer, pretrained = start_model(cfg, run.out, texts, [d["text"] for d in documents], log)
    with run.phase("data"):
        events = [e for g in GROUPS for c, c_steps in enumerate(cohort_steps)
                  for e in schedule_documents({p: v for p, v in versions[g].items() if cohort_of[p] == c}, g,
                                              c_steps, inj["dose"])]
        steps = sorted({s for c_steps in cohort_steps for s in c_steps})
        doc_ids = {d["id"]: text_ids(tokenizer, d["text"]) for d in documents}
        plan = place_events(events, {k: len(v) for k, v in doc_ids.items()}, steps=t["steps"],
                            batch_size=t["batch_size"], seq_len=t["seq_len"], seed=seed)
        background = pack_corpus(texts, tokenizer, n_rows=t["steps"] * t["batch_size"], seq_len=t["seq_len"],
                                 batch_size=t["batch_size"], seed=seed)
        data = InjectedData(background, t["batch_size"], plan, doc_ids, tokenizer.eos_token_id, mode=inj["placement"])
        probes = select_probes(world.probes, cfg["probes"]["per_kind"], seed)
        check_probe_targets(probes, world.documents)
        own_steps = {p["id"]: cohort_steps[cohort_of.get(p["person_id"], 0)] for p in probes}
        # each cohort's probe schedule; the run probes at their union (= probe_schedule(steps) for one cohort)
        by_cohort = [probe_schedule(c_steps, t["steps"], cfg["probes"]["window"]) for c_steps in cohort_steps]
        schedule = sorted(set().union(*by_cohort))
        # shifted cohorts: an injected probe is scored on its own cohort's schedule, the control at every step
        scored = {p["id"]: by_cohort[cohort_of[p["person_id"]]]
                  for p in probes if p["group"] != CONTROL} if len(cohort_steps) > 1 else None

    log(f"{len(plan)} injected documents at {len(data.injection_log())} steps, "
        f"{sum(e['tokens_with_loss'] for e in data.injection_log())} injected tokens under the loss")
    log(f"model: {count_parameters(model) / 1e6:.2f} M parameters; {len(probes)} probes at {len(schedule)} steps; "
        f"{len(plan)} injections over {t['steps']} steps")
    with run.phase("train"):
        prober = Prober(tokenizer, probes, schedule, own_steps=scored)
        history = train_phase(model, data.batch, TrainConfig(seed=seed, **t), run.out / "train", log, probe=prober,
                              name="train")
        save_model_dir(model, run.out / "model", tokenizer)
        curves = prober.frame()
    with run.phase("analysis"):
        metrics, samples, retention = analyze(curves, cohort_steps[0], window=cfg["probes"]["window"],
                                              batch_size=t["batch_size"], seq_len=t["seq_len"],
                                              iqr_factor=cfg["analysis"]["iqr_factor"], own_steps=own_steps)
        samples["person_id"] = samples["probe_id"].map({p["id"]: p["person_id"] for p in probes})
        samples["cohort"] = samples["person_id"].map(lambda q: cohort_of.get(q, -1))
    run.metrics.update(metrics)
    run.metrics["acquisition/probe_seconds"] = prober.seconds
    for k, v in pretrained.items():
        if k != "dir":
            run.metrics[f"acquisition/pretrain/{k}"] = v

    train_curves = pd.DataFrame(history)
    train_curves["injected_tokens"] = [data.injected_tokens_with_loss(s) for s in train_curves["step"]]
    for name, table in (("curves", train_curves), ("samples", samples), ("retention", retention),
                        ("probe_curves", curves)):
        run.add_table(name, table)
    return finish_lab_run(run, model, history, extra={"injection_steps": steps, "cohort_steps": cohort_steps,
                                                      "injection_log": data.injection_log(),
                                                      "probe_steps": len(schedule),
                                                      "pretrained": pretrained.get("dir")})


CONTINUATION = 1000  # the continuation's background text is drawn under seed + this (new documents)
BACKGROUND_WORLD = 7_000_000  # other people's biographies: a world of their own under this + pretrain.seed


def background_texts(cfg: dict, seed: int) -> list[str]:
    """The corpus's documents drawn under ``seed``, then every biography version of the
    ``pretrain.people`` people of a background world (never probed; none when 0)."""
    c, p = cfg["corpus"], cfg["pretrain"]
    texts = load_corpus(c["source"], n_docs=c["n_docs"], seed=seed, field=c["field"], split=c["split"])
    if p["people"]:
        others = make_world(WorldConfig(n_people=p["people"], n_paraphrases=cfg["world"]["n_paraphrases"],
                                        seed=BACKGROUND_WORLD + p["seed"]))
        texts = texts + [d["text"] for d in others.documents if d["kind"] == "document"]
    return texts


def start_model(cfg: dict, out: Path, texts: list[str], injected: list[str], log):
    """(model, tokenizer, pretraining summary). ``pretrain.steps`` None: a random-init model and a
    tokenizer trained on the background and the injected texts (summary empty). Otherwise the
    shared pretrained model (``lab.pretrain``) of background text drawn under ``pretrain.seed``."""
    p = cfg["pretrain"]
    if not p["steps"]:
        tokenizer = lab_tokenizer(out, texts + injected, cfg)
        return lab_model(cfg["model"], tokenizer, seed=cfg["seed"], device=cfg["model"]["device"]), tokenizer, {}
    settings = {"corpus": cfg["corpus"], "people": p["people"], "n_paraphrases": cfg["world"]["n_paraphrases"]}
    model, tokenizer, summary = pretrained_start(
        cfg["model"], cfg["train"], background_texts(cfg, p["seed"]), steps=p["steps"], seed=p["seed"],
        cache=Path(p["cache"]) if p["cache"] else Path(out).resolve().parent, settings=settings, log=log)
    log(f"pretrained model: final loss {summary['final_loss']:.3f}, slope over the last {summary['tail_steps']} "
        f"steps {summary['slope_per_1k_steps']:+.3f} nats per 1,000 steps")
    return model, tokenizer, {k: v for k, v in summary.items() if k != "fingerprint"}


def cohorts(versions: dict[str, dict[str, list[str]]], steps: list[int], k: int,
            gap: int) -> tuple[dict[str, int], list[list[int]]]:
    """Each group's people (sorted) dealt into ``k`` cohorts (person i → cohort i mod k), and cohort
    c's injection steps: ``steps`` shifted by c·``gap``."""
    if k < 1 or gap < 0:
        raise MnemoscopeError(f"injection.cohorts must be ≥ 1 and injection.cohort_gap ≥ 0 (got {k}, {gap})")
    cohort_of = {pid: i % k for g in versions for i, pid in enumerate(sorted(versions[g]))}
    return cohort_of, [[s + c * gap for s in steps] for c in range(k)]


# --------------------------------------------------------------------------- analysis


def _key(name: str, group: str, kind: str) -> str:
    return f"acquisition/{name}@group={group},probe={kind}"


def analyze(curves: pd.DataFrame, steps: list[int], *, window: int, batch_size: int, seq_len: int,
            iqr_factor: float = 2.0, own_steps: dict[str, list[int]] | None = None
            ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Probe curves (long format) → (flat metrics, one row per probe, retention points).

    ``steps``: the injection steps; ``own_steps``: a probe's own steps where its person's cohort is
    injected on a shifted schedule (probes not named use ``steps``).
    Per probe: ℓ_0 = ℓ(first injection step); effectivity at each of its group's injections;
    R(t) after its group's last injection (once: the first). Per group × probe kind: probes whose
    mean R is outside Q1 − f·IQR … Q3 + f·IQR are outliers; the decay fits use the pooled (t, R)
    points of the others.
    """
    wide = curves.pivot_table(index="step", columns="probe_id", values="target_nll", aggfunc="first").sort_index()
    info = curves.drop_duplicates("probe_id").set_index("probe_id")[["kind", "group"]]
    s = wide.index.to_numpy()
    # Mean NLL curve of never-seen people's probes, per kind: drift that no injection explains.
    control = {kind: wide[[p for p in wide.columns if info.at[p, "group"] == CONTROL and info.at[p, "kind"] == kind]]
               .mean(axis=1) for kind in info["kind"].unique()}
    rows, points = [], []
    for pid in wide.columns:
        kind, group = info.at[pid, "kind"], info.at[pid, "group"]
        v = wide[pid].to_numpy(dtype=np.float64)
        ok = np.isfinite(v)
        ss, vv = s[ok], v[ok]
        mine = (own_steps or {}).get(pid, steps)
        row = {"probe_id": pid, "kind": kind, "group": group, "nll_before": float(vv[ss == mine[0]][0]),
               "nll_final": float(vv[-1])}
        own = mine[:1] if group == "once" else mine
        if group in GROUPS:
            effs = [effectivity(ss, vv, t, window) for t in own]
            r = retainability(ss, vv, own[-1], row["nll_before"], window)
            row.update({"effectivity_mean": float(np.mean(effs)), "effectivity_first": effs[0],
                        "effectivity_last": effs[-1], "t_lam": r.t_lam,
                        "nll_after_last": float(vv[ss == r.t_lam][0]), "skipped": not r.ok,
                        # the control's NLL change over the same interval (t_LAM → final step)
                        "control_rise": float(control[kind].iloc[-1] - control[kind].get(r.t_lam, math.nan))})
            if r.ok:
                row["r_mean"] = float(np.mean(r.r)) if r.r.size else math.nan
                row["r_final"] = float(r.r[-1]) if r.r.size else math.nan
                points += [{"probe_id": pid, "kind": kind, "group": group, "t": int(tt), "r": float(rr)}
                           for tt, rr in zip(r.t, r.r)]
        rows.append(row)
    samples = pd.DataFrame(rows)
    for col in ("r_mean", "r_final", "effectivity_mean", "nll_after_last", "skipped", "control_rise"):
        if col not in samples:
            samples[col] = np.nan
    samples["outlier"] = False
    metrics: dict[str, float] = {}
    for (group, kind), part in samples.groupby(["group", "kind"]):
        metrics[_key("logprob/before", group, kind)] = float(-part["nll_before"].mean())
        metrics[_key("logprob/final", group, kind)] = float(-part["nll_final"].mean())
        metrics[_key("n_probes", group, kind)] = len(part)
        if group not in GROUPS:
            continue
        metrics[_key("logprob/after_last", group, kind)] = float(-part["nll_after_last"].mean())
        rise = part["nll_final"] - part["nll_after_last"]
        metrics[_key("nll/rise_after_last", group, kind)] = float(rise.mean())
        # forgetting beyond drift: the probe's rise minus never-seen probes' rise over the same steps
        metrics[_key("nll/rise_after_last_vs_control", group, kind)] = float((rise - part["control_rise"]).mean())
        for name in ("effectivity_mean", "effectivity_first", "effectivity_last"):
            metrics[_key(f"effectivity/{name.split('_')[1]}", group, kind)] = float(part[name].mean())
        usable = part[part["skipped"] == False]  # noqa: E712 (object column)
        keep = pd.Series(iqr_mask(usable["r_mean"].to_numpy(dtype=np.float64), iqr_factor), index=usable.index)
        samples.loc[keep.index[~keep.to_numpy()], "outlier"] = True
        metrics[_key("retainability/n_skipped", group, kind)] = int(len(part) - len(usable))
        metrics[_key("retainability/n_outliers", group, kind)] = int((~keep).sum())
        kept_ids = set(usable.loc[keep[keep].index, "probe_id"])
        pts = [p for p in points if p["probe_id"] in kept_ids]
        metrics[_key("retainability/final_mean", group, kind)] = float(usable.loc[keep[keep].index, "r_final"].mean()) if kept_ids else math.nan
        metrics.update(_fit_metrics(pts, group, kind, batch_size, seq_len))
    for kind in KINDS:
        for a, b in (("duplicate", "once"), ("paraphrase", "once"), ("paraphrase", "duplicate")):
            ka, kb = _key("logprob/after_last", a, kind), _key("logprob/after_last", b, kind)
            if ka in metrics and kb in metrics:
                metrics[f"acquisition/compare/logprob_after_last_gap@a={a},b={b},probe={kind}"] = metrics[ka] - metrics[kb]
    retention = pd.DataFrame(points, columns=["probe_id", "kind", "group", "t", "r"])
    retention["outlier"] = retention["probe_id"].isin(set(samples.loc[samples["outlier"], "probe_id"]))
    return metrics, samples, retention


def _fit_metrics(points: list[dict], group: str, kind: str, batch_size: int, seq_len: int) -> dict[str, float]:
    """Log-linear, exponential and power-law decay fits of pooled (t, R) points."""
    names = ("decay_a", "decay_b", "decay_r2", "decay_rmse", "x_intercept_steps", "x_intercept_tokens",
             "exp_c", "exp_k", "exp_r2", "exp_rmse", "power_c", "power_k", "power_r2", "power_rmse", "best_is_log")
    out = {_key(f"retainability/{n}", group, kind): math.nan for n in names}
    if len({p["t"] for p in points}) < 2:
        return out
    t = np.array([p["t"] for p in points], dtype=np.float64)
    r = np.array([p["r"] for p in points], dtype=np.float64)
    try:
        fits = compare_decay_fits(t, r)
    except MnemoscopeError:
        return out
    lf, ef, pf = fits["log"], fits["exponential"], fits["power_law"]
    values = {"decay_a": lf["a"], "decay_b": lf["b"], "decay_r2": lf["r2"], "decay_rmse": lf["rmse"],
              "x_intercept_steps": lf["x_intercept_steps"],
              "x_intercept_tokens": tokens_from_steps(lf["x_intercept_steps"], batch_size, seq_len)
              if math.isfinite(lf["x_intercept_steps"]) else math.inf,
              "exp_c": ef["c"], "exp_k": ef["k"], "exp_r2": ef["r2"], "exp_rmse": ef["rmse"],
              "power_c": pf["c"], "power_k": pf["k"], "power_r2": pf["r2"], "power_rmse": pf["rmse"],
              "best_is_log": float(fits["best"] == "log")}
    return {_key(f"retainability/{n}", group, kind): float(v) for n, v in values.items()}


# --------------------------------------------------------------------------- helpers


def select_probes(probes: list[dict], per_kind: int, seed: int) -> list[dict]:
    """Probes of trained (grouped) and never-seen (group "control") people; at most ``per_kind``
    of each kind per person, drawn with a seeded generator (the paper uses 5 of each)."""
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[str, str], list[dict]] = {}
    for p in probes:
        if p["kind"] in KINDS and (p["group"] in GROUPS or p["split"] == "never_seen"):
            chosen.setdefault((p["person_id"], p["kind"]), []).append(dict(p, group=p["group"] or CONTROL))
    out = []
    for key in sorted(chosen):
        items = chosen[key]
        if len(items) > per_kind:
            keep = sorted(rng.choice(len(items), per_kind, replace=False))
            items = [items[int(i)] for i in keep]
        out.extend(items)
    return out
