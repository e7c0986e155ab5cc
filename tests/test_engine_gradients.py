import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError

TEXT = "Alice Smith was born in Springfield in 1901."


def test_gradient_norms_match_hf_loss_backward(model, tokenizer):
    engine = Engine(model, tokenizer)
    assert "gradients" in engine.provides
    (g,) = engine.gradient_norms([TEXT], p=2.0)
    ids = torch.tensor([tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    loss = model(inputs_embeds=emb, labels=ids).loss  # HF: mean NLL of tokens 2..n, as without a BOS
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params + [emb])
    expected = [float(x.norm(2)) for x in grads[:-1]]
    assert g.nll == pytest.approx(loss.item(), rel=1e-5)
    np.testing.assert_allclose(g.param_norms, expected, rtol=1e-4)
    assert g.embed_norm == pytest.approx(float(grads[-1].norm(2)), rel=1e-4)
    assert all(p.grad is None for p in model.parameters())  # .grad untouched
    (ginf,) = engine.gradient_norms([TEXT])  # MIMIR's default p = ∞
    np.testing.assert_allclose(ginf.param_norms, [float(x.abs().max()) for x in grads[:-1]], rtol=1e-4)


def test_prompt_gradients_equal_embedding_gradient_times_table(model, tokenizer):
    engine = Engine(model, tokenizer)
    prompt, target = [5, 9, 11], [20, 21, 22, 23]
    grad, nll = engine.prompt_gradients(prompt, target)
    assert grad.shape == (3, model.get_input_embeddings().weight.shape[0])
    ids = torch.tensor([prompt + target])
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    labels = ids.clone()
    labels[0, :3] = -100
    loss = model(inputs_embeds=emb, labels=labels).loss
    (ge,) = torch.autograd.grad(loss, [emb])
    expected = (ge[0, :3] @ model.get_input_embeddings().weight.T).detach().numpy()
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    assert nll == pytest.approx(loss.item(), rel=1e-5)
    with pytest.raises(MnemoscopeError):
        engine.prompt_gradients([], target)
