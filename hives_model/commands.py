"""CLI commands of HiVES (registered by valueflow/cli.py): train-hives, eval-hives, profile."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from valueflow.models import DEFAULT_BASE_MODEL
from valueflow.params import DEFAULT_PARAMS


def _threads() -> None:
    """``$VALUEFLOW_THREADS`` caps torch's CPU threads (a shared machine); unset, torch decides."""
    import os

    if os.environ.get("VALUEFLOW_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["VALUEFLOW_THREADS"]))


def train_hives(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `train_hives` section is used)."),
    data: Path | None = typer.Option(None, "--data", help="Override params: texts/VIDB record to train on."),
    base_model: str | None = typer.Option(None, "--base-model", help="Override params: base model path or Hub id."),
    out: Path | None = typer.Option(None, "--out", help="Override params: folder of the trained model."),
    stage1_steps: int | None = typer.Option(None, "--stage1-steps", help="Override params: stage-1 steps."),
    stage2_steps: int | None = typer.Option(None, "--stage2-steps", help="Override params: stage-2 steps."),
) -> None:
    """Train HiVES (stage 1 hierarchical contrastive, stage 2 anchor alignment) and save it as a sentence-transformers folder."""
    from hives_model.train import HivesTrainConfig, train_hives_stage

    cfg = HivesTrainConfig.load(params, stage1_steps=stage1_steps, stage2_steps=stage2_steps, data=data,
                                base_model=base_model, out=out)
    _threads()
    metrics = train_hives_stage(cfg)
    typer.echo(f"trained on {metrics['rows']} rows ({metrics['rows_per_theory']}); "
               f"{metrics['steps']['stage1']}+{metrics['steps']['stage2']} steps in {metrics['seconds']} s; "
               f"final losses {metrics['final_loss']}; saved to {cfg.out}")


def eval_hives(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `eval_hives` section is used)."),
    model: Path | None = typer.Option(None, "--model", help="Override params: trained HiVES folder."),
    data: Path | None = typer.Option(None, "--data", help="Override params: held-out texts/VIDB record."),
    release: Path | None = typer.Option(None, "--release", help="Override params: release folder to export."),
    no_export: bool = typer.Option(False, "--no-export", help="Only measure; do not write the release folder."),
) -> None:
    """Measure HiVES beside its base model on held-out texts, then export release/hives (model, taxonomy, ONNX int8, card)."""
    import json

    import numpy as np

    from cards.model_card import render_model_card
    from hives_model.data import load_texts, training_rows
    from hives_model.export import export_release
    from hives_model.metrics import HEADLINE, compare_models, format_table
    from hives_model.onnx_export import OnnxEncoder
    from hives_model.profile import plot_value_space
    from hives_model.train import read_training_metrics
    from validation.rejects import RejectSink
    from valueflow.io import write_metrics, write_text
    from valueflow.models import load_sentence_model

    _threads()
    started = time.perf_counter()
    from hives_model.eval_config import EvalHivesConfig

    p = EvalHivesConfig.load(params).model_dump(mode="json", exclude_none=True)
    model_dir = Path(model or p.get("model", "models/hives"))
    data_path = Path(data or p.get("data", "release/vidb/data/full/test.parquet"))
    release_dir = Path(release or p.get("release", "release/hives"))
    training = read_training_metrics(model_dir)
    base_name = p.get("base_model") or training.get("config", {}).get("base_model", DEFAULT_BASE_MODEL)
    missing = p.get("missing_direction", training.get("config", {}).get("missing_direction", "unknown"))

    sink = RejectSink("eval_hives")
    rows = training_rows(load_texts(data_path, sink, split=p.get("split", "test")), missing, sink, file=str(data_path))
    probe_rows = None
    probe_path = p.get("probe_train")
    if probe_path and Path(probe_path).exists():
        probe_rows = training_rows(load_texts(probe_path, sink, split="train"), missing, sink, file=str(probe_path))
    sink.write()

    from sentence_transformers import SentenceTransformer

    hives = SentenceTransformer(str(model_dir))
    base = load_sentence_model(base_name)
    emb: dict[str, np.ndarray] = {}
    result = compare_models({"hives": hives, "base": base}, rows, probe_rows, seed=int(p.get("seed", 42)),
                            max_anchors=int(p.get("max_anchors", 1000)), embeddings=emb)
    typer.echo(format_table(result, title=f"HiVES vs base ({base_name}) on {data_path}, {len(rows)} rows"))

    plots = Path(p.get("plots", "plots/hives"))
    plot_value_space(emb["hives"], rows["theory"].tolist(), rows["value"].tolist(), plots / "value_space.png",
                     title="HiVES value space (PCA of held-out texts)")
    plot_value_space(emb["base"], rows["theory"].tolist(), rows["value"].tolist(), plots / "value_space_base.png",
                     title=f"Base model value space ({base_name})")
    lines = ["metric,model,value"]
    for key, _ in HEADLINE:
        for name in ("hives", "base"):
            if result[name][key] is not None:
                lines.append(f"{key},{name},{result[name][key]:.4f}")
    write_text("\n".join(lines) + "\n", plots / "comparison.csv")

    metrics = {"data": str(data_path), "rows": len(rows), "base_model": base_name, "rejected": sink.count, **result}
    if not no_export:
        readme = render_model_card(training, metrics, repo_id=p.get("repo_id", "valueflow/hives"), eval_data=str(data_path),
                                   embedding_dim=hives.get_embedding_dimension(),
                                   max_seq_length=hives.max_seq_length)
        export_release(model_dir, release_dir, onnx=bool(p.get("onnx", True)), readme=readme)
        sample = rows["text"].tolist()[: int(p.get("check_texts", 200))]
        reloaded = SentenceTransformer(str(release_dir)).encode(sample, normalize_embeddings=True)
        original = hives.encode(sample, normalize_embeddings=True)
        metrics["export"] = {"folder": str(release_dir),
                             "reload_max_abs_diff": float(np.abs(reloaded - original).max())}
        if p.get("onnx", True):
            onnx_emb = OnnxEncoder(release_dir).encode(sample)
            cos = (onnx_emb * original).sum(axis=1)
            metrics["export"].update({"onnx_mean_cosine": float(cos.mean()), "onnx_min_cosine": float(cos.min())})
        typer.echo(f"exported {release_dir}: {json.dumps(metrics['export'])}")
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_metrics("hives", metrics)


def profile(
    file: Path = typer.Argument(..., help="Table (CSV, TSV, JSONL, Parquet) with a `text` column."),
    model: str = typer.Option("release/hives", "--model", help="HiVES folder or Hub id."),
    top: int = typer.Option(3, "--top", min=1, help="Nearest values per theory."),
    out: Path | None = typer.Option(None, "--out", help="Write the profiles here (.csv or .parquet)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a 2-D plot of the texts among the value prototypes."),
) -> None:
    """For each text, its nearest values per theory with similarity and direction (+1 supports, -1 opposes)."""
    from hives_model.profile import profile_file

    _threads()
    profiles = profile_file(file, model=model, top=top, out=out, plot=plot)
    for row, group in profiles.groupby("row", sort=True):
        typer.echo(f"[{row}] {group['text'].iloc[0][:100]}")
        for theory, g in group.groupby("theory", sort=False):
            cells = ", ".join(f"{v} {'+' if d > 0 else '-'} {s:.2f}" for v, d, s in zip(g["value"], g["direction"], g["similarity"]))
            typer.echo(f"    {theory:<6} {cells}")


def register(app: typer.Typer) -> None:
    app.command("train-hives")(train_hives)
    app.command("eval-hives")(eval_hives)
    app.command("profile")(profile)
