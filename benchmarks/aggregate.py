"""Plackett-Luce aggregation speed: this package's vectorised MAP vs choix.ilsr_rankings, and a large fit at two sizes.

    python3 benchmarks/aggregate.py [--n-texts 10000] [--big-texts 100000] [--big-rankings 1000000] [--skip-choix]

Part 1 fits the same synthetic rankings (known utilities, k = 4, each text in 10 windows) with both aggregators
and prints fit time, Spearman with the truth and the speed ratio side by side. Part 2 fits ``--big-rankings``
rankings over ``--big-texts`` texts of one value, and a tenth of both (the same design: every text in as many
windows), and prints the time and the peak memory of each fit side by side (the time ratio shows whether the cost is
linear in the data). The tenth is also fitted with the objective this package used before issue 23 (per-stage log-sum-exp over every entry, the same
L-BFGS): equal work, so the line shows the speed-up and how far the answers differ (Spearman, largest difference).
A last line evaluates the objective over all the texts with a tenth of the rankings and with all of them: the
same tables, so that ratio shows whether the cost is linear in the rankings.
Peak memory: tracemalloc (numpy included) over the fit alone; max RSS is the process's so far (data included).
CPU s is the process's CPU time over the fit: on a shared machine, wall time is that divided by the share of a
core the fit got.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
from scipy import optimize
from scipy.stats import spearmanr

from valueflow.plackett_luce import RankingData, _Objective, design_windows, fit_plackett_luce, sample_plackett_luce


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


def logaddexp_objective(theta: np.ndarray, orders: np.ndarray, precision: float) -> tuple[float, np.ndarray]:
    """The negative log-posterior as valueflow computed it before issue 23 (one judge): the reference."""
    k = orders.shape[1]
    u = theta[orders]
    lse = np.logaddexp.accumulate(u[:, ::-1], axis=1)[:, ::-1]
    f = 0.5 * precision * float(theta @ theta) - float((u[:, :-1] - lse[:, :-1]).sum())
    g = np.zeros_like(u)
    g[:, :-1] = 1.0
    for j in range(k - 1):
        g[:, j:] -= np.exp(u[:, j:] - lse[:, j : j + 1])
    return f, precision * theta - np.bincount(orders.ravel(), weights=g.ravel(), minlength=len(theta))


def reference_fit(orders: np.ndarray, n: int, prior_sd: float = 3.0) -> np.ndarray:
    """The same MAP with the reference objective and the L-BFGS settings of ``fit_plackett_luce``."""
    res = optimize.minimize(logaddexp_objective, np.zeros(n), args=(orders, 1.0 / prior_sd**2), jac=True,
                            method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-6, "ftol": 1e-12, "maxcor": 10})
    return res.x


def timed_fit(orders: np.ndarray, n: int, threads: int):
    data = RankingData.from_matrix(orders, n_items=n)
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    fit = fit_plackett_luce(data, threads=threads)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return fit, seconds, cpu, peak


def part_big(n: int, r: int, threads: int) -> None:
    m = max(1, round(r * 4 / n))
    print(f"\n== {r // 10:,} rankings over {n // 10:,} texts, and {r:,} over {n:,} (one value, k=4, each text in "
          f"{m} windows) ==")
    print(f"{'rankings':>12}{'texts':>11}{'fit s':>9}{'CPU s':>8}{'iters':>7}{'peak MiB':>10}{'max RSS MiB':>13}"
          f"{'Spearman truth':>16}   notes")
    rows = {}
    for scale in (10, 1):  # a tenth of the texts and rankings, then all: linear cost takes ten times as long
        theta, part = synthetic(n // scale, 4, m, seed=1)
        part = part[: r // scale]
        small = scale == 10
        fit, seconds, cpu, peak = timed_fit(part, n // scale, threads)
        ok = fit.status == "ok"
        rho = spearmanr(fit.utility[ok], theta[ok])[0]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        note = f"{fit.se_method} SEs, converged {fit.converged}"
        if small:
            t0 = time.perf_counter()
            ref = reference_fit(part, n // scale)
            ref_s = time.perf_counter() - t0
            ref_rho = spearmanr(fit.utility[ok], ref[ok])[0]
            note += (f"; reference objective {ref_s:.2f} s without SEs ({ref_s / seconds:.1f}x), Spearman with it "
                     f"{ref_rho:.6f}, largest difference {np.nanmax(np.abs(fit.utility[ok] - ref[ok])):.1e}")
        rows[len(part)] = seconds
        print(f"{len(part):>12,}{n // scale:>11,}{seconds:>9.2f}{cpu:>8.2f}{fit.n_iter:>7}{peak / 2**20:>10.0f}{rss:>13.0f}{rho:>16.4f}   {note}")
    print(f"time ratio {r:,} / {r // 10:,} rankings: {rows[r] / rows[r // 10]:.1f}x for 10x the data (above 10x: the "
          f"tables of a million texts no longer fit in cache); targets: the full size < 30 s and < 4 GiB, the tenth "
          f"< 3 s")
    # linear in the rankings: the same texts (the same tables), a tenth of the rankings, one evaluation each
    per_eval = {}
    for count in (r // 10, r):
        objective = _Objective(RankingData.from_matrix(part[:count], n_items=n), np.ones(1), 1.0 / 9.0, threads)
        objective(theta)  # compile and touch the buffers
        t0 = time.perf_counter()
        for _ in range(3):
            objective(0.5 * theta)
        per_eval[count] = (time.perf_counter() - t0) / 3
    print(f"one objective evaluation over the same {n:,} texts: {r // 10:,} rankings {per_eval[r // 10] * 1e3:.0f} ms, "
          f"{r:,} rankings {per_eval[r] * 1e3:.0f} ms ({per_eval[r] / per_eval[r // 10]:.1f}x for 10x the rankings)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-texts", type=int, default=10_000)
    ap.add_argument("--big-texts", type=int, default=100_000)
    ap.add_argument("--big-rankings", type=int, default=1_000_000)
    ap.add_argument("--skip-choix", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="threads per objective evaluation of the large fits")
    args = ap.parse_args()
    part_vs_choix(args.n_texts, args.skip_choix)
    if not args.skip_big:
        part_big(args.big_texts, args.big_rankings, args.threads)


if __name__ == "__main__":
    main()
