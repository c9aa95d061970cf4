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

    Counted in blocks of rows (about ``block_cells`` pairs at a time): all pairs of n texts at once would take
    O(n^2) memory, some 30 GB for the 36K labelled texts of the real corpora.
    """
    x, y = np.asarray(pred, dtype=float), np.asarray(gold, dtype=float)
    g = np.zeros(len(x)) if groups is None else np.asarray(groups)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y, g = x[ok], y[ok], g[ok]
    hits = pairs = 0.0
    for group in np.unique(g):
        xs, ys = x[g == group], y[g == group]
        step = max(1, block_cells // max(len(xs), 1))
        for start in range(0, len(xs), step):
            dy = ys[start : start + step, None] - ys[None, :]
            counted = (dy > 0) & (dy >= min_gap)  # each unordered pair once: (i, j) with gold i above gold j
            dx = (xs[start : start + step, None] - xs[None, :])[counted]
            pairs += dx.size
            hits += float(np.count_nonzero(dx > 0)) + 0.5 * float(np.count_nonzero(dx == 0))
    return hits / pairs if pairs else None
