"""Knights-and-Knaves puzzles for separating memorization from reasoning (docs/metrics.md).

On an island every inhabitant is a *knight* (always tells the truth) or a *knave* (always
lies). Each of N people makes one statement about who is what; a solution is an assignment
role(i) ∈ {knight, knave} such that, for every speaker i, ``role(i) == knight`` iff their
statement is true. The generator only returns puzzles with exactly one solution (brute force
over the 2^N assignments, vectorised with numpy).

Perturbations (after Xie et al. 2024, "On Memorization of Large Language Models in Logical
Reasoning"):

* *local, answer-changing*: :func:`perturb_statement` (replace one person's whole statement)
  and :func:`perturb_leaf` (replace one leaf "X is a knight/knave" by another). Both keep the
  solution unique AND change it; otherwise they raise :class:`MnemoscopeError`.
* *language-level, answer-preserving*: :func:`rename` (new names) and :func:`reorder` (present
  the people in another order). The solution is unchanged up to the renaming.

Expression grammar (also the JSON schema of a statement; person references are 0-based
indices into ``names``, so renaming never touches statements)::

    Expr := ["knight", i] | ["knave", i]              leaf: "<name i> is a knight/knave"
          | ["not", Expr]
          | ["and", Expr, Expr, ...] | ["or", Expr, Expr, ...]   (2 or more operands)
          | ["imp", Expr, Expr]                        "if A then B"
          | ["iff", Expr, Expr]                        "A if and only if B"

Puzzle JSON object (one per line in a ``.jsonl`` puzzle file)::

    {"names": ["Alice", "Bob"],                 # required, distinct
     "statements": [Expr, Expr],                # required, one per person, same order
     "id": "kk-0001",                           # optional
     "solution": [true, false],                 # optional; true = knight; checked on load
     "depth": 2, "width": 2,                    # optional generation settings
     "self_reference": true}                    # optional
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import write_jsonl
from mnemoscope.jsonl import jsonl_objects

Expr = tuple  # ("knight", i) | ("knave", i) | ("not", e) | ("and", e, ...) | ...
Seed = Union[int, random.Random, None]

LEAF_OPS = ("knight", "knave")
COMPOUND_OPS = ("and", "or", "not", "imp", "iff")
MAX_PEOPLE = 12  # brute force over 2^N assignments; generation is documented for N <= 8

INSTRUCTION = (
    "Decide for every inhabitant whether they are a knight or a knave, and answer in the form "
    "(1) <name> is a knight/knave (2) <name> is a knight/knave ..., "
    "following the order in which the inhabitants are introduced."
)

NAME_POOL = (
    "Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Isabel", "Jack",
    "Karen", "Liam", "Maya", "Noah", "Olivia", "Peter", "Quinn", "Rachel", "Samuel", "Tara",
    "Umar", "Vera", "William", "Xenia", "Yusuf", "Zoe", "Aaron", "Beatrice", "Caleb", "Diana",
    "Ethan", "Fiona", "George", "Hannah", "Ivan", "Julia", "Kevin", "Laura", "Mason", "Nora",
)


@dataclass(frozen=True)
class Puzzle:
    """N people, one statement each. ``statements[i]`` is said by ``names[i]``."""

    names: tuple[str, ...]
    statements: tuple[Expr, ...]
    depth: int = 2
    width: int = 2
    self_reference: bool = True
    id: str | None = None

    @property
    def n_people(self) -> int:
        return len(self.names)


# --------------------------------------------------------------------------- evaluation


def _rng(seed: Seed) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def _assignments(n: int) -> np.ndarray:
    """All 2^n role assignments as a bool array [2^n, n]; row r, column i = bit i of r."""
    rows = np.arange(2**n)[:, None]
    return ((rows >> np.arange(n)[None, :]) & 1).astype(bool)


def _evaluate(expr: Expr, table: np.ndarray) -> np.ndarray:
    """Truth value of ``expr`` under every row of ``table`` (True = knight)."""
    op = expr[0]
    if op == "knight":
        return table[:, expr[1]]
    if op == "knave":
        return ~table[:, expr[1]]
    if op == "not":
        return ~_evaluate(expr[1], table)
    if op == "and":
        return np.logical_and.reduce([_evaluate(e, table) for e in expr[1:]])
    if op == "or":
        return np.logical_or.reduce([_evaluate(e, table) for e in expr[1:]])
    if op == "imp":
        return ~_evaluate(expr[1], table) | _evaluate(expr[2], table)
    if op == "iff":
        return _evaluate(expr[1], table) == _evaluate(expr[2], table)
    raise ValueError(f"unknown operator {op!r}")


def evaluate(expr: Expr, assignment: Sequence[bool]) -> bool:
    """Truth value of one statement under one assignment (True = knight)."""
    table = np.asarray(assignment, dtype=bool)[None, :]
    return bool(_evaluate(expr, table)[0])


def solve(puzzle: Puzzle) -> list[tuple[bool, ...]]:
    """All consistent assignments: role(i) == knight  <=>  statement i is true, for every i.

    Brute force over the 2^N assignments; returned in increasing order of the bit pattern
    (bit i set = person i is a knight).
    """
    table = _assignments(puzzle.n_people)
    ok = np.ones(len(table), dtype=bool)
    for i, statement in enumerate(puzzle.statements):
        ok &= table[:, i] == _evaluate(statement, table)
    return [tuple(bool(v) for v in row) for row in table[ok]]


def solution(puzzle: Puzzle) -> tuple[bool, ...]:
    """The unique solution (True = knight); MnemoscopeError when there is not exactly one."""
    found = solve(puzzle)
    if len(found) != 1:
        raise MnemoscopeError(
            f"puzzle {puzzle.id or ''}: has {len(found)} solutions, expected exactly 1; "
            "regenerate it or fix its statements"
        )
    return found[0]


def solution_by_name(puzzle: Puzzle) -> dict[str, bool]:
    """The unique solution as {name: is_knight}."""
    return dict(zip(puzzle.names, solution(puzzle)))


# --------------------------------------------------------------------------- generation


def _sample_leaf(rng: random.Random, n: int, speaker: int, self_reference: bool) -> Expr:
    targets = [j for j in range(n) if self_reference or j != speaker]
    return (rng.choice(LEAF_OPS), rng.choice(targets))


def _sample_expr(
    rng: random.Random, n: int, speaker: int, depth: int, width: int, self_reference: bool
) -> Expr:
    """A random statement of nesting depth <= ``depth`` (a leaf has depth 1; depth 1 is only
    used for perturbations of puzzles that declare it).

    At each level the kind is drawn uniformly from {leaf, and, or, not, imp, iff} (leaf only
    at depth 1); and/or take 2..``width`` operands.
    """
    if depth <= 1:
        return _sample_leaf(rng, n, speaker, self_reference)
    kind = rng.choice(("leaf",) + COMPOUND_OPS)
    if kind == "leaf":
        return _sample_leaf(rng, n, speaker, self_reference)

    def child() -> Expr:
        return _sample_expr(rng, n, speaker, depth - 1, width, self_reference)

    if kind == "not":
        return ("not", child())
    arity = rng.randint(2, width) if kind in ("and", "or") else 2
    operands: list[Expr] = []
    for _ in range(20 * arity):  # prefer distinct operands ("A and A" reads oddly)
        if len(operands) == arity:
            break
        candidate = child()
        if candidate not in operands:
            operands.append(candidate)
    while len(operands) < arity:  # tiny puzzles may not have enough distinct operands
        operands.append(child())
    return (kind,) + tuple(operands)


def _check_settings(n_people: int, depth: int, width: int) -> None:
    if not 1 <= n_people <= MAX_PEOPLE:
        raise MnemoscopeError(f"n_people={n_people}: must be between 1 and {MAX_PEOPLE}")
    if depth < 2:
        # With single-leaf statements every constraint reads role(i) == ±role(j), which is
        # preserved when every role is flipped: solutions come in pairs, never exactly one.
        raise MnemoscopeError(
            f"depth={depth}: must be >= 2; single-leaf statements never give a unique "
            "solution (flipping every role keeps every statement consistent)"
        )
    if width < 2:
        raise MnemoscopeError(f"width={width}: must be >= 2 (operands of and/or)")


def _sample_names(rng: random.Random, n: int, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    pool = [name for name in NAME_POOL if name not in set(exclude)]
    if len(pool) < n:
        raise MnemoscopeError(f"need {n} names but the built-in pool has {len(pool)}; pass names=")
    return tuple(rng.sample(pool, n))


def _check_names(names: Sequence[str], n: int, field: str = "names") -> tuple[str, ...]:
    names = tuple(names)
    if len(names) != n:
        raise MnemoscopeError(f"{field}: got {len(names)} names for {n} people")
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z'\-]*", name):
            raise MnemoscopeError(
                f"{field}: {name!r} is not a usable name (one word of letters, ' or -)"
            )
    if len(set(names)) != n:
        raise MnemoscopeError(f"{field}: names must be distinct, got {list(names)}")
    return names


def generate_puzzle(
    n_people: int,
    seed: Seed = None,
    *,
    depth: int = 2,
    width: int = 2,
    names: Sequence[str] | None = None,
    self_reference: bool = True,
    max_tries: int = 100_000,
    id: str | None = None,
) -> Puzzle:
    """Sample statements until the puzzle has exactly one solution.

    ``seed`` is an int or a ``random.Random`` (which is advanced). Names default to a
    random draw from :data:`NAME_POOL`.
    """
    _check_settings(n_people, depth, width)
    rng = _rng(seed)
    names = _check_names(names, n_people) if names is not None else _sample_names(rng, n_people)
    for _ in range(max_tries):
        statements = tuple(
            _sample_expr(rng, n_people, i, depth, width, self_reference) for i in range(n_people)
        )
        puzzle = Puzzle(names, statements, depth, width, self_reference, id)
        if len(solve(puzzle)) == 1:
            return puzzle
    raise MnemoscopeError(
        f"generate_puzzle: no puzzle with a unique solution in {max_tries} tries "
        f"(n_people={n_people}, depth={depth}, width={width}); raise max_tries"
    )


def generate_puzzles(
    count: int, n_people: int, seed: Seed = 0, *, id_prefix: str = "kk", **kwargs
) -> list[Puzzle]:
    """``count`` puzzles from one seeded stream, ids ``{id_prefix}-{n_people}p-{k:05d}``."""
    rng = _rng(seed)
    return [
        generate_puzzle(n_people, rng, id=f"{id_prefix}-{n_people}p-{k:05d}", **kwargs)
        for k in range(count)
    ]


# --------------------------------------------------------------------------- rendering


def _render_expr(expr: Expr, names: Sequence[str]) -> str:
    op = expr[0]

    def sub(e: Expr) -> str:
        text = _render_expr(e, names)
        simple = e[0] in LEAF_OPS or (e[0] == "not" and e[1][0] in LEAF_OPS)
        return text if simple else f"({text})"

    if op in LEAF_OPS:
        return f"{names[expr[1]]} is a {op}"
    if op == "not":
        inner = expr[1]
        if inner[0] in LEAF_OPS:
            return f"{names[inner[1]]} is not a {inner[0]}"
        return f"it is not the case that {sub(inner)}"
    if op in ("and", "or"):
        return f" {op} ".join(sub(e) for e in expr[1:])
    if op == "imp":
        return f"if {sub(expr[1])} then {sub(expr[2])}"
    if op == "iff":
        return f"{sub(expr[1])} if and only if {sub(expr[2])}"
    raise ValueError(f"unknown operator {op!r}")


def render_statement(puzzle: Puzzle, i: int) -> str:
    """``Alice says, "Bob is a knave and Carol is a knight."``"""
    text = _render_expr(puzzle.statements[i], puzzle.names)
    return f'{puzzle.names[i]} says, "{text[0].upper()}{text[1:]}."'


def _join_names(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def render_puzzle(puzzle: Puzzle, *, instruction: bool = True) -> str:
    """Natural-language puzzle: optional fixed :data:`INSTRUCTION` line, then the story.

    Deterministic: the same puzzle always renders to the same text.
    """
    n = puzzle.n_people
    story = (
        "On an island, every inhabitant is either a knight, who always tells the truth, "
        f"or a knave, who always lies. You meet {n} inhabitant{'s' if n > 1 else ''}: "
        f"{_join_names(puzzle.names)}. "
        + " ".join(render_statement(puzzle, i) for i in range(n))
        + " So who is a knight and who is a knave?"
    )
    return f"{INSTRUCTION}\n{story}" if instruction else story


def render_answer(names: Sequence[str], roles: Sequence[bool]) -> str:
    """``(1) Alice is a knight (2) Bob is a knave`` (True = knight)."""
    return " ".join(
        f"({k}) {name} is a {'knight' if role else 'knave'}"
        for k, (name, role) in enumerate(zip(names, roles), start=1)
    )


def render_solution(puzzle: Puzzle) -> str:
    """The gold answer of a puzzle in the :func:`render_answer` format."""
    return render_answer(puzzle.names, solution(puzzle))


def parse_answer(text: str, names: Sequence[str]) -> dict[str, bool | None]:
    """Read a model's answer: {name: True (knight) / False (knave) / None (not found)}.

    Only the text from the last ``(1)`` on is read when the text contains ``(1)`` (so a chain
    of thought before the enumerated answer is ignored); for each name the LAST match of
    ``<name> is a knight|knave`` (case-insensitive) wins.
    """
    start = text.rfind("(1)")
    region = text[start:] if start >= 0 else text
    out: dict[str, bool | None] = {}
    for name in names:
        pattern = rf"(?<![A-Za-z]){re.escape(name)}\s+is\s+an?\s+(knight|knave)\b"
        matches = re.findall(pattern, region, flags=re.IGNORECASE)
        out[name] = (matches[-1].lower() == "knight") if matches else None
    return out


def is_correct(puzzle: Puzzle, text: str) -> bool:
    """True iff every person's role is parsed from ``text`` and equals the solution."""
    parsed = parse_answer(text, puzzle.names)
    return all(parsed[name] == gold for name, gold in solution_by_name(puzzle).items())


# --------------------------------------------------------------------------- perturbations


def _leaf_paths(expr: Expr, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    if expr[0] in LEAF_OPS:
        return [prefix]
    return [p for k, e in enumerate(expr[1:], 1) for p in _leaf_paths(e, prefix + (k,))]


def _get(expr: Expr, path: tuple[int, ...]) -> Expr:
    for k in path:
        expr = expr[k]
    return expr


def _replace_at(expr: Expr, path: tuple[int, ...], new: Expr) -> Expr:
    if not path:
        return new
    k = path[0]
    return expr[:k] + (_replace_at(expr[k], path[1:], new),) + expr[k + 1 :]


def _with_statement(puzzle: Puzzle, i: int, statement: Expr, tag: str) -> Puzzle:
    statements = puzzle.statements[:i] + (statement,) + puzzle.statements[i + 1 :]
    new_id = f"{puzzle.id}/{tag}" if puzzle.id else None
    return replace(puzzle, statements=statements, id=new_id)


def _changes_answer(candidate: Puzzle, original: tuple[bool, ...]) -> bool:
    found = solve(candidate)
    return len(found) == 1 and found[0] != original


def perturb_statement(
    puzzle: Puzzle, seed: Seed = None, *, person: int | None = None, max_tries: int = 1000
) -> Puzzle:
    """Replace one person's whole statement by a fresh random one (same depth/width).

    Resamples until the new puzzle has exactly one solution that differs from the original;
    MnemoscopeError after ``max_tries`` attempts.
    """
    original = solution(puzzle)
    rng = _rng(seed)
    n = puzzle.n_people
    for _ in range(max_tries):
        i = rng.randrange(n) if person is None else person
        new = _sample_expr(rng, n, i, puzzle.depth, puzzle.width, puzzle.self_reference)
        if new == puzzle.statements[i]:
            continue
        candidate = _with_statement(puzzle, i, new, "perturb_statement")
        if _changes_answer(candidate, original):
            return candidate
    raise MnemoscopeError(
        f"perturb_statement: puzzle {puzzle.id or ''} has no answer-changing statement with a "
        f"unique solution in {max_tries} tries; raise max_tries or drop this puzzle"
    )


def perturb_leaf(puzzle: Puzzle, seed: Seed = None, *, max_tries: int | None = None) -> Puzzle:
    """Replace one leaf ("X is a knight/knave") by another leaf (flip the role and/or change
    the person), keeping everything else.

    The finite set of single-leaf edits is tried in a seeded random order; the first edit
    giving exactly one solution different from the original wins. MnemoscopeError if none
    of the (first ``max_tries``) edits does.
    """
    original = solution(puzzle)
    rng = _rng(seed)
    n = puzzle.n_people
    edits = []
    for i, statement in enumerate(puzzle.statements):
        targets = [j for j in range(n) if puzzle.self_reference or j != i]
        for path in _leaf_paths(statement):
            current = _get(statement, path)
            for leaf in itertools.product(LEAF_OPS, targets):
                if leaf != current:
                    edits.append((i, path, leaf))
    rng.shuffle(edits)
    for i, path, leaf in edits[:max_tries]:
        new = _replace_at(puzzle.statements[i], path, leaf)
        candidate = _with_statement(puzzle, i, new, "perturb_leaf")
        if _changes_answer(candidate, original):
            return candidate
    raise MnemoscopeError(
        f"perturb_leaf: puzzle {puzzle.id or ''} has no single-leaf edit that keeps one "
        f"solution and changes it ({len(edits[:max_tries])} edits tried); drop this puzzle "
        "or use perturb_statement"
    )


def rename(puzzle: Puzzle, new_names: Sequence[str] | None = None, seed: Seed = None) -> Puzzle:
    """Same puzzle with other names (default: drawn from :data:`NAME_POOL`, none reused).

    Statements refer to people by index, so the solution is unchanged position by position.
    """
    n = puzzle.n_people
    if new_names is None:
        new_names = _sample_names(_rng(seed), n, exclude=puzzle.names)
    names = _check_names(new_names, n, "new_names")
    new_id = f"{puzzle.id}/rename" if puzzle.id else None
    return replace(puzzle, names=names, id=new_id)


def _remap(expr: Expr, new_index: Sequence[int]) -> Expr:
    if expr[0] in LEAF_OPS:
        return (expr[0], new_index[expr[1]])
    return (expr[0],) + tuple(_remap(e, new_index) for e in expr[1:])


def reorder(
    puzzle: Puzzle, order: Sequence[int] | None = None, seed: Seed = None
) -> Puzzle:
    """Present the people in another order: new person k is old person ``order[k]``.

    Default: a seeded random permutation other than the identity (when N > 1). Every
    person keeps their statement and role; only the presentation order changes.
    """
    n = puzzle.n_people
    if order is None:
        rng = _rng(seed)
        order = list(range(n))
        while n > 1 and order == list(range(n)):
            rng.shuffle(order)
    order = list(order)
    if sorted(order) != list(range(n)):
        raise MnemoscopeError(f"order: {order} is not a permutation of 0..{n - 1}")
    new_index = [0] * n
    for k, old in enumerate(order):
        new_index[old] = k
    new_id = f"{puzzle.id}/reorder" if puzzle.id else None
    return replace(
        puzzle,
        names=tuple(puzzle.names[old] for old in order),
        statements=tuple(_remap(puzzle.statements[old], new_index) for old in order),
        id=new_id,
    )


# --------------------------------------------------------------------------- serialisation


def _expr_to_json(expr: Expr) -> list:
    if expr[0] in LEAF_OPS:
        return [expr[0], int(expr[1])]
    return [expr[0]] + [_expr_to_json(e) for e in expr[1:]]


def _expr_from_json(obj: object, n: int, where: str) -> Expr:
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise MnemoscopeError(f"{where}: expected a list like [\"knight\", 0] or [\"and\", ...]")
    op, args = obj[0], obj[1:]
    if op in LEAF_OPS:
        if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int):
            raise MnemoscopeError(f"{where}: a {op!r} leaf takes one person index")
        if not 0 <= args[0] < n:
            raise MnemoscopeError(f"{where}: person index {args[0]} outside 0..{n - 1}")
        return (op, args[0])
    arity = {"not": (1, 1), "imp": (2, 2), "iff": (2, 2), "and": (2, None), "or": (2, None)}
    if op not in arity:
        raise MnemoscopeError(
            f"{where}: unknown operator {op!r}; use one of {list(LEAF_OPS + COMPOUND_OPS)}"
        )
    low, high = arity[op]
    if len(args) < low or (high is not None and len(args) > high):
        raise MnemoscopeError(f"{where}: {op!r} takes {low}{'' if high else '+'} operands")
    return (op,) + tuple(_expr_from_json(a, n, f"{where}[{k}]") for k, a in enumerate(args, 1))


def _expr_depth(expr: Expr) -> int:
    if expr[0] in LEAF_OPS:
        return 1
    return 1 + max(_expr_depth(e) for e in expr[1:])


def to_dict(puzzle: Puzzle, *, with_solution: bool = True) -> dict:
    """JSON-able dict in the schema of the module docstring."""
    out: dict = {}
    if puzzle.id is not None:
        out["id"] = puzzle.id
    out["names"] = list(puzzle.names)
    out["statements"] = [_expr_to_json(s) for s in puzzle.statements]
    if with_solution:
        out["solution"] = list(solution(puzzle))
    out.update(depth=puzzle.depth, width=puzzle.width, self_reference=puzzle.self_reference)
    return out


def from_dict(obj: object, where: str = "puzzle") -> Puzzle:
    """Inverse of :func:`to_dict`; MnemoscopeError naming ``where`` and the field on bad input."""
    if not isinstance(obj, dict):
        raise MnemoscopeError(f"{where}: a puzzle must be a JSON object")
    for key in ("names", "statements"):
        if key not in obj:
            raise MnemoscopeError(f"{where}: missing field '{key}'")
    if not isinstance(obj["names"], list):
        raise MnemoscopeError(f"{where}: field 'names' must be a list of strings")
    n = len(obj["names"])
    if not 1 <= n <= MAX_PEOPLE:
        raise MnemoscopeError(f"{where}: field 'names' has {n} people; use 1..{MAX_PEOPLE}")
    names = _check_names(obj["names"], n, f"{where}: field 'names'")
    statements = obj["statements"]
    if not isinstance(statements, list) or len(statements) != n:
        raise MnemoscopeError(f"{where}: field 'statements' must be a list of {n} statements")
    exprs = tuple(
        _expr_from_json(s, n, f"{where}: field 'statements[{i}]'") for i, s in enumerate(statements)
    )
    depth = obj.get("depth", max(_expr_depth(e) for e in exprs))
    width = obj.get("width", 2)
    self_reference = obj.get("self_reference", True)
    if not isinstance(depth, int) or not isinstance(width, int) or depth < 1 or width < 2:
        raise MnemoscopeError(f"{where}: fields 'depth' (>= 1) and 'width' (>= 2) must be ints")
    if not isinstance(self_reference, bool):
        raise MnemoscopeError(f"{where}: field 'self_reference' must be true or false")
    pid = obj.get("id")
    puzzle = Puzzle(names, exprs, depth, width, self_reference, None if pid is None else str(pid))
    if "solution" in obj:
        given = obj["solution"]
        found = solve(puzzle)
        if not isinstance(given, list) or not all(isinstance(v, bool) for v in given):
            raise MnemoscopeError(f"{where}: field 'solution' must be a list of true/false")
        if len(found) != 1 or tuple(given) != found[0]:
            raise MnemoscopeError(
                f"{where}: field 'solution' does not match the statements "
                f"({len(found)} solution(s) found); fix or remove it"
            )
    return puzzle


def load_puzzles(path: str | Path) -> list[Puzzle]:
    """Read a JSONL puzzle file (one :func:`to_dict` object per line; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise MnemoscopeError(f"{path}: puzzle file not found; check the path")
    return [from_dict(obj, where=where) for where, obj in jsonl_objects(path)]


def save_puzzles(path: str | Path, puzzles: Iterable[Puzzle]) -> None:
    """Write puzzles as JSONL, atomically (``files.write_jsonl``: temp file + rename)."""
    write_jsonl(Path(path), [to_dict(p) for p in puzzles])
