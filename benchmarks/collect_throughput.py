"""Collect client throughput against loopback chat servers: one endpoint beside a fleet of two (equal work).

    python3 benchmarks/collect_throughput.py [--m 40] [--concurrency 4]

Two zero-latency OpenAI-compatible servers (asyncio, HTTP/1.1 keep-alive, each in its own process, answering every
ranking prompt at once with a valid permutation) stand in for a vLLM fleet, so what is measured is the collect
client: window design, prompt building, presentation shuffle, HTTP, strict parsing and the resumable store. The
same windows (the seed corpus of 32 values, k = 4, every text in m windows, a fresh store every run) are collected
by one chat judge on one endpoint and by one judge on both (``base_url`` a list), ``--concurrency`` windows in
flight per endpoint, without and then with the on-disk reply cache. Target: >= 1,000 windows/s through the fleet.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import tempfile
import time
from pathlib import Path

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
LISTED = re.compile(rb"\\n\[(\d+)\] ")  # "[i] text" lines of the prompt, as they appear inside the JSON body
CONTENT_LENGTH = re.compile(rb"(?i)content-length:\s*(\d+)")


def serve(ports: mp.Queue) -> None:
    """A minimal chat-completions server: reads each request on a kept-alive connection, answers [1, ..., k]."""
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(int(CONTENT_LENGTH.search(head).group(1)))
                k = len(LISTED.findall(body))
                content = "[" + ", ".join(str(i) for i in range(1, k + 1)) + "]"
                reply = ('{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
                         f'"content":"{content}"}},"finish_reason":"stop"}}]}}').encode()
                writer.write(HEAD % len(reply) + reply)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def seed_project(root: Path) -> None:
    from builders.ingest import IngestConfig, ingest

    seed = Path(__file__).resolve().parents[1] / "data" / "seed" / "texts"
    ingest(IngestConfig(sources=["seed"], seed_dir=seed, out=Path("data/texts.parquet"), root=root))


def run(root: Path, urls: list[str], m: int, concurrency: int, cache: bool) -> dict:
    from builders.collect import CollectConfig, collect

    options = {"base_url": urls if len(urls) > 1 else urls[0], "concurrency": concurrency,
               "cache_dir": str(root / "cache" / "chat") if cache else None}
    cfg = CollectConfig(judges=["chat:bench-model"], judge_options={"chat:bench-model": options}, k=4, m=m,
                        store=Path(f"data/cache/collect-{len(urls)}-{cache}"), root=root)
    t0, c0 = time.perf_counter(), time.process_time()
    _, metrics = collect(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = next(iter(metrics["judges"].values()))
    return {"windows": stats["collected"], "failed": stats["failed"], "judge_s": stats["seconds"], "wall": wall, "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=40, help="windows per text")
    ap.add_argument("--concurrency", type=int, default=4,
                    help="windows in flight per endpoint (zero-latency servers: more only adds GIL contention)")
    args = ap.parse_args()
    ports: mp.Queue = mp.Queue()
    servers = [mp.Process(target=serve, args=(ports,), daemon=True) for _ in range(2)]
    for s in servers:
        s.start()
    urls = [f"http://127.0.0.1:{ports.get(timeout=30)}/v1" for _ in servers]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            seed_project(root)
            print(f"seed corpus, k=4, m={args.m}, {args.concurrency} windows in flight per endpoint, "
                  "zero-latency loopback servers (one process each)")
            print(f"{'endpoints':<22}{'windows':>9}{'failed':>8}{'judge s':>9}{'windows/s':>11}{'collect s':>11}"
                  f"{'client CPU s':>14}")
            rates = {}
            for label, use, cache in (("one", urls[:1], False), ("fleet of two", urls, False),
                                      ("fleet of two + cache", urls, True)):
                r = run(root, use, args.m, args.concurrency, cache)
                rates[label] = r["windows"] / r["judge_s"]
                print(f"{label:<22}{r['windows']:>9,}{r['failed']:>8}{r['judge_s']:>9.2f}{rates[label]:>11,.0f}"
                      f"{r['wall']:>11.2f}{r['cpu']:>14.2f}")
            print(f"fleet / one endpoint: {rates['fleet of two'] / rates['one']:.2f}x; "
                  f"target >= 1,000 windows/s through the fleet: {'met' if rates['fleet of two'] >= 1000 else 'NOT met'}")
    finally:
        for s in servers:
            s.terminate()


if __name__ == "__main__":
    main()
