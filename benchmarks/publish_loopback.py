"""Cost of publishing against a loopback Hub: first push, identical re-publish, and a changed card.

A synthetic VIDB-shaped release folder (Parquet shards of about ``SIZE_MB`` in all, a README with configs) is
published to the test suite's loopback Hub (tests/publish/hub_server.py). Printed side by side: wall time, HTTP
requests and bytes uploaded for (1) the first push, (2) re-publishing the same version (must make no commit and
upload nothing), (3) a new version where only README.md changed (one commit; the Parquet files are not uploaded
again), and the dry run. Ratios are against the first push.

Run: python3 benchmarks/publish_loopback.py [SIZE_MB]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from cards.publish import Artifact, publish
from cards.release import ReleaseConfig
from tests.publish.hub_server import HubServer

SIZE_MB = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = int(SIZE_MB * 1e6 / 3 / 120)  # ~120 bytes per row after compression of random text
    for split in ("train", "validation", "test"):
        df = pd.DataFrame({"text": [rng.bytes(80).hex() for _ in range(rows)], "intensity": rng.uniform(-10, 10, rows)})
        (root / "data" / "full").mkdir(parents=True, exist_ok=True)
        df.to_parquet(root / "data" / "full" / f"{split}.parquet", index=False)
    (root / "README.md").write_text("---\nlicense: cc-by-4.0\nconfigs:\n- config_name: full\n  data_files: data/full/*.parquet\n---\n# bench\n")
    return root


def run(hub: HubServer, cfg: ReleaseConfig, art: Artifact) -> tuple[float, int, int]:
    n0, b0 = len(hub.state.log), sum(len(v) for v in hub.state.lfs.values())
    t = time.perf_counter()
    publish(cfg, token="hf_benchmark_token", artifacts=[art], sleep=lambda s: None)
    return time.perf_counter() - t, len(hub.state.log) - n0, sum(len(v) for v in hub.state.lfs.values()) - b0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, HubServer() as hub:
        folder = make_folder(Path(tmp) / "vidb")
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        art = Artifact("vidb", folder, "valueflow/vidb", "dataset")

        def cfg(version: str, dry: bool = False) -> ReleaseConfig:
            return ReleaseConfig(version=version, endpoint=hub.url, dry_run=dry, receipt=Path(tmp) / "receipt.json")

        rows = [("first push (1.0.0)", *run(hub, cfg("1.0.0"), art))]
        rows.append(("re-publish same (1.0.0)", *run(hub, cfg("1.0.0"), art)))
        (folder / "README.md").write_text((folder / "README.md").read_text() + "\nchanged\n")
        rows.append(("README changed (1.1.0)", *run(hub, cfg("1.1.0"), art)))
        rows.append(("dry run (1.2.0)", *run(hub, cfg("1.2.0", dry=True), art)))
        commits = len(hub.repo("dataset", "valueflow/vidb").commits) - 1
        base = rows[0][1]
        print(f"release folder: {size / 1e6:.1f} MB; release commits made: {commits} (expected 2)")
        print(f"{'case':<26}{'seconds':>9}{'ratio':>8}{'requests':>10}{'LFS bytes up':>14}")
        for name, secs, reqs, up in rows:
            print(f"{name:<26}{secs:>9.2f}{secs / base:>8.2f}{reqs:>10}{up:>14,}")


if __name__ == "__main__":
    main()
