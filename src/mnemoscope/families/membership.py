"""Membership inference: which texts did the model train on?

One teacher-forced pass per text feeds every likelihood attack; each score is oriented higher =
member (label member = 1):

- ``loss``      = −NLL(x) = mean_i log p_i
- ``zlib``      = −NLL(x) / zlib_bytes(x), x the whole text as given (UTF-8, default level)
- ``min_k``     = mean of the lowest ⌈k·n⌉ log p_i (k = ``audit.k``, 0.2)
- ``min_k_pp``  = mean of the lowest ⌈k·n⌉ z_i, z_i = (log p_i − μ_i)/σ_i (needs the backend's
  ``distribution`` capability; refused with a note otherwise)
- ``ref``, ``ratio`` (ranks exactly like ``ref``) and ``nll_ratio`` (Carlini et al.'s log-perplexity
  ratio) with a reference model (``membership.ref_model``), and ``lowercase``
  (``membership.lowercase``): see ``families.reference``.

Per attack: ROC-AUC with a bootstrap 95% CI and TPR at FPR 0.1% / 1% / 5% (null and flagged
``underpowered`` when the non-members cannot resolve that FPR) — keys ``mia/<attack>/<stat>``.
With ``audit.extraction`` (on by default) the members and non-members also get the quick greedy
extraction test (``families.extraction.extraction_table``): keys
``extraction/exact/rate@set=<member|nonmember>`` and ``extraction/memorization/mean@set=...``.

Config sections ``data`` (``members`` + ``nonmembers``, or one WikiMIA ``wikimia`` file;
``drop_overlap``), ``membership`` and ``audit`` (``k``, ``extraction``, ``prefix_fraction``,
``max_suffix``). Its per-text table is the run's ``samples.parquet``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mnemoscope.engine import Backend, TokenScores
from mnemoscope.engine.encoding import Encoded
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import attacks, reference
from mnemoscope.families.base import Context, Result, encode_each
from mnemoscope.families.extraction import compare_continuations, split_prefixes
from mnemoscope.metrics.membership import loss_score, membership_scores, min_k_score, zlib_score
from mnemoscope.metrics.roc import membership_report, n_groups
from mnemoscope.probes import formats
from mnemoscope.probes.textfile import load_texts_and_groups
from mnemoscope.summary import auc_line, fmt_metric

NAME = "membership"
TITLE = "Membership inference"
SAMPLES = "samples.parquet"
DEFAULTS = {
    "data": {"members": "", "nonmembers": "", "wikimia": "", "drop_overlap": False},
    "membership": {"ref_model": "", "ref_mismatch": "refuse", "lowercase": False},
    "audit": {"k": 0.2, "min_k_rounding": "up", "extraction": True, "prefix_fraction": 0.5, "max_suffix": 32},
    # the attacks of families.attacks, off unless named (gradnorm costs a backward pass per text, SaMIA samples)
    "attacks": {**attacks.DEFAULTS["attacks"], "names": []},
}
PATH_KEYS = ("data.members", "data.nonmembers", "data.wikimia", *attacks.PATH_KEYS)
MODEL_KEYS = ("membership.ref_model",)
NEEDS = ("logprobs",)
ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")


# --------------------------------------------------------------------------- scores


def attack_frame(texts: list[str], scored: list[TokenScores], k: float = 0.2, *, rounding: str = "up") -> pd.DataFrame:
    """Columns nll, n_scored, truncated, bos and score/<attack> for each single-model attack,
    from scores already computed (one pass feeds these and other attacks). ``texts[i]`` is the
    text ``scored[i]`` came from: zlib compresses it exactly as given
    (``zlib.compress(text.encode("utf-8"))``, as Carlini et al. and MIMIR do), never a re-decoding
    of its tokens. ``rounding`` is Min-K%'s count rule (``metrics.membership.min_k_count``).
    ``min_k_pp`` is left out when the scores carry no distribution statistics."""
    if len(texts) != len(scored):
        raise ValueError(f"attack_frame: {len(texts)} texts for {len(scored)} scores")
    rows = []
    for text, s in zip(texts, scored):
        row = {"nll": s.nll, "n_scored": s.n_scored, "truncated": s.truncated, "bos": s.bos}
        if s.mu is None or s.sigma is None:  # no distribution: Min-K%++ is not asked for at all
            scores = {"loss": loss_score(s.logprobs), "zlib": zlib_score(s.logprobs, text),
                      "min_k": min_k_score(s.logprobs, k, rounding)}
        else:
            scores = membership_scores(s.logprobs, s.mu, s.sigma, text, k, rounding=rounding)
        row.update({f"score/{a}": v for a, v in scores.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def score_texts(engine: Backend, texts: list[str], k: float = 0.2, *, rounding: str = "up") -> pd.DataFrame:
    """One forward pass per text → ``attack_frame`` of the results."""
    return attack_frame(list(texts), engine.score(list(texts)), k, rounding=rounding)


def membership_metrics(
    labels: np.ndarray,
    frame: pd.DataFrame,
    *,
    prefix: str = "mia",
    suffix: str = "",
    n_boot: int = 1000,
    seed: int = 0,
    groups=None,
) -> dict[str, float]:
    """Flat ``mia/<attack>/auc{suffix}`` etc. for every ``score/<attack>`` column; with ``groups``
    (one per row) the CIs resample groups (``metrics.roc.bootstrap_aucs``).

    TPR at an FPR the negatives cannot resolve (n_neg < 1/FPR) is null (nan) and flagged.
    """
    labels = np.asarray(labels, dtype=int)
    out: dict[str, float] = {}
    for col in [c for c in frame.columns if c.startswith("score/")]:
        attack = col.split("/", 1)[1]
        report = membership_report(labels, frame[col].to_numpy(dtype=float), n_boot=n_boot, seed=seed, groups=groups)
        for key, value in report.items():
            if key.startswith("tpr@") and not key.endswith("underpowered") and report[f"{key}/underpowered"]:
                value = math.nan
            out[f"{prefix}/{attack}/{key}{suffix}"] = value
    return out


def attack_metrics(labels: np.ndarray, frame: pd.DataFrame, *, n_boot: int, seed: int, groups=None,
                   prefix: str = "mia") -> Result:
    """``membership_metrics`` per attack over the texts with a finite score; an attack with fewer
    than 2 members or non-members with a score is null (noted); underpowered TPRs are noted. With
    ``groups`` the CIs resample groups (a note says so)."""
    labels = np.asarray(labels, dtype=int)
    groups = None if groups is None else np.asarray(groups, dtype=object)
    result = Result()
    for col in [c for c in frame.columns if c.startswith("score/")]:
        values = frame[col].to_numpy(dtype=float)
        keep = np.isfinite(values)
        attack = col.split("/", 1)[1]
        n_pos, n_neg = int(labels[keep].sum()), int((1 - labels[keep]).sum())
        key = f"{prefix}/{attack}/auc"
        if not keep.all():
            result.note(key, f"{prefix}/{attack}: {int((~keep).sum())} text(s) have no finite score and were left out")
        if n_pos < 2 or n_neg < 2:
            result.not_computed(key, f"{prefix}/{attack}: not computed: {n_pos} members and {n_neg} "
                                     "non-members with a score; an AUC needs at least 2 of each")
            continue
        kept_groups = None if groups is None else groups[keep]
        if kept_groups is not None and min(n_groups(kept_groups, labels[keep])) < 2:
            result.note(key, f"{prefix}/{attack}: fewer than 2 groups a set have a score; its CI resamples texts")
            kept_groups = None
        result.metrics.update(membership_metrics(labels[keep], frame.loc[keep, [col]], n_boot=n_boot, seed=seed,
                                                 groups=kept_groups, prefix=prefix))
    if groups is not None:
        g_pos, g_neg = n_groups(groups, labels)
        result.note(f"{prefix}/*/auc/ci_lo", f"{prefix}: 95% CIs resample groups ({g_pos} member and {g_neg} "
                                             "non-member groups), not texts (cluster bootstrap)")
    under = sorted({key.split("tpr@fpr=")[1].split("/")[0] for key, v in result.metrics.items()
                    if key.endswith("/underpowered") and v})
    if under:
        n_neg = int((1 - labels).sum())
        need = ", ".join(f"FPR {float(f) * 100:g}% needs ≥ {math.ceil(1 / float(f) - 1e-9)}" for f in under)
        result.note(f"{prefix}/*/tpr@fpr=*",
                    f"{prefix}: TPR not computed (null) where underpowered: {n_neg} non-members ({need})")
    return result


def likelihood_scores(engine: Backend, texts: list[str], *, k: float = 0.2, ref_engine: Backend | None = None,
                      ref_mismatch: str = "refuse", lowercase: bool = False, rounding: str = "up") -> pd.DataFrame:
    """Every likelihood attack from ONE batched target pass (+ one reference pass, + one pass over
    the lower-cased texts): score/{loss, zlib, min_k, min_k_pp[, ref, ratio, nll_ratio][, lowercase]}."""
    return _likelihood_frame(engine, texts, engine.score_encoded(engine.encode_texts(texts)), k, ref_engine,
                             ref_mismatch, lowercase, rounding)


def _likelihood_frame(engine, texts, scored, k, ref_engine, ref_mismatch, lowercase, rounding="up") -> pd.DataFrame:
    frame = attack_frame(texts, scored, k, rounding=rounding)
    if ref_engine is not None:
        ref = reference.ref_ratio_scores(engine, ref_engine, texts, mismatch=ref_mismatch, target_scores=scored)
        for col in ("unit", "nll_target", "nll_ref"):
            frame[f"ref/{col}"] = ref[col].to_numpy()
        for attack in ("ref", "ratio", "nll_ratio"):
            frame[f"score/{attack}"] = ref[f"score/{attack}"].to_numpy()
    if lowercase:
        low = reference.lowercase_scores(engine, texts, scores=scored)
        frame["nll_lower"] = low["nll_lower"].to_numpy()
        frame["score/lowercase"] = low["score/lowercase"].to_numpy()
    return frame


# --------------------------------------------------------------------------- the family


@dataclass
class Inputs:
    members: list[str]
    nonmembers: list[str]
    k: float = 0.2
    rounding: str = "up"  # Min-K% token count: "up" = max(1, ceil(k·n)); "down" = the published int(k·n)
    ref_mismatch: str = "refuse"
    lowercase: bool = False
    extraction: bool = True
    prefix_fraction: float = 0.5
    max_suffix: int = 32
    sources: tuple[str, str] = ("members", "non-members")  # where each set was read from
    attacks: attacks.Settings | None = None  # further attacks (families.attacks), when named
    groups: list[str] | None = None  # each text's group (members', then non-members'): CIs resample groups

    @property
    def texts(self) -> list[str]:
        return self.members + self.nonmembers

    @property
    def labels(self) -> np.ndarray:
        return np.array([1] * len(self.members) + [0] * len(self.nonmembers))


@dataclass
class Plan:
    inputs: Inputs
    items: list[Encoded]
    ref_engine: Backend | None = None
    extraction: tuple[list, list] | None = None  # (prompt ids, true suffix ids)
    refused: dict[str, str] = field(default_factory=dict)


def load_sets(members_path: str, nonmembers_path: str, drop_overlap: bool, warn=print,
              wikimia_path: str = "") -> tuple[list[str], list[str]]:
    """Read both sets (two text files, or one WikiMIA file); overlap is warned about (with its
    count) and optionally dropped from both; fewer than 2 texts in a set is an error."""
    members, nonmembers, _ = load_grouped_sets(members_path, nonmembers_path, drop_overlap, warn, wikimia_path)
    return members, nonmembers


def load_grouped_sets(members_path: str, nonmembers_path: str, drop_overlap: bool, warn=print,
                      wikimia_path: str = "") -> tuple[list[str], list[str], list[str] | None]:
    """``load_sets`` and the texts' ``group`` field (members' then non-members', or None when the
    files have none); a group field in one set only is an error."""
    groups_m = groups_n = None
    if wikimia_path:
        if members_path or nonmembers_path:
            raise MnemoscopeError("give either data.wikimia or data.members + data.nonmembers, not both")
        members, nonmembers = formats.load_wikimia(wikimia_path)
        where_m = where_n = wikimia_path
    else:
        if not members_path or not nonmembers_path:
            missing = "--nonmembers (data.nonmembers)" if members_path else "--members (data.members)"
            raise MnemoscopeError(f"membership inference needs both sets: add {missing}")
        (members, groups_m), (nonmembers, groups_n) = (load_texts_and_groups(members_path),
                                                       load_texts_and_groups(nonmembers_path))
        where_m, where_n = members_path, nonmembers_path
        if (groups_m is None) != (groups_n is None):
            has, lacks = (where_m, where_n) if groups_n is None else (where_n, where_m)
            raise MnemoscopeError(f"{has} gives each text a 'group' and {lacks} does not: give both sets a group "
                                  "field (the unit the CI resamples) or neither")
    overlap = set(members) & set(nonmembers)
    if overlap:
        where = f"{where_m} and {where_n}" if where_m != where_n else f"labels 1 and 0 of {where_m}"
        warn(f"warning: {len(overlap)} text(s) appear in both {where}"
             + ("; dropping them from both" if drop_overlap else "; pass --drop-overlap to remove them"))
        if drop_overlap:
            if groups_m is not None:
                groups_m = [g for t, g in zip(members, groups_m) if t not in overlap]
                groups_n = [g for t, g in zip(nonmembers, groups_n) if t not in overlap]
            members = [t for t in members if t not in overlap]
            nonmembers = [t for t in nonmembers if t not in overlap]
    for name, texts, path in (("members", members, where_m), ("non-members", nonmembers, where_n)):
        if len(texts) < 2:
            raise MnemoscopeError(f"{path}: {len(texts)} {name}; membership inference needs at least 2 of each")
    for name, groups, path in (("members", groups_m, where_m), ("non-members", groups_n, where_n)):
        if groups is not None and len(set(groups)) < 2:
            raise MnemoscopeError(f"{path}: the {name} form {len(set(groups))} group; a CI that resamples groups "
                                  "needs at least 2 per set (drop the group field to resample texts)")
    return members, nonmembers, None if groups_m is None else groups_m + groups_n


def read(cfg: dict, ctx: Context) -> Inputs | None:
    d, m, a = cfg["data"], cfg["membership"], cfg["audit"]
    if m["ref_mismatch"] not in reference.MISMATCH_POLICIES:
        raise MnemoscopeError(f"membership.ref_mismatch '{m['ref_mismatch']}': use one of "
                              f"{', '.join(reference.MISMATCH_POLICIES)}")
    if not (d["members"] or d["nonmembers"] or d["wikimia"]):
        if m["ref_model"]:
            raise MnemoscopeError("membership.ref_model (--ref-model) needs member and non-member texts")
        return None
    members, nonmembers, groups = load_grouped_sets(d["members"], d["nonmembers"], d["drop_overlap"], ctx.warn,
                                                    wikimia_path=d["wikimia"])
    sources = (d["wikimia"], d["wikimia"]) if d["wikimia"] else (d["members"], d["nonmembers"])
    more = attacks.read(cfg, seed=ctx.seed) if cfg["attacks"]["names"] else None
    if a["min_k_rounding"] not in ("up", "down"):
        raise MnemoscopeError(f"audit.min_k_rounding '{a['min_k_rounding']}': use up (ours) or down (the published code)")
    return Inputs(members, nonmembers, a["k"], a["min_k_rounding"], m["ref_mismatch"], m["lowercase"],
                  a["extraction"], a["prefix_fraction"], a["max_suffix"], sources, more, groups)


def plan(inputs: Inputs, engine: Backend, ctx: Context) -> Plan:
    texts = inputs.texts
    names = [f"{inputs.sources[0]}, member {i + 1}" for i in range(len(inputs.members))] + \
            [f"{inputs.sources[1]}, non-member {i + 1}" for i in range(len(inputs.nonmembers))]
    items = encode_each(lambda t: engine.encode_texts([t])[0], texts, "text", names)
    if inputs.lowercase:
        encode_each(lambda t: engine.encode_texts([t.lower()])[0], texts, "lower-cased text", names)
    ref_engine = ctx.engines.get("membership.ref_model")
    if ref_engine is not None:
        ref_engine.encode_texts(texts)
        reason = reference.tokenizer_mismatch(engine, ref_engine, texts)
        if reason is not None and inputs.ref_mismatch == "refuse":
            raise MnemoscopeError(
                f"target and reference tokenizers are not compatible: {reason}; pass a reference model that shares "
                "the target's tokenizer, or --ref-mismatch per_byte (membership.ref_mismatch) to compare NLL per "
                "UTF-8 byte")
    refused = {}
    if "distribution" not in engine.provides:
        refused["mia/min_k_pp/auc"] = distribution_refusal(engine)
    if inputs.attacks is not None:
        attacks.check(engine, texts, inputs.attacks)
    extraction = split_prefixes(engine, texts, inputs.prefix_fraction, inputs.max_suffix) if inputs.extraction else None
    return Plan(inputs, items, ref_engine, extraction, refused)


def distribution_refusal(engine: Backend) -> str:
    """Why Min-K%++ is null on a backend without the ``distribution`` capability, and the switch
    that provides it (``--vllm-distribution`` on the vLLM backend)."""
    how = ("pass --vllm-distribution (engine.vllm_distribution: exact, slow for large vocabularies) or use "
           "--backend hf" if engine.name.startswith("vllm") else "use --backend hf")
    return (f"not computed: min_k_pp needs the mean and std of log p over the whole vocabulary at every token, which "
            f"the {engine.name} backend does not provide as opened; {how}")


def measure(plan: Plan, engine: Backend, ctx: Context) -> Result:
    inputs = plan.inputs
    texts, labels = inputs.texts, inputs.labels
    scored = engine.score_encoded(plan.items)
    frame = _likelihood_frame(engine, texts, scored, inputs.k, plan.ref_engine, inputs.ref_mismatch, inputs.lowercase,
                              inputs.rounding)
    more_notes = {}
    if inputs.attacks is not None:
        more, more_notes = attacks.attack_scores(engine, texts, inputs.attacks)
        frame = pd.concat([frame, more], axis=1)
    head = pd.DataFrame({"text": texts, "label": labels})
    if inputs.groups is not None:
        head["group"] = inputs.groups
    samples = pd.concat([head, frame], axis=1)
    result = attack_metrics(labels, frame, n_boot=ctx.n_boot, seed=ctx.seed, groups=inputs.groups)
    for key, reason in more_notes.items():  # an attack left out is null; a partial one keeps its AUC
        if key in result.metrics:
            result.note(key, reason)
        else:
            result.not_computed(key, reason)
    for key, reason in plan.refused.items():
        result.not_computed(key, reason)
    n_truncated = int((samples["truncated"] > 0).sum())
    result.metrics["data/n_truncated"] = n_truncated
    if n_truncated:
        result.note("data/n_truncated", f"{n_truncated} text(s) were truncated to the model's context")
    if "ref/unit" in samples and (samples["ref/unit"] == "byte").any():
        result.note("mia/ref/auc", "mia/ref, mia/ratio: the reference model's tokenizer differs; NLLs compared per "
                                   "UTF-8 byte")
    if plan.extraction is not None:
        samples = pd.concat([samples, compare_continuations(engine, *plan.extraction)], axis=1)
        for label, name in ((1, "member"), (0, "nonmember")):
            group = samples[samples["label"] == label]
            result.metrics[f"extraction/exact/rate@set={name}"] = float(group["extraction/exact"].mean())
            result.metrics[f"extraction/memorization/mean@set={name}"] = float(group["extraction/memorization"].mean())
    result.samples = samples
    return result


def headline(metrics: dict) -> list[str]:
    """One line per attack (AUC with its CI), then the quick extraction test by set."""
    attacks = sorted({k.split("/")[1] for k in metrics if k.startswith("mia/") and k.endswith("/auc")
                      and metrics[k] is not None})
    lines = [auc_line(metrics, a) for a in attacks]
    rates = [metrics.get(f"extraction/exact/rate@set={s}") for s in ("member", "nonmember")]
    if all(r is not None for r in rates):
        lines.append(f"exact extraction: members {fmt_metric('rate', rates[0])}, non-members {fmt_metric('rate', rates[1])}")
    return lines

