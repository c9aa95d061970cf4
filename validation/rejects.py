"""The rejected-rows sink: nothing is dropped silently; every dropped row is kept with its reason.

``data/rejected/<stage>.parquet`` holds, per rejected row: the file it came from, its row number there, the
column at fault (empty when the whole row is at fault), the reason, and the original row as JSON so that it
can be fixed and fed back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from valueflow.io import write_parquet

REJECTED_DIR = Path("data/rejected")
REJECT_COLUMNS = ["stage", "file", "row", "column", "reason", "record"]


@dataclass
class RejectSink:
    """Collects rejected rows of one stage and writes them once, at the end of the stage."""

    stage: str
    root: Path = Path(".")
    rows: list[dict] = field(default_factory=list)

    def add(self, df: pd.DataFrame, reason: str, *, file: str = "", column: str = "", rows: pd.Series | None = None) -> None:
        """Reject every row of ``df``; ``rows`` gives their row numbers in ``file`` (default: ``df.index``)."""
        numbers = df.index if rows is None else rows
        for number, (_, record) in zip(numbers, df.iterrows()):
            self.rows.append(
                {
                    "stage": self.stage,
                    "file": str(file),
                    "row": int(number),
                    "column": column,
                    "reason": reason,
                    "record": json.dumps(_plain(record.to_dict()), ensure_ascii=False, default=str),
                }
            )

    @property
    def count(self) -> int:
        return len(self.rows)

    def counts_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self.rows:
            out[row["reason"]] = out.get(row["reason"], 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=REJECT_COLUMNS).astype({"row": "int64"})

    def write(self) -> Path:
        """Always write the file, even empty, so DVC can track it as an output and a reader sees "zero"."""
        return write_parquet(self.frame(), self.root / REJECTED_DIR / f"{self.stage}.parquet")


def _plain(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if hasattr(v, "tolist"):
            v = v.tolist()
        elif v is pd.NA or (isinstance(v, float) and v != v):
            v = None
        out[str(k)] = v
    return out


def validate_rows(
    df: pd.DataFrame,
    schema: type[pa.DataFrameModel],
    sink: RejectSink,
    *,
    file: str = "",
    row_numbers: pd.Series | None = None,
) -> pd.DataFrame:
    """Validate lazily (every failure at once); keep valid rows, send each invalid row to ``sink``.

    A row failing several checks is rejected once, with all its reasons joined. Failures that are not about a
    row (a missing column, a wrong dtype for a whole column) are raised: the file cannot be used at all.
    ``row_numbers`` maps ``df.index`` to row numbers in ``file`` for the messages.
    """
    try:
        return schema.validate(df, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        rowless = cases[cases["index"].isna()]
        # a column-level failure (missing column, uncoercible dtype) leaves no valid row to keep
        fatal = rowless[~rowless["check"].astype(str).str.startswith(("isin", "str_", "greater", "less", "in_range", "field_uniqueness"))]
        if len(fatal):
            detail = "; ".join(f"{c}: {chk} ({fc})" for c, chk, fc in fatal[["column", "check", "failure_case"]].itertuples(index=False))
            raise ValueError(f"{file or 'input'}: {detail}") from None
        reasons: dict[object, list[tuple[str, str]]] = {}
        for idx, column, check in cases.loc[cases["index"].notna(), ["index", "column", "check"]].itertuples(index=False):
            column = "" if column is None or column == schema.__name__ or column == df.__class__.__name__ else str(column)
            reasons.setdefault(idx, []).append((column, _describe(check)))
        bad = [i for i in df.index if i in reasons]
        numbers = row_numbers if row_numbers is not None else pd.Series(df.index, index=df.index)
        for idx in bad:
            cols = sorted({c for c, _ in reasons[idx] if c})
            sink.add(
                df.loc[[idx]],
                "; ".join(sorted({f"{c}: {r}" if c else r for c, r in reasons[idx]})),
                file=file,
                column=",".join(cols),
                rows=numbers.loc[[idx]],
            )
        kept = df.drop(index=bad)
        return schema.validate(kept, lazy=True) if len(kept) else schema.validate(kept.iloc[:0], lazy=True)


def _describe(check: object) -> str:
    text = str(check)
    return {
        "field_uniqueness": "duplicate value (must be unique)",
        "not_nullable": "missing value",
    }.get(text, text)
