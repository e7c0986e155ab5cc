"""The Python API (mnemoscope.run / audit / unlearn / compare): the README's notebook example as
written, in-memory models and texts, the callable module names, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import mnemoscope
from mnemoscope import api
from mnemoscope.cli import main
from mnemoscope.errors import MnemoscopeError

README = Path(__file__).resolve().parents[1] / "README.md"
MEMBERS = [f"The archive of village {i} keeps a ledger of every harvest since the old mill opened." for i in range(6)]
NONMEMBERS = [f"A traveller crossing valley {i} wrote that the river froze twice in one winter." for i in range(6)]


def test_the_readme_notebook_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    code = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 (the project's own README)
    lab, audit = scope["lab"], scope["audit"]
    assert isinstance(lab, mnemoscope.RunResult) and lab.path == Path("runs/nb-lab")
    assert lab.metrics == json.loads((tmp_path / "runs/nb-lab/metrics.json").read_text())
    assert set(lab.samples["samples"]["dose"]) == {0, 1, 64}
    # the audit of the in-memory model measures what the lab's own audit measured for the same texts
    canaries = lab.samples["samples"]
    by_text = canaries.set_index("text")["score/loss"]
    scored = audit.samples["samples"].set_index("text")["score/loss"]
    assert len(scored) == len(scope["members"]) + len(scope["nonmembers"]) and (scored - by_text.loc[scored.index]).abs().max() < 1e-5
    assert audit.metrics["mia/loss/auc"] > 0.9  # dose-64 canaries against held-out ones
    assert audit.report().is_file() and audit.manifest["model"] == "in-memory LlamaForCausalLM"
    table = scope["mnemoscope"].compare(lab, audit, metrics=["mia/loss/auc*"]).values
    assert len(table) == 2 and "mia/loss/auc" in table.columns
    assert "mia/loss/auc" in capsys.readouterr().out


def test_an_in_memory_audit_equals_the_same_model_from_its_folder(saved_model_dir, tmp_path):
    from mnemoscope.engine import load_model

    loaded = load_model(str(saved_model_dir))
    mem = mnemoscope.audit(loaded.model, MEMBERS, NONMEMBERS, tokenizer=loaded.tokenizer, out=tmp_path / "mem",
                           n_boot=50, **{"audit.extraction": False})
    disk = mnemoscope.audit(str(saved_model_dir), MEMBERS, NONMEMBERS, out=tmp_path / "disk", n_boot=50,
                            audit={"extraction": False})
    a, b = mem.samples["samples"], disk.samples["samples"]
    pd.testing.assert_frame_equal(a.drop(columns=[c for c in a if a[c].dtype == object]),
                                  b.drop(columns=[c for c in b if b[c].dtype == object]))
    assert {k: v for k, v in mem.metrics.items()} == {k: v for k, v in disk.metrics.items()}
    # the texts were written once, content-addressed, beside the run (a rerun resumes on the same file)
    written = sorted(p.name for p in (tmp_path / "mem-inputs").iterdir())
    assert len(written) == 2 and all(re.fullmatch(r"(members|nonmembers)-[0-9a-f]{16}\.jsonl", n) for n in written)
    assert mem.config["data"]["members"].endswith(written[0])


def test_unlearn_from_memory_and_the_callable_package(saved_model_dir, tmp_path):
    from mnemoscope.engine import load_model
    from mnemoscope.unlearn.methods import METHODS

    assert "ga" in METHODS and callable(mnemoscope.unlearn) and callable(mnemoscope.compare)
    assert mnemoscope.unlearn.methods.METHODS is METHODS  # still the package
    loaded = load_model(str(saved_model_dir))
    res = mnemoscope.unlearn(loaded.model, MEMBERS, NONMEMBERS, method="ga", tokenizer=loaded.tokenizer,
                             out=tmp_path / "u", steps=2, eval_every=1, lr=1e-3, device="cpu",
                             eval={"verbmem_tokens": 48, "knowmem_tokens": 12})
    assert res.metrics["unlearn/ga/steps_run"] == 2
    saved = Path(res.config["model"]["name"])
    assert saved.parent == tmp_path / "u-inputs" and (saved / "model.safetensors").is_file()


def test_settings_nested_and_dotted_are_one_override():
    assert api.settings_to_overrides({"train": {"steps": 5, "lr": 0.1}, "audit.k": 0.2}) == \
        {"train.steps": 5, "train.lr": 0.1, "audit.k": 0.2}


def test_bad_input_is_a_clear_error(saved_model_dir, tmp_path):
    from mnemoscope.engine import load_model

    loaded = load_model(str(saved_model_dir))
    with pytest.raises(MnemoscopeError, match="needs its tokenizer"):
        mnemoscope.audit(loaded.model, MEMBERS, NONMEMBERS, out=tmp_path / "a")
    with pytest.raises(MnemoscopeError, match="members: give a file path or a list of strings"):
        mnemoscope.audit(str(saved_model_dir), [1, 2], NONMEMBERS, out=tmp_path / "b")
    with pytest.raises(MnemoscopeError, match="hf backend"):
        mnemoscope.audit(loaded.model, MEMBERS, NONMEMBERS, tokenizer=loaded.tokenizer, out=tmp_path / "c",
                         workers=2)
    with pytest.raises(MnemoscopeError, match="unknown recipe"):
        mnemoscope.run("quickstrat")
    assert not (tmp_path / "c").exists()


def test_the_cli_is_the_api(saved_model_dir, tmp_path, monkeypatch):
    calls = []
    real = api.audit
    monkeypatch.setattr(api, "audit", lambda **kw: calls.append(kw) or real(**kw))
    members, nonmembers = tmp_path / "m.txt", tmp_path / "n.txt"
    members.write_text("\n".join(MEMBERS))
    nonmembers.write_text("\n".join(NONMEMBERS))
    assert main(["audit", "--model", str(saved_model_dir), "--members", str(members), "--nonmembers",
                 str(nonmembers), "--out", str(tmp_path / "cli"), "--no-extraction", "--n-boot", "50",
                 "--set", "audit.n_boot=60"]) == 0
    assert calls and calls[0]["audit.n_boot"] == 60 and calls[0]["n_boot"] == 50
    assert mnemoscope.RunResult(tmp_path / "cli").config["audit"]["n_boot"] == 60  # --set comes last


def test_contamination_from_memory_equals_the_command(saved_model_dir, corpus, tmp_path):
    """mnemoscope.contamination on an in-memory model, benchmark items and corpus texts gives the
    numbers the command gives on the same files."""
    from mnemoscope.engine import load_model

    items = [{"id": f"q{i}", "question": corpus[i][:120], "choices": ["red", "green", "blue", "gold"],
              "answer": i % 4, **({"split": "test", "dataset": "toy"} if i % 2 else {})} for i in range(8)]
    texts = corpus[:4] + corpus[100:120]
    small = {"contamination": {"order_shards": 2, "order_permutations": 3, "max_new_tokens": 4}, "audit.n_boot": 20}
    loaded = load_model(str(saved_model_dir))
    mem = mnemoscope.contamination(loaded.model, items, corpus=texts, tokenizer=loaded.tokenizer,
                                   out=tmp_path / "mem", **small)
    bench, corp = tmp_path / "bench.jsonl", tmp_path / "corpus.jsonl"
    bench.write_text("".join(json.dumps(i) + "\n" for i in items))
    corp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    args = ["contamination", "--model", str(saved_model_dir), "--benchmark", str(bench), "--corpus", str(corp),
            "--out", str(tmp_path / "cli"), "--set", "contamination.order_shards=2", "--set",
            "contamination.order_permutations=3", "--set", "contamination.max_new_tokens=4", "--set", "audit.n_boot=20"]
    assert main(args) == 0
    cli = mnemoscope.RunResult(tmp_path / "cli")
    timing = {k for k in mem.metrics if k.endswith("seconds")}
    assert mem.metrics["contam/overlap/rate"] == 0.5 and timing
    assert {k: v for k, v in mem.metrics.items() if k not in timing} == \
        {k: v for k, v in cli.metrics.items() if k not in timing}
    with pytest.raises(MnemoscopeError, match="benchmark: give a file path or a list of dicts"):
        mnemoscope.contamination(str(saved_model_dir), ["not a dict"], out=tmp_path / "bad")
