"""The hostile suite (issue 25): broken chat endpoints and a broken Hub on loopback, hostile inputs on every
command. Each test asserts the exit code, the one-line message and that nothing on disk was lost, overwritten or
duplicated. Everything is small: a few texts, one value, loopback servers only."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.hostile.hub import hub_online, release_template  # noqa: F401  (fixtures of the publish tests)
from tests.loopback import Reply

KEY = "sk-hostile-secret-0123456789"
VALUE = "benevolence"


def permutation_reply(body: dict, attempt: int) -> Reply:
    """A proper ranking answer: [1, ..., k] for a window of k texts (a rating prompt gets 0)."""
    found = re.search(r"Below are (\d+) texts", body["messages"][0]["content"])
    if not found:
        return Reply(content="0")
    return Reply(content="[" + ", ".join(str(i + 1) for i in range(int(found.group(1)))) + "]")


def cli(args: list[str]):
    """Run ``valueflow`` in-process as a user would; ``.stderr`` / ``.stdout`` kept apart."""
    from valueflow.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The one ``error:`` (or ``failed:``) line of a run; fails when there is a traceback or more than one."""
    text = result.stderr if hasattr(result, "stderr") else result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in text.splitlines() if line.startswith(("error:", "failed:"))]
    assert len(lines) == 1, text
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash: compared before and after a run that must write nothing."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def seed_texts(tmp_path_factory, seed_dir: Path) -> pd.DataFrame:
    """Eight seed texts of one value, ingested as ``valueflow ingest`` does (two windows of four with m=1)."""
    from builders.ingest import IngestConfig, ingest

    root = tmp_path_factory.mktemp("ingest")
    texts, _ = ingest(IngestConfig(sources=["seed"], seed_dir=seed_dir, out=Path("data/texts.parquet"), root=root))
    return texts[texts["value"] == VALUE].head(8).reset_index(drop=True)


@pytest.fixture()
def project(tmp_path: Path, seed_texts: pd.DataFrame, monkeypatch) -> Path:
    """A project folder (the working directory) with data/texts.parquet and an anchor table."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    seed_texts.to_parquet(tmp_path / "data" / "texts.parquet", index=False)
    anchors = seed_texts[seed_texts["reference_intensity"].notna()]
    anchors.rename(columns={"reference_intensity": "intensity"})[["text", "value", "intensity"]].to_csv(
        tmp_path / "anchors.csv", index=False)
    (tmp_path / "texts.csv").write_text("text\nI helped my neighbour carry her shopping.\nI kept the change.\n")
    return tmp_path


def collect_params(root: Path, judges: list[str], judge_options: dict | None = None, **extra) -> Path:
    """A params file with a collect section for a small, quick collection (k=4, m=1)."""
    section = {"judges": judges, "judge_options": judge_options or {}, "k": 4, "m": 1, "values": [VALUE], **extra}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"collect": section}))
    return path


def chat_options(**extra) -> dict:
    """Quick chat-judge options: short deadline, one retry without wait, no re-ask."""
    return {"timeout": 2, "max_retries": 1, "backoff": 0, "reasks": 0, "concurrency": 1, **extra}


def evaluate_args(server_url: str, out: str = "scores.parquet", **options) -> list[str]:
    args = ["evaluate", "texts.csv", "-v", VALUE, "--vidb", "anchors.csv", "--k", "3", "--m", "1",
            "--judge", f"chat:m@{server_url}", "--out", out]
    for key, val in {**chat_options(), **options}.items():
        args += ["--judge-option", f"{key}={json.dumps(val) if not isinstance(val, str) else val}"]
    return args
