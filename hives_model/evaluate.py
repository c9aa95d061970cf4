"""The ``eval_hives`` stage: HiVES beside its base model and the oracle on held-out texts, then the release folder.

``evaluate_hives(cfg)`` is what ``valueflow eval-hives`` and Python users call. It

1. reads the held-out rows (default the VIDB test split) and drops every row whose normalised text is also in the
   data HiVES trained on (a multi-label text can sit in train under one value and in test under another, since
   ids hash the value): a held-out metric never scores a training text, and the count dropped is reported;
2. scores HiVES, its base model and the oracle (true labels as the embedding, the ceiling of the test) on the same
   rows, with the share of the base-to-oracle headroom HiVES closes and the mean cosine (collapse monitor);
3. draws the value-space plots and writes the comparison CSV;
4. unless ``export`` is off, renders the model card and exports ``release/hives`` (model, taxonomy, int8 ONNX),
   checking that the reloaded folder and the ONNX graph encode like the trained model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from hives_model.data import load_texts, training_rows
from hives_model.train import read_training_metrics
from validation.rejects import RejectSink
from valueflow.io import check_outputs, normalise_text, read_table, stage_records
from valueflow.models import DEFAULT_BASE_MODEL
from valueflow.params import StageParams

PLOTS = {"hives": "value_space.png", "base": "value_space_base.png", "comparison": "comparison.csv"}  # in cfg.plots


class HivesEvalConfig(StageParams):
    """The ``eval_hives`` section of params.yaml."""

    section: ClassVar[str] = "eval_hives"

    model: Path = Path("models/hives")
    data: Path = Path("release/vidb/data/full/test.parquet")
    split: str | None = "test"
    probe_train: Path | None = Path("release/vidb/data/full/train.parquet")  # intensity probe is fitted here
    base_model: str | None = None  # None: the base model recorded at training
    release: Path = Path("release/hives")
    repo_id: str = "valueflow/hives"
    export: bool = True
    onnx: bool = True
    check_texts: int = Field(200, ge=1)  # texts used to check the reloaded folder and the ONNX graph against PyTorch
    max_anchors: int = Field(1000, ge=1)
    seed: int = 42
    plots: Path = Path("plots/hives")


def training_texts(training: dict) -> set[str]:
    """Normalised texts of the data a HiVES folder was trained on (from its ``hives_training.json``)."""
    config = training.get("config", {})
    path = Path(config.get("data", ""))
    if not config.get("data") or not path.exists():
        return set()
    df = read_table(path, required=("text",))
    split = config.get("split")
    if split and "split" in df.columns:
        df = df[df["split"].astype(str) == split]
    return set(df["text"].map(normalise_text))


def drop_training_texts(rows: pd.DataFrame, seen: set[str]) -> tuple[pd.DataFrame, int]:
    """Rows whose text HiVES never trained on, and how many were dropped."""
    leaked = rows["text"].map(normalise_text).isin(seen)
    return rows[~leaked].reset_index(drop=True), int(leaked.sum())


def evaluate_hives(cfg: HivesEvalConfig, echo=print) -> dict:
    """Run the stage and return its metrics (written to ``metrics/hives.json`` by the command)."""
    from sentence_transformers import SentenceTransformer

    from cards.model_card import render_model_card
    from hives_model.export import export_release
    from hives_model.metrics import HEADLINE, ORACLE, compare_models, format_table
    from hives_model.onnx_export import OnnxEncoder
    from hives_model.profile import plot_value_space
    from valueflow.io import write_text
    from valueflow.models import load_sentence_model, resolve_model_path

    started = time.perf_counter()
    sink = RejectSink("eval_hives", out=cfg.release)
    check_outputs({"eval_hives.release folder": cfg.release if cfg.export else None, "rejected rows": sink.path,
                   "metrics": stage_records("hives", cfg.release)[0],
                   **{f"eval_hives.plots ({name})": cfg.plots / name for name in PLOTS.values()}},
                  {"eval_hives.model": cfg.model, "eval_hives.data": cfg.data, "eval_hives.probe_train": cfg.probe_train,
                   "eval_hives.base_model": cfg.base_model if cfg.base_model and Path(cfg.base_model).exists() else None})
    resolve_model_path(str(cfg.model))  # not trained yet: one line naming the command that trains it
    training = read_training_metrics(cfg.model)
    trained_with = training.get("config", {})
    base_name = cfg.base_model or trained_with.get("base_model", DEFAULT_BASE_MODEL)
    missing = trained_with.get("missing_direction", "unknown")

    rows = training_rows(load_texts(cfg.data, sink, split=cfg.split), missing, sink, file=str(cfg.data))
    rows, leaked = drop_training_texts(rows, training_texts(training))
    probe_rows = None
    if cfg.probe_train is not None and cfg.probe_train.exists():
        probe_rows = training_rows(load_texts(cfg.probe_train, sink, split="train"), missing, sink,
                                   file=str(cfg.probe_train))
    sink.write()

    hives = SentenceTransformer(str(cfg.model))
    base = load_sentence_model(base_name)
    emb: dict[str, np.ndarray] = {}
    result = compare_models({"hives": hives, "base": base}, rows, probe_rows, seed=cfg.seed,
                            max_anchors=cfg.max_anchors, embeddings=emb)
    echo(format_table(result, title=f"HiVES vs base ({base_name}) and the oracle on {cfg.data}, {len(rows)} rows "
                                    f"({leaked} dropped: text also in the training data)"))

    plot_value_space(emb["hives"], rows["theory"].tolist(), rows["value"].tolist(), cfg.plots / PLOTS["hives"],
                     title="HiVES value space (PCA of held-out texts)")
    plot_value_space(emb["base"], rows["theory"].tolist(), rows["value"].tolist(), cfg.plots / PLOTS["base"],
                     title=f"Base model value space ({base_name})")
    lines = ["metric,model,value"]
    for key, _ in HEADLINE:
        for name in ("hives", "base", ORACLE):
            if result[name][key] is not None:
                lines.append(f"{key},{name},{result[name][key]:.4f}")
    write_text("\n".join(lines) + "\n", cfg.plots / PLOTS["comparison"])

    metrics = {"data": str(cfg.data), "rows": len(rows), "dropped_training_texts": leaked, "base_model": base_name,
               "rejected": sink.count, **result}
    if cfg.export:
        readme = render_model_card(training, metrics, repo_id=cfg.repo_id, eval_data=str(cfg.data),
                                   embedding_dim=hives.get_embedding_dimension(), max_seq_length=hives.max_seq_length)
        export_release(cfg.model, cfg.release, onnx=cfg.onnx, readme=readme)
        sample = rows["text"].tolist()[: cfg.check_texts]
        reloaded = SentenceTransformer(str(cfg.release)).encode(sample, normalize_embeddings=True)
        original = hives.encode(sample, normalize_embeddings=True)
        metrics["export"] = {"folder": str(cfg.release), "reload_max_abs_diff": float(np.abs(reloaded - original).max())}
        if cfg.onnx:
            cos = (OnnxEncoder(cfg.release).encode(sample) * original).sum(axis=1)
            metrics["export"].update({"onnx_mean_cosine": float(cos.mean()), "onnx_min_cosine": float(cos.min())})
        echo(f"exported {cfg.release}: {metrics['export']}")
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    return metrics
