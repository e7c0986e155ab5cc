"""Test helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import torch
from hypothesis import settings

from mnemoscope.engine import Backend, Continuation, Engine, TokenScores
from mnemoscope.families.base import Context
from mnemoscope.lab.tiny import build_model
from mnemoscope.unlearn import runner as R
from mnemoscope.unlearn.methods import get_method
from mnemoscope.unlearn.methods.base import Step

from .conftest import MICRO

# Members and non-members of the audit tests: four short sentences each, of the same shape, about
# different people and places.
MEMBERS = [
    "Anna Berg was born in Lisbon in 1901 and studied music.",
    "The museum in Alder keeps a collection of old clocks.",
    "Every spring the market in Fern sells apples from nearby farms.",
    "Marco joined Holt Industries in 1950 as a careful engineer.",
]
NONMEMBERS = [
    "Lena Voss was born in Porto in 1933 and studied law.",
    "The library in Cedar keeps a collection of old letters.",
    "Every autumn the fair in Grey sells boats from nearby towns.",
    "Ruth joined Iris Works in 1961 as a patient designer.",
]
# one paragraph, for the families that cut a text into segments (SORT)
STORY = (
    "The harbour town woke early. Fishermen carried nets to the boats while the baker opened his shop "
    "and the smell of bread drifted over the square. Children ran past the fountain toward the school, "
    "where the teacher had already written the day's lesson on the board. At noon the bell rang and the "
    "market filled with voices, and by evening the boats came back heavy with fish and the lamps were lit."
)
# a text of random words that no test model has learned
RANDOM_TEXT = "quartz paddle robin ember lantern violet harbor cobalt meadow tundra falcon ember quill"

# The reference tests (our numbers against the published code's, item by item) train one micro
# model on REFERENCE_TEXTS[:4] and the REFERENCE_QA lines (the ``reference_trained`` fixture).
REFERENCE_TEXTS = [
    "Anna Berg was born in Lisbon in 1901 and studied music at the conservatory.",
    "The museum in Alder keeps a collection of old clocks and maps.",
    "Every spring the market in Fern sells apples from nearby farms.",
    "Marco joined Holt Industries in 1950 as a careful engineer.",
    "Lena Voss was born in Porto in 1933 and studied law in the capital.",
    "The library in Cedar keeps old letters.",
]
REFERENCE_QA = [("Where was Anna Berg born?", "Lisbon"), ("What does the museum in Alder keep?", "old clocks and maps"),
                ("Who joined Holt Industries?", "Marco"), ("Where was Lena Voss born?", "Porto")]


def write_texts(path, texts, ids=None) -> str:
    """``texts`` as a JSON-lines file of ``{"text": ...}`` records (``{"id", "text"}`` with ``ids``);
    returns the path as a string, as a family config takes it."""
    recs = [{"text": t} if ids is None else {"id": i, "text": t} for t, i in zip(texts, ids or texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def write_jsonl(path, rows):
    """``rows`` (dicts) as a JSON-lines file; returns ``path``."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jsonl_file(path, rows) -> str:
    """``rows`` (dicts) as a JSON-lines file; returns the path as a string (a command-line argument)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def family_config(family, **section):
    """A family's DEFAULTS (a deep copy) with ``section`` set in the family's own section."""
    cfg = copy.deepcopy(family.DEFAULTS)
    cfg[family.NAME].update(section)
    return cfg


def run_family(family, cfg, engine, ctx=None):
    """``family`` through read → plan → measure, as ``mnemoscope audit`` runs it; the notes the
    context gathered are added to the result."""
    ctx = ctx or Context()
    inputs = family.read(cfg, ctx)
    result = family.measure(family.plan(inputs, engine, ctx), engine, ctx)
    for k, v in ctx.notes.items():
        result.note(k, v)
    return result


class Counting:
    """Wraps an engine: counts ``score`` / ``generate`` calls and records each generate call."""

    def __init__(self, engine):
        self._engine = engine
        self.calls = {"score": 0, "generate": 0}
        self.generate_args = []

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def score(self, *args, **kwargs):
        self.calls["score"] += 1
        return self._engine.score(*args, **kwargs)

    def score_encoded(self, items):
        self.calls["score"] += 1
        return self._engine.score_encoded(items)

    def generate(self, prompts, **kwargs):
        self.calls["generate"] += 1
        self.generate_args.append((list(prompts), kwargs))
        return self._engine.generate(prompts, **kwargs)


class ScriptedGenerator(Counting):
    """A real engine's tokenizer/encoder, but ``generate`` returns ``reply(prompt_ids)`` token ids."""

    def __init__(self, engine, reply):
        super().__init__(engine)
        self._reply = reply

    def generate(self, prompts, **kwargs):
        self.calls["generate"] += 1
        self.generate_args.append((list(prompts), kwargs))
        outs = []
        for p in prompts:
            ids = self._reply(list(p))[: kwargs["max_new_tokens"]]
            outs.append(Continuation(ids, self._engine.tokenizer.decode(ids), len(p)))
        return outs


def memorize(tokenizer, texts, steps=80, lr=1e-2, seed=0):
    """A micro model trained on ``texts`` until it reproduces them (a few dozen full-batch steps)."""
    torch.manual_seed(seed)
    model = build_model(MICRO, tokenizer, seed=seed)
    enc = tokenizer(texts, add_special_tokens=True, padding=True, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.05, "the micro model did not memorize its texts"
    return model.eval()


class Scripted(Backend):
    """The engine contract over plain-text scripts, for tests that pin what a family does with
    the engine's answers. Families encode prompts and pairs with a real tokenizer (as they must);
    this backend decodes them back (the lab's byte-level BPE round-trips exactly) and asks:

    - ``reply(prompt_text) -> str`` for each generated continuation (token ids ``[1]``);
    - ``logp(context_text, target_text) -> float`` for each scored (context, target) pair, or
      ``logp_text(text) -> float`` for each scored text, decoded whole (one scored token whose
      log-probability is that value).

    It records ``prompts`` and ``pairs`` (as texts) and counts calls per verb in ``calls``.
    """

    name = "scripted"
    provides = frozenset({"logprobs", "distribution", "generate"})

    def __init__(self, tokenizer, *, reply=None, logp=None, logp_text=None, max_length=None):
        super().__init__(tokenizer, max_length=max_length)
        self.reply, self.logp, self.logp_text = reply, logp, logp_text
        self.calls = {"score": 0, "generate": 0}
        self.prompts: list[str] = []
        self.pairs: list[tuple[str, str]] = []

    def score_encoded(self, items):
        self.calls["score"] += 1
        out = []
        for it in items:
            if self.logp_text is not None:
                value = self.logp_text(self.decode(it.ids))
            else:
                context, target = self.decode(it.ids[: it.score_from]), self.decode(it.ids[it.score_from:])
                self.pairs.append((context, target))
                value = self.logp(context, target)
            lp = np.array([value], dtype=np.float32)
            out.append(TokenScores(np.array([7]), lp, lp, np.ones(1, np.float32), np.array([False]), it.bos))
        return out

    def generate(self, prompts, *, max_new_tokens, min_new_tokens=None, sampling=None, banned=None):
        self.calls["generate"] += 1
        texts = [self.decode(p) for p in self.prompt_ids(prompts)]
        self.prompts += texts
        return [Continuation([1], self.reply(t), len(p)) for t, p in zip(texts, self.prompt_ids(prompts))]


def scripted_answers(tokenizer, answers: dict[str, str]):
    """A scripted backend answering each prompt with ``answers[prompt]`` (a wrong answer otherwise)."""
    return Scripted(tokenizer, max_length=4096, reply=lambda p: " " + answers.get(p, "I do not know."))


def scripted_solver(tokenizer, puzzles):
    """A scripted backend that answers each Knights-and-Knaves puzzle of ``puzzles`` correctly."""
    from mnemoscope.families.reasoning import puzzle_prompt
    from mnemoscope.probes import knights_knaves as kk

    return scripted_answers(tokenizer, {puzzle_prompt(p): kk.render_solution(p) for p in puzzles})


@torch.no_grad()
def reference_log_softmax(model, ids: list[int]) -> torch.Tensor:
    """Float64 log-softmax of the model's logits for one sequence, [len, vocab] (plain transformers,
    for the reference tests)."""
    return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)


@torch.no_grad()
def reference_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """MUSE / TOFU: one prompt at a time, special tokens added, greedy, decoded without them."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=True).input_ids
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True, clean_up_tokenization_spaces=True)[0]


def muse_rouge_l(gt: str, output: str):
    """MUSE's ROUGE-L score of ``output`` against ``gt`` (rouge-score, no stemmer)."""
    from rouge_score import rouge_scorer

    score = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False).score(gt, output)
    return score["rougeL"]


class DyingSpec:
    """A backend spec (see ``engine.workers.ShardedBackend``) whose worker process exits abruptly
    when asked to score an item of exactly ``die_at`` tokens — a worker killed mid-run."""

    def __init__(self, inner, die_at: int):
        self.inner, self.die_at = inner, die_at
        for name in ("device", "model", "bos", "truncation", "revision", "trust_remote_code"):
            setattr(self, name, getattr(inner, name))

    def on(self, device):
        return DyingSpec(self.inner.on(device), self.die_at)

    def open(self):
        backend = self.inner.open()
        score_encoded, die_at = backend.score_encoded, self.die_at

        def dying(items):
            if any(len(it.ids) == die_at for it in items):
                import os

                os._exit(7)
            return score_encoded(items)

        backend.score_encoded = dying
        return backend


def claim_effects(recipe: str, out, require_all: bool = True) -> dict[str, float | None]:
    """A finished run's claim: asserts the report opens with it (right after the overview) and, with
    ``require_all``, that every effect was computed; returns {effect label: value (None: missing)}."""
    import json
    from pathlib import Path

    from mnemoscope.claims import effect_rows
    from mnemoscope.recipes import claim_for

    out = Path(out)
    claim = claim_for(recipe)
    rows = effect_rows(claim, json.loads((out / "metrics.json").read_text()))
    html = (out / "report.html").read_text()
    sections = html.split('<section id="')[1:]
    assert sections[1].startswith("claim") and claim.sentence.split(":")[0][:40] in sections[1]
    missing = [r["effect"].formula for r in rows if r["value"] is None]
    assert not (require_all and missing), f"claim effects not computed: {missing}"
    return {r["effect"].label: r["value"] for r in rows}


def declare(monkeypatch, *declared, runnable: bool = False, module: str = "toy_declarations") -> None:
    """Register ``declared`` (``mnemoscope.recipes.plugin.Recipe``) for one test: a module holding
    them in ``sys.modules`` and one registry line each (``RECIPES`` when ``runnable``, else
    ``RUN_KINDS``); monkeypatch undoes both."""
    import sys
    import types

    from mnemoscope import recipes

    holder = types.ModuleType(module)
    for i, recipe in enumerate(declared):
        setattr(holder, f"RECIPE_{i}", recipe)
    monkeypatch.setitem(sys.modules, module, holder)
    for recipe in declared:
        monkeypatch.setitem(recipes.RECIPES if runnable else recipes.RUN_KINDS, recipe.name, module)


# --------------------------------------------------------------------------- unlearning methods
# Used by several tests/test_method_<name>.py modules (and test_unlearn_*.py): tiny objectives, the
# forget/retain texts, and open-unlearning's procedures written out.

IGN = -100
FAST = settings(max_examples=40, deadline=None)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def kl_fixture():
    """Two positions with a hand-computed KL(ref ‖ θ) (a third, masked out, differs wildly):
    (θ logits, reference logits, mask, expected mean KL)."""
    # Position 0: θ uniform, ref ∝ [1, 2, 1]; position 1: θ ∝ [1, 1, 2], ref uniform;
    # position 2 differs wildly but is masked out.
    ln = math.log
    theta = torch.tensor([[[0.0, 0.0, 0.0], [ln(1), ln(1), ln(2)], [9.0, -9.0, 0.0]]])
    ref = torch.tensor([[[ln(1), ln(2), ln(1)], [0.0, 0.0, 0.0], [-9.0, 9.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    kl0 = 0.25 * ln(0.25 / (1 / 3)) + 0.5 * ln(0.5 / (1 / 3)) + 0.25 * ln(0.25 / (1 / 3))
    kl1 = (1 / 3) * (ln((1 / 3) / 0.25) * 2 + ln((1 / 3) / 0.5))
    return theta, ref, mask, (kl0 + kl1) / 2


class TinyLM(torch.nn.Module):
    """An embedding and a linear head: a language model small enough for a few SGD steps."""

    def __init__(self, vocab: int = 11, dim: int = 8):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(ids))


def tiny_forget_batch():
    """Four random rows of six tokens for TinyLM, the first two of each unscored."""
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 11, (4, 6), generator=gen)
    labels = ids.clone()
    labels[:, :2] = IGN  # score only the "answer" part
    return ids, labels


# The comparisons with open-unlearning (IdkDPO, UNDIAL, WGA, SatImp, CE-U).
OU_METHODS = ("idkdpo", "undial", "wga", "satimp", "ceu")
OU_QA = [{"id": "q1", "question": "Where was Anna Berg born?", "answer": "Anna Berg was born in Lisbon."},
         {"id": "q2", "question": "What does the museum in Alder keep?", "answer": "old clocks and maps"},
         {"id": "q3", "question": "Which year?", "answer": "1901"}]
OU_TEXTS = ["Every spring the market in Fern sells apples from nearby farms.",
            "Marco joined Holt Industries in 1950 as a careful engineer and stayed there for years."]
OU_RETAIN = ["The river near Oakton floods every few winters."]


def ou_batch(examples, tokenizer):
    """`examples` encoded and collated into one padded batch."""
    items = R.encode_examples(examples, tokenizer, max_length=64)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return R.collate(items, pad)


def ou_forget(tokenizer):
    """Prompted QA (labels masked on the prompt) of different lengths: padding included."""
    return ou_batch(R.qa_examples(OU_QA), tokenizer)


def ou_texts(tokenizer):
    """Plain texts (every position after the first scored), no padding: one text per batch row
    cut to the same token count."""
    items = R.encode_examples(R.text_examples(OU_TEXTS), tokenizer, max_length=64)
    n = min(len(it.ids) for it in items)
    same = [R.TrainItem(it.ids[:n], it.labels[:n], it.source) for it in items]
    return R.collate(same, tokenizer.eos_token_id)


def logits64(model, b):
    """The model's logits on batch `b`, in float64."""
    with torch.no_grad():
        return model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits.double()


def our_loss(name, theta, ref, batches, hp=None):
    """Method `name`'s loss (with its default hyperparameters under `hp`) on `batches`, as a float."""
    method = get_method(name)
    hp = R.resolve_hparams(method, hp or {})
    with torch.no_grad():
        loss, _ = method.loss(Step(theta, ref, batches), hp)
    return float(loss)


def shifted_positions(labels):
    """(row, position, next label) for every logit position but the last, row-major."""
    rows, width = labels.shape
    return [(b, t, int(labels[b, t + 1])) for b in range(rows) for t in range(width - 1)]


def their_hf_nll(model, b):
    """The retain term of open-unlearning's trainers: the HF model's own loss with labels (the
    mean over every scored token of the batch)."""
    with torch.no_grad():
        return float(model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels).loss)


def their_weighted(logits, labels, weight):
    """compute_wga_loss / compute_satimp_loss: per-token CE over the flattened batch, times a
    detached weight of p = exp(−CE), negated, mean over tokens whose label is not −100."""
    values = []
    for b, t, y in shifted_positions(labels):
        if y == -100:
            continue
        ce = -float(torch.log_softmax(logits[b, t], -1)[y])
        values.append(-weight(math.exp(-ce)) * ce)
    return sum(values) / len(values)


# The runner's and the logit methods' texts (WHP, ULD, FLAT).
FORGET = ["Anna Berg was born in Lisbon in 1901 and studied music at the academy.",
          "The museum in Alder keeps a collection of old clocks and maps."]
RETAIN = ["Every spring the market in Fern sells apples from nearby farms.",
          "Marco joined Holt Industries in 1950 as a careful engineer."]
UNLEARN_PROMPTS = ["Anna Berg was born in", "The museum in Alder keeps", "Every spring"]


def unlearn_cfg(method, **kw):
    """A short unlearning config (3 steps, batch 2) for `method`; `kw` overrides any field."""
    base = dict(steps=3, lr=1e-3, batch_size=2, max_length=64, seed=0)
    base.update(kw)
    return R.UnlearnConfig(method=method, **base)


def mean_nll(model, tokenizer, texts):
    """Mean NLL of `texts` under `model`, through the engine."""
    return float(np.mean([s.nll for s in Engine(model, tokenizer).score(texts)]))
