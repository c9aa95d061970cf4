"""params.yaml access: every stage reads its own section, so `dvc repro` reruns exactly what a change touches."""

from __future__ import annotations

from pathlib import Path

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: params file not found (run from the project root or pass --params)")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def stage_params(stage: str, path: str | Path = DEFAULT_PARAMS) -> dict:
    """One stage's section; a missing section is an error, since DVC tracks params by section."""
    params = load_params(path)
    if stage not in params:
        raise KeyError(f"{path}: no '{stage}' section")
    return params[stage] or {}
