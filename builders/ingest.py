"""The ingest stage: sources -> one validated texts record, with every dropped row kept and counted."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from builders.sources import ADAPTERS, Candidates, read_labelled_table
from validation.rejects import RejectSink, validate_rows
from validation.schemas import TextsSchema
from valueflow.io import (
    InputError,
    check_outputs,
    normalise_text,
    refdata_dir,
    stable_text_id,
    stage_records,
    write_metrics,
    write_parquet,
)
from valueflow.params import StageParams
from valueflow.taxonomy import get_taxonomy

TEXT_COLUMNS = list(TextsSchema.to_schema().columns)
REFDATA_SOURCES = ("valuenet", "touche23", "mfrc", "social_chem", "moral_stories", "vidb_anchors")


class TableSpec(BaseModel):
    """One extra labelled table of ``ingest.tables``."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    source: str | None = None  # None: the file name's stem
    license: str = "unknown"


class IngestConfig(StageParams):
    """The ``ingest`` section of params.yaml."""

    section: ClassVar[str] = "ingest"

    sources: list[str] = Field(default_factory=lambda: ["seed"])
    seed_dir: Path = Path("data/seed/texts")
    refdata: Path | None = None  # None: $VALUEFLOW_REFDATA or ../shared/data
    tables: list[TableSpec] = Field(default_factory=list)  # extra labelled tables
    out: Path = Path("data/texts.parquet")
    root: Path = Path(".")


@dataclass
class SourceCount:
    files: int = 0
    file_rows: int = 0
    rows_ingested: int = 0
    rows_rejected: int = 0
    texts: int = 0
    duplicates: int = 0


def _to_texts(c: Candidates) -> pd.DataFrame:
    """Candidates -> texts columns (theory, path, id); values and leaves are canonical already."""
    tax = get_taxonomy()
    f = c.frame.copy()
    f["source"] = c.source
    f["license"] = c.license
    values = f["value"].tolist()  # lists: iterating Arrow-backed columns element by element is 50 times slower
    f["theory"] = [tax.value(v).theory for v in values]
    paths = [tax.path(v, leaf or None) for v, leaf in zip(values, f["leaf"].tolist())]
    for level in range(3):
        f[f"level_{level + 1}"] = [p[level] for p in paths]
    f["text"] = f["text"].astype(str).str.strip()
    f["text_id"] = [stable_text_id(f"{c.source}|{v}", t) for v, t in zip(values, f["text"].tolist())]
    # empty cells mean "not given"; anything else is left for the schema to accept or reject by name
    for column in ("direction", "reference_intensity"):
        f[column] = f[column].map(lambda x: None if x is None or (isinstance(x, str) and not x.strip()) else x).astype(object)
        f[column] = f[column].where(f[column].notna(), None)
    return f


def ingest(cfg: IngestConfig) -> tuple[pd.DataFrame, dict]:
    """Run every configured source through its adapter, the texts schema and duplicate removal."""
    started = time.perf_counter()
    sink = RejectSink("ingest", root=cfg.root, out=cfg.out)
    check_outputs({"ingest.out": cfg.root / cfg.out, "rejected rows": sink.path,
                   "metrics": stage_records("ingest", cfg.out, cfg.root)[0]},
                  {f"ingest.tables[{i}]": t.path for i, t in enumerate(cfg.tables)})
    seen: dict[tuple[str, str], str] = {}  # (value, normalised text) -> text_id kept
    parts: list[pd.DataFrame] = []
    counts: dict[str, SourceCount] = {}

    mark = 0  # sink rows before this batch: adapters reject while the batch is being produced
    for batch in _candidates(cfg, sink):
        count = counts.setdefault(batch.source, SourceCount())
        count.files += 1
        count.file_rows += batch.file_rows
        frame = _to_texts(batch)
        dup = []
        first: dict[tuple[str, str], str] = {}
        for value, text, text_id in zip(frame["value"].tolist(), frame["text"].tolist(), frame["text_id"].tolist()):
            key = (value, normalise_text(text))
            dup.append(seen.get(key) or first.get(key))
            first.setdefault(key, text_id)
        dup = pd.Series(dup, index=frame.index, dtype=object)
        for idx, kept_id in dup.dropna().items():
            sink.add(frame.loc[[idx]], f"exact duplicate within value {frame.at[idx, 'value']} of text_id {kept_id}",
                     file=str(batch.file), column="text", rows=frame.loc[[idx], "row"])
        count.duplicates += int(dup.notna().sum())
        frame = frame[dup.isna()]
        valid = validate_rows(frame[TEXT_COLUMNS + ["row"]], TextsSchema, sink, file=str(batch.file), row_numbers=frame["row"])
        for value, text, text_id in zip(valid["value"].tolist(), valid["text"].tolist(), valid["text_id"].tolist()):
            seen[(value, normalise_text(text))] = text_id
        parts.append(valid)
        kept_rows = set(valid["row"])
        count.rows_ingested += len(kept_rows)
        count.rows_rejected += len({r["row"] for r in sink.rows[mark:]} - kept_rows)
        count.texts += len(valid)
        mark = sink.count

    if not parts or sum(len(p) for p in parts) == 0:  # nothing to do is not success: no source, or all rejected
        raise InputError(f"ingest: no texts from sources [{', '.join(cfg.sources)}]"
                         + (f" and {len(cfg.tables)} table(s)" if cfg.tables else "")
                         + (f" ({sink.count} row(s) rejected: {next(iter(sink.counts_by_reason()))})" if sink.count else ""))
    texts = pd.concat(parts, ignore_index=True)
    texts = texts[TEXT_COLUMNS].sort_values(["theory", "value", "source", "text_id"], kind="stable").reset_index(drop=True)
    texts = TextsSchema.validate(texts, lazy=True)
    write_parquet(texts, cfg.root / cfg.out)
    sink.write()
    metrics = {
        "texts": len(texts),
        "rejected": sink.count,
        "rejected_file": str(sink.path),
        "rejected_by_reason": _short_reasons(sink),
        "sources": {s: vars(c) for s, c in counts.items()},
        "per_value": {v: int(n) for v, n in texts["value"].value_counts().sort_index().items()},
        "per_source_value": {
            s: {v: int(n) for v, n in g["value"].value_counts().sort_index().items()} for s, g in texts.groupby("source")
        },
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_metrics("ingest", metrics, cfg.root, out=cfg.out)
    return texts, metrics


def _short_reasons(sink: RejectSink) -> dict[str, int]:
    """Reasons grouped by their kind (the part before any row-specific detail such as a text id)."""
    out: Counter = Counter()
    for reason, n in sink.counts_by_reason().items():
        out[reason.split(" of text_id ")[0].split("; valid values:")[0]] += n
    return dict(out.most_common())


def _candidates(cfg: IngestConfig, sink: RejectSink):
    for source in cfg.sources:
        if source not in ADAPTERS:
            raise InputError(f"unknown source {source!r}; known sources: {', '.join(sorted(ADAPTERS))}")
        if source == "seed":
            yield from ADAPTERS["seed"](cfg.root / cfg.seed_dir, sink)
            continue
        refdata = cfg.refdata or refdata_dir()
        if refdata is None or not Path(refdata).is_dir():
            raise InputError(f"source {source!r} needs the reference data folder (set $VALUEFLOW_REFDATA); not found: {refdata}")
        yield from ADAPTERS[source](Path(refdata), sink)
    for table in cfg.tables:
        yield read_labelled_table(table.path, table.source or table.path.stem, table.license, sink)


def format_counts(metrics: dict) -> str:
    """The per-source and per-value counts, as printed by ``valueflow ingest``."""
    lines = [f"{'source':<28}{'files':>6}{'rows':>9}{'ingested':>10}{'rejected':>10}{'texts':>9}{'dups':>7}"]
    for s, c in metrics["sources"].items():
        lines.append(f"{s:<28}{c['files']:>6}{c['file_rows']:>9}{c['rows_ingested']:>10}{c['rows_rejected']:>10}{c['texts']:>9}{c['duplicates']:>7}")
    lines.append("")
    lines.append(f"{'value':<32}" + "".join(f"{s[:12]:>13}" for s in metrics["per_source_value"]))
    for v in sorted(metrics["per_value"]):
        lines.append(f"{v:<32}" + "".join(f"{metrics['per_source_value'][s].get(v, 0):>13}" for s in metrics["per_source_value"]))
    lines.append(f"\n{metrics['texts']} texts; {metrics['rejected']} rejected rows in {metrics['rejected_file']}")
    for reason, n in metrics["rejected_by_reason"].items():
        lines.append(f"  {n:>7}  {reason}")
    return "\n".join(lines)
