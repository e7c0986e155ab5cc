"""The tiny-model lab: a byte-level BPE tokenizer trained on the run's corpus and a small
Llama-style model (random init) from a size preset. Both are saved with ``save_pretrained`` so a
tiny model and a real hub model share every later code path.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnemoscope.errors import MnemoscopeError
from mnemoscope.files import atomic_files

EOS = "<|endoftext|>"
PAD = "<|pad|>"
BOS = "<|bos|>"


@dataclass(frozen=True)
class Preset:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    context: int


# Parameter counts (tied embeddings) are printed by `count_parameters`; `tiny` is the default.
PRESETS = {
    "micro": Preset(hidden=64, layers=2, heads=4, intermediate=172, vocab=1024, context=256),  # ≈ 0.2 M, tests
    "tiny": Preset(hidden=256, layers=6, heads=4, intermediate=704, vocab=8192, context=512),  # ≈ 5–7 M
    "small": Preset(hidden=512, layers=8, heads=8, intermediate=1376, vocab=16384, context=1024),  # ≈ 33 M
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise MnemoscopeError(f"unknown model size '{name}': use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def train_tokenizer(texts: list[str], vocab_size: int, *, add_bos: bool = False):
    """Byte-level BPE trained on ``texts`` → a ``PreTrainedTokenizerFast``.

    Specials: EOS (documents end with it), PAD, BOS. With ``add_bos`` the tokenizer prepends BOS
    to every encoding (Llama-style); without it, it behaves like GPT-2/Pythia (no BOS).
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise MnemoscopeError("cannot train a tokenizer on an empty corpus")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if add_bos:
        bos_id = tok.token_to_id(BOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=BOS, model_max_length=10**9
    )


def build_model(preset: str | Preset, tokenizer, *, seed: int = 0):
    """A randomly initialised LlamaForCausalLM sized by the preset, matching the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    p = get_preset(preset) if isinstance(preset, str) else preset
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden,
        intermediate_size=p.intermediate,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.heads,
        max_position_embeddings=p.context,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def load_or_train_tokenizer(directory, texts: list[str], vocab_size: int):
    """The tokenizer saved in ``directory`` (a resumed run), else one trained on ``texts`` and saved there."""
    from pathlib import Path

    from transformers import AutoTokenizer

    directory = Path(directory)
    if (directory / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(directory)
    tok = train_tokenizer(texts, vocab_size)
    with atomic_files(directory, last="tokenizer.json") as tmp:  # tokenizer.json marks a complete save
        tok.save_pretrained(tmp)
    return tok
