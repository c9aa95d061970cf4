"""The ``eval_steering`` stage: its config, its inputs and outputs; the analysis is :mod:`evaluation.steering_analysis`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, field_validator

from evaluation.steering_analysis import REGIME_THRESHOLDS, AnalysisConfig, analyse, score_responses
from valueflow.params import StageParams

#: the files written in ``eval_steering.plots_dir``: the dose-response data and the three figures
PLOTS = {"data": "dose_response.csv", "dose_response": "dose_response.png", "composition_arrows": "composition_arrows.png",
         "composition_heatmap": "composition_heatmap.png"}


class EvalSteeringConfig(StageParams):
    """The ``eval_steering`` section of params.yaml."""

    section: ClassVar[str] = "eval_steering"

    responses: str = "data/responses.parquet"
    judge: str = "embedding"
    judge_options: dict[str, Any] = Field(default_factory=dict)  # passed to make_judge (e.g. batch_size, alpha)
    panel: str | None = None  # None -> release/vidb; a folder of seed CSVs; a table; a Hub id
    panel_revision: str | None = None
    panel_split: str | None = None
    k: int = Field(6, ge=2)
    m: int = Field(3, ge=1)
    sampling: Literal["bucket", "random", "adaptive"] = "bucket"
    seed: int = 0
    ci: float = Field(0.95, gt=0, lt=1)
    regime_thresholds: dict[str, dict[str, float]] = Field(default_factory=lambda: json.loads(json.dumps(REGIME_THRESHOLDS)))
    scores_out: str = "data/steering_scores.parquet"
    plots_dir: str = "plots/steering"
    root: str = "."

    @field_validator("regime_thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name in ("strong", "moderate"):
            if name not in v or set(v[name]) != {"slope", "monotonicity"}:
                raise ValueError(f"{name} needs 'slope' and 'monotonicity' (and nothing else)")
        return v

    @property
    def analysis(self) -> AnalysisConfig:
        return AnalysisConfig(ci=self.ci, regime_thresholds=self.regime_thresholds)


def eval_steering(cfg: EvalSteeringConfig, *, progress: bool = True, evaluator: Any = None) -> dict[str, Any]:
    """Score ``responses``, analyse, write scores, ``metrics/steering.json``, the dose-response plot data and figures.

    The anchors come from ``cfg.panel`` through :meth:`evaluation.anchors.AnchorPanel.from_source`; ``evaluator``
    replaces the configured judge and panel (tests, benchmarks).
    """
    from evaluation import steering_plots
    from validation.rejects import RejectSink, validate_rows
    from validation.schemas import ResponsesSchema, ScoresSchema
    from valueflow.io import InputError, check_outputs, read_table, stage_records, write_json, write_parquet, write_text

    t0 = time.perf_counter()
    root = Path(cfg.root)
    path = root / cfg.responses
    if not path.exists():
        raise InputError(f"{path}: responses not found (run `valueflow steer` first)")
    sink = RejectSink("eval_steering", root=root, out=cfg.scores_out)
    plots = root / cfg.plots_dir
    metrics_out = stage_records("steering", cfg.scores_out, root)[0]
    check_outputs({"eval_steering.scores_out": root / cfg.scores_out, "rejected rows": sink.path, "metrics": metrics_out,
                   **{f"eval_steering.plots_dir ({name})": plots / name for name in PLOTS.values()}},
                  {"eval_steering.responses": path,
                   "eval_steering.panel": cfg.panel if cfg.panel and Path(cfg.panel).exists() else None})  # else a Hub id
    table = read_table(path, required=tuple(ResponsesSchema.to_schema().columns))  # a table of something else: one line
    responses = validate_rows(table, ResponsesSchema, sink, file=str(path))
    if responses.empty:
        raise InputError(f"{path}: no valid responses")
    if evaluator is None:
        evaluator = _evaluator(cfg, progress)
    t_score = time.perf_counter()
    scores = score_responses(responses, evaluator)
    if len(scores):
        scores = validate_rows(scores, ScoresSchema, sink, file="evaluator scores")
    t_score = time.perf_counter() - t_score
    result = analyse(responses, scores, cfg.analysis)
    tables = result.pop("_tables")
    write_parquet(scores, root / cfg.scores_out)

    curves = tables["curves"]
    plot_csv = curves.assign(series=curves["model"] + "/" + curves["format"] + "/" + curves["value"]) if len(curves) else curves
    cols = ["series", "model", "format", "value", "target", "n", "mean", "ci_low", "ci_high", "shift"]
    write_text((plot_csv.reindex(columns=cols).sort_values(["series", "target"]) if len(plot_csv) else pd.DataFrame(columns=cols))
               .to_csv(index=False, float_format="%.4f"), plots / PLOTS["data"])
    figures = {
        "dose_response": steering_plots.dose_response(curves, plots / PLOTS["dose_response"]),
        "composition_arrows": steering_plots.composition_arrows(tables["composition"], plots / PLOTS["composition_arrows"]),
        "composition_heatmap": steering_plots.composition_heatmap(tables["composition"], plots / PLOTS["composition_heatmap"]),
    }
    sink.write()
    result.update({
        "judge": getattr(getattr(evaluator, "judge", None), "name", cfg.judge),
        "panel": getattr(getattr(evaluator, "panel", None), "source", cfg.panel),
        "figures": {k: str(v) if v else None for k, v in figures.items()},
        "rejected_rows": sink.count,
        "seconds": round(time.perf_counter() - t0, 3),
        "scoring_seconds": round(t_score, 3),
    })
    write_json(result, metrics_out)
    return result


def _evaluator(cfg: EvalSteeringConfig, progress: bool):
    """The anchor evaluator of the configured judge and panel."""
    from evaluation.anchor_evaluator import AnchorEvaluator
    from evaluation.anchors import AnchorPanel
    from valueflow.judges import make_judge

    panel = AnchorPanel.from_source(cfg.panel, revision=cfg.panel_revision, split=cfg.panel_split)
    return AnchorEvaluator(make_judge(cfg.judge, **dict(cfg.judge_options or {})), panel, k=cfg.k, m=cfg.m, sampling=cfg.sampling, seed=cfg.seed,
                           progress=progress)
