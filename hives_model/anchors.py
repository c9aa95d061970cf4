"""Stage-2 anchors: per-value anchor texts (value definition + high-intensity texts) and cross-theory anchors.

A per-value anchor exists for each (value, direction) with direction +1 or -1:
- support (+1): the value's definition from the taxonomy, plus the ``texts_per_anchor - 1`` supporting training
  texts of highest intensity;
- oppose (-1): the ``texts_per_anchor`` opposing training texts of lowest (most negative) intensity; none when the
  data hold no opposing text of that value.
Without intensities the texts are chosen in a fixed order (by normalised text), so anchors are deterministic.
A cross-theory anchor, per (concordance group, direction), pools one anchor text of every member value, so
equivalent values of different theories (care-harm ~ benevolence ~ beneficence) are pulled to one place.
"""

from __future__ import annotations

import pandas as pd

from hives_model.data import LabelSpace
from valueflow.io import normalise_text
from valueflow.taxonomy import get_taxonomy


def value_anchor_texts(rows: pd.DataFrame, texts_per_anchor: int = 2) -> dict[tuple[str, int], list[str]]:
    """(value name, direction) -> anchor texts."""
    tax = get_taxonomy()
    out: dict[tuple[str, int], list[str]] = {}
    for v in tax.values:
        for direction in (1, -1):
            sub = rows[(rows["value"] == v.name) & (rows["direction"] == direction)].copy()
            sub["_key"] = sub["text"].map(normalise_text)
            sub["_strength"] = (sub["intensity"] * direction).fillna(float("-inf"))
            sub = sub.sort_values(["_strength", "_key"], ascending=[False, True], kind="stable").drop_duplicates("_key")
            texts = [f"{v.name.replace('_', ' ')}: {v.definition}"] if direction == 1 else []
            texts += sub["text"].head(texts_per_anchor - len(texts)).tolist()
            if texts:
                out[(v.name, direction)] = texts
    return out


def group_anchor_texts(value_anchors: dict[tuple[str, int], list[str]]) -> dict[tuple[str, int], list[str]]:
    """(concordance group, direction) -> the first anchor text of each member value that has one."""
    tax = get_taxonomy()
    out: dict[tuple[str, int], list[str]] = {}
    for group, members in tax.concordance.items():
        for direction in (1, -1):
            texts = [value_anchors[(m, direction)][0] for m in members if (m, direction) in value_anchors]
            if texts:
                out[(group, direction)] = texts
    return out


def encode_anchor_keys(anchors: dict[tuple[str, int], list[str]], codes: dict[str, int]) -> dict[tuple[int, int], list[str]]:
    return {(codes[name], d): texts for (name, d), texts in anchors.items()}


def build_anchors(rows: pd.DataFrame, texts_per_anchor: int, space: LabelSpace | None = None):
    """Both anchor sets, keyed by label codes as the losses expect, plus the readable form for the metrics."""
    space = space or LabelSpace.from_taxonomy()
    values = value_anchor_texts(rows, texts_per_anchor)
    groups = group_anchor_texts(values)
    return encode_anchor_keys(values, space.values), encode_anchor_keys(groups, space.groups), values, groups
