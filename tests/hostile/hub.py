"""Release folders and params for the hostile publish tests (the loopback Hub of tests/publish, or none at all)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.publish.release_fixtures import make_hives_release, make_judge_release, make_vidb_release

HUB_TOKEN = "hf_HOSTILEsecretTOKEN0123456789abcdefgh"


@pytest.fixture(scope="session")
def release_template(tmp_path_factory) -> Path:
    """The three release folders, made once (the judge's is a small CrossEncoder) and copied per test."""
    root = tmp_path_factory.mktemp("release")
    make_vidb_release(root / "vidb")
    make_hives_release(root / "hives")
    make_judge_release(root / "judge")
    return root


def release_params(root: Path, template: Path, endpoint: str, **over) -> Path:
    shutil.copytree(template, root / "release")
    folders = [root / "release" / name for name in ("vidb", "hives", "judge")]
    release = {"version": "1.0.0", "dataset_dir": str(folders[0]), "model_dir": str(folders[1]),
               "judge_dir": str(folders[2]), "dry_run": False, "endpoint": endpoint, "retry_wait_s": 0.0, **over}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump({"release": release}))
    return path


@pytest.fixture()
def hub_online(monkeypatch, tmp_path):
    """The token in $HF_TOKEN, no stored login, and huggingface_hub allowed to reach the loopback endpoints."""
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "empty_hf_home" / "token"))
    monkeypatch.setattr(c, "HF_STORED_TOKENS_PATH", str(tmp_path / "empty_hf_home" / "stored_tokens"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "HF_HUB_DISABLE_XET", True)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return HUB_TOKEN
