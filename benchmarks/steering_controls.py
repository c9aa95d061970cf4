"""Steering controls on real VIDB texts: how much of a perfectly steered answer each judge can see.

The oracle answers with real VIDB texts (``vidb_anchors``, the paper's own intensities) from the target bin; the
null control ignores the target. Two set-ups per judge, side by side:

- ``held-out``: the oracle answers with one held-out text per (value, bin); the evaluator's anchors are the other
  texts. This is the judge's real ceiling on steering.
- ``in-panel``: the oracle answers with texts that are also anchors (the default `dvc repro` set-up).

Judges: the zero-shot ``embedding`` judge and the ``learned`` judge (``valueflow.judges.value_head``: a frozen
sentence encoder and a value head), trained once by the ``train_judge`` stage on the texts that are not held out (so
it never saw a held-out answer; in-panel answers are its training texts, as in `dvc repro`), into a temporary folder.
Its encoder is all-MiniLM-L6-v2 (cheap) unless ``--base-model all-mpnet-base-v2`` (the pipeline's) is given.

Run: ``python3 benchmarks/steering_controls.py [--base-model all-MiniLM-L6-v2]`` (needs ../shared/data or
$VALUEFLOW_REFDATA).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from evaluation.anchors import seed_split
from evaluation.eval_steering import EvalSteeringConfig, eval_steering
from evaluation.steer import SteerConfig, steer
from evaluation.train_judge import JudgeTrainConfig, train_judge
from valueflow.io import refdata_dir, stable_text_id

VALUES = ["benevolence", "universalism", "power", "hedonism", "care-harm", "justice"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default="all-MiniLM-L6-v2",
                        help="the learned judge's frozen encoder (all-MiniLM-L6-v2, cheap; all-mpnet-base-v2, the "
                             "pipeline's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = refdata_dir()
    if ref is None:
        print("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
        return 0
    anchors = pd.concat([pd.read_csv(f) for f in sorted((ref / "vidb_anchors").glob("*.csv"))], ignore_index=True)
    anchors["text_id"] = [stable_text_id(v, t) for v, t in zip(anchors["value"], anchors["text"])]
    anchors["split"] = seed_split(anchors)
    queries = ref / "valueflow_reference" / "steering_queries" / "gpv.csv"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = tmp / "vidb_anchors.parquet"
        anchors[["text_id", "text", "value", "intensity", "split"]].to_parquet(table)
        train_judge(JudgeTrainConfig(vidb=table, split="train", base_model=args.base_model, out=tmp / "judge",
                                     onnx=False), echo=lambda *_: None)
        judges = {"embedding": "embedding", "learned": f"learned:{tmp / 'judge'}"}
        for setup, ex_split, panel_split in (("held-out", "test", "train"), ("in-panel", None, None)):
            cfg = SteerConfig.from_params({
                "backends": [{"kind": "oracle"}, {"kind": "null"}], "queries": str(queries), "max_queries": 10,
                "values": VALUES, "intensities": [-2, -1, 1, 2], "formats": ["default", "single_definition"],
                "exemplars": str(table), "exemplar_split": ex_split, "out": str(tmp / "r.parquet"),
                "cache_dir": str(tmp / f"cache-{setup}"),
            })
            cfg.root = tmp
            steer(cfg, progress=False)
            for judge, spec in judges.items():
                t0 = time.perf_counter()
                ec = EvalSteeringConfig(responses="r.parquet", judge=spec, panel=str(table), panel_split=panel_split,
                                        root=str(tmp), scores_out="s.parquet", plots_dir="plots")
                m = eval_steering(ec, progress=False)
                for model in ("oracle", "null"):
                    s = m["models"][model]
                    rows.append((setup, judge, model, s["median_slope"], s["median_monotonicity"], s["regime"],
                                 round(time.perf_counter() - t0, 1)))
    out = pd.DataFrame(rows, columns=["setup", "judge", "control", "median_slope", "median_monotonicity", "regime", "seconds"])
    out["slope/ideal"] = (out["median_slope"] / 4.0).round(2)
    print(f"{len(VALUES)} values x 4 levels, 10 GPV queries, real VIDB texts ({len(anchors)}); "
          f"learned judge on {args.base_model}")
    print(out.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
