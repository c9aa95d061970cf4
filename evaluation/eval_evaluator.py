"""The eval_evaluator stage: how well does the anchor evaluator recover VIDB's own intensities?

Gold: VIDB's test split. Anchors: the train and validation splits (minus any text that is also a test text), so no
test text is ever its own anchor. For each judge and each sampling mode the stage scores every test text
``repeats`` times with fresh anchor draws (seed, seed + 1, ...) and reports, averaged over repeats:

- ``mae``: mean absolute error against the gold intensity;
- ``spearman``: rank correlation with gold (pooled over values, and ``spearman_per_value`` averaged over values
  with at least 3 test texts);
- ``sign_accuracy``: sign of the score equals the sign of gold, over texts with ``|gold| >= sign_threshold``;
- ``pairwise_accuracy``: for pairs of test texts of the same value whose gold differs by at least
  ``pair_min_gap``, the fraction the scores order the same way (a tie counts half);
- ``stability_sd`` / ``mean_variance``: standard deviation / variance of a text's score over the repeats,
  averaged over texts (the paper's Table 1 reports the mean variance: ranking 2.1, rating 12.6);
- ``calls_per_text``: judge calls per text, re-asks included.

The rating mode (the judge rates each text directly, ``m`` times) is reported beside the ranking modes, as in the
paper's Table 1. Outputs: ``metrics/evaluator.json``, ``plots/evaluator_pred_vs_gold.png`` and the per-text scores
of every run (``data/evaluator_scores.parquet``: judge, mode, repeat, item_id, value, gold, intensity, se).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from evaluation.anchor_evaluator import AnchorEvaluator
from evaluation.anchors import AnchorPanel
from valueflow.params import StageParams
from valueflow.stats import pairwise_accuracy as stats_pairwise_accuracy
from valueflow.stats import spearman

PAPER_TABLE1 = {
    "ranking": {"mean_variance": 2.1, "sign_accuracy": 0.868, "pairwise_accuracy": 0.842},
    "rating": {"mean_variance": 12.6, "sign_accuracy": 0.825, "pairwise_accuracy": 0.774},
}


class EvalEvaluatorConfig(StageParams):
    """The ``eval_evaluator`` section of params.yaml."""

    section: ClassVar[str] = "eval_evaluator"

    vidb: str = "release/vidb"
    revision: str | None = None
    judges: list[str] = Field(default_factory=lambda: ["embedding", "learned"])
    sampling: list[Literal["bucket", "random", "adaptive"]] = Field(default_factory=lambda: ["bucket", "random", "adaptive"])
    rating: bool = True
    k: int = Field(6, ge=2)
    m: int = Field(3, ge=1)
    repeats: int = Field(5, ge=1)
    seed: int = 0
    scale: float | Literal["auto"] = 1.0
    prior_precision: float = Field(1e-3, ge=0)
    anchor_splits: str = "train,validation"
    test_split: str = "test"
    max_texts_per_value: int | None = Field(None, ge=1)
    sign_threshold: float = Field(1.0, ge=0)
    pair_min_gap: float = Field(1.0, ge=0)
    scores_out: str = "data/evaluator_scores.parquet"
    metrics_out: str = "metrics/evaluator.json"
    plot_out: str = "plots/evaluator_pred_vs_gold.png"
    threads: int | None = Field(1, ge=1)
    progress: bool = True

    @field_validator("scale")
    @classmethod
    def _positive_scale(cls, v: float | str) -> float | str:
        if v != "auto" and not v > 0:
            raise ValueError(f"scale must be > 0 or auto, got {v!r}")
        return v


def split_gold_and_anchors(panel: AnchorPanel, cfg: EvalEvaluatorConfig) -> tuple[pd.DataFrame, AnchorPanel]:
    """The gold test texts and a panel of anchors that contains none of them."""
    gold = panel.table[panel.table["split"] == cfg.test_split]
    if cfg.max_texts_per_value:
        # per value, in value order (groupby.apply would drop the value column under pandas 3)
        gold = pd.concat([g.head(cfg.max_texts_per_value) for _, g in gold.groupby("value", sort=True)])
    gold = gold.reset_index(drop=True)
    wanted = [s.strip() for s in cfg.anchor_splits.split(",")]
    anchors = panel.subset(panel.table["split"].isin(wanted)).without_texts(gold["text"])
    return gold, anchors


# --- metrics -------------------------------------------------------------------------------------------------
def sign_accuracy(pred: np.ndarray, gold: np.ndarray, threshold: float = 1.0) -> float:
    sel = np.abs(gold) >= threshold
    return float(np.mean(np.sign(pred[sel]) == np.sign(gold[sel]))) if sel.any() else float("nan")


def pairwise_accuracy(pred: np.ndarray, gold: np.ndarray, groups: np.ndarray, min_gap: float = 1.0) -> float:
    """Fraction of same-group pairs (gold apart by >= min_gap) that ``pred`` orders like gold; ties count half
    (:func:`valueflow.stats.pairwise_accuracy`; NaN where no pair counts, like the other metrics here)."""
    acc = stats_pairwise_accuracy(pred, gold, groups, min_gap)
    return float("nan") if acc is None else acc


def run_metrics(runs: pd.DataFrame, cfg: EvalEvaluatorConfig) -> dict:
    """Metrics of one (judge, mode): accuracy metrics per repeat, averaged; stability across repeats."""
    per_repeat = []
    for _, r in runs.groupby("repeat"):
        ok = r["intensity"].notna().to_numpy()
        pred, gold, val = r["intensity"].to_numpy()[ok], r["gold"].to_numpy()[ok], r["value"].to_numpy()[ok]
        per_value = [r for v in np.unique(val) if (r := spearman(pred[val == v], gold[val == v])) is not None]
        per_repeat.append(
            {
                "mae": float(np.mean(np.abs(pred - gold))) if ok.any() else float("nan"),
                "spearman": spearman(pred, gold),
                "spearman_per_value": float(np.nanmean(per_value)) if per_value else float("nan"),
                "sign_accuracy": sign_accuracy(pred, gold, cfg.sign_threshold),
                "pairwise_accuracy": pairwise_accuracy(pred, gold, val, cfg.pair_min_gap),
                "missing_rate": float(1 - ok.mean()) if len(ok) else float("nan"),
            }
        )
    out = {k: _mean([p[k] for p in per_repeat]) for k in per_repeat[0]}
    wide = runs.pivot_table(index=["item_id", "value"], columns="repeat", values="intensity", aggfunc="first")
    sd = wide.std(axis=1, ddof=0)
    out.update(
        {
            "stability_sd": float(sd.mean()),
            "mean_variance": float((sd**2).mean()),
            "max_range": float((wide.max(axis=1) - wide.min(axis=1)).max()),
            "calls_per_text": float(runs["judge_calls"].mean()),
            # over uncensored scores only: a censored one (beyond every anchor it met) is a bound without an SE
            "mean_se": float(runs["intensity_se"].mean()) if runs["intensity_se"].notna().any() else None,
            "censored_share": float(runs["censored"].notna().mean()) if "censored" in runs.columns else 0.0,
            "n_texts": int(runs.groupby("repeat").size().iloc[0]),
            "repeats": int(runs["repeat"].nunique()),
        }
    )
    return {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else (None if isinstance(v, float) else v)) for k, v in out.items()}


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


# --- the stage -----------------------------------------------------------------------------------------------
def _build_judges(vidb: str) -> set[str]:
    """The judges whose rankings a VIDB release folder was aggregated from (its stats.json), if it says."""
    import json

    stats = Path(vidb) / "stats.json"
    try:
        return set(json.loads(stats.read_text(encoding="utf-8")).get("judges", [])) if stats.is_file() else set()
    except (OSError, ValueError):
        return set()


def evaluate_evaluator(cfg: EvalEvaluatorConfig, root: str | Path = ".") -> dict:
    """Run the stage; returns the metrics written to ``metrics/evaluator.json``."""
    from validation.rejects import RejectSink
    from valueflow.io import check_outputs, stage_records, write_json, write_parquet
    from valueflow.judges import make_judge

    root = Path(root)
    t0 = time.perf_counter()
    sink = RejectSink("eval_evaluator", root, out=cfg.scores_out)
    metrics_out = root / cfg.metrics_out
    if metrics_out == root / "metrics" / "evaluator.json":  # the default: the pipeline's file, or beside an ad-hoc run's scores
        metrics_out = stage_records("evaluator", cfg.scores_out, root)[0]
    check_outputs({"eval_evaluator.scores_out": root / cfg.scores_out, "eval_evaluator.plot_out": root / cfg.plot_out,
                   "eval_evaluator.metrics_out": metrics_out, "rejected rows": sink.path},
                  {"eval_evaluator.vidb": cfg.vidb if Path(cfg.vidb).exists() else None})  # else a Hub id
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)  # small encoding batches: one thread is fastest on a shared machine
    panel = AnchorPanel.from_source(cfg.vidb, revision=cfg.revision)
    for rec in panel.rejected.to_dict("records"):
        sink.rows.append({"stage": "eval_evaluator", **rec})
    gold, anchors = split_gold_and_anchors(panel, cfg)
    if gold.empty:
        raise ValueError(f"{cfg.vidb}: no texts in split {cfg.test_split!r} to evaluate on")
    items = pd.DataFrame({"item_id": gold["anchor_id"].astype(str), "text": gold["text"], "value": gold["value"]})
    modes = [("ranking", s) for s in cfg.sampling] + ([("rating", "rating")] if cfg.rating else [])
    all_runs, results, timings, skipped = [], {}, {}, {}
    built_by = _build_judges(cfg.vidb)
    in_build = {}
    for spec in cfg.judges:
        judge = make_judge(spec)
        if judge.name in built_by:  # its rankings made the gold intensities: its figures are not held out
            in_build[spec] = (f"{judge.name} ranked the texts this VIDB was built from: its scores are a consistency "
                              "check against its own rankings, not held-out quality")
        results[spec] = {}
        for mode, sampling in modes:
            t = time.perf_counter()
            runs = []
            try:
                for r in range(cfg.repeats):
                    ev = AnchorEvaluator(
                        judge, anchors, k=cfg.k, m=cfg.m, sampling=sampling if mode == "ranking" else "bucket",
                        seed=cfg.seed + r, mode=mode, scale=cfg.scale, prior_precision=cfg.prior_precision,
                        progress=cfg.progress,
                    )
                    s = ev.score_many(items)
                    runs.append(s.assign(repeat=r, gold=gold["intensity"].to_numpy(), judge=spec, mode=sampling))
            except NotImplementedError as err:  # a judge without a rating mode
                skipped[f"{spec}/{sampling}"] = str(err)
                continue
            df = pd.concat(runs, ignore_index=True)
            all_runs.append(df)
            results[spec][sampling] = run_metrics(df, cfg)
            timings[f"{spec}/{sampling}"] = round(time.perf_counter() - t, 3)
    scores = pd.concat(all_runs, ignore_index=True)
    cols = ["judge", "mode", "repeat", "item_id", "value", "gold", "intensity", "intensity_se", "censored", "judge_calls", "missing_reason"]
    write_parquet(scores[cols], root / cfg.scores_out)
    plot_pred_vs_gold(scores, root / cfg.plot_out)
    sink.write()
    metrics = {
        "judges": results,
        "judges_in_build": in_build,
        "skipped": skipped,
        "settings": {"k": cfg.k, "m": cfg.m, "scale": cfg.scale, "prior_precision": cfg.prior_precision, "repeats": cfg.repeats, "seed": cfg.seed, "sign_threshold": cfg.sign_threshold,
                     "pair_min_gap": cfg.pair_min_gap, "vidb": cfg.vidb, "revision": cfg.revision},
        "counts": {
            "test_texts": len(gold),
            "values": int(gold["value"].nunique()),
            "anchors": len(anchors),
            "anchors_per_value_min": int(anchors.table.groupby("value").size().min()) if len(anchors) else 0,
            "rejected_rows": sink.count,
        },
        "paper_table1": PAPER_TABLE1,
        "timings_s": {**timings, "total": round(time.perf_counter() - t0, 3)},
    }
    write_json(metrics, metrics_out)
    return metrics


def plot_pred_vs_gold(scores: pd.DataFrame, path: Path) -> Path:
    """One panel per (judge, mode): repeat-0 score against gold, with the identity line and MAE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from valueflow.io import atomic_path

    first = scores[scores["repeat"] == 0]
    judges = list(dict.fromkeys(first["judge"]))
    modes = list(dict.fromkeys(first["mode"]))
    fig, axes = plt.subplots(len(judges), len(modes), figsize=(3.2 * len(modes), 3.2 * len(judges)), squeeze=False)
    for i, j in enumerate(judges):
        for c, m in enumerate(modes):
            ax = axes[i][c]
            d = first[(first["judge"] == j) & (first["mode"] == m)]
            ax.plot([-10, 10], [-10, 10], color="grey", lw=0.8, ls="--")
            ax.scatter(d["gold"], d["intensity"], s=10, alpha=0.7)
            mae = (d["intensity"] - d["gold"]).abs().mean()
            ax.set_title(f"{j} / {m}\nMAE {mae:.2f}", fontsize=9)
            ax.set_xlim(-10.5, 10.5)
            ax.set_ylim(-10.5, 10.5)
            if i == len(judges) - 1:
                ax.set_xlabel("gold intensity (VIDB test)")
            if c == 0:
                ax.set_ylabel("evaluator score")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
