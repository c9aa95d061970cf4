"""The collect stage: judges rank windows of k texts of one value; every text is in m windows.

Output: ``data/rankings.parquet``, the raw rankings (DESIGN.md §4). Collection is resumable: each chunk of
answered windows is appended to a store under ``data/cache/collect/`` as soon as it is done, keyed by
(value, judge key, window ids), the judge key covering every setting that changes an answer (``judge_key``); a rerun (after a crash, a kill or a changed parameter) reads the store and only asks
for windows that are not in it, so no judge is ever asked twice for the same window. Windows a judge could not
answer (timeouts, malformed replies, missing labels) are not stored: they are retried on the next run, and
this run logs them to ``data/rejected/collect.parquet``.

Collection also grows: each value's window design is kept beside the store, and when texts are added only the
windows that involve them are new (``value_windows``), so a grown corpus never pays again for what it had.

Raw rankings from elsewhere (a file in the same schema, ``import_rankings``) are appended to the output; the
aggregate stage validates them like any other ranking.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from validation.rejects import RejectSink, validate_rows
from validation.schemas import RANKING_COLUMNS, TextsSchema
from valueflow.io import (
    InputError,
    check_outputs,
    one_writer,
    read_part_or_drop,
    read_table,
    seeded_rng,
    stage_records,
    write_metrics,
    write_parquet,
)
from valueflow.judges import Judge, make_judge
from valueflow.judges.base import canonical_judge_spec
from valueflow.params import StageParams, canonical_values, deduplicated
from valueflow.plackett_luce import design_windows


class CollectConfig(StageParams):
    """The ``collect`` section of params.yaml."""

    section: ClassVar[str] = "collect"

    texts: Path = Path("data/texts.parquet")
    out: Path = Path("data/rankings.parquet")
    judges: list[str] = Field(default_factory=lambda: ["reference", "embedding"])
    judge_options: dict[str, dict] = Field(default_factory=dict)  # spec -> constructor options
    k: int = Field(4, ge=2)  # texts per window: a ranking of one text says nothing
    m: int = Field(6, ge=1)  # windows per text
    seed: int = 0
    values: list[str] | None = None  # None: every value present in the texts; any alias (Care/Harm)
    chunk_size: int = Field(256, ge=1)  # windows per appended chunk (the unit of resumption)
    store: Path = Path("data/cache/collect")
    import_rankings: list[str] = Field(default_factory=list)
    root: Path = Path(".")

    @field_validator("values", mode="before")
    @classmethod
    def _canonical_values(cls, v: object) -> object:
        """Value names in any alias, resolved through the taxonomy; an unknown name fails listing the valid ones."""
        return canonical_values(v, "collect.values") if isinstance(v, list) else v  # else the type check says why

    @field_validator("judges", mode="after")
    @classmethod
    def _unique_judges(cls, v: list[str]) -> list[str]:
        """Each judge once (``reference`` twice would write every ranking twice), spelled canonically."""
        return deduplicated(v, canonical_judge_spec, "collect.judges")

    @model_validator(mode="after")
    def _options_of_listed_judges(self) -> CollectConfig:
        self.judge_options = {canonical_judge_spec(k): v for k, v in self.judge_options.items()}
        stray = sorted(set(self.judge_options) - set(self.judges))
        if stray:
            raise ValueError(f"judge_options names judge(s) not in judges: {', '.join(stray)}")
        return self


def ranking_id(value: str, judge: str, window: list[str]) -> str:
    """Stable id of one judge's ranking of one window (the resumption key; ``judge`` is :func:`judge_key`)."""
    return hashlib.sha1("\x1f".join([value, judge, *window]).encode()).hexdigest()[:20]


def judge_key(judge: Judge, options: dict | None = None) -> str:
    """What a stored answer is valid for: the judge's name plus every setting that changes its answers.

    The name alone (``chat:<model>@<prompt version>``) would let a judge with another temperature, seed, endpoint
    or option silently reuse stale answers. Settings a judge declares as transport only (timeouts, concurrency,
    caches, the key's variable) do not count: changing them must not re-ask anything. A judge with no such
    settings keeps its bare name, so existing stores stay valid.
    """
    settings = dict(judge.answer_settings())
    for key, val in (options or {}).items():
        if key not in judge.transport_options and key != "labels":  # reference labels: digested into the name
            settings[key] = val
    if not settings:
        return judge.name
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{judge.name}#{digest}"


def value_windows(text_ids: list[str], value: str, k: int, m: int, seed: int,
                  previous: list[list[str]] | None = None) -> list[list[str]]:
    """The window design of one value: every text in at least m windows of k.

    Without a ``previous`` design it is drawn from scratch (deterministic for seed, value and the value's text
    ids). With one, it *grows*: every previous window whose texts are all still present is kept (its answers stay
    valid), and only the texts short of m windows (new texts, or texts whose windows lost a removed partner) get
    new windows, each holding k-1 of them and one text that already had its m (so every new text is compared with
    texts already on the scale). Growing a value by 10 % thus asks about k/(k-1) x 10 % of a full collection's
    windows instead of all of them again.
    """
    ids = sorted(set(text_ids))
    if len(ids) < 2:
        return []
    k = min(k, len(ids))
    present = set(ids)
    kept = [list(w) for w in previous or [] if len(w) == k and len(set(w)) == k and set(w) <= present]
    if not kept:
        rng = seeded_rng(seed, value)
        return [[ids[i] for i in row] for row in design_windows(len(ids), k, m, rng)]
    count = Counter(t for w in kept for t in w)
    need = {t: m - count[t] for t in ids if count[t] < m}
    if not need:
        return kept
    full = [t for t in ids if t not in need]
    rng = seeded_rng(seed, value, "grow", *sorted(need))
    extra = Counter()  # filler turns of texts that already had m windows: rotate them, never over-sample one
    grown = []
    for r in range(max(need.values())):
        short = [t for t in sorted(need) if need[t] > r]
        short = [short[i] for i in rng.permutation(len(short))]
        per_window = k - 1 if full else k
        for start in range(0, len(short), per_window):
            window = short[start : start + per_window]
            pool = [t for t in full if t not in window] or [t for t in ids if t not in window]
            if len(window) < k:
                fill_from = pool if len(pool) >= k - len(window) else [t for t in ids if t not in window]
                priority = np.array([extra[t] for t in fill_from], dtype=float) + rng.random(len(fill_from))
                fill = [fill_from[i] for i in np.argsort(priority)[: k - len(window)]]
                extra.update(fill)
                window = window + fill
            grown.append([window[i] for i in rng.permutation(len(window))])
    return kept + grown


class DesignStore:
    """The window design of each value, kept so that a grown corpus keeps its answered windows (value_windows)."""

    def __init__(self, folder: Path, k: int, m: int, seed: int) -> None:
        self.folder, self.k, self.m, self.seed = folder, k, m, seed

    def _path(self, value: str) -> Path:
        key = hashlib.sha1(f"{value}\x1f{self.k}\x1f{self.m}\x1f{self.seed}".encode()).hexdigest()[:16]
        return self.folder / f"design-{key}.parquet"

    def windows(self, value: str, text_ids: list[str]) -> list[list[str]]:
        path = self._path(value)
        previous = None
        frame = read_part_or_drop(path) if path.exists() else None
        if frame is not None and "window" in frame.columns:
            previous = [[str(x) for x in w] for w in frame["window"]]
        windows = value_windows(text_ids, value, self.k, self.m, self.seed, previous)
        if windows != previous:  # written before any judge is asked, so a killed run resumes the same design
            write_parquet(pd.DataFrame({"value": value, "window": windows}), path)
        return windows


class RankingStore:
    """Append-only chunks of collected rankings; the record of which windows are done.

    One window's answer is one ranking, or several for a judge that answers with chains through tied labels:
    those carry the window's ranking id with a ``.<n>`` suffix.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[str, list[dict]] = {}
        for part in sorted(folder.glob("part-*.parquet")) if folder.exists() else []:
            rows = read_part_or_drop(part)
            if rows is not None:
                self._add(rows.to_dict("records"))

    def _add(self, rows: list[dict]) -> None:
        for row in rows:
            row["window"], row["order"] = [str(x) for x in row["window"]], [str(x) for x in row["order"]]
            answer = self.rows.setdefault(row["ranking_id"].split(".", 1)[0], [])
            if all(r["ranking_id"] != row["ranking_id"] for r in answer):
                answer.append(row)

    def __contains__(self, rid: str) -> bool:
        return rid in self.rows

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        name = f"part-{time.time_ns()}-{len(self.rows)}.parquet"
        write_parquet(pd.DataFrame(rows, columns=RANKING_COLUMNS), self.folder / name)
        self._add(rows)


def _labels(texts: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Reference labels per (value, text): the reference intensity where given, else the direction."""
    ref = texts["reference_intensity"].astype(float)
    direction = texts["direction"].astype("Float64").astype(float)
    label = ref.where(ref.notna(), direction)
    return {(v, t): float(x) for v, t, x in zip(texts["value"], texts["text"], label) if not np.isnan(x)}


def build_judges(cfg: CollectConfig, texts: pd.DataFrame) -> list[Judge]:
    judges = []
    for spec in cfg.judges:
        options = dict(cfg.judge_options.get(spec, {}) or {})
        if spec.split(":", 1)[0] == "reference":
            labels = _labels(texts)
            digest = hashlib.sha1(repr(sorted(labels.items())).encode()).hexdigest()[:8]
            options.setdefault("labels", labels)
            options.setdefault("seed", cfg.seed)
            judge = make_judge(spec, **options)
            judge.name = f"{judge.name.rsplit('@', 1)[0]}@{digest}"  # new labels -> new rankings, not stale ones
        else:
            judge = make_judge(spec, **options)
        judges.append(judge)
    return judges


def collect(cfg: CollectConfig, judges: list[Judge] | None = None) -> tuple[pd.DataFrame, dict]:
    """Collect (or resume collecting) the rankings of every configured judge; write the raw rankings file."""
    started = time.perf_counter()
    sink = RejectSink("collect", root=cfg.root, out=cfg.out)
    metrics_path, _ = stage_records("collect", cfg.out, cfg.root)
    check_outputs({"collect.out": cfg.root / cfg.out, "collect.store": cfg.root / cfg.store,
                   "rejected rows": sink.path, "metrics": metrics_path},
                  {"collect.texts": cfg.root / cfg.texts,
                   **{f"collect.import_rankings[{i}]": cfg.root / p for i, p in enumerate(cfg.import_rankings)}})
    raw = read_table(cfg.root / cfg.texts, required=tuple(TextsSchema.to_schema().columns))
    texts = validate_rows(raw, TextsSchema, sink, file=str(cfg.texts))
    if texts.empty:  # nothing to do is not success
        raise InputError(f"{cfg.texts}: no texts to collect rankings for ({len(raw)} row(s), {sink.count} rejected)")
    values = sorted(texts["value"].unique()) if cfg.values is None else list(cfg.values)
    specs = cfg.judges if judges is None else [None] * len(judges)  # options are known for judges built here
    absent = sorted(set(values) - set(texts["value"]))
    if absent:  # a value asked for by name that the texts do not have would give "0 rankings" and exit 0
        raise InputError(f"{cfg.texts}: no texts of collect.values {', '.join(absent)}")
    judges = judges if judges is not None else build_judges(cfg, texts)
    if not judges:
        raise InputError("collect: no judges to ask (collect.judges is empty)")
    with one_writer(cfg.root / cfg.store, "the collect store"):  # read after the lock: another run's windows count
        return _collect_into_store(cfg, texts, values, judges, specs, sink, started)


def _collect_into_store(cfg: CollectConfig, texts: pd.DataFrame, values: list[str], judges: list[Judge],
                        specs: list[str | None], sink: RejectSink, started: float) -> tuple[pd.DataFrame, dict]:
    from tqdm.auto import tqdm

    store = RankingStore(cfg.root / cfg.store)
    text_of = dict(zip(texts["text_id"], texts["text"]))

    designs = DesignStore(cfg.root / cfg.store / "design", cfg.k, cfg.m, cfg.seed)
    design = {value: designs.windows(value, texts.loc[texts["value"] == value, "text_id"].tolist()) for value in values}
    options = {j.name: dict(cfg.judge_options.get(spec, {}) or {}) if spec else {} for j, spec in zip(judges, specs)}
    keys = {j.name: judge_key(j, options.get(j.name)) for j in judges}
    total = sum(len(w) for w in design.values()) * len(judges)
    per_judge = {j.name: {"windows": 0, "collected": 0, "from_store": 0, "failed": 0, "tied": 0,
                             "seconds": 0.0} for j in judges}
    out_rows: list[dict] = []
    bar = tqdm(total=total, desc="collect", unit="window", disable=None)
    for value in values:
        for judge in judges:
            stats = per_judge[judge.name]
            windows = design[value]
            stats["windows"] += len(windows)
            ids = [ranking_id(value, keys[judge.name], w) for w in windows]
            pending = [(pos, rid, w) for pos, (rid, w) in enumerate(zip(ids, windows)) if rid not in store]
            stats["from_store"] += len(windows) - len(pending)
            bar.update(len(windows) - len(pending))
            for start in range(0, len(pending), cfg.chunk_size):
                chunk = pending[start : start + cfg.chunk_size]
                t0 = time.perf_counter()
                answers = judge.rank_windows(value, [[text_of[i] for i in w] for _, _, w in chunk])
                stats["seconds"] += time.perf_counter() - t0
                now = datetime.now(UTC).isoformat(timespec="seconds")
                rows, failed = [], []
                for (pos, rid, window), answer in zip(chunk, answers):
                    if answer.order is not None and len(answer.order) < 2:  # answered: nothing to order (all tied)
                        stats["tied"] += 1
                        continue
                    if answer.order is None:
                        failed.append({"ranking_id": rid, "value": value, "judge": judge.name, "window": window,
                                       "reason": answer.error or "no answer", "raw": answer.raw or "", "pos": pos})
                        continue
                    for n, chain in enumerate((answer.order, *answer.also)):
                        ranked = [window[p] for p in chain]  # a tie-aware judge ranks subsets of the window
                        rows.append({"ranking_id": rid if n == 0 else f"{rid}.{n}", "value": value, "judge": judge.name,
                                     "window": list(window) if len(ranked) == len(window) else sorted(ranked, key=window.index),
                                     "order": ranked, "created_at": now, "prompt_hash": answer.prompt_hash})
                store.append(rows)
                stats["collected"] += len(chunk) - len(failed) - sum(a.order is not None and len(a.order) < 2 for a in answers)
                stats["failed"] += len(failed)
                for f in failed:  # "row": the window's number in this value's design
                    sink.add(pd.DataFrame([f]), f"judge gave no ranking: {f['reason']}", file=f"{judge.name} / {value}",
                             column="order", rows=pd.Series([f["pos"]]))
                bar.update(len(chunk))
            out_rows.extend(row for rid in ids if rid in store for row in store.rows[rid])
    bar.close()

    rankings = pd.DataFrame(out_rows, columns=RANKING_COLUMNS)
    imported = {}
    for path in cfg.import_rankings:
        extra = read_table(cfg.root / path, required=tuple(RANKING_COLUMNS))[RANKING_COLUMNS]
        imported[str(path)] = len(extra)
        rankings = pd.concat([rankings, extra], ignore_index=True)
    write_parquet(rankings, cfg.root / cfg.out)
    sink.write()
    metrics = {
        "texts": len(texts),
        "n_values": len(values),
        "k": cfg.k,
        "m": cfg.m,
        "windows_per_judge": int(sum(len(w) for w in design.values())),
        "rankings": len(rankings),
        "imported_rankings": imported,
        "judges": {name: {**s, "seconds": round(s["seconds"], 3)} for name, s in per_judge.items()},
        "rejected": sink.count,
        "rejected_by_reason": sink.counts_by_reason(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_metrics("collect", metrics, cfg.root, out=cfg.out)
    return rankings, metrics
