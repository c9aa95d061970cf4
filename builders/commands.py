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
    from builders.ingest import IngestConfig, format_counts
    from builders.ingest import ingest as run_ingest
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


def _override(p: dict, **kw: object) -> dict:
    """Params section with the CLI options that were given laid over it."""
    return {**p, **{k: v for k, v in kw.items() if v is not None and v != []}}


def collect(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `collect` section is used)."),
    judge: list[str] = typer.Option(None, "--judge", "-j", help="Override params: judge specs (repeatable), e.g. "
                                    "embedding, reference, chat:<model>@<base_url>."),
    k: int = typer.Option(None, "--k", help="Override params: texts per window."),
    m: int = typer.Option(None, "--m", help="Override params: windows per text."),
    value: list[str] = typer.Option(None, "--value", help="Only these values (repeatable)."),
    out: Path = typer.Option(None, "--out", help="Override params: raw rankings Parquet."),
) -> None:
    """Judges rank windows of k texts of one value (each text in m windows) -> data/rankings.parquet (resumable)."""
    from builders.collect import CollectConfig
    from builders.collect import collect as run_collect
    from valueflow.taxonomy import get_taxonomy

    torch_single_thread()
    p = _override(stage_params("collect", params), judges=judge, k=k, m=m, out=out)
    cfg = CollectConfig(
        texts=Path(p.get("texts", "data/texts.parquet")),
        out=Path(p.get("out", "data/rankings.parquet")),
        judges=list(p.get("judges", ["reference", "embedding"])),
        judge_options=p.get("judge_options") or {},
        k=int(p.get("k", 4)),
        m=int(p.get("m", 6)),
        seed=int(p.get("seed", 0)),
        values=[get_taxonomy().resolve(v) for v in value] if value else p.get("values"),
        chunk_size=int(p.get("chunk_size", 256)),
        store=Path(p.get("store", "data/cache/collect")),
        import_rankings=list(p.get("import_rankings") or []),
    )
    _, metrics = run_collect(cfg)
    typer.echo(f"{metrics['rankings']} rankings of {metrics['n_values']} values (k={cfg.k}, m={cfg.m}) -> {cfg.out}")
    for name, s in metrics["judges"].items():
        typer.echo(f"  {name}: {s['collected']} new, {s['from_store']} from the store, {s['failed']} failed, {s['tied']} all tied (no order)")


def aggregate(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `aggregate` section is used)."),
    rankings: Path = typer.Option(None, "--rankings", help="Override params: raw rankings file (Parquet/JSONL/CSV)."),
    out: Path = typer.Option(None, "--out", help="Override params: utilities Parquet."),
) -> None:
    """Plackett-Luce MAP per value (judge reliability, Laplace SE, connectivity check) -> data/utilities.parquet."""
    from builders.aggregate import AggregateConfig
    from builders.aggregate import aggregate as run_aggregate

    p = _override(stage_params("aggregate", params), rankings=rankings, out=out)
    cfg = AggregateConfig(
        texts=Path(p.get("texts", "data/texts.parquet")),
        rankings=Path(p.get("rankings", "data/rankings.parquet")),
        out=Path(p.get("out", "data/utilities.parquet")),
        prior_sd=float(p.get("prior_sd", 3.0)),
        reliability=bool(p.get("reliability", True)),
        reliability_sd=float(p.get("reliability_sd", 1.0)),
        anchor_judges=tuple(p.get("anchor_judges", ["reference"]) or ()),
        spread_min_reliability=float(p.get("spread_min_reliability", 0.3)),
        dense_se_limit=int(p.get("dense_se_limit", 3000)),
    )
    _, metrics = run_aggregate(cfg)
    typer.echo(f"{metrics['placed']}/{metrics['texts']} texts placed from {metrics['rankings_used']} rankings "
               f"({metrics['rejected']} rejected, {metrics['disconnected']} disconnected, {metrics['unranked']} unranked)")
    for name, r in metrics["judge_reliability"].items():
        typer.echo(f"  reliability {name}: {r}")


def build_vidb(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `build_vidb` section is used)."),
    out_dir: Path = typer.Option(None, "--out-dir", help="Override params: release folder."),
) -> None:
    """Calibrate to [-10, 10], flag, split and write release/vidb/ (Parquet configs, stats.json, dataset card)."""
    from builders.build_vidb import BuildConfig
    from builders.build_vidb import build_vidb as run_build
    from cards.dataset_card import write_dataset_card

    p = _override(stage_params("build_vidb", params), out_dir=out_dir)
    known = set(BuildConfig.__dataclass_fields__) - {"root"}
    unknown = sorted(set(p) - known - {"repo_id"})
    if unknown:
        raise typer.BadParameter(f"{params}: unknown key(s) in 'build_vidb': {', '.join(unknown)}")
    paths = {"texts", "utilities", "rankings", "out_dir", "plots_dir", "collect_metrics", "aggregate_metrics", "rejected_dir"}
    kwargs = {key: Path(v) if key in paths else v for key, v in p.items() if key in known}
    if kwargs.get("prior_sd") is None:
        try:
            kwargs["prior_sd"] = stage_params("aggregate", params).get("prior_sd")
        except KeyError:
            pass
    cfg = BuildConfig(**kwargs)
    repo_id = p.get("repo_id", "valueflow/vidb")
    _, stats = run_build(cfg, card=lambda folder, s: write_dataset_card(folder, s, repo_id=repo_id))
    card = cfg.out_dir / "README.md"
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
