"""Plackett-Luce MAP aggregation of rankings into per-text utilities, vectorised over sparse data.

Model. A judge ``g`` orders a window ``pi`` (most supportive first) with probability

    P(pi | theta, beta_g) = prod_j exp(beta_g theta_{pi_j}) / sum_{l >= j} exp(beta_g theta_{pi_l})

``theta`` are the texts' utilities (Gaussian prior N(0, prior_sd^2), which makes the MAP exist even when a text
always wins), ``beta_g >= 0`` the judge's reliability: a judge whose orders are noise gets ``beta ~ 0`` and stops
counting. ``beta`` has a weak N(1, reliability_sd^2) prior, which keeps a perfectly consistent judge (e.g. one
that reads reference labels) from running off to infinity. Two ways to estimate it:
- no anchor judge: joint MAP, alternating theta and beta steps. The scale of theta and beta trade off, so after
  each beta step both are rescaled to give the most reliable judge ``beta = 1`` (reliabilities are relative to it);
- ``anchor`` judges given (e.g. the reference judge): anchors keep ``beta = 1``, and every other judge is measured
  against utilities fitted without it (leave-one-judge-out). In-sample, a deterministic but wrong judge is as
  self-consistent as the reference and would score as high; against the reference it does not.
With one judge ``beta`` is fixed to 1 (plain PL MAP).

Speed: rankings are grouped by window size k into dense (R, k) index matrices. The log-likelihood, its gradient
and the Hessian diagonal are one compiled pass (numba) per ranking, parts of the rankings in threads: at ten
million rankings the cost is random access to the per-text tables, and array passes over every entry (tried
first, blocked to stay in cache) made that access k to 3k times instead of once. ``theta`` is found by L-BFGS on
the (convex) negative log-posterior; ``beta`` by a few alternating, vectorised 1-D Newton steps.

Laplace standard errors: ``sqrt(diag(H^-1))`` with ``H`` the Hessian of the negative log-posterior at the MAP.
Up to ``dense_se_limit`` texts ``H`` is built sparse and inverted exactly; above it the diagonal approximation
``1 / sqrt(H_ii)`` is used (it understates the SE a little, since it ignores the uncertainty of opponents).

Connectivity: utilities are only comparable within a connected component of the comparison graph (texts linked
when they share a window). Texts outside the largest component get NaN utilities and are reported, never given
invented scores.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from scipy import optimize, sparse
from threadpoolctl import threadpool_limits


@numba.njit(nogil=True, cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving: later finds are short
        i = parent[i]
    return i


@numba.njit(nogil=True, cache=True)
def _join_windows(orders, parent):
    """Union-find: join the items of each window (row) into one set."""
    for r in range(orders.shape[0]):
        a = _find(parent, orders[r, 0])
        for l in range(1, orders.shape[1]):
            b = _find(parent, orders[r, l])
            if a != b:
                parent[max(a, b)] = min(a, b)
                a = min(a, b)


@numba.njit(nogil=True, cache=True)
def _find_roots(parent):
    roots = np.empty_like(parent)
    for i in range(len(parent)):
        roots[i] = _find(parent, i)
    return roots


@dataclass
class RankingData:
    """Rankings of one value as index matrices, grouped by window size.

    ``groups[k]`` is ``(orders, judges)``: ``orders`` an (R, k) int array of item indices, most supportive first;
    ``judges`` an (R,) int array of judge indices.
    """

    n_items: int
    groups: dict[int, tuple[np.ndarray, np.ndarray]]
    n_judges: int = 1

    @classmethod
    def from_orders(
        cls, orders: Sequence[Sequence[int]], judges: Sequence[int] | None = None, n_items: int | None = None
    ) -> RankingData:
        """Build from a list of orders (item indices, best first) and, optionally, a judge index per order."""
        orders = [np.asarray(o, dtype=np.int64) for o in orders]
        judge_arr = np.zeros(len(orders), dtype=np.int64) if judges is None else np.asarray(judges, dtype=np.int64)
        if len(judge_arr) != len(orders):
            raise ValueError("one judge index per order is needed")
        sizes = np.array([len(o) for o in orders], dtype=np.int64)
        if len(sizes) and sizes.min() < 2:
            raise ValueError("every window needs at least 2 items")
        groups = {}
        for k in np.unique(sizes):
            idx = np.flatnonzero(sizes == k)
            groups[int(k)] = (np.stack([orders[i] for i in idx]), judge_arr[idx])
        n = int(n_items if n_items is not None else (max((int(o.max()) for o in orders), default=-1) + 1))
        return cls(n, groups, int(judge_arr.max()) + 1 if len(judge_arr) else 1)

    @classmethod
    def from_matrix(cls, orders: np.ndarray, judges: np.ndarray | None = None, n_items: int | None = None) -> RankingData:
        """Build from one (R, k) order matrix (all windows of the same size); no Python loop over rankings."""
        orders = np.asarray(orders, dtype=np.int64)
        judges = np.zeros(len(orders), dtype=np.int64) if judges is None else np.asarray(judges, dtype=np.int64)
        n = int(n_items if n_items is not None else orders.max() + 1)
        return cls(n, {orders.shape[1]: (orders, judges)}, int(judges.max()) + 1 if len(judges) else 1)

    @property
    def n_rankings(self) -> int:
        return sum(len(o) for o, _ in self.groups.values())

    def appearances(self) -> np.ndarray:
        """How many windows each item appears in."""
        counts = np.zeros(self.n_items, dtype=np.int64)
        for orders, _ in self.groups.values():
            counts += np.bincount(orders.ravel(), minlength=self.n_items)
        return counts

    def components(self) -> tuple[int, np.ndarray]:
        """Connected components of the comparison graph (items linked when they share a window): the number
        and a label per item. Union-find over the windows, compiled: one pass over the rankings, no graph built
        (building ten million windows' edges as a sparse graph took longer than the fit's objective)."""
        parent = np.arange(self.n_items, dtype=np.int64)
        for orders, _ in self.groups.values():
            _join_windows(orders, parent)
        roots = _find_roots(parent)
        found, labels = np.unique(roots, return_inverse=True)
        return len(found), labels

    def subset(self, keep: np.ndarray) -> tuple[RankingData, np.ndarray]:
        """Restrict to the items where ``keep`` is true (rankings touching others are dropped); returns new->old ids."""
        old_ids = np.flatnonzero(keep)
        if len(old_ids) == self.n_items:  # the usual case: one component, nothing to copy
            return self, old_ids
        new_of_old = np.full(self.n_items, -1, dtype=np.int64)
        new_of_old[old_ids] = np.arange(len(old_ids))
        groups = {}
        for k, (orders, judges) in self.groups.items():
            mapped = new_of_old[orders]
            ok = (mapped >= 0).all(axis=1)
            if ok.any():
                groups[k] = (mapped[ok], judges[ok])
        return RankingData(len(old_ids), groups, self.n_judges), old_ids


@dataclass
class PLFit:
    """The result of :func:`fit_plackett_luce`; arrays are indexed by item."""

    utility: np.ndarray  # NaN for items outside the largest connected component or never ranked
    se: np.ndarray  # Laplace standard error; NaN where utility is NaN
    reliability: np.ndarray  # beta per judge (1.0 for a single judge)
    n_windows: np.ndarray  # windows each item appears in
    status: np.ndarray  # "ok", "unranked" or "disconnected" per item
    converged: bool
    n_iter: int
    neg_log_posterior: float
    n_components: int
    se_method: str
    seconds: float
    diagnostics: dict = field(default_factory=dict)


@numba.njit(nogil=True, cache=True)
def _shared_shift_sums(orders, table, hessian, weight, out):
    """One pass over rankings (rows of ``orders``, best first) with ``e = table[item]`` = exp(beta theta - c).

    Adds to ``out[item]`` ``weight`` times the derivative of sum_j log S_j with respect to the item's scaled utility u_l:
    W_l = e_l C_l with S_j = sum_{l >= j} e_l and C_l = sum_{j <= min(l, k-2)} 1/S_j; or, with ``hessian``, the
    second derivative W_l - V_l = e_l C_l - e_l^2 D_l with D_l = sum_{j <= min(l, k-2)} 1/S_j^2. Returns
    sum over rankings of log prod_j 1/S_j (one log per ranking); the caller adds back the shift c."""
    rows, k = orders.shape
    e = np.empty(k)
    inv = np.empty(k)
    total = 0.0
    for r in range(rows):
        for l in range(k):
            e[l] = table[orders[r, l]]
        running = e[k - 1]
        for j in range(k - 2, -1, -1):
            running += e[j]
            inv[j] = 1.0 / running
        prod, c, d = 1.0, 0.0, 0.0
        for l in range(k):
            if l < k - 1:
                prod *= inv[l]
                c += inv[l]
                d += inv[l] * inv[l]
            out[orders[r, l]] += weight * (e[l] * c - e[l] * e[l] * d if hessian else e[l] * c)
        total += np.log(prod)
    return total


@numba.njit(nogil=True, cache=True)
def _per_stage_sums(orders, u, hessian, weight, out):
    """The same sums, exact for any spread of utilities: every stage j shifted by the largest u still in play
    (k exps per stage; used only when a far line-search probe spreads the utilities beyond the shared shift's
    range). Returns sum over rankings of sum_j log S_j."""
    rows, k = orders.shape
    x = np.empty(k)
    ex = np.empty(k)
    acc = np.empty(k)
    total = 0.0
    for r in range(rows):
        for l in range(k):
            x[l] = u[orders[r, l]]
            acc[l] = 0.0
        for j in range(k - 1):
            top = x[j]
            for l in range(j + 1, k):
                top = max(top, x[l])
            s = 0.0
            for l in range(j, k):
                ex[l] = np.exp(x[l] - top)
                s += ex[l]
            total += top + np.log(s)
            for l in range(j, k):
                p = ex[l] / s
                acc[l] += p - p * p if hessian else p
        for l in range(k):
            out[orders[r, l]] += weight * acc[l]
    return total


class _Objective:
    """The negative log-posterior of theta for fixed judge weights, its gradient and Hessian diagonal.

    Built once per theta fit and reused for every L-BFGS evaluation. At ten million rankings an evaluation is
    bound by random access to the item tables, so it is one compiled pass per ranking (``_shared_shift_sums``):
    each item's ``e`` read once, the stage sums and the scatter done in registers, indices as int32. One ``exp``
    per item and judge, not per entry: ``e = exp(beta_g theta - c_g)`` comes from a table, and within a ranking
    the shift ``c_g`` cancels. The rankings of each window size and judge are cut into ``threads`` parts that run
    in threads (the kernels release the GIL), each scattering into its own kept buffer. When utilities spread so
    far that the shared shift could underflow (``_safe_spread``: a far line-search probe), that judge's rankings
    take the per-stage path instead (slower, exact).
    """

    def __init__(self, data: RankingData, beta: np.ndarray, precision: float, threads: int = 1) -> None:
        self.n, self.precision, self.threads = data.n_items, precision, max(1, int(threads))
        self.beta = np.asarray(beta, dtype=float)
        self.linear = np.zeros(self.n)  # sum of beta over the places where the item was chosen (all but the last)
        index = np.int32 if self.n < 2**31 else np.int64
        self.parts = []  # (judge, orders): each part's rows contiguous, best first
        for orders, judges in data.groups.values():
            k = orders.shape[1]
            self.linear += np.bincount(orders[:, :-1].ravel(), weights=np.repeat(self.beta[judges], k - 1),
                                       minlength=self.n)
            if len(judges) and not (judges[1:] >= judges[:-1]).all():
                orders, judges = orders[np.argsort(judges, kind="stable")], np.sort(judges)
            bounds = np.r_[0, np.flatnonzero(np.diff(judges)) + 1, len(judges)]
            for a, b in zip(bounds[:-1], bounds[1:]):
                cuts = np.linspace(a, b, min(self.threads, b - a) + 1).astype(int)
                for lo, hi in zip(cuts[:-1], cuts[1:]):
                    self.parts.append((int(judges[a]), np.ascontiguousarray(orders[lo:hi], dtype=index)))
        self.buffers = [np.empty(self.n) for _ in range(min(self.threads, len(self.parts)) or 1)]

    @staticmethod
    def _safe_spread(k: int) -> float:
        """Largest beta * (max - min theta) for the shared shift: e >= exp(-spread), so the product of the k-1
        values 1/S_j stays below exp(650) and 1/S_j^2 below exp(600)."""
        return min(300.0, 650.0 / max(k - 1, 1))

    def _worker(self, parts: list, theta: np.ndarray, tables: dict, hessian: bool, out: np.ndarray) -> float:
        """Sum of log S_j over the parts' rankings; ``out`` gets the scatter to items of beta W_l (gradient) or
        beta^2 (W_l - V_l) (Hessian diagonal), where p_jl = exp(u_l) / S_j is the chance that place l's item is
        picked at stage j, W_l = sum_{j <= l} p_jl and V_l = sum_{j <= l} p_jl^2."""
        out.fill(0.0)
        log_z = 0.0
        for g, orders in parts:
            b, k = self.beta[g], orders.shape[1]
            weight = b * b if hessian else b
            if (g, k) in tables:
                shift, table = tables[g, k]
                log_z += (k - 1) * len(orders) * shift - _shared_shift_sums(orders, table, hessian, weight, out)
            else:
                log_z += _per_stage_sums(orders, b * theta, hessian, weight, out)
        return log_z

    def _map(self, theta: np.ndarray, hessian: bool) -> tuple[float, np.ndarray]:
        """Run the parts on ``threads`` threads, one buffer each; returns the summed log-normaliser and scatter.

        The shared-shift tables are built here, once per judge and evaluation, for the (judge, window size) pairs
        whose spread allows them; the threads only read them."""
        top, spread = float(theta.max()), float(theta.max() - theta.min())
        tables, by_judge = {}, {}
        for g, orders in self.parts:
            b, k = self.beta[g], orders.shape[1]
            if (g, k) not in tables and b * spread <= self._safe_spread(k):
                if g not in by_judge:
                    by_judge[g] = np.exp(b * theta - b * top)
                tables[g, k] = (b * top, by_judge[g])
        shares = [self.parts[t:: len(self.buffers)] for t in range(len(self.buffers))]
        if len(shares) == 1:
            return self._worker(shares[0], theta, tables, hessian, self.buffers[0]), self.buffers[0]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(shares)) as pool:
            log_z = sum(pool.map(lambda t: self._worker(shares[t], theta, tables, hessian, self.buffers[t]),
                                 range(len(shares))))
        return log_z, np.sum(self.buffers, axis=0)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_z, scattered = self._map(theta, hessian=False)
        f = 0.5 * self.precision * float(theta @ theta) - float(self.linear @ theta) + log_z
        return f, self.precision * theta - self.linear + scattered

    def hessian_diagonal(self, theta: np.ndarray) -> np.ndarray:
        """H_ii: the prior precision plus, per entry, beta^2 sum_j p_jl (1 - p_jl)."""
        return self.precision + self._map(theta, hessian=True)[1]


def _fit_theta(objective: _Objective, theta0: np.ndarray, max_iter: int, tol: float):
    res = optimize.minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        # 10 correction pairs: as few iterations as 20 on these problems, and half the optimizer's own work per
        # iteration, which at a million items is a tenth of the fit
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-12, "maxcor": 10},
    )
    return res


def _fit_beta(theta: np.ndarray, data: RankingData, beta: np.ndarray, prior_sd: float, steps: int = 30) -> np.ndarray:
    """Per-judge reliability given utilities: concave 1-D problems, Newton steps vectorised over judges."""
    beta = beta.copy()
    prior_prec = 1.0 / prior_sd**2
    for _ in range(steps):
        d1 = -(beta - 1.0) * prior_prec
        d2 = np.full_like(beta, -prior_prec)
        for orders, judges in data.groups.values():
            k = orders.shape[1]
            x = theta[orders]
            u = beta[judges][:, None] * x
            lse = np.logaddexp.accumulate(u[:, ::-1], axis=1)[:, ::-1]
            g1 = np.zeros(len(x))
            g2 = np.zeros(len(x))
            for j in range(k - 1):
                p = np.exp(u[:, j:] - lse[:, j : j + 1])
                mean = (p * x[:, j:]).sum(axis=1)
                var = (p * x[:, j:] ** 2).sum(axis=1) - mean**2
                g1 += x[:, j] - mean
                g2 -= np.maximum(var, 0.0)
            d1 += np.bincount(judges, weights=g1, minlength=len(beta))
            d2 += np.bincount(judges, weights=g2, minlength=len(beta))
        new = np.maximum(beta - d1 / np.minimum(d2, -1e-12), 0.0)
        if np.max(np.abs(new - beta)) < 1e-6:
            beta = new
            break
        beta = new
    return beta


def _hessian(theta: np.ndarray, data: RankingData, beta: np.ndarray, objective: _Objective, dense: bool):
    """The Hessian of the negative log-posterior (dense matrix, for few items), or only its diagonal."""
    n = data.n_items
    diag = objective.hessian_diagonal(theta)
    if not dense:
        return diag
    rows, cols, vals = [], [], []
    for orders, judges in data.groups.values():
        k = orders.shape[1]
        w = beta[judges][:, None]
        u = w * theta[orders]
        lse = np.logaddexp.accumulate(u[:, ::-1], axis=1)[:, ::-1]
        w2 = (w[:, 0] ** 2)[:, None]
        for j in range(k - 1):  # off-diagonal: -beta^2 p_a p_b for every pair a != b still in play at stage j
            p = np.exp(u[:, j:] - lse[:, j : j + 1])
            m = k - j
            sub = orders[:, j:]
            outer = -(w2[:, :, None] * p[:, :, None] * p[:, None, :])
            off = ~np.eye(m, dtype=bool)
            rows.append(np.repeat(sub[:, :, None], m, axis=2)[:, off].ravel())
            cols.append(np.repeat(sub[:, None, :], m, axis=1)[:, off].ravel())
            vals.append(outer[:, off].ravel())
    r = np.concatenate(rows + [np.arange(n)])
    c = np.concatenate(cols + [np.arange(n)])
    v = np.concatenate(vals + [diag])
    return sparse.coo_matrix((v, (r, c)), shape=(n, n)).toarray()


def _only_judges(data: RankingData, keep: np.ndarray) -> RankingData:
    groups = {}
    for k, (orders, judges) in data.groups.items():
        sel = keep[judges]
        if sel.any():
            groups[k] = (orders[sel], judges[sel])
    return RankingData(data.n_items, groups, data.n_judges)


def _cross_fitted_reliability(data, beta, used, anchor, precision, reliability_sd, rounds, max_iter, tol):
    """Reliability against anchor judges: anchors keep beta = 1; every other judge is measured against utilities
    fitted WITHOUT it (leave-one-judge-out, the anchors always included).

    In-sample, a deterministic but wrong judge is perfectly self-consistent and can out-score the reference; against
    the others' consensus it cannot. Two rounds suffice (the second uses the first round's betas for the others).
    """
    theta0 = np.zeros(data.n_items)
    beta = beta.copy()
    beta[anchor] = 1.0
    for _ in range(min(rounds, 2)):
        new = beta.copy()
        for g in np.flatnonzero(used & ~anchor):
            others = used.copy()
            others[g] = False
            theta_minus = _fit_theta(_Objective(_only_judges(data, others), beta, precision), theta0, max_iter, tol).x
            only = np.zeros(len(beta), dtype=bool)
            only[g] = True
            new[g] = _fit_beta(theta_minus, _only_judges(data, only), np.ones(len(beta)), reliability_sd)[g]
        beta = new
    return beta


# BLAS on one thread: the optimizer's and the Hessian's small vector steps only spin a second thread (the 10M-ranking
# fit takes a quarter longer with two), and values fitted in parallel processes would oversubscribe the cores
@threadpool_limits.wrap(limits=1)
def fit_plackett_luce(
    data: RankingData,
    *,
    prior_sd: float = 3.0,
    estimate_reliability: bool = True,
    reliability_sd: float = 1.0,
    reliability_rounds: int = 4,
    anchor: np.ndarray | None = None,
    max_iter: int = 1000,
    tol: float = 1e-6,
    dense_se_limit: int = 3000,
    threads: int = 1,
) -> PLFit:
    """MAP utilities (Gaussian prior), per-judge reliabilities and Laplace SEs for the rankings of one value.

    ``threads`` splits each objective evaluation over threads (one large value on an idle machine); a build with
    many values gains more from fitting values in parallel processes, one thread each (``builders.aggregate``)."""
    started = time.perf_counter()
    precision = 1.0 / prior_sd**2
    n_windows = data.appearances()
    n_comp, labels = data.components()
    status = np.full(data.n_items, "ok", dtype=object)
    ranked = n_windows > 0
    status[~ranked] = "unranked"
    if ranked.any():
        sizes = np.bincount(labels[ranked], minlength=n_comp)
        main = int(np.argmax(sizes))
        keep = ranked & (labels == main)
    else:
        keep = ranked
    status[ranked & ~keep] = "disconnected"
    n_ranked_components = len(np.unique(labels[ranked])) if ranked.any() else 0

    utility = np.full(data.n_items, np.nan)
    se = np.full(data.n_items, np.nan)
    beta = np.ones(max(data.n_judges, 1))
    if not keep.any():
        return PLFit(utility, se, beta, n_windows, status, True, 0, 0.0, n_ranked_components, "none",
                     time.perf_counter() - started)

    sub, old_ids = data.subset(keep)
    used_judges = np.zeros(len(beta), dtype=bool)
    for _, judges in sub.groups.values():
        used_judges[np.unique(judges)] = True
    theta = np.zeros(sub.n_items)
    objective = _Objective(sub, beta, precision, threads)
    res = _fit_theta(objective, theta, max_iter, tol)
    theta = res.x
    n_iter = int(res.nit)
    if estimate_reliability and used_judges.sum() > 1:
        if anchor is not None and np.asarray(anchor, dtype=bool)[used_judges].any():
            beta = _cross_fitted_reliability(sub, beta, used_judges, np.asarray(anchor, dtype=bool), precision,
                                             reliability_sd, reliability_rounds, max_iter, tol)
        else:
            for _ in range(reliability_rounds):
                beta = _fit_beta(theta, sub, beta, reliability_sd)
                beta[~used_judges] = 0.0
                # the scale of theta and beta trade off; pin it to the most reliable judge (beta = 1)
                top = float(beta.max())
                if top > 0:
                    beta, theta = beta / top, theta * top
                beta[~used_judges] = 1.0
                res = _fit_theta(_Objective(sub, beta, precision, threads), theta, max_iter, tol)
                theta = res.x
                n_iter += int(res.nit)
        objective = _Objective(sub, beta, precision, threads)
        res = _fit_theta(objective, theta, max_iter, tol)
        theta = res.x
        n_iter += int(res.nit)

    dense = sub.n_items <= dense_se_limit
    hess = _hessian(theta, sub, beta, objective, dense)
    if dense:
        sub_se = np.sqrt(np.clip(np.diag(np.linalg.inv(hess)), 0, None))
    else:
        sub_se = 1.0 / np.sqrt(hess)
    utility[old_ids] = theta
    se[old_ids] = sub_se
    grad_norm = float(np.max(np.abs(res.jac))) if getattr(res, "jac", None) is not None else float("nan")
    return PLFit(
        utility=utility,
        se=se,
        reliability=beta,
        n_windows=n_windows,
        status=status,
        converged=bool(res.success) or grad_norm < 1e-3,
        n_iter=n_iter,
        neg_log_posterior=float(res.fun),
        n_components=n_ranked_components,
        se_method="exact" if dense else "diagonal",
        seconds=time.perf_counter() - started,
        diagnostics={"grad_max": grad_norm, "message": str(res.message)},
    )


def sample_plackett_luce(theta: np.ndarray, windows: np.ndarray, rng: np.random.Generator, beta: float = 1.0) -> np.ndarray:
    """Draw one PL order per window (rows of item indices), vectorised with the Gumbel-max trick.

    Sorting ``beta * theta + Gumbel noise`` in decreasing order is an exact Plackett-Luce sample; used by tests
    and benchmarks to make rankings with known utilities.
    """
    scores = beta * theta[windows] + rng.gumbel(size=windows.shape)
    idx = np.argsort(-scores, axis=1)
    return np.take_along_axis(windows, idx, axis=1)


def design_windows(n_items: int, k: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Windows of k distinct items in which every item appears m times (fillers of short windows appear once more, in turn).

    Each round shuffles the items and cuts them into windows; a short last window is filled with random items
    that are not yet in it. Rows come back in presentation order (already random).
    """
    if n_items < 2:
        return np.zeros((0, k), dtype=np.int64)
    k = min(k, n_items)
    rows = []
    extra = np.zeros(n_items)  # filler appearances so far: fillers rotate, so no text is over-sampled
    for _ in range(m):
        perm = rng.permutation(n_items)
        full = (n_items // k) * k
        if full:
            rows.append(perm[:full].reshape(-1, k))
        rest = perm[full:]
        if len(rest):
            others = np.setdiff1d(np.arange(n_items), rest)
            priority = extra[others] + rng.random(len(others))  # fewest filler turns first, random among equals
            fill = others[np.argsort(priority)[: k - len(rest)]]
            extra[fill] += 1
            rows.append(rng.permutation(np.concatenate([rest, fill]))[None, :])
    return np.concatenate(rows).astype(np.int64)
