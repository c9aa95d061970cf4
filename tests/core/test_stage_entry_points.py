"""Each stage's library entry point, called from Python without the CLI, on a two-value slice of the seed corpus.

What tests and Python users call: ``ingest``, ``collect``, ``aggregate``, ``build_release``, ``train_hives_stage``,
``evaluate_evaluator``, ``steer``, ``eval_steering``, ``publish_release`` (and ``score_file``, ``profile_file`` of
the ``evaluate`` and ``profile`` commands). The ``eval_hives`` stage has its own tests in tests/hives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from builders.aggregate import AggregateConfig, aggregate
from builders.build_vidb import BuildConfig, build_release
from builders.collect import CollectConfig, collect
from builders.ingest import IngestConfig, ingest
from cards.publish import publish_release
from cards.release import ReleaseConfig
from evaluation.eval_evaluator import EvalEvaluatorConfig, evaluate_evaluator
from evaluation.eval_steering import EvalSteeringConfig, eval_steering
from evaluation.scoring import score_file
from evaluation.steer import SteerConfig, steer
from hives_model.profile import profile_file
from hives_model.train import HivesTrainConfig, StageConfig, train_hives_stage

pytestmark = pytest.mark.slow
VALUES = ("benevolence", "care-harm")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, project_root: Path) -> dict:
    """Every stage run once, in pipeline order, in a fresh project folder (the cwd while it runs)."""
    root = tmp_path_factory.mktemp("entry_points")
    before = Path.cwd()
    os.chdir(root)
    try:
        out: dict = {"root": root}
        texts, out["ingest"] = ingest(IngestConfig(seed_dir=project_root / "data" / "seed" / "texts", root=root))
        texts[texts["value"].isin(VALUES)].to_parquet(root / "data" / "texts.parquet", index=False)
        out["rankings"], out["collect"] = collect(CollectConfig(judges=["reference"], k=4, m=3, root=root))
        out["utilities"], out["aggregate"] = aggregate(AggregateConfig(root=root))
        out["vidb"], out["build"], out["card"] = build_release(BuildConfig(root=root, prior_sd=3.0))
        out["train"] = train_hives_stage(HivesTrainConfig(
            stage1=StageConfig(steps=2, batch_size=8), stage2=StageConfig(steps=0), root=root))
        out["evaluator"] = evaluate_evaluator(EvalEvaluatorConfig(
            vidb=str(root / "release" / "vidb"), judges=["embedding"], sampling=["bucket"], rating=False, repeats=1,
            max_texts_per_value=2, progress=False), root=root)
        out["responses"], out["steer"] = steer(SteerConfig(
            backends=[{"kind": "oracle", "name": "oracle"}], queries=project_root / "data" / "seed" / "queries.csv",
            values=["benevolence"], intensities=[-2, 2], formats=["default", "single_definition"],
            exemplars=root / "release" / "vidb", max_queries=2, root=root), progress=False)
        out["steering"] = eval_steering(EvalSteeringConfig(judge="embedding", panel=str(root / "release" / "vidb"),
                                                           root=str(root)), progress=False)
        model = root / "models" / "hives"
        (model / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\n---\n\n# HiVES\n")
        out["publish"] = publish_release(ReleaseConfig(version="0.1.0", dataset_dir=root / "release" / "vidb",
                                                       model_dir=model, judge_dir=model,  # a stand-in judge folder
                                                       receipt=root / "release" / "receipt.json",
                                                       history_dir=root / "releases"))
        yield out
    finally:
        os.chdir(before)


def _metrics(root: Path, name: str) -> dict:
    return json.loads((root / "metrics" / f"{name}.json").read_text(encoding="utf-8"))


def test_builders_stages_write_their_records_and_metrics(pipeline):
    root = pipeline["root"]
    assert pipeline["ingest"]["texts"] == _metrics(root, "ingest")["texts"] > 0
    assert len(pipeline["rankings"]) == _metrics(root, "collect")["rankings"] > 0
    assert set(pipeline["utilities"]["value"]) == set(VALUES)
    assert pipeline["card"] == root / "release" / "vidb" / "README.md" and pipeline["card"].is_file()
    assert pipeline["build"]["texts"] == len(pipeline["vidb"]) == len(pd.read_parquet(root / "data" / "texts.parquet"))


def test_train_hives_stage_saves_the_model_and_its_metrics(pipeline):
    root = pipeline["root"]
    assert (root / "models" / "hives" / "hives_training.json").is_file()
    assert _metrics(root, "train_hives")["steps"] == {"stage1": 2, "stage2": 0} == pipeline["train"]["steps"]


def test_evaluator_and_steering_stages(pipeline):
    root = pipeline["root"]
    assert "embedding" in pipeline["evaluator"]["judges"] and (root / "metrics" / "evaluator.json").is_file()
    assert len(pipeline["responses"]) == pipeline["steer"]["responses"] == 2 * (1 + 2)
    assert pipeline["steering"]["scores"] > 0 and (root / "metrics" / "steering.json").is_file()
    assert (root / "plots" / "steering" / "dose_response.csv").is_file()


def test_publish_release_dry_run_writes_receipt_metrics_and_citation(pipeline):
    root = pipeline["root"]
    assert pipeline["publish"]["mode"] == "dry-run"
    assert json.loads((root / "release" / "receipt.json").read_text())["artifacts"]
    assert _metrics(root, "publish")["pushed"] is False and (root / "CITATION.cff").is_file()


def test_score_file_and_profile_file(pipeline, tmp_path):
    root = pipeline["root"]
    table = tmp_path / "t.csv"
    table.write_text("text\nI helped my neighbour carry her shopping.\nI lied to my friend.\n", encoding="utf-8")
    scores = score_file(table, ["Care/Harm"], tmp_path / "s.parquet", vidb=str(root / "release" / "vidb"), m=1)
    assert len(scores) == 2 and set(scores["value"]) == {"care-harm"} and (tmp_path / "s.parquet").is_file()
    profiles = profile_file(table, model=str(root / "models" / "hives"), top=1, out=tmp_path / "p.csv")
    assert len(profiles) == 2 * 4 and (tmp_path / "p.csv").is_file()  # one value per theory and text
