"""Shared test set-up: one thread, no telemetry, the reference data folder, small fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
# no test downloads anything: the Hub is offline for every test but the loopback-Hub ones (tests/publish)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import pytest

from valueflow.io import PROJECT_ROOT, refdata_dir

try:  # torch is a dependency of the package; tests run single-threaded (two cores, busy machine)
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The shared real reference data; tests that need it are skipped with the reason when it is absent."""
    path = refdata_dir()
    if path is None:
        pytest.skip("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    return path


@pytest.fixture(scope="session")
def seed_dir(project_root: Path) -> Path:
    return project_root / "data" / "seed" / "texts"


@pytest.fixture(scope="session")
def seed_judge(tmp_path_factory, seed_dir: Path) -> Path:
    """A learned judge (MiniLM encoder, the offline default that keeps tests small) fitted on the seed corpus's
    train rows: a folder as ``valueflow train-judge`` writes it."""
    from evaluation.train_judge import JudgeTrainConfig, train_judge
    from tests.evaluation.conftest import vidb_rows, write_release

    root = tmp_path_factory.mktemp("seed_judge")
    write_release(root / "vidb", vidb_rows(seed_dir))
    cfg = JudgeTrainConfig(vidb=root / "vidb", out=Path("judge"), base_model="all-MiniLM-L6-v2", onnx=False,
                           root=root)
    train_judge(cfg, echo=lambda *_: None)
    return root / "judge"


@pytest.fixture(scope="session")
def check_lock(project_root: Path):
    """CI's stale-lock check, ``.ci/check_lock.py``, as a module (its folder is not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("check_lock", project_root / ".ci" / "check_lock.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_lock"] = module
    spec.loader.exec_module(module)
    return module
