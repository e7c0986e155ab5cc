"""Provenance: what a run read and which code ran it, as hashes a later comparison can check.

``collect(cfg)`` returns the ``provenance`` block of ``manifest.json``::

    {"config_sha256": ...,                      # the resolved config, canonical JSON
     "inputs": {"data.members": {"role": "data", "kind": "file", "path": ..., "bytes": ..., "sha256": ...},
                "model.name": {"role": "model", "kind": "directory", "path": ..., "sha256": ..., "files": {...}},
                "membership.ref_model": {"role": "model", "kind": "hub", "id": ..., "revision": <commit>, ...}},
     "packages": {"torch": "2.13.0", ...},
     "git": {"revision": ..., "dirty": false}}

Inputs are found in the config itself: every string value shaped like a path (or under a model
key) that names an existing file or directory is hashed (SHA-256 of the bytes; a directory: of its files' names and hashes). A model
given as a hub id is identified by the commit of its local cache snapshot (and the SHA-256 the
hub gives its large files, read from the cache's blob names) rather than by re-reading the
weights. Models a recipe trains from scratch are outputs, identified by the config hash.

Recipes do not call this module: ``rundir.Run`` hashes the run's inputs when the run starts
(``hash_inputs``) and adds the whole block (``collect``) to the manifest when it finishes.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from importlib import metadata
from pathlib import Path

CHUNK = 1 << 20
# Config keys naming a model: their inputs are compared as "model", the rest as "data".
MODEL_KEYS = ("model.name", "model.init", "membership.ref_model", "data.retrained")
PACKAGES = ("mnemoscope", "torch", "transformers", "tokenizers", "safetensors", "accelerate", "numpy", "scipy",
            "scikit-learn", "pandas", "pyarrow", "rouge-score", "peft")
_SHA256 = re.compile(r"[0-9a-f]{64}")



def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_directory(path: str | Path) -> tuple[str, dict[str, str]]:
    """(digest, {file name: SHA-256}) of the regular, non-hidden files directly in ``path``.

    The digest hashes the sorted ``name<TAB>sha256`` lines, so renaming a file changes it too.
    Sub-folders are not read: a ``save_pretrained`` export keeps everything at the top level.
    """
    path = Path(path)
    files = {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")}
    lines = "".join(f"{name}\t{digest}\n" for name, digest in files.items())
    return hashlib.sha256(lines.encode("utf-8")).hexdigest(), files


def config_sha256(cfg: dict) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys, no spaces; NaN/inf as null)."""
    from mnemoscope.files import json_safe

    text = json.dumps(json_safe(cfg), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def hub_identity(repo_id: str, revision: str | None = None) -> dict | None:
    """The cached snapshot of a hub model: commit and the hub's SHA-256 of each large file.

    None when huggingface_hub is absent or the model is not in the local cache (nothing is
    downloaded here)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 (an id the hub library rejects is simply not identified)
        return None
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    files = {}
    for p in sorted(snapshot.iterdir()):
        blob = p.resolve().name if p.is_symlink() else ""
        if _SHA256.fullmatch(blob):  # large (LFS) files are stored under their SHA-256
            files[p.name] = blob
    return {"role": "model", "kind": "hub", "id": repo_id, "revision": snapshot.name, "files": files}


def describe_input(key: str, value: str, revision: str | None = None) -> dict | None:
    """The provenance entry of one config value, or None when it names nothing on disk or in the cache."""
    role = "model" if key in MODEL_KEYS else "data"
    try:
        path = Path(value).expanduser()
        if path.is_file():
            return {"role": role, "kind": "file", "path": str(path.resolve()), "bytes": path.stat().st_size,
                    "sha256": sha256_file(path)}
        if path.is_dir():
            digest, files = sha256_directory(path)
            role = "model" if (path / "config.json").is_file() else role
            return {"role": role, "kind": "directory", "path": str(path.resolve()), "sha256": digest, "files": files}
    except ValueError:  # not a possible path (e.g. a NUL byte): not a file
        return None
    except OSError as exc:  # unreadable: say so rather than fail the run at its end
        return {"role": role, "kind": "unreadable", "path": value, "sha256": None, "error": str(exc)}
    if key in MODEL_KEYS:
        return hub_identity(value, revision)
    return None


def _looks_like_path(key: str, value: str) -> bool:
    """Model keys, and values shaped like paths (a separator, ``~``/``.`` first, or a file suffix):
    a plain word such as ``train`` or ``auto`` is a setting even when a folder of that name exists."""
    return key in MODEL_KEYS or "/" in value or "\\" in value or value.startswith(("~", ".")) or \
        bool(Path(value).suffix)


def hash_inputs(cfg: dict) -> dict[str, dict]:
    """Every config value naming a file, a directory or a cached hub model → its provenance entry."""
    flat = _flatten(cfg)
    revision = flat.get("model.revision") if isinstance(flat.get("model.revision"), str) else None
    inputs = {}
    for key, value in flat.items():
        if isinstance(value, str) and value.strip() and _looks_like_path(key, value):
            entry = describe_input(key, value, revision if key == "model.name" else None)
            if entry is not None:
                inputs[key] = entry
    return inputs


def package_versions() -> dict[str, str]:
    """Installed versions of mnemoscope and the packages its numbers depend on (absent ones left out)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_state() -> dict:
    """``{"revision", "dirty"}`` of the checkout mnemoscope runs from (None when it is not a git checkout)."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    revision = git("rev-parse", "HEAD")
    if not revision:
        return {"revision": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision.strip(), "dirty": None if status is None else bool(status.strip())}


def collect(cfg: dict | None, inputs: dict | None = None) -> dict:
    """The manifest's provenance block for a run with resolved config ``cfg`` (inputs hashed now
    unless given)."""
    block: dict = {}
    if cfg is not None:
        block["config_sha256"] = config_sha256(cfg)
        block["inputs"] = hash_inputs(cfg) if inputs is None else inputs
    block["packages"] = package_versions()
    block["git"] = git_state()
    return block
