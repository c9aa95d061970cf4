"""CLI commands of HiVES (registered by valueflow/cli.py): train-hives, eval-hives, profile."""

from __future__ import annotations

from pathlib import Path

import typer

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
    checkpoint_steps: int | None = typer.Option(None, "--checkpoint-steps", help="Save a resumable checkpoint every N steps; a rerun resumes."),
) -> None:
    """Train HiVES (stage 1 hierarchical contrastive, stage 2 anchor alignment) and save it as a sentence-transformers folder."""
    from hives_model.train import HivesTrainConfig, train_hives_stage

    cfg = HivesTrainConfig.load(params, stage1_steps=stage1_steps, stage2_steps=stage2_steps, data=data,
                                base_model=base_model, out=out, checkpoint_steps=checkpoint_steps)
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
    """Measure HiVES beside its base model and the oracle on held-out texts, then export release/hives (model, taxonomy, ONNX int8, card)."""
    from hives_model.evaluate import HivesEvalConfig, evaluate_hives
    from valueflow.io import write_metrics

    _threads()
    cfg = HivesEvalConfig.load(params, model=model, data=data, release=release, export=False if no_export else None)
    write_metrics("hives", evaluate_hives(cfg, echo=typer.echo), out=cfg.release)


def profile(
    file: Path = typer.Argument(..., help="Table (CSV, TSV, JSONL, Parquet) with a `text` column."),
    model: str = typer.Option("release/hives", "--model", help="HiVES folder or Hub id."),
    top: int = typer.Option(3, "--top", min=1, help="Nearest values per theory."),
    out: Path | None = typer.Option(None, "--out", help="Write the profiles here (.csv or .parquet)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a 2-D plot of the texts among the value prototypes."),
) -> None:
    """For each text, its nearest values per theory with similarity and direction (+1 supports, -1 opposes)."""
    from hives_model.profile import profile_file

    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):  # before any work: never CSV under another name
        raise typer.BadParameter(f"{out}: unsupported format {out.suffix or '(none)'!r}; use .csv or .parquet", param_hint="--out")
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
