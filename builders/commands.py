"""CLI commands of the VIDB builders (registered by valueflow/cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from valueflow.params import DEFAULT_PARAMS, stage_params

PARAMS_OPTION = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `ingest` section is used).")


def ingest(
    params: Path = PARAMS_OPTION,
    source: list[str] = typer.Option(None, "--source", "-s", help="Override params: sources to ingest (repeatable)."),
    out: Path = typer.Option(None, "--out", help="Override params: output texts Parquet."),
) -> None:
    """Turn the configured sources into data/texts.parquet; rejected rows go to data/rejected/ingest.parquet."""
    from builders.ingest import IngestConfig, format_counts, ingest as run_ingest
    from valueflow.io import refdata_dir

    p = stage_params("ingest", params)
    refdata = p.get("refdata")
    cfg = IngestConfig(
        sources=source or p.get("sources", ["seed"]),
        seed_dir=Path(p.get("seed_dir", "data/seed/texts")),
        refdata=Path(refdata) if refdata else refdata_dir(),
        tables=p.get("tables", []) or [],
        out=out or Path(p.get("out", "data/texts.parquet")),
    )
    _, metrics = run_ingest(cfg)
    typer.echo(format_counts(metrics))


def register(app: typer.Typer) -> None:
    app.command()(ingest)
