import numpy as np
import pytest
import torch

from mnemoscope.engine import Engine
from mnemoscope.errors import MnemoscopeError

TEXT = "Alice Smith was born in Springfield in 1901."


def _backward_norms(model, ids, p):
    """MIMIR's procedure written out: zero_grad, loss.backward(), the p-norm of every .grad."""
    model.zero_grad()
    emb = model.get_input_embeddings()(ids)
    emb.retain_grad()
    loss = model(inputs_embeds=emb, labels=ids).loss  # HF: mean NLL of tokens 2..n, as without a BOS
    loss.backward()
    norms = [float(q.grad.norm(p)) for q in model.parameters() if q.grad is not None]
    embed = float(emb.grad.norm(p))
    model.zero_grad(set_to_none=True)
    return norms, embed, loss.item()


def _neox(tokenizer):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, tie_word_embeddings=False)
    return GPTNeoXForCausalLM(cfg).eval()


@pytest.mark.parametrize("which", ["tied", "untied"])
def test_gradient_norms_match_plain_loss_backward(model, tokenizer, which):
    """Every parameter's gradient as ``loss.backward()`` leaves it, the embedding table's input side
    included (it was detached: an untied model lost the table, a tied one kept only the head's part)."""
    net = model if which == "tied" else _neox(tokenizer)
    table = net.get_input_embeddings().weight
    tied = any(q is table for q in [net.get_output_embeddings().weight])
    assert tied == (which == "tied")
    engine = Engine(net, tokenizer)
    assert "gradients" in engine.provides
    ids = torch.tensor([tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    for p in (2.0, float("inf")):
        (g,) = engine.gradient_norms([TEXT], p=p)
        assert all(q.grad is None for q in net.parameters())  # .grad untouched
        expected, embed, loss = _backward_norms(net, ids, p)
        assert g.nll == pytest.approx(loss, rel=1e-5)
        assert len(g.param_norms) == len(expected)
        np.testing.assert_allclose(g.param_norms, expected, rtol=1e-4)
        assert g.embed_norm == pytest.approx(embed, rel=1e-4)
    if which == "untied":  # the table's gradient is its input side only: nonzero on the text's rows
        (g,) = engine.gradient_norms([TEXT], p=1.0)
        names = [n for n, q in net.named_parameters() if q.requires_grad]
        assert g.param_norms[names.index("gpt_neox.embed_in.weight")] > 0


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
