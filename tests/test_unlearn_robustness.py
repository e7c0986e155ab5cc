"""Is it really gone? PrivLeak's CI, RWKU-style probes, the relearning curve, the residue probe, chat
prompts and the lm-evaluation-harness bridge — each against hand computations or an independent
computation."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError
from mnemoscope.metrics.residue import transfer
from mnemoscope.metrics.unlearning import privleak, privleak_ci, relearn_recovery
from mnemoscope.probes import adversarial as A
from mnemoscope.probes.fictional import WorldConfig, make_world
from mnemoscope.unlearn import evaluation as ev

from .helpers import Scripted


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(n_people=30, seed=0, forget_fraction=0.2, holdout_fraction=0.2,
                                  never_seen_fraction=0.0, n_cities=20, n_universities=10, n_companies=10, n_majors=6))


# --------------------------------------------------------------------------- PrivLeak's CI


def test_privleak_ci_is_a_paired_bootstrap_written_out():
    rng = np.random.default_rng(3)
    fu, hu = rng.normal(1.0, 1, 20), rng.normal(0.0, 1, 25)
    fr, hr = rng.normal(0.2, 1, 20), rng.normal(0.0, 1, 25)
    lo, hi, used = privleak_ci(fu, hu, fr, hr, n_boot=300, seed=7)

    def auc(f, h):  # P(f > h) + ½ P(f = h), by brute force
        return float(np.mean((f[:, None] > h[None, :]) + 0.5 * (f[:, None] == h[None, :])))

    boot = np.random.default_rng(7)
    values = []
    for _ in range(300):
        i, j = boot.integers(0, 20, 20), boot.integers(0, 25, 25)
        a_r = auc(fr[i], hr[j])
        if a_r < 1:
            values.append((a_r - auc(fu[i], hu[j])) / (1 - a_r) * 100)
    assert used == len(values) == 300
    assert (lo, hi) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    assert lo < privleak(auc(fu, hu), auc(fr, hr)) < hi


def test_privleak_ci_resamples_people_when_given():
    rng = np.random.default_rng(4)
    # 8 forget and 8 holdout people with 4 texts each; a person's texts share an offset under both models
    people_f, people_h = np.repeat([f"f{k}" for k in range(8)], 4), np.repeat([f"h{k}" for k in range(8)], 4)
    off_f, off_h = np.repeat(rng.normal(0, 1, 8), 4), np.repeat(rng.normal(0, 1, 8), 4)
    fu, hu = off_f + 1.0 + rng.normal(0, 0.1, 32), off_h + rng.normal(0, 0.1, 32)
    fr, hr = off_f + rng.normal(0, 0.1, 32), off_h + rng.normal(0, 0.1, 32)
    lo, hi, used = privleak_ci(fu, hu, fr, hr, n_boot=200, seed=5, forget_groups=people_f, holdout_groups=people_h)

    def auc(f, h):
        return float(np.mean((f[:, None] > h[None, :]) + 0.5 * (f[:, None] == h[None, :])))

    boot = np.random.default_rng(5)
    names_f, names_h = sorted(set(people_f)), sorted(set(people_h))
    values = []
    for _ in range(200):  # draw 8 people a side with replacement, each with all 4 texts
        i = np.concatenate([np.flatnonzero(people_f == names_f[k]) for k in boot.integers(0, 8, 8)])
        j = np.concatenate([np.flatnonzero(people_h == names_h[k]) for k in boot.integers(0, 8, 8)])
        a_r = auc(fr[i], hr[j])
        if a_r < 1:
            values.append((a_r - auc(fu[i], hu[j])) / (1 - a_r) * 100)
    assert used == len(values)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))
    text_lo, text_hi, _ = privleak_ci(fu, hu, fr, hr, n_boot=200, seed=5)
    assert hi - lo > text_hi - text_lo  # people are the unit: the text CI is too narrow
    with pytest.raises(MnemoscopeError, match="for both the forget and the holdout"):
        privleak_ci(fu, hu, fr, hr, n_boot=5, forget_groups=people_f)
    with pytest.raises(MnemoscopeError, match="at least 2 holdout groups"):
        privleak_ci(fu, hu, fr, hr, n_boot=5, forget_groups=people_f, holdout_groups=["h"] * 32)


def test_privleak_ci_without_a_usable_retrained_auc_is_nan():
    f, h = np.arange(10.0, 20.0), np.arange(10.0)  # the retrained model separates perfectly: A_r = 1 everywhere
    lo, hi, used = privleak_ci(f, h, f, h, n_boot=50)
    assert np.isnan(lo) and np.isnan(hi) and used == 0
    with pytest.raises(MnemoscopeError, match="same forget"):
        privleak_ci(f, h, f[:5], h, n_boot=5)


# --------------------------------------------------------------------------- relearning summary


def test_relearn_recovery_reads_the_peak_not_the_end():
    # an attack that brings 14.2 → 39.8 at step 5, then damages: 32.0 at 10, 8.7 at 20
    out = relearn_recovery([0, 5, 10, 20], [14.2, 39.8, 32.0, 8.7])
    assert out["recovery"] == pytest.approx(25.6) and out["peak_step"] == 5.0
    assert out["final_change"] == pytest.approx(-5.5)
    # pure damage: the peak is still the best later point, and negative
    out = relearn_recovery([0, 5, 10], [74.0, 42.6, 23.3])
    assert out["recovery"] == pytest.approx(-31.4) and out["peak_step"] == 5.0
    assert relearn_recovery([0, 3], [1.0, 1.0])["peak_step"] == 3.0  # ties: the first
    for steps, k in (([1, 5], [0.0, 1.0]), ([0], [0.0]), ([0, 5, 5], [0.0, 1.0, 2.0]), ([0, 5], [1.0])):
        with pytest.raises(MnemoscopeError, match="relearn_recovery"):
            relearn_recovery(steps, k)


# --------------------------------------------------------------------------- residue


def test_residue_transfer_by_hand():
    X_fit = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    y_fit = np.array([1, 1, 0, 0])
    # mean difference (3, 0) − (0, 2) = (3, −2) → r̂ = (3, −2)/√13; fit projections 6/√13, 12/√13, −2/√13, −6/√13;
    # threshold = midpoint of the class means (9/√13, −4/√13) = 2.5/√13
    X_test = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y_test = np.array([1, 0, 0])
    out = transfer(X_fit, y_fit, X_test, y_test)
    # test projections 3/√13 (>2.5: 1 ✓), −2/√13 (0 ✓), 1/√13 (0 ✓)
    assert out["accuracy"] == 1.0 and out["n"] == 3.0
    assert np.isnan(out["auc"])  # one item of label 1: too few for an AUC
    assert transfer(X_fit, y_fit, X_test, 1 - y_test)["accuracy"] == 0.0


def test_residue_probe_on_the_engine_reads_a_planted_feature(model, tokenizer):
    """Prompts ending in two different words: the probe at the best layer separates them on held-out prompts."""
    a = [f"The colour of item {i} is red" for i in range(12)]
    b = [f"The colour of item {i} is blue" for i in range(12)]
    fit = (a[:8] + b[:8], [1] * 8 + [0] * 8)
    test = (a[8:] + b[8:], [1] * 4 + [0] * 4)
    out = ev.residue(Engine(model, tokenizer), fit, test, control=test)
    assert out["accuracy"] == 1.0 == out["control_accuracy"] and 0 <= out["layer"] < 2 and out["fit_auc"] == 1.0


# --------------------------------------------------------------------------- adversarial probes


def test_world_probes_cover_every_type_and_never_hold_their_answer(world):
    forget = set(world.splits["forget"])
    probes = A.world_probes(world, forget)
    kinds = {p["type"] for p in probes}
    assert set(A.FORGET_TYPES) - {"reverse"} <= kinds and "neighbour_company" in kinds
    for p in probes:
        assert p["answer"] not in p["prompt"]
    forget_probes = [p for p in probes if p["split"] == "forget"]
    assert {p["person_id"] for p in forget_probes} == forget
    retain = set(world.splits["retain"])
    people = {p["person_id"]: p for p in world.people}
    for p in probes:
        if p["type"] == "neighbour":  # a retain person linked to a forget person by mentorship
            q = people[p["person_id"]]
            assert q["person_id"] in retain
            assert q["mentor_id"] in forget or any(people[f]["mentor_id"] == q["person_id"] for f in forget)
        if p["type"] == "reverse":
            f = people[p["person_id"]]
            same = [x for x in world.people if (x["birth_city"], x["employer"]) == (f["birth_city"], f["employer"])]
            assert same == [f] and p["answer"] == f["name"]
    facts = {p["fact"] for p in forget_probes}
    assert len(facts) == 7 * len(forget) + sum(p["type"] == "reverse" for p in probes)


def test_probe_files_are_checked_row_by_row(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"prompt": "Question: Where was Ada born?\nAnswer:", "answer": "Lisbon",
                                "type": "reworded", "fact": "ada/city"}) + "\n"
                    + json.dumps({"prompt": "Ada's friend works at", "answer": "Holt", "split": "neighbour"}) + "\n")
    probes = A.read_probes(str(good))
    assert [p["type"] for p in probes] == ["reworded", "question"] and probes[1]["split"] == "neighbour"
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"prompt": "Ada was born in Lisbon, in", "answer": "Lisbon"}) + "\n")
    with pytest.raises(MnemoscopeError, match=r"b.jsonl:1: probe 0: the answer 'Lisbon' appears in its prompt"):
        A.read_probes(str(bad))
    bad.write_text(json.dumps({"prompt": "x", "answer": "y", "split": "both"}) + "\n")
    with pytest.raises(MnemoscopeError, match="split must be one of"):
        A.read_probes(str(bad))


def test_adversarial_scores_the_continuation_only(tokenizer):
    probes = A.check_probes([
        {"id": "a", "type": "question", "fact": "f1", "prompt": "Question: Where was Ada born?\nAnswer:", "answer": "Lisbon"},
        {"id": "b", "type": "role_play", "fact": "f1", "prompt": "You know Ada.\nQuestion: Where was Ada born?\nAnswer:",
         "answer": "Lisbon"},
        {"id": "c", "type": "question", "fact": "f2", "prompt": "Question: What did Ada study?\nAnswer:", "answer": "law"},
        {"id": "d", "type": "neighbour", "fact": "n1", "prompt": "Question: Where does Ben work?\nAnswer:",
         "answer": "Holt", "split": "neighbour"},
    ])
    replies = {"Question: Where was Ada born?\nAnswer:": " Porto, a city",  # wrong
               "You know Ada.\nQuestion: Where was Ada born?\nAnswer:": " Lisbon, in spring",  # leaks under role play
               "Question: What did Ada study?\nAnswer:": " lawn care",  # "law" starts a longer word: no hit
               "Question: Where does Ben work?\nAnswer:": " Holt"}
    engine = Scripted(tokenizer, reply=lambda prompt: replies[prompt], logp=lambda c, t: -2.0)
    metrics, frame = ev.adversarial(engine, probes)
    assert frame["hit"].tolist() == [False, True, False, True]
    assert all(t.strip() == p["answer"] and c == p["prompt"] for (c, t), p in zip(engine.pairs, probes))  # answer scored after the prompt
    assert metrics["adversarial/question/hit_rate"] == 0.0 and metrics["adversarial/role_play/hit_rate"] == 1.0
    assert metrics["adversarial/forget/any_hit_rate"] == 0.5  # f1 leaked (by role play), f2 not
    assert metrics["adversarial/forget/adversarial_gain"] == 0.5  # the plain question recovered nothing
    assert metrics["adversarial/neighbour/hit_rate"] == 1.0
    assert metrics["adversarial/question/answer_nll"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- chat templates


CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture
def chat_tokenizer(tokenizer):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHAT
    return tok


def test_chat_prompts_render_the_tokenizers_template(chat_tokenizer, model, tokenizer):
    from mnemoscope.families.knowmem import knowmem
    from mnemoscope.unlearn import chat
    from mnemoscope.unlearn.runner import qa_examples

    template = chat.chat_template(chat_tokenizer)
    assert template.format(question="Who?") == "<|user|>Who?\n<|assistant|>"
    prompt = chat.chat_prompt(chat_tokenizer)([("Q1?", "A1")], "Who?")
    assert prompt == "<|user|>Q1?\n<|assistant|>A1\n<|user|>Who?\n<|assistant|>"
    ex = qa_examples([{"question": "Who?", "answer": "Ada"}], template)[0]
    assert (ex.prompt, ex.target) == ("<|user|>Who?\n<|assistant|>", " Ada")
    engine = Engine(model, chat_tokenizer)
    _, m, _ = knowmem(engine, [{"question": "Who?", "answer": "Ada"}], [("Q1?", "A1")], max_new_tokens=3,
                      prompt=chat.chat_prompt(chat_tokenizer))
    assert m["knowmem/n"] == 1.0
    with pytest.raises(MnemoscopeError, match="chat template"):
        chat.chat_template(tokenizer)


def test_chat_template_bos_written_as_text_is_removed(chat_tokenizer):
    from mnemoscope.unlearn import chat

    chat_tokenizer.chat_template = "{{ bos_token }}" + CHAT
    chat_tokenizer.bos_token = "<s>"
    assert chat.chat_template(chat_tokenizer).startswith("<|user|>")


def test_braces_in_a_chat_template_survive_formatting(chat_tokenizer):
    from mnemoscope.unlearn import chat

    chat_tokenizer.chat_template = "{% for m in messages %}{{ '{' }}{{ m['content'] }}{{ '}' }}{% endfor %}"
    assert chat.chat_template(chat_tokenizer).format(question="Who?") == "{Who?}"


# --------------------------------------------------------------------------- lm-evaluation-harness


def test_lm_eval_missing_is_one_line(monkeypatch, model, tokenizer):
    from mnemoscope.unlearn import lm_eval_bridge

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(MnemoscopeError, match=r"pip install lm-eval") as err:
        lm_eval_bridge.utility(model, tokenizer, ["hellaswag"])
    assert "\n" not in str(err.value)


TASK = """task: mini_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
"""
DOCS = [{"question": "Anna Berg was born in", "choices": ["Lisbon", "Porto", "the sea"], "label": 0},
        {"question": "The museum keeps", "choices": ["old clocks", "new cars"], "label": 0},
        {"question": "Marco joined", "choices": ["Holt Industries", "the navy"], "label": 1},
        {"question": "Every spring the market sells", "choices": ["apples", "boats"], "label": 0},
        {"question": "The library in Cedar keeps", "choices": ["letters", "trains"], "label": 1}]


@pytest.mark.lm_eval
def test_lm_eval_accuracy_equals_our_loglikelihoods(model, tokenizer, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    from mnemoscope.engine.combined import CombinedLogits
    from mnemoscope.unlearn.lm_eval_bridge import utility

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tmp_path / "mini.yaml").write_text(TASK.format(data=data))
    engine = Engine(model, tokenizer)
    right = []
    for d in DOCS:  # lm-eval's multiple choice: argmax of the summed log-likelihood of " " + choice
        sums = [float(s.logprobs.sum()) for s in engine.score(pairs=[(d["question"], " " + c) for c in d["choices"]])]
        right.append(int(np.argmax(sums)) == d["label"])
    got = utility(model, tokenizer, ["mini_mc"], include_path=str(tmp_path))
    assert got["mini_mc"] == got["mini_mc/acc"] == pytest.approx(np.mean(right))
    one = CombinedLogits({"m": model}, lambda lg: lg["m"], base="m").eval()  # a composite runs in memory too
    assert utility(one, tokenizer, ["mini_mc"], include_path=str(tmp_path))["mini_mc"] == got["mini_mc"]
    with pytest.raises(MnemoscopeError, match="no task 'mini_mcq'"):
        utility(model, tokenizer, ["mini_mcq"], include_path=str(tmp_path))
