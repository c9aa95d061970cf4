"""`valueflow publish` as maintainers run it (the dvc stage's cmd): params, receipt, metrics, history, no token leaks."""

from __future__ import annotations

import json
import logging

import yaml
from typer.testing import CliRunner

from tests.publish.conftest import FAKE_TOKEN
from valueflow.cli import app


def write_params(tmp_path, hub, release_dirs, **over):
    release = {"version": "1.0.0", "dataset_dir": str(release_dirs[0]), "model_dir": str(release_dirs[1]), "judge_dir": str(release_dirs[2]),
               "dry_run": True, "endpoint": hub.url, "retry_wait_s": 0.0}
    release.update(over)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"release": release}))


def test_cli_dry_run_by_default_writes_receipt_metrics_and_citation(tmp_path, monkeypatch, hub, hub_token, release_dirs):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, hub, release_dirs)
    result = CliRunner().invoke(app, ["publish"])
    assert result.exit_code == 0, result.output
    assert "dry-run" in result.output and "would-push" in result.output and hub.state.log == []
    receipt = json.loads((tmp_path / "release" / "receipt.json").read_text())
    assert receipt["artifacts"]["vidb"]["n_files"] == 9
    metrics = json.loads((tmp_path / "metrics" / "publish.json").read_text())
    assert metrics["pushed"] is False and metrics["new_commits"] == 0 and metrics["vidb_n_files"] == 9
    assert "version: 1.0.0" in (tmp_path / "CITATION.cff").read_text()
    assert not (tmp_path / "releases").exists()  # only a real push is recorded in the history


def test_cli_push_records_the_release_and_never_leaks_the_token(tmp_path, monkeypatch, hub, hub_token, release_dirs, caplog):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, hub, release_dirs)
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(app, ["publish", "--push"])
    assert result.exit_code == 0, result.output
    assert "committed" in result.output
    repo = hub.repo("dataset", "valueflow/vidb")
    record = json.loads((tmp_path / "releases" / "v1.0.0.json").read_text())
    assert record["artifacts"]["vidb"]["commit"] == repo.tags["v1.0.0"]
    assert record["artifacts"]["vidb"]["stats"]["n_texts"] == 27  # VIDB's stats.json, for the next changelog
    assert json.loads((tmp_path / "metrics" / "publish.json").read_text())["new_commits"] == 3  # vidb, hives, judge

    # the token was used (every write carried an Authorization header) but never written or logged
    assert all(e["auth"] for e in hub.state.log if e["method"] == "POST")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), f"token written to {path}"
    assert FAKE_TOKEN not in result.output
    assert caplog.records and not any(FAKE_TOKEN in r.getMessage() for r in caplog.records)


def test_cli_refuses_a_moved_tag_with_a_clear_message(tmp_path, monkeypatch, hub, hub_token, release_dirs):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, hub, release_dirs, dry_run=False)
    assert CliRunner().invoke(app, ["publish"]).exit_code == 0
    (release_dirs[1] / "config.json").write_text('{"model_type": "bert", "changed": true}\n')
    result = CliRunner().invoke(app, ["publish"])
    assert result.exit_code == 1
    assert "tag v1.0.0 already points at commit" in result.output and "config.json" in result.output
    assert FAKE_TOKEN not in result.output
