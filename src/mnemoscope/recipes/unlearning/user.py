"""``mnemoscope unlearn``: the unlearning evaluation for a user's own model and files.

``mnemoscope unlearn --model M --forget F --retain R --method NAME [--retrained RM]``: read and
check every file → load the model → the reference (a retrained model, or the original on held-out
QA) and the stopping rule's levels → evaluate the original (and the retrained model) → unlearn
with one method, a curve point every ``eval_every`` steps, stopping at the reference's level →
evaluate the result the same way (``unlearn.model_eval.Evaluator``) → report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from mnemoscope import rundir
from mnemoscope.config import Typed, resolve
from mnemoscope.engine import Engine, load_model
from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.tiny import count_parameters
from mnemoscope.probes.adversarial import read_probes
from mnemoscope.probes.formats import load_multiple_choice
from mnemoscope.recipes.unlearning.finish import finish
from mnemoscope.unlearn import evaluation as ev
from mnemoscope.unlearn import stress
from mnemoscope.unlearn.examples import QA_TEMPLATE, Example, check_overlap, qa_examples, text_examples
from mnemoscope.unlearn.methods import METHODS, get_method
from mnemoscope.unlearn.model_eval import Evaluator, RelearnSet, eval_switches
from mnemoscope.unlearn.refusals import read_refusals, with_refusals
from mnemoscope.unlearn.runner import UnlearnConfig, resolve_hparams, unlearn


def _hparam_section() -> dict:
    """Every method's hyperparameters with their defaults (``--set hparams.<method>.<name>=...``);
    names without a default (RMU's layer) are typed nulls."""
    section = {}
    for name in METHODS:
        method = get_method(name)
        section[name] = {**dict(method.defaults), **{k: Typed(float) for k in method.extra_hparams}}
    return section


USER_DEFAULTS = {
    "seed": 0,
    "model": {"name": "", "dtype": "auto", "device": "auto", "trust_remote_code": False, "allow_pickle": False},
    "data": {"forget": "", "retain": "", "holdout": "", "ppl": "", "retrained": "", "drop_overlap": False,
             "probes": "", "relearn": "", "benign": "", "refusals": "", "mc_forget": "", "mc_retain": ""},
    # stop_on: keys brought to the reference's level (knowmem_forget; mia_auc needs --retrained and --holdout texts)
    "unlearn": {"method": "npo_gd", "steps": 30, "lr": 1e-5, "batch_size": 4, "max_length": 512, "eval_every": 10,
                "stop_rule": True, "stop_on": ["knowmem_forget"], "lora": False, "lora_rank": 8,
                "gradient_checkpointing": False},
    "hparams": _hparam_section(),
    "eval": {"knowmem_tokens": 32, "verbmem_tokens": 128, "n_boot": 1000,
             "min_k_rounding": "up", "knowmem_trailing_space": False, "tofu_eos": False, "chat_template": False,
             "lm_eval_tasks": [], "lm_eval_limit": Typed(float), "lm_eval_include": "",
             "relearn_steps": [5, 10, 20], "relearn_lr": 1e-5, "mc_description": ""},
    # quantization, benign relearning (sources: retain = the retain file, benign = data.benign) and
    # in-context relearning of the original, retrained and unlearned model (unlearn/stress.py)
    "stress": stress.USER_DEFAULTS,
}


def read_unlearn_file(path: str, template: str = QA_TEMPLATE) -> dict:
    """A forget / retain / holdout file in any supported layout → ``{examples, qa, tofu, texts, verbmem}``
    (``verbmem``: MUSE's (prompt, gt) pairs, used as given for VerbMem). QA examples are prompted
    with ``template`` (a ``{question}`` template: ``unlearn.chat.chat_template`` for chat models).

    TOFU-style (question, answer, paraphrased_answer, perturbed_answer[s]), QA (question/answer),
    MUSE VerbMem (prompt, gt) and plain texts (text) are recognised from the first record's fields.
    """
    from mnemoscope.probes import formats

    first = formats.read_rows(path)[0][1]
    if "paraphrased_answer" in first and any(k in first for k in formats.PERTURBED_KEYS):
        tofu = formats.load_tofu(path)
        return {"examples": qa_examples(tofu, template), "qa": tofu, "tofu": tofu, "texts": [], "verbmem": []}
    if any(k in first for k in formats.QUESTION_KEYS):
        qa = formats.load_qa(path)
        return {"examples": qa_examples(qa, template), "qa": qa, "tofu": [], "texts": [], "verbmem": []}
    if "prompt" in first:
        pc = formats.load_prompt_continuations(path)
        texts = [r["prompt"] + r["continuation"] for r in pc]
        return {"examples": [Example(r["prompt"], r["continuation"], r["id"]) for r in pc], "qa": [], "tofu": [],
                "texts": texts, "verbmem": [(r["prompt"], r["continuation"]) for r in pc]}
    texts = formats.load_texts_any(path)
    return {"examples": text_examples(texts), "qa": [], "tofu": [], "texts": texts, "verbmem": []}


def check(cfg: dict) -> tuple[dict, stress.Settings]:
    """Refuse missing flags and bad settings before the model loads; returns the method's
    hyperparameters as given and the checked stress settings."""
    d, u, e = cfg["data"], cfg["unlearn"], cfg["eval"]
    if not cfg["model"]["name"]:
        raise MnemoscopeError("unlearn needs --model PATH_OR_HUB_ID")
    for flag in ("forget", "retain"):
        if not d[flag]:
            raise MnemoscopeError(f"unlearn needs --{flag} FILE")
    method = u["method"]
    if get_method(method).needs_refusals and not d["refusals"]:
        raise MnemoscopeError(f"method {method} trains towards refusal answers: pass --refusals FILE (one refusal a "
                              "line, e.g. \"I don't know.\") or pick another method")
    hp = {k: v for k, v in cfg["hparams"][method].items() if v is not None}
    resolve_hparams(method, hp)  # a bad value fails here, before the model loads
    ev.check_stop_on(u["stop_on"])
    if u["lora"]:
        from mnemoscope.unlearn.adapters import require_peft

        require_peft()
    if e["lm_eval_tasks"]:
        from mnemoscope.unlearn.lm_eval_bridge import require_lm_eval

        require_lm_eval()
    return hp, stress.settings(cfg["stress"], cfg["model"]["device"], ("retain", "benign") if d["benign"] else ("retain",))


def _reference(run, d: dict, load: dict, loaded, data: ev.EvalData, notes: dict):
    """(reference, retrained model or None): the retrained model when given, else the original on held-out QA."""
    retrained = None
    with run.phase("reference"):
        if d["retrained"]:
            retrained = load_model(d["retrained"], **load).model
            return ev.reference_from_retrained(Engine(retrained, loaded.tokenizer), data), retrained
        if data.holdout_qa:
            return ev.reference_from_holdout(Engine(loaded.model, loaded.tokenizer), data), retrained
    notes["unlearn/reference"] = ("no retrained model (--retrained) and no held-out QA (--holdout): "
                                  "the stopping rule, PrivLeak and forget quality are not computed")
    return None, retrained


def _levels(u: dict, reference, data: ev.EvalData, notes: dict) -> dict[str, float]:
    """The reference's level on each ``unlearn.stop_on`` key it can give."""
    levels: dict[str, float] = {}
    if reference is not None and data.forget_qa and "knowmem_forget" in u["stop_on"]:
        levels["knowmem_forget"] = reference.knowmem_forget
    if "mia_auc" in u["stop_on"]:
        if reference is not None and reference.mia_forget is not None:
            levels["mia_auc"] = ev.auc_forget_vs_holdout(reference.mia_forget, reference.mia_holdout)
        else:
            notes["unlearn/reference/mia_auc"] = ("unlearn.stop_on names mia_auc, which needs --retrained and "
                                                  "forget and --holdout texts; the rule leaves it out")
    return levels


def run_user(out: str | Path, overrides: dict, log=print) -> Path:
    """Unlearn a user's model: one method, the six-way table, robustness, stop rule; adversarial
    probes, a relearning curve and lm-eval tasks when asked."""
    cfg = resolve(USER_DEFAULTS, overrides)
    d, u, e, m = cfg["data"], cfg["unlearn"], cfg["eval"], cfg["model"]
    hp, conf = check(cfg)
    method = u["method"]

    # every file, read and checked before the model loads
    forget, retain = read_unlearn_file(d["forget"]), read_unlearn_file(d["retain"])
    check_overlap(forget["examples"], retain["examples"], drop=d["drop_overlap"])
    holdout = read_unlearn_file(d["holdout"]) if d["holdout"] else {"qa": [], "texts": []}
    ppl = read_unlearn_file(d["ppl"])["texts"] if d["ppl"] else []
    probes = read_probes(d["probes"]) if d["probes"] else []
    relearn_ex = read_unlearn_file(d["relearn"])["examples"] if d["relearn"] else []
    refusals = read_refusals(d["refusals"]) if d["refusals"] else []
    mc = {k: load_multiple_choice(d[f"mc_{k}"]) if d[f"mc_{k}"] else [] for k in ("forget", "retain")}
    load = dict(dtype=m["dtype"], device=m["device"], trust_remote_code=m["trust_remote_code"], allow_pickle=m["allow_pickle"])
    loaded = load_model(m["name"], **load)
    tokenizer = loaded.tokenizer
    chat = {}
    if e["chat_template"]:  # QA prompted in the model's chat template
        from mnemoscope.unlearn.chat import chat_prompt, chat_template

        template = chat_template(tokenizer)
        forget, retain = read_unlearn_file(d["forget"], template), read_unlearn_file(d["retain"], template)
        if d["relearn"]:
            relearn_ex = read_unlearn_file(d["relearn"], template)["examples"]
        chat = {"qa_prompt": chat_prompt(tokenizer), "tofu_template": template}
    forget_ex, retain_ex, n_overlap = check_overlap(forget["examples"], retain["examples"], drop=d["drop_overlap"])
    if d["refusals"]:
        forget_ex = with_refusals(forget_ex, refusals, cfg["seed"])
    if n_overlap:
        print(f"warning: dropped {n_overlap} example(s) of {d['retain']} that are also in {d['forget']}", file=sys.stderr)
    run = rundir.Run(out, cfg, "unlearn")
    out = run.out
    kept = {(x.prompt, x.target) for x in retain_ex}
    retain_qa = [r for r, x in zip(retain["qa"], retain["examples"]) if (x.prompt, x.target) in kept]
    data = ev.EvalData(forget_qa=forget["qa"], retain_qa=retain_qa, forget_texts=forget["texts"],
                       holdout_texts=holdout["texts"], holdout_qa=holdout["qa"], ppl_texts=ppl,
                       forget_tofu=forget["tofu"], retain_tofu=[r for r in retain["tofu"] if r in retain_qa],
                       knowmem_tokens=e["knowmem_tokens"], verbmem_tokens=e["verbmem_tokens"], n_boot=e["n_boot"],
                       seed=cfg["seed"], verbmem_pairs=forget["verbmem"], mc_forget=mc["forget"],
                       mc_retain=mc["retain"], mc_description=e["mc_description"], **eval_switches(e), **chat)
    attacks = stress.Inputs(benign={"retain": retain_ex, "benign": read_unlearn_file(d["benign"])["examples"] if d["benign"] else []},
                            near=stress.neighbours(len(data.forget_qa)), retain_texts=retain["texts"])
    evaluator = Evaluator(tokenizer, data, conf, attacks, out, batch_size=u["batch_size"], max_length=u["max_length"],
                          seed=cfg["seed"], probes=probes,
                          lm_eval={"tasks": e["lm_eval_tasks"], "limit": e["lm_eval_limit"], "include": e["lm_eval_include"]},
                          relearn_sets=[RelearnSet(None, relearn_ex, data.forget_qa)] if relearn_ex else [],
                          relearn_steps=e["relearn_steps"], relearn_lr=e["relearn_lr"], robust_original=False,
                          phase=run.phase)
    metrics, not_computed = evaluator.metrics, evaluator.notes
    metrics["model/parameters"] = count_parameters(loaded.model)

    # the reference and the original (and retrained) model, measured before unlearning
    reference, retrained = _reference(run, d, load, loaded, data, not_computed)
    levels = _levels(u, reference, data, not_computed)
    with run.phase("original"):
        evaluator.evaluate("original", loaded.model, reference)
        evaluator.relearn("original", loaded.model)
    if retrained is not None:
        with run.phase("retrain"):
            evaluator.evaluate("retrain", retrained, reference)
            evaluator.relearn("retrain", retrained)

    # unlearn, a curve point every eval_every steps, stopping at the reference's level
    ucfg = UnlearnConfig(method=method, steps=u["steps"], lr=u["lr"], batch_size=u["batch_size"],
                         max_length=u["max_length"], eval_every=u["eval_every"], seed=cfg["seed"], lora=u["lora"],
                         lora_rank=u["lora_rank"], gradient_checkpointing=u["gradient_checkpointing"], hparams=hp)
    use_stop = u["stop_rule"] and bool(levels)
    mia_in_curve = "mia_auc" in levels
    no_qa = [name for name, qa in (("forget", data.forget_qa), ("retain", retain_qa)) if not qa]
    if no_qa:
        sets = " and ".join(f"--{n}" for n in no_qa)
        log(f"note: {sets} {'hold' if len(no_qa) > 1 else 'holds'} plain texts, not question/answer records, so "
            f"KnowMem on {' and '.join(no_qa)} is not measured and the progress lines leave it out")
    with run.phase("unlearn"):
        res = unlearn(loaded.model, tokenizer, forget_ex, retain_ex, ucfg, out / "unlearn" / method,
                      evaluate=lambda mdl: ev.quick_eval(Engine(mdl, tokenizer), data, reference, mia=mia_in_curve),
                      stop_when=ev.stop_rule(levels) if use_stop else None, log=log)
    metrics[f"unlearn/{method}/stop_step"] = float("nan") if res.stop_step is None else res.stop_step
    if res.stop_step is None:
        not_computed[f"unlearn/{method}/stop_step"] = (
            "no reference level (pass --retrained or --holdout with QA) or no forget QA" if not use_stop
            else f"never reached the reference level on {', '.join(levels)}")
    metrics[f"unlearn/{method}/steps_run"] = res.steps_run
    metrics[f"unlearn/{method}/diverged"] = float(res.diverged_at is not None)
    with run.phase("evaluate"):
        evaluator.evaluate(method, res.model, reference)
        evaluator.relearn(method, res.model)
    not_computed[f"unlearn/{method}/steps_run"] = "; ".join(res.notes)
    restored, rnotes = stress.restoration(metrics, ["retrain", method])
    metrics.update(restored)
    not_computed.update(rnotes)
    tables = {**evaluator.tables(), "unlearn_curves": pd.DataFrame([{"method": method, **p} for p in res.curve])}
    return finish(run, metrics, not_computed, tables, loaded.device,
                  {"model": loaded.name, "reference": reference.kind if reference else "none"})
