"""The one model factory of the lab: every recipe that trains a model gets it (and its tokenizer) here.

* :func:`preset_from` — the size preset a ``model`` config section names (``model.size``), with any of
  ``hidden`` / ``layers`` / ``heads`` / ``intermediate`` overridden;
* :func:`lab_tokenizer` — the run's BPE tokenizer, saved in ``<out>/model`` (reloaded on a resumed run);
* :func:`lab_model` — a random-init Llama-style model of a section, a preset name or a ``Preset``, on a
  device (``"auto"``: a GPU when there is one);
* :func:`make_model` — (model, tokenizer): ``model.init`` loaded when set, else the two above;
* :func:`save_model_dir` — a trained model (and tokenizer) as a loadable folder, written atomically.

``lab.tiny.build_model`` is the primitive underneath (tests call it directly).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mnemoscope.lab.tiny import Preset, build_model, get_preset, load_or_train_tokenizer

OVERRIDES = ("hidden", "layers", "heads", "intermediate")


def preset_from(model_cfg: dict) -> Preset:
    """The size preset named by ``model.size`` with any of hidden/layers/heads/intermediate overridden."""
    p = get_preset(model_cfg["size"])
    changes = {k: model_cfg[k] for k in OVERRIDES if model_cfg.get(k) is not None}
    return dataclasses.replace(p, **changes)


def lab_tokenizer(out: Path, texts: list[str], cfg: dict):
    """The run's tokenizer: saved in ``out/model`` (a resumed run) or trained on ``texts``
    (vocabulary ``model.vocab_size``)."""
    return load_or_train_tokenizer(Path(out) / "model", texts, cfg["model"]["vocab_size"])


def lab_model(spec: dict | str | Preset, tokenizer, *, seed: int, device=None):
    """A random-init model (initialised under ``seed``) matching ``tokenizer``.

    ``spec``: a ``model`` config section (:func:`preset_from`), a preset name or a ``Preset``.
    ``device``: where to put it — a device name (``"auto"`` resolves through
    ``engine.loading.resolve_device``) or a ``torch.device``; None leaves it on the CPU.
    """
    preset = preset_from(spec) if isinstance(spec, dict) else spec
    model = build_model(preset, tokenizer, seed=seed)
    if device is None:
        return model
    from mnemoscope.engine.loading import resolve_device

    return model.to(resolve_device(device) if isinstance(device, str) else device)


def make_model(cfg: dict, texts: list[str], out: Path):
    """(model, tokenizer) from the ``model`` section, on ``model.device`` (auto: a GPU when there is one).

    ``model.init`` set: load that local directory or hub id (``engine.loading.load_model``, float32) and
    use its tokenizer. Otherwise: a BPE tokenizer trained on ``texts`` (saved in ``out/model``) and a
    random-init model of the size preset with the section's overrides, initialised under ``seed``.
    """
    m = cfg["model"]
    if m.get("init"):
        from mnemoscope.engine.loading import load_model

        loaded = load_model(m["init"], dtype="float32", device=m["device"])
        return loaded.model, loaded.tokenizer
    tokenizer = lab_tokenizer(out, texts, cfg)
    return lab_model(m, tokenizer, seed=cfg["seed"], device=m["device"]), tokenizer


def save_model_dir(model, directory: Path, tokenizer=None) -> Path:
    """``model`` (and ``tokenizer``) saved into ``directory`` through a temporary folder, ``config.json``
    moved in last: a reader (or a crash) never finds a half-written model."""
    from mnemoscope.files import atomic_files

    with atomic_files(Path(directory), last="config.json") as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(directory)
