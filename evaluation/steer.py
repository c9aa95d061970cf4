"""The ``steer`` stage: queries x (format, target) x samples x backends -> ``data/responses.parquet``.

Resume: every answer is appended to a journal (``<cache_dir>/<backend>.jsonl``, one JSON line, flushed at once)
the moment it arrives. A rerun plans the same requests (a response id is a hash of everything that makes the
answer: backend, model, prompt, target, sample, generation settings), skips those the journal already answers and
asks only for the rest; a torn last line (a kill mid-write) is ignored. The output therefore holds each planned
row exactly once, however often the run was interrupted. Failed requests are recorded with their error and retried
by the next run. The journal outlives the output on purpose: DVC deletes outputs before rerunning a stage, and
adding a model to params must not pay again for the models already answered. One run at a time writes the
journals of a ``cache_dir`` (a lock there): a second run waits for the first, then reuses its answers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import Field, field_validator, model_validator

from evaluation.backends import BackendSpec, GenerationConfig, GenerationRequest, GenerationResult
from evaluation.prompts import (
    ExemplarPool,
    TargetError,
    build_prompt,
    plan_targets,
    stable_seed,
    targets_json,
)
from validation.rejects import RejectSink, validate_rows
from validation.schemas import ResponsesSchema
from valueflow.io import (
    InputError,
    check_outputs,
    one_writer,
    read_table,
    stable_text_id,
    stage_records,
    write_metrics,
    write_parquet,
)
from valueflow.params import StageParams
from valueflow.redact import redact

RESPONSE_COLUMNS = [
    "response_id", "run_id", "backend", "model", "query_id", "query", "prompt_format", "targets", "sample",
    "prompt", "exemplar_ids", "response", "refused", "refusal_match", "error", "finish_reason", "attempts", "created_at",
]

# --------------------------------------------------------------------------------------------------------------
# refusals

# Looked for near the start of an answer only: a model that refuses says so first, while the same words deep
# inside a real answer ("I cannot stress enough...") are not a refusal.
_REFUSAL_PATTERNS = [
    # the disclaimer alone ("As an AI, here is my advice") is not a refusal; followed by "I can't/don't" it is
    r"\bas an ai(?: language model| assistant| model)?,? i (?:can(?:no|')?t|don'?t|do not|am not|am unable|won'?t)",
    r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?(?:i |that )?(?:can(?:no|')t|won'?t|will not|am unable|am not able|must)",
    (
        r"\bi (?:can(?:no|')?t|won'?t|will not|am unable to|am not able to|must decline to|refuse to|do not feel comfortable|"
        r"don'?t feel comfortable) (?:help(?! but)|assist|provide|comply|answer|do that|write|engage|support|fulfil|"
        r"fulfill|take on|adopt|role-?play|pretend|endorse|promote|encourage|advocate|give)"
    ),
    r"\bi(?:'m| am) not (?:comfortable|able to)\b",
    r"\bi must (?:respectfully )?decline\b",
    r"\bi(?:'d| would) rather not\b",
]
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in _REFUSAL_PATTERNS), re.IGNORECASE)
REFUSAL_WINDOW = 240  # characters from the start of the answer that are searched


def detect_refusal(response: str | None) -> str | None:
    """The refusal phrase found near the start of ``response``, or None. Missing answers are not refusals."""
    if not response:
        return None
    head = response.replace("\u2019", "'")[:REFUSAL_WINDOW]
    m = _REFUSAL_RE.search(head)
    return m.group(0) if m else None


# --------------------------------------------------------------------------------------------------------------
# inputs


def load_queries(path: str | Path, sink: RejectSink, *, max_queries: int | None = None, query_ids: Sequence[str] = ()) -> pd.DataFrame:
    """``query_id, query`` rows (``topic`` optional); blank or duplicate rows are rejected with the reason.

    A file with only a ``query`` column (the paper's query sets) gets ids from the file name and a hash of the
    query text, stable when rows are reordered or added.
    """
    df = read_table(path, required=("query",))
    if "query_id" not in df.columns:
        stem = Path(path).stem
        df["query_id"] = [f"{stem}-{hashlib.sha1(str(q).encode()).hexdigest()[:10]}" for q in df["query"]]
    df = df.astype({"query_id": str, "query": str})
    rows = pd.Series(df.index + 2, index=df.index)  # CSV line numbers (header is line 1)
    blank = df["query"].str.strip().eq("") | df["query_id"].str.strip().eq("")
    if blank.any():
        sink.add(df[blank], "empty query or query_id", file=str(path), column="query", rows=rows[blank])
    dup = df["query_id"].duplicated() & ~blank
    if dup.any():
        sink.add(df[dup], "duplicate query_id (first kept)", file=str(path), column="query_id", rows=rows[dup])
    df = df[~blank & ~dup]
    if query_ids:
        unknown = sorted(set(query_ids) - set(df["query_id"]))
        if unknown:
            raise InputError(f"{path}: query_ids not in the file: {', '.join(unknown)}")
        df = df[df["query_id"].isin(list(query_ids))]
    if max_queries:
        df = df.head(int(max_queries))
    if df.empty:
        raise InputError(f"{path}: no usable queries (file has {len(rows)} row(s); see data/rejected/steer.parquet)")
    return df.reset_index(drop=True)


def load_exemplar_pool(source: str | Path, split: str | Sequence[str] | None = None) -> ExemplarPool:
    """Texts with intensities for ``user_texts`` prompts and the oracle, read by
    :func:`evaluation.anchors.read_vidb_records`.

    ``source``: a VIDB release folder (its ``filtered`` config, falling back to ``full``; VIDB's filtered config
    holds the texts where judges and references agree, as the paper's exemplars do), a Parquet or CSV file with
    ``text, value, intensity`` (or ``reference_intensity``), or a folder of seed CSVs with
    ``reference_intensity`` (the embedded corpus, used before a VIDB is built).
    """
    from evaluation.anchors import read_vidb_records

    splits = [split] if isinstance(split, str) else list(split or [])
    record = read_vidb_records(source, config="filtered")
    df = record.rows.copy()
    df["intensity"] = pd.to_numeric(df["intensity"], errors="coerce")
    if "text_id" not in df.columns:
        df["text_id"] = [stable_text_id(str(v), str(t)) for v, t in zip(df["value"], df["text"])]
    if splits and "split" in df.columns:
        df = df[df["split"].astype(str).isin(splits)]
    if record.kind == "release" and df.empty:
        raise InputError(f"{source}: no VIDB parquet files under data/filtered or data/full (split {splits or 'any'})")
    cols = ["text_id", "text", "value", "intensity"] + (["split"] if "split" in df.columns else [])
    return ExemplarPool(df[cols], source=str(source) + (f" (split {','.join(splits)})" if splits else ""))


# --------------------------------------------------------------------------------------------------------------
# config and plan


class SteerConfig(StageParams):
    """The ``steer`` section of params.yaml."""

    section: ClassVar[str] = "steer"

    backends: list[BackendSpec]
    queries: Path = Path("data/seed/queries.csv")
    values: list[str] = Field(default_factory=list)
    intensities: list[int] = Field(default_factory=list)
    formats: list[str] = Field(default_factory=lambda: ["default", "single_definition"])
    multi_targets: list[dict[str, Any]] = Field(default_factory=list)
    samples: int = Field(1, ge=1)  # answers per prompt
    temperature: float = Field(1.0, ge=0)
    max_tokens: int = Field(150, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    exemplars: Path = Path("data/seed/texts")
    exemplar_split: str | list[str] | None = None
    n_exemplars: int = Field(3, ge=1)
    max_queries: int | None = Field(None, ge=1)  # None: every query
    query_ids: list[str] = Field(default_factory=list)
    seed: int = 0
    out: Path = Path("data/responses.parquet")
    cache_dir: Path = Path("data/cache/steer")
    root: Path = Path(".")

    @field_validator("intensities", mode="before")
    @classmethod
    def _levels(cls, v: object) -> object:
        return [_as_level(x) for x in v] if isinstance(v, list) else [_as_level(v)]

    @field_validator("backends", mode="before")
    @classmethod
    def _backends(cls, v: object) -> object:
        if not isinstance(v, list) or not v:
            raise ValueError("no backend configured (a list of {kind, name, model, ...})")
        specs = [b if isinstance(b, BackendSpec) else BackendSpec.from_params(b, f"steer.backends[{i}]") for i, b in enumerate(v)]
        names = [b.name for b in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}")
        return specs

    @model_validator(mode="after")
    def _targets(self) -> SteerConfig:
        plan_targets(self.values, self.intensities, self.multi_targets, self.formats)  # bad targets fail before any work
        return self

    @property
    def generation(self) -> GenerationConfig:
        return GenerationConfig(temperature=self.temperature, max_tokens=self.max_tokens, top_p=self.top_p)


def _as_level(x: Any) -> int:
    try:
        f = float(x)
    except (TypeError, ValueError):
        raise TargetError(f"steer.intensities: {x!r} is not an integer in -2..2") from None
    if f != int(f) or not -2 <= f <= 2:
        raise TargetError(f"steer.intensities: {x!r} is outside -2..2 (ordinal levels -2, -1, 0, 1, 2)")
    return int(f)


@dataclass(frozen=True)
class PlannedRow:
    request: GenerationRequest
    meta: dict[str, Any]


def run_id_of(spec: BackendSpec, cfg: SteerConfig) -> str:
    """Stable for a backend and its generation settings, so a resumed run carries the same id."""
    key = json.dumps([spec.kind, spec.name, spec.model, cfg.generation.temperature, cfg.generation.max_tokens,
                      cfg.generation.top_p, cfg.seed], sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def plan_rows(cfg: SteerConfig, spec: BackendSpec, queries: pd.DataFrame, pool: ExemplarPool | None) -> list[PlannedRow]:
    targets = plan_targets(cfg.values, cfg.intensities, cfg.multi_targets, cfg.formats)
    run_id = run_id_of(spec, cfg)
    rows: list[PlannedRow] = []
    for q in queries.itertuples(index=False):
        for fmt, target in targets:
            tj = targets_json(target)
            for sample in range(cfg.samples):
                # exemplars depend on query and sample but not on the backend: every model sees the same prompt
                prompt = build_prompt(fmt, q.query, target, pool=pool, key=f"{cfg.seed}|{q.query_id}|{fmt}|{tj}|{sample}",
                                      n_exemplars=cfg.n_exemplars)
                rid = hashlib.sha1(f"{run_id}\x1f{q.query_id}\x1f{fmt}\x1f{tj}\x1f{sample}\x1f{prompt.text}".encode()).hexdigest()[:16]
                req = GenerationRequest(rid, tuple(prompt.messages), q.query_id, fmt, dict(target), sample,
                                        stable_seed(f"{cfg.seed}|{rid}") % (2**31))
                rows.append(PlannedRow(req, {
                    "response_id": rid, "run_id": run_id, "backend": spec.kind, "model": spec.name,
                    "query_id": q.query_id, "query": q.query, "prompt_format": fmt, "targets": tj, "sample": sample,
                    "prompt": prompt.text, "exemplar_ids": json.dumps(list(prompt.exemplar_ids)),
                }))
    return rows


# --------------------------------------------------------------------------------------------------------------
# journal


class Journal:
    """Append-only JSON-lines record of answers for one backend; the resume state of the stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        self._torn_tail = bool(text) and not text.endswith("\n")  # a kill mid-write left the last line open
        if text:
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                    rid = rec["response_id"]
                except (ValueError, KeyError, TypeError):
                    self.torn_lines += 1  # only a kill mid-write produces one; that answer is asked again
                    continue
                if rec.get("response") is not None and rid not in self.done:
                    self.done[rid] = rec
        self._fh = None

    def __enter__(self) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        if self._torn_tail:  # close a torn line so the next record starts on its own line
            self._fh.write("\n")
            self._torn_tail = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh:
            self._fh.close()

    def append(self, rec: dict[str, Any]) -> None:
        rec = {**rec, "error": None if rec.get("error") is None else redact(rec["error"])}  # stored: redacted
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()
        if rec.get("response") is not None:
            self.done.setdefault(rec["response_id"], rec)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "backend"


# --------------------------------------------------------------------------------------------------------------
# the stage


def steer(cfg: SteerConfig, *, progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Answer every planned prompt with every backend; write the responses, rejects and metrics."""
    t0 = time.perf_counter()
    sink = RejectSink("steer", root=cfg.root, out=cfg.out)
    check_outputs({"steer.out": cfg.root / cfg.out, "steer.cache_dir store": cfg.root / cfg.cache_dir,
                   "rejected rows": sink.path, "metrics": stage_records("steer", cfg.out, cfg.root)[0]},
                  {"steer.queries": cfg.queries, "steer.exemplars": cfg.exemplars})
    plan_targets(cfg.values, cfg.intensities, cfg.multi_targets, cfg.formats)  # bad targets fail before any work
    queries = load_queries(cfg.queries, sink, max_queries=cfg.max_queries, query_ids=cfg.query_ids)
    needs_pool = any(f in ("user_texts", "multi_user_texts") for f in cfg.formats) or any(
        b.kind in ("oracle", "null") for b in cfg.backends)
    pool = load_exemplar_pool(cfg.exemplars, cfg.exemplar_split) if needs_pool else None
    if pool is not None:
        targeted = set(cfg.values) | {v for t in cfg.multi_targets for v in t}
        from valueflow.taxonomy import get_taxonomy

        tax = get_taxonomy()
        missing = sorted({tax.resolve(v) for v in targeted if _known(v)} - set(pool.values))
        if missing and any(f in ("user_texts", "multi_user_texts") for f in cfg.formats):
            raise TargetError(f"{cfg.exemplars}: no exemplar texts for value(s) {', '.join(missing)}")
    # one writer per journal: a second run on the same cache_dir waits, then reads the journals afresh and finds
    # the first run's answers there, so no prompt is asked (paid for) twice and no journal gets two writers
    with one_writer(cfg.root / cfg.cache_dir, "the steer journal"):
        return _answer_and_write(cfg, queries, pool, sink, t0, progress)


def _answer_and_write(cfg: SteerConfig, queries, pool, sink: RejectSink, t0: float,
                      progress: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The stage's work once it holds the journal: answer what the journals lack, write responses and records."""
    from tqdm.auto import tqdm

    all_rows: list[dict[str, Any]] = []
    per_backend: dict[str, dict[str, Any]] = {}
    for spec in cfg.backends:
        tb = time.perf_counter()
        planned = plan_rows(cfg, spec, queries, pool)
        journal_path = cfg.root / cfg.cache_dir / f"{_slug(spec.name)}.jsonl"
        counts = {"planned": len(planned), "reused": 0, "generated": 0, "failed": 0, "refused": 0}
        with Journal(journal_path) as journal:
            todo = [p.request for p in planned if p.request.response_id not in journal.done]
            todo_ids = {r.response_id for r in todo}
            counts["reused"] = len(planned) - len(todo)
            failures: dict[str, GenerationResult] = {}
            if todo:
                backend = spec.build(cfg.generation, pool)
                bar = tqdm(total=len(todo), desc=f"steer {spec.name}", unit="prompt", disable=not progress)

                def on_result(res: GenerationResult) -> None:
                    rec = {"response_id": res.response_id, "response": res.response, "error": res.error,
                           "finish_reason": res.finish_reason, "attempts": res.attempts,
                           "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
                    journal.append(rec)
                    if res.response is None:
                        failures[res.response_id] = res
                    bar.update(1)

                try:
                    backend.generate(todo, on_result)
                finally:
                    bar.close()
                    backend.close()
            for p in planned:
                rid = p.request.response_id
                rec = journal.done.get(rid)
                if rec is None:
                    fail = failures.get(rid)
                    rec = {"response": None, "error": fail.error if fail else "no answer received",
                           "finish_reason": None, "attempts": fail.attempts if fail else 0,
                           "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
                    counts["failed"] += 1
                elif rid in todo_ids:
                    counts["generated"] += 1
                refusal = detect_refusal(rec["response"])
                counts["refused"] += refusal is not None
                all_rows.append({**p.meta, "response": rec["response"], "refused": refusal is not None,
                                 "refusal_match": refusal or "", "error": rec.get("error") or "",
                                 "finish_reason": rec.get("finish_reason") or "", "attempts": int(rec.get("attempts") or 0),
                                 "created_at": rec["created_at"]})
        counts["seconds"] = round(time.perf_counter() - tb, 3)
        per_backend[spec.name] = {"kind": spec.kind, "model": spec.model, **counts}

    df = pd.DataFrame(all_rows, columns=RESPONSE_COLUMNS)
    df = validate_rows(df, ResponsesSchema, sink, file=str(cfg.out))
    df = df[RESPONSE_COLUMNS]
    write_parquet(df, cfg.root / cfg.out)
    sink.write()
    metrics = {
        "responses": len(df),
        "answered": int(df["response"].notna().sum()),
        "failed": int(df["response"].isna().sum()),
        "refused": int(df["refused"].sum()),
        "queries": len(queries),
        "formats": list(cfg.formats),
        "targets_per_query": len(plan_targets(cfg.values, cfg.intensities, cfg.multi_targets, cfg.formats)),
        "samples": cfg.samples,
        "rejected_rows": sink.count,
        "rejected_by_reason": sink.counts_by_reason(),
        "backends": per_backend,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_metrics("steer", metrics, cfg.root, out=cfg.out)
    return df, metrics


def _known(value: str) -> bool:
    from valueflow.taxonomy import UnknownValueError, get_taxonomy

    try:
        get_taxonomy().resolve(value)
        return True
    except UnknownValueError:
        return False
