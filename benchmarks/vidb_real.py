"""The full real build: VIDB from all the real corpora, one per judge, with time, memory and held-out accuracy.

Every real corpus in ../shared/data (or $VALUEFLOW_REFDATA) goes through the pipeline's own stages, ingest ->
collect -> aggregate -> build_vidb, once per judge.

    python3 benchmarks/judge_real.py --out /tmp/judge_real --folds 1   # once: the trained judge
    python3 benchmarks/vidb_real.py [--sources valuenet,touche23,...] [--judges reference,learned:/tmp/judge_real]
                                    [--k 4] [--m 6] [--out /tmp/vidb_real] [--limit N] [--threads 2] [--tracemalloc]
                                    [--backend onnx|torch]   # how the learned judge scores (default its int8 graph)

    python3 benchmarks/vidb_real.py --sources valuenet --judges embedding   # ValueNet only, zero-shot judge

What it does: ingests the sources once (``builders.ingest``, all real ones by default, about 62K texts; ``--limit N``
keeps N random items per source for a quick run, a Moral Stories norm's two actions being one item), then for each
judge builds a VIDB in its own folder under ``--out`` with ``collect`` (that judge alone, k texts per window, every
text in m windows), ``aggregate`` (Plackett-Luce) and ``build_vidb``, all with the stages' default configs. It prints
per stage the wall and CPU time (the CPU time of all threads, what a busy machine does not inflate), texts per
second and the process's peak resident memory so far (``ru_maxrss``: monotone
over the run, so the stage that raises it is the one that needed it; ``--tracemalloc`` adds each stage's own peak
of Python and NumPy allocations, not torch's, at some cost in speed), and the counts: texts and rejected rows per
source, windows, rankings, failed and tied windows per judge, placed and VIDB texts.

Accuracy: pairwise accuracy (``evaluation.eval_evaluator.pairwise_accuracy``; ties count half) of each VIDB's
intensities, and of its utilities before calibration, against human labels, only on labelled texts that no compared
trained judge was trained on. For a ``learned:<folder>`` judge (``valueflow.judges.value_head``: a frozen sentence
encoder and a value head) saved by ``judge_real.py`` that is what ``judge_real.training_split`` holds out, read back
from the folder's ``benchmark_results.json``: the ValueNet and VIDB texts in the fifth held out by text hash, and
Moral Stories actions outside its training sample (a norm counts when both its actions are). Without a trained judge
every labelled text counts. Label sources: ValueNet (direction -1/0/+1, pairs of one value with different labels), VIDB
texts (their real intensities, pairs of one value >= 2 apart), Moral Stories (each norm's moral action above its
immoral action; the train-file norms that ingest reads, not judge_real's dev stories) and Social Chemistry (ingest
keeps the sign of the judgment, so 1 above 0). Touché23 and MFRC label presence only: no pairs.
The paper's 0.842 (LLM ranking judges against ValueNet's labels) is shown beside them.

The ``reference`` judge ranks each window by the labels of these same texts (``collect._labels``: the reference
intensity, else the direction), so its figures on labelled texts are a self-consistency check of collect, aggregate
and calibration, not a judge result (and not exactly 1: it compares a VIDB text's intensity in [-10, 10] with the
other sources' directions -1/0/+1 as numbers of one scale). It cannot rank a window holding a text without a label
(Touché23, MFRC), so on mixed values most of its windows fail and many texts stay unplaced; the counts show how many.

Figures go to ``--out/results.json`` as well. Run from the project root; reads the data in place, copies none of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd

from builders.ingest import REFDATA_SOURCES
from valueflow.io import normalise_text, refdata_dir

PAPER_PAIRWISE = 0.842  # VALUEFLOW Table 1: LLM ranking judges (Gemma-3-27B) against ValueNet's human labels
DEFAULT_JUDGES = "reference,learned:/tmp/judge_real"
# label source -> (ingested source, gold column, pairs within, min gold gap)
LABEL_SETS = {
    "ValueNet direction": ("valuenet", "direction", "value", 1.0),
    "VIDB intensity": ("vidb_anchors", "reference_intensity", "value", 2.0),
    "Moral Stories pairs": ("moral_stories", "direction", "norm", 1.0),
    "Social Chem judgment": ("social_chem", "direction", "value", 1.0),
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", default=",".join(REFDATA_SOURCES), help="comma-separated ingest sources")
    ap.add_argument("--judges", default=DEFAULT_JUDGES, help="comma-separated judge specs: one VIDB each")
    ap.add_argument("--k", type=int, default=4, help="texts per window")
    ap.add_argument("--m", type=int, default=6, help="windows per text")
    ap.add_argument("--out", type=Path, default=Path("/tmp/vidb_real"), help="one folder per judge, results.json")
    ap.add_argument("--limit", type=int, default=None, help="items per source (a quick run); default: all")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (and onnx threads of a learned judge)")
    ap.add_argument("--backend", default="onnx", choices=["onnx", "torch"],
                    help="how a learned judge scores: its int8 ONNX graph (exported when missing) or torch")
    ap.add_argument("--tracemalloc", action="store_true", help="also each stage's traced allocation peak")
    args = ap.parse_args()
    args.sources = [s for s in args.sources.split(",") if s]
    args.judges = [j for j in args.judges.split(",") if j]
    return args


def judge_folder(spec: str) -> Path | None:
    """The model folder of a ``learned`` judge spec (None for other judges)."""
    from valueflow.judges.value_head import DEFAULT_JUDGE

    kind, _, arg = spec.partition(":")
    return Path(arg or DEFAULT_JUDGE) if kind == "learned" else None


def slug(spec: str) -> str:
    kind, _, arg = spec.partition(":")
    return f"{kind}-{Path(arg).name}" if arg else kind


# -- measuring -----------------------------------------------------------------------------------------------------
def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(name: str, fn: Callable, record: dict, n_texts: int | None = None):
    """Run one stage, recording wall and CPU time (all threads), texts/s, ru_maxrss so far and, with tracemalloc
    on, the stage's own allocation peak. ``n_texts``: the texts it handled (default: len of what it returns first)."""
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    started, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    n_texts = len(result[0]) if n_texts is None else n_texts
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    record[name] = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "texts": n_texts,
                    "texts_per_second": round(n_texts / seconds, 1), "peak_rss_mb": round(rss, 1)}
    line = (f"[{name}] {seconds:,.1f} s wall, {cpu:,.1f} s CPU ({n_texts / seconds:,.0f} texts/s), "
            f"peak RSS so far {rss:,.0f} MB")
    if tracemalloc.is_tracing():
        record[name]["traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        line += f", traced peak {record[name]['traced_peak_mb']:,.0f} MB"
    print(line, flush=True)
    return result


# -- texts ---------------------------------------------------------------------------------------------------------
def norm_of(texts: pd.DataFrame) -> pd.Series:
    """Moral Stories norm id of each text (its source_id is ``<ID>:<moral|immoral>_action:norm->value``)."""
    return texts["source_id"].astype(str).str.split(":").str[0]


def limit_per_source(texts: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most n random items per source: a text with all its value labels, or a Moral Stories norm's two actions."""
    item = texts["text"].where(texts["source"] != "moral_stories", norm_of(texts))
    keep = pd.Series(False, index=texts.index)
    for source, items in item.groupby(texts["source"]):
        chosen = items.drop_duplicates().sample(frac=1.0, random_state=seed).head(n)
        keep |= (texts["source"] == source) & item.isin(chosen)
    return texts[keep].reset_index(drop=True)


def trained_on(spec: str, out: Path) -> set[str]:
    """Normalised texts a ``learned`` judge saved by judge_real.py was trained on (its training_split, rebuilt)."""
    from hives_real import ingest_sources
    from judge_real import TRAINING_SOURCES, training_split

    folder = judge_folder(spec)
    record = folder / "benchmark_results.json"
    if record.exists():
        saved = json.loads(record.read_text(encoding="utf-8"))["args"]
        moral_stories, work = int(saved["moral_stories"]), Path(saved["work"])
    else:  # not a judge_real.py judge, or its run stopped early: assume every Moral Stories row was trained on
        print(f"note: {record} not found; counting all Moral Stories texts as trained on by {spec}")
        moral_stories, work = 10**9, out / "judge_training"
    if not (work / "texts.parquet").exists():  # the same ingest of the same sources gives the same rows
        work = out / "judge_training"
    train, _, _ = training_split(ingest_sources(work, TRAINING_SOURCES), moral_stories)
    return set(train["text"].map(normalise_text))


def print_ingest(metrics: dict, texts: pd.DataFrame) -> None:
    kept = texts["source"].value_counts()
    print(f"{'source':<28}{'file rows':>10}{'rejected':>10}{'dups':>7}{'texts':>8}{'kept':>8}")
    for source, c in metrics["sources"].items():
        print(f"{source:<28}{c['file_rows']:>10,}{c['rows_rejected']:>10,}{c['duplicates']:>7,}{c['texts']:>8,}"
              f"{int(kept.get(source, 0)):>8,}")
    reasons = "".join(f"; {n:,} {r}" for r, n in list(metrics["rejected_by_reason"].items())[:4])
    print(f"{metrics['texts']:,} texts ingested, {len(texts):,} kept; {metrics['rejected']:,} rejected rows{reasons}")


# -- one VIDB per judge --------------------------------------------------------------------------------------------
def build(spec: str, texts_path: Path, root: Path, args: argparse.Namespace, record: dict) -> tuple[pd.DataFrame, dict]:
    """collect -> aggregate -> build_vidb for one judge in ``root``; returns the full VIDB and the stages' counts."""
    from builders.aggregate import AggregateConfig, aggregate
    from builders.build_vidb import BuildConfig, build_vidb
    from builders.collect import CollectConfig, collect

    n, name = len(pd.read_parquet(texts_path, columns=["text_id"])), slug(spec)
    options = {spec: {"backend": args.backend, "threads": args.threads}} if spec.startswith("learned") else {}
    collect_cfg = CollectConfig(texts=texts_path, judges=[spec], judge_options=options, k=args.k, m=args.m, root=root)
    _, collected = measured(f"{name}: collect", lambda: collect(collect_cfg), record, n)
    _, aggregated = measured(f"{name}: aggregate", lambda: aggregate(AggregateConfig(texts=texts_path, root=root)),
                             record, n)
    full, built = measured(f"{name}: build_vidb", lambda: build_vidb(BuildConfig(texts=texts_path, root=root)),
                           record, n)
    counts = {"collect": {k: collected[k] for k in ("windows_per_judge", "rankings", "judges", "rejected")},
              "aggregate": {k: aggregated[k] for k in ("placed", "unranked", "disconnected", "all_converged")},
              "build_vidb": {k: built[k] for k in ("texts", "filtered", "flagged", "flags", "calibration_methods")}}
    counts["collect"]["failed_by_reason"] = failure_kinds(collected["rejected_by_reason"])
    print_build(counts)
    return full, counts


def failure_kinds(by_reason: dict[str, int]) -> dict[str, int]:
    """Failed windows by kind ("no reference label for window position(s) [0, 2]" and "[1]" are one kind)."""
    kinds: dict[str, int] = {}
    for reason, n in by_reason.items():
        kind = reason.split(" for window position")[0]
        kinds[kind] = kinds.get(kind, 0) + n
    return kinds


def print_build(counts: dict) -> None:
    collected, aggregated, built = counts["collect"], counts["aggregate"], counts["build_vidb"]
    for judge, c in collected["judges"].items():
        print(f"  {judge}: {c['windows']:,} windows ({c['from_store']:,} from an earlier run's store), "
              f"{c['collected']:,} ranked, {c['failed']:,} failed, {c['tied']:,} all tied; "
              f"{collected['rankings']:,} rankings (the reference judge's chains through ties count apart)")
    for kind, n in collected["failed_by_reason"].items():
        print(f"  failed: {n:,} {kind}")
    print(f"  aggregate: {aggregated['placed']:,} placed, {aggregated['unranked']:,} unranked, "
          f"{aggregated['disconnected']:,} disconnected; all converged: {aggregated['all_converged']}")
    print(f"  VIDB: {built['texts']:,} texts, {built['filtered']:,} in filtered, {built['flagged']:,} flagged "
          f"{built['flags']}; calibration per value {built['calibration_methods']}")


# -- accuracy ------------------------------------------------------------------------------------------------------
def labelled_rows(texts: pd.DataFrame, seen: set[str]) -> dict[str, pd.DataFrame]:
    """Per label source: its texts no compared judge trained on, with ``gold`` and ``group`` columns."""
    fresh = texts[~texts["text"].map(normalise_text).isin(seen)]
    out = {}
    for label, (source, gold, within, _) in LABEL_SETS.items():
        rows = fresh[fresh["source"] == source]
        rows = rows.assign(gold=rows[gold].astype("Float64").astype(float),
                           group=norm_of(rows) if within == "norm" else rows["value"])
        out[label] = rows[rows["gold"].notna()][["text_id", "value", "gold", "group"]]
    return out


def accuracy(full: pd.DataFrame, rows: pd.DataFrame, min_gap: float) -> dict:
    """Pairwise accuracy of the VIDB's intensities (and utilities) on ``rows``, overall and per value; texts the VIDB
    left unplaced are skipped (``texts_scored`` says how many remain)."""
    from evaluation.eval_evaluator import pairwise_accuracy

    df = rows.merge(full[["text_id", "intensity", "utility"]], on="text_id", how="inner")
    df = df[df["intensity"].notna()]

    def acc(part: pd.DataFrame, column: str) -> float | None:
        a = pairwise_accuracy(part[column].to_numpy(float), part["gold"].to_numpy(float), part["group"].to_numpy(),
                              min_gap) if len(part) else float("nan")
        return None if np.isnan(a) else round(float(a), 4)

    return {"intensity": acc(df, "intensity"), "utility": acc(df, "utility"), "texts_scored": len(df),
            "texts_labelled": len(rows), "per_value": {v: acc(g, "intensity") for v, g in df.groupby("value")}}


def print_table(results: dict, judges: list[str], what: str) -> None:
    print(f"{'label source':<22}{'texts':>7}" + "".join(f"{slug(j):>28}" for j in judges) + f"{'paper LLM':>11}")
    for label in LABEL_SETS:
        cells = [results[j][label] for j in judges]
        if not any(c["texts_labelled"] for c in cells):
            continue
        text = [f"{'-' if c[what] is None else format(c[what], '.3f')} ({c['texts_scored']:,} placed)" for c in cells]
        paper = f"{PAPER_PAIRWISE:.3f}" if label == "ValueNet direction" else "-"
        print(f"{label:<22}{cells[0]['texts_labelled']:>7,}" + "".join(f"{t:>28}" for t in text) + f"{paper:>11}")


def main() -> None:
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ref = refdata_dir()
    if ref is None:
        sys.exit("reference data not found: set VALUEFLOW_REFDATA or place it at ../shared/data")
    for spec in args.judges:
        folder = judge_folder(spec)
        if folder is not None and not folder.is_dir():
            sys.exit(f"trained judge {folder} not found: run `python3 benchmarks/judge_real.py --out {folder}` first")
        if folder is not None and args.backend == "onnx" and not (folder / "onnx" / "model_qint8.onnx").exists():
            from valueflow.judges.value_head import export_onnx

            export_onnx(folder)
    from builders.ingest import IngestConfig, ingest
    from valueflow.io import write_json, write_parquet

    if args.tracemalloc:
        tracemalloc.start()
    out = args.out.resolve()
    stages: dict[str, dict] = {}
    ingest_root = out / "ingest"
    texts, ingested = measured("ingest", lambda: ingest(IngestConfig(
        sources=args.sources, refdata=ref, out=Path("data/texts.parquet"), root=ingest_root)), stages)
    texts_path = ingest_root / "data" / "texts.parquet"
    if args.limit:  # the texts file the later stages read: the ingest's own, or this sample of it
        texts = limit_per_source(texts, args.limit)
        write_parquet(texts, texts_path)
    print_ingest(ingested, texts)
    seen: set[str] = set()
    for spec in args.judges:
        if judge_folder(spec) is not None:
            seen |= trained_on(spec, out)
    print(f"{len(seen):,} distinct texts trained on by the compared trained judge(s): left out of the accuracy")

    builds, counts, results = {}, {}, {}
    rows = labelled_rows(texts, seen)
    for spec in args.judges:
        print(f"\n== {spec}")
        builds[spec], counts[spec] = build(spec, texts_path, out / slug(spec), args, stages)
        results[spec] = {label: accuracy(builds[spec], r, LABEL_SETS[label][3]) for label, r in rows.items()}

    print(f"\npairwise accuracy of the VIDB intensities on labelled texts no compared judge trained on "
          f"(k = {args.k}, m = {args.m}; ties count half; the reference judge's figures are self-consistency)")
    print_table(results, args.judges, "intensity")
    unscored = texts[~texts["source"].isin([source for source, *_ in LABEL_SETS.values()])]["source"].value_counts()
    if len(unscored):
        print("not scored (no direction or intensity label): "
              + ", ".join(f"{source} {n:,}" for source, n in unscored.items()))
    print("\nthe same on the utilities, before calibration: the judge's own order. build_vidb fits the calibration on the\n"
          "reference labels of these same texts, so its flat steps tie exactly the pairs the judge got wrong (a tie counts\n"
          "half): the intensity figures above can exceed these and are not a held-out result where they do")
    print_table(results, args.judges, "utility")
    total = sum(s["seconds"] for s in stages.values())
    print(f"\n{total:,.0f} s in all stages; peak RSS {max(s['peak_rss_mb'] for s in stages.values()):,.0f} MB; "
          f"output in {out}")
    write_json({"args": {k: str(v) for k, v in vars(args).items()}, "stages": stages, "counts": counts,
                "ingest": {k: ingested[k] for k in ("texts", "rejected", "rejected_by_reason", "sources")},
                "texts_kept": len(texts), "texts_trained_on": len(seen), "accuracy": results,
                "paper_pairwise_valuenet": PAPER_PAIRWISE}, out / "results.json")


if __name__ == "__main__":
    main()
