"""Figures of the steering study: dose-response curves, 2-D composition arrows, the 5-value heat map.

Drawn from the tables :func:`evaluation.steering_analysis.analyse` returns; matplotlib's Agg backend, PNG files.
The ``default`` answer is a white dot, as in the paper.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from valueflow.io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)
    return path


def dose_response(curves: pd.DataFrame, path: Path) -> Path | None:
    """One panel per (model, format): mean intensity per target level with its CI, one line per value."""
    if curves.empty:
        return None
    plt = _plt()
    models = sorted(curves["model"].unique())
    formats = sorted(curves["format"].unique())
    values = sorted(curves["value"].unique())
    colours = dict(zip(values, plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(len(models), len(formats), figsize=(4.6 * len(formats), 3.6 * len(models)),
                             squeeze=False, sharex=True, sharey=True)
    for i, model in enumerate(models):
        for j, fmt in enumerate(formats):
            ax = axes[i][j]
            sel = curves[(curves["model"] == model) & (curves["format"] == fmt)]
            for value in values:
                c = sel[sel["value"] == value].sort_values("target")
                if c.empty:
                    continue
                is_def = c.get("is_default", pd.Series(False, index=c.index)).fillna(False).astype(bool)
                steered = c[~is_def]
                lo = (steered["mean"] - steered["ci_low"]).fillna(0).clip(lower=0)
                hi = (steered["ci_high"] - steered["mean"]).fillna(0).clip(lower=0)
                ax.errorbar(steered["target"], steered["mean"], yerr=[lo, hi], color=colours[value], marker="o",
                            ms=4, lw=1.6, capsize=3, label=value)
                d = c[is_def]
                if len(d):
                    ax.plot(d["target"], d["mean"], "o", mfc="white", mec=colours[value], ms=8, mew=1.8, zorder=5)
            ax.plot([-2, 2], [-8, 8], ls=":", color="grey", lw=1)  # the bin centres: perfect steering
            ax.axhline(0, color="lightgrey", lw=0.8)
            ax.set_xticks([-2, -1, 0, 1, 2])
            ax.set_ylim(-10.5, 10.5)
            ax.set_title(f"{model} - {fmt}", fontsize=10)
            ax.grid(alpha=0.25)
            if i == len(models) - 1:
                ax.set_xlabel("target intensity level")
            if j == 0:
                ax.set_ylabel("scored intensity (VIDB scale)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    extra = [plt.Line2D([], [], marker="o", ls="", mfc="white", mec="black", ms=8, label="default (unsteered)"),
             plt.Line2D([], [], ls=":", color="grey", label="ideal (bin centres)")]
    fig.legend(handles + extra, labels + [h.get_label() for h in extra], loc="upper center",
               ncol=min(6, len(values) + 2), bbox_to_anchor=(0.5, 1.0 + 0.06 / max(1, len(models))), frameon=False)
    fig.suptitle("Dose-response: mean scored intensity (95% CI) per target level", y=1.0 + 0.11 / max(1, len(models)))
    fig.tight_layout()
    return _save(fig, path)


def composition_arrows(comp: pd.DataFrame, path: Path, fmt: str | None = None) -> Path | None:
    """For each two-value target pair: arrows from the default point to each (level_a, level_b) combination."""
    if comp.empty:
        return None
    plt = _plt()
    two = comp[comp["n_values"] == 2]
    if fmt:
        two = two[two["format"] == fmt]
    if two.empty:
        return None
    two = two.assign(pair=two.groupby(["model", "format", "targets"])["value"].transform(lambda s: " x ".join(sorted(s))))
    panels = sorted(two.groupby(["model", "format", "pair"]).groups)
    pairs = sorted({p for _, _, p in panels})
    rows = sorted({(m, f) for m, f, _ in panels})
    fig, axes = plt.subplots(len(rows), len(pairs), figsize=(4.8 * len(pairs), 4.6 * len(rows)), squeeze=False)
    cmap = plt.get_cmap("tab10").colors
    for i, (model, f) in enumerate(rows):
        for j, pair in enumerate(pairs):
            ax = axes[i][j]
            sel = two[(two["model"] == model) & (two["format"] == f) & (two["pair"] == pair)]
            va, vb = pair.split(" x ")
            ax.set_title(f"{model} - {f}", fontsize=10)
            ax.set_xlabel(f"{va} intensity")
            ax.set_ylabel(f"{vb} intensity")
            ax.set_xlim(-10.5, 10.5)
            ax.set_ylim(-10.5, 10.5)
            ax.set_aspect("equal")
            ax.axhline(0, color="lightgrey", lw=0.8)
            ax.axvline(0, color="lightgrey", lw=0.8)
            ax.grid(alpha=0.25)
            if sel.empty:
                continue
            d0 = None
            for k, (tj, g) in enumerate(sorted(sel.groupby("targets"), key=lambda kv: kv[0])):
                a = g[g["value"] == va].iloc[0]
                b = g[g["value"] == vb].iloc[0]
                if not (np.isfinite(a["default"]) and np.isfinite(b["default"]) and np.isfinite(a["observed"]) and np.isfinite(b["observed"])):
                    continue
                d0 = (a["default"], b["default"])
                colour = cmap[k % len(cmap)]
                ax.annotate("", xy=(a["observed"], b["observed"]), xytext=d0,
                            arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.8, "mutation_scale": 14})
                ax.plot(a["observed"], b["observed"], "o", color=colour, ms=4)
                ax.annotate(f"({int(a['level'])},{int(b['level'])})", (a["observed"], b["observed"]), fontsize=9,
                            xytext=(4, 4), textcoords="offset points", color=colour)
            if d0 is not None:
                ax.plot(*d0, "o", mfc="white", mec="black", ms=9, mew=1.8, zorder=5, label="default")
                ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle("Two-value composition: default (white dot) to the mean answer\nunder each target (level A, level B)")
    fig.tight_layout(rect=(0, 0, 1, 0.97 if len(rows) > 1 else 0.93))
    return _save(fig, path)


def composition_heatmap(comp: pd.DataFrame, path: Path, min_values: int = 3) -> Path | None:
    """Targets with ``min_values``+ values: rows = values, columns = target sets, cell 'input -> output shift'."""
    if comp.empty:
        return None
    plt = _plt()
    many = comp[comp["n_values"] >= min_values]
    if many.empty:
        return None
    groups = sorted(many.groupby(["model", "format"]).groups)
    fig, axes = plt.subplots(len(groups), 1, figsize=(max(6.0, 1.5 * many["targets"].nunique() + 2.5), 3.6 * len(groups)),
                             squeeze=False)
    for j, (model, f) in enumerate(groups):
        ax = axes[j][0]
        sel = many[(many["model"] == model) & (many["format"] == f)]
        sets = list(dict.fromkeys(sel["targets"]))
        values = list(dict.fromkeys(v for tj in sets for v in json.loads(tj)))
        grid = np.full((len(values), len(sets)), np.nan)
        labels = [["" for _ in sets] for _ in values]
        for c, tj in enumerate(sets):
            for r, v in enumerate(values):
                hit = sel[(sel["targets"] == tj) & (sel["value"] == v)]
                if len(hit):
                    h = hit.iloc[0]
                    grid[r, c] = h["shift"]
                    out = "n/a" if not np.isfinite(h["shift"]) else f"{round(float(h['shift']), 1) + 0.0:+.1f}"
                    labels[r][c] = f"{int(h['level']):+d} \u2192 {out}"
        lim = max(1.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0)
        im = ax.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        for r in range(len(values)):
            for c in range(len(sets)):
                v = grid[r, c]
                colour = "white" if np.isfinite(v) and abs(v) > 0.6 * lim else "black"
                ax.text(c, r, labels[r][c], ha="center", va="center", fontsize=9, color=colour)
        ax.set_xticks(range(len(sets)), [f"set {i + 1}" for i in range(len(sets))])
        ax.set_yticks(range(len(values)), values)
        ax.set_title(f"{model} - {f}", fontsize=10)
        fig.colorbar(im, ax=ax, label="shift from default (VIDB points)", shrink=0.85)
    fig.suptitle("Multi-value targets: each cell is target level \u2192 observed shift from default")
    fig.tight_layout(rect=(0, 0, 1, 0.97 if len(groups) > 1 else 0.94))
    return _save(fig, path)
