"""Collecting rankings (resumable, never asking twice) and aggregating them (bad rankings rejected, counted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders.aggregate import AggregateConfig, aggregate
from builders.collect import CollectConfig, build_judges, collect
from valueflow.judges import Judge, JudgeAnswer


class CountingJudge(Judge):
    """Orders by text length; records every window it is asked; can crash on its n-th call."""

    def __init__(self, crash_on_call: int | None = None) -> None:
        self.name = "counting:length@1"
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.calls = 0
        self.crash_on_call = crash_on_call

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        self.calls += 1
        if self.crash_on_call is not None and self.calls == self.crash_on_call:
            raise KeyboardInterrupt("killed mid-collection")
        self.asked += [(value, tuple(w)) for w in windows]
        return [JudgeAnswer(tuple(int(i) for i in np.argsort([-len(t) for t in w], kind="stable"))) for w in windows]


def test_collect_writes_rankings_of_the_window_design(project: Path):
    cfg = CollectConfig(judges=["reference"], k=4, m=3, root=project)
    rankings, metrics = collect(cfg)
    texts = pd.read_parquet(project / "data" / "texts.parquet")
    # one answer per window; a window with tied reference intensities is answered with one chain per tied member
    assert rankings["ranking_id"].str.split(".").str[0].nunique() == metrics["windows_per_judge"]
    assert len(rankings) == metrics["rankings"] >= metrics["windows_per_judge"]
    for _, row in rankings.iterrows():
        assert 2 <= len(row["window"]) <= 4 and sorted(row["order"]) == sorted(row["window"])
    appearances = pd.Series([i for w in rankings["window"] for i in w]).value_counts()
    assert set(appearances.index) == set(texts["text_id"]) and appearances.min() >= 3
    # the reference judge follows the reference intensities
    ref = dict(zip(texts["text_id"], texts["reference_intensity"]))
    for order in rankings["order"]:
        assert all(ref[a] > ref[b] for a, b in zip(order, order[1:]))  # strictly: equal labels are never ordered
    assert json.loads((project / "metrics" / "collect.json").read_text())["k"] == 4


def test_an_interrupted_collection_resumes_without_asking_twice(project: Path):
    cfg = CollectConfig(judges=[], k=4, m=3, chunk_size=2, root=project)
    crashing = CountingJudge(crash_on_call=4)
    with pytest.raises(KeyboardInterrupt):
        collect(cfg, judges=[crashing])
    assert len(crashing.asked) == 6  # three chunks of two windows were answered and stored
    resumed = CountingJudge()
    rankings, metrics = collect(cfg, judges=[resumed])
    asked = crashing.asked + resumed.asked
    assert len(asked) == len(set(asked)) == len(rankings) == metrics["windows_per_judge"]
    assert metrics["judges"]["counting:length@1"]["from_store"] == 6
    again = CountingJudge()
    collect(cfg, judges=[again])
    assert again.asked == []


def test_imported_rankings_are_appended(project: Path, tmp_path: Path):
    first, _ = collect(CollectConfig(judges=["reference"], k=3, m=2, root=project))
    other = first.head(5).assign(judge="external:panel@1", ranking_id=lambda d: "ext-" + d["ranking_id"])
    other.to_json(project / "external.jsonl", orient="records", lines=True)
    rankings, metrics = collect(CollectConfig(judges=["reference"], k=3, m=2, root=project, import_rankings=["external.jsonl"]))
    assert len(rankings) == len(first) + 5 and metrics["imported_rankings"] == {"external.jsonl": 5}


def _bad_rows(rankings: pd.DataFrame, texts: pd.DataFrame) -> pd.DataFrame:
    good = rankings.iloc[0].to_dict()
    other_value_id = texts.loc[texts["value"] != good["value"], "text_id"].iloc[0]
    rows = []
    not_perm = dict(good, ranking_id="bad-perm", order=list(good["order"][:-1]) + [good["order"][0]])
    rows.append(not_perm)
    rows.append(dict(good, ranking_id="bad-unknown", window=list(good["window"][:-1]) + ["no-such-text"],
                     order=list(good["window"][:-1]) + ["no-such-text"]))
    rows.append(dict(good, ranking_id="bad-foreign", window=list(good["window"][:-1]) + [other_value_id],
                     order=list(good["window"][:-1]) + [other_value_id]))
    rows.append(dict(good, ranking_id="bad-size", window=[good["window"][0]], order=[good["window"][0]]))
    rows.append(dict(good))  # duplicate ranking id
    return pd.DataFrame(rows)


def test_bad_rankings_are_rejected_with_reasons_and_the_fit_goes_on(project: Path):
    rankings, _ = collect(CollectConfig(judges=["reference"], k=4, m=4, root=project))
    texts = pd.read_parquet(project / "data" / "texts.parquet")
    bad = _bad_rows(rankings, texts)
    pd.concat([rankings, bad], ignore_index=True).to_parquet(project / "data" / "rankings.parquet", index=False)
    utilities, metrics = aggregate(AggregateConfig(root=project))
    rejected = pd.read_parquet(project / "data" / "rejected" / "aggregate.parquet")
    reasons = " | ".join(rejected["reason"])
    assert len(rejected) == 5 == metrics["rejected"]
    for needle in ("permutation", "unknown text id", "another value", "at least 2", "duplicate ranking_id"):
        assert needle in reasons
    assert metrics["rankings_used"] == len(rankings)
    assert utilities["utility"].notna().all() and len(utilities) == len(texts)
    # the fit follows the reference order
    merged = utilities.merge(texts, on=["text_id", "value"])
    for _, g in merged.groupby("value"):
        assert g["utility"].corr(g["reference_intensity"], method="spearman") > 0.9


def test_reliability_of_a_judge_is_measured_against_the_reference(project: Path):
    shuffler = CountingJudge()  # orders by length: unrelated to value intensity
    shuffler.name = "length:chars@1"
    cfg = CollectConfig(judges=["reference"], k=4, m=4, root=project)

    judges = build_judges(cfg, pd.read_parquet(project / "data" / "texts.parquet")) + [shuffler]
    collect(cfg, judges=judges)
    _, metrics = aggregate(AggregateConfig(root=project))
    rel = metrics["judge_reliability"]
    ref_name = next(n for n in rel if n.startswith("reference:"))
    assert rel[ref_name] == 1.0 and rel["length:chars@1"] < 0.5
    assert all(v["converged"] for v in metrics["per_value"].values())


class FailingJudge(CountingJudge):
    """Cannot answer windows that contain the shortest text (like a judge that times out on them)."""

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        answers = super().rank_windows(value, windows)
        return [JudgeAnswer(None, error="timeout after 1 s") if any(len(t) < 80 for t in w) else a
                for w, a in zip(windows, answers)]


def test_unanswered_windows_are_logged_and_retried_next_run(project: Path):
    cfg = CollectConfig(judges=[], k=4, m=3, root=project)
    failing = FailingJudge()
    rankings, metrics = collect(cfg, judges=[failing])
    stats = metrics["judges"]["counting:length@1"]
    rejected = pd.read_parquet(project / "data" / "rejected" / "collect.parquet")
    assert stats["failed"] > 0 and len(rejected) == stats["failed"] and len(rankings) == stats["collected"]
    assert rejected["reason"].str.contains("timeout").all()
    retry = CountingJudge()
    rankings, _ = collect(cfg, judges=[retry])
    assert len(retry.asked) == stats["failed"] and len(rankings) == metrics["windows_per_judge"]
