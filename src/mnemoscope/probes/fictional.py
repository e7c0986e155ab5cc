"""Seeded fictional worlds: biographies of made-up people, and probes about them.

Used for knowledge acquisition, capacity and unlearning (docs/recipes.md, docs/metrics.md).
``make_world(WorldConfig(n_people=100, seed=0))`` builds everything in memory;
``write_world`` / ``load_world`` store it as JSONL. Same config (and Faker version)
→ same world.

The world
---------
Every person has attributes drawn **uniformly** from pools (so bits can be counted,
see :func:`capacity_pools`): ``birth_date`` (a day in [birth_year_min, birth_year_max]),
``birth_city`` (city pool), ``university``, ``major``, ``employer`` (company pool),
``work_city`` (fixed by the employer: the company's headquarters) and ``mentor``
(another person, uniform over everyone else). Names (Faker first + last name) are
unique and no name is a substring of another. Every attribute has
``len(DOC_TEMPLATES[attr]) ≥ 4`` sentence templates, each naming the person before the
value, so every biography has true paraphrases.

Files written by :func:`write_world` (each atomically: temp file + rename;
``world.json`` last, so its presence means the directory is complete)::

    world.json       {"schema_version", "config", "pools", "companies", "splits"}
    people.jsonl     one fact row per person: person_id, name, birth_date, birth_city,
                     university, major, employer, work_city, mentor, mentor_id, split, group
    documents.jsonl  records of kind "document" and "company_document"
    probes.jsonl     records of kind "memorization", "semantic", "compositional"
    qa.jsonl         records of kind "qa"

Record schema (documents, probes, QA)
-------------------------------------
Every record has::

    id         str   unique, e.g. "p0007/mem/birth_city"
    kind       str   document | company_document | memorization | semantic | compositional | qa
    person_id  str | null   (null for company documents)
    attribute  str | null   the probed attribute; "mentor.birth_city" style for two-hop
                            probes; null for documents
    split      str   forget | retain | holdout | never_seen  ("background" for companies)
    group      str | null   injection group paraphrase | duplicate | once (trained
                            people only; null for holdout / never_seen / companies)

and either ``text`` (documents) or ``prefix`` + ``target`` (probes and QA). Prefixes keep
their trailing space ("Ada Lee was born in ") so that ``prefix + target`` is the exact
source text; the scoring engine moves that space onto the target (docs/metrics.md).
Targets are 1–8 words and never occur inside their prefix. Kind-specific fields:

* document: ``version`` (0 = canonical; 1..n_paraphrases = paraphrases, sentences
  shuffled; version k uses template (base + k) mod 4 for each attribute, so versions 0..3
  share no sentence).
* company_document: ``company_id``.
* memorization: ``source_id`` (the version-0 document) and ``template``: the document's
  sentence cut just before the value.
* semantic: ``source_id`` (the memorization probe) and ``template``: a wording that
  never appears in any document, same target.
* compositional (two-hop): ``hops`` (e.g. ["mentor", "birth_city"]) and ``via`` (the
  intermediate entity: the employer or the mentor's name).
* qa: ``question`` (= prefix), ``answer`` (a sentence), ``paraphrased_answer`` (another
  true sentence), ``perturbed_answers`` (the paraphrased sentence with ≥ 3 wrong values
  from the same pool), and ``target`` (the bare value).

Splits
------
People are partitioned into ``forget`` / ``retain`` (trained) and ``holdout`` /
``never_seen`` (never trained: holdout is the unlearning non-member set, never_seen the
acquisition/membership controls). Trained people are further spread over the injection
groups ``paraphrase`` / ``duplicate`` / ``once``, so forget and retain both contain all
three. ``world.splits`` maps each of these seven names to its person ids.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import write_jsonl, write_text
from mnemoscope.jsonl import read_jsonl

__all__ = [
    "ATTRIBUTES",
    "CHAINS",
    "DOC_TEMPLATES",
    "SEMANTIC_TEMPLATES",
    "COMPOSITIONAL_TEMPLATES",
    "QA_TEMPLATES",
    "MAJORS",
    "SPLITS",
    "GROUPS",
    "SCHEMA_VERSION",
    "WorldConfig",
    "World",
    "make_world",
    "capacity_pools",
    "write_world",
    "load_world",
]

SCHEMA_VERSION = 1

ATTRIBUTES: tuple[str, ...] = (
    "birth_date", "birth_city", "university", "major", "employer", "work_city", "mentor",
)
SPLITS: tuple[str, ...] = ("forget", "retain", "holdout", "never_seen")
GROUPS: tuple[str, ...] = ("paraphrase", "duplicate", "once")

# Document sentences. {name} always comes before {v}; the text after {v} is cut off in probes.
DOC_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "{name} was born on {v}.",
        "{name} came into the world on {v}.",
        "{name}'s date of birth is {v}.",
        "{name} first saw the light of day on {v}.",
    ),
    "birth_city": (
        "{name} was born in {v}.",
        "{name}'s birthplace is {v}.",
        "{name} was born and raised in {v}.",
        "{name} spent an early childhood in {v}, the city of {name}'s birth.",
    ),
    "university": (
        "{name} studied at {v}.",
        "{name} graduated from {v}.",
        "{name} received an education at {v}.",
        "{name} attended {v} as a student.",
    ),
    "major": (
        "{name} majored in {v}.",
        "{name} completed a degree in {v}.",
        "At university, {name} focused on {v}.",
        "{name} chose {v} as a field of study.",
    ),
    "employer": (
        "{name} works for {v}.",
        "{name} is employed by {v}.",
        "{name} has a job at {v}.",
        "{name} earns a living working at {v}.",
    ),
    "work_city": (
        "{name} works in {v}.",
        "{name}'s workplace is located in {v}.",
        "Every weekday, {name} commutes to an office in {v}.",
        "{name} has a professional life based in {v}.",
    ),
    "mentor": (
        "{name} was mentored by {v}.",
        "{name}'s mentor is {v}.",
        "{name} learned the trade under the guidance of {v}.",
        "{name} considers {v} a mentor.",
    ),
}

# Probe-only wordings (never used in documents), each ending in the value.
SEMANTIC_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": ("{name}'s birth took place on {v}.", "The day on which {name} was born is {v}."),
    "birth_city": ("{name} is a native of the city of {v}.", "The city where {name} was born is {v}."),
    "university": ("{name} earned a degree from {v}.", "The university that {name} went to is {v}."),
    "major": ("The subject {name} studied was {v}.", "{name}'s academic major was {v}."),
    "employer": ("The employer of {name} is {v}.", "{name} draws a salary from {v}."),
    "work_city": ("The city where {name} works is {v}.", "{name} goes to work in {v}."),
    "mentor": ("The person who mentored {name} is {v}.", "{name} received mentorship from {v}."),
}

# Two-hop relations: chain name -> (hops, templates). The first hop maps a person to an
# entity (employer or mentor), the second reads an attribute of that entity.
CHAINS: dict[str, tuple[str, str]] = {
    "employer.headquarters": ("employer", "headquarters"),
    "mentor.birth_city": ("mentor", "birth_city"),
    "mentor.university": ("mentor", "university"),
    "mentor.employer": ("mentor", "employer"),
    "mentor.major": ("mentor", "major"),
}
COMPOSITIONAL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "employer.headquarters": (
        "The company that employs {name} is headquartered in {v}.",
        "{name}'s employer has its headquarters in {v}.",
    ),
    "mentor.birth_city": (
        "{name}'s mentor was born in {v}.",
        "The mentor of {name} was born in the city of {v}.",
    ),
    "mentor.university": (
        "{name}'s mentor studied at {v}.",
        "The mentor of {name} graduated from {v}.",
    ),
    "mentor.employer": (
        "{name}'s mentor works for {v}.",
        "The mentor of {name} is employed by {v}.",
    ),
    "mentor.major": (
        "{name}'s mentor majored in {v}.",
        "The mentor of {name} holds a degree in {v}.",
    ),
}

# (question, answer sentence, paraphrased answer sentence); perturbed answers reuse the third.
QA_TEMPLATES: dict[str, tuple[str, str, str]] = {
    "birth_date": ("When was {name} born?", "{name} was born on {v}.", "The date of {name}'s birth was {v}."),
    "birth_city": ("Where was {name} born?", "{name} was born in {v}.", "{name}'s place of birth is {v}."),
    "university": (
        "Which university did {name} attend?", "{name} attended {v}.", "{name} went to university at {v}.",
    ),
    "major": ("What did {name} study?", "{name} studied {v}.", "{name}'s field of study was {v}."),
    "employer": (
        "Which company does {name} work for?", "{name} works for {v}.", "{name} is an employee of {v}.",
    ),
    "work_city": (
        "In which city does {name} work?", "{name} works in {v}.", "{name}'s job is located in {v}.",
    ),
    "mentor": (
        "Who was {name}'s mentor?", "{name}'s mentor was {v}.", "{name} was guided by {v} as a mentor.",
    ),
}

COMPANY_TEMPLATES: tuple[str, ...] = (
    "{company} is headquartered in {city}.",
    "{company} has its head office in {city}.",
    "The headquarters of {company} are located in {city}.",
)

MAJORS: tuple[str, ...] = (
    "Mechanical Engineering", "Civil Engineering", "Electrical Engineering", "Chemical Engineering",
    "Computer Science", "Mathematics", "Statistics", "Physics", "Chemistry", "Biology",
    "Biochemistry", "Geology", "Astronomy", "Oceanography", "Ecology", "Economics", "Finance",
    "Accounting", "Marketing", "Business Administration", "Psychology", "Sociology",
    "Anthropology", "Linguistics", "Philosophy", "History", "Classics", "Political Science",
    "International Relations", "Journalism", "Music Theory", "Fine Arts", "Architecture",
    "Urban Planning", "Nursing", "Pharmacology", "Public Health", "Veterinary Medicine",
    "Agricultural Science", "Materials Science", "Comparative Literature", "Theology",
)

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
_UNIVERSITY_PATTERNS = (
    "University of {city}", "{last} University", "{city} Institute of Technology",
    "{last} College", "{city} State University",
)


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and seed of a world. Pools: n_cities, n_universities, n_majors (≤ len(MAJORS)),
    n_companies; birth dates are uniform over the days of [birth_year_min, birth_year_max].
    Split fractions are of n_people (floored); retain gets the rest."""

    n_people: int = 100
    seed: int = 0
    n_cities: int = 200
    n_universities: int = 100
    n_majors: int = 40
    n_companies: int = 100
    birth_year_min: int = 1940
    birth_year_max: int = 1999
    n_paraphrases: int = 3
    n_perturbed: int = 3
    forget_fraction: float = 0.1
    holdout_fraction: float = 0.1
    never_seen_fraction: float = 0.1
    locale: str = "en_US"

    def validate(self) -> None:
        def need(ok: bool, fld: str, what: str) -> None:
            if not ok:
                raise MnemoscopeError(f"WorldConfig.{fld} = {getattr(self, fld)!r}: {what}")

        for fld in ("n_people", "seed", "n_cities", "n_universities", "n_majors", "n_companies",
                    "birth_year_min", "birth_year_max", "n_paraphrases", "n_perturbed"):
            need(isinstance(getattr(self, fld), int) and not isinstance(getattr(self, fld), bool),
                 fld, "must be an integer")
        need(self.n_perturbed >= 3, "n_perturbed", "use at least 3 perturbed answers")
        k = self.n_perturbed + 1
        need(self.n_people >= k + 1, "n_people", f"need at least n_perturbed + 2 = {k + 1} people")
        need(self.n_cities >= k, "n_cities", f"need at least n_perturbed + 1 = {k} cities")
        need(self.n_universities >= k, "n_universities", f"need at least {k} universities")
        need(self.n_companies >= k, "n_companies", f"need at least {k} companies")
        need(k <= self.n_majors <= len(MAJORS), "n_majors", f"must be in [{k}, {len(MAJORS)}]")
        need(1 <= self.birth_year_min <= self.birth_year_max <= 9999, "birth_year_max",
             "need 1 ≤ birth_year_min ≤ birth_year_max ≤ 9999")
        need(self.seed >= 0, "seed", "must be ≥ 0")
        need(self.n_paraphrases >= 0, "n_paraphrases", "must be ≥ 0")
        fracs = (self.forget_fraction, self.holdout_fraction, self.never_seen_fraction)
        need(all(0.0 <= f <= 1.0 for f in fracs) and sum(fracs) <= 1.0, "forget_fraction",
             "forget/holdout/never_seen fractions must be in [0, 1] and sum to ≤ 1")


@dataclass
class World:
    """A generated world: pools, people, company facts, splits and all records."""

    config: WorldConfig
    pools: dict[str, list[str]]
    people: list[dict[str, Any]]
    companies: list[dict[str, Any]]
    splits: dict[str, list[str]]
    documents: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    qa: list[dict[str, Any]] = field(default_factory=list)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record: documents, then probes, then QA pairs."""
        yield from self.documents
        yield from self.probes
        yield from self.qa


# --------------------------------------------------------------------------- pools


def _unique(draw: Callable[[], str], n: int, what: str) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(50 * n + 1000):
        if len(out) == n:
            return out
        value = draw()
        if value not in seen:
            seen.add(value)
            out.append(value)
    if len(out) == n:
        return out
    raise MnemoscopeError(f"could not draw {n} distinct {what}: lower that WorldConfig size")


def _spaced_substrings(s: str) -> set[str]:
    return {s[i:j] for i in range(len(s)) for j in range(i + 1, len(s) + 1) if " " in s[i:j]}


def _unique_names(fake: Any, n: int) -> list[str]:
    """n distinct "First Last" names, none a substring of another (so a mentor's name
    can never hide inside the prefix that names the mentee)."""
    names: list[str] = []
    name_set: set[str] = set()
    inside: set[str] = set()  # all space-containing substrings of accepted names
    for _ in range(50 * n + 1000):
        if len(names) == n:
            break
        cand = f"{fake.first_name()} {fake.last_name()}"
        if cand in inside:
            continue
        subs = _spaced_substrings(cand)
        if subs & name_set:
            continue
        names.append(cand)
        name_set.add(cand)
        inside |= subs
    if len(names) < n:
        raise MnemoscopeError(
            f"could not draw {n} distinct names from Faker: lower WorldConfig.n_people"
        )
    return names


def _format_date(d: _dt.date) -> str:
    return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"


def _date_range(cfg: WorldConfig) -> tuple[_dt.date, int]:
    start = _dt.date(cfg.birth_year_min, 1, 1)
    end = _dt.date(cfg.birth_year_max, 12, 31)
    return start, (end - start).days + 1


# --------------------------------------------------------------------------- records


def _cut(template: str, name: str) -> str:
    """The template's text before {v}, with the name filled in (trailing space kept)."""
    return template.split("{v}")[0].format(name=name)


def _draw_others(rng: np.random.Generator, pool: list[str], exclude: set[str], k: int) -> list[str]:
    """k distinct pool values not in ``exclude``, uniformly without replacement."""
    candidates = [p for p in pool if p not in exclude]
    picks = rng.choice(len(candidates), size=k, replace=False)
    return [candidates[int(i)] for i in picks]


def _assign_splits(cfg: WorldConfig, rng: np.random.Generator, ids: list[str]) -> dict[str, list[str]]:
    order = [ids[int(i)] for i in rng.permutation(len(ids))]
    n = len(ids)
    n_forget = int(cfg.forget_fraction * n)
    n_holdout = int(cfg.holdout_fraction * n)
    n_never = int(cfg.never_seen_fraction * n)
    n_retain = n - n_forget - n_holdout - n_never
    cuts = np.cumsum([0, n_forget, n_retain, n_holdout, n_never])
    splits = {name: sorted(order[cuts[i]:cuts[i + 1]]) for i, name in enumerate(SPLITS)}
    trained = order[: n_forget + n_retain]  # forget first, then retain: groups cycle over both
    for g, name in enumerate(GROUPS):
        splits[name] = sorted(trained[g::3])
    return splits


def make_world(config: WorldConfig | None = None) -> World:
    """Generate a world deterministically from ``config`` (default: ``WorldConfig()``)."""
    from faker import Faker

    cfg = config if config is not None else WorldConfig()
    cfg.validate()
    fake = Faker(cfg.locale)
    fake.seed_instance(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    names = _unique_names(fake, cfg.n_people)
    cities = _unique(fake.city, cfg.n_cities, "cities")
    companies = _unique(fake.company, cfg.n_companies, "companies")

    def university() -> str:
        pattern = _UNIVERSITY_PATTERNS[int(rng.integers(len(_UNIVERSITY_PATTERNS)))]
        return pattern.format(city=fake.city(), last=fake.last_name())

    universities = _unique(university, cfg.n_universities, "universities")
    majors = [MAJORS[int(i)] for i in sorted(rng.choice(len(MAJORS), cfg.n_majors, replace=False))]
    hq = {c: cities[int(rng.integers(cfg.n_cities))] for c in companies}
    company_rows = [
        {"company_id": f"c{i:04d}", "name": c, "headquarters": hq[c]} for i, c in enumerate(companies)
    ]
    pools = {"name": names, "city": cities, "university": universities, "major": majors,
             "company": companies}

    start, n_days = _date_range(cfg)
    ids = [f"p{i:04d}" for i in range(cfg.n_people)]
    people: list[dict[str, Any]] = []
    for i, pid in enumerate(ids):
        day = start + _dt.timedelta(days=int(rng.integers(n_days)))
        employer = companies[int(rng.integers(cfg.n_companies))]
        m = int(rng.integers(cfg.n_people - 1))
        m += m >= i  # uniform over everyone but i
        people.append({
            "person_id": pid,
            "name": names[i],
            "birth_date": _format_date(day),
            "birth_city": cities[int(rng.integers(cfg.n_cities))],
            "university": universities[int(rng.integers(cfg.n_universities))],
            "major": majors[int(rng.integers(cfg.n_majors))],
            "employer": employer,
            "work_city": hq[employer],
            "mentor": names[m],
            "mentor_id": ids[m],
        })

    splits = _assign_splits(cfg, rng, ids)
    split_of = {pid: s for s in SPLITS for pid in splits[s]}
    group_of = {pid: g for g in GROUPS for pid in splits[g]}
    for p in people:
        p["split"] = split_of[p["person_id"]]
        p["group"] = group_of.get(p["person_id"])

    world = World(cfg, pools, people, company_rows, splits)
    by_id = {p["person_id"]: p for p in people}
    for p in people:
        _person_records(world, p, by_id, rng)
    for c in company_rows:
        t = int(rng.integers(len(COMPANY_TEMPLATES)))
        world.documents.append({
            "id": f"{c['company_id']}/doc", "kind": "company_document", "person_id": None,
            "company_id": c["company_id"], "attribute": None, "split": "background", "group": None,
            "text": COMPANY_TEMPLATES[t].format(company=c["name"], city=c["headquarters"]),
        })
    _check_world(world)
    return world


def _perturbed_values(world: World, p: dict[str, Any], attr: str, rng: np.random.Generator) -> list[str]:
    cfg = world.config
    k = cfg.n_perturbed
    if attr == "birth_date":
        start, n_days = _date_range(cfg)
        out: list[str] = []
        while len(out) < k:
            v = _format_date(start + _dt.timedelta(days=int(rng.integers(n_days))))
            if v != p["birth_date"] and v not in out:
                out.append(v)
        return out
    pool = {"birth_city": "city", "work_city": "city", "university": "university", "major": "major",
            "employer": "company", "mentor": "name"}[attr]
    exclude = {p[attr], p["name"]} if attr == "mentor" else {p[attr]}
    return _draw_others(rng, world.pools[pool], exclude, k)


def _person_records(world: World, p: dict[str, Any], by_id: dict[str, dict[str, Any]],
                    rng: np.random.Generator) -> None:
    pid, name = p["person_id"], p["name"]
    common = {"person_id": pid, "split": p["split"], "group": p["group"]}
    base = {a: int(rng.integers(len(DOC_TEMPLATES[a]))) for a in ATTRIBUTES}

    for version in range(world.config.n_paraphrases + 1):
        order = list(ATTRIBUTES)
        if version > 0:
            order = [ATTRIBUTES[int(i)] for i in rng.permutation(len(ATTRIBUTES))]
        sentences = [
            DOC_TEMPLATES[a][(base[a] + version) % len(DOC_TEMPLATES[a])].format(name=name, v=p[a])
            for a in order
        ]
        world.documents.append({"id": f"{pid}/doc/v{version}", "kind": "document", **common,
                                "attribute": None, "version": version, "text": " ".join(sentences)})

    for a in ATTRIBUTES:
        mem_id = f"{pid}/mem/{a}"
        world.probes.append({"id": mem_id, "kind": "memorization", **common, "attribute": a,
                             "prefix": _cut(DOC_TEMPLATES[a][base[a]], name), "target": p[a],
                             "source_id": f"{pid}/doc/v0", "template": base[a]})
        t = int(rng.integers(len(SEMANTIC_TEMPLATES[a])))
        world.probes.append({"id": f"{pid}/sem/{a}", "kind": "semantic", **common, "attribute": a,
                             "prefix": _cut(SEMANTIC_TEMPLATES[a][t], name), "target": p[a],
                             "source_id": mem_id, "template": t})

    mentor = by_id[p["mentor_id"]]
    hq = {c["name"]: c["headquarters"] for c in world.companies}
    for chain, (hop1, hop2) in CHAINS.items():
        if hop1 == "employer":
            via, target = p["employer"], hq[p["employer"]]
        else:
            via, target = mentor["name"], mentor[hop2]
        t = int(rng.integers(len(COMPOSITIONAL_TEMPLATES[chain])))
        world.probes.append({"id": f"{pid}/comp/{chain}", "kind": "compositional", **common,
                             "attribute": chain, "prefix": _cut(COMPOSITIONAL_TEMPLATES[chain][t], name),
                             "target": target, "hops": [hop1, hop2], "via": via, "template": t})

    for a in ATTRIBUTES:
        question, answer, para = QA_TEMPLATES[a]
        wrong = _perturbed_values(world, p, a, rng)
        world.qa.append({
            "id": f"{pid}/qa/{a}", "kind": "qa", **common, "attribute": a,
            "prefix": question.format(name=name), "target": p[a],
            "question": question.format(name=name),
            "answer": answer.format(name=name, v=p[a]),
            "paraphrased_answer": para.format(name=name, v=p[a]),
            "perturbed_answers": [para.format(name=name, v=w) for w in wrong],
        })


def _check_world(world: World) -> None:
    """Internal invariants; a failure here is a bug in this module, not user error."""
    docs = {d["id"]: d["text"] for d in world.documents}
    ids = [r["id"] for r in world.records()]
    if len(ids) != len(set(ids)):
        raise RuntimeError("fictional world: duplicate record ids")
    for r in world.probes + world.qa:
        prefix, target = r["prefix"], r["target"]
        if not 1 <= len(target.split()) <= 8:
            raise RuntimeError(f"fictional world: {r['id']} target {target!r} is not 1–8 words")
        if target in prefix:
            raise RuntimeError(f"fictional world: {r['id']} prefix already contains {target!r}")
        if r["kind"] == "memorization" and prefix + target not in docs[r["source_id"]]:
            raise RuntimeError(f"fictional world: {r['id']} is not verbatim in {r['source_id']}")


def capacity_pools(world: World) -> dict[str, int]:
    """Pool size per attribute, for bits = Σ N·max(0, log2|pool| − loss) (docs/metrics.md).

    ``work_city`` is fixed by the employer, so its pool size is 1 (0 bits); ``mentor`` is
    uniform over the other N − 1 people; ``birth_date`` over the days in the year range.
    """
    _, n_days = _date_range(world.config)
    return {
        "birth_date": n_days,
        "birth_city": len(world.pools["city"]),
        "university": len(world.pools["university"]),
        "major": len(world.pools["major"]),
        "employer": len(world.pools["company"]),
        "work_city": 1,
        "mentor": len(world.people) - 1,
    }


# --------------------------------------------------------------------------- I/O

_FILES = {"people": "people.jsonl", "documents": "documents.jsonl", "probes": "probes.jsonl",
          "qa": "qa.jsonl"}


def write_world(world: World, directory: str | os.PathLike[str]) -> Path:
    """Write the world's JSONL files and world.json (last) into ``directory``; returns it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for attr, fname in _FILES.items():
        rows = getattr(world, attr)
        write_jsonl(out / fname, rows, ensure_ascii=False)
    meta = {"schema_version": SCHEMA_VERSION, "config": dataclasses.asdict(world.config),
            "pools": world.pools, "companies": world.companies, "splits": world.splits}
    write_text(out / "world.json", json.dumps(meta, ensure_ascii=False, indent=1) + "\n")
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise MnemoscopeError(f"{path} is missing: write the world again with write_world")
    return read_jsonl(path, fix="fix or regenerate the file")


def load_world(directory: str | os.PathLike[str]) -> World:
    """Read a world written by :func:`write_world`."""
    d = Path(directory)
    meta_path = d / "world.json"
    if not meta_path.is_file():
        raise MnemoscopeError(f"{meta_path} is missing: {d} is not a complete world (run write_world)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MnemoscopeError(f"{meta_path}: not valid JSON ({exc.msg}): regenerate the world") from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise MnemoscopeError(
            f"{meta_path}: schema_version {meta.get('schema_version')!r} is not {SCHEMA_VERSION}: "
            "regenerate the world with this version of mnemoscope"
        )
    try:
        config = WorldConfig(**meta["config"])
        pools, companies, splits = meta["pools"], meta["companies"], meta["splits"]
    except (KeyError, TypeError) as exc:
        raise MnemoscopeError(f"{meta_path}: malformed ({exc}): regenerate the world") from None
    parts = {attr: _read_jsonl(d / fname) for attr, fname in _FILES.items()}
    return World(config=config, pools=pools, companies=companies, splits=splits, **parts)


def check_probe_targets(probes: list[dict], documents: list[dict]) -> None:
    """Every memorization probe's prefix + target must occur verbatim in its source document
    (``source_id``); otherwise the probe measures nothing that was trained. Raises on the first
    probe that fails, naming it."""
    texts = {d["id"]: d["text"] for d in documents}
    for probe in probes:
        if probe.get("kind") != "memorization":
            continue
        source = probe.get("source_id")
        if source not in texts:
            raise MnemoscopeError(f"probe '{probe['id']}': its source document '{source}' is not in the world")
        if probe["prefix"] + probe["target"] not in texts[source]:
            raise MnemoscopeError(
                f"probe '{probe['id']}': target {probe['target']!r} does not follow its prefix in document "
                f"'{source}'; fix the probe or regenerate the world"
            )
