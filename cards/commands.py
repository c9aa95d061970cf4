"""CLI commands for releases: ``valueflow publish`` and ``valueflow cards`` (registered by valueflow/cli.py)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer

from valueflow.params import DEFAULT_PARAMS

PARAMS_OPTION = typer.Option(DEFAULT_PARAMS, "--params", help="Params file (the `release` section is used).")


def publish(
    params: Path = PARAMS_OPTION,
    version: str | None = typer.Option(None, "--version", help="Override params: release version (semver, no 'v')."),
    push: bool | None = typer.Option(
        None, "--push/--dry-run", help="Override params (release.dry_run): push to the Hub, or only write the plan."
    ),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Override params: Hub endpoint URL."),
    receipt: Path | None = typer.Option(None, "--receipt", help="Override params: where the receipt goes."),
) -> None:
    """Publish release/vidb and release/hives to the Hub as one commit each, tagged v<version> (dry run by default).

    Without a token ($HF_TOKEN or `hf auth login`) or with release.dry_run: true, nothing is sent and the receipt
    lists exactly what would be pushed (repo, files, sizes, sha256, tag). A pushed release is recorded under
    releases/ for the next changelog, and CITATION.cff is brought to the release version.
    """
    from cards.publish import PublishError, format_receipt, resolve_token
    from cards.publish import publish as run_publish
    from cards.release import ReleaseConfig, write_citation_cff, write_release_record
    from valueflow.io import write_metrics

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = ReleaseConfig.from_params(params, version=version, endpoint=endpoint, receipt=receipt,
                                    dry_run=None if push is None else not push)
    if push and not resolve_token():  # asked to push: a release job must not "pass" having pushed nothing
        typer.echo("error: --push needs a Hub token: set HF_TOKEN or run `hf auth login` (nothing was written)", err=True)
        raise typer.Exit(2)
    started = time.perf_counter()
    write_citation_cff(cfg.version)
    try:
        result = run_publish(cfg)
    except PublishError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    metrics = {
        "version": cfg.version,
        "pushed": result["mode"] == "push",
        "seconds": round(time.perf_counter() - started, 3),
        **{f"{name}_{k}": a[k] for name, a in result["artifacts"].items() for k in ("n_files", "total_bytes")},
        "new_commits": sum(a.get("action") == "committed" for a in result["artifacts"].values()),
    }
    write_metrics("publish", metrics, out=cfg.receipt)
    if result["mode"] == "push":
        write_release_record(cfg.history_dir, cfg.version, {
            name: {"repo_id": a["repo_id"], "commit": a.get("commit"), "stats": _artifact_stats(name, Path(a["folder"]))}
            for name, a in result["artifacts"].items()
        })
    typer.echo(format_receipt(result))
    typer.echo(f"receipt: {cfg.receipt}")


def _artifact_stats(name: str, folder: Path) -> dict:
    """The counts the next release's changelog compares with: VIDB's stats.json, HiVES's evaluation metrics.

    The same shapes the cards pass to ``card_release_section``, so a card's changelog compares like with like.
    """
    from cards.release import model_changelog_stats

    if name == "vidb" and (folder / "stats.json").is_file():
        return json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    if name == "hives" and Path("metrics/hives.json").is_file():
        return model_changelog_stats(json.loads(Path("metrics/hives.json").read_text(encoding="utf-8")))
    return {}


def cards(
    params: Path = PARAMS_OPTION,
    version: str | None = typer.Option(None, "--version", help="Override params: release version."),
) -> None:
    """Re-render CITATION.cff for the release version in params.yaml (the cards are rendered by their stages)."""
    from cards.release import ReleaseConfig, write_citation_cff

    cfg = ReleaseConfig.from_params(params, version=version)
    path = write_citation_cff(cfg.version)
    typer.echo(f"wrote {path} (version {cfg.version})")


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(cards)
