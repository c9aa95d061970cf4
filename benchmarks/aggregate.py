"""Plackett-Luce aggregation speed: this package's vectorised MAP vs choix.ilsr_rankings, and a 1M-ranking fit.

    python3 benchmarks/aggregate.py [--n-texts 10000] [--big-texts 100000] [--big-rankings 1000000] [--skip-choix]

Part 1 fits the same synthetic rankings (known utilities, k = 4, each text in 10 windows) with both aggregators
and prints fit time, Spearman with the truth and the speed ratio side by side. Part 2 fits 1,000,000 rankings over
100,000 texts of one value and prints the time and the peak memory of the fit (tracemalloc, numpy included).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
from scipy.stats import spearmanr

from valueflow.plackett_luce import RankingData, design_windows, fit_plackett_luce, sample_plackett_luce


def synthetic(n: int, k: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 2.0, n)
    return theta, sample_plackett_luce(theta, design_windows(n, k, m, rng), rng)


def part_vs_choix(n: int, skip_choix: bool) -> None:
    theta, orders = synthetic(n, 4, 10, seed=0)
    print(f"== {n:,} texts, {len(orders):,} rankings (k=4, each text in 10 windows), one value ==")
    t0 = time.perf_counter()
    fit = fit_plackett_luce(RankingData.from_matrix(orders, n_items=n))
    ours_s = time.perf_counter() - t0
    ours_rho = spearmanr(fit.utility, theta)[0]
    print(f"{'aggregator':<34}{'fit seconds':>12}{'Spearman':>10}")
    label = f"valueflow PL MAP (incl. {fit.se_method} SEs)"  # above dense_se_limit texts the SEs are diagonal
    print(f"{label:<34}{ours_s:>12.2f}{ours_rho:>10.4f}")
    if skip_choix:
        return
    import choix

    data = [tuple(int(i) for i in o) for o in orders]
    t0 = time.perf_counter()
    ref = choix.ilsr_rankings(n, data, alpha=1e-4)
    choix_s = time.perf_counter() - t0
    choix_rho = spearmanr(ref, theta)[0]
    print(f"{'choix.ilsr_rankings (alpha=1e-4)':<34}{choix_s:>12.2f}{choix_rho:>10.4f}")
    print(f"speed ratio choix / valueflow: {choix_s / ours_s:.1f}x  (Spearman difference {ours_rho - choix_rho:+.4f})")


def part_big(n: int, r: int) -> None:
    m = max(1, round(r * 4 / n))
    theta, orders = synthetic(n, 4, m, seed=1)
    orders = orders[:r]
    print(f"\n== {len(orders):,} rankings over {n:,} texts of one value (k=4) ==")
    data = RankingData.from_matrix(orders, n_items=n)
    tracemalloc.start()
    t0 = time.perf_counter()
    fit = fit_plackett_luce(data)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rho = spearmanr(fit.utility[fit.status == "ok"], theta[fit.status == "ok"])[0]
    print(f"fit seconds {seconds:.2f} incl. {fit.se_method} SEs  (target < 60)   iterations {fit.n_iter}   converged {fit.converged}")
    print(f"peak memory of the fit {peak / 2**20:.0f} MiB (tracemalloc); process max RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; Spearman with truth {rho:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-texts", type=int, default=10_000)
    ap.add_argument("--big-texts", type=int, default=100_000)
    ap.add_argument("--big-rankings", type=int, default=1_000_000)
    ap.add_argument("--skip-choix", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    args = ap.parse_args()
    part_vs_choix(args.n_texts, args.skip_choix)
    if not args.skip_big:
        part_big(args.big_texts, args.big_rankings)


if __name__ == "__main__":
    main()
