"""Small statistics shared by the stages."""

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
