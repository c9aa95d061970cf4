"""Small statistics shared by the stages and benchmarks."""

from __future__ import annotations

import numpy as np


def spearman(x: object, y: object) -> float | None:
    """Spearman rank correlation of paired samples (ties get average ranks).

    Degenerate case, the same for every caller: ``None`` (not NaN, so JSON metrics say ``null``) when the
    correlation is undefined: fewer than 3 pairs, or one side constant.
    """
    from scipy import stats

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    r = stats.spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else None


def pairwise_accuracy(pred: object, gold: object, groups: object = None, min_gap: float = 0.0,
                      block_cells: int = 4_000_000) -> float | None:
    """Share of same-group pairs whose gold values differ (by at least ``min_gap``) that ``pred`` orders the same
    way; a tie in ``pred`` counts half. ``None`` when no pair counts; pairs with a NaN on either side are skipped.

    With ``min_gap = 0`` the counts come from Kendall's tau-b and the tie counts, exactly, in O(n log n): a release
    of a million texts has 5e11 pairs. With a gap they are counted in blocks of rows (about ``block_cells`` pairs
    at a time): all pairs of n texts at once would take O(n^2) memory, some 30 GB for 36K texts.
    """
    x, y = np.asarray(pred, dtype=float), np.asarray(gold, dtype=float)
    g = np.zeros(len(x)) if groups is None else np.asarray(groups)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y, g = x[ok], y[ok], g[ok]
    hits = pairs = 0.0
    for group in np.unique(g):
        xs, ys = x[g == group], y[g == group]
        if min_gap == 0:
            h, n = _concordance(xs, ys)
            hits, pairs = hits + h, pairs + n
            continue
        step = max(1, block_cells // max(len(xs), 1))
        for start in range(0, len(xs), step):
            dy = ys[start : start + step, None] - ys[None, :]
            counted = (dy > 0) & (dy >= min_gap)  # each unordered pair once: (i, j) with gold i above gold j
            dx = (xs[start : start + step, None] - xs[None, :])[counted]
            pairs += dx.size
            hits += float(np.count_nonzero(dx > 0)) + 0.5 * float(np.count_nonzero(dx == 0))
    return hits / pairs if pairs else None


def _tied_pairs(*columns: np.ndarray) -> float:
    """Pairs of rows equal in every column."""
    order = np.lexsort(columns[::-1])
    new_run = np.zeros(len(order), dtype=bool)
    new_run[0] = True
    for c in columns:
        sc = c[order]
        new_run[1:] |= sc[1:] != sc[:-1]
    counts = np.diff(np.r_[np.flatnonzero(new_run), len(order)])
    return float((counts * (counts - 1) // 2).sum())


def _concordance(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(hits, pairs) of :func:`pairwise_accuracy` over pairs with different y, without listing the pairs.

    With n0 pairs in all, n1 tied in x, n2 tied in y and n3 tied in both, the pairs that count are n0 - n2; of
    them n1 - n3 are ties in x (half a hit each), and the concordant minus discordant ones are tau_b times
    sqrt((n0 - n1)(n0 - n2)). Hits are whole or half counts, so rounding to a half makes them exact again.
    """
    from scipy import stats

    n = len(x)
    n0 = n * (n - 1) / 2
    n1, n2, n3 = _tied_pairs(x), _tied_pairs(y), _tied_pairs(x, y)
    pairs = n0 - n2
    if pairs == 0:
        return 0.0, 0.0
    c_minus_d = 0.0
    if n0 > n1:  # else every pair is tied in x
        c_minus_d = float(stats.kendalltau(x, y).statistic) * np.sqrt((n0 - n1) * (n0 - n2))
    x_ties = n1 - n3
    hits = (pairs - x_ties + c_minus_d) / 2 + 0.5 * x_ties
    return round(2 * hits) / 2, pairs
