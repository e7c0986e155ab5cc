"""Canaries: valid text that round-trips through the tokenizer, unique, at the asked doses."""

from __future__ import annotations

from mnemoscope.probes.canaries import make_canaries, text_tokens


def test_random_token_canaries_are_valid_text_that_round_trips(tokenizer):
    canaries = make_canaries(8, (0, 1, 4), kinds=("random_tokens",), random_tokens=12, tokenizer=tokenizer, seed=3)
    assert len(canaries) == 24 and len({c.text for c in canaries}) == 24
    for c in canaries:
        assert "\ufffd" not in c.text and c.text == c.text.strip() and c.text
        ids = tokenizer(c.text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == c.text


def test_byte_pieces_are_never_drawn(tokenizer):
    """A byte-level BPE vocabulary holds pieces of multi-byte characters; they decode to U+FFFD alone."""
    vocab = text_tokens(tokenizer)
    pieces = [i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])]
    assert pieces and not set(pieces) & set(vocab)
    assert not set(tokenizer.all_special_ids) & set(vocab)


def test_doses_and_controls(tokenizer):
    canaries = make_canaries(2, (0, 16), kinds=("passphrase", "random_tokens"), n_controls=3, tokenizer=tokenizer)
    by = {(c.kind, c.dose): 0 for c in canaries}
    for c in canaries:
        by[(c.kind, c.dose)] += 1
    assert by == {("passphrase", 0): 3, ("passphrase", 16): 2, ("random_tokens", 0): 3, ("random_tokens", 16): 2}
