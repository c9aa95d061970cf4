"""Evaluator accuracy per judge call: bucket vs adaptive anchor sampling, with a simulated judge of known noise.

The simulated judge orders windows by true intensity + noise * Gumbel, an exact Plackett-Luce judge whose
sharpness is 1 / noise utility per intensity point. The anchor panel is 300 texts with intensities uniform on
[-10, 10] (about the size of a VIDB value's pool); 300 texts to score have true intensities uniform on [-9, 9].
Printed: MAE against the truth and judge calls per text, for bucket sampling (the paper's) and adaptive
sampling at m = 3 and m = 2, with the evaluator's scale fixed at 1 (the paper's) and fitted ("auto").

Target (issue 6): adaptive at 3 calls >= 25 % lower MAE than bucket at 3 calls, or the same MAE with <= 2 calls.

Run: python3 benchmarks/evaluator_budget.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from evaluation.anchor_evaluator import AnchorEvaluator
from evaluation.anchors import AnchorPanel
from valueflow.judges.simulated import SimulatedJudge

N_ANCHORS, N_TEXTS = 300, 300


def setup(seed: int = 0):
    rng = np.random.default_rng(seed)
    anchors = np.round(rng.uniform(-10, 10, N_ANCHORS), 2)
    table = pd.DataFrame({"text": [f"anchor {i}" for i in range(N_ANCHORS)], "value": "benevolence", "intensity": anchors})
    panel = AnchorPanel._from_raw(table, "simulated")
    texts = [f"text {i}" for i in range(N_TEXTS)]
    true = rng.uniform(-9, 9, N_TEXTS)
    truth = {**dict(zip(texts, true)), **dict(zip(table["text"], anchors))}
    return panel, texts, true, truth


def run(panel, texts, true, truth, noise, sampling, m, scale, seed=1):
    judge = SimulatedJudge(truth, noise=noise, seed=seed)
    ev = AnchorEvaluator(judge, panel, k=6, m=m, sampling=sampling, scale=scale, seed=seed, progress=False)
    s = ev.score(texts, "benevolence")
    err = np.abs(s["intensity"].to_numpy() - true)
    cover = np.mean(err <= 1.96 * s["intensity_se"].to_numpy())
    return float(err.mean()), float(s["judge_calls"].mean()), float(cover)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    panel, texts, true, truth = setup()
    t0 = time.perf_counter()
    print(f"simulated judge, {N_TEXTS} texts, {N_ANCHORS} anchors, k = 6; MAE (calls/text) [95% SE coverage]")
    header = f"{'noise':>5} {'scale':>5} | {'bucket m=3':>20} | {'adaptive m=3':>20} | {'adaptive m=2':>20} | {'MAE ratio a3/b3':>15} {'a2/b3':>6}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for noise in (0.3, 1.0, 2.0):
        for scale in (1.0, "auto"):
            b3 = run(panel, texts, true, truth, noise, "bucket", 3, scale)
            a3 = run(panel, texts, true, truth, noise, "adaptive", 3, scale)
            a2 = run(panel, texts, true, truth, noise, "adaptive", 2, scale)
            cell = lambda r: f"{r[0]:6.3f} ({r[1]:.1f}) [{r[2]:.2f}]"
            print(f"{noise:>5} {scale!s:>5} | {cell(b3):>20} | {cell(a3):>20} | {cell(a2):>20} | {a3[0] / b3[0]:>15.2f} {a2[0] / b3[0]:>6.2f}")
            verdicts.append((noise, scale, a3[0] <= 0.75 * b3[0] or a2[0] <= b3[0]))
    print("\ntarget met (adaptive MAE <= 0.75 x bucket at 3 calls, or <= bucket with 2 calls): "
          + ", ".join(f"noise {n} scale {s}: {'yes' if ok else 'no'}" for n, s, ok in verdicts))
    print(f"time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
