"""Contamination: lm-eval's overlap definition and Oren et al.'s order test against their procedures
written out here, the order test's exactness under the null by simulation, the four signals on
scripted and micro models, the benchmark reader, and bad input."""

from __future__ import annotations

import json
import re
import math
import random
import string
from collections import defaultdict

import numpy as np
import pytest
import torch
from scipy.stats import t as t_dist

from mnemoscope.engine import Backend, Engine
from mnemoscope.engine.backend import Continuation
from mnemoscope.engine.encoding import tokenizer_fingerprint
from mnemoscope.errors import MnemoscopeError
from mnemoscope.families import contamination as fam
from mnemoscope.families.base import Context
from mnemoscope.metrics.contamination import (
    guided_bootstrap_pvalue,
    lm_eval_normalise,
    order_pvalue_exact,
    order_pvalue_t,
    shard_sizes,
)
from mnemoscope.probes.benchmark import BenchmarkItem, load_benchmark
from mnemoscope.probes.corpus_overlap import CorpusOverlap

from .helpers import write_jsonl

# --------------------------------------------------------------------------- lm-eval's overlap, written out


def _their_normalise(s: str) -> str:
    """lm-eval's Janitor: a translation table lowering A–Z and deleting string.punctuation."""
    table = {ord(c): None for c in string.punctuation}
    table.update({ord(c): ord(c) + 32 for c in string.ascii_uppercase})
    return s.translate(table)


def _their_ngrams(s: str, n: int) -> list[str]:
    words = s.split()
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def _their_contaminated(items: list[str], corpus: list[str], n: int = 13) -> set[int]:
    """decontaminate.get_train_overlap: a lookup {ngram: item ids} of the task's documents, then a scan
    of every training document's n-grams; an item is contaminated when one of its n-grams is seen."""
    lookup = defaultdict(set)
    for i, doc in enumerate(items):
        for g in _their_ngrams(_their_normalise(doc), n):
            lookup[g].add(i)
    found: set[int] = set()
    for doc in corpus:
        for g in _their_ngrams(_their_normalise(doc), n):
            found |= lookup.get(g, set())
    return found


def _overlap_texts(seed: int = 0):
    rng = random.Random(seed)
    vocab = ["alpha", "Beta", "GAMMA", "don't", "x-ray", "Émile", "straße", "café", "(paren)", "end.", "a", "b",
             "c", "d", "e", "f", "Σigma", "q"]
    seps = [" ", "  ", "\t", "\n", " \u00a0 "]

    def text(n):
        return "".join(rng.choice(vocab) + rng.choice(seps) for _ in range(n))

    corpus = [text(rng.randint(20, 80)) for _ in range(40)]
    items = []
    for i in range(60):
        kind = i % 5
        if kind == 0:  # a verbatim 13-word span of a corpus document, inside new text
            words = corpus[rng.randrange(40)].split()
            s = rng.randrange(len(words) - 13)
            items.append(text(5) + " " + " ".join(words[s : s + 13]) + " " + text(5))
        elif kind == 1:  # the same span re-cased and re-punctuated: still contaminated under lm-eval
            words = corpus[rng.randrange(40)].split()
            s = rng.randrange(len(words) - 13)
            items.append(" ".join(w.upper() + "!" for w in words[s : s + 13]))
        elif kind == 2:  # only 12 words of it
            words = corpus[rng.randrange(40)].split()
            s = rng.randrange(len(words) - 12)
            items.append(text(3) + " zzz " + " ".join(words[s : s + 12]) + " zzz " + text(3))
        elif kind == 3:  # shorter than 13 words
            items.append(text(rng.randint(1, 12)))
        else:
            items.append(text(rng.randint(13, 40)))
    return items, corpus


def test_normalisation_matches_lm_eval_janitor():
    for s in ["Hello, World!", "ÉCOLE d'été", "x-ray\tA_B", "ΣΑΣ", "\u00a0MiXeD\u2028case"]:
        assert lm_eval_normalise(s) == _their_normalise(s)
    assert lm_eval_normalise("A.B,C") == "abc" and lm_eval_normalise("É") == "É"  # only ASCII capitals change


def test_overlap_flags_match_lm_evals_procedure_written_out():
    items, corpus = _overlap_texts()
    index = CorpusOverlap.build(corpus, [[1, 2, 3]] * len(corpus), "fp")
    table = index.lookup(items, [[9]] * len(items))
    ours = {i for i, v in enumerate(table["overlap/lm_eval"]) if v > 0}
    theirs = _their_contaminated(items, corpus)
    assert ours == theirs
    assert 10 < len(theirs) < 50  # both outcomes are exercised
    corpus_grams = {g for doc in corpus for g in _their_ngrams(_their_normalise(doc), 13)}
    for i, item in enumerate(items):
        windows = _their_ngrams(_their_normalise(item), 13)
        assert table["overlap/ngrams"][i] == len(windows)
        if windows:
            assert table["overlap/ngram_fraction"][i] == pytest.approx(sum(w in corpus_grams for w in windows) / len(windows))
        else:
            assert math.isnan(table["overlap/ngram_fraction"][i])


def _brute_longest(query, docs, n):
    best = 0
    for d in docs:
        prev = [0] * (len(d) + 1)
        for a in query:
            cur = [0] * (len(d) + 1)
            for j, b in enumerate(d, 1):
                if a == b:
                    cur[j] = prev[j - 1] + 1
                    best = max(best, cur[j])
            prev = cur
    return best if best >= n else 0


def test_longest_span_matches_brute_force():
    rng = np.random.default_rng(0)
    docs = [list(rng.integers(0, 6, size=rng.integers(10, 60))) for _ in range(20)]
    queries = []
    for i in range(30):
        q = list(rng.integers(0, 6, size=rng.integers(3, 40)))
        if i % 3 == 0:
            d = docs[i % 20]
            s = int(rng.integers(0, max(1, len(d) - 9)))
            q[2:2] = d[s : s + 9]
        queries.append(q)
    index = CorpusOverlap.build(["w"] * len(docs), docs, "fp", span_n=4)
    table = index.lookup(["w"] * len(queries), queries)
    assert list(table["overlap/longest_span"]) == [_brute_longest(q, docs, 4) for q in queries]


def test_saved_index_round_trips_and_refuses_another_tokenizer(tmp_path, tokenizer, bos_tokenizer, corpus):
    from mnemoscope.lab.tiny import train_tokenizer

    items, texts = _overlap_texts(1)
    token_docs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    fp = tokenizer_fingerprint(tokenizer)
    built = CorpusOverlap.build(texts, token_docs, fp, span_n=3)
    path = built.save(tmp_path / "idx.npz")
    assert not list(tmp_path.glob("*.tmp*"))
    loaded = CorpusOverlap.load(path, fp)
    q = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in items]
    assert built.lookup(items, q).equals(loaded.lookup(items, q))
    # the BOS variant turns text into the same ids (same vocabulary): the same fingerprint; another vocabulary not
    assert tokenizer_fingerprint(bos_tokenizer) == fp
    other = tokenizer_fingerprint(train_tokenizer(corpus, 500))
    assert other != fp
    with pytest.raises(MnemoscopeError, match="another tokenizer.*--save-index"):
        CorpusOverlap.load(path, other)
    (tmp_path / "bad.npz").write_bytes(b"not an index")
    with pytest.raises(MnemoscopeError, match="not a corpus index"):
        CorpusOverlap.load(tmp_path / "bad.npz", fp)
    with pytest.raises(MnemoscopeError, match=r"\.npz"):
        built.save(tmp_path / "idx.bin")


# --------------------------------------------------------------------------- the order test


def _their_shard_counts(n: int, s: int) -> list[int]:
    return [(x + 1 if i < n % s else x) for i, x in enumerate([n // s] * s)]


def _their_pvalue(canonical, shuffled) -> float:
    diffs = np.asarray(canonical) - np.asarray(shuffled).mean(axis=1)
    z = np.mean(diffs) / np.std(diffs) * np.sqrt(len(diffs))
    return float(1 - t_dist.cdf(z, df=len(diffs) - 1))


def test_shards_and_t_test_follow_the_paper():
    for n, s in [(10, 3), (50, 50), (5000, 50), (7, 2)]:
        assert shard_sizes(n, s) == _their_shard_counts(n, s)
    rng = np.random.default_rng(1)
    c, p = rng.normal(size=8), rng.normal(size=(8, 5))
    assert order_pvalue_t(c, p) == pytest.approx(_their_pvalue(c, p), rel=1e-12)
    with pytest.raises(ValueError):
        shard_sizes(3, 4)


@pytest.mark.parametrize("ties", [False, True])
def test_exact_order_pvalue_is_valid_under_the_null(ties):
    """Canonical and permuted log-likelihoods exchangeable within each shard (the null): the share of
    p ≤ α stays within α (+ 3 standard errors) at every α, with continuous and with tied values."""
    rng = np.random.default_rng(7)
    reps, shards, m = 1500, 5, 6
    pvals = []
    for r in range(reps):
        centre = rng.normal(scale=20, size=(shards, 1))
        values = centre + rng.standard_t(3, size=(shards, m + 1)) * rng.uniform(0.5, 3, size=(shards, 1))
        if ties:
            values = np.round(values / 2)
        pvals.append(order_pvalue_exact(values[:, 0], values[:, 1:], n_resamples=99, seed=r))
    pvals = np.asarray(pvals)
    for alpha in (0.05, 0.1, 0.25, 0.5):
        se = math.sqrt(alpha * (1 - alpha) / reps)
        assert (pvals <= alpha).mean() <= alpha + 3 * se, alpha
    if not ties:  # and not needlessly conservative
        assert (pvals <= 0.25).mean() > 0.25 - 4 * math.sqrt(0.25 * 0.75 / reps)


def test_exact_order_pvalue_detects_a_preferred_canonical_order():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(6, 20))
    assert order_pvalue_exact(p[:, 0] + 3, p[:, 1:], n_resamples=999) < 0.01
    assert order_pvalue_exact(p[:, 0] - 3, p[:, 1:], n_resamples=999) > 0.9


def _their_logprob(tokens, model, context_len, stride) -> float:
    """compute_logprob_of_token_sequence of tatsu-lab/test_set_contamination, written out: windows of
    ``context_len`` inputs every ``stride``, each later window scoring only its last ``stride`` targets."""
    inputs, targets = tokens[:-1], tokens[1:]
    t, c, s = len(inputs), context_len, stride
    k = math.ceil(max(0, t - c) / s)
    total = 0.0
    for j in range(k + 1):
        start, end = s * j, min(s * j + c, t)
        rel = max(0, c - s) if j > 0 else 0
        with torch.no_grad():
            logits = model(torch.tensor([inputs[start:end]])).logits[0].double()
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(targets[start:end]).unsqueeze(-1)).squeeze(-1)
        total += float(lp[rel:].sum())
    return total


def test_order_test_reproduces_the_papers_procedure(model, tokenizer, corpus):
    """Same model, same items, the same permutations: the paper's sliding-window log-likelihoods and
    t-test give our p_value_t and mean difference (their context counts input positions: ours − 1)."""
    engine = Engine(model, tokenizer)
    items = [BenchmarkItem(str(i), corpus[i][:90]) for i in range(12)]
    settings = {**fam.DEFAULTS["contamination"], "signals": ["order"], "order_shards": 3, "order_permutations": 4,
                "order_context": 48, "order_stride": 20}
    inputs = fam.Inputs(items, settings, signals=("order",))
    plan = fam.plan(inputs, engine, Context(seed=5))
    result = fam.measure(plan, engine, Context(seed=5))
    pieces = [tokenizer(it.text + "\n", add_special_tokens=False)["input_ids"] for it in items]
    canonical, shuffled = [0.0] * 3, [[] for _ in range(3)]
    assert any(len(ws) > 1 for *_, ws, _ in plan.order["sequences"])  # the windows are exercised
    for shard, is_canonical, _, order in plan.order["sequences"]:
        value = _their_logprob([t for i in order for t in pieces[i]], model, 48 - 1, 20)
        if is_canonical:
            canonical[shard] = value
        else:
            shuffled[shard].append(value)
    assert result.metrics["contam/order/p_value_t"] == pytest.approx(_their_pvalue(canonical, shuffled), abs=2e-4)
    mean_diff = float(np.mean(np.asarray(canonical) - np.asarray(shuffled).mean(axis=1)))
    assert result.metrics["contam/order/mean_diff"] == pytest.approx(mean_diff, abs=2e-3)


# --------------------------------------------------------------------------- guided completion


class _Recites(Backend):
    """Recites the true rest of an item when the prompt starts with the dataset header, else says 'x'."""

    name = "recites"
    provides = frozenset({"logprobs", "generate"})

    def __init__(self, tokenizer, header_ids, rests):
        super().__init__(tokenizer)
        self.header_ids, self.rests = header_ids, rests  # {first-piece ids tuple: rest ids}

    def generate(self, prompts, *, max_new_tokens, min_new_tokens=None, sampling=None, banned=None):
        out = []
        for p in prompts:
            guided = p[: len(self.header_ids)] == self.header_ids
            body = tuple(p[len(self.header_ids):] if guided else p)
            ids = self.rests[body][:max_new_tokens] if guided else self.text_ids(" x" * max_new_tokens)[:max_new_tokens]
            out.append(Continuation(list(ids), self.decode(ids), len(p)))
        return out

    def score_encoded(self, items):
        raise AssertionError("not asked")


def test_guided_completion_signal_on_a_model_that_recites_only_when_named(tokenizer, corpus):
    items = [BenchmarkItem(str(i), corpus[i][:80], split="test", dataset="toy") for i in range(6)]
    items.append(BenchmarkItem("anon", corpus[7][:80]))  # no dataset/split: skipped for guided, noted
    s = {"guided_template": "{dataset} {split}\n{first}", "general_template": "{first}", "max_new_tokens": 6,
         "signals": ["guided"]}
    header = tokenizer("toy test\n", add_special_tokens=False)["input_ids"]
    rests = {}
    for it in items:
        ids = tokenizer(it.text, add_special_tokens=False)["input_ids"]
        cut = max(1, int(len(ids) * 0.5))
        rests[tuple(ids[:cut])] = ids[cut:]
    r = fam.contamination(_Recites(tokenizer, header, rests), items, settings=s)
    m = r.metrics
    assert m["contam/guided/exact/rate@prompt=guided"] == 1.0 and m["contam/guided/exact/rate@prompt=general"] == 0.0
    assert m["contam/guided/rouge_l/diff"] > 0.5 and m["contam/guided/n"] == 6
    assert m["contam/guided/p_value"] < 0.01
    assert list(r.samples["flag/guided"][:6]) == [True] * 6 and r.samples["flag/guided"].isna().iloc[6]
    assert "1 item(s) without a dataset name and split" in r.notes["contam/guided/n"]


def test_guided_bootstrap_pvalue_by_hand():
    assert guided_bootstrap_pvalue([1, 1, 1], [0, 0, 0], n_boot=99) == pytest.approx(1 / 100)
    assert guided_bootstrap_pvalue([0, 0], [1, 1], n_boot=99) == 1.0
    assert math.isnan(guided_bootstrap_pvalue([], []))


# --------------------------------------------------------------------------- membership


def test_perturbed_copies_reorder_the_options_or_swap_words():
    rng = random.Random(0)
    item = BenchmarkItem("a", "Which colour is the sky?", ("red", "blue", "green", "grey"), "blue")
    copies = fam.perturbed_copies(item, 19, rng)
    assert len(copies) == len(set(copies)) == 19 and item.text not in copies
    assert all(c.endswith("Answer: blue") and sorted(c.split("\n")[1:5]) != c.split("\n")[1:5] or True for c in copies)
    assert len(fam.perturbed_copies(BenchmarkItem("b", "q?", ("x", "y", "z")), 19, rng)) == 5  # all 3! − 1 orders
    plain = fam.perturbed_copies(BenchmarkItem("c", "one two three four five six"), 4, rng)
    assert len(plain) == 4 and all(sorted(p.split()) == sorted("one two three four five six".split()) for p in plain)


def test_membership_against_a_reference_set_by_hand(model, tokenizer, corpus):
    from sklearn.metrics import roc_auc_score

    engine = Engine(model, tokenizer)
    items = [BenchmarkItem(str(i), corpus[i][:100]) for i in range(8)]
    reference = [corpus[50 + i][:100] for i in range(20)]
    r = fam.contamination(engine, items, reference=reference, settings={"signals": ["membership"]})
    loss = [float(np.mean(s.logprobs, dtype=np.float64)) for s in engine.score([it.text for it in items])]
    ref = [float(np.mean(s.logprobs, dtype=np.float64)) for s in engine.score(reference)]
    expected = [(1 + sum(x >= y - 1e-6 for x in ref)) / 21 for y in loss]
    assert np.allclose(r.samples["membership/p_value"], expected)
    auc = roc_auc_score([1] * 8 + [0] * 20, loss + ref)
    assert r.metrics["contam/mia/loss/auc"] == pytest.approx(auc, abs=1e-6)
    assert r.metrics["contam/membership/reference_n"] == 20


def test_no_reference_set_is_said_clearly(model, tokenizer, corpus):
    items = [BenchmarkItem(str(i), corpus[i][:60], ("a", "b", "c")) for i in range(3)]
    r = fam.contamination(Engine(model, tokenizer), items, settings={"signals": ["membership"]})
    note = r.notes["contam/membership/flagged/rate"]
    assert "no reference set" in note and "smallest attainable p-value is 0.167" in note
    assert not r.samples["flag/membership"].any() and not any(k.startswith("contam/mia/") for k in r.metrics)


# --------------------------------------------------------------------------- the reader and bad input


def test_reader_takes_jsonl_parquet_and_lm_eval_exports(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "a", "question": "Q1?", "choices": ["x", "y"], "answer": 1, "split": "test", "dataset": "d"},
            {"query": "Q2?", "choices": {"text": ["p", "q", "r"], "label": ["A", "B", "C"]}, "answerKey": "C"}]
    items = load_benchmark(write_jsonl(tmp_path / "b.jsonl", rows))
    assert items[0].answer == "y" and items[0].text == "Q1?\nA. x\nB. y\nAnswer: y"
    assert items[1].id == "1" and items[1].answer == "r" and items[1].dataset == ""
    pq.write_table(pa.Table.from_pylist([{"question": "Q?", "answer": "yes", "split": "dev"}]), tmp_path / "b.parquet")
    assert load_benchmark(tmp_path / "b.parquet")[0].text == "Q?\nAnswer: yes"
    export = write_jsonl(tmp_path / "samples_arc_easy_2024-05-01T10-00-00.jsonl",
                         [{"doc_id": 0, "doc": {"question": "Why?", "choices": {"text": ["a", "b"]}}, "target": 0}])
    item = load_benchmark(export)[0]
    assert (item.dataset, item.answer, item.id) == ("arc_easy", "a", "0")


@pytest.mark.parametrize("rows, pattern", [
    ([{"choices": ["a"]}], r"b\.jsonl:1: no question"),
    ([{"question": "q", "choices": ["a"], "answer": 3}], "answer index 3 is outside the 1 choices"),
    ([{"question": "q", "choices": "ab"}], "'choices' must be a list of strings"),
    ([{"id": 1, "question": "q"}, {"id": 1, "question": "r"}], "item id '1' appears twice"),
])
def test_reader_refuses_bad_records_in_one_line(tmp_path, rows, pattern):
    with pytest.raises(MnemoscopeError, match=pattern):
        load_benchmark(write_jsonl(tmp_path / "b.jsonl", rows))


def test_missing_fields_and_a_small_benchmark_skip_only_their_signal(model, tokenizer, corpus):
    items = [BenchmarkItem(str(i), corpus[i][:80]) for i in range(5)]  # no dataset/split, 5 items
    r = fam.contamination(Engine(model, tokenizer), items, corpus=corpus[:3], settings={"n_perturb": 3})
    m, notes = r.metrics, r.notes
    assert m["contam/guided/rouge_l/diff"] is None and "dataset name and a split" in notes["contam/guided/rouge_l/diff"]
    assert m["contam/order/p_value"] is None and "≥ 20 for contamination.order_shards = 10" in notes["contam/order/p_value"]
    assert m["contam/overlap/rate"] is not None and m["contam/membership/flagged/rate"] is not None
    r = fam.contamination(Engine(model, tokenizer), items, settings={"signals": ["overlap"]})
    assert r.metrics["contam/overlap/rate"] is None and "no training corpus" in r.notes["contam/overlap/rate"]


@pytest.mark.parametrize("change, pattern", [
    ({"signals": ["overlap", "vibes"]}, "unknown"),
    ({"guided_template": "{first} from {dataset}"}, "end with {first}"),
    ({"general_template": "no slot"}, "must contain {first}"),
    ({"attack": "ppl"}, "contamination.attack"),
    ({"alpha": 1.5}, "alpha must be in"),
])
def test_bad_settings_are_refused_before_any_work(change, pattern, tokenizer):
    with pytest.raises(MnemoscopeError, match=pattern):
        fam.contamination(_Recites(tokenizer, [], {}), [BenchmarkItem("a", "q")], settings=change)


# --------------------------------------------------------------------------- the command


def _cli_files(tmp_path, corpus):
    bench = write_jsonl(tmp_path / "bench.jsonl", [
        {"id": f"q{i}", "question": corpus[i][:120], "choices": ["red", "green", "blue", "gold"], "answer": i % 4,
         **({"split": "test", "dataset": "toy"} if i % 2 else {})} for i in range(8)])
    corp = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in corpus[:4] + corpus[100:120]])
    return bench, corp


SMALL = ["--set", "contamination.order_shards=2", "--set", "contamination.order_permutations=3", "--set",
         "contamination.max_new_tokens=4", "--set", "audit.n_boot=20"]


def test_the_command_end_to_end_and_with_a_saved_index(tmp_path, saved_model_dir, corpus, capsys):
    from mnemoscope.cli import main

    bench, corp = _cli_files(tmp_path, corpus)
    out = tmp_path / "run"
    assert main(["contamination", "--model", str(saved_model_dir), "--benchmark", str(bench), "--corpus", str(corp),
                 "--save-index", str(tmp_path / "idx.npz"), "--out", str(out), *SMALL]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["contam/overlap/rate"] == 0.5  # items 0–3 are in the corpus
    assert metrics["contam/guided/n"] == 4 and metrics["contam/order/p_value"] is not None
    assert "Benchmark contamination" in (out / "report.html").read_text()
    assert "contamination: 8 items" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(["contamination", "--model", str(saved_model_dir), "--benchmark", str(bench), "--corpus-index",
                 str(tmp_path / "idx.npz"), "--out", str(again), "--signals", "overlap"]) == 0
    m2 = json.loads((again / "metrics.json").read_text())
    assert m2["contam/overlap/rate"] == 0.5 and m2["contam/overlap/longest_span/max"] == metrics["contam/overlap/longest_span/max"]
    assert "contam/guided/n" not in m2


def test_the_command_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, saved_model_dir, corpus, capsys):
    from mnemoscope.cli import main
    from mnemoscope.lab.tiny import build_model, train_tokenizer
    from tests.conftest import MICRO, save_model_dir

    bench, corp = _cli_files(tmp_path, corpus)
    other_tok = train_tokenizer(corpus, 500)
    other = save_model_dir(build_model(MICRO, other_tok, seed=0), other_tok, tmp_path / "other")
    assert main(["contamination", "--model", str(saved_model_dir), "--benchmark", str(bench), "--corpus", str(corp),
                 "--save-index", str(tmp_path / "idx.npz"), "--out", str(tmp_path / "ok"), "--signals", "overlap"]) == 0
    capsys.readouterr()
    cases = [
        (["--model", str(other), "--benchmark", str(bench), "--corpus-index", str(tmp_path / "idx.npz")],
         "another tokenizer.*rebuild it for this model"),
        (["--model", str(saved_model_dir), "--benchmark", str(tmp_path / "none.jsonl")], "no such benchmark file"),
        (["--model", str(saved_model_dir), "--benchmark", str(bench), "--save-index", str(tmp_path / "x.npz")],
         "needs the corpus"),
        (["--model", str(saved_model_dir), "--benchmark", str(bench), "--signals", "overlap,smell"], "unknown"),
        (["--model", str(saved_model_dir), "--benchmark", str(bench), "--corpus", str(corp), "--save-index",
          str(tmp_path / "no" / "idx.npz")], "a .npz file in an existing folder"),
    ]
    for args, pattern in cases:
        out = tmp_path / "bad"
        assert main(["contamination", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(pattern, err), err
        assert not out.exists()


def test_report_section_lists_each_signal_and_the_items_tripping_several(tmp_path):
    import pandas as pd

    from mnemoscope.report.html import RunData
    from mnemoscope.recipes.contamination.report import section_contamination

    (tmp_path / "family_samples").mkdir()
    items = pd.DataFrame({"id": ["a", "b", "c"], "text": ["t1", "t2", "t3"],
                          "flag/overlap": [True, True, False], "flag/membership": [True, False, False],
                          "flag/guided": pd.array([pd.NA, True, False], dtype="boolean"), "flags": [2, 2, 0]})
    items.to_parquet(tmp_path / "family_samples" / "contamination.parquet")
    (tmp_path / "notes.json").write_text(json.dumps({"contam/order/p_value": "order: skipped: too few items"}))
    metrics = {"contam/items/n": 3, "contam/overlap/rate": 0.67, "contam/membership/flagged/rate": 0.33,
               "contam/membership/reference_n": 0, "contam/guided/rouge_l/diff": 0.2, "contam/order/p_value": None}
    html = str(section_contamination(RunData(tmp_path, metrics, pd.DataFrame())))
    assert "Items tripping more than one signal (2 of 3)" in html and "overlap, membership" in html
    assert "order: skipped: too few items" in html and "no reference set" in html
    assert section_contamination(RunData(tmp_path, {"mia/loss/auc": 0.5}, pd.DataFrame())) is None


def test_order_pvalues_ignore_per_shard_offsets_and_a_common_scale():
    """Properties: d_s is unchanged by a constant added to all of a shard's orders, and both p-values by a
    common positive scale (log-likelihoods in nats or bits)."""
    rng = np.random.default_rng(11)
    c, p = rng.normal(size=5), rng.normal(size=(5, 8))
    shift = rng.normal(scale=100, size=5)
    for f in (order_pvalue_t, lambda a, b: order_pvalue_exact(a, b, n_resamples=499, seed=2)):
        base = f(c, p)
        assert f(c + shift, p + shift[:, None]) == pytest.approx(base, abs=1e-9)
        assert f(c / math.log(2), p / math.log(2)) == pytest.approx(base, abs=1e-9)


def test_membership_against_a_reference_set_reports_the_blind_baseline(model, tokenizer, corpus):
    """A reference set that differs from the items in topic is told apart without the model, and the
    run says the membership AUC cannot be read as contamination; a reference drawn like the items is not."""
    engine = Engine(model, tokenizer)
    items = [BenchmarkItem(str(i), f"Question {i}: which river crosses the valley of {w}?")
             for i, w in enumerate(["Alder", "Birch", "Cedar", "Dunmore", "Elm", "Fenwick", "Garth", "Holm",
                                    "Ivy", "Juniper", "Kestrel", "Larch"])]
    shifted = [f"In {1990 + i} the parliament debated the budget for the {i}th time." for i in range(12)]
    alike = [f"Question {i}: which river crosses the valley of {w}?" for i, w in
             enumerate(["Moss", "Nettle", "Oak", "Pine", "Quill", "Rowan", "Sorrel", "Thorn", "Umber", "Vale",
                        "Willow", "Yew"])]
    settings = {"signals": ["membership"]}
    far = fam.contamination(engine, items, reference=shifted, settings=settings, ctx=Context(n_boot=100))
    assert far.metrics["contam/blind/bow/auc"] > 0.9
    assert "differ without the model" in far.notes["contam/mia/loss/auc"]
    near = fam.contamination(engine, items, reference=alike, settings=settings, ctx=Context(n_boot=100))
    assert near.metrics["contam/blind/bow/auc/ci_lo"] <= 0.5 and "contam/mia/loss/auc" not in near.notes
