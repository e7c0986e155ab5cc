"""Load a causal LM and its tokenizer from a local directory or a hub id, safely.

Safe by default: ``trust_remote_code`` is off and only safetensors weights are loaded unless the
user passes ``allow_pickle=True``. Every failure the user can fix is a one-line MnemoscopeError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from mnemoscope.errors import MnemoscopeError

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class LoadedModel:
    """A model ready for the engine: module in eval mode, tokenizer with a pad token."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu. 'cuda' without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MnemoscopeError(f"device '{device}' requested but no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise MnemoscopeError(f"unknown device '{device}': use cpu, cuda, cuda:N or auto") from exc


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """'auto' → bfloat16 on a GPU that supports it, float32 otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPES:
        raise MnemoscopeError(f"unknown dtype '{dtype}': use one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def _looks_like_path(name: str) -> bool:
    """A hub id is 'name' or 'org/name'; anything else that is not on disk is a missing path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/")


def check_local_weights(path: Path, allow_pickle: bool) -> None:
    """Refuse a directory with no weights, or with only pickle weights unless allowed."""
    files = [p.name for p in path.iterdir()] if path.is_dir() else []
    if not (path / "config.json").exists():
        raise MnemoscopeError(
            f"model directory '{path}' has no config.json: save the model with save_pretrained() or pass a hub id"
        )
    has_safetensors = any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files)
    has_pickle = any(f.endswith(_PICKLE_SUFFIXES) for f in files)
    if has_safetensors:
        return
    if has_pickle and not allow_pickle:
        raise MnemoscopeError(
            f"model directory '{path}' holds only pickle weights (.bin/.pt), which can run arbitrary code: "
            "convert them to safetensors or pass --allow-pickle if you trust the source"
        )
    if not has_pickle:
        raise MnemoscopeError(f"model directory '{path}' has no weight files (*.safetensors)")


def check_hub_id(name: str, revision: str | None, offline: bool) -> None:
    """A hub id must be in the local cache, or the hub must answer for it — checked with one quick
    request, so an unreachable hub or a mistyped path fails at once instead of after retries."""
    import huggingface_hub

    if huggingface_hub.try_to_load_from_cache(name, "config.json", revision=revision) is not None:
        return
    where = f"'{name}' is no local directory and no hub model in the local cache"
    if offline:
        raise MnemoscopeError(f"could not load model: {where} (HF_HUB_OFFLINE=1); download it first "
                              "(huggingface-cli download) or pass the local directory")
    try:
        huggingface_hub.model_info(name, revision=revision, timeout=10)
    except Exception as exc:  # network errors, unknown repos, gated repos: one line either way
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise MnemoscopeError(f"could not load model: {where}, and the hub did not provide it ({reason}); "
                              "check the path, or download the model and pass its directory") from None


def _is_safetensors_error(exc: BaseException) -> bool:
    """True for safetensors' deserialisation error (a bad header, a file cut short)."""
    try:
        from safetensors import SafetensorError
    except ImportError:  # older safetensors: the class lives in the Rust module only
        return type(exc).__name__ == "SafetensorError"
    return isinstance(exc, SafetensorError)


def ensure_pad_token(tokenizer) -> None:
    """Give a tokenizer without a pad token one (its EOS, else a new '<|pad|>'). Pads are masked out."""
    if tokenizer.pad_token_id is not None:
        return
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    else:
        tokenizer.add_special_tokens({"pad_token": "<|pad|>"})


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_tokenizer(name_or_path: str, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        folder = Path(name_or_path)
        if folder.is_dir() and not any((folder / f).exists() for f in TOKENIZER_FILES):
            raise MnemoscopeError(
                f"{folder} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the model's tokenizer "
                f"next to its weights (tokenizer.save_pretrained('{folder}'))"
            ) from exc
        reason = " ".join(str(exc).split())
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        raise MnemoscopeError(f"could not load a tokenizer from '{name_or_path}': {reason}") from exc
    ensure_pad_token(tok)
    return tok


def load_model(
    name_or_path: str,
    *,
    dtype: str | torch.dtype = "auto",
    device: str = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a local directory or a hub id."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep stderr for our one-line errors
    name = str(name_or_path)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    local = Path(name).expanduser()
    if local.exists():
        check_local_weights(local, allow_pickle)
        name = str(local)
    elif _looks_like_path(name):
        raise MnemoscopeError(
            f"model path '{name}' does not exist: pass a directory written by save_pretrained() or a hub id"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not local.exists():
        check_hub_id(name, revision, offline)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name,
            local_files_only=offline,  # honoured at call time, not only when huggingface_hub is imported
            revision=revision,
            dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
        )
    except OSError as exc:
        hint = (
            "no such local directory and the hub could not provide it; download it first "
            "(huggingface-cli download) and pass the local directory"
            if not local.exists()
            else "check that the directory holds a complete save_pretrained() export"
        )
        raise MnemoscopeError(
            f"could not load model '{name}'{' (HF_HUB_OFFLINE=1)' if offline else ''}: {hint}"
        ) from exc
    except ValueError as exc:
        raise MnemoscopeError(f"could not load model '{name}': {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # a corrupt or truncated weights file (safetensors' own error type)
        if not _is_safetensors_error(exc):
            raise
        raise MnemoscopeError(
            f"could not load model '{name}': its safetensors weights are corrupt or truncated "
            f"({str(exc).splitlines()[0]}); save or download the model again"
        ) from exc
    tokenizer = load_tokenizer(name, revision=revision, trust_remote_code=trust_remote_code)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.to(dev)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, device=dev, dtype=torch_dtype)
