"""CLI commands of the steering study: ``steer`` and ``eval-steering`` (registered through evaluation/commands.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from valueflow.params import DEFAULT_PARAMS, stage_params


def steer(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `steer` section is used)."),
    queries: Path | None = typer.Option(None, "--queries", help="Override params: queries file (query_id, query)."),
    value: list[str] = typer.Option(None, "--value", "-v", help="Override params: values to steer (repeatable)."),
    intensity: list[int] = typer.Option(None, "--intensity", "-i", help="Override params: target levels in -2..2 (repeatable)."),
    fmt: list[str] = typer.Option(None, "--format", "-f", help="Override params: prompt formats (repeatable)."),
    samples: int | None = typer.Option(None, "--samples", help="Override params: answers per prompt."),
    max_queries: int | None = typer.Option(None, "--max-queries", help="Override params: use only the first N queries."),
    out: Path | None = typer.Option(None, "--out", help="Override params: output responses Parquet."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Ask every backend every (query, format, target, sample) prompt -> data/responses.parquet (resumable)."""
    from evaluation.steer import SteerConfig
    from evaluation.steer import steer as run_steer

    cfg = SteerConfig.from_params(
        stage_params("steer", params), queries=queries, values=value, intensities=intensity, formats=fmt,
        samples=samples, max_queries=max_queries, out=out,
    )
    _, metrics = run_steer(cfg, progress=not quiet)
    for name, b in metrics["backends"].items():
        typer.echo(f"{name} ({b['kind']}): {b['planned']} prompts, {b['reused']} reused, {b['generated']} generated, "
                   f"{b['failed']} failed, {b['refused']} refused")
    typer.echo(f"{metrics['responses']} responses -> {cfg.out}")


def eval_steering(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `eval_steering` section is used)."),
    responses: Path | None = typer.Option(None, "--responses", help="Override params: responses Parquet."),
    judge: str | None = typer.Option(None, "--judge", help="Override params: judge spec (embedding, chat:<model>@<url>, ...)."),
    panel: str | None = typer.Option(None, "--vidb", help="Override params: anchor panel (release folder, table, Hub id)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Score the responses with the anchor evaluator and write metrics/steering.json and the steering figures."""
    from evaluation.steering_analysis import EvalSteeringConfig
    from evaluation.steering_analysis import eval_steering as run_eval

    cfg = EvalSteeringConfig.from_params(stage_params("eval_steering", params), responses=str(responses) if responses else None,
                                         judge=judge, panel=panel)
    metrics = run_eval(cfg, progress=not quiet)
    for model, m in metrics["models"].items():
        typer.echo(f"{model}: regime {m['regime']}, median slope {m['median_slope']}, median monotonicity {m['median_monotonicity']}")
    typer.echo(f"{metrics['scores']} scores ({metrics['refused']} refusals not scored) -> metrics/steering.json")


def register(app: typer.Typer) -> None:
    app.command("steer")(steer)
    app.command("eval-steering")(eval_steering)
