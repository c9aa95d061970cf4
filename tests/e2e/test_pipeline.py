"""`dvc repro` on a copy of the repository, as a maintainer runs it on a fresh clone (tiny params, conftest.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.e2e.dvc_run import run_dvc

pytestmark = pytest.mark.slow


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
    emb = model.encode(["I kept my promise to my sister."])
    assert emb.shape == (1, model.get_sentence_embedding_dimension())  # the projection's space, not the base's 384
    modules = json.loads((clone / "release" / "hives" / "modules.json").read_text())
    assert all(m["type"].startswith("sentence_transformers.") for m in modules)  # built-in modules only
    assert (clone / "release" / "hives" / "taxonomy.json").exists()
    metrics = json.loads((clone / "metrics" / "hives.json").read_text())
    assert {"hives", "base"} <= set(metrics)


def test_repro_trains_the_judge_and_measures_it_beside_the_others(clone, repro):
    from sentence_transformers import SentenceTransformer

    judge = SentenceTransformer(str(clone / "release" / "judge"), device="cpu")
    assert judge.encode(["I kept my promise to my sister."]).shape == (1, 32)  # one score per value
    assert (clone / "release" / "judge" / "vidb_calibration.json").exists()
    evaluator = json.loads((clone / "metrics" / "evaluator.json").read_text())
    assert {"embedding", "learned"} <= set(evaluator["judges"])
    assert evaluator["judges"]["learned"]["rating"]["pairwise_accuracy"] is not None


def test_repro_measures_the_evaluator_and_the_steering_controls(clone, repro):
    evaluator = json.loads((clone / "metrics" / "evaluator.json").read_text())
    assert evaluator["judges"]
    steering = json.loads((clone / "metrics" / "steering.json").read_text())
    # held out: the oracle answers with VIDB test texts, scored by the learned judge fitted on the train split only
    assert steering["judge"].startswith("learned:")
    oracle, null = steering["models"]["oracle"], steering["models"]["null"]
    assert oracle["median_monotonicity"] >= 0.4 and oracle["median_slope"] >= 1.0  # moderate or better
    assert abs(null["median_slope"]) < 0.5
    for figure in ("dose_response.png", "composition_arrows.png", "composition_heatmap.png"):
        assert (clone / "plots" / "steering" / figure).stat().st_size > 10_000


def test_repro_publishes_a_dry_run_receipt(clone, repro):
    receipt = json.loads((clone / "release" / "receipt.json").read_text())
    assert receipt["mode"] == "dry-run" and receipt["tag"].startswith("v")
    assert {"vidb", "hives", "judge"} <= set(receipt["artifacts"])


def test_second_repro_does_nothing(clone, repro):
    out = run_dvc("repro", cwd=clone).stdout
    assert "Running stage" not in out
    assert "up to date" in out
