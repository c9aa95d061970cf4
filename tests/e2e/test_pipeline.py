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
TINY = {
    "train_hives": {"projection": {"steps": 50}},
    "eval_hives": {"check_texts": 40},
    "steer": {"max_queries": 3},
    "train_judge": {"steps": 30, "batch_size": 32},
    "eval_evaluator": {"judges": ["embedding", "cross"], "sampling": ["bucket", "adaptive"], "repeats": 2},
}


def _merge(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        base[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def clone(project_root: Path, tmp_path_factory) -> Path:
    """The tracked files only (a fresh clone), with the tiny params, as a git repo of its own."""
    dest = tmp_path_factory.mktemp("clone") / "valueflow"
    # tracked files only (as committed or staged), so a file that was never added fails here as it would in a clone
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached"], cwd=project_root,
                             check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, tracked):
        src = project_root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    _merge(params, TINY)
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
    assert len(texts) >= 32 * 60 and texts["value"].nunique() == 32
    metrics = json.loads((clone / "metrics" / "ingest.json").read_text())
    assert metrics["texts"] == len(texts) and metrics["rejected"] == 0


def test_repro_builds_a_loadable_vidb_release(clone, repro):
    from datasets import load_dataset

    texts = pd.read_parquet(clone / "data" / "texts.parquet")
    full = load_dataset(str(clone / "release" / "vidb"), "full")
    assert sum(full.num_rows.values()) == len(texts)
    assert set(full) == {"train", "validation", "test"}
    assert full["train"].features["intensity"].dtype in ("float32", "float64")
    card = (clone / "release" / "vidb" / "README.md").read_text()
    assert "configs:" in card and "care-harm" in card


def test_repro_trains_and_exports_hives(clone, repro):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(clone / "release" / "hives"), device="cpu")
    assert model.encode(["I kept my promise to my sister."]).shape == (1, 384)
    assert (clone / "release" / "hives" / "taxonomy.json").exists()
    metrics = json.loads((clone / "metrics" / "hives.json").read_text())
    assert {"hives", "base"} <= set(metrics)


def test_repro_trains_the_judge_and_measures_it_beside_the_others(clone, repro):
    from sentence_transformers import CrossEncoder

    judge = CrossEncoder(str(clone / "release" / "judge"), device="cpu")
    assert judge.predict([("benevolence", "I kept my promise to my sister.")]).shape == (1,)
    assert (clone / "release" / "judge" / "vidb_calibration.json").exists()
    evaluator = json.loads((clone / "metrics" / "evaluator.json").read_text())
    assert {"embedding", "cross"} <= set(evaluator["judges"])
    assert evaluator["judges"]["cross"]["rating"]["pairwise_accuracy"] is not None


def test_repro_measures_the_evaluator_and_the_steering_controls(clone, repro):
    evaluator = json.loads((clone / "metrics" / "evaluator.json").read_text())
    assert evaluator["judges"]
    steering = json.loads((clone / "metrics" / "steering.json").read_text())
    # held out: the oracle answers with VIDB test texts, scored by the cross judge trained on the train split only
    assert steering["judge"].startswith("cross:")
    oracle, null = steering["models"]["oracle"], steering["models"]["null"]
    assert oracle["median_monotonicity"] >= 0.4 and oracle["median_slope"] >= 1.0  # moderate or better (a 30-step judge)
    assert abs(null["median_slope"]) < 0.5
    for figure in ("dose_response.png", "composition_arrows.png", "composition_heatmap.png"):
        assert (clone / "plots" / "steering" / figure).stat().st_size > 10_000


def test_repro_publishes_a_dry_run_receipt(clone, repro):
    receipt = json.loads((clone / "release" / "receipt.json").read_text())
    assert receipt["mode"] == "dry-run" and receipt["tag"].startswith("v")
    assert {"vidb", "hives", "judge"} <= set(receipt["artifacts"])


def test_second_repro_does_nothing(clone, repro):
    out = _dvc("repro", cwd=clone)
    assert "Running stage" not in out
    assert "up to date" in out
