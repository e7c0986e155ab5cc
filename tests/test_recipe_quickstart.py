"""The quickstart end to end (micro size): dose-response, run directory, rerun and resume."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnemoscope.cli import main

SMALL = [
    "model.size=micro", "model.vocab_size=1024", "corpus.n_docs=600", "canaries.per_dose=4",
    "canaries.n_controls=16", "canaries.doses=[0, 1, 64]", "train.steps=300", "audit.n_boot=200",
]


def _run(out, *extra):
    args = ["run", "--out", str(out)]
    for item in SMALL + list(extra):
        args += ["--set", item]
    return main(args)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "run"
    assert _run(out) == 0
    return out


def test_run_directory_is_complete(finished):
    for name in ("config.yaml", "manifest.json", "metrics.json", "samples.parquet", "curves.parquet", "report.html"):
        assert (finished / name).exists(), name
    assert (finished / "model" / "model.safetensors").exists()
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["recipe"] == "quickstart" and manifest["seed"] == 0 and "train" in manifest["timings_s"]
    samples = pd.read_parquet(finished / "samples.parquet")
    assert set(samples["dose"]) == {0, 1, 64}
    assert (samples["label"] == (samples["dose"] > 0)).all()
    curves = pd.read_parquet(finished / "curves.parquet")
    assert len(curves) == 300 and curves["injected_tokens"].sum() > 0


def test_the_report_renders_in_a_real_browser(finished, tmp_path):
    """The by-dose table and plots fit the window; nothing broken, no console error (Chromium)."""
    from .browser import assert_renders

    assert_renders(finished / "report.html", tmp_path, ["Claim", "Summary", "Dose–response", "ROC curves"])


def test_dose_response(finished):
    """The lab's first sanity check: more repetitions → more extraction and more separable membership."""
    m = json.loads((finished / "metrics.json").read_text())
    assert m["extraction/exact/rate@dose=64"] > m["extraction/exact/rate@dose=1"]
    assert m["extraction/memorization/mean@dose=64"] > m["extraction/memorization/mean@dose=1"] + 0.2
    for attack in ("loss", "min_k", "min_k_pp"):
        assert m[f"mia/{attack}/auc@dose=64"] > 0.9
        assert m[f"mia/{attack}/auc@dose=64"] > m[f"mia/{attack}/auc@dose=1"]
    assert m["mia/loss/mean_nll@dose=64"] < m["mia/loss/mean_nll@dose=0"]


def test_the_blind_baseline_opens_the_membership_table_and_sees_no_shift(finished):
    """Canaries and controls come from one generator: a classifier without the model cannot tell them
    apart, so no warning; the report's membership table starts with it all the same."""
    m = json.loads((finished / "metrics.json").read_text())
    assert m["blind/bow/auc/ci_lo"] <= 0.5 <= m["blind/bow/auc/ci_hi"]
    html = (finished / "report.html").read_text()
    table = html[html.index("<h3>Membership inference</h3>"):]
    assert table.index("blind baseline: bag of words (no model)") < table.index(">min_k_pp<")
    assert "differ without the model" not in html


def test_rerun_reuses_the_trained_model_and_gives_the_same_numbers(finished, capsys):
    before = json.loads((finished / "metrics.json").read_text())
    assert _run(finished) == 0
    after = json.loads((finished / "metrics.json").read_text())
    assert after == before


def test_interrupted_run_resumes_to_the_same_result(finished, tmp_path, monkeypatch):
    from mnemoscope.train import phase

    real_train = phase.train

    def interrupted(*args, **kwargs):
        return real_train(*args, stop_after=150, **kwargs)

    monkeypatch.setattr(phase, "train", interrupted)
    out = tmp_path / "run"
    assert _run(out) == 2  # "training stopped early; rerun the same command to resume"
    assert (out / "train" / "checkpoints" / "step-000100").exists()
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(phase, "train", real_train)
    assert _run(out) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    expected = json.loads((finished / "metrics.json").read_text())
    assert resumed == pytest.approx(expected, abs=1e-6)


def test_other_config_in_the_same_directory_is_refused(finished, capsys):
    assert _run(finished, "train.lr=0.01") == 2
    assert "different config" in capsys.readouterr().err


def test_a_run_that_failed_before_training_does_not_block_the_corrected_command(tmp_path, capsys):
    """Too many injected copies for the rows is found while preparing data: the directory holds a
    tokenizer and a config but nothing to resume, so a command with another config replaces it."""
    out = tmp_path / "run"
    tiny = ["corpus.n_docs=200", "canaries.per_dose=2", "canaries.n_controls=2"]
    assert _run(out, *tiny, "train.steps=2") == 2
    assert "injected copies but only" in capsys.readouterr().err
    assert (out / "config.yaml").exists() and not (out / "train").exists()
    assert _run(out, *tiny, "train.steps=3") == 2  # another config: replaced, and fails on its own merits
    err = capsys.readouterr().err
    assert "different config" not in err and "injected copies but only" in err
    assert "replacing it" in err


def test_the_claim_is_computed_and_opens_the_report(finished):
    from tests.helpers import claim_effects

    effects = claim_effects("quickstart", finished)
    assert all(v > (0.5 if "vs chance" in label else 0) for label, v in effects.items())  # the claim holds


def test_a_fresh_run_at_the_same_seed_reproduces_every_metric(tmp_path):
    """From scratch twice (data, tokenizer, training, audit), in two processes with different string
    hash seeds (so no set or dict order can leak into data or results): the same metrics, bit for
    bit, on one machine. Only wall-clock timings may differ."""
    import os
    import subprocess
    import sys

    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"hash{hash_seed}"
        args = ["--out", str(out)] + [a for item in SMALL + ["train.steps=80", "audit.n_boot=20"] for a in ("--set", item)]
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
        code = "import sys; from mnemoscope.cli import main; sys.exit(main(['run'] + sys.argv[1:]))"
        subprocess.run([sys.executable, "-c", code, *args], check=True, env=env, capture_output=True, timeout=600)
        m = json.loads((out / "metrics.json").read_text())
        runs.append({k: v for k, v in m.items() if "seconds" not in k})
    assert len(runs[0]) > 50
    assert json.dumps(runs[0], sort_keys=True) == json.dumps(runs[1], sort_keys=True)
