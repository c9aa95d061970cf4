"""The ``train_judge`` stage: distil VIDB (and optional human-labelled tables) into a cross-encoder judge.

A sentence-transformers ``CrossEncoder`` reads (value, text) pairs, the value as
``valueflow.judges.cross.value_query`` writes it (theory and name), and learns one score per pair:

- ``loss: mse`` (default): pointwise regression of the score on the text's intensity / 10 (VIDB intensity, else
  the table's ``reference_intensity``, else ``direction`` x ``direction_intensity`` for tables that only say which
  way a text leans, such as ValueNet's -1/0/+1). ``benchmarks/judge_real.py --loss`` compares the two on held-out
  real data.
- ``loss: plistmle``: listwise Plackett-Luce (sentence-transformers' ``PListMLELoss``) over lists of
  ``list_size`` texts of one value, drawn with a fixed seed and ordered by intensity.

After training, a monotone calibration from raw score to the VIDB scale is fitted on VIDB
(``valueflow.judges.cross.Calibration``; the validation split when it has enough texts, else train) and saved
beside the model, and the judge is measured as a direct rater on the VIDB validation split next to the
zero-shot ``embedding`` judge. ``release/judge`` is then a plain CrossEncoder folder (``CrossEncoder(path)``, no
remote code) with its calibration, training record and generated card.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from validation.rejects import RejectSink
from valueflow.io import InputError, atomic_dir, read_table, seeded_rng, write_json
from valueflow.models import DEFAULT_BASE_MODEL
from valueflow.params import StageParams
from valueflow.taxonomy import UnknownValueError, get_taxonomy

LOSSES = ("mse", "plistmle")
TRAINING_RECORD = "judge_training.json"


class JudgeTrainConfig(StageParams):
    """The ``train_judge`` section of params.yaml."""

    section: ClassVar[str] = "train_judge"

    vidb: Path = Path("release/vidb")  # a VIDB release folder (its train split is used) or any table of texts
    split: str | None = "train"
    extra: list[str] = Field(default_factory=list)  # more labelled tables (any texts record), all rows used
    base_model: str = DEFAULT_BASE_MODEL  # a CrossEncoder or sentence-transformers path or Hub id
    out: Path = Path("release/judge")
    repo_id: str = "valueflow/vidb-judge"
    loss: Literal["mse", "plistmle"] = "mse"
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_length: int = Field(128, ge=1)
    list_size: int = Field(8, ge=2)
    direction_intensity: float = 5.0  # target of a row that has a direction but no intensity
    onnx: bool = True  # also export the int8 ONNX graph (backend=onnx: CPU scoring without torch)
    seed: int = 0
    root: Path = Path(".")

    def check(self) -> None:
        """Re-validate after attribute changes (the fields are checked when the config is built)."""
        type(self).model_validate(self.model_dump())


# -- training rows ---------------------------------------------------------------------------------------------
def read_labelled(source: str | Path) -> pd.DataFrame:
    """All rows of a VIDB release folder (every split, with a ``split`` column) or of one table file."""
    path = Path(source)
    if path.is_dir():
        files = sorted((path / "data" / "full").glob("*.parquet"))
        if not files:
            raise InputError(f"{path}: no data/full/*.parquet (is this a VIDB release?)")
        return pd.concat([pd.read_parquet(f).assign(split=f.stem) for f in files], ignore_index=True)
    return read_table(path, required=("text", "value"))


def judge_rows(df: pd.DataFrame, file: str, sink: RejectSink, direction_intensity: float = 5.0) -> pd.DataFrame:
    """``text, value, target`` rows (target on the VIDB scale); unusable rows go to ``sink`` with the reason.

    The target is the VIDB ``intensity``, else ``reference_intensity``, else ``direction`` x
    ``direction_intensity``. Rejected: an empty text, a value the taxonomy does not know, no target at all, or a
    target outside [-10, 10].
    """
    tax = get_taxonomy()
    df = df.reset_index(drop=True)
    target = pd.Series(np.nan, index=df.index, dtype=float)
    for column, factor in (("intensity", 1.0), ("reference_intensity", 1.0), ("direction", direction_intensity)):
        if column in df.columns:
            target = target.fillna(pd.to_numeric(df[column], errors="coerce").astype(float) * factor)
    rows = pd.Series(np.arange(1, len(df) + 1), index=df.index)
    keep, values = [], []
    for idx, text, value, y in zip(df.index, df["text"], df["value"], target):
        reason = column = None
        try:
            name = tax.resolve(str(value))
        except UnknownValueError as err:
            reason, column = f"value: {err}", "value"
        if reason is None and (not isinstance(text, str) or not text.strip()):
            reason, column = "text: empty", "text"
        elif reason is None and not np.isfinite(y):
            reason, column = "no intensity, reference_intensity or direction to learn from", "intensity"
        elif reason is None and abs(y) > 10:
            reason, column = f"intensity {y} outside [-10, 10]", "intensity"
        if reason is not None:
            sink.add(df.loc[[idx]], reason, file=file, column=column, rows=rows.loc[[idx]])
            continue
        keep.append(idx)
        values.append(name)
    split = df.loc[keep, "split"].astype(str).to_numpy() if "split" in df.columns else [""] * len(keep)
    return pd.DataFrame({"text": df.loc[keep, "text"].astype(str).to_numpy(), "value": values,
                         "target": target.loc[keep].to_numpy(dtype=float), "split": split})


def pointwise_dataset(rows: pd.DataFrame):
    from datasets import Dataset

    from valueflow.judges.cross import value_query

    queries = {v: value_query(v) for v in rows["value"].unique()}
    return Dataset.from_dict({"query": rows["value"].map(queries).tolist(), "text": rows["text"].tolist(),
                              "label": (rows["target"] / 10.0).tolist()})


def listwise_dataset(rows: pd.DataFrame, list_size: int, lists: int, seed: int):
    """``lists`` lists of up to ``list_size`` texts of one value, each value in proportion to its texts."""
    from datasets import Dataset

    from valueflow.judges.cross import value_query

    rng = seeded_rng("train_judge lists", seed)
    by_value = {v: g for v, g in rows.groupby("value") if len(g) >= 2}
    if not by_value:
        raise InputError("listwise training needs at least one value with 2 or more texts")
    names = sorted(by_value)
    weights = np.array([len(by_value[v]) for v in names], dtype=float)
    out = {"query": [], "docs": [], "labels": []}
    for v in rng.choice(names, size=lists, p=weights / weights.sum()):
        g = by_value[v]
        pick = g.iloc[rng.permutation(len(g))[:list_size]].sort_values("target", ascending=False)
        out["query"].append(value_query(v))
        out["docs"].append(pick["text"].tolist())
        out["labels"].append((pick["target"] / 10.0).tolist())
    return Dataset.from_dict(out)


# -- the stage -------------------------------------------------------------------------------------------------
def _trainer_args(cfg: JudgeTrainConfig, output_dir: str):
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    return CrossEncoderTrainingArguments(
        output_dir=output_dir, max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, seed=cfg.seed, data_seed=cfg.seed,
        save_strategy="no", report_to="none", logging_steps=max(1, cfg.steps // 10), dataloader_drop_last=False,
    )


def fit_judge(cfg: JudgeTrainConfig, rows: pd.DataFrame):
    """Train the CrossEncoder on ``rows`` (text, value, target); return (model, loss curve)."""
    import tempfile

    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer
    from sentence_transformers.cross_encoder.losses import MSELoss, PListMLELoss

    from valueflow.models import resolve_model_path

    torch.manual_seed(cfg.seed)
    model = CrossEncoder(resolve_model_path(cfg.base_model), num_labels=1, max_length=cfg.max_length)
    if cfg.loss == "mse":
        dataset, loss = pointwise_dataset(rows), MSELoss(model)
    else:
        dataset = listwise_dataset(rows, cfg.list_size, cfg.steps * cfg.batch_size, cfg.seed)
        loss = PListMLELoss(model)
    with tempfile.TemporaryDirectory(prefix="judge-trainer-") as scratch:
        trainer = CrossEncoderTrainer(model=model, args=_trainer_args(cfg, scratch), train_dataset=dataset, loss=loss)
        trainer.train()
    curve = [[h["step"], round(h["loss"], 4)] for h in trainer.state.log_history if "loss" in h]
    return model, curve


def train_judge(cfg: JudgeTrainConfig, echo=print) -> dict:
    """Run the stage: read and check the training rows, train, calibrate, measure, export; return its metrics."""
    from cards.judge_card import render_judge_card
    from valueflow.judges.cross import CALIBRATION_FILE, Calibration, CrossJudge, export_onnx
    from valueflow.judges.embedding import EmbeddingJudge

    started = time.perf_counter()
    cfg.check()
    sink = RejectSink("train_judge", root=cfg.root, out=cfg.out)
    vidb_path = cfg.root / cfg.vidb
    vidb = read_labelled(vidb_path)
    vidb_rows = judge_rows(vidb, str(vidb_path), sink, cfg.direction_intensity)
    has_splits = bool(cfg.split) and (vidb_rows["split"] == cfg.split).any()
    train = vidb_rows[vidb_rows["split"] == cfg.split] if has_splits else vidb_rows
    parts = {str(cfg.vidb): len(train)}
    for extra in cfg.extra:
        path = cfg.root / extra
        extra_rows = judge_rows(read_labelled(path), str(path), sink, cfg.direction_intensity)
        parts[str(extra)] = len(extra_rows)
        train = pd.concat([train, extra_rows], ignore_index=True)
    if train.empty:
        raise InputError(f"{vidb_path}: no usable training rows for the judge (see data/rejected/train_judge.parquet)")

    t = time.perf_counter()
    model, curve = fit_judge(cfg, train)
    train_seconds = time.perf_counter() - t

    held_out = vidb_rows[vidb_rows["split"] == "validation"] if has_splits else vidb_rows.iloc[:0]
    calib_rows = held_out if len(held_out) >= 20 else train
    out = cfg.root / cfg.out
    with atomic_dir(out) as tmp:
        model.save(str(tmp))
        if cfg.onnx:
            export_onnx(tmp)
        judge = CrossJudge(str(tmp))
        scores = np.concatenate([judge.scores(v, g["text"].tolist()) for v, g in calib_rows.groupby("value")])
        targets = np.concatenate([g["target"].to_numpy() for _, g in calib_rows.groupby("value")])
        calibration = Calibration.fit(scores, targets)
        write_json(calibration.to_json(), tmp / CALIBRATION_FILE)
        judge.calibration = calibration
        quality = {}
        if len(held_out) >= 2:
            quality = {"split": "validation", "texts": len(held_out),
                       "judges": {name: rating_quality(j, held_out) for name, j in
                                  (("cross", judge), ("embedding", EmbeddingJudge()))}}
        metrics = {
            "rows": len(train), "rows_by_source": parts, "rejected": sink.count,
            "rejected_by_reason": sink.counts_by_reason(), "base_model": cfg.base_model, "loss": cfg.loss,
            "steps": cfg.steps, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
            "loss_curve": curve, "calibration": {"fitted_on": "validation" if calib_rows is held_out else "train",
                                                 "texts": len(calib_rows), "knots": len(calibration.x)},
            "held_out": quality, "config": cfg.model_dump(mode="json", exclude={"root"}), "train_seconds": round(train_seconds, 1),
        }
        write_json(metrics, tmp / TRAINING_RECORD)
        (tmp / "README.md").write_text(render_judge_card(metrics, repo_id=cfg.repo_id), encoding="utf-8")
    sink.write()
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    echo(f"trained the judge on {len(train)} rows ({parts}) in {train_seconds:.0f} s; rejected {sink.count}; "
         f"held-out pairwise accuracy {quality.get('judges', {}).get('cross', {}).get('pairwise_accuracy')}; saved to {cfg.out}")
    return metrics


def direct_ratings(judge, rows: pd.DataFrame) -> np.ndarray:
    """Each row's direct rating by ``judge`` for its own value (NaN where the judge gave none)."""
    out = np.full(len(rows), np.nan)
    for value, idx in rows.groupby("value").indices.items():
        out[idx] = [np.nan if x is None else x for x in judge.rate(value, rows["text"].iloc[idx].tolist())]
    return out


def rating_quality(judge, rows: pd.DataFrame, min_gap: float = 2.0) -> dict:
    """Direct-rating quality on labelled rows: pairwise accuracy (same value, targets >= ``min_gap`` apart) and
    Spearman, the numbers the card reports."""
    from evaluation.eval_evaluator import pairwise_accuracy, spearman

    rows = rows.reset_index(drop=True)
    pred, gold = direct_ratings(judge, rows), rows["target"].to_numpy()
    rho = spearman(pred, gold)
    return {"pairwise_accuracy": round(float(pairwise_accuracy(pred, gold, rows["value"].to_numpy(), min_gap)), 4),
            "spearman": None if rho is None or not np.isfinite(rho) else round(float(rho), 4), "min_gap": min_gap}

