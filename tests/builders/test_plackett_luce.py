"""The Plackett-Luce aggregator: recovery of known utilities, agreement with choix, reliability, connectivity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from valueflow.plackett_luce import RankingData, design_windows, fit_plackett_luce, sample_plackett_luce


@pytest.fixture(scope="module")
def synthetic():
    """2,000 texts with known utilities, k = 4, each text in 10 windows (the issue's recovery set-up)."""
    rng = np.random.default_rng(11)
    n = 2000
    theta = rng.normal(0.0, 2.0, n)
    windows = design_windows(n, 4, 10, rng)
    orders = sample_plackett_luce(theta, windows, rng)
    return n, theta, orders, rng


def test_design_puts_every_text_in_m_windows():
    windows = design_windows(14, 4, 6, np.random.default_rng(0))
    counts = np.bincount(windows.ravel(), minlength=14)
    assert windows.shape[1] == 4 and counts.min() == 6 and counts.max() <= 7
    assert all(len(set(w)) == 4 for w in windows)


def test_recovers_known_utilities(synthetic):
    n, theta, orders, _ = synthetic
    fit = fit_plackett_luce(RankingData.from_matrix(orders, n_items=n))
    assert fit.converged and (fit.status == "ok").all()
    assert spearmanr(fit.utility, theta)[0] >= 0.9
    # Laplace SEs are honest: about 95 % of the (shrunk) estimates are within 2 SE of the truth
    z = np.abs(fit.utility - theta) / fit.se
    assert 0.85 <= np.mean(z < 2.0) <= 1.0


def test_a_random_judge_is_discounted(synthetic):
    n, theta, orders, rng = synthetic
    base = spearmanr(fit_plackett_luce(RankingData.from_matrix(orders, n_items=n)).utility, theta)[0]
    noise_windows = design_windows(n, 4, 10, rng)
    noise = np.array([rng.permutation(w) for w in noise_windows])
    data = RankingData.from_matrix(
        np.vstack([orders, noise]), np.r_[np.zeros(len(orders), int), np.ones(len(noise), int)], n_items=n
    )
    fit = fit_plackett_luce(data)
    assert fit.reliability[0] == pytest.approx(1.0)
    assert fit.reliability[1] < 0.1
    assert spearmanr(fit.utility, theta)[0] >= base - 0.02


def test_noisier_judge_gets_lower_reliability(synthetic):
    n, theta, orders, rng = synthetic
    noisy = sample_plackett_luce(theta, design_windows(n, 4, 10, rng), rng, beta=0.3)
    data = RankingData.from_matrix(
        np.vstack([noisy, orders]), np.r_[np.zeros(len(noisy), int), np.ones(len(orders), int)], n_items=n
    )
    rel = fit_plackett_luce(data).reliability
    assert rel[1] == pytest.approx(1.0) and 0.1 < rel[0] < 0.6


def test_anchor_judge_sets_the_scale_and_a_wrong_deterministic_judge_scores_low():
    rng = np.random.default_rng(5)
    n = 60
    truth = rng.normal(0, 2, n)
    windows = design_windows(n, 4, 8, rng)
    reference = np.take_along_axis(windows, np.argsort(-truth[windows], axis=1), axis=1)  # perfectly consistent
    wrong_score = rng.normal(0, 2, n)  # self-consistent too, but unrelated to the truth
    wrong = np.take_along_axis(windows, np.argsort(-wrong_score[windows], axis=1), axis=1)
    data = RankingData.from_matrix(np.vstack([reference, wrong]), np.r_[np.zeros(len(windows), int), np.ones(len(windows), int)], n)
    fit = fit_plackett_luce(data, anchor=np.array([True, False]))
    assert fit.reliability[0] == 1.0 and fit.reliability[1] < 0.2
    assert spearmanr(fit.utility, truth)[0] > 0.9


def test_agrees_with_choix_on_small_data():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(2)
    n = 20
    theta = rng.normal(0, 1, n)
    orders = sample_plackett_luce(theta, design_windows(n, 4, 60, rng), rng)
    ref = choix.ilsr_rankings(n, [tuple(int(i) for i in o) for o in orders], alpha=0.0)
    ours = fit_plackett_luce(RankingData.from_matrix(orders, n_items=n), prior_sd=1e4).utility
    ref, ours = ref - ref.mean(), ours - ours.mean()
    assert (np.argsort(ref) == np.argsort(ours)).all()
    assert np.max(np.abs(ref - ours)) < 0.05


def test_mixed_window_sizes_and_item_lists():
    data = RankingData.from_orders([[0, 1, 2], [1, 2], [2, 0, 1, 3], [3, 0]], judges=[0, 0, 1, 1], n_items=4)
    assert set(data.groups) == {2, 3, 4} and data.n_rankings == 4
    fit = fit_plackett_luce(data)
    assert np.isfinite(fit.utility).all() and (fit.se > 0).all()


def test_disconnected_and_unranked_texts_are_reported_not_scored():
    # texts 0-3 compared among themselves, 4-5 only with each other, 6 never ranked
    data = RankingData.from_orders([[0, 1, 2], [2, 3, 1], [3, 0], [1, 0], [4, 5]], n_items=7)
    fit = fit_plackett_luce(data)
    assert list(fit.status) == ["ok"] * 4 + ["disconnected"] * 2 + ["unranked"]
    assert np.isfinite(fit.utility[:4]).all() and np.isnan(fit.utility[4:]).all() and np.isnan(fit.se[4:]).all()
    assert fit.n_components == 2


def test_diagonal_se_approximation_is_close_to_exact():
    rng = np.random.default_rng(4)
    theta = rng.normal(0, 2, 300)
    data = RankingData.from_matrix(sample_plackett_luce(theta, design_windows(300, 4, 10, rng), rng), n_items=300)
    exact = fit_plackett_luce(data, dense_se_limit=10_000)
    diag = fit_plackett_luce(data, dense_se_limit=10)
    ok = exact.status == "ok"
    assert exact.se_method == "exact" and diag.se_method == "diagonal"
    ratio = diag.se[ok] / exact.se[ok]
    assert 0.6 < np.median(ratio) <= 1.0 + 1e-9


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("spread", [2.0, 200.0])
def test_objective_gradient_is_exact_for_moderate_and_extreme_utilities(spread, threads):
    """The fast objective (shared shift per judge) and its exact fallback (utilities beyond exp's range, as a
    far line-search step produces) both give the derivative of the value they return, with judge weights."""
    from scipy.optimize import approx_fprime

    from valueflow.plackett_luce import _Objective

    rng = np.random.default_rng(8)
    n = 40
    data = RankingData.from_orders([rng.permutation(n)[: rng.integers(2, 6)] for _ in range(300)],
                                   judges=rng.integers(0, 3, 300), n_items=n)
    objective = _Objective(data, np.array([1.0, 0.4, 0.0]), precision=0.1, threads=threads)
    theta = rng.normal(0, spread, n)
    f, grad = objective(theta)
    assert np.isfinite(f)
    numeric = approx_fprime(theta, lambda t: objective(t)[0], 1e-6)
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(grad).max()))
