"""The tiny params and the git and dvc calls the end-to-end tests make on their copies of the repository."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Smaller than the defaults so the whole pipeline runs in a few minutes on two cores; keys not named keep
# their params.yaml value, so the test follows the real pipeline.
TINY = {
    "train_hives": {"projection": {"steps": 50, "encoder_epochs": 1}},
    "eval_hives": {"check_texts": 40},
    "steer": {"max_queries": 3},
    # the judge on the small encoder: all-mpnet-base-v2 (the default) would embed the seed corpus three times over
    "train_judge": {"base_model": "all-MiniLM-L6-v2"},
    "eval_evaluator": {"judges": ["embedding", "learned"], "sampling": ["bucket", "adaptive"], "repeats": 2},
}


def merge(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        base[key] = merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "user.email=ci@valueflow", "-c", "user.name=ci", *args],
                          cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def run_dvc(*args: str, cwd: Path, home: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``dvc`` in ``cwd``, its stages running that copy's code; ``home`` stands in for ~ (the default remote)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(cwd)}
    if home is not None:
        env["HOME"] = str(home)
    done = subprocess.run(["dvc", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done
