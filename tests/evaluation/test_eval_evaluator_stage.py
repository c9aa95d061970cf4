"""The eval_evaluator stage and the `evaluate` / `eval-evaluator` commands on a small VIDB release."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from evaluation.anchors import AnchorPanel
from evaluation.eval_evaluator import (
    EvalEvaluatorConfig,
    evaluate_evaluator,
    pairwise_accuracy,
    sign_accuracy,
    split_gold_and_anchors,
)
from valueflow.cli import app


def test_metric_definitions_on_hand_made_cases():
    gold = np.array([8.0, 3.0, -5.0, 0.5])
    pred = np.array([6.0, -1.0, -2.0, -3.0])
    assert sign_accuracy(pred, gold, threshold=1.0) == pytest.approx(2 / 3)  # |0.5| < 1 is left out
    groups = np.array(["a", "a", "a", "b"])
    assert pairwise_accuracy(pred, gold, groups) == 1.0  # 8 > 3 > -5 kept; "b" has no pair
    assert pairwise_accuracy(np.array([1.0, 1.0, 0.0]), np.array([2.0, 0.0, -2.0]), np.array(["a"] * 3)) == pytest.approx(2.5 / 3)


def test_test_texts_are_never_anchors(vidb_release):
    gold, anchors = split_gold_and_anchors(AnchorPanel.from_source(vidb_release), EvalEvaluatorConfig())
    assert len(gold) and not set(gold["text"]) & set(anchors.table["text"])
    assert set(anchors.table["split"]) == {"train", "validation"}


def test_stage_writes_metrics_plot_and_scores(vidb_release, seed_judge, tmp_path):
    learned = f"learned:{seed_judge}"
    cfg = EvalEvaluatorConfig(vidb=str(vidb_release), judges=["embedding", learned], sampling=["bucket", "adaptive"],
                              repeats=2, progress=False)
    metrics = evaluate_evaluator(cfg, root=tmp_path)
    on_disk = json.loads((tmp_path / "metrics" / "evaluator.json").read_text())
    assert on_disk["judges"] == metrics["judges"]
    for judge in ("embedding", learned):
        assert set(metrics["judges"][judge]) == {"bucket", "adaptive", "rating"}
        r = metrics["judges"][judge]["bucket"]
        assert r["calls_per_text"] == 3.0 and r["repeats"] == 2 and r["n_texts"] == metrics["counts"]["test_texts"]
        assert 0 <= r["sign_accuracy"] <= 1 and r["mae"] >= 0 and r["stability_sd"] >= 0
    assert (tmp_path / "plots" / "evaluator_pred_vs_gold.png").read_bytes()[:4] == b"\x89PNG"
    scores = pd.read_parquet(tmp_path / "data" / "evaluator_scores.parquet")
    assert set(scores["mode"]) == {"bucket", "adaptive", "rating"} and set(scores["repeat"]) == {0, 1}
    assert (tmp_path / "data" / "rejected" / "eval_evaluator.parquet").exists()


def test_evaluate_command_scores_a_file_logs_and_recomputes(vidb_release, tmp_path):
    texts = tmp_path / "answers.jsonl"
    rows = [{"id": "a", "answer": "I looked after my mother every day while she was ill."},
            {"id": "b", "answer": "I lied to my best friend to get her job."},
            {"id": "c", "answer": ""}]
    texts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out, log = tmp_path / "scores.parquet", tmp_path / "log.jsonl"
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(texts), "--value", "benevolence", "--value", "Care", "--judge", "embedding",
                              "--vidb", str(vidb_release), "--text-column", "answer", "--out", str(out), "--log", str(log),
                              "--min-success", "0.5"])  # the empty text fails: accepted as a partial result
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(out)
    assert scores["item_id"].tolist() == ["a", "b", "c", "a", "b", "c"]
    assert scores["value"].tolist() == ["benevolence"] * 3 + ["care-harm"] * 3
    assert scores["intensity"].notna().tolist() == [True, True, False, True, True, False]
    assert "missing (2): empty text" in res.output
    again = tmp_path / "again.parquet"
    res = runner.invoke(app, ["evaluate", "--from-log", str(log), "--out", str(again)])
    assert res.exit_code == 1, res.output  # the same two failures, not accepted this time: exit 1, output written
    assert "failed: 2 of 6 texts failed" in res.output
    pd.testing.assert_frame_equal(pd.read_parquet(again), scores.drop(columns="judge"))


def test_evaluate_command_rejects_an_unknown_value_with_the_list(vidb_release, tmp_path):
    texts = tmp_path / "t.csv"
    texts.write_text("text\nhello\n")
    res = CliRunner().invoke(app, ["evaluate", str(texts), "--value", "kindness", "--vidb", str(vidb_release), "--out", str(tmp_path / "o.parquet")])
    assert res.exit_code == 2  # the user's mistake, as one error line (no traceback)
    assert "unknown value 'kindness'; valid values:" in res.output and "benevolence" in res.output


def test_eval_evaluator_command_reads_its_params_section(vidb_release, tmp_path, monkeypatch, project_root):
    section = yaml.safe_load((project_root / "params.yaml").read_text())["eval_evaluator"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"eval_evaluator": {**section, "vidb": str(vidb_release), "judges": ["embedding"],
                                                         "sampling": ["bucket"], "rating": False, "repeats": 1}}))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["eval-evaluator", "--params", str(params)])
    assert res.exit_code == 0, res.output
    assert "embedding" in res.output and (tmp_path / "metrics" / "evaluator.json").exists()
