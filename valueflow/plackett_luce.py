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

Why not a loop per ranking: rankings are grouped by window size k into dense (R, k) index matrices; the
log-likelihood and its gradient are a handful of array operations over all rankings at once (k passes), and the
gradient is scattered back to texts with ``np.bincount``. ``theta`` is found by L-BFGS on the (convex) negative
log-posterior; ``beta`` by a few alternating, vectorised 1-D Newton steps.

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

import numpy as np
from scipy import optimize, sparse
from scipy.sparse import csgraph
from threadpoolctl import threadpool_limits


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
        """Connected components of the comparison graph (items linked when they share a window).

        Each window is a directed cycle through its items: every edge then lies on a cycle, so the strongly
        connected components are the connected ones, and scipy finds them without the transposed copy of the
        graph that an undirected search makes (a third less time on millions of windows)."""
        if not self.groups:
            return self.n_items, np.arange(self.n_items)
        index = np.int32 if self.n_items < 2**31 else np.int64
        windows = [orders.astype(index) for orders, _ in self.groups.values()]
        src = np.concatenate([w.ravel() for w in windows])
        dst = np.concatenate([np.roll(w, -1, axis=1).ravel() for w in windows])
        del windows
        graph = sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(self.n_items, self.n_items)).tocsr()
        return csgraph.connected_components(graph, directed=True, connection="strong")

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


class _Objective:
    """The negative log-posterior of theta for fixed judge weights, its gradient and Hessian diagonal, at memory speed.

    Built once per theta fit and reused for every L-BFGS evaluation. Why it is fast:
    - layout: the rankings of one window size and one judge are cut into ``threads`` parts, each stored by place
      (``cols[l]`` = the items at place l of every ranking, contiguous) with its own kept buffers; a part is worked
      through in blocks of ``_BLOCK`` rankings, so the element-wise passes run in cache, and the parts run in
      threads (numpy releases the GIL);
    - one ``exp`` per item and judge, not per entry: ``e = exp(beta_g theta - c_g)`` is gathered from a table;
      within a ranking the shift ``c_g`` cancels;
    - the gradient needs no further exp: with ``S_j = sum_{l >= j} e_l`` and ``C_l = sum_{j <= min(l, k-2)} 1/S_j``
      the derivative of log P with respect to u_l is ``[l < k-1] - e_l C_l``; the constant part is scattered once,
      here, the rest with one ``np.bincount`` per part; the log-normalisers take one log per ranking (of the
      product of the 1/S_j).
    When utilities spread so far that the shared shift could underflow (``_safe_spread``: a far line-search probe),
    that judge's rankings take the per-stage log-sum-exp path instead (slower, exact).
    """

    _BLOCK = 1 << 16

    def __init__(self, data: RankingData, beta: np.ndarray, precision: float, threads: int = 1) -> None:
        self.n, self.precision, self.threads = data.n_items, precision, max(1, int(threads))
        self.beta = np.asarray(beta, dtype=float)
        self.linear = np.zeros(self.n)  # sum of beta over the places where the item was chosen (all but the last)
        self.parts = []  # (k, judge, cols, weights buffer, stage buffer)
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
                    cols = np.ascontiguousarray(orders[lo:hi].T, dtype=np.intp)
                    self.parts.append((k, int(judges[a]), cols, np.empty(cols.shape), np.empty((k - 1, hi - lo))))

    @staticmethod
    def _safe_spread(k: int) -> float:
        """Largest beta * (max - min theta) for the shared shift: e >= exp(-spread), so the product of the k-1
        values 1/S_j stays below exp(650) and 1/S_j^2 below exp(600)."""
        return min(300.0, 650.0 / max(k - 1, 1))

    def _part(self, part, theta: np.ndarray, hessian: bool) -> tuple[float, np.ndarray]:
        """Sum of log S_j over the part's rankings, and the scatter to items of beta W_l (gradient) or of
        beta^2 (W_l - V_l) (Hessian diagonal), where W_l = sum_{j <= l} p_jl, V_l = sum_{j <= l} p_jl^2 and
        p_jl = exp(u_l) / S_j is the chance that place l's item is picked at stage j."""
        k, g, cols, e, s = part
        b = self.beta[g]
        top, bottom = float(theta.max()), float(theta.min())
        log_z = 0.0
        if b * (top - bottom) <= self._safe_spread(k):
            table = np.exp(b * theta - b * top)
            log_z += (k - 1) * cols.shape[1] * b * top
            for lo in range(0, cols.shape[1], self._BLOCK):
                blk = slice(lo, lo + self._BLOCK)
                es, ss = e[:, blk], s[:, blk]
                for l in range(k):
                    np.take(table, cols[l, blk], out=es[l], mode="clip")
                np.add(es[k - 2], es[k - 1], out=ss[k - 2])
                for j in range(k - 3, -1, -1):
                    np.add(es[j], ss[j + 1], out=ss[j])
                np.reciprocal(ss, out=ss)
                prod = ss[0].copy()
                for j in range(1, k - 1):
                    prod *= ss[j]
                log_z -= float(np.log(prod, out=prod).sum())
                if hessian:
                    d = ss * ss  # d[l] = sum_{j <= l} 1/S_j^2
                    for l in range(1, k - 1):
                        d[l] += d[l - 1]
                for l in range(1, k - 1):  # ss[l] = C_l
                    ss[l] += ss[l - 1]
                if hessian:  # W - V = e C - e^2 D
                    sq = es * es
                    sq[: k - 1] *= d
                    sq[k - 1] *= d[k - 2]
                es[: k - 1] *= ss
                es[k - 1] *= ss[k - 2]
                if hessian:
                    es -= sq
        else:
            u = b * theta[cols]
            lse = np.logaddexp.accumulate(u[::-1], axis=0)[::-1]  # lse[j] = log S_j
            log_z += float(lse[: k - 1].sum())
            e[:] = 0.0
            for j in range(k - 1):
                p = np.exp(u[j:] - lse[j])
                e[j:] += p - p * p if hessian else p
        scale = b * b if hessian else b
        weights = e.ravel() if scale == 1.0 else scale * e.ravel()
        return log_z, np.bincount(cols.ravel(), weights=weights, minlength=self.n)

    def _map(self, theta: np.ndarray, hessian: bool) -> list[tuple[float, np.ndarray]]:
        if self.threads == 1 or len(self.parts) == 1:
            return [self._part(p, theta, hessian) for p in self.parts]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(lambda p: self._part(p, theta, hessian), self.parts))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        f = 0.5 * self.precision * float(theta @ theta) - float(self.linear @ theta)
        grad = self.precision * theta - self.linear
        for log_z, scattered in self._map(theta, hessian=False):
            f += log_z
            grad += scattered
        return f, grad

    def hessian_diagonal(self, theta: np.ndarray) -> np.ndarray:
        """H_ii: the prior precision plus, per entry, beta^2 sum_j p_jl (1 - p_jl)."""
        diag = np.full(self.n, self.precision)
        for _, scattered in self._map(theta, hessian=True):
            diag += scattered
        return diag


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
