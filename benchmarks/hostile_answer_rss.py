"""Peak memory of ``valueflow collect`` when a chat server answers every window with 50 MB of junk.

    python3 benchmarks/hostile_answer_rss.py [--answer-mb 50] [--max-answer-bytes 4000000]

A loopback OpenAI-compatible server (tests/loopback.py) answers each request with a ``--answer-mb`` MB content;
``collect`` runs in a child process with its default cap (``max_answer_bytes``: the answer is refused after the cap,
unread) and its peak RSS (``ru_maxrss`` of the child) is printed beside the answer size, with the requests the
server received and the size of the chat cache afterwards. Issue 25 asks for under 500 MB; before the cap it was
3.2 GB and a 451 MB cache.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.loopback import LoopbackChatServer, Reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer-mb", type=float, default=50.0)
    parser.add_argument("--max-answer-bytes", type=int, default=None, help="the judge option (default: its default)")
    args = parser.parse_args()

    from builders.ingest import IngestConfig, ingest

    junk = "x" * int(args.answer_mb * 1_000_000)
    with tempfile.TemporaryDirectory() as tmp, LoopbackChatServer(lambda body, attempt: Reply(content=junk)) as server:
        root = Path(tmp)
        texts, _ = ingest(IngestConfig(sources=["seed"], seed_dir=ROOT / "data" / "seed" / "texts",
                                       out=Path("data/texts.parquet"), root=root))
        texts[texts["value"] == "benevolence"].head(8).to_parquet(root / "data" / "texts.parquet", index=False)
        spec = f"chat:m@{server.base_url}"
        options = {"timeout": 60, "max_retries": 1, "backoff": 0, "reasks": 1, "concurrency": 2}
        if args.max_answer_bytes:
            options["max_answer_bytes"] = args.max_answer_bytes
        (root / "params.yaml").write_text(yaml.safe_dump({"collect": {
            "judges": [spec], "judge_options": {spec: options}, "k": 4, "m": 1, "values": ["benevolence"]}}))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "valueflow.cli", "collect", "--params", "params.yaml"],
                             cwd=root, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
        cache = sum(p.stat().st_size for p in (root / "data" / "cache" / "chat").rglob("*") if p.is_file()) \
            if (root / "data" / "cache" / "chat").exists() else 0
        print(f"answer size          {args.answer_mb:.0f} MB per request")
        print(f"collect exit code    {run.returncode}  ({run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ''})")
        print(f"requests received    {len(server.requests)}")
        print(f"peak RSS of collect  {peak_mb:.0f} MB  (issue 25 limit: 500 MB)")
        print(f"chat cache on disk   {cache / 1e6:.3f} MB")
        print(f"wall time            {seconds:.1f} s")


if __name__ == "__main__":
    main()
