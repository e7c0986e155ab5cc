"""Engine.generate (batched greedy, exact length) and model loading (safe defaults, clear errors)."""

from __future__ import annotations

import shutil

import pytest
import torch

from mnemoscope.engine import Engine, load_model
from mnemoscope.errors import MnemoscopeError

PROMPTS = [
    "Anna",
    "The museum in Lisbon keeps a collection of old",
    "In 1901, Anna joined",
    "Every spring the market",
    "x",
    "The town of Alder lies on the river and is known for its bridges and its",
]


def naive_greedy(model, ids: list[int], n: int) -> list[int]:
    """Reference: recompute the full forward pass for every new token, no cache, no padding."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([seq])).logits[0, -1]
            seq.append(int(logits.argmax()))
    return seq[len(ids) :]


@pytest.mark.parametrize("which", ["plain", "bos"])
def test_batched_greedy_equals_batch_one_and_naive(request, which):
    tok = request.getfixturevalue("tokenizer" if which == "plain" else "bos_tokenizer")
    model = request.getfixturevalue("model" if which == "plain" else "bos_model")
    n = 8
    batched = Engine(model, tok, max_batch_size=16).generate(PROMPTS, max_new_tokens=n, min_new_tokens=n)
    single = Engine(model, tok, max_batch_size=1).generate(PROMPTS, max_new_tokens=n, min_new_tokens=n)
    for prompt, b, s in zip(PROMPTS, batched, single):
        assert b.token_ids == s.token_ids
        assert len(b.token_ids) == n
        ids = ([tok.bos_token_id] if which == "bos" else []) + tok(prompt, add_special_tokens=False)["input_ids"]
        assert b.token_ids == naive_greedy(model, ids, n)
        assert b.prompt_tokens == len(ids)


def test_continuation_excludes_the_prompt(tokenizer, model):
    out = Engine(model, tokenizer).generate([[5, 6, 7, 8]], max_new_tokens=3, min_new_tokens=3)[0]
    assert len(out.token_ids) == 3
    assert out.text == tokenizer.decode(out.token_ids, skip_special_tokens=True)


def test_min_new_tokens_forces_length_past_eos(tokenizer):
    """A model that always predicts EOS still yields exactly n tokens when the length is forced."""
    from mnemoscope.lab.tiny import build_model

    from .conftest import MICRO

    model = build_model(MICRO, tokenizer, seed=3).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.get_input_embeddings().weight.zero_()
        # tied weights: bias the EOS row through the final norm's output direction instead
        model.lm_head.weight[tokenizer.eos_token_id] += 1.0
        model.model.norm.weight.fill_(1.0)
    engine = Engine(model, tokenizer)
    free = engine.generate(["Anna was"], max_new_tokens=6)[0]
    forced = engine.generate(["Anna was"], max_new_tokens=6, min_new_tokens=6)[0]
    assert len(forced.token_ids) == 6
    assert tokenizer.eos_token_id not in forced.token_ids
    assert free.token_ids == []  # unforced, the model stops at once


def test_bad_generation_arguments(tokenizer, model):
    engine = Engine(model, tokenizer)
    with pytest.raises(MnemoscopeError):
        engine.generate(["a"], max_new_tokens=0)
    with pytest.raises(MnemoscopeError):
        engine.generate([[]], max_new_tokens=2)


# ---------------------------------------------------------------- loading


def test_load_saved_model_round_trip(saved_model_dir, model, tokenizer):
    loaded = load_model(str(saved_model_dir), device="cpu", dtype="float32")
    assert loaded.device.type == "cpu"
    assert loaded.dtype == torch.float32
    texts = ["Anna was born in Lisbon.", "Every spring the market sells apples."]
    a = Engine.from_loaded(loaded).score(texts)
    b = Engine(model, tokenizer).score(texts)
    for x, y in zip(a, b):
        torch.testing.assert_close(torch.tensor(x.logprobs), torch.tensor(y.logprobs), atol=1e-5, rtol=0)


def test_missing_model_path_is_a_one_line_error(tmp_path):
    with pytest.raises(MnemoscopeError, match="does not exist") as err:
        load_model(str(tmp_path / "nope" / "model"))
    assert "\n" not in str(err.value)


def test_directory_without_config(tmp_path):
    with pytest.raises(MnemoscopeError, match="config.json"):
        load_model(str(tmp_path))


def test_pickle_only_weights_are_refused_unless_allowed(tmp_path, saved_model_dir, model):
    target = tmp_path / "pickled"
    shutil.copytree(saved_model_dir, target)
    (target / "model.safetensors").unlink()
    torch.save(model.state_dict(), target / "pytorch_model.bin")
    with pytest.raises(MnemoscopeError, match="pickle"):
        load_model(str(target), device="cpu")
    loaded = load_model(str(target), device="cpu", allow_pickle=True)
    assert loaded.model is not None


def test_directory_without_weights(tmp_path, saved_model_dir):
    target = tmp_path / "empty"
    shutil.copytree(saved_model_dir, target)
    (target / "model.safetensors").unlink()
    with pytest.raises(MnemoscopeError, match="no weight files"):
        load_model(str(target), device="cpu")


def test_unknown_dtype_and_device(saved_model_dir):
    with pytest.raises(MnemoscopeError, match="dtype"):
        load_model(str(saved_model_dir), dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(MnemoscopeError, match="CUDA"):
            load_model(str(saved_model_dir), device="cuda")


def test_offline_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MnemoscopeError, match="could not load model"):
        load_model("mnemoscope-test/does-not-exist", device="cpu")


def test_an_unreachable_hub_id_fails_at_once_with_one_line(monkeypatch):
    """No retries: one quick request to the hub (refused here), then a one-line error."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def refuse(name, **kwargs):
        calls.append((name, kwargs))
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", refuse)
    with pytest.raises(MnemoscopeError) as err:
        load_model("ref2/model", device="cpu")
    assert len(calls) == 1 and calls[0][1]["timeout"] == 10  # one bounded request, no retry loop
    msg = str(err.value)
    assert "'ref2/model' is no local directory and no hub model in the local cache" in msg and "\n" not in msg


@pytest.mark.parametrize("damage", ["truncated", "garbage_header", "empty"])
def test_corrupt_or_truncated_safetensors_is_a_one_line_error(tmp_path, saved_model_dir, damage):
    target = tmp_path / damage
    shutil.copytree(saved_model_dir, target)
    weights = target / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "garbage_header": b"\xff" * 64 + data[64:],
                         "empty": b""}[damage])
    with pytest.raises(MnemoscopeError, match="corrupt or truncated") as err:
        load_model(str(target), device="cpu")
    assert "\n" not in str(err.value) and str(target) in str(err.value)
