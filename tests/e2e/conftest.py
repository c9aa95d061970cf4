"""One `dvc repro` on a copy of the repository (tiny params), shared by every end-to-end test of the package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.dvc_run import TINY, git, merge, run_dvc


@pytest.fixture(scope="package")
def clone(project_root: Path, tmp_path_factory) -> Path:
    """The tracked files only (a fresh clone), with the tiny params, as a git repo of its own on branch main."""
    dest = tmp_path_factory.mktemp("clone") / "valueflow"
    # tracked files only (as committed or staged), so a file that was never added fails here as it would in a clone
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=project_root,
                             check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        src = project_root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # a lock from the project's own params is not this copy's: the tiny run writes its own
    (dest / "dvc.lock").unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    merge(params, TINY)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "clone", cwd=dest)
    return dest


@pytest.fixture(scope="package")
def repro(clone: Path) -> str:
    return run_dvc("repro", cwd=clone).stdout
