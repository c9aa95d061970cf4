"""Done-when: both artifacts published to a loopback Hub load back exactly, by version tag, the way users load them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cards.publish import publish
from cards.release import ReleaseConfig
from tests.publish.conftest import FAKE_TOKEN
from tests.publish.hub_server import HubServer
from tests.publish.release_fixtures import CONFIG_SPLITS, make_hives_release, make_judge_release, make_vidb_release

VERSION = "1.2.0"
WORKER = Path(__file__).with_name("roundtrip_worker.py")


@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory):
    """Publish a VIDB folder and a real sentence-transformers folder, then load both back in a fresh process."""
    root = tmp_path_factory.mktemp("roundtrip")
    vidb = make_vidb_release(root / "release" / "vidb", VERSION)
    hives = make_hives_release(root / "release" / "hives", VERSION)
    judge = make_judge_release(root / "release" / "judge", VERSION)
    logger = logging.getLogger()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_TOKEN", FAKE_TOKEN)
    try:
        with HubServer() as hub:
            cfg = ReleaseConfig(version=VERSION, endpoint=hub.url, dry_run=False, dataset_dir=vidb, model_dir=hives, judge_dir=judge,
                                receipt=root / "release" / "receipt.json", history_dir=root / "releases", retry_wait_s=0)
            receipt = publish(cfg)
            out = root / "loaded"
            env = {k: v for k, v in __import__("os").environ.items() if k != "HF_TOKEN"}
            env.update(HF_HOME=str(root / "hf_home"), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
            proc = subprocess.run(
                [sys.executable, str(WORKER), hub.url, VERSION, str(out), "--dataset", "valueflow/vidb",
                 "--model", "valueflow/hives", "--local-model", str(hives),
                 "--judge", "valueflow/vidb-judge", "--local-judge", str(judge)],
                env=env, capture_output=True, text=True, timeout=300, check=False,
            )
            assert proc.returncode == 0, proc.stderr[-4000:]
            yield {"root": root, "vidb": vidb, "hives": hives, "out": out, "receipt": receipt, "hub": hub,
                   "logs": [r.getMessage() for r in records], "worker_output": proc.stdout + proc.stderr}
    finally:
        mp.undo()
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIG_SPLITS))
def test_load_dataset_at_the_version_tag_returns_exactly_the_local_rows(roundtrip, config):
    for split in CONFIG_SPLITS[config]:
        local = pd.read_parquet(roundtrip["vidb"] / "data" / config / f"{split}.parquet")
        loaded = pd.read_parquet(roundtrip["out"] / config / f"{split}.parquet")
        assert list(loaded.columns) == list(local.columns)
        # datasets turns a nullable Int8 without nulls into int8 and lists into arrays: compare values, not dtypes
        pd.testing.assert_frame_equal(loaded, local, check_dtype=False, check_exact=True)
    assert sorted(p.stem for p in (roundtrip["out"] / config).glob("*.parquet")) == sorted(CONFIG_SPLITS[config])


@pytest.mark.slow
def test_sentence_transformer_at_the_version_tag_encodes_exactly_like_the_local_folder(roundtrip):
    hub = np.load(roundtrip["out"] / "hub_embeddings.npy")
    local = np.load(roundtrip["out"] / "local_embeddings.npy")
    assert hub.shape == local.shape and hub.shape[0] == 3
    np.testing.assert_array_equal(hub, local)


@pytest.mark.slow
def test_judge_at_the_version_tag_scores_exactly_like_the_local_folder_with_its_calibration(roundtrip):
    hub = np.load(roundtrip["out"] / "hub_judge_scores.npy")
    local = np.load(roundtrip["out"] / "local_judge_scores.npy")
    values = json.loads((roundtrip["out"] / "judge_values.json").read_text())["values"]
    assert hub.shape == local.shape == (2, len(values)) and len(values) == 32  # every value scored in one pass
    np.testing.assert_array_equal(hub, local)
    assert json.loads((roundtrip["out"] / "judge_calibration.json").read_text())["knots_y"] == [-8.0, 8.0]


@pytest.mark.slow
def test_receipt_records_one_tagged_commit_per_repo(roundtrip):
    hub, receipt = roundtrip["hub"], roundtrip["receipt"]
    on_disk = json.loads((roundtrip["root"] / "release" / "receipt.json").read_text())
    assert on_disk["artifacts"].keys() == {"vidb", "hives", "judge"}
    for name, repo_type, repo_id in (("vidb", "dataset", "valueflow/vidb"), ("hives", "model", "valueflow/hives"),
                                     ("judge", "model", "valueflow/vidb-judge")):
        entry = on_disk["artifacts"][name]
        repo = hub.repo(repo_type, repo_id)
        assert entry["action"] == "committed" and entry["tag"] == f"v{VERSION}"
        assert repo.tags == {f"v{VERSION}": entry["commit"]} and repo.branches["main"] == entry["commit"]
        assert len(repo.commits) == 2  # the repo's initial commit + the release, all files in one commit
        tagged = repo.commits[entry["commit"]].files
        assert {f["path"] for f in entry["files"]} <= set(tagged)
        for f in entry["files"]:
            blob = tagged[f["path"]]
            assert blob.size == f["size"] and (blob.sha256 or f["sha256"]) == f["sha256"]
    assert receipt == on_disk


@pytest.mark.slow
def test_token_is_used_but_never_written_or_logged(roundtrip):
    hub = roundtrip["hub"]
    writes = [e for e in hub.state.log if e["method"] in ("POST", "PUT") and not e["path"].startswith("/lfs-")]
    assert writes and all(e["auth"] for e in writes), "the token from $HF_TOKEN was not sent with the writes"
    for path in roundtrip["root"].rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), f"token written to {path}"
    assert not any(FAKE_TOKEN in line for line in roundtrip["logs"])
    assert FAKE_TOKEN not in roundtrip["worker_output"]
