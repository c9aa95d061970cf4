"""The ``train_judge`` stage: distil VIDB (and optional human-labelled tables) into the learned judge.

The judge (``valueflow.judges.value_head``) is a frozen sentence encoder and a value head: every training text is
embedded once, and the head, one output per value of the taxonomy, is fitted on the embeddings to the text's
intensity for its value (VIDB intensity, else the table's ``reference_intensity``, else ``direction`` x
``direction_intensity`` for tables that only say which way a text leans, such as ValueNet's -1/0/+1). Fitting the
head on cached embeddings takes seconds, so every labelled row can be used, and the head's two ridge penalties are
chosen among candidates by how well each pair's head orders the validation split; the encoder pass is the cost.

After fitting, a monotone calibration from raw score to the VIDB scale is fitted on VIDB (the validation split
when it has enough texts, else train) and saved beside the model, and the judge is measured as a direct rater on
the VIDB validation split next to the zero-shot ``embedding`` judge. ``release/judge`` is then a plain
sentence-transformers folder of built-in modules (``SentenceTransformer(path).encode(texts)`` gives one raw score
per value) with the value of each column, its calibration, an int8 ONNX graph, the training record and a
generated card. ``benchmarks/judge_real.py`` chose this recipe on held-out real data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, PositiveFloat, field_validator

from validation.rejects import RejectSink
from valueflow.io import (
    InputError,
    atomic_dir,
    check_outputs,
    held_out_by_text_hash,
    read_table,
    stage_records,
    write_json,
)
from valueflow.judges.value_head import HeadConfig, TuneConfig
from valueflow.models import hub_id
from valueflow.params import StageParams
from valueflow.taxonomy import UnknownValueError, get_taxonomy

TRAINING_RECORD = "judge_training.json"
DEFAULT_JUDGE_ENCODER = "all-mpnet-base-v2"
MIN_CHOICE_ROWS = 20  # fewer validation texts than this: the penalties are chosen on a fifth of the training rows


class JudgeTrainConfig(StageParams):
    """The ``train_judge`` section of params.yaml."""

    section: ClassVar[str] = "train_judge"

    vidb: Path = Path("release/vidb")  # a VIDB release folder (its train split is used) or any table of texts
    split: str | None = "train"
    extra: list[str] = Field(default_factory=list)  # more labelled tables (any texts record), all rows used
    base_model: str = DEFAULT_JUDGE_ENCODER  # the frozen encoder: a sentence-transformers path or Hub id
    out: Path = Path("release/judge")
    repo_id: str = "valueflow/vidb-judge"
    # ridge penalties of the head's shared part and of each value's own residual: candidates, the pair that orders
    # the validation split best is used (one number: no choice)
    alpha: list[PositiveFloat] = Field(default_factory=lambda: [3.0, 10.0, 30.0], min_length=1)
    value_alpha: list[PositiveFloat] = Field(default_factory=lambda: [1.0, 3.0, 10.0, 30.0, 100.0], min_length=1)
    tune_epochs: int = Field(TuneConfig.epochs, ge=0)  # 0: frozen encoder; else fine-tune it under the head
    tune_learning_rate: float = Field(TuneConfig.learning_rate, gt=0)
    tune_batch_size: int = Field(TuneConfig.batch_size, ge=1)
    direction_intensity: float = 5.0  # target of a row that has a direction but no intensity
    onnx: bool = True  # also export the int8 ONNX graph (backend=onnx: CPU scoring without torch)
    root: Path = Path(".")

    def check(self) -> None:
        """Re-validate after attribute changes (the fields are checked when the config is built)."""
        type(self).model_validate(self.model_dump())

    @field_validator("alpha", "value_alpha", mode="before")
    @classmethod
    def _one_or_more(cls, v: object) -> object:
        return [v] if isinstance(v, int | float) else v

    def tune(self) -> TuneConfig:
        return TuneConfig(epochs=self.tune_epochs, learning_rate=self.tune_learning_rate,
                          batch_size=self.tune_batch_size)


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


def fit_judge(cfg: JudgeTrainConfig, rows: pd.DataFrame, echo=None, choose_on: pd.DataFrame | None = None):
    """Fit the judge on ``rows`` (text, value, target): embed them with the encoder and fit the value head in closed
    form, with the penalties chosen on ``choose_on`` (else on a fifth of ``rows`` by text hash, the head then
    refitted on all of them) when the config gives several; with ``tune_epochs``, then fine-tune encoder and head
    together and refit the head on the tuned encoder. Return the judge as one ``SentenceTransformer`` (encoder +
    head), the values of its output columns, the head's penalties and the record of their choice (None: no choice)."""
    import copy

    from sentence_transformers import SentenceTransformer

    from valueflow.judges.value_head import build_judge_model, choose_head, fit_value_head, tune_encoder, value_query
    from valueflow.models import clip_to_window, load_sentence_model

    encoder = load_sentence_model(cfg.base_model)
    if cfg.tune_epochs:
        encoder = copy.deepcopy(encoder)  # the loaded model is shared (cached): tune a copy
    values = [v.name for v in get_taxonomy().values]
    index_of = {v: i for i, v in enumerate(values)}
    texts, truncated = clip_to_window(encoder, rows["text"].tolist())
    if truncated and echo:
        echo(f"warning: {truncated} training text(s) are longer than the encoder's window "
             f"({encoder.max_seq_length} tokens); the judge learns from their first {encoder.max_seq_length} tokens")
    value_index, target = rows["value"].map(index_of).to_numpy(), rows["target"].to_numpy(dtype=float)

    def embed(body, batch: list[str]) -> np.ndarray:  # each distinct text once
        unique = list(dict.fromkeys(batch))
        emb = body.encode(unique, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=len(unique) > 2000)
        where = {t: i for i, t in enumerate(unique)}
        return emb[[where[t] for t in batch]]

    def queries(body) -> np.ndarray:
        return body.encode([value_query(v) for v in values], normalize_embeddings=True, convert_to_numpy=True)

    def choice_set():
        """(the rows the head is fitted on while choosing, the rows it is scored on as (embeddings, value indices,
        targets), what they are); None when there are too few texts to choose on."""
        if choose_on is not None and len(choose_on) >= MIN_CHOICE_ROWS:
            return (slice(None), (embed(encoder, choose_on["text"].tolist()),
                    choose_on["value"].map(index_of).to_numpy(), choose_on["target"].to_numpy(dtype=float)),
                    "the validation split")
        for part in range(5):  # the first hash fifth the rows hold: a caller may have held out the first itself
            fifth = held_out_by_text_hash(rows["text"], 0.2, part).to_numpy()
            if fifth.sum() >= MIN_CHOICE_ROWS and not fifth.all():
                return ~fifth, (x[fifth], value_index[fifth], target[fifth]), "a fifth of the training rows (by text hash)"
        return None

    x = embed(encoder, texts)
    chosen = choice_set() if len(cfg.alpha) * len(cfg.value_alpha) > 1 else None
    if chosen is None:  # one candidate pair, or too few texts to choose on: the middle candidates
        head = HeadConfig(sorted(cfg.alpha)[len(cfg.alpha) // 2], sorted(cfg.value_alpha)[len(cfg.value_alpha) // 2])
        choice = None
        if echo and len(cfg.alpha) * len(cfg.value_alpha) > 1:
            echo(f"too few texts to choose the head penalties on: the middle candidates, alpha {head.alpha:g}, "
                 f"value_alpha {head.value_alpha:g}")
    else:
        fit, held, where = chosen
        head, tried = choose_head(x[fit], value_index[fit], target[fit], queries(encoder), held, cfg.alpha, cfg.value_alpha)
        choice = {"chosen_on": where, "texts": len(held[0]), "tried": tried}
        if echo:
            echo(f"head penalties chosen on {where} ({len(held[0])} texts): alpha {head.alpha:g}, "
                 f"value_alpha {head.value_alpha:g}")
    model = build_judge_model(encoder, fit_value_head(x, value_index, target, queries(encoder), head))
    if cfg.tune_epochs:
        tune_encoder(model, texts, value_index, target, cfg.tune(), echo)
        body = SentenceTransformer(modules=[model[i] for i in range(len(model) - 1)], device="cpu")
        model = build_judge_model(body, fit_value_head(embed(body, texts), value_index, target, queries(body), head))
    return model, values, head, choice


def train_judge(cfg: JudgeTrainConfig, echo=print) -> dict:
    """Run the stage: read and check the training rows, train, calibrate, measure, export; return its metrics."""
    from cards.judge_card import render_judge_card
    from valueflow.judges.embedding import EmbeddingJudge
    from valueflow.judges.value_head import CALIBRATION_FILE, Calibration, LearnedJudge, export_onnx, save_judge

    started = time.perf_counter()
    cfg.check()
    sink = RejectSink("train_judge", root=cfg.root, out=cfg.out)
    check_outputs({"train_judge.out folder": cfg.root / cfg.out, "rejected rows": sink.path,
                   "metrics": stage_records("train_judge", cfg.out, cfg.root)[0]},
                  {"train_judge.vidb": cfg.root / cfg.vidb,
                   **{f"train_judge.extra[{i}]": cfg.root / p for i, p in enumerate(cfg.extra)},
                   "train_judge.base_model": cfg.base_model if Path(cfg.base_model).exists() else None})
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

    held_out = vidb_rows[vidb_rows["split"] == "validation"] if has_splits else vidb_rows.iloc[:0]
    t = time.perf_counter()
    model, values, head, choice = fit_judge(cfg, train, echo, choose_on=held_out)
    train_seconds = time.perf_counter() - t

    calib_rows = held_out if len(held_out) >= 20 else train
    out = cfg.root / cfg.out
    with atomic_dir(out) as tmp:
        save_judge(model, tmp, values, cfg.base_model, head)
        if cfg.onnx:
            export_onnx(tmp)
        judge = LearnedJudge(str(tmp))
        scores = np.concatenate([judge.scores(v, g["text"].tolist()) for v, g in calib_rows.groupby("value")])
        targets = np.concatenate([g["target"].to_numpy() for _, g in calib_rows.groupby("value")])
        calibration = Calibration.fit(scores, targets)
        write_json(calibration.to_json(), tmp / CALIBRATION_FILE)
        judge.calibration = calibration
        quality = {}
        if len(held_out) >= 2:
            quality = {"split": "validation", "texts": len(held_out),
                       "judges": {name: rating_quality(j, held_out) for name, j in
                                  (("learned", judge), ("embedding", EmbeddingJudge()))}}
        metrics = {
            "rows": len(train), "rows_by_source": parts, "rejected": sink.count,
            "rejected_by_reason": sink.counts_by_reason(), "base_model": cfg.base_model,
            "base_model_hub_id": hub_id(cfg.base_model), "values": len(values), "calibration": {"fitted_on": "validation" if calib_rows is held_out else "train",
                                                 "texts": len(calib_rows), "knots": len(calibration.x)},
            "head": {"alpha": head.alpha, "value_alpha": head.value_alpha, "choice": choice},
            "held_out": quality, "config": cfg.model_dump(mode="json", exclude={"root"}), "train_seconds": round(train_seconds, 1),
        }
        write_json(metrics, tmp / TRAINING_RECORD)
        (tmp / "README.md").write_text(render_judge_card(metrics, repo_id=cfg.repo_id), encoding="utf-8")
    sink.write()
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    echo(f"trained the judge on {len(train)} rows ({parts}) in {train_seconds:.0f} s; rejected {sink.count}; "
         f"held-out pairwise accuracy {quality.get('judges', {}).get('learned', {}).get('pairwise_accuracy')}; saved to {cfg.out}")
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

