"""CLI commands for releases: ``valueflow publish`` and ``valueflow cards`` (registered by valueflow/cli.py)."""

from __future__ import annotations

import logging
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
    """Publish release/vidb, release/hives and release/judge to the Hub as one commit each, tagged v<version> (dry run by default).

    Without a token ($HF_TOKEN or `hf auth login`) or with release.dry_run: true, nothing is sent and the receipt
    lists exactly what would be pushed (repo, files, sizes, sha256, tag). A pushed release is recorded under
    releases/ for the next changelog, and CITATION.cff is brought to the release version.
    """
    from cards.publish import PublishError, format_receipt, publish_release, resolve_token
    from cards.release import ReleaseConfig
    from valueflow.outcome import RunFailed

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = ReleaseConfig.load(params, version=version, endpoint=endpoint, receipt=receipt,
                             dry_run=None if push is None else not push)
    if push and not resolve_token():  # asked to push: a release job must not "pass" having pushed nothing
        typer.echo("error: --push needs a Hub token: set HF_TOKEN or run `hf auth login` (nothing was written)", err=True)
        raise typer.Exit(2)
    try:
        result = publish_release(cfg)
    except PublishError as err:  # the run finished without publishing everything; the receipt says what happened
        raise RunFailed(f"{err} (receipt: {cfg.receipt})") from None
    typer.echo(format_receipt(result))
    typer.echo(f"receipt: {cfg.receipt}")


def cards(
    params: Path = PARAMS_OPTION,
    version: str | None = typer.Option(None, "--version", help="Override params: release version."),
) -> None:
    """Re-render CITATION.cff for the release version in params.yaml (the cards are rendered by their stages)."""
    from cards.release import ReleaseConfig, write_citation_cff

    cfg = ReleaseConfig.load(params, version=version)
    path = write_citation_cff(cfg.version)
    typer.echo(f"wrote {path} (version {cfg.version})")


def register(app: typer.Typer) -> None:
    app.command()(publish)
    app.command()(cards)
