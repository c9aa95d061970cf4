"""The build_vidb stage: utilities -> calibrated intensities, flags, filtered subset, splits, the release folder.

Calibration (per value, since intensities of different values are not comparable):
- ``isotonic``: a bounded monotone map from utility to [-10, 10], fitted by isotonic regression of the reference
  intensities on the utilities of the texts that carry one (at least ``min_reference`` texts with 2+ distinct
  reference intensities); linear between fitted points, clipped outside them.
- ``quantile`` (fallback, a value without enough reference intensities, e.g. ValueNet's -1/0/+1 labels): an affine
  map that puts the centre ``c`` (the median utility of the value's neutral texts, direction 0, if it has any;
  else the median of all its texts) at 0 and ``c +/- s`` at +/-10, with ``s`` the larger distance from ``c`` to the
  2nd or 98th utility percentile; clipped to [-10, 10]. It keeps the sign of a text relative to the neutral texts
  but its scale is only as meaningful as the spread of the value's corpus.
The 95 % interval maps ``utility +/- 1.96 SE`` through the same monotone map, so it always brackets the intensity.

Flags (``;``-separated reasons; a flagged text stays in ``full`` and is left out of ``filtered``):
``unplaced`` (no utility: never ranked, or outside the main connected component), ``few_rankings``,
``judge_disagreement`` (reliable judges place it far apart), ``reference_disagreement`` (the intensity is far from
its reference intensity, or contradicts its direction label), ``uncertain`` (a wide interval).

Splits: stratified by (value, direction), assigned systematically within each stratum after a seeded shuffle, so
every value and direction is spread over train/validation/test in the configured proportions. ``filtered`` keeps
the split of each row in ``full`` (no text moves between splits across configs).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from builders.aggregate import read_valid_rankings
from validation.rejects import RejectSink, validate_file, validate_rows
from validation.schemas import RANKING_COLUMNS, SPLITS, TextsSchema, UtilitiesSchema, VidbSchema
from valueflow.io import atomic_dir, check_outputs, read_table, stage_records, write_json, write_metrics, write_parquet
from valueflow.params import DEFAULT_PARAMS, StageParams, load_params
from valueflow.stats import pairwise_accuracy

VIDB_COLUMNS = list(VidbSchema.to_schema().columns)


class BuildConfig(StageParams):
    """The ``build_vidb`` section of params.yaml."""

    section: ClassVar[str] = "build_vidb"

    texts: Path = Path("data/texts.parquet")
    utilities: Path = Path("data/utilities.parquet")
    rankings: Path = Path("data/rankings.parquet")
    out_dir: Path = Path("release/vidb")
    plots_dir: Path = Path("plots")
    repo_id: str = "valueflow/vidb"  # shown in the card's loading snippet
    seed: int = 0
    split_fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    min_reference: int = Field(4, ge=2)
    min_rankings: int = Field(2, ge=0)
    max_judge_spread: float = Field(0.5, ge=0, le=1)
    max_reference_gap: float = Field(5.0, ge=0)
    max_direction_conflict: float = Field(3.0, ge=0)  # direction +1 but intensity below -3 (or the mirror) is a conflict
    max_ci_width: float = Field(12.0, gt=0)
    # the records of the runs that made the inputs (None: where those runs wrote them, valueflow.io.stage_records:
    # metrics/<stage>.json for the pipeline's files, <input>.metrics.json beside an ad-hoc run's)
    collect_metrics: Path | None = None  # k, m and judges, for the card
    aggregate_metrics: Path | None = None  # reliabilities and the prior, for the card
    rejected_dir: Path | None = None  # a folder of every stage's rejects, counted in the card
    prior_sd: float | None = Field(None, gt=0)  # None: the aggregate stage's (read from its metrics or params)
    root: Path = Path(".")

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split(s) {', '.join(unknown)}; splits: {', '.join(SPLITS)}")
        if any(f < 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be >= 0 and sum to 1, got {v}")
        return v

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PARAMS, **overrides: Any) -> BuildConfig:
        """As :meth:`StageParams.load`; without its own ``prior_sd`` the card shows the aggregate stage's."""
        cfg = super().load(path, **overrides)
        if cfg.prior_sd is None:
            params = load_params(path)
            if isinstance(params.get("aggregate"), dict) and params["aggregate"].get("prior_sd") is not None:
                cfg.prior_sd = float(params["aggregate"]["prior_sd"])
        return cfg


# -- calibration ---------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    method: str
    x: np.ndarray  # knots (utility)
    y: np.ndarray  # intensities at the knots

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Intensity of utility ``u``: the map between the knots, and beyond the outermost knots a straight
        continuation with the map's mean slope (clipped to [-10, 10]).

        A flat continuation would give every text more extreme than the most extreme reference text the same
        intensity and a zero-width interval, so ``uncertain`` could never fire in the tails.
        """
        u = np.asarray(u, dtype=float)
        out = np.full(u.shape, np.nan)
        ok = ~np.isnan(u)
        if len(self.x) == 1:
            out[ok] = self.y[0]
            return np.clip(out, -10.0, 10.0)
        v = u[ok]
        res = np.interp(v, self.x, self.y)
        span = float(self.x[-1] - self.x[0])
        slope = max(float(self.y[-1] - self.y[0]) / span, 0.0) if span > 0 else 0.0
        res = np.where(v > self.x[-1], self.y[-1] + slope * (v - self.x[-1]), res)
        res = np.where(v < self.x[0], self.y[0] + slope * (v - self.x[0]), res)
        out[ok] = res
        return np.clip(out, -10.0, 10.0)


def fit_calibration(utility: np.ndarray, reference: np.ndarray, direction: np.ndarray, min_reference: int) -> Calibration:
    """Isotonic utility -> [-10, 10] on texts with reference intensities; the quantile-affine fallback otherwise."""
    from sklearn.isotonic import IsotonicRegression

    placed = ~np.isnan(utility)
    has_ref = placed & ~np.isnan(reference)
    if has_ref.sum() >= min_reference and len(np.unique(reference[has_ref])) >= 2:
        iso = IsotonicRegression(y_min=-10, y_max=10, increasing=True, out_of_bounds="clip")
        iso.fit(utility[has_ref], reference[has_ref])
        return Calibration("isotonic", np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float))
    u = utility[placed]
    if not len(u):
        return Calibration("none", np.array([0.0]), np.array([0.0]))
    neutral = placed & (direction == 0)
    centre = float(np.median(utility[neutral])) if neutral.any() else float(np.median(u))
    lo, hi = np.percentile(u, [2, 98])
    # each side gets its own scale: the 2nd percentile maps to -10 and the 98th to +10 (one common scale would
    # leave the narrower side short of its end of the scale)
    below, above = centre - lo, hi - centre
    if below <= 0 and above <= 0:
        return Calibration("quantile", np.array([centre]), np.array([0.0]))
    if below <= 0:  # nothing below the centre: mirror the other side
        below = above
    if above <= 0:
        above = below
    return Calibration("quantile", np.array([centre - below, centre, centre + above]), np.array([-10.0, 0.0, 10.0]))


# -- splits ----------------------------------------------------------------------------------------------------
def stratified_splits(df: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Split per (value, direction) stratum: seeded order within the stratum, then systematic assignment.

    Systematic assignment with a running quota gives every stratum's i-th text the split whose cumulative share is
    furthest behind, so small strata are spread as evenly as their size allows and the totals match the fractions.
    """
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    share = np.array([fractions[s] for s in names], dtype=float)
    share = share / share.sum()
    key = [hashlib.sha1(f"{seed}\x1f{t}".encode()).hexdigest() for t in df["text_id"]]
    order = pd.DataFrame(
        {"value": df["value"].to_numpy(), "direction": df["direction"].astype("Float64").fillna(9).to_numpy(), "key": key},
        index=df.index,
    ).sort_values(["value", "direction", "key"])
    split = pd.Series("", index=df.index, dtype=object)
    counts = np.zeros(len(names))
    offset = 0
    for idx in order.groupby(["value", "direction"], sort=True).groups.values():
        local = np.zeros(len(names))
        for n, i in enumerate(order.loc[idx].index):
            # the split furthest behind its quota, counting this stratum and (less) the global totals
            deficit = share * (n + 1) - local + 0.01 * (share * (offset + n + 1) - counts)
            s = int(np.argmax(deficit))
            local[s] += 1
            counts[s] += 1
            split.at[i] = names[s]
        offset += len(idx)
    return split.astype(str)


# -- the build -------------------------------------------------------------------------------------------------
def _flags(df: pd.DataFrame, cfg: BuildConfig) -> pd.Series:
    reasons: list[list[str]] = [[] for _ in range(len(df))]
    checks = {
        "unplaced": df["utility"].isna(),
        "few_rankings": df["n_rankings"] < cfg.min_rankings,
        "judge_disagreement": df["judge_spread"] > cfg.max_judge_spread,
        "reference_disagreement": ((df["intensity"] - df["reference_intensity"]).abs() > cfg.max_reference_gap).fillna(False)
        | (df["direction"].astype("Float64").fillna(0).astype(float) * df["intensity"].fillna(0) < -cfg.max_direction_conflict),
        "uncertain": ((df["intensity_ci_high"] - df["intensity_ci_low"]) > cfg.max_ci_width).fillna(False),
    }
    for name, mask in checks.items():
        for i in np.flatnonzero(mask.to_numpy(dtype=bool)):
            reasons[i].append(name)
    return pd.Series([";".join(r) for r in reasons], index=df.index, dtype=str)


def build_release(cfg: BuildConfig) -> tuple[pd.DataFrame, dict, Path]:
    """The ``build_vidb`` stage: :func:`build_vidb` with the generated dataset card built into the same folder
    (swapped in whole with the data); returns (full, stats, card path)."""
    from cards.dataset_card import write_dataset_card

    full, stats = build_vidb(cfg, card=lambda folder, st: write_dataset_card(folder, st, repo_id=cfg.repo_id))
    return full, stats, cfg.root / cfg.out_dir / "README.md"


def build_vidb(cfg: BuildConfig, card: Callable[[Path, dict], object] | None = None) -> tuple[pd.DataFrame, dict]:
    """Calibrate, flag, split and write ``release/vidb`` (data files, stats.json and, with ``card``, the card).

    ``card(folder, stats)`` writes the dataset card into the folder being built (:func:`build_release` passes the
    cards package's renderer).
    """
    started = time.perf_counter()
    sink = RejectSink("build_vidb", root=cfg.root, out=cfg.out_dir)
    check_outputs({"build_vidb.out_dir folder": cfg.root / cfg.out_dir, "rejected rows": sink.path},
                  {"build_vidb.texts": cfg.root / cfg.texts, "build_vidb.utilities": cfg.root / cfg.utilities,
                   "build_vidb.rankings": cfg.root / cfg.rankings})
    texts = validate_rows(
        read_table(cfg.root / cfg.texts, required=tuple(TextsSchema.to_schema().columns)), TextsSchema, sink, file=str(cfg.texts)
    )
    utilities = validate_file(read_table(cfg.root / cfg.utilities), UtilitiesSchema, str(cfg.utilities))
    df = texts.merge(utilities.drop(columns=["value"]), on="text_id", how="left", validate="one_to_one")
    missing = df["status"].isna()
    if missing.any():
        sink.add(df[missing], "text has no row in the utilities file", file=str(cfg.utilities), column="text_id")
        df = df[~missing].copy()

    calibrations: dict[str, dict] = {}
    parts = []
    for value, g in df.groupby("value", sort=True):
        g = g.copy()
        u = g["utility"].to_numpy(float)
        se = g["utility_se"].to_numpy(float)
        cal = fit_calibration(u, g["reference_intensity"].to_numpy(float), g["direction"].astype("Float64").to_numpy(float, na_value=np.nan), cfg.min_reference)
        g["intensity"] = cal(u)
        g["intensity_ci_low"] = np.minimum(cal(u - 1.96 * se), g["intensity"])
        g["intensity_ci_high"] = np.maximum(cal(u + 1.96 * se), g["intensity"])
        calibrations[value] = {"method": cal.method, "knots": len(cal.x),
                               "reference_texts": int(g["reference_intensity"].notna().sum())}
        parts.append(g)
    df = pd.concat(parts).sort_values(["theory", "value", "text_id"]).reset_index(drop=True)
    df["flag"] = _flags(df, cfg)
    df["in_filtered"] = (df["flag"] == "").astype(bool)
    df["split"] = stratified_splits(df, cfg.split_fractions, cfg.seed)
    full = VidbSchema.validate(df[VIDB_COLUMNS], lazy=True)

    # the raw rankings config holds the rankings the aggregate used; their rejects are already counted in
    # data/rejected/aggregate.parquet, so this sink is not written again
    rankings = read_valid_rankings(cfg.root / cfg.rankings, texts, RejectSink("aggregate"))
    rankings = rankings[RANKING_COLUMNS].reset_index(drop=True)
    for column in ("window", "order"):
        rankings[column] = rankings[column].map(list)

    # the release is built aside and swapped in whole, card included: a crash mid-build leaves the previous
    # release as it was, never a mix that `publish` would push, and files of an older layout do not linger
    counts: dict[str, dict[str, int]] = {"full": {}, "filtered": {}}
    with atomic_dir(cfg.root / cfg.out_dir) as out:
        for config, rows in (("full", full), ("filtered", full[full["in_filtered"]])):
            for split in SPLITS:
                part = rows[rows["split"] == split].reset_index(drop=True)
                write_parquet(part, out / "data" / config / f"{split}.parquet")
                counts[config][split] = len(part)
        write_parquet(rankings, out / "data" / "rankings" / "train.parquet")
        counts["rankings"] = {"train": len(rankings)}
        stats = _stats(full, rankings, counts, calibrations, cfg)
        stats["build"] = _build_info(cfg, rankings, sink)
        write_json(stats, out / "stats.json")
        if card is not None:
            card(out, stats)
    _write_plot(full, cfg.root / cfg.plots_dir)
    sink.write()
    metrics = {
        "texts": stats["texts"],
        "filtered": stats["filtered"],
        "flagged": stats["flagged"],
        "flags": stats["flags"],
        "rankings": stats["rankings"],
        "splits": counts,
        "calibration_methods": stats["calibration_methods"],
        # consistency checks against the labels the build was made from (reference judge, calibration targets):
        # not held-out quality, and labelled so wherever they are shown
        "spearman_vs_reference": stats["spearman_vs_reference"],
        "pairwise_accuracy_vs_direction": stats["pairwise_accuracy_vs_direction"],
        "consistency_checks_are_in_sample": True,
        "rejected": sink.count,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_metrics("build_vidb", metrics, cfg.root, out=cfg.out_dir)
    return full, stats


def _stats(full: pd.DataFrame, rankings: pd.DataFrame, counts: dict, calibrations: dict, cfg: BuildConfig) -> dict:
    from valueflow.stats import spearman
    from valueflow.taxonomy import get_taxonomy

    tax = get_taxonomy()
    per_value = {}
    for value, g in full.groupby("value", sort=True):
        ref = g["reference_intensity"].astype(float)
        has = ref.notna() & g["intensity"].notna()
        rho = spearman(g.loc[has, "intensity"], ref[has])
        flags: dict[str, int] = {}
        for f in g["flag"]:
            for r in filter(None, f.split(";")):
                flags[r] = flags.get(r, 0) + 1
        per_value[value] = {
            "theory": tax.value(value).theory,
            "texts": len(g),
            "filtered": int(g["in_filtered"].sum()),
            "supports": int((g["direction"] == 1).sum()),
            "opposes": int((g["direction"] == -1).sum()),
            "neutral": int((g["direction"] == 0).sum()),
            "rankings": int((rankings["value"] == value).sum()),
            "mean_intensity": round(float(g["intensity"].mean()), 3) if g["intensity"].notna().any() else None,
            "calibration": calibrations[value]["method"],
            "spearman_vs_reference": None if rho is None else round(rho, 4),
            "flags": flags,
        }
    flag_counts: dict[str, int] = {}
    for v in per_value.values():
        for r, n in v["flags"].items():
            flag_counts[r] = flag_counts.get(r, 0) + n
    rhos = [v["spearman_vs_reference"] for v in per_value.values() if v["spearman_vs_reference"] is not None]
    acc = pairwise_accuracy(full["intensity"].to_numpy(float), full["direction"].astype("Float64").to_numpy(float, na_value=np.nan))
    methods: dict[str, int] = {}
    for c in calibrations.values():
        methods[c["method"]] = methods.get(c["method"], 0) + 1
    sources = (
        full.groupby(["source", "license"]).size().reset_index(name="texts").to_dict("records")
    )
    return {
        "texts": len(full),
        "filtered": int(full["in_filtered"].sum()),
        "flagged": int((full["flag"] != "").sum()),
        "flags": dict(sorted(flag_counts.items())),
        "rankings": len(rankings),
        "judges": sorted(rankings["judge"].unique().tolist()) if len(rankings) else [],
        "values": len(per_value),
        "theories": sorted(full["theory"].unique().tolist()),
        "splits": counts,
        "calibration_methods": methods,
        "spearman_vs_reference": round(float(np.mean(rhos)), 4) if rhos else None,
        "pairwise_accuracy_vs_direction": None if acc is None else round(acc, 4),
        "sources": sources,
        "per_value": per_value,
        "config": {
            "seed": cfg.seed,
            "split_fractions": cfg.split_fractions,
            "min_reference": cfg.min_reference,
            "min_rankings": cfg.min_rankings,
            "max_judge_spread": cfg.max_judge_spread,
            "max_reference_gap": cfg.max_reference_gap,
            "max_direction_conflict": cfg.max_direction_conflict,
            "max_ci_width": cfg.max_ci_width,
        },
    }


def _build_info(cfg: BuildConfig, rankings: pd.DataFrame, sink: RejectSink) -> dict:
    """How the release was built, for the card: window design, judges with reliabilities, rejects per stage."""
    import json

    def load(path: Path) -> dict:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    # each input's own run records: an ad-hoc build over ad-hoc inputs never reads the pipeline's
    made_by = {"ingest": cfg.texts, "collect": cfg.rankings, "aggregate": cfg.utilities}
    records = {stage: stage_records(stage, path, cfg.root) for stage, path in made_by.items()}
    collected = load(cfg.root / cfg.collect_metrics if cfg.collect_metrics else records["collect"][0])
    aggregated = load(cfg.root / cfg.aggregate_metrics if cfg.aggregate_metrics else records["aggregate"][0])
    reliability = aggregated.get("judge_reliability", {})
    judges = {
        name: {"rankings": int(n), "reliability": reliability.get(name)}
        for name, n in rankings["judge"].value_counts().sort_index().items()
    }
    rejected: dict[str, dict[str, int]] = {}
    if cfg.rejected_dir is not None:
        folder = cfg.root / cfg.rejected_dir
        sinks = {p.stem: p for p in sorted(folder.glob("*.parquet")) if p.stem != "build_vidb"} if folder.exists() else {}
    else:
        sinks = {stage: rec[1] for stage, rec in records.items() if rec[1].exists()}
    for stage, path in sinks.items():
        frame = pd.read_parquet(path, columns=["reason"])
        rejected[stage] = {str(r): int(n) for r, n in frame["reason"].value_counts().items()}
    rejected["build_vidb"] = sink.counts_by_reason()
    return {
        "k": collected.get("k"),
        "m": collected.get("m"),
        "prior_sd": cfg.prior_sd,
        "judges": judges,
        "rejected": rejected,
    }


def _write_plot(full: pd.DataFrame, plots: Path) -> None:
    """plots/vidb_calibration.csv (for `dvc plots`) and a PNG grid: utility -> intensity per value, with references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = full[["value", "text_id", "utility", "intensity", "reference_intensity"]].sort_values(["value", "utility"])
    from valueflow.io import atomic_path

    with atomic_path(plots / "vidb_calibration.csv") as tmp:
        data.to_csv(tmp, index=False)
    values = sorted(full["value"].unique())
    cols = 8
    rows = max(1, int(np.ceil(len(values) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, value in zip(axes.ravel(), values):
        g = data[data["value"] == value]
        ax.set_visible(True)
        ax.plot(g["utility"], g["intensity"], "-", color="tab:blue", lw=1)
        ax.scatter(g["utility"], g["reference_intensity"], s=6, color="tab:orange")
        ax.set_title(value, fontsize=7)
        ax.set_ylim(-10.5, 10.5)
        ax.tick_params(labelsize=5)
    fig.suptitle("VIDB calibration: utility -> intensity (line), reference intensities (dots)", fontsize=9)
    fig.tight_layout()
    with atomic_path(plots / "vidb_calibration.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
