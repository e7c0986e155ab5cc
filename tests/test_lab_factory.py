"""The one model factory (lab.factory): every recipe's model comes from it, and it is the model the
primitive ``build_model`` makes from the section's preset — same weights for the same seed."""

from __future__ import annotations

import pytest
import torch

from mnemoscope.errors import MnemoscopeError
from mnemoscope.lab.factory import lab_model, lab_tokenizer, make_model, preset_from
from mnemoscope.lab.tiny import PRESETS, Preset, build_model

SECTION = {"size": "micro", "hidden": 32, "layers": 1, "heads": 2, "intermediate": None, "vocab_size": 600,
           "device": "cpu"}


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_preset_from_applies_only_the_overrides_that_are_set():
    p = preset_from(SECTION)
    assert p == Preset(hidden=32, layers=1, heads=2, intermediate=PRESETS["micro"].intermediate,
                       vocab=PRESETS["micro"].vocab, context=PRESETS["micro"].context)
    assert preset_from({"size": "tiny"}) == PRESETS["tiny"]
    with pytest.raises(MnemoscopeError, match="unknown model size 'huge'"):
        preset_from({"size": "huge"})


def test_lab_model_is_build_model_of_the_section_preset(tokenizer):
    made = lab_model(SECTION, tokenizer, seed=4, device="cpu")
    assert _same_weights(made, build_model(preset_from(SECTION), tokenizer, seed=4))
    assert made.config.hidden_size == 32 and made.config.num_hidden_layers == 1
    assert not _same_weights(made, lab_model(SECTION, tokenizer, seed=5))


def test_lab_model_takes_a_preset_name_or_a_preset_and_a_device(tokenizer):
    p = Preset(hidden=32, layers=1, heads=2, intermediate=64, vocab=600, context=64)
    assert _same_weights(lab_model(p, tokenizer, seed=1), build_model(p, tokenizer, seed=1))
    by_name = lab_model("micro", tokenizer, seed=2, device=torch.device("cpu"))
    assert _same_weights(by_name, build_model("micro", tokenizer, seed=2))
    assert next(by_name.parameters()).device.type == "cpu"
    with pytest.raises(MnemoscopeError, match="unknown device"):
        lab_model(p, tokenizer, seed=1, device="nonsense")


def test_make_model_trains_and_saves_a_tokenizer_and_reuses_it(tmp_path, corpus):
    cfg = {"seed": 3, "model": {**SECTION, "init": None}}
    model, tok = make_model(cfg, corpus[:50], tmp_path)
    assert (tmp_path / "model" / "tokenizer.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # saved through a temporary folder, none left
    assert _same_weights(model, build_model(preset_from(SECTION), tok, seed=3))
    again = lab_tokenizer(tmp_path, ["different text entirely"], cfg)  # a resumed run: the saved one
    assert again.get_vocab() == tok.get_vocab()


def test_save_model_dir_is_loadable_and_leaves_nothing_half_written(tmp_path, model, tokenizer, monkeypatch):
    from mnemoscope.engine.loading import load_model
    from mnemoscope.lab.factory import save_model_dir

    out = save_model_dir(model, tmp_path / "m", tokenizer)
    loaded = load_model(str(out), dtype="float32", device="cpu")
    assert sum(p.numel() for p in loaded.model.parameters()) == sum(p.numel() for p in model.parameters())

    def crash(self, folder, **_):
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save_pretrained", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model_dir(model, tmp_path / "broken", tokenizer)
    assert not (tmp_path / "broken" / "config.json").exists()
    assert not (tmp_path / "broken" / "model.safetensors").exists()  # nothing moved in
    assert not list(tmp_path.glob(".broken.*"))  # the temporary folder is gone
