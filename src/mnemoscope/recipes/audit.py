"""Audit any causal LM: every measurement whose data the user gives, in one run directory.

Read top to bottom: config (defaults < YAML file < flags) → read and validate EVERY input file
→ load the model (and a reference model) → check that every prompt fits the context → create
the run directory → measure each family that has data → metrics.json, samples.parquet,
family_samples/<family>.parquet, notes.json → report.

Families and the config section that switches each on (see docs/formats.md, "Audit config"):

| section | data | family function |
|---|---|---|
| ``data`` | members + non-members (or one WikiMIA file) | membership: loss, zlib, min_k, min_k_pp (+ ref, ratio with ``membership.ref_model``, + lowercase) and the quick extraction test |
| ``extraction`` | texts (default: the members) + ``prefix_lengths`` | ``verbatim.k_extractable`` (+ ``pythia_memorization``) |
| ``verbmem`` | prompt / gt file | ``verbatim.verbmem`` |
| ``knowmem`` | QA file (+ shots file or the first ``n_shots``) | ``knowledge.knowmem`` |
| ``tofu`` | TOFU file | ``knowledge.tofu`` |
| ``target`` | prefix / target probes | ``knowledge.target_nll`` |
| ``recognition`` | seen texts + foil kinds, or a pairs file | ``recognition.two_afc`` |
| ``recall`` | studied texts | ``recognition.recall`` |
| ``sort`` | texts | ``episodic.sort_in_context`` |
| ``puzzles`` | Knights-and-Knaves file | ``reasoning.evaluate_puzzles`` + ``limem_eval`` |

Anything that cannot be computed (a set too small, a prefix longer than the context, an
unsolvable perturbation) is left out of metrics.json and explained in notes.json.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mnemoscope import rundir
from mnemoscope.config import flatten, resolve
from mnemoscope.engine import Engine, load_model
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import (
    episodic,
    knowledge,
    reasoning,
    recognition,
    reference,
    verbatim,
)
from mnemoscope.families.membership import attack_frame, membership_metrics
from mnemoscope.metrics.text import knowmem_prompt
from mnemoscope.probes import formats
from mnemoscope.probes.foils import FOIL_KINDS
from mnemoscope.probes.knights_knaves import Puzzle, load_puzzles
from mnemoscope.probes.sort import make_sort_pairs, sort_prompt
from mnemoscope.probes.textfile import load_texts
from mnemoscope.recipes.rundirs import prepare_run_dir

DEFAULTS = {
    "seed": 0,
    "model": {
        "name": "",
        "dtype": "auto",
        "device": "auto",
        "revision": None,
        "trust_remote_code": False,
        "allow_pickle": False,
    },
    "data": {"members": "", "nonmembers": "", "wikimia": "", "drop_overlap": False},
    "engine": {"bos": "auto", "truncation": "refuse", "max_length": None, "max_batch_size": 64, "max_tokens": 16384},
    "audit": {"k": 0.2, "extraction": True, "prefix_fraction": 0.5, "max_suffix": 32, "n_boot": 1000},
    "membership": {"ref_model": "", "ref_mismatch": "refuse", "lowercase": False},
    "extraction": {"texts": "", "prefix_lengths": [], "suffix_len": 50, "pythia": False,
                   "pythia_prefix": 32, "pythia_suffix": 32},
    "verbmem": {"file": "", "max_new_tokens": 128},
    "knowmem": {"file": "", "shots": "", "n_shots": 0, "max_new_tokens": 32},
    "tofu": {"file": "", "forget": True, "max_new_tokens": 64},
    "target": {"file": ""},
    "recognition": {"seen": "", "foils": ["shuffled_words"], "pool": "", "pairs": ""},
    "recall": {"texts": ""},
    "sort": {"texts": "", "segment_words": 20, "excerpt_words": None, "n_pairs": 20, "distance_bins": None,
             "long_term": False},
    "puzzles": {"file": "", "perturb": "statement", "max_new_tokens": 64, "instruction": True},
}

# Config keys holding input files: relative paths in a YAML file are relative to that file.
PATH_KEYS = (
    "data.members", "data.nonmembers", "data.wikimia", "extraction.texts", "verbmem.file", "knowmem.file",
    "knowmem.shots", "tofu.file", "target.file", "recognition.seen", "recognition.pool", "recognition.pairs",
    "recall.texts", "sort.texts", "puzzles.file",
)
MODEL_KEYS = ("model.name", "membership.ref_model")  # made relative to the YAML only when that path exists


# --------------------------------------------------------------------------- config


def load_config_file(path: str | Path) -> dict[str, object]:
    """A YAML audit config → dotted overrides, checked against ``DEFAULTS`` (an unknown key is an
    error naming the file and the nearest known key). Relative file paths become relative to the
    YAML file's folder."""
    path = Path(path)
    if not path.is_file():
        raise MnemoscopeError(f"{path}: audit config not found; check the --config path")
    try:
        tree = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MnemoscopeError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise MnemoscopeError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc}); "
                              "fix the syntax (see docs/formats.md, 'Audit config')") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise MnemoscopeError(f"{path}: an audit config must be a YAML mapping of sections (data:, knowmem:, ...)")
    flat = flatten(tree)
    resolve(DEFAULTS, flat, where=str(path))  # unknown keys and wrong types fail here, naming the file
    base = path.resolve().parent
    for key in PATH_KEYS + MODEL_KEYS:
        value = flat.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            candidate = base / Path(value).expanduser()
            if key in PATH_KEYS or candidate.exists():
                flat[key] = str(candidate)
    return flat


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """Everything read from the user's files, validated, before any model work."""

    members: list[str] = field(default_factory=list)
    nonmembers: list[str] = field(default_factory=list)
    extraction_texts: list[str] = field(default_factory=list)
    prefix_lengths: list[int] = field(default_factory=list)  # those that fit the context (preflight)
    pythia: bool = False
    verbmem: list[dict] = field(default_factory=list)
    knowmem_qa: list[dict] = field(default_factory=list)
    knowmem_shots: list[dict] = field(default_factory=list)
    tofu: list[dict] = field(default_factory=list)
    target: list[dict] = field(default_factory=list)
    pairs: pd.DataFrame | None = None  # recognition: seen, foil, kind
    recall: list[str] = field(default_factory=list)
    sort_records: list[dict] = field(default_factory=list)
    puzzles: list[Puzzle] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, family: str, text: str) -> None:
        self.notes.setdefault(family, []).append(text)

    @property
    def empty(self) -> bool:
        return not (self.members or self.extraction_texts or self.verbmem or self.knowmem_qa or self.tofu
                    or self.target or (self.pairs is not None and len(self.pairs)) or self.recall
                    or self.sort_records or self.puzzles)


def load_sets(members_path: str, nonmembers_path: str, drop_overlap: bool, warn=print,
              wikimia_path: str = "") -> tuple[list[str], list[str]]:
    """Read both sets (two text files, or one WikiMIA file); overlap is warned about (with its
    count) and optionally dropped from both; fewer than 2 texts in a set is an error."""
    if wikimia_path:
        if members_path or nonmembers_path:
            raise MnemoscopeError("give either data.wikimia or data.members + data.nonmembers, not both")
        members, nonmembers = formats.load_wikimia(wikimia_path)
        where_m = where_n = wikimia_path
    else:
        if not members_path or not nonmembers_path:
            missing = "--nonmembers (data.nonmembers)" if members_path else "--members (data.members)"
            raise MnemoscopeError(f"membership inference needs both sets: add {missing}")
        members, nonmembers = load_texts(members_path), load_texts(nonmembers_path)
        where_m, where_n = members_path, nonmembers_path
    overlap = set(members) & set(nonmembers)
    if overlap:
        where = f"{where_m} and {where_n}" if where_m != where_n else f"labels 1 and 0 of {where_m}"
        warn(f"warning: {len(overlap)} text(s) appear in both {where}"
             + ("; dropping them from both" if drop_overlap else "; pass --drop-overlap to remove them"))
        if drop_overlap:
            members = [t for t in members if t not in overlap]
            nonmembers = [t for t in nonmembers if t not in overlap]
    for name, texts, path in (("members", members, where_m), ("non-members", nonmembers, where_n)):
        if len(texts) < 2:
            raise MnemoscopeError(f"{path}: {len(texts)} {name}; membership inference needs at least 2 of each")
    return members, nonmembers


def _texts(path: str) -> list[str]:
    return formats.load_texts_any(path)


def _target_probes(path: str) -> list[dict]:
    """prefix / target records, with an optional ``group`` (or ``kind``) label."""
    out = []
    for where, rec in formats.read_rows(path):
        item = {}
        for key in ("prefix", "target"):
            value = rec.get(key)
            if key not in rec:
                raise MnemoscopeError(f"{where}: missing field '{key}' (fields present: "
                                      f"{', '.join(sorted(map(str, rec))) or 'none'}; expected: prefix, target)")
            if not isinstance(value, str) or not value.strip():
                raise MnemoscopeError(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
            item[key] = value
        group = rec.get("group", rec.get("kind"))
        if group is not None and (not isinstance(group, (str, int)) or str(group).strip() == ""):
            raise MnemoscopeError(f"{where}: field 'group' must be a non-empty string, got {group!r}")
        item["group"] = None if group is None else str(group)
        out.append(item)
    return out


def _puzzles(path: str) -> list[Puzzle]:
    p = Path(path)
    if p.is_file():
        data = p.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise MnemoscopeError(f"{p}:{line}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    puzzles = load_puzzles(p)
    if not puzzles:
        raise MnemoscopeError(f"{p}: the file holds no puzzles; write one puzzle object per line")
    return puzzles


def _foil_pairs(cfg: dict, inputs: Inputs, seed: int) -> pd.DataFrame | None:
    r = cfg["recognition"]
    if r["pairs"] and r["seen"]:
        raise MnemoscopeError("recognition: give either recognition.pairs or recognition.seen (+ foils), not both")
    if r["pairs"]:
        rows = formats.load_recognition_pairs(r["pairs"])
        return pd.DataFrame(rows)[["seen", "foil", "kind"]]
    if not r["seen"]:
        return None
    kinds = list(r["foils"])
    unknown = [k for k in kinds if k not in FOIL_KINDS]
    if unknown or not kinds:
        raise MnemoscopeError(f"recognition.foils: unknown or no foil kind(s) {unknown}; use any of {list(FOIL_KINDS)}")
    if "paraphrase" in kinds:
        raise MnemoscopeError("recognition.foils: 'paraphrase' foils cannot be made automatically; "
                              "write them to a pairs file (seen, foil, kind) and pass recognition.pairs")
    seen = _texts(r["seen"])
    pool = _texts(r["pool"]) if r["pool"] else None
    if "novel" in kinds and pool is None:
        raise MnemoscopeError("recognition.foils: kind 'novel' needs recognition.pool (texts the model did not study)")
    vocab = sorted({w for t in seen + (pool or []) for w in t.split()})
    frame, notes = recognition.make_foils(seen, kinds, seed, vocab=vocab, pool=pool)
    for n in notes:
        inputs.note("recognition", n)
    return frame[["seen", "foil", "kind"]]


def _sort_records(cfg: dict, inputs: Inputs, seed: int) -> list[dict]:
    """Counterbalanced SORT records from every text, on common distance bins; a text too short for
    the segment/excerpt sizes is left out with a note."""
    s = cfg["sort"]
    texts = _texts(s["texts"])
    seg, exc = int(s["segment_words"]), s["excerpt_words"]
    usable = [(i, t) for i, t in enumerate(texts) if len(t.split()) >= max(2 * seg, exc or 0)]
    for i, t in enumerate(texts):
        if all(i != j for j, _ in usable):
            inputs.note("sort", f"sort: text {i} not used: {len(t.split())} words, needs ≥ "
                                f"{max(2 * seg, exc or 0)} (2 × sort.segment_words, and sort.excerpt_words)")
    if not usable:
        inputs.note("sort", "sort: not computed: no text is long enough for two segments")
        return []
    bins = s["distance_bins"]
    if bins is None:  # equal-width bins over the gaps every text can offer
        max_gap = min((exc or len(t.split())) - 2 * seg for _, t in usable)
        n_bins = max(1, min(4, max_gap + 1))
        bins = sorted(set(np.linspace(0, max_gap + 1, n_bins + 1).round().astype(int).tolist()))
    records = []
    for i, text in usable:
        try:
            recs = make_sort_pairs(text, seg, exc, n_pairs=int(s["n_pairs"]), distance_bins=bins, seed=seed + i)
        except MnemoscopeError as err:
            inputs.note("sort", f"sort: text {i} not used: {err}")
            continue
        for r in recs:
            r["text_index"] = i
            r["pair_id"] = f"{i}:{r['pair_id']}"
        records += recs
    if not records:
        inputs.note("sort", "sort: not computed: no text yielded SORT pairs")
    return records


def load_inputs(cfg: dict, warn=print) -> Inputs:
    """Read and validate every input file the config names (no model needed)."""
    d, seed = cfg["data"], cfg["seed"]
    inputs = Inputs()
    if d["members"] or d["nonmembers"] or d["wikimia"]:
        inputs.members, inputs.nonmembers = load_sets(d["members"], d["nonmembers"], d["drop_overlap"], warn,
                                                      wikimia_path=d["wikimia"])
    x = cfg["extraction"]
    if x["prefix_lengths"] or x["pythia"]:
        inputs.extraction_texts = _texts(x["texts"]) if x["texts"] else list(inputs.members)
        if not inputs.extraction_texts:
            raise MnemoscopeError("extraction: no texts to extract from; set extraction.texts or data.members")
        if any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in x["prefix_lengths"]) \
                or x["suffix_len"] < 1:
            raise MnemoscopeError(f"extraction.prefix_lengths {x['prefix_lengths']} and extraction.suffix_len "
                                  f"{x['suffix_len']} must be positive integers")
        inputs.prefix_lengths, inputs.pythia = list(x["prefix_lengths"]), bool(x["pythia"])
    elif x["texts"]:
        raise MnemoscopeError("extraction.texts is set but neither extraction.prefix_lengths nor "
                              "extraction.pythia is: say what to measure, e.g. prefix_lengths: [8, 16]")
    if cfg["verbmem"]["file"]:
        inputs.verbmem = formats.load_prompt_continuations(cfg["verbmem"]["file"])
    k = cfg["knowmem"]
    if k["file"]:
        qa = formats.load_qa(k["file"])
        if k["shots"]:
            inputs.knowmem_shots, inputs.knowmem_qa = formats.load_qa(k["shots"]), qa
        else:
            n = int(k["n_shots"])
            if n < 0:
                raise MnemoscopeError(f"knowmem.n_shots must be ≥ 0, got {n}")
            inputs.knowmem_shots, inputs.knowmem_qa = qa[:n], qa[n:]
            if not inputs.knowmem_qa:
                inputs.note("knowmem", f"knowmem: not computed: {k['file']} holds {len(qa)} QA pair(s), all used "
                                       f"as the {n} shots; give more pairs, fewer knowmem.n_shots, or knowmem.shots")
    if cfg["tofu"]["file"]:
        inputs.tofu = formats.load_tofu(cfg["tofu"]["file"])
    if cfg["target"]["file"]:
        inputs.target = _target_probes(cfg["target"]["file"])
    inputs.pairs = _foil_pairs(cfg, inputs, seed)
    if cfg["recall"]["texts"]:
        inputs.recall = _texts(cfg["recall"]["texts"])
    if cfg["sort"]["texts"]:
        inputs.sort_records = _sort_records(cfg, inputs, seed)
    if cfg["puzzles"]["file"]:
        if cfg["puzzles"]["perturb"] not in ("", *reasoning.PERTURBATIONS):
            raise MnemoscopeError(f"puzzles.perturb '{cfg['puzzles']['perturb']}': use one of "
                                  f"{', '.join(reasoning.PERTURBATIONS)} (or '' for none)")
        inputs.puzzles = _puzzles(cfg["puzzles"]["file"])
    if cfg["membership"]["ref_model"] and not inputs.members:
        raise MnemoscopeError("membership.ref_model (--ref-model) needs member and non-member texts")
    if cfg["membership"]["ref_mismatch"] not in reference.MISMATCH_POLICIES:
        raise MnemoscopeError(f"membership.ref_mismatch '{cfg['membership']['ref_mismatch']}': use one of "
                              f"{', '.join(reference.MISMATCH_POLICIES)}")
    return inputs


# --------------------------------------------------------------------------- model and preflight


def _engine(cfg: dict, name: str) -> tuple[Engine, object]:
    m, e = cfg["model"], cfg["engine"]
    loaded = load_model(name, dtype=m["dtype"], device=m["device"], revision=m["revision"],
                        trust_remote_code=m["trust_remote_code"], allow_pickle=m["allow_pickle"])
    engine = Engine.from_loaded(loaded, bos=e["bos"], truncation=e["truncation"], max_length=e["max_length"],
                                max_batch_size=e["max_batch_size"], max_tokens=e["max_tokens"], progress=True)
    return engine, loaded


def _check_generation(engine: Engine, prompts: list, max_new: int, what: str, key: str) -> None:
    """Prompt tokens + new tokens must fit the context (generation never truncates)."""
    limit = engine.encoder.max_length
    if limit is None:
        return
    for i, p in enumerate(prompts):
        n = len(p) if isinstance(p, list) else len(engine.encode_prompt(p))
        if n + max_new > limit:
            raise MnemoscopeError(f"{what} {i}: a prompt of {n} tokens + {key}={max_new} new tokens exceeds the "
                                  f"model's context ({limit}); shorten the prompt or lower {key}")


def preflight(engine: Engine, ref_engine: Engine | None, inputs: Inputs, cfg: dict) -> None:
    """Encode everything the measurements will feed the model, so length and tokenizer problems
    fail before the run directory exists. Drops k-extractable prefixes that cannot fit (noted)."""
    texts = inputs.members + inputs.nonmembers
    if texts:
        engine.check_texts(texts)
        if cfg["membership"]["lowercase"]:
            engine.check_texts([t.lower() for t in texts])
        if ref_engine is not None:
            ref_engine.check_texts(texts)
            reason = reference.tokenizer_mismatch(engine, ref_engine, texts)
            if reason is not None and cfg["membership"]["ref_mismatch"] == "refuse":
                raise MnemoscopeError(
                    f"target and reference tokenizers are not compatible: {reason}; pass a reference model "
                    "that shares the target's tokenizer, or --ref-mismatch per_byte to compare NLL per UTF-8 byte")
    limit = engine.encoder.max_length
    bos = len(engine.encoder._prefix())
    x = cfg["extraction"]
    if inputs.extraction_texts and limit is not None:
        keep = []
        for p in inputs.prefix_lengths:
            if bos + p + x["suffix_len"] > limit:
                inputs.note("extraction", f"extraction@prefix={p}: not computed: {p} + {x['suffix_len']} tokens "
                                          f"exceed the model's context ({limit})")
            else:
                keep.append(p)
        inputs.prefix_lengths = keep
        if inputs.pythia and bos + x["pythia_prefix"] + x["pythia_suffix"] > limit:
            inputs.note("pythia", f"extraction/pythia: not computed: {x['pythia_prefix']} + {x['pythia_suffix']} "
                                  f"tokens exceed the model's context ({limit})")
            inputs.pythia = False
    if inputs.verbmem:
        _check_generation(engine, [r["prompt"] for r in inputs.verbmem], cfg["verbmem"]["max_new_tokens"],
                          "verbmem prompt", "verbmem.max_new_tokens")
    if inputs.knowmem_qa:
        shots = [(s["question"], s["answer"]) for s in inputs.knowmem_shots]
        _check_generation(engine, [knowmem_prompt(shots, q["question"]) for q in inputs.knowmem_qa],
                          cfg["knowmem"]["max_new_tokens"], "knowmem question", "knowmem.max_new_tokens")
    if inputs.tofu:
        contexts = [knowledge.TOFU_TEMPLATE.format(question=it["question"]) for it in inputs.tofu]
        _check_generation(engine, [c.rstrip() for c in contexts], cfg["tofu"]["max_new_tokens"], "tofu item",
                          "tofu.max_new_tokens")
        for c, it in zip(contexts, inputs.tofu):
            for ans in [it["answer"], it["paraphrased_answer"], *it["perturbed_answers"]]:
                engine.encoder.encode_pair(c, " " + ans)
    for probe in inputs.target:
        engine.encoder.encode_pair(probe["prefix"], probe["target"])
    if inputs.pairs is not None and len(inputs.pairs):
        engine.check_texts(list(inputs.pairs["seen"]) + list(inputs.pairs["foil"]))
    if inputs.recall:
        ids = [engine.tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs.recall]
        longest = max(len(i) - len(i) // 2 for i in ids)
        _check_generation(engine, [[0] * (bos + len(i) // 2) for i in ids], longest, "recall text",
                          "the recall length")
    for record in inputs.sort_records:
        for with_excerpt in (True, False) if cfg["sort"]["long_term"] else (True,):
            context, choices = sort_prompt(record, with_excerpt)
            engine.encoder.encode_pair(context, choices[0])
    if inputs.puzzles:
        p = cfg["puzzles"]
        puzzles = list(inputs.puzzles)
        if p["perturb"]:
            for i, pz in enumerate(inputs.puzzles):
                try:
                    puzzles.append(reasoning.PERTURBATIONS[p["perturb"]](pz, cfg["seed"] + i))
                except MnemoscopeError:
                    continue  # limem_eval skips (and notes) it
        _check_generation(engine, [reasoning.puzzle_prompt(pz, instruction=p["instruction"]) for pz in puzzles],
                          p["max_new_tokens"], "puzzle", "puzzles.max_new_tokens")


# --------------------------------------------------------------------------- membership


def likelihood_scores(
    engine: Engine,
    texts: list[str],
    *,
    k: float = 0.2,
    ref_engine: Engine | None = None,
    ref_mismatch: str = "refuse",
    lowercase: bool = False,
) -> pd.DataFrame:
    """Every likelihood attack from ONE batched target pass (+ one reference pass, + one pass over
    the lower-cased texts): score/{loss, zlib, min_k, min_k_pp[, ref, ratio][, lowercase]}."""
    scored = engine.score(texts)
    frame = attack_frame(texts, scored, k)
    if ref_engine is not None:
        ref = reference.ref_ratio_scores(engine, ref_engine, texts, mismatch=ref_mismatch, target_scores=scored)
        frame["ref/unit"] = ref["unit"].to_numpy()
        frame["ref/nll_target"] = ref["nll_target"].to_numpy()
        frame["ref/nll_ref"] = ref["nll_ref"].to_numpy()
        frame["score/ref"] = ref["score/ref"].to_numpy()
        frame["score/ratio"] = ref["score/ratio"].to_numpy()
    if lowercase:
        low = reference.lowercase_scores(engine, texts, scores=scored)
        frame["nll_lower"] = low["nll_lower"].to_numpy()
        frame["score/lowercase"] = low["score/lowercase"].to_numpy()
    return frame


def membership_family(labels: np.ndarray, frame: pd.DataFrame, *, n_boot: int, seed: int) -> tuple[dict, list[str]]:
    """``membership_metrics`` per attack over the texts with a finite score; an attack with too few
    finite scores is not computed (noted); TPRs the non-members cannot resolve are noted."""
    labels = np.asarray(labels, dtype=int)
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for col in [c for c in frame.columns if c.startswith("score/")]:
        values = frame[col].to_numpy(dtype=float)
        keep = np.isfinite(values)
        attack = col.split("/", 1)[1]
        n_pos, n_neg = int(labels[keep].sum()), int((1 - labels[keep]).sum())
        if not keep.all():
            notes.append(f"mia/{attack}: {int((~keep).sum())} text(s) have no finite score and were left out")
        if n_pos < 2 or n_neg < 2:
            notes.append(f"mia/{attack}: not computed: {n_pos} members and {n_neg} non-members with a score; "
                         "an AUC needs at least 2 of each")
            continue
        metrics.update(membership_metrics(labels[keep], frame.loc[keep, [col]], n_boot=n_boot, seed=seed))
    under = sorted({key.split("tpr@fpr=")[1].split("/")[0] for key, v in metrics.items()
                    if key.endswith("/underpowered") and v})
    if under:
        n_neg = int((1 - labels).sum())
        need = ", ".join(f"FPR {float(f) * 100:g}% needs ≥ {math.ceil(1 / float(f) - 1e-9)}" for f in under)
        notes.append(f"mia: TPR not computed (null) where underpowered: {n_neg} non-members ({need})")
    return metrics, notes


# --------------------------------------------------------------------------- run


@dataclass
class Results:
    metrics: dict[str, float] = field(default_factory=dict)
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, family: str, result: tuple[pd.DataFrame, dict, list[str]]) -> None:
        frame, metrics, notes = result
        self.metrics.update(metrics)
        if len(frame):
            self.frames[family] = pd.concat([self.frames[family], frame], ignore_index=True) \
                if family in self.frames else frame
        if notes:
            self.notes.setdefault(family, []).extend(notes)


def measure(engine: Engine, ref_engine: Engine | None, inputs: Inputs, cfg: dict, timer, log=print) -> Results:
    """Run every family that has data; each family is a few batched engine calls."""
    res = Results(notes={k: list(v) for k, v in inputs.notes.items()})
    seed, a = cfg["seed"], cfg["audit"]
    if inputs.members:
        texts = inputs.members + inputs.nonmembers
        labels = np.array([1] * len(inputs.members) + [0] * len(inputs.nonmembers))
        with timer("membership"):
            m = cfg["membership"]
            frame = likelihood_scores(engine, texts, k=a["k"], ref_engine=ref_engine, ref_mismatch=m["ref_mismatch"],
                                      lowercase=m["lowercase"])
        samples = pd.concat([pd.DataFrame({"text": texts, "label": labels}), frame], axis=1)
        metrics, notes = membership_family(labels, frame, n_boot=a["n_boot"], seed=seed)
        res.metrics.update(metrics)
        if notes:
            res.notes.setdefault("membership", []).extend(notes)
        n_truncated = int((samples["truncated"] > 0).sum())
        res.metrics["data/n_truncated"] = n_truncated
        if n_truncated:
            log(f"note: {n_truncated} text(s) were truncated to the model's context")
        if "ref/unit" in samples and (samples["ref/unit"] == "byte").any():
            res.notes.setdefault("membership", []).append(
                "mia/ref, mia/ratio: the reference model's tokenizer differs; NLLs compared per UTF-8 byte")
        if a["extraction"]:
            with timer("extraction"):
                samples = pd.concat([samples, verbatim.extraction_table(
                    engine, texts, prefix_fraction=a["prefix_fraction"], max_suffix=a["max_suffix"])], axis=1)
            for label, name in ((1, "member"), (0, "nonmember")):
                group = samples[samples["label"] == label]
                res.metrics[f"extraction/exact/rate@set={name}"] = float(group["extraction/exact"].mean())
                res.metrics[f"extraction/memorization/mean@set={name}"] = float(group["extraction/memorization"].mean())
        res.samples = samples
    x = cfg["extraction"]
    if inputs.extraction_texts:
        with timer("extraction_sweep"):
            if inputs.prefix_lengths:
                res.add("extraction", verbatim.k_extractable(engine, inputs.extraction_texts,
                                                             prefix_lengths=tuple(inputs.prefix_lengths),
                                                             suffix_len=x["suffix_len"]))
            if inputs.pythia:
                res.add("pythia", verbatim.pythia_memorization(engine, inputs.extraction_texts,
                                                               prefix=x["pythia_prefix"], suffix=x["pythia_suffix"]))
    if inputs.verbmem:
        with timer("verbmem"):
            frame, metrics, notes = verbatim.verbmem(engine, [r["prompt"] for r in inputs.verbmem],
                                                     [r["continuation"] for r in inputs.verbmem],
                                                     max_new_tokens=cfg["verbmem"]["max_new_tokens"])
            frame.insert(0, "id", [r["id"] for r in inputs.verbmem])
            res.add("verbmem", (frame, metrics, notes))
    if inputs.knowmem_qa:
        with timer("knowmem"):
            frame, metrics, notes = knowledge.knowmem(
                engine, inputs.knowmem_qa, inputs.knowmem_shots, max_new_tokens=cfg["knowmem"]["max_new_tokens"])
            metrics["knowmem/n_shots"] = float(len(inputs.knowmem_shots))
            res.add("knowmem", (frame, metrics, notes))
    if inputs.tofu:
        with timer("tofu"):
            res.add("tofu", knowledge.tofu(engine, inputs.tofu, forget=cfg["tofu"]["forget"],
                                           max_new_tokens=cfg["tofu"]["max_new_tokens"]))
    if inputs.target:
        with timer("target"):
            groups = [p["group"] for p in inputs.target]
            res.add("knowledge", knowledge.target_nll(
                engine, inputs.target, groups=groups if all(g is not None for g in groups) else None))
    if inputs.pairs is not None and len(inputs.pairs):
        with timer("recognition"):
            p = inputs.pairs
            res.add("recognition", recognition.two_afc(engine, list(p["seen"]), list(p["foil"]), list(p["kind"])))
    if inputs.recall:
        with timer("recall"):
            res.add("recall", recognition.recall(engine, inputs.recall))
    if inputs.sort_records:
        s = cfg["sort"]
        with timer("sort"):
            for with_excerpt in (True, False) if s["long_term"] else (True,):
                res.add("sort", episodic.sort_in_context(engine, inputs.sort_records, with_excerpt=with_excerpt))
    if inputs.puzzles:
        p = cfg["puzzles"]
        with timer("puzzles"):
            kw = dict(max_new_tokens=p["max_new_tokens"], instruction=p["instruction"])
            res.add("reasoning", reasoning.evaluate_puzzles(engine, inputs.puzzles, **kw))
            if p["perturb"]:
                res.add("limem", reasoning.limem_eval(engine, inputs.puzzles, perturb=p["perturb"], seed=seed, **kw))
    return res


def run(out: str | Path, overrides: dict, log=print, warn=None) -> Path:
    cfg = resolve(DEFAULTS, overrides)
    warn = warn or (lambda m: print(m, file=sys.stderr))
    if not cfg["model"]["name"]:
        raise MnemoscopeError("audit needs --model PATH_OR_HUB_ID (or model.name in the --config file)")
    inputs = load_inputs(cfg, warn)
    if inputs.empty:
        raise MnemoscopeError("audit has nothing to measure: give --members and --nonmembers, or a --config file "
                              "naming data for at least one family (see docs/formats.md, 'Audit config')")
    engine, loaded = _engine(cfg, cfg["model"]["name"])
    ref_engine = _engine(cfg, cfg["membership"]["ref_model"])[0] if cfg["membership"]["ref_model"] else None
    preflight(engine, ref_engine, inputs, cfg)  # too long, mismatched tokenizers: fails before anything is written
    out = prepare_run_dir(Path(out), cfg)
    timer = rundir.Timer()
    res = measure(engine, ref_engine, inputs, cfg, timer, log)
    for family, frame in res.frames.items():
        rundir.write_parquet(out / "family_samples" / f"{family}.parquet", frame)
    rundir.write_parquet(out / "samples.parquet", res.samples)
    rundir.write_json(out / "notes.json", res.notes)
    rundir.write_json(out / "metrics.json", res.metrics)
    families = (["membership"] if inputs.members else []) + sorted(res.frames)
    rundir.write_json(out / "manifest.json", rundir.manifest(
        cfg["seed"], str(engine.device), timer.timings,
        {"recipe": "audit", "model": loaded.name, "bos": engine.bos, "dtype": str(loaded.dtype),
         "families": families}))
    for notes in res.notes.values():
        for note in notes:
            log(f"note: {note}")
    from mnemoscope.report.html import write_report

    write_report(out)
    return out
