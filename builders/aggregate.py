"""The aggregate stage: raw rankings -> per-text Plackett-Luce utilities, per value.

Bad rankings never stop the stage: a ranking whose order is not a permutation of its window, that names an
unknown text id or a text of another value, whose window has fewer than 2 texts, or that repeats a ranking id
(the first is kept) is written to ``data/rejected/aggregate.parquet`` with its reason and counted.

Besides the utility and its Laplace SE, each text gets ``judge_spread``: the largest difference between two
reliable judges' mean relative position of the text in its windows (0 = always first, 1 = always last). The build
stage flags texts on which judges disagree strongly with it.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from validation.rejects import RejectSink, validate_rows
from validation.schemas import RANKING_COLUMNS, RankingsSchema, TextsSchema, UtilitiesSchema
from valueflow.io import InputError, check_outputs, read_table, stage_records, write_metrics, write_parquet
from valueflow.params import StageParams
from valueflow.plackett_luce import RankingData, fit_plackett_luce


class AggregateConfig(StageParams):
    """The ``aggregate`` section of params.yaml."""

    section: ClassVar[str] = "aggregate"

    texts: Path = Path("data/texts.parquet")
    rankings: Path = Path("data/rankings.parquet")
    out: Path = Path("data/utilities.parquet")
    prior_sd: float = Field(3.0, gt=0)
    reliability: bool = True
    reliability_sd: float = Field(1.0, gt=0)
    anchor_judges: tuple[str, ...] = ("reference",)  # judge kinds whose reliability is fixed to 1 (the yardstick)
    spread_min_reliability: float = Field(0.3, ge=0)  # judges below this relative reliability do not count in judge_spread
    dense_se_limit: int = Field(3000, ge=0)
    workers: int | None = Field(None, ge=1)  # cores for the fits: values in parallel processes, and threads within a fit when values are fewer; None: every available core
    root: Path = Path(".")


def _as_id_list(x: object) -> object:
    """Window/order cells as lists of str: Parquet gives arrays, CSV gives JSON strings."""
    if isinstance(x, str):
        try:
            x = json.loads(x)
        except ValueError:
            return x
    if isinstance(x, (list, tuple, np.ndarray)):  # map and tolist iterate in C: millions of cells
        return list(map(str, x.tolist() if isinstance(x, np.ndarray) else x))
    return x


def read_valid_rankings(path: Path, texts: pd.DataFrame, sink: RejectSink) -> pd.DataFrame:
    """The rankings of ``path`` that can be used; every other row goes to ``sink`` with its reason."""
    raw = read_table(path, required=tuple(RANKING_COLUMNS))
    raw = raw.reset_index(drop=True)
    for column in ("window", "order"):
        raw[column] = raw[column].map(_as_id_list).astype(object)
    for column in ("ranking_id", "value", "judge", "created_at", "prompt_hash"):
        raw[column] = raw[column].astype(str)
    dup = raw["ranking_id"].duplicated(keep="first")
    if dup.any():
        sink.add(raw[dup], "duplicate ranking_id (the first one is kept)", file=str(path), column="ranking_id")
    df = validate_rows(raw[~dup], RankingsSchema, sink, file=str(path))
    # every window's ids at once (millions of rankings): the owner value of each id, compared per ranking
    sizes = df["window"].map(len).to_numpy(dtype=np.int64)
    flat = pd.Index(texts["text_id"]).get_indexer(np.concatenate(df["window"].to_list()) if len(df) else [])
    owner_code = pd.Index(sorted(set(texts["value"]) | set(df["value"])))
    text_value = owner_code.get_indexer(texts["value"])
    ranking_value = np.repeat(owner_code.get_indexer(df["value"]), sizes)
    row = np.repeat(np.arange(len(df)), sizes)
    missing = np.bincount(row, weights=flat < 0, minlength=len(df)) > 0
    other = np.bincount(row, weights=(flat >= 0) & (text_value[flat] != ranking_value), minlength=len(df)) > 0
    unknown = df.index[missing].tolist()
    foreign = df.index[other & ~missing].tolist()
    if unknown:
        sink.add(df.loc[unknown], "window names an unknown text id", file=str(path), column="window")
    if foreign:
        sink.add(df.loc[foreign], "window holds a text of another value", file=str(path), column="window")
    return df.drop(index=unknown + foreign)


def _index_rankings(rankings: pd.DataFrame, text_ids: pd.Index, judges: pd.Index) -> RankingData:
    """Order lists of ids -> (R, k) index matrices per window size, without a Python loop per ranking in the fit."""
    sizes = rankings["order"].map(len).to_numpy()
    groups = {}
    judge_idx = judges.get_indexer(rankings["judge"])
    for k in np.unique(sizes):
        sel = sizes == k
        flat = np.concatenate(rankings.loc[sel, "order"].to_list())
        groups[int(k)] = (text_ids.get_indexer(flat).reshape(-1, int(k)).astype(np.int64), judge_idx[sel].astype(np.int64))
    return RankingData(len(text_ids), groups, len(judges))


def _judge_spread(data: RankingData, reliability: np.ndarray, min_rel: float) -> np.ndarray:
    """Per text: max - min over reliable judges of the text's mean relative position (0 first .. 1 last)."""
    n, J = data.n_items, data.n_judges
    sums = np.zeros((J, n))
    counts = np.zeros((J, n))
    for orders, judges in data.groups.values():
        k = orders.shape[1]
        pos = np.broadcast_to(np.arange(k) / (k - 1), orders.shape)
        jj = np.broadcast_to(judges[:, None], orders.shape)
        np.add.at(sums, (jj.ravel(), orders.ravel()), pos.ravel())
        np.add.at(counts, (jj.ravel(), orders.ravel()), 1.0)
    reliable = reliability >= min_rel * max(float(reliability.max()), 1e-12)
    with np.errstate(invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)[reliable]
    if mean.shape[0] < 2:
        return np.zeros(n)
    spread = np.nanmax(mean, axis=0) - np.nanmin(mean, axis=0)
    return np.nan_to_num(spread, nan=0.0)


def _fit_one(args: tuple) -> object:
    data, anchor, options = args
    return fit_plackett_luce(data, anchor=anchor, **options)


def _fit_values(cfg: AggregateConfig, jobs: list[tuple[RankingData, np.ndarray]]):
    """The fits of every value, in order: the values are independent, so with more than one core they run in
    parallel processes (one value per task, largest first so that no core waits on the biggest at the end)."""
    cores = cfg.workers or len(os.sched_getaffinity(0))
    workers = min(cores, len(jobs))
    # cores left over when there are fewer values than cores (one big value) split each fit's evaluations
    options = {"prior_sd": cfg.prior_sd, "estimate_reliability": cfg.reliability,
               "reliability_sd": cfg.reliability_sd, "dense_se_limit": cfg.dense_se_limit,
               "threads": max(1, cores // max(workers, 1))}
    tasks = [(data, anchor, options) for data, anchor in jobs]
    if workers <= 1:
        yield from map(_fit_one, tasks)
        return
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i][0].n_rankings)
    with ProcessPoolExecutor(workers) as pool:
        futures = {i: pool.submit(_fit_one, tasks[i]) for i in order}
        for i in range(len(tasks)):
            yield futures[i].result()


def aggregate(cfg: AggregateConfig) -> tuple[pd.DataFrame, dict]:
    """Fit Plackett-Luce per value; write utilities for every text (NaN where a text cannot be placed)."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    sink = RejectSink("aggregate", root=cfg.root, out=cfg.out)
    check_outputs({"aggregate.out": cfg.root / cfg.out, "rejected rows": sink.path,
                   "metrics": stage_records("aggregate", cfg.out, cfg.root)[0]},
                  {"aggregate.texts": cfg.root / cfg.texts, "aggregate.rankings": cfg.root / cfg.rankings})
    raw_texts = read_table(cfg.root / cfg.texts, required=tuple(TextsSchema.to_schema().columns))
    texts = validate_rows(raw_texts, TextsSchema, sink, file=str(cfg.texts))
    rankings = read_valid_rankings(cfg.root / cfg.rankings, texts, sink)
    if rankings.empty:  # nothing to do is not success: "0/137 texts placed" must not pass as a result
        raise InputError(f"{cfg.rankings}: no usable rankings to aggregate ({sink.count} row(s) rejected"
                         + (f", e.g. {next(iter(sink.counts_by_reason()))})" if sink.count else ")"))

    parts, per_value = [], {}
    reliability_rows: dict[str, list[float]] = {}
    values, jobs = sorted(texts["value"].unique()), []
    by_value = {value: group for value, group in rankings.groupby("value")}
    for value in values:
        ids = pd.Index(sorted(texts.loc[texts["value"] == value, "text_id"]))
        rk = by_value.get(value, rankings.iloc[:0])
        judges = pd.Index(sorted(rk["judge"].unique()))
        data = _index_rankings(rk, ids, judges) if len(rk) else RankingData(len(ids), {}, 1)
        jobs.append((value, ids, len(rk), judges, data))
    fits = _fit_values(cfg, [(data, np.array([j.split(":", 1)[0] in cfg.anchor_judges for j in judges], dtype=bool))
                             for _, _, _, judges, data in jobs])
    for (value, ids, n_rankings, judges, data), fit in zip(jobs, tqdm(fits, total=len(jobs), desc="aggregate",
                                                                        unit="value", disable=None)):
        seen = np.zeros((max(len(judges), 1), len(ids)), dtype=bool)  # judge x text: has ranked it
        for orders, jidx in data.groups.values():
            seen[np.broadcast_to(jidx[:, None], orders.shape).ravel(), orders.ravel()] = True
        n_judges = seen.sum(axis=0).astype(np.int64)
        spread = _judge_spread(data, fit.reliability, cfg.spread_min_reliability) if len(judges) > 1 else np.zeros(len(ids))
        parts.append(
            pd.DataFrame(
                {
                    "text_id": ids.astype(str),
                    "value": value,
                    "utility": fit.utility,
                    "utility_se": fit.se,
                    "n_rankings": fit.n_windows.astype(np.int64),
                    "n_judges": n_judges,
                    "status": fit.status.astype(str),
                    "judge_spread": spread,
                }
            )
        )
        reliabilities = {str(j): round(float(b), 4) for j, b in zip(judges, fit.reliability)}
        for j, b in reliabilities.items():
            reliability_rows.setdefault(j, []).append(b)
        per_value[value] = {
            "texts": len(ids),
            "rankings": n_rankings,
            "unranked": int((fit.status == "unranked").sum()),
            "disconnected": int((fit.status == "disconnected").sum()),
            "components": fit.n_components,
            "converged": fit.converged,
            "iterations": fit.n_iter,
            "neg_log_posterior": round(fit.neg_log_posterior, 4),
            "se_method": fit.se_method,
            "seconds": round(fit.seconds, 4),
            "reliability": reliabilities,
        }
    utilities = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(UtilitiesSchema.to_schema().columns))
    utilities = UtilitiesSchema.validate(utilities, lazy=True)
    write_parquet(utilities, cfg.root / cfg.out)
    sink.write()
    metrics = {
        "texts": len(utilities),
        "rankings_used": len(rankings),
        "rejected": sink.count,
        "rejected_by_reason": sink.counts_by_reason(),
        "placed": int(utilities["utility"].notna().sum()),
        "unranked": int((utilities["status"] == "unranked").sum()),
        "disconnected": int((utilities["status"] == "disconnected").sum()),
        "all_converged": bool(all(v["converged"] for v in per_value.values())),
        "judge_reliability": {j: round(float(np.mean(b)), 4) for j, b in sorted(reliability_rows.items())},
        "mean_utility_se": round(float(utilities["utility_se"].mean()), 4) if len(utilities) else None,
        "fit_seconds": round(sum(v["seconds"] for v in per_value.values()), 3),
        "seconds": round(time.perf_counter() - started, 3),
        "per_value": per_value,
    }
    write_metrics("aggregate", metrics, cfg.root, out=cfg.out)
    return utilities, metrics
