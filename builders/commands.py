"""CLI commands of the VIDB builders (registered by valueflow/cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from valueflow.outcome import MIN_SUCCESS_HELP, check_min_success, check_success
from valueflow.params import DEFAULT_PARAMS

PARAMS_OPTION = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `ingest` section is used).")


def ingest(
    params: Path = PARAMS_OPTION,
    source: list[str] = typer.Option(None, "--source", "-s", help="Override params: sources to ingest (repeatable)."),
    out: Path = typer.Option(None, "--out", help="Override params: output texts Parquet."),
) -> None:
    """Turn the configured sources into data/texts.parquet; rejected rows go to data/rejected/ingest.parquet."""
    from builders.ingest import IngestConfig, format_counts
    from builders.ingest import ingest as run_ingest

    _, metrics = run_ingest(IngestConfig.load(params, sources=source or None, out=out))
    typer.echo(format_counts(metrics))


def collect(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `collect` section is used)."),
    judge: list[str] = typer.Option(None, "--judge", "-j", help="Override params: judge specs (repeatable), e.g. "
                                    "embedding, reference, chat:<model>@<base_url>."),
    k: int = typer.Option(None, "--k", help="Override params: texts per window."),
    m: int = typer.Option(None, "--m", help="Override params: windows per text."),
    value: list[str] = typer.Option(None, "--value", help="Only these values (repeatable)."),
    out: Path = typer.Option(None, "--out", help="Override params: raw rankings Parquet."),
    min_success: float = typer.Option(1.0, "--min-success", help=MIN_SUCCESS_HELP),
) -> None:
    """Judges rank windows of k texts of one value (each text in m windows) -> data/rankings.parquet (resumable)."""
    from builders.collect import CollectConfig
    from builders.collect import collect as run_collect

    check_min_success(min_success)
    cfg = CollectConfig.load(params, judges=judge or None, k=k, m=m, values=value or None, out=out)
    torch_single_thread()
    _, metrics = run_collect(cfg)
    typer.echo(f"{metrics['rankings']} rankings of {metrics['n_values']} values (k={cfg.k}, m={cfg.m}) -> {cfg.out}")
    for name, s in metrics["judges"].items():
        typer.echo(f"  {name}: {s['collected']} new, {s['from_store']} from the store, {s['failed']} failed, {s['tied']} without an order (tied or unlabelled)")
    asked = sum(s["windows"] for s in metrics["judges"].values())
    failed = sum(s["failed"] for s in metrics["judges"].values())
    check_success(asked - failed, asked, "windows", min_success, metrics["rejected_by_reason"])


def aggregate(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `aggregate` section is used)."),
    rankings: Path = typer.Option(None, "--rankings", help="Override params: raw rankings file (Parquet/JSONL/CSV)."),
    out: Path = typer.Option(None, "--out", help="Override params: utilities Parquet."),
) -> None:
    """Plackett-Luce MAP per value (judge reliability, Laplace SE, connectivity check) -> data/utilities.parquet."""
    from builders.aggregate import AggregateConfig
    from builders.aggregate import aggregate as run_aggregate

    _, metrics = run_aggregate(AggregateConfig.load(params, rankings=rankings, out=out))
    typer.echo(f"{metrics['placed']}/{metrics['texts']} texts placed from {metrics['rankings_used']} rankings "
               f"({metrics['rejected']} rejected, {metrics['disconnected']} disconnected, {metrics['unranked']} unranked)")
    for name, r in metrics["judge_reliability"].items():
        typer.echo(f"  reliability {name}: {r}")


def build_vidb(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `build_vidb` section is used)."),
    out_dir: Path = typer.Option(None, "--out-dir", help="Override params: release folder."),
) -> None:
    """Calibrate to [-10, 10], flag, split and write release/vidb/ (Parquet configs, stats.json, dataset card)."""
    from builders.build_vidb import BuildConfig, build_release

    cfg = BuildConfig.load(params, out_dir=out_dir)
    _, stats, card = build_release(cfg)
    typer.echo(f"VIDB: {stats['texts']} texts ({stats['filtered']} filtered, {stats['flagged']} flagged), "
               f"{stats['rankings']} rankings -> {cfg.out_dir} (card: {card})")


def torch_single_thread() -> None:
    """Judges may run torch models; keep them to one thread when the machine is shared (override: OMP_NUM_THREADS)."""
    import os

    threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(collect)
    app.command()(aggregate)
    app.command("build-vidb")(build_vidb)
