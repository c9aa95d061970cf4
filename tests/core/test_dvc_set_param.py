"""`dvc exp run -S section.key=value` rewrites params.yaml with DVC's own writer: every stage must accept the result.

DVC parses the value with Hydra's grammar and writes the whole file back (its own layout: flow lists become block
lists, ``null`` becomes an empty value). The rewritten file holds the same params but the one set, and every stage's
config model reads it, the changed stage with the new value. The pipeline run of ``dvc exp run`` is in tests/e2e.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builders.aggregate import AggregateConfig
from builders.build_vidb import BuildConfig
from builders.collect import CollectConfig
from builders.ingest import IngestConfig
from cards.release import ReleaseConfig
from evaluation.eval_evaluator import EvalEvaluatorConfig
from evaluation.eval_steering import EvalSteeringConfig
from evaluation.steer import SteerConfig
from evaluation.train_judge import JudgeTrainConfig
from hives_model.evaluate import HivesEvalConfig
from hives_model.train import HivesTrainConfig
from valueflow.params import load_params

CONFIGS = [IngestConfig, CollectConfig, AggregateConfig, BuildConfig, HivesTrainConfig, HivesEvalConfig,
           JudgeTrainConfig, EvalEvaluatorConfig, SteerConfig, EvalSteeringConfig, ReleaseConfig]

# one override per section, as a maintainer types it after -S; (field path, the value the stage must then read)
OVERRIDES = {
    "ingest": ("ingest.sources=[seed,valuenet]", ("sources",), ["seed", "valuenet"]),
    "collect": ("collect.values=[benevolence,care-harm]", ("values",), ["benevolence", "care-harm"]),
    "aggregate": ("aggregate.prior_sd=2.5", ("prior_sd",), 2.5),
    "build_vidb": ("build_vidb.split_fractions={train:0.7,validation:0.15,test:0.15}", ("split_fractions",),
                   {"train": 0.7, "validation": 0.15, "test": 0.15}),
    "train_hives": ("train_hives.stage1.learning_rate=1e-4", ("stage1", "learning_rate"), 1e-4),
    "eval_hives": ("eval_hives.onnx=false", ("onnx",), False),
    "train_judge": ("train_judge.alpha=[3.0,300.0]", ("alpha",), [3.0, 300.0]),
    "eval_evaluator": ("eval_evaluator.judges=[embedding]", ("judges",), ["embedding"]),
    "steer": ("steer.max_queries=null", ("max_queries",), None),
    "eval_steering": ("eval_steering.judge=chat:m@http://127.0.0.1:8000/v1", ("judge",), "chat:m@http://127.0.0.1:8000/v1"),
    "release": ("release.version=0.2.0", ("version",), "0.2.0"),
}


def _field(cfg, path: tuple[str, ...]):
    for name in path:
        cfg = cfg[name] if isinstance(cfg, dict) else getattr(cfg, name)
    return cfg


def test_every_section_has_an_override_and_a_config_model(project_root):
    sections = set(load_params(project_root / "params.yaml"))
    assert set(OVERRIDES) == sections == {c.section for c in CONFIGS}


@pytest.mark.parametrize("section", list(OVERRIDES))
def test_every_stage_reads_params_rewritten_by_dvc_set_param(section, project_root, tmp_path: Path):
    from dvc.utils.hydra import apply_overrides

    params = tmp_path / "params.yaml"
    shutil.copy(project_root / "params.yaml", params)
    before = load_params(params)
    override, path, expected = OVERRIDES[section]
    apply_overrides(params, [override])  # what `dvc exp run -S` does to params.yaml
    assert params.read_text() != (project_root / "params.yaml").read_text()
    after = load_params(params)
    assert _field(after[section], path) == expected != _field(before[section], path)
    after[section] = before[section]
    assert after == before  # nothing else changed its value in the rewrite
    for config in CONFIGS:
        cfg = config.load(params)
        if config.section == section:
            assert _field(cfg, path) == expected
