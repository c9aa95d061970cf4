"""HiVES training rows: a texts/VIDB record -> (text, theory, path, direction, value, concordance group) + labels.

Every row carries one label vector (``LABEL_FIELDS``) so that the losses never need to know where a row sits in
its batch: the batch sampler may shuffle freely, and a loss compares rows only through their labels. (The
authors' code sliced a shuffled batch into sub-batches as if it were ordered; labels per row make that
impossible here.)

Missing direction. Some real sources (Touché23, MFRC) say a value is *present* but not in which direction.
``missing_direction`` chooses the treatment:

- ``unknown`` (default): the row keeps direction "unknown" (``DIRECTION_UNKNOWN``). In the losses a pair with an
  unknown direction is direction-compatible (it can be a positive at every level whose path prefix matches) and
  never receives the opposite-direction margin: absence of evidence is not taken as agreement or disagreement.
- ``support``: read presence as support (+1), the usual reading of "this argument resorts to value v".
- ``drop``: leave such rows out of training; each is written to ``data/rejected/train_hives.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from validation.rejects import RejectSink, validate_rows
from validation.schemas import TextsSchema
from valueflow.io import InputError, normalise_text, read_table
from valueflow.taxonomy import THEORIES, ValueTaxonomy, get_taxonomy

MISSING_DIRECTION = ("unknown", "support", "drop")
DIRECTION_UNKNOWN = 2  # label code; known directions are -1, 0, +1
LABEL_FIELDS = ("theory", "prefix_1", "prefix_2", "prefix_3", "direction", "value", "group", "text_key")
L = {name: i for i, name in enumerate(LABEL_FIELDS)}  # column index of each label field
# Multi-label sources give one row per label of a text. Each row also carries the text's other labels (up to
# OTHER_LABELS of them, in a fixed order) so that a loss or metric can treat two texts as related when *any* label of
# one matches any label of the other, instead of pushing apart texts that share a value through another row.
OTHER_LABELS = 7
OTHER = {f"prefix_{k}": [len(LABEL_FIELDS) + (k - 1) * OTHER_LABELS + a for a in range(OTHER_LABELS)] for k in (1, 2, 3)}
OTHER["direction"] = [len(LABEL_FIELDS) + 3 * OTHER_LABELS + a for a in range(OTHER_LABELS)]
LABEL_WIDTH = len(LABEL_FIELDS) + 4 * OTHER_LABELS
NO_LABEL = -9  # padding of unused other-label slots: matches no prefix and no direction
ROW_COLUMNS = ["text", "theory", "value", "level_1", "level_2", "level_3", "direction", "concordance_group", "intensity"]


class TrainingDataError(InputError):
    """The training data cannot be used as a whole (unknown theory or path, no positives possible)."""


def check_paths(df: pd.DataFrame, file: str, tax: ValueTaxonomy | None = None) -> None:
    """Refuse a record whose theory, value or (level_1, level_2, level_3) path is not in the taxonomy.

    Training on a label the taxonomy does not know would silently create a class of its own, so the whole file is
    refused, naming up to five offending rows (1-based, header excluded) and the column at fault.
    """
    tax = tax or get_taxonomy()
    known_values = {v.name: v.theory for v in tax.values}
    known_paths = {(t, *p) for t, p in tax.all_paths()}
    problems = []
    for number, (theory, value, l1, l2, l3) in enumerate(
        zip(df["theory"], df["value"], df["level_1"], df["level_2"], df["level_3"]), start=1
    ):
        if theory not in THEORIES:
            problems.append(f"row {number}, column theory: unknown theory {theory!r} (valid: {', '.join(THEORIES)})")
        elif value not in known_values or known_values[value] != theory:
            problems.append(f"row {number}, column value: {value!r} is not a value of theory {theory!r}")
        elif (theory, l1, l2, l3) not in known_paths:
            problems.append(f"row {number}, columns level_1..level_3: path {l1} / {l2} / {l3} is not in theory {theory!r}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise TrainingDataError(f"{file}: labels not in the taxonomy: " + "; ".join(problems[:5]) + more)


def load_texts(path: str | Path, sink: RejectSink, *, split: str | None = None) -> pd.DataFrame:
    """Read a texts or VIDB record, refuse unknown labels, and validate rows (invalid ones go to ``sink``)."""
    path = Path(path)
    df = read_table(path, required=("text", "theory", "value", "level_1", "level_2", "level_3", "direction"))
    if split is not None and "split" in df.columns:
        df = df[df["split"].astype(str) == split].reset_index(drop=True)
    for column, default in (("text_id", None), ("source", "unknown"), ("source_id", ""), ("license", "unknown"),
                            ("reference_intensity", np.nan)):
        if column not in df.columns:
            df[column] = [f"row{i}" for i in range(len(df))] if column == "text_id" else default
    check_paths(df, str(path))
    rows = pd.Series(np.arange(1, len(df) + 1), index=df.index)
    return validate_rows(df, TextsSchema, sink, file=str(path), row_numbers=rows)


def training_rows(texts: pd.DataFrame, missing_direction: str = "unknown", sink: RejectSink | None = None,
                  file: str = "") -> pd.DataFrame:
    """One row per (text, label): ``ROW_COLUMNS``; multi-label sources already give one texts row per label.

    ``intensity`` is the VIDB intensity when present, else the reference intensity (NaN when neither).
    """
    if missing_direction not in MISSING_DIRECTION:
        raise ValueError(f"missing_direction must be one of {MISSING_DIRECTION}, got {missing_direction!r}")
    tax = get_taxonomy()
    df = texts.copy()
    missing = df["direction"].isna()
    if missing.any() and missing_direction == "drop":
        if sink is not None:
            sink.add(df[missing], "direction: missing (missing_direction=drop)", file=file, column="direction",
                     rows=pd.Series(df.index[missing] + 1, index=df.index[missing]))
        df = df[~missing]
    direction = df["direction"].astype("Int64")
    if missing_direction == "support":
        direction = direction.fillna(1)
    df["direction"] = direction.fillna(DIRECTION_UNKNOWN).astype(int)
    df["concordance_group"] = [tax.value(v).concordance_group for v in df["value"]]
    intensity = df["intensity"] if "intensity" in df.columns else pd.Series(np.nan, index=df.index)
    reference = df["reference_intensity"] if "reference_intensity" in df.columns else pd.Series(np.nan, index=df.index)
    df["intensity"] = pd.to_numeric(intensity, errors="coerce").astype(float).fillna(
        pd.to_numeric(reference, errors="coerce").astype(float))
    return df[ROW_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class LabelSpace:
    """Integer codes of every label, fixed by the taxonomy (not by the data) so runs are comparable."""

    prefixes: tuple[dict[tuple, int], dict[tuple, int], dict[tuple, int]]
    values: dict[str, int]
    groups: dict[str, int]

    @classmethod
    def from_taxonomy(cls, tax: ValueTaxonomy | None = None) -> LabelSpace:
        tax = tax or get_taxonomy()
        prefixes: tuple[dict, dict, dict] = ({}, {}, {})
        for theory, path in sorted(tax.all_paths()):
            for level in range(3):
                key = (theory, *path[: level + 1])
                prefixes[level].setdefault(key, len(prefixes[level]))
        values = {v.name: i for i, v in enumerate(tax.values)}
        groups = {g: i for i, g in enumerate(tax.concordance)}
        return cls(prefixes, values, groups)

    def encode(self, rows: pd.DataFrame) -> np.ndarray:
        """(n, LABEL_WIDTH) int64 labels; ``text_key`` numbers identical texts (after normalisation) alike; the
        ``OTHER`` columns hold the text's other labels (prefix ids per level and direction), padded with NO_LABEL."""
        keys: dict[str, int] = {}
        text_key = [keys.setdefault(normalise_text(t), len(keys)) for t in rows["text"]]
        out = np.full((len(rows), LABEL_WIDTH), NO_LABEL, dtype=np.int64)
        out[:, L["theory"]] = [THEORIES.index(t) for t in rows["theory"]]
        for level in range(3):
            cols = ["theory", *(f"level_{k + 1}" for k in range(level + 1))]
            out[:, L[f"prefix_{level + 1}"]] = [self.prefixes[level][tuple(r)] for r in rows[cols].itertuples(index=False)]
        out[:, L["direction"]] = rows["direction"].astype(int).to_numpy()
        out[:, L["value"]] = [self.values[v] for v in rows["value"]]
        out[:, L["group"]] = [self.groups[g] for g in rows["concordance_group"]]
        out[:, L["text_key"]] = text_key
        own = ("prefix_1", "prefix_2", "prefix_3", "direction")
        by_text: dict[int, list[int]] = {}
        for i, key in enumerate(text_key):
            by_text.setdefault(key, []).append(i)
        for members in by_text.values():
            if len(members) < 2:
                continue
            for i in members:
                mine = tuple(out[i, [L[f] for f in own]])
                others = list(dict.fromkeys(tuple(out[j, [L[f] for f in own]]) for j in members if j != i))
                others = [o for o in others if o != mine][:OTHER_LABELS]
                for slot, label in enumerate(others):
                    for f, value in zip(own, label):
                        out[i, OTHER[f][slot]] = value
        return out


def to_dataset(rows: pd.DataFrame, space: LabelSpace | None = None):
    """A ``datasets.Dataset`` with columns ``text`` and ``label`` (the label vector), as the trainer expects."""
    from datasets import Dataset

    space = space or LabelSpace.from_taxonomy()
    labels = space.encode(rows)
    return Dataset.from_dict({"text": rows["text"].astype(str).tolist(), "label": labels.tolist()})


def _label_set(labels, field: str):
    """A row's own label and its text's other labels, side by side: (n, 1 + OTHER_LABELS) (numpy or torch)."""
    return labels[:, [L[field], *OTHER[field]]]


def label_match(a, b, level: int, *, pairwise: bool = True, ignore_direction: bool = False):
    """Whether the texts of two rows are *related* at level ``level``: any label of one shares the level-``level``
    path prefix with any label of the other, with a compatible direction (equal, or either unknown;
    ``ignore_direction``: the prefix alone).

    ``pairwise``: every row of ``a`` against every row of ``b`` -> (len(a), len(b)); else row by row -> (len(a),).
    Works on numpy arrays and torch tensors alike.
    """
    pa, pb = _label_set(a, f"prefix_{level}"), _label_set(b, f"prefix_{level}")
    da, db = _label_set(a, "direction"), _label_set(b, "direction")
    if pairwise:
        pa, da = pa[:, None, :, None], da[:, None, :, None]
        pb, db = pb[None, :, None, :], db[None, :, None, :]
    else:
        pa, da, pb, db = pa[:, :, None], da[:, :, None], pb[:, None, :], db[:, None, :]
    hit = (pa == pb) & (pa != NO_LABEL)
    if not ignore_direction:
        hit = hit & ((da == db) | (da == DIRECTION_UNKNOWN) | (db == DIRECTION_UNKNOWN))
    return hit.any(-1).any(-1)


def own_label_positive(labels, level: int):
    """(n, n): whether row j's text carries row i's *own* level-``level`` prefix with the *same* direction code.

    This is the positive set of anchor i in the hierarchical loss. It differs from :func:`label_match` in two ways:
    only the anchor row's own label counts (a multi-label text is a positive of the row whose label it shares,
    not of every row of a text it shares some label with), and directions must be equal (an unknown direction is
    a positive only of other unknown-direction rows, never of a supporting or opposing row).
    """
    own_p, own_d = labels[:, L[f"prefix_{level}"]], labels[:, L["direction"]]
    pb, db = _label_set(labels, f"prefix_{level}"), _label_set(labels, "direction")
    hit = (own_p[:, None, None] == pb[None, :, :]) & (own_d[:, None, None] == db[None, :, :])
    return hit.any(-1)


def _label_grid(li, lj):
    """Row-by-row comparison of every label of text i with every label of text j: (m, S, S) arrays.

    Returns the prefix matches per level, direction compatibility (equal, or either unknown) and slot validity.
    """
    matches = []
    for k in (1, 2, 3):
        pi, pj = _label_set(li, f"prefix_{k}"), _label_set(lj, f"prefix_{k}")
        matches.append(pi[:, :, None] == pj[:, None, :])
    di, dj = _label_set(li, "direction"), _label_set(lj, "direction")
    compatible = (di[:, :, None] == dj[:, None, :]) | (di[:, :, None] == DIRECTION_UNKNOWN) | (dj[:, None, :] == DIRECTION_UNKNOWN)
    pi, pj = _label_set(li, "prefix_1"), _label_set(lj, "prefix_1")
    valid = (pi[:, :, None] != NO_LABEL) & (pj[:, None, :] != NO_LABEL)
    return matches, compatible, valid


def label_similarity(labels: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Matching path levels (counted from the top) + 0.5 x [direction compatible], best over the texts' labels.

    The target of the similarity-correlation metric and of the label-similarity (CoSENT) training loss alike.
    """
    (m1, m2, m3), compatible, valid = _label_grid(labels[i], labels[j])
    levels = m1.astype(float) + (m1 & m2) + (m1 & m2 & m3)
    score = np.where(valid, levels + 0.5 * compatible, -np.inf)
    return score.max(axis=(1, 2))


ORACLE_DIRECTIONS = (1, -1, 0)  # the direction slots of a level-3 node in the oracle layout, in this order


def oracle_nodes() -> int:
    """Nodes per block of the oracle layout (the most prefixes of any level): fixed by the taxonomy, not the data."""
    return max(len(level) for level in LabelSpace.from_taxonomy().prefixes)


def oracle_column(n_nodes: int, level: int, prefix, direction: int | None = None):
    """Column of the oracle layout: the level-``level`` (1..3) path node ``prefix``; with ``direction`` (a known
    one) the (level-3 node, direction) slot. Three path blocks of ``n_nodes``, then three slots per level-3 node."""
    if direction is None:
        return (level - 1) * n_nodes + prefix
    return 3 * n_nodes + 3 * prefix + ORACLE_DIRECTIONS.index(direction)


def oracle_embeddings(labels: np.ndarray) -> np.ndarray:
    """The ceiling of every HiVES test: each row embedded as the normalised multi-hot of its text's true labels.

    Each label (prefix_1, prefix_2, prefix_3, direction) switches on its three path nodes and its (path, direction)
    node, so two single-label texts score 1 on the same path and direction, 3/4 on the same path with the other
    direction, 2/4 on the same level_2, 1/4 on the same level_1 and 0 otherwise: exactly the order the metrics
    ask for. An unknown direction spreads its direction node over support, oppose and neutral (1/sqrt 3 each).
    """
    n_nodes = oracle_nodes()
    dims = 3 * n_nodes + 3 * n_nodes  # three path levels, then (level-3 node, support | oppose | neutral)
    out = np.zeros((len(labels), dims), dtype=np.float32)
    rows = np.arange(len(labels))
    prefixes = [_label_set(labels, f"prefix_{k}") for k in (1, 2, 3)]
    directions = _label_set(labels, "direction")
    for slot in range(prefixes[0].shape[1]):
        valid = prefixes[0][:, slot] != NO_LABEL
        r, d = rows[valid], directions[valid, slot]
        for k in range(3):
            out[r, oracle_column(n_nodes, k + 1, prefixes[k][valid, slot])] = 1.0
        node = prefixes[2][valid, slot]
        for code in ORACLE_DIRECTIONS:
            out[r[d == code], oracle_column(n_nodes, 3, node[d == code], code)] = 1.0
        unknown = d == DIRECTION_UNKNOWN  # compatible with every direction: spread over the three
        for code in ORACLE_DIRECTIONS:
            out[r[unknown], oracle_column(n_nodes, 3, node[unknown], code)] = np.sqrt(1 / 3)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)
