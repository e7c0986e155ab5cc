"""Extraction beyond prefix tests: canaries at known doses, then every extraction measurement.

Read top to bottom: corpus → tokenizer → canaries → a training stream whose document order is
known → train the *original* model (checkpoints kept) → an *independent* model trained on the same
data in another order → a *derived* model fine-tuned from the original on other text → measure:

- exact vs approximate memorization of each canary's second half, with and without the MemFree
  verbatim filter (``families.approximate``);
- untargeted extraction: generations from the start of a document and from a generic prompt,
  spans of ≥ L tokens found verbatim in the training corpus, attributed to the canary dose (or the
  background text) they came from, with and without the filter (``families.untargeted``);
- ACR: the shortest prompt found (GCG, warm-started from the canary's own first tokens) that
  makes greedy decoding reproduce the rest of the canary (``families.acr``);
- provenance: Spearman test of the derived and the independent model against the original's
  training order (``families.provenance``);
- forecasting: the original's checkpoints predict which canaries the final model memorized;
- the newer membership attacks (``families.attacks``) by dose against the dose-0 controls.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mnemoscope import rundir
from mnemoscope.engine import Engine
from mnemoscope.engine.encoding import text_ids
from mnemoscope.engine.loading import resolve_device
from mnemoscope.families import (
    acr,
    approximate,
    attacks,
    forecast,
    provenance,
    untargeted,
)
from mnemoscope.families.base import Context, Result
from mnemoscope.families.blind import blind_baseline
from mnemoscope.families.blind import headline as blind_headline
from mnemoscope.families.membership import membership_metrics
from mnemoscope.files import write_jsonl
from mnemoscope.lab.factory import lab_model, lab_tokenizer
from mnemoscope.probes.canaries import check_canary_settings, make_canaries
from mnemoscope.probes.corpus import background_documents
from mnemoscope.recipes.common import (
    finish_lab_run,
    resolve_scaled,
    train_config,
)
from mnemoscope.summary import fmt
from mnemoscope.train.data import InjectedData, plan_injections
from mnemoscope.train.packing import pack_in_order
from mnemoscope.train.phase import train_phase

DEFAULTS = {
    "seed": 0,
    "scale": "tiny",  # tiny | powered (see SCALES)
    "model": {"size": "tiny", "vocab_size": 8192, "device": "auto", "layers": 4},
    "corpus": {"n_docs": 4000},
    "canaries": {"doses": [0, 1, 4, 16, 64], "per_dose": 6, "n_controls": 12, "kinds": ["passphrase", "random_tokens"],
                 "passphrase_words": 8, "random_tokens": 24},
    "train": {"steps": 500, "batch_size": 8, "seq_len": 64, "lr": 3e-3, "warmup": 20, "checkpoint_every": 100,
              "keep_checkpoints": 5},
    "derive": {"steps": 60, "lr": 3e-4, "n_docs": 600},
    "filter": {"n": 6, "fpr": 0.001},
    "untargeted": {"min_tokens": 12, "n_samples": 192, "max_new_tokens": 48, "top_k": 40, "temperature": 1.0,
                   "prompt": "My secret passphrase is"},
    "approximate": {"prefix_fraction": 0.5, "suffix_tokens": 32, "threshold": 0.75},
    "acr": {"per_dose": 1, "kind": "random_tokens", "warm_tokens": 4, "max_prompt_tokens": 8, "steps": 15,
            "budget_steps": 30, "batch_size": 48, "topk": 64},
    "provenance": {"n_perm": 9999},
    "forecast": {"prefix": 6, "suffix": 8},
    "attacks": {"names": list(attacks.ATTACKS), "n_neighbours": 10, "samia_samples": 5, "recall_shots": 3,
                "n_recall_prefix": 6},
    "audit": {"n_boot": 1000},
}


# powered: the derived-model provenance test with 80% power per seed at the smallest ρ seen over
# the default's seeds (docs/recipes.md, "Powered design"): ≈ 10,500 documents, one pass as the default.
SCALES = {
    "tiny": {},
    "powered": {"corpus": {"n_docs": 11300}, "train": {"steps": 1410}},
}


def run(out: str | Path = "runs/extraction", overrides: dict | None = None, log=print) -> Path:
    cfg = resolve_scaled(DEFAULTS, SCALES, overrides)
    check_canary_settings(cfg["canaries"])
    run = rundir.Run(out, cfg, "extraction")
    with run.phase("data"):  # data with a known order
        lab = make_data(cfg, run.out)
    with run.phase("train"):  # three models: original, independent, derived
        models, histories = train_models(cfg, run.out, lab, log)
    engines = {k: Engine(m.eval(), lab.tokenizer) for k, m in models.items()}
    acc = Measured(Context(seed=cfg["seed"], n_boot=cfg["audit"]["n_boot"], log=log), lab.canaries)
    for phase, measure in (("approximate", measure_approximate), ("untargeted", measure_untargeted),
                           ("acr", measure_acr), ("provenance", measure_provenance), ("forecast", measure_forecast),
                           ("attacks", measure_attacks)):
        log(f"measuring: {phase}")
        with run.phase(phase):
            measure(cfg, run.out, lab, engines, acc)
    run.metrics.update(acc.metrics)
    for key, why in acc.notes.items():
        run.note(key, why)
    for name, table in {"samples": acc.samples, **acc.tables}.items():
        run.add_table(name, table)
    return finish_lab_run(run, models["original"], histories["original"],
                          extra={"bos": engines["original"].bos, "derive_steps": cfg["derive"]["steps"]})


@dataclass
class Lab:
    """What the models are trained on and measured with: the background documents, the derived
    model's fine-tuning documents (``extra``), the tokenizer, the canaries and their token ids, the
    original and independent streams (data, document → step) and the folder of the data files."""

    docs: list[str]
    extra: list[str]
    tokenizer: object
    canaries: list
    canary_ids: dict
    streams: dict
    data_dir: Path


@dataclass
class Measured:
    """What the measurements collect: metrics, notes (the families' too), the per-canary samples
    and the other tables."""

    ctx: Context
    canaries: list
    metrics: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)

    def __post_init__(self):
        self.samples = pd.DataFrame([k.to_dict() for k in self.canaries])
        self.samples["label"] = (self.samples["dose"] > 0).astype(int)
        self.dose_of = dict(zip(self.samples["id"], self.samples["dose"]))

    def take(self, result: Result) -> Result:
        self.metrics.update(result.metrics)
        for key, why in {**self.ctx.notes, **result.notes}.items():
            self.notes[key] = why
        self.ctx.notes.clear()
        return result


def make_data(cfg: dict, out: Path) -> Lab:
    """Background documents, tokenizer and canaries; the original's and the independent model's
    streams (their own document order and injection plan); every data file the families read."""
    seed, t, c = cfg["seed"], cfg["train"], cfg["canaries"]
    docs = background_documents(cfg["corpus"]["n_docs"], seed=seed)
    tokenizer = lab_tokenizer(out, docs, cfg)
    eos = tokenizer.eos_token_id
    canaries = make_canaries(c["per_dose"], tuple(c["doses"]), kinds=tuple(c["kinds"]), n_controls=c["n_controls"],
                             passphrase_words=c["passphrase_words"], random_tokens=c["random_tokens"],
                             tokenizer=tokenizer, seed=seed)
    doc_tokens = text_ids(tokenizer, docs)
    canary_ids = {k.id: text_ids(tokenizer, k.text) for k in canaries}
    doses = {k.id: k.dose for k in canaries if k.dose > 0}
    streams = {}
    for name, order_seed in (("original", seed), ("independent", seed + 1)):
        order = list(range(len(docs)))
        random.Random(order_seed).shuffle(order)
        rows, positions = pack_in_order(doc_tokens, order, t["steps"] * t["batch_size"], t["seq_len"], eos)
        plan = plan_injections({k: len(v) for k, v in canary_ids.items()}, doses, steps=t["steps"],
                               batch_size=t["batch_size"], seq_len=t["seq_len"], seed=order_seed)
        streams[name] = (InjectedData(rows, t["batch_size"], plan, canary_ids, eos), positions)
    extra = background_documents(cfg["derive"]["n_docs"] + 200, seed=seed + 7)
    lab = Lab(docs, extra, tokenizer, canaries, canary_ids, streams, out / "data")
    write_data_files(cfg, lab)
    return lab


def write_data_files(cfg: dict, lab: Lab) -> None:
    """The files the families read: canaries, the corpus the model saw (for the MemFree filter and
    untargeted matching), training documents and their order (provenance), the untargeted prompt,
    a reference corpus (DC-PDD) and held-out prefixes (ReCaLL)."""
    c, docs, canaries, positions = cfg["canaries"], lab.docs, lab.canaries, lab.streams["original"][1]
    seen = sorted(positions)  # background documents the original saw (index → step)
    d = lab.data_dir
    d.mkdir(exist_ok=True)
    write_jsonl(d / "canaries.jsonl", [{"id": k.id, "text": k.text, "dose": k.dose} for k in canaries])
    write_jsonl(d / "corpus.jsonl", [{"id": f"bg-{i}", "text": docs[i]} for i in seen]
                + [{"id": k.id, "text": k.text} for k in canaries if k.dose > 0])
    write_jsonl(d / "train_docs.jsonl", [{"id": f"bg-{i}", "text": docs[i]} for i in seen])
    write_jsonl(d / "order.jsonl", [{"id": f"bg-{i}", "position": positions[i]} for i in seen])
    write_jsonl(d / "prompts.jsonl", [{"text": cfg["untargeted"]["prompt"]}])
    write_jsonl(d / "reference_corpus.jsonl", [{"text": x} for x in lab.extra[-200:]])
    held_out = make_canaries(0, (0,), kinds=("passphrase",), n_controls=cfg["attacks"]["n_recall_prefix"],
                             passphrase_words=c["passphrase_words"], seed=cfg["seed"] + 11)
    held_out = [h for h in held_out if h.text not in {k.text for k in canaries}]
    write_jsonl(d / "recall_prefix.jsonl", [{"text": h.text} for h in held_out])


def train_models(cfg: dict, out: Path, lab: Lab, log) -> tuple[dict, dict]:
    """The original and the independent model (own initialisation and stream), then the derived
    model: the original fine-tuned on ``derive.n_docs`` unseen documents."""
    seed, t, d = cfg["seed"], cfg["train"], cfg["derive"]
    device = resolve_device(cfg["model"]["device"])
    models, histories = {}, {}
    for name, init_seed in (("original", seed), ("independent", seed + 1)):
        model = lab_model(cfg["model"], lab.tokenizer, seed=init_seed, device=device)
        histories[name] = train_phase(model, lab.streams[name][0].batch, train_config(_no_steps(t), t["steps"], init_seed),
                                      out / name, log)
        models[name] = model
    derived = copy.deepcopy(models["original"])
    ft_rows = pack_in_order(text_ids(lab.tokenizer, lab.extra[: d["n_docs"]]), list(range(d["n_docs"])),
                            d["steps"] * t["batch_size"], t["seq_len"], lab.tokenizer.eos_token_id)[0]
    histories["derived"] = train_phase(
        derived, lambda s: ft_rows[s * t["batch_size"] : (s + 1) * t["batch_size"]],
        train_config(_no_steps(t), d["steps"], seed + 2, lr=d["lr"], warmup=0, checkpoint_every=0, keep_checkpoints=1),
        out / "derived", log)
    models["derived"] = derived
    return models, histories


def measure_approximate(cfg: dict, out: Path, lab: Lab, engines: dict, acc: Measured) -> None:
    """Exact vs approximate extraction of every canary, with and without the MemFree filter."""
    a, data_dir = cfg["approximate"], lab.data_dir
    acfg = {"approximate": {**approximate.DEFAULTS["approximate"], "texts": str(data_dir / "canaries.jsonl"),
                            "prefix_tokens": 0, "prefix_fraction": a["prefix_fraction"],
                            "suffix_tokens": a["suffix_tokens"], "threshold": a["threshold"], "filter": True,
                            "filter_corpus": str(data_dir / "corpus.jsonl"), "filter_n": cfg["filter"]["n"],
                            "filter_fpr": cfg["filter"]["fpr"]}}
    res = acc.take(family(approximate, acfg, engines["original"], acc.ctx))
    acc.metrics.update(approximate.rates_by(res.samples, acc.dose_of))
    wide = res.samples.pivot(index="id", columns="filter", values=["exact", "approx", "bleu", "edit_similarity"])
    wide.columns = [f"approx/{v}" + ("@filter=memfree" if f == "memfree" else "") for v, f in wide.columns]
    acc.samples = acc.samples.merge(wide, left_on="id", right_index=True, how="left")


def measure_untargeted(cfg: dict, out: Path, lab: Lab, engines: dict, acc: Measured) -> None:
    """Untargeted extraction: sampled text matched against the corpus, by source (dose or background)."""
    u, data_dir = cfg["untargeted"], lab.data_dir
    ucfg = {"untargeted": {**untargeted.DEFAULTS["untargeted"], "corpus": str(data_dir / "corpus.jsonl"),
                           "prompts": str(data_dir / "prompts.jsonl"), "min_tokens": u["min_tokens"],
                           "n_samples": u["n_samples"], "max_new_tokens": u["max_new_tokens"], "top_k": u["top_k"],
                           "temperature": u["temperature"], "filter": True, "filter_n": cfg["filter"]["n"],
                           "filter_fpr": cfg["filter"]["fpr"]}}
    res = acc.take(family(untargeted, ucfg, engines["original"], acc.ctx))
    spans = res.samples.copy()
    spans["source"] = [f"dose={acc.dose_of[x]}" if x in acc.dose_of else "background" for x in spans["doc_id"]]
    acc.metrics.update(untargeted_by_source(spans, cfg["canaries"]["doses"], res.metrics))
    acc.tables["untargeted_spans"] = spans.drop(columns=["span_ids"])


def measure_acr(cfg: dict, out: Path, lab: Lab, engines: dict, acc: Measured) -> None:
    """ACR of ``acr.per_dose`` canaries of ``acr.kind`` per dose, from their first ``warm_tokens``."""
    r, c, tokenizer = cfg["acr"], cfg["canaries"], lab.tokenizer
    chosen = [k for dose in sorted(set(c["doses"])) for k in [x for x in lab.canaries if x.dose == dose
                                                               and x.kind == r["kind"]][: r["per_dose"]]]
    rows = []
    for k in chosen:
        ids = lab.canary_ids[k.id]
        rows.append({"id": k.id, "text": tokenizer.decode(ids[r["warm_tokens"]:]),
                     "prompt": tokenizer.decode(ids[: r["warm_tokens"]])})
    write_jsonl(lab.data_dir / "acr_targets.jsonl", rows)
    rcfg = {"acr": {**acr.DEFAULTS["acr"], "targets": str(lab.data_dir / "acr_targets.jsonl"),
                    **{key: r[key] for key in ("max_prompt_tokens", "steps", "budget_steps", "batch_size", "topk")},
                    "start_tokens": min(r["warm_tokens"], r["max_prompt_tokens"])}}
    res = acc.take(family(acr, rcfg, engines["original"], acc.ctx))
    acr_rows = res.samples.assign(dose=[acc.dose_of[x] for x in res.samples["id"]])
    for dose, part in acr_rows.groupby("dose"):
        found = part["acr"].dropna()
        acc.metrics[f"acr/memorized/rate@dose={dose}"] = float(part["memorized"].mean())
        acc.metrics[f"acr/ratio/mean@dose={dose}"] = float(found.mean()) if len(found) else None
        if not len(found):
            acc.notes[f"acr/ratio/mean@dose={dose}"] = "acr: no prompt found for this dose within the budget"
    acc.tables["acr"] = acr_rows.drop(columns=["prompt_ids"])


def measure_provenance(cfg: dict, out: Path, lab: Lab, engines: dict, acc: Measured) -> None:
    """The training-order test against each suspect: the original, the derived and the independent model."""
    pcfg = {"provenance": {**provenance.DEFAULTS["provenance"], "texts": str(lab.data_dir / "train_docs.jsonl"),
                           "order": str(lab.data_dir / "order.jsonl"), "n_perm": cfg["provenance"]["n_perm"]}}
    prov_rows = []
    for suspect in ("original", "derived", "independent"):
        res = family(provenance, pcfg, engines[suspect], acc.ctx)
        for key in ("rho", "p_value", "p_value_two_sided"):
            acc.metrics[f"provenance/{key}@suspect={suspect}"] = res.metrics[f"provenance/{key}"]
        acc.metrics["provenance/n"] = res.metrics["provenance/n"]
        prov_rows.append(res.samples.assign(suspect=suspect))
    acc.tables["provenance"] = pd.concat(prov_rows, ignore_index=True)


def measure_forecast(cfg: dict, out: Path, lab: Lab, engines: dict, acc: Measured) -> None:
    """Forecasting the final model's memorization from the original's intermediate checkpoints."""
    from safetensors.torch import load_model as load_weights

    checkpoints = sorted((out / "original" / "checkpoints").glob("step-*"))[:-1]  # the last one is the final
    device = resolve_device(cfg["model"]["device"])
    predictors, fractions = [], []
    for ck in checkpoints:
        m = lab_model(cfg["model"], lab.tokenizer, seed=cfg["seed"], device=device)
        load_weights(m, str(ck / "model.safetensors"))
        predictors.append(Engine(m.eval(), lab.tokenizer))
        fractions.append(int(ck.name.split("-")[1]) / cfg["train"]["steps"])
    if not predictors:
        acc.notes["forecast/memorized/rate"] = "forecast: no intermediate checkpoint kept (train.keep_checkpoints)"
        return
    f = cfg["forecast"]
    fcfg = {"forecast": {"texts": str(lab.data_dir / "canaries.jsonl"), "models": [str(x) for x in checkpoints],
                         "fractions": fractions, "prefix": f["prefix"], "suffix": f["suffix"]}}
    fctx = Context(seed=cfg["seed"], engines={"forecast.models": predictors})
    res = family(forecast, fcfg, engines["original"], fctx)
    acc.metrics.update(res.metrics)
    acc.notes.update({**fctx.notes, **res.notes})
    acc.samples = acc.samples.merge(res.samples, on="id", how="left")


def measure_attacks(cfg: dict, out: Path, lab: Lab, engines: dict, acc: Measured) -> None:
    """Membership attacks on the canaries of each dose against the never-injected controls, and the
    blind baseline (can the canaries be told from the controls without the model?)."""
    seed, n_boot = cfg["seed"], cfg["audit"]["n_boot"]
    kcfg = {"attacks": {**attacks.DEFAULTS["attacks"],
                        **{k: v for k, v in cfg["attacks"].items() if k in attacks.DEFAULTS["attacks"]},
                        "recall_prefix": str(lab.data_dir / "recall_prefix.jsonl"),
                        "dcpdd_corpus": str(lab.data_dir / "reference_corpus.jsonl")}}
    frame, attack_notes = attacks.attack_scores(engines["original"], [k.text for k in lab.canaries],
                                                attacks.read(kcfg, seed=seed))
    acc.notes.update(attack_notes)
    samples = pd.concat([acc.samples.reset_index(drop=True), frame], axis=1)
    controls = samples[samples["dose"] == 0]
    for dose in sorted(d for d in samples["dose"].unique() if d > 0):
        pair = pd.concat([samples[samples["dose"] == dose], controls])
        acc.metrics.update(membership_metrics(pair["label"].to_numpy(), pair[list(frame.columns)],
                                              suffix=f"@dose={dose}", n_boot=n_boot, seed=seed))
    blind = blind_baseline(list(samples["text"]), (samples["dose"] > 0).to_numpy(), n_boot=n_boot, seed=seed)
    acc.metrics.update(blind.metrics)
    acc.notes.update(blind.notes)
    acc.samples = samples


def summary(out: Path) -> str:
    """The CLI's closing table: by dose, exact / approximate / untargeted with and without MemFree, ACR;
    then the provenance p-values and the blind baseline (canaries vs controls without the model)."""
    metrics = json.loads((Path(out) / "metrics.json").read_text())

    def g(key, digits=2):
        return fmt(metrics.get(key), digits, whole="none")

    doses = sorted({int(k.split("@dose=")[1].split(",")[0]) for k in metrics if k.startswith("approx/exact/rate@dose=")})
    lines = [f"{'dose':>5} {'exact':>6} {'+filter':>8} {'approx':>7} {'+filter':>8} {'spans':>6} {'+filter':>8} {'ACR':>6}"]
    for d in doses:
        f = ",filter=memfree"
        src = f"@source=dose{d}"
        lines.append(f"{d:>5} {g(f'approx/exact/rate@dose={d}'):>6} {g(f'approx/exact/rate@dose={d}{f}'):>8} "
                     f"{g(f'approx/memorized/rate@dose={d}'):>7} {g(f'approx/memorized/rate@dose={d}{f}'):>8} "
                     f"{g(f'untargeted/spans/unique{src}', 0) if d else '-':>6} "
                     f"{g(f'untargeted/spans/unique{src}{f}', 0) if d else '-':>8} {g(f'acr/ratio/mean@dose={d}'):>6}")
    for suspect in ("derived", "independent"):
        lines.append(f"provenance {suspect:<11} rho {g(f'provenance/rho@suspect={suspect}', 3)}  "
                     f"p {metrics.get(f'provenance/p_value@suspect={suspect}', '-')}")
    return "\n".join(lines + blind_headline(metrics))


# -------------------------------------------------------------------- helpers


def family(module, cfg: dict, engine, ctx: Context) -> Result:
    """read → plan → measure of one family module, on files this recipe wrote."""
    return module.measure(module.plan(module.read(cfg, ctx), engine, ctx), engine, ctx)


def _no_steps(t: dict) -> dict:
    return {k: v for k, v in t.items() if k != "steps"}


def untargeted_by_source(spans: pd.DataFrame, doses: list[int], base: dict) -> dict[str, float]:
    """Unique extracted spans and generations with one, per source (each dose, background), with and
    without the filter: keys ``untargeted/spans/unique@source=S[,filter=memfree]``."""
    out: dict[str, float] = {}
    sources = [f"dose={d}" for d in sorted(set(doses)) if d > 0] + ["background"]
    for tag in ("none", "memfree"):
        part = spans[spans["filter"] == tag]
        n = base.get("untargeted/generations/n" + ("@filter=memfree" if tag == "memfree" else ""))
        for src in sources:
            sel = part[part["source"] == src]
            suffix = f"@source={src.replace('=', '')}" + (",filter=memfree" if tag == "memfree" else "")
            # e.g. untargeted/spans/unique@source=dose16,filter=memfree
            out[f"untargeted/spans/unique{suffix}"] = float(sel["text"].nunique())
            out[f"untargeted/extracted/rate{suffix}"] = float(sel["generation"].nunique() / n) if n else None
    return out
