"""Pandera models of the records in DESIGN.md §4. Every stage validates what it reads with ``lazy=True``.

Checks that need the taxonomy (known value, theory of the value, a path that exists) live here too, so a
bad label is caught where the file enters a stage, with the row and column named.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from valueflow.taxonomy import THEORIES, get_taxonomy

SPLITS = ("train", "validation", "test")
PROMPT_FORMATS = ("default", "single_definition", "user_texts", "multi_definition", "multi_user_texts")


def _value_names() -> list[str]:
    return [v.name for v in get_taxonomy().values]


def _is_json_object(s: pd.Series) -> pd.Series:
    def ok(x: object) -> bool:
        try:
            return isinstance(json.loads(x), dict)
        except (TypeError, ValueError):
            return False

    return s.map(ok).astype(bool)


class TextsSchema(pa.DataFrameModel):
    """Value-labelled texts: the output of ingest and the text fields of VIDB."""

    text_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    text: Series[str] = pa.Field(str_matches=r"\S")
    source: Series[str] = pa.Field(str_length={"min_value": 1})
    source_id: Series[str]
    license: Series[str] = pa.Field(str_length={"min_value": 1})
    theory: Series[str] = pa.Field(isin=list(THEORIES))
    value: Series[str] = pa.Field(isin=_value_names())
    level_1: Series[str]
    level_2: Series[str]
    level_3: Series[str]
    # nullable: some sources (MFRC, Touché) say that a value is present but not which way
    direction: Series[pd.Int8Dtype] = pa.Field(isin=[-1, 0, 1], nullable=True)
    reference_intensity: Series[float] = pa.Field(ge=-10, le=10, nullable=True)

    @pa.dataframe_check(error="(theory, value, level_1, level_2, level_3) is not a path of the taxonomy")
    def path_in_taxonomy(cls, df: pd.DataFrame) -> pd.Series:
        known = _known_paths()
        cols = ["theory", "value", "level_1", "level_2", "level_3"]
        # .tolist(): iterating an Arrow-backed column element by element is 50 times slower
        return pd.Series([row in known for row in zip(*(df[c].tolist() for c in cols))], index=df.index, dtype=bool)

    @pa.dataframe_check(error="reference_intensity has the opposite sign of direction")
    def direction_agrees_with_intensity(cls, df: pd.DataFrame) -> pd.Series:
        d = df["direction"].astype("Float64").fillna(0).to_numpy(dtype=float)
        r = df["reference_intensity"].astype(float).fillna(0).to_numpy()
        return pd.Series(d * r >= 0, index=df.index)

    class Config:
        strict = False
        coerce = True


def _known_paths() -> set[tuple[str, str, str, str, str]]:
    """Every (theory, value, level_1, level_2, level_3) a text may carry: the value itself and each leaf."""
    tax = get_taxonomy()
    known = set()
    for v in tax.values:
        for leaf in (None, *v.leaves):
            known.add((v.theory, v.name, *tax.path(v.name, leaf)))
    return known


class RankingsSchema(pa.DataFrameModel):
    """Raw rankings: one judge's order of one window of texts of one value."""

    ranking_id: Series[str] = pa.Field(unique=True)
    value: Series[str] = pa.Field(isin=_value_names())
    judge: Series[str] = pa.Field(str_length={"min_value": 1})
    window: Series[object]
    order: Series[object]
    created_at: Series[str]
    prompt_hash: Series[str]

    @pa.check("window", error="window must hold at least 2 distinct text ids")
    def window_size(cls, s: pd.Series) -> pd.Series:
        return s.map(lambda w: (ids := _as_list(w)) is not None and len(ids) >= 2 and len(set(ids)) == len(ids))

    @pa.dataframe_check(error="order is not a permutation of window")
    def order_is_permutation(cls, df: pd.DataFrame) -> pd.Series:
        return pd.Series(
            [
                (w := _as_list(win)) is not None and (o := _as_list(ordr)) is not None and len(o) == len(w) and sorted(o) == sorted(w)
                for win, ordr in zip(df["window"], df["order"])
            ],
            index=df.index,
        )

    class Config:
        strict = False
        coerce = False


def _as_list(x: object) -> list[str] | None:
    if isinstance(x, (list, tuple, np.ndarray)):  # map and tolist iterate in C: millions of cells
        return list(map(str, x.tolist() if isinstance(x, np.ndarray) else x))
    return None


class UtilitiesSchema(pa.DataFrameModel):
    """Aggregated Plackett-Luce utilities per text (aggregate -> build_vidb); NaN where a text cannot be placed."""

    text_id: Series[str] = pa.Field(unique=True)
    value: Series[str] = pa.Field(isin=_value_names())
    utility: Series[float] = pa.Field(nullable=True)
    utility_se: Series[float] = pa.Field(ge=0, nullable=True)
    n_rankings: Series[int] = pa.Field(ge=0)
    n_judges: Series[int] = pa.Field(ge=0)
    status: Series[str] = pa.Field(isin=["ok", "unranked", "disconnected"])
    judge_spread: Series[float] = pa.Field(ge=0, le=1)

    @pa.dataframe_check(error="utility is missing although status is ok")
    def placed_when_ok(cls, df: pd.DataFrame) -> pd.Series:
        return (df["utility"].notna() | (df["status"] != "ok")).astype(bool)

    @pa.dataframe_check(error="utility or utility_se is infinite")
    def finite(cls, df: pd.DataFrame) -> pd.Series:
        both = df[["utility", "utility_se"]].apply(pd.to_numeric, errors="coerce").abs()
        return (both != float("inf")).all(axis=1)

    class Config:
        strict = False
        coerce = True


RANKING_COLUMNS = list(RankingsSchema.to_schema().columns)  # the raw-rankings record, in file order


class VidbSchema(TextsSchema):
    """A VIDB row: a text with its aggregated utility and calibrated intensity."""

    utility: Series[float] = pa.Field(nullable=True)
    utility_se: Series[float] = pa.Field(ge=0, nullable=True)
    intensity: Series[float] = pa.Field(ge=-10, le=10, nullable=True)
    intensity_ci_low: Series[float] = pa.Field(ge=-10, le=10, nullable=True)
    intensity_ci_high: Series[float] = pa.Field(ge=-10, le=10, nullable=True)
    n_rankings: Series[int] = pa.Field(ge=0)
    n_judges: Series[int] = pa.Field(ge=0)
    flag: Series[str]  # empty string when the row is not flagged; otherwise the reasons, ";"-separated
    in_filtered: Series[bool]
    split: Series[str] = pa.Field(isin=list(SPLITS))

    @pa.dataframe_check(error="intensity_ci_low <= intensity <= intensity_ci_high does not hold")
    def ci_brackets_intensity(cls, df: pd.DataFrame) -> pd.Series:
        lo, mid, hi = (df[c].astype(float) for c in ("intensity_ci_low", "intensity", "intensity_ci_high"))
        return (mid.isna() | ((lo <= mid + 1e-9) & (mid <= hi + 1e-9))).astype(bool)


class ResponsesSchema(pa.DataFrameModel):
    """Steering responses: one model answer to one prompt built from a query and value targets."""

    response_id: Series[str] = pa.Field(unique=True)
    run_id: Series[str]
    backend: Series[str]
    model: Series[str]
    query_id: Series[str]
    query: Series[str] = pa.Field(str_matches=r"\S")
    prompt_format: Series[str] = pa.Field(isin=list(PROMPT_FORMATS))
    targets: Series[str]  # JSON object value -> ordinal intensity in -2..2 ({} for the default format)
    sample: Series[int] = pa.Field(ge=0)
    response: Series[str] = pa.Field(nullable=True)
    refused: Series[bool]  # a detected refusal: kept and counted by the analysis, never scored as neutral
    created_at: Series[str]

    @pa.check("targets", error="targets must be a JSON object of value -> integer intensity in -2..2")
    def targets_valid(cls, s: pd.Series) -> pd.Series:
        names = set(_value_names())

        def ok(x: str) -> bool:
            try:
                t = json.loads(x)
            except (TypeError, ValueError):
                return False
            return isinstance(t, dict) and all(k in names and isinstance(v, int) and -2 <= v <= 2 for k, v in t.items())

        return s.map(ok).astype(bool)

    class Config:
        strict = False
        coerce = True


class ScoresSchema(pa.DataFrameModel):
    """Evaluator scores: one intensity per (item, value), with its standard error and the judge calls used."""

    item_id: Series[str]
    value: Series[str] = pa.Field(isin=_value_names())
    intensity: Series[float] = pa.Field(ge=-10, le=10, nullable=True)
    intensity_se: Series[float] = pa.Field(ge=0, nullable=True)
    judge_calls: Series[int] = pa.Field(ge=0)
    windows: Series[str]  # JSON list of the windows shown: [{"anchors": [...], "order": [...]}, ...]
    missing_reason: Series[str] = pa.Field(nullable=True)  # why intensity is missing; null when scored
    # "below_all"/"above_all": ranked beyond every anchor it met, so the intensity is a bound without an SE
    censored: Series[str] | None = pa.Field(nullable=True)

    @pa.dataframe_check(error="a missing intensity needs a missing_reason")
    def missing_has_reason(cls, df: pd.DataFrame) -> pd.Series:
        return (df["intensity"].notna() | df["missing_reason"].fillna("").astype(str).str.len().gt(0)).astype(bool)

    class Config:
        strict = False
        coerce = True
