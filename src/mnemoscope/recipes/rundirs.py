"""Open a run directory: create it, or resume it when it holds the same resolved config."""

from __future__ import annotations

from pathlib import Path

import yaml

from mnemoscope import provenance, rundir
from mnemoscope.errors import MnemoscopeError


def prepare_run_dir(out: Path, cfg: dict) -> Path:
    """Write ``config.yaml``; a directory with a different config is refused, never overwritten."""
    out = Path(out)
    config_file = out / "config.yaml"
    if config_file.exists():
        previous = yaml.safe_load(config_file.read_text())
        if previous != yaml.safe_load(yaml.safe_dump(rundir.json_safe(cfg), sort_keys=False)):
            raise MnemoscopeError(
                f"{out} holds a run with a different config: pass --out NEW_DIR, or delete {out} to start over"
            )
    elif out.exists() and any(out.iterdir()):
        raise MnemoscopeError(f"{out} exists and is not a mnemoscope run directory: pass --out NEW_DIR")
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_yaml(config_file, cfg)
    provenance.note_run(cfg)  # hash the inputs as the run starts; rundir.manifest records them
    return out
