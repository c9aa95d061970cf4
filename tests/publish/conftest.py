"""Publishing tests: a loopback Hub per test, small release folders, a fake token.

The HF environment is set here, at import time, before these tests import any Hugging Face library. The publisher
itself does not depend on it (it is given the endpoint explicitly); the round trip through ``load_dataset`` and
``SentenceTransformer`` runs in a subprocess with its own environment (roundtrip_worker.py), so it is correct even
when another test module imported the libraries first with a different endpoint.
"""

from __future__ import annotations

import os
import sys

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
if "huggingface_hub" in sys.modules:  # imported earlier by another test module: it read the flag already
    sys.modules["huggingface_hub"].constants.HF_HUB_DISABLE_XET = True

from pathlib import Path

import pytest

from cards.release import ReleaseConfig
from tests.publish.hub_server import HubServer
from tests.publish.release_fixtures import make_vidb_release

# Looks like a real token; the tests assert it never appears in a file, a log line or the terminal.
FAKE_TOKEN = "hf_TESTsecretTOKENvalueflow0123456789abcd"


@pytest.fixture(autouse=True, scope="module")
def loopback_hub_online():
    """Only these tests go online, and only to the loopback Hub they start; every other test stays offline.

    Module-scoped, so module-scoped fixtures (a release pushed once for several tests) are online too.
    """
    import huggingface_hub.constants as c

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        mp.setattr(c, "HF_HUB_OFFLINE", False)
        yield


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture
def hub_token(monkeypatch, no_token):
    """The token as users provide it: in $HF_TOKEN (with an empty HF home, so no stored login interferes)."""
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return FAKE_TOKEN


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "empty_hf_home" / "token"))
    monkeypatch.setattr(c, "HF_STORED_TOKENS_PATH", str(tmp_path / "empty_hf_home" / "stored_tokens"))


def make_model_folder(folder: Path, seed: int = 0) -> Path:
    """A small stand-in for the HiVES folder for tests that only move bytes (the round trip uses the real model)."""
    import random

    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    (folder / "model.safetensors").write_bytes(bytes(rnd.getrandbits(8) for _ in range(4096)))  # goes through LFS
    (folder / "config.json").write_text('{"model_type": "bert"}\n')
    (folder / "modules.json").write_text("[]\n")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling/config.json").write_text('{"pooling_mode_mean_tokens": true}\n')
    (folder / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\n---\n\n# HiVES\n")
    return folder


@pytest.fixture
def release_dirs(tmp_path) -> tuple[Path, Path, Path]:
    """The three release folders: VIDB, HiVES and the trained judge (stand-ins that only move bytes)."""
    return (make_vidb_release(tmp_path / "release" / "vidb"), make_model_folder(tmp_path / "release" / "hives"),
            make_model_folder(tmp_path / "release" / "judge", seed=1))


@pytest.fixture
def make_cfg(tmp_path, release_dirs, hub):
    def make(version: str = "1.0.0", **kw) -> ReleaseConfig:
        base = {"version": version, "endpoint": hub.url, "dry_run": False, "dataset_dir": release_dirs[0],
                "model_dir": release_dirs[1], "judge_dir": release_dirs[2], "receipt": tmp_path / "release" / "receipt.json",
                "history_dir": tmp_path / "releases", "retry_wait_s": 0.0, "max_attempts": 3}
        base.update(kw)
        return ReleaseConfig(**base)

    return make
