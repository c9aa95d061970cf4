"""The rejected-rows sink: nothing is dropped silently; every dropped row is kept with its reason.

``data/rejected/<stage>.parquet`` (an ad-hoc run: ``<out>.rejected.parquet`` beside its output) holds, per rejected row: the file it came from, its row number there, the
column at fault (empty when the whole row is at fault), the reason, and the original row as JSON so that it
can be fixed and fed back.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from valueflow.io import InputError, stage_records, write_parquet
from valueflow.redact import redact

REJECTED_DIR = Path("data/rejected")
REJECT_COLUMNS = ["stage", "file", "row", "column", "reason", "record"]


@dataclass
class RejectSink:
    """Collects rejected rows of one stage and writes them once, at the end of the stage."""

    stage: str
    root: Path = Path(".")
    out: Path | None = None  # the run's main output: an ad-hoc run keeps its rejects beside it (stage_records)
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
                    "reason": redact(reason),  # a reason or a record may quote what a server sent back
                    "record": redact(json.dumps(_plain(record.to_dict()), ensure_ascii=False, default=str)),
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
        return write_parquet(self.frame(), self.path)

    @property
    def path(self) -> Path:
        return stage_records(self.stage, self.out, self.root)[1]


def _plain(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if hasattr(v, "tolist"):
            v = v.tolist()
        elif v is pd.NA or (isinstance(v, float) and math.isnan(v)):
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
    numbers = row_numbers if row_numbers is not None else pd.Series(df.index, index=df.index)
    df = _reject_uncoercible(df, schema, sink, file, numbers)
    try:
        return schema.validate(df, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        rowless = cases[cases["index"].isna()]
        # a column-level failure (missing column, uncoercible dtype) leaves no valid row to keep
        fatal = rowless[~rowless["check"].astype(str).str.startswith(("isin", "str_", "greater", "less", "in_range", "field_uniqueness"))]
        if len(fatal):
            detail = "; ".join(f"{c}: {chk} ({fc})" for c, chk, fc in fatal[["column", "check", "failure_case"]].itertuples(index=False))
            raise InputError(f"{file or 'input'}: {detail}") from None
        reasons: dict[object, list[tuple[str, str]]] = {}
        row_checks = {str(c.error or c.name) for c in schema.to_schema().checks}
        for idx, column, check, case in cases.loc[cases["index"].notna(), ["index", "column", "check", "failure_case"]].itertuples(index=False):
            if column is None or column == schema.__name__ or check in row_checks:  # the whole row is at fault
                reasons.setdefault(idx, []).append(("", str(check)))
            else:
                case = case.item() if hasattr(case, "item") else case  # numpy scalars print as np.int8(2)
                reasons.setdefault(idx, []).append((str(column), f"{case!r} {_describe(str(check))}"))
        bad = [i for i in df.index if i in reasons]
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


def validate_file(df: pd.DataFrame, schema: type[pa.DataFrameModel], file: str) -> pd.DataFrame:
    """Validate a file that must be valid as a whole (a stage's output read by the next stage): any failure is one
    :class:`InputError` line naming the file, how many failures, and the first with its row and column."""
    try:
        return schema.validate(df, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        first = cases.iloc[0]
        row = "" if pd.isna(first["index"]) else f"row {int(first['index']) + 1}, "
        column = "" if first["column"] in (None, schema.__name__) else f"column {first['column']!r}: "
        case = first["failure_case"]
        what = _describe(str(first["check"])) if column else str(first["check"])
        detail = f"{case!r} {what}" if column and not pd.isna(first["index"]) else f"{what} ({case})"
        raise InputError(f"{file}: not a valid {schema.__name__.removesuffix('Schema').lower()} table "
                         f"({len(cases)} failure(s)); first: {row}{column}{detail}") from None


def _reject_uncoercible(df: pd.DataFrame, schema: type[pa.DataFrameModel], sink: RejectSink, file: str, numbers: pd.Series) -> pd.DataFrame:
    """Reject rows whose numeric cells are not numbers, so that one bad cell does not sink a whole column."""
    bad = pd.Series(False, index=df.index)
    for name, column in schema.to_schema().columns.items():
        kind = str(column.dtype).lower()
        if name not in df.columns or not any(k in kind for k in ("int", "float")):
            continue
        raw = df[name]
        given = raw.notna() & raw.astype(str).str.strip().ne("")
        number = pd.to_numeric(raw.where(given), errors="coerce")
        wrong = given & (number.isna() | (("int" in kind) & (number % 1 != 0)))
        for idx in df.index[wrong & ~bad]:
            expected = "an integer" if "int" in kind else "a number"
            sink.add(df.loc[[idx]], f"{name}: {raw[idx]!r} is not {expected}", file=file, column=name, rows=numbers.loc[[idx]])
        bad |= wrong
    return df[~bad]


_CHECK_WORDS = [
    (re.compile(r"^isin\((.*)\)$"), lambda m: f"is not one of {m.group(1).strip('[]{}')}"),
    (re.compile(r"^less_than_or_equal_to\((.*)\)$"), lambda m: f"is above the maximum {m.group(1)}"),
    (re.compile(r"^greater_than_or_equal_to\((.*)\)$"), lambda m: f"is below the minimum {m.group(1)}"),
    (re.compile(r"^in_range\((.*)\)$"), lambda m: f"is outside the range {m.group(1)}"),
    (re.compile(r"^str_matches\(.*\\S.*\)$"), lambda m: "is empty (text required)"),
    (re.compile(r"^str_length\((.*)\)$"), lambda m: f"has a length outside {m.group(1)}"),
    (re.compile(r"^field_uniqueness$"), lambda m: "is a duplicate (must be unique)"),
    (re.compile(r"^not_nullable$"), lambda m: "is missing"),
]


def _describe(check: str) -> str:
    """Pandera's check names as a reader would say them ("is not one of -1, 0, 1")."""
    for pattern, words in _CHECK_WORDS:
        match = pattern.match(check)
        if match:
            return words(match)
    return f"fails {check}"
