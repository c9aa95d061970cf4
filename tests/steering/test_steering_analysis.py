"""The steering analysis on synthetic score frames with known answers, and the stage end to end on the controls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from evaluation.steering_analysis import analyse, regime, scoring_items

VALUES = ("benevolence", "universalism")
PAIRS = ({"benevolence": 2, "universalism": 1}, {"benevolence": -2, "universalism": -2}, {"benevolence": 1, "universalism": 2})


def synthetic(models: dict, n_queries: int = 12, refuse=lambda model, fmt, t: False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Responses for each model and the scores ``models[model](fmt, targets, value, rng)`` gives them."""
    rng = np.random.default_rng(0)
    rows = []
    for model in models:
        for q in range(n_queries):
            plan = [("default", {})] + [("single_definition", {v: lvl}) for v in VALUES for lvl in (-2, -1, 1, 2)]
            plan += [("multi_definition", t) for t in PAIRS]
            for fmt, t in plan:
                rows.append({"response_id": f"{model}-{q}-{fmt}-{json.dumps(t, sort_keys=True)}", "model": model,
                             "prompt_format": fmt, "targets": json.dumps(t, sort_keys=True), "query_id": f"q{q}", "sample": 0,
                             "response": f"answer {model} {q} {fmt} {t}", "refused": bool(refuse(model, fmt, t))})
    responses = pd.DataFrame(rows)
    items = scoring_items(responses)
    meta = responses.set_index("response_id")
    scores = pd.DataFrame({
        "item_id": items["item_id"], "value": items["value"],
        "intensity": [float(np.clip(models[meta.loc[i, "model"]](meta.loc[i, "prompt_format"], json.loads(meta.loc[i, "targets"]), v, rng), -10, 10))
                      for i, v in zip(items["item_id"], items["value"])],
        "missing_reason": None,
    })
    return responses, scores


def ideal(fmt, t, value, rng):
    return 4.0 * t.get(value, 0) + rng.normal(0, 0.8)


def deaf(fmt, t, value, rng):
    return 1.0 + rng.normal(0, 0.8)


def single(summary, model, value):
    return next(r for r in summary["single"] if r["model"] == model and r["value"] == value)


def test_steerable_and_unsteerable_models_are_told_apart():
    m = analyse(*synthetic({"ideal": ideal, "deaf": deaf}))
    for v in VALUES:
        good, flat = single(m, "ideal", v), single(m, "deaf", v)
        assert good["slope"] == pytest.approx(4.0, abs=0.3) and good["monotonicity"] >= 0.9 and good["regime"] == "strong"
        assert abs(flat["slope"]) < 0.4 and abs(flat["monotonicity"] or 0) < 0.3 and flat["regime"] == "weak"
        assert good["levels"]["2"]["shift"] == pytest.approx(8.0, abs=1.2)
        lo, hi = good["levels"]["-2"]["ci_low"], good["levels"]["-2"]["ci_high"]
        assert lo < good["levels"]["-2"]["mean"] < hi and hi - lo < 2
    assert m["models"]["ideal"]["regime"] == "strong" and m["models"]["deaf"]["regime"] == "weak"


def test_asymmetry_and_refusals():
    def pos_only(fmt, t, value, rng):
        lvl = t.get(value, 0)
        return (3.0 * lvl if lvl > 0 else 0.5 * lvl) + rng.normal(0, 0.3)

    refuse = lambda model, fmt, t: t.get("benevolence") == -2 and fmt == "single_definition"
    responses, scores = synthetic({"m": pos_only}, refuse=refuse)
    assert not set(responses.loc[responses["refused"], "response_id"]) & set(scores["item_id"])  # refusals never scored
    m = analyse(responses, scores)
    b = single(m, "m", "benevolence")
    assert b["levels"]["-2"]["refused"] == 12 and b["levels"]["-2"]["refusal_rate"] == 1.0 and b["levels"]["-2"]["n"] == 0
    assert b["levels"]["-2"]["mean"] is None and b["refusal_rate"] == pytest.approx(12 / 48)
    u = single(m, "m", "universalism")
    assert u["asymmetry"] == pytest.approx((0.5 * 1.5) / (3.0 * 1.5), abs=0.05)  # negative steering 6x weaker
    assert m["refused"] == 12


def test_composition_laws():
    def additive(fmt, t, value, rng):
        return 3.0 * t.get(value, 0) + rng.normal(0, 0.2)

    def dominant(fmt, t, value, rng):
        if fmt == "multi_definition":
            top = max(t, key=lambda v: (abs(t[v]), v == "benevolence"))
            return 3.0 * t[top] if value == top else rng.normal(0, 0.2)
        return 3.0 * t.get(value, 0) + rng.normal(0, 0.2)

    m = analyse(*synthetic({"add": additive, "dom": dominant}))
    by = {(c["model"], json.dumps(c["targets"], sort_keys=True)): c for c in m["composition"]}
    for t in PAIRS:
        key = json.dumps(t, sort_keys=True)
        assert by[("add", key)]["law"] == "additive" and by[("add", key)]["additive_error"] < 0.15
        assert by[("add", key)]["additivity_ratio"] == pytest.approx(1.0, abs=0.1)
    strong = by[("dom", json.dumps(PAIRS[0], sort_keys=True))]
    assert strong["law"] == "dominant" and strong["strongest"] == "benevolence" and strong["dominance_share"] > 0.9


def test_regime_thresholds():
    th = {"strong": {"slope": 2.0, "monotonicity": 0.8}, "moderate": {"slope": 0.75, "monotonicity": 0.4}}
    assert regime(3.0, 0.9, th) == "strong" and regime(3.0, 0.5, th) == "moderate" and regime(0.5, 0.9, th) == "weak"
    assert regime(None, None, th) == "weak"


def test_default_pipeline_on_the_controls(tmp_path, project_root, seed_judge, monkeypatch):
    """steer + eval-steering on the two controls with a learned judge: oracle steered, null flat, figures written."""
    monkeypatch.chdir(tmp_path)
    seed = str(project_root / "data" / "seed" / "texts")
    params = {
        "steer": {"backends": [{"kind": "oracle"}, {"kind": "null"}], "queries": str(project_root / "data" / "seed" / "queries.csv"),
                  "max_queries": 4, "values": ["benevolence", "power"], "intensities": [-2, -1, 1, 2],
                  "formats": ["default", "single_definition", "multi_definition"],
                  "multi_targets": [{"benevolence": 2, "power": 1}, {"benevolence": -2, "power": 2},
                                    {"benevolence": 1, "power": -1, "hedonism": 2}],
                  "exemplars": seed, "out": "data/responses.parquet", "cache_dir": "cache"},
        "eval_steering": {"judge": f"learned:{seed_judge}", "panel": seed, "m": 2},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    runner = CliRunner()
    assert runner.invoke(app_(), ["steer", "--params", "params.yaml", "--quiet"]).exit_code == 0
    result = runner.invoke(app_(), ["eval-steering", "--params", "params.yaml", "--quiet"])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "metrics" / "steering.json").read_text())
    oracle = m["models"]["oracle"]
    # the probe is a weak judge (about 0.64 pairwise on VIDB texts): the oracle reads as clearly steered (measured:
    # slope 2.2, monotonicity 0.49 on the seed corpus), the null not at all
    assert oracle["regime"] in ("strong", "moderate") and oracle["median_slope"] >= 1.5
    assert abs(m["models"]["null"]["median_slope"]) < 0.1 and m["models"]["null"]["regime"] == "weak"
    for name in ("dose_response.png", "composition_arrows.png", "composition_heatmap.png", "dose_response.csv"):
        assert (tmp_path / "plots" / "steering" / name).stat().st_size > 0
    curve = pd.read_csv(tmp_path / "plots" / "steering" / "dose_response.csv")
    assert {"series", "target", "mean", "ci_low", "ci_high"} <= set(curve.columns)


def app_():
    from valueflow.cli import app

    return app
