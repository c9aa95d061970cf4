"""`dvc repro` on a copy of the repository, as a maintainer runs it on a fresh clone (tiny params)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

# Smaller than the defaults so the whole pipeline runs in a few minutes on two cores; keys not named keep
# their params.yaml value, so the test follows the real pipeline.
TINY = {}


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def clone(project_root: Path, tmp_path_factory) -> Path:
    """The tracked files only (a fresh clone), with the tiny params, as a git repo of its own."""
    dest = tmp_path_factory.mktemp("clone") / "valueflow"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=project_root,
                             check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        src = project_root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, overrides in TINY.items():
        params[section].update(overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git("init", "-q", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("-c", "user.email=ci@valueflow", "-c", "user.name=ci", "commit", "-qm", "clone", cwd=dest)
    return dest


def _dvc(*args: str, cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


@pytest.fixture(scope="module")
def repro(clone: Path) -> str:
    return _dvc("repro", cwd=clone)


def test_repro_ingests_the_seed_corpus(clone, repro):
    texts = pd.read_parquet(clone / "data" / "texts.parquet")
    assert len(texts) >= 384 and texts["value"].nunique() == 32
    metrics = json.loads((clone / "metrics" / "ingest.json").read_text())
    assert metrics["texts"] == len(texts) and metrics["rejected"] == 0


def test_second_repro_does_nothing(clone, repro):
    out = _dvc("repro", cwd=clone)
    assert "Running stage" not in out
    assert "up to date" in out
