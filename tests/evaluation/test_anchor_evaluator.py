"""AnchorEvaluator: the anchored Plackett-Luce fit, sampling, re-asks, missing scores, logs and recomputation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evaluation.anchor_evaluator import AnchorEvaluator, Window, fit_anchored_utility, rescore_from_log
from evaluation.anchors import AnchorPanel
from validation.schemas import ScoresSchema
from valueflow.judges.base import Judge, JudgeAnswer
from valueflow.judges.simulated import SimulatedJudge
from valueflow.taxonomy import UnknownValueError

ANCHORS = np.linspace(-9, 9, 19)  # one anchor per intensity point pair


@pytest.fixture()
def panel() -> AnchorPanel:
    table = pd.DataFrame({"text": [f"anchor {a:+.1f}" for a in ANCHORS], "value": "benevolence", "intensity": ANCHORS})
    return AnchorPanel._from_raw(table, "memory")


@pytest.fixture()
def truth() -> dict[str, float]:
    out = {f"anchor {a:+.1f}": float(a) for a in ANCHORS}
    out.update({f"text {x:+.2f}": x for x in np.linspace(-8.5, 8.5, 12)})
    return out


def texts_of(truth):
    return [t for t in truth if t.startswith("text")]


def test_fit_places_text_between_the_anchors_it_sits_between():
    # shown: a(-5), TEXT, b(0), c(5); the judge says c > b > TEXT > a
    w = Window(("a", "b", "c"), (-5.0, 0.0, 5.0), position=1, order=(3, 2, 1, 0))
    fit = fit_anchored_utility([w])
    assert -5.0 < fit.intensity < 0.0 and fit.guard == ""
    beats_neg = Window(("a", "b"), (-6.0, 2.0), position=0, order=(2, 0, 1))  # b > text > a
    fit = fit_anchored_utility([beats_neg] * 3)
    assert -6.0 < fit.intensity < 2.0 and fit.se > 0 and fit.n_windows == 3


def test_window_consistency_guard_just_beyond_the_extreme_anchor():
    top = Window(("a", "b"), (-3.0, 4.0), position=2, order=(2, 1, 0))  # text first
    bottom = Window(("a", "b"), (-3.0, 4.0), position=0, order=(2, 1, 0))  # text last
    assert fit_anchored_utility([top], guard_margin=0.5).intensity == pytest.approx(4.5)
    assert fit_anchored_utility([bottom], guard_margin=0.5).intensity == pytest.approx(-3.5)
    high = Window(("a",), (9.8,), position=0, order=(0, 1))
    assert fit_anchored_utility([high]).intensity == 10.0  # clipped to the scale
    assert fit_anchored_utility([Window(("a",), (1.0,), 0, None, "bad")]).intensity is None


def test_noiseless_judge_recovers_true_intensities(panel, truth):
    texts = texts_of(truth)
    scores = AnchorEvaluator(SimulatedJudge(truth, noise=0.01), panel, progress=False).score(texts, "benevolence")
    ScoresSchema.validate(scores)
    err = np.abs(scores["intensity"].to_numpy() - np.array([truth[t] for t in texts]))
    assert err.max() < 2.0 and err.mean() < 1.0
    assert (scores["judge_calls"] == 3).all() and scores["missing_reason"].isna().all()
    assert (scores["intensity_se"] > 0).all()
    windows = json.loads(scores["windows"].iloc[0])
    assert len(windows) == 3 and all(len(w["anchors"]) == 5 for w in windows)


def test_text_position_is_randomised_and_can_be_fixed_first(panel, truth):
    texts = texts_of(truth)
    judge = SimulatedJudge(truth, noise=1.0)
    rnd = AnchorEvaluator(judge, panel, progress=False).score(texts, "benevolence")
    positions = {w["position"] for ws in rnd["windows"] for w in json.loads(ws)}
    assert len(positions) > 3
    first = AnchorEvaluator(judge, panel, randomise_position=False, progress=False).score(texts, "benevolence")
    assert {w["position"] for ws in first["windows"] for w in json.loads(ws)} == {0}


def test_same_seed_same_windows_alone_or_in_a_batch(panel, truth):
    texts = texts_of(truth)
    batch = AnchorEvaluator(SimulatedJudge(truth, noise=0.0), panel, seed=3, progress=False).score(texts, "benevolence")
    alone = AnchorEvaluator(SimulatedJudge(truth, noise=0.0), panel, seed=3, progress=False).score(
        texts[4:5], "benevolence", item_ids=["4"]
    )
    assert alone["windows"].iloc[0] == batch["windows"].iloc[4]
    assert alone["intensity"].iloc[0] == batch["intensity"].iloc[4]
    other = AnchorEvaluator(SimulatedJudge(truth, noise=0.0), panel, seed=4, progress=False).score(texts, "benevolence")
    assert other["windows"].tolist() != batch["windows"].tolist()


@pytest.mark.parametrize("sampling", ["bucket", "random", "adaptive"])
def test_every_sampling_mode_scores_within_the_scale(panel, truth, sampling):
    texts = texts_of(truth)
    scores = AnchorEvaluator(SimulatedJudge(truth, noise=0.5), panel, sampling=sampling, progress=False).score(texts, "benevolence")
    assert scores["intensity"].between(-10, 10).all()
    rho = pd.Series(scores["intensity"].to_numpy()).corr(pd.Series([truth[t] for t in texts]), method="spearman")
    assert rho > 0.8


def test_bucket_windows_span_the_panel_range(panel, truth):
    scores = AnchorEvaluator(SimulatedJudge(truth), panel, progress=False).score(texts_of(truth)[:3], "benevolence")
    for ws in scores["windows"]:
        for w in json.loads(ws):
            assert min(w["intensities"]) < -5 and max(w["intensities"]) > 5


class FlakyJudge(Judge):
    """Answers garbage for texts in ``bad_always``, garbage once then sense for ``bad_once``."""

    name = "flaky"

    def __init__(self, inner: Judge, bad_always: set[str], bad_once: set[str]) -> None:
        self.inner, self.bad_always, self.bad_once, self.seen = inner, bad_always, bad_once, set()

    def rank_windows(self, value, windows):
        out = []
        for w, ans in zip(windows, self.inner.rank_windows(value, windows)):
            hit = set(w) & (self.bad_always | (self.bad_once - self.seen))
            self.seen |= set(w) & self.bad_once
            out.append(JudgeAnswer((0, 0, 1, 2, 3, 4), raw="[1, 1, 2, 3, 4, 5]") if hit else ans)
        return out

    def rate(self, value, texts):
        return [None if t in self.bad_always else x for t, x in zip(texts, self.inner.rate(value, texts))]


def test_non_permutation_is_reasked_then_logged_and_left_out(panel, truth, tmp_path):
    texts = texts_of(truth)[:3]
    judge = FlakyJudge(SimulatedJudge(truth, noise=0.0), bad_always={texts[0]}, bad_once={texts[1]})
    log = tmp_path / "log.jsonl"
    scores = AnchorEvaluator(judge, panel, reasks=1, log=log, progress=False).score(texts, "benevolence")
    dead, reasked, fine = scores.to_dict("records")
    assert np.isnan(dead["intensity"]) and "not a permutation" in dead["missing_reason"]
    assert dead["judge_calls"] == 6  # every window asked twice
    assert reasked["judge_calls"] == 4 and not np.isnan(reasked["intensity"])
    assert fine["judge_calls"] == 3
    records = [json.loads(line) for line in log.read_text().splitlines()]
    bad = [r for r in records if r["kind"] == "window" and r["item_id"] == "0"]
    assert len(bad) == 6 and all(r["order"] is None and r["raw"] == "[1, 1, 2, 3, 4, 5]" for r in bad)


class BrokenJudge(Judge):
    name = "broken"

    def rank_windows(self, value, windows):
        raise ConnectionError("server unreachable")


def test_judge_failure_and_empty_inputs_give_missing_scores_with_reasons(panel):
    scores = AnchorEvaluator(BrokenJudge(), panel, progress=False).score(["a real text", "  "], "benevolence")
    assert scores["intensity"].isna().all()
    assert "server unreachable" in scores["missing_reason"].iloc[0]
    assert scores["missing_reason"].iloc[1] == "empty text" and scores["judge_calls"].iloc[1] == 0
    no_anchors = AnchorEvaluator(BrokenJudge(), panel, progress=False).score(["text"], "justice")
    assert "no anchors for value 'justice'" in no_anchors["missing_reason"].iloc[0]


def test_unknown_value_names_the_valid_values(panel, truth):
    ev = AnchorEvaluator(SimulatedJudge(truth), panel, progress=False)
    with pytest.raises(UnknownValueError, match="unknown value 'kindness'; valid values: .*benevolence"):
        ev.score(["x"], "kindness")
    with pytest.raises(UnknownValueError):
        ev.score_many(pd.DataFrame({"item_id": ["1"], "text": ["x"], "value": ["kindness"]}))


def test_score_many_keeps_input_order_across_values(panel, truth):
    texts = texts_of(truth)[:4]
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "text": texts, "value": ["benevolence", "justice", "Benevolence", "justice"]})
    out = AnchorEvaluator(SimulatedJudge(truth), panel, progress=False).score_many(items)
    assert out["item_id"].tolist() == ["a", "b", "c", "d"]
    assert out["value"].tolist() == ["benevolence", "justice", "benevolence", "justice"]
    assert out["intensity"].notna().tolist() == [True, False, True, False]


@pytest.mark.parametrize("mode", ["ranking", "rating"])
def test_scores_recomputed_from_the_log_without_the_judge(panel, truth, tmp_path, mode):
    log = tmp_path / "log.jsonl"
    texts = texts_of(truth)
    judge = FlakyJudge(SimulatedJudge(truth, noise=1.0), set(), {texts[2]})
    scores = AnchorEvaluator(judge, panel, sampling="adaptive", mode=mode, log=log, progress=False).score(texts, "benevolence")
    again = rescore_from_log(log)
    pd.testing.assert_frame_equal(scores.reset_index(drop=True), again.reset_index(drop=True))
    if mode == "ranking":
        changed = rescore_from_log(log, prior_precision=1.0)
        assert (changed["intensity"].abs() <= scores["intensity"].abs() + 1e-9).all()


def test_rating_mode_is_the_mean_of_m_ratings(panel, truth):
    texts = texts_of(truth)
    scores = AnchorEvaluator(SimulatedJudge(truth, rating_noise=0.0, rating_bias=1.0), panel, mode="rating", progress=False).score(texts, "benevolence")
    np.testing.assert_allclose(scores["intensity"], np.clip([truth[t] + 1.0 for t in texts], -10, 10))
    assert (scores["judge_calls"] == 3).all()


def test_auto_scale_recovers_the_judges_sharpness_and_is_replayed_from_the_log(panel, truth, tmp_path):
    texts = texts_of(truth) * 4  # more windows for a steadier estimate
    ids = [str(i) for i in range(len(texts))]
    log = tmp_path / "log.jsonl"
    ev = AnchorEvaluator(SimulatedJudge(truth, noise=3.0), panel, scale="auto", log=log, progress=False)
    scores = ev.score(texts, "benevolence", item_ids=ids)
    assert 0.2 < ev._scale < 0.5  # the judge's true sharpness is 1/3 utility per point
    pd.testing.assert_frame_equal(rescore_from_log(log), scores)
    sharp = AnchorEvaluator(SimulatedJudge(truth, noise=0.0), panel, scale="auto", progress=False)
    sharp.score(texts, "benevolence", item_ids=ids)
    assert sharp._scale == 20.0  # a judge that never errs runs to the upper bound


def test_adaptive_sampling_beats_bucket_at_equal_calls_for_a_sharp_judge():
    rng = np.random.default_rng(5)
    anchors = rng.uniform(-10, 10, 200)
    panel = AnchorPanel._from_raw(pd.DataFrame({"text": [f"a{i}" for i in range(200)], "value": "care-harm", "intensity": anchors}), "m")
    true = rng.uniform(-9, 9, 80)
    texts = [f"t{i}" for i in range(80)]
    truth = {**dict(zip(texts, true)), **{f"a{i}": a for i, a in enumerate(anchors)}}
    mae = {}
    for sampling in ("bucket", "adaptive"):
        s = AnchorEvaluator(SimulatedJudge(truth, noise=0.3, seed=2), panel, sampling=sampling, progress=False).score(texts, "care-harm")
        mae[sampling] = np.abs(s["intensity"].to_numpy() - true).mean()
    assert mae["adaptive"] < 0.8 * mae["bucket"]


def test_a_value_with_few_anchors_is_warned_of_once(panel, truth, capsys):
    near = ANCHORS[np.abs(ANCHORS) <= 4]
    few = AnchorPanel._from_raw(pd.DataFrame({"text": [f"anchor {a:+.1f}" for a in near], "value": "benevolence",
                                              "intensity": near}), "small")
    evaluator = AnchorEvaluator(SimulatedJudge(truth, noise=0.01), few, progress=False)
    evaluator.score(texts_of(truth)[:2], "benevolence")
    evaluator.score(texts_of(truth)[2:4], "benevolence")
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "9 anchors for 'benevolence' in panel small" in warned[0]
    AnchorEvaluator(SimulatedJudge(truth, noise=0.01), panel, progress=False).score(texts_of(truth)[:2], "benevolence")
    AnchorEvaluator(SimulatedJudge(truth, noise=0.01), few, mode="rating", progress=False).score(["x"], "benevolence")
    assert "warning:" not in capsys.readouterr().err  # 19 anchors, or no anchors asked for


def test_score_many_refuses_duplicate_item_value_pairs(panel, truth):
    items = pd.DataFrame({"item_id": ["a", "a"], "text": ["x", "y"], "value": ["benevolence", "Benevolence"]})
    with pytest.raises(ValueError, match="appears more than once"):
        AnchorEvaluator(SimulatedJudge(truth), panel, progress=False).score_many(items)
