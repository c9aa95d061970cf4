"""The VIDB builder end to end at N texts: seconds and peak memory per stage, two sizes side by side.

    python3 benchmarks/scale.py [--sizes 100000 1000000] [--m 6] [--chat-value benevolence]

For each N it synthesises N texts spread evenly over the 32 values (a labelled table: text, value, direction, a
true intensity in [-10, 10], a reference intensity on 2 % of them), then runs the stages' own functions on it, each
in a fresh process so that its peak RSS is its own:
  ingest        the table -> data/texts.parquet (schema, duplicate removal);
  collect sim   every value, k = 4, m windows per text, a simulated judge (Gumbel noise around the truth);
  collect chat  one value's windows through the chat judge served by two zero-latency loopback servers (the
                client at full speed; every value would take 32 times as long);
  aggregate     Plackett-Luce per value (values in parallel processes, one per core);
  build_vidb    calibration, flags, splits, Parquet configs, card.
Targets at 1M texts: ingest < 2 min, aggregate < 60 s, no stage > 8 GiB. The ratio column is the larger size's
seconds over the smaller's, beside the ratio of the sizes (linear cost: the same ratio).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve()
WORDS = ("care help share protect harm hurt fair cheat loyal betray obey defy pure taint free bound duty promise "
         "repay thank just improve kind neighbour family stranger village city school law vote speak wage").split()


def synthesise(n: int, path: Path, seed: int = 0) -> None:
    """n distinct texts over the 32 values; each text names its own number, so no two are duplicates."""
    from valueflow.taxonomy import get_taxonomy

    values = sorted(v.name for v in get_taxonomy().values)
    rng = np.random.default_rng(seed)
    truth = rng.uniform(-10, 10, n).round(2)
    words = np.array(WORDS)[rng.integers(0, len(WORDS), (n, 8))]
    text = [f"Case {i}: " + " ".join(w) + "." for i, w in enumerate(words)]
    reference = np.where(rng.random(n) < 0.02, truth, np.nan)
    table = pd.DataFrame({"id": np.arange(n).astype(str), "text": text, "value": [values[i % len(values)] for i in range(n)],
                          "direction": np.sign(np.where(np.abs(truth) < 1, 0, truth)).astype(int),
                          "reference_intensity": reference, "truth": truth})
    table.to_parquet(path, index=False)


def stage(name: str, root: Path, m: int, chat_value: str) -> dict:
    """Run one stage in this process; returns its seconds and what it made."""
    from builders.aggregate import AggregateConfig, aggregate
    from builders.build_vidb import BuildConfig, build_release
    from builders.collect import CollectConfig, collect
    from builders.ingest import IngestConfig, TableSpec, ingest
    from valueflow.judges.simulated import SimulatedJudge

    t0 = time.perf_counter()
    if name == "ingest":
        texts, _ = ingest(IngestConfig(sources=[], tables=[TableSpec(path=root / "table.parquet", source="synthetic")],
                                       root=root))
        made = f"{len(texts):,} texts"
    elif name == "collect sim":
        table = pd.read_parquet(root / "table.parquet", columns=["text", "truth"])
        judge = SimulatedJudge(dict(zip(table["text"], table["truth"])), noise=1.0)
        del table
        rankings, _ = collect(CollectConfig(judges=[], k=4, m=m, chunk_size=8192, root=root), judges=[judge])
        made = f"{len(rankings):,} rankings"
    elif name == "collect chat":
        ports = json.loads((root / "ports.json").read_text())
        options = {"base_url": [f"http://127.0.0.1:{p}/v1" for p in ports], "concurrency": 16, "cache_dir": None}
        _, metrics = collect(CollectConfig(judges=["chat:scale-model"], judge_options={"chat:scale-model": options},
                                           values=[chat_value], k=4, m=m, chunk_size=1024, out=Path("data/chat.parquet"),
                                           store=Path("data/cache/collect-chat"), root=root))
        stats = next(iter(metrics["judges"].values()))
        made = f"{stats['collected']:,} windows of {chat_value}, {stats['collected'] / stats['seconds']:,.0f} windows/s"
    elif name == "aggregate":
        utilities, metrics = aggregate(AggregateConfig(root=root))
        made = f"{metrics['placed']:,} placed from {metrics['rankings_used']:,} rankings"
    elif name == "build_vidb":
        full, stats, _ = build_release(BuildConfig(root=root))
        made = f"{stats['texts']:,} texts in the release"
    else:
        raise ValueError(name)
    return {"seconds": time.perf_counter() - t0, "made": made}


STAGES = ("ingest", "collect sim", "collect chat", "aggregate", "build_vidb")


def run_size(n: int, m: int, chat_value: str, ports: list[int]) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesise(n, root / "table.parquet")
        (root / "ports.json").write_text(json.dumps(ports))
        for name in STAGES:
            out = subprocess.run([sys.executable, str(HERE), "--stage", name, "--root", str(root), "--m", str(m),
                                  "--chat-value", chat_value], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(f"{name} at N={n:,} failed:\n{out.stderr[-3000:]}")
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            r = results[name]
            print(f"  N={n:>9,}  {name:<13}{r['seconds']:>9.1f} s{r['rss_mib']:>9,.0f} MiB   {r['made']}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--m", type=int, default=6, help="windows per text")
    ap.add_argument("--chat-value", default="benevolence", help="the value whose windows the chat judge collects")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:  # one stage, in its own process
        result = stage(args.stage, args.root, args.m, args.chat_value)
        # the stage's own process or the largest of its workers (aggregate fits values in child processes)
        result["rss_mib"] = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                                                resource.RUSAGE_CHILDREN)) / 1024
        print(json.dumps(result))
        return

    import multiprocessing as mp

    sys.path.insert(0, str(HERE.parent))
    from collect_throughput import serve

    queue: mp.Queue = mp.Queue()
    servers = [mp.Process(target=serve, args=(queue,), daemon=True) for _ in range(2)]
    for s in servers:
        s.start()
    ports = [queue.get(timeout=30) for _ in servers]
    try:
        print(f"k=4, m={args.m}; seconds and peak RSS of each stage, each in its own process")
        runs = {n: run_size(n, args.m, args.chat_value, ports) for n in args.sizes}
    finally:
        for s in servers:
            s.terminate()
    sizes = sorted(runs)
    head = "".join(f"{f'N={n:,} s':>14}{'MiB':>8}" for n in sizes)
    ratio = f"{'ratio':>8}" if len(sizes) > 1 else ""
    print(f"\n{'stage':<14}{head}{ratio}")
    for name in STAGES:
        cells = "".join(f"{runs[n][name]['seconds']:>14.1f}{runs[n][name]['rss_mib']:>8,.0f}" for n in sizes)
        if len(sizes) > 1:
            cells += f"{runs[sizes[-1]][name]['seconds'] / runs[sizes[0]][name]['seconds']:>8.1f}"
        print(f"{name:<14}{cells}")
    if len(sizes) > 1:
        print(f"size ratio {sizes[-1] / sizes[0]:.0f}x")
    big = runs[sizes[-1]]
    print(f"targets at N={sizes[-1]:,}: ingest {big['ingest']['seconds']:.0f} s (< 120), aggregate "
          f"{big['aggregate']['seconds']:.0f} s (< 60), largest stage "
          f"{max(r['rss_mib'] for r in big.values()) / 1024:.1f} GiB (< 8)")


if __name__ == "__main__":
    main()
