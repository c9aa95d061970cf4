"""Source adapters: each turns one corpus, as laid out on disk, into candidate rows of the texts record.

An adapter yields ``Candidates``: one frame per file with the columns ``text, value, leaf, direction,
reference_intensity, source_id`` plus ``row`` (the row number in that file, 1-based, header excluded) and
the count of file rows read. Rows it cannot map (an unknown label, no label at all) go to the reject sink
with the reason; rows it maps to several values yield one candidate per value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from validation.rejects import RejectSink
from valueflow.io import InputError, read_table
from valueflow.taxonomy import UnknownValueError, get_taxonomy

CANDIDATE_COLUMNS = ["text", "value", "leaf", "direction", "reference_intensity", "source_id", "row"]


@dataclass
class Candidates:
    source: str
    license: str
    file: Path
    file_rows: int
    frame: pd.DataFrame  # CANDIDATE_COLUMNS


Adapter = Callable[[Path, RejectSink], Iterator[Candidates]]
ADAPTERS: dict[str, Adapter] = {}
SEED_LICENSE = "CC BY 4.0 (written for valueflow)"


def adapter(name: str) -> Callable[[Adapter], Adapter]:
    def deco(fn: Adapter) -> Adapter:
        ADAPTERS[name] = fn
        return fn

    return deco


def _rows(df: pd.DataFrame) -> pd.Series:
    return pd.Series(np.arange(1, len(df) + 1), index=df.index)


def _frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(records, columns=CANDIDATE_COLUMNS)


# -- labelled tables: the seed corpus and any user table in the same shape -----------------------------------
LABELLED_COLUMNS = ("text", "value", "direction")


def read_labelled_table(path: Path, source: str, license: str, sink: RejectSink) -> Candidates:
    """A table with ``text, value, direction`` and optional ``leaf, reference_intensity, id`` columns.

    Values and leaves may be given by any alias; rows with an unknown value or leaf, or a duplicated ``id``,
    are rejected with the reason. Types and ranges are checked later by the texts schema.
    """
    df = read_table(path, required=LABELLED_COLUMNS)
    rows = _rows(df)
    tax = get_taxonomy()
    keep, values, leaves = [], [], []
    if "id" in df.columns:
        dup = df["id"].astype(str).duplicated(keep=False) & df["id"].astype(str).ne("")
        if dup.any():
            sink.add(df[dup], "id: duplicate id (must be unique in the file)", file=str(path), column="id", rows=rows[dup])
    else:
        dup = pd.Series(False, index=df.index)
    # lists: element-wise access to (Arrow-backed) Series is what made this loop slow at a million rows
    leaf_column = df.get("leaf", pd.Series("", index=df.index))
    for idx, value, leaf, is_dup in zip(df.index, df["value"].tolist(), leaf_column.tolist(), dup.tolist()):
        if is_dup:
            continue
        try:
            canonical = tax.resolve(value)
            leaf_name = tax.resolve_leaf(canonical, leaf) if str(leaf or "").strip() else ""
        except UnknownValueError as err:
            column = "leaf" if "leaf" in str(err).split()[1] else "value"
            sink.add(df.loc[[idx]], f"{column}: {err}", file=str(path), column=column, rows=rows.loc[[idx]])
            continue
        keep.append(idx)
        values.append(canonical)
        leaves.append(leaf_name)
    kept = df.loc[keep]
    frame = pd.DataFrame(
        {
            "text": kept["text"].astype(str),
            "value": values,
            "leaf": leaves,
            "direction": kept["direction"],
            "reference_intensity": kept.get("reference_intensity", pd.Series(None, index=kept.index, dtype=object)),
            "source_id": kept["id"].astype(str) if "id" in kept.columns else rows.loc[keep].map(lambda r: f"{path.name}:{r}"),
            "row": rows.loc[keep],
        },
        columns=CANDIDATE_COLUMNS,
    )
    return Candidates(source, license, path, len(df), frame)


@adapter("seed")
def seed(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    files = sorted(root.glob("*.csv"))
    if not files:
        raise InputError(f"{root}: no seed CSV files found")
    for path in files:
        yield read_labelled_table(path, "seed", SEED_LICENSE, sink)


# -- real corpora as laid out in ../shared/data -------------------------------------------------------------
@adapter("valuenet")
def valuenet(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    """ValueNet: one CSV per Schwartz value, ``input`` text and the human direction ``label`` in -1/0/1."""
    tax = get_taxonomy()
    for path in sorted((root / "valuenet").glob("valuenet_*.csv")):
        df = read_table(path, required=("input", "label"))
        value = tax.resolve(path.stem.removeprefix("valuenet_"))
        rows = _rows(df)
        frame = pd.DataFrame(
            {
                "text": df["input"],
                "value": value,
                "leaf": "",
                "direction": df["label"],
                "reference_intensity": None,
                "source_id": rows.map(lambda r, s=path.stem: f"{s}:{r}"),
                "row": rows,
            },
            columns=CANDIDATE_COLUMNS,
        )
        yield Candidates("valuenet", "CC BY-NC-SA 4.0", path, len(df), frame)


TOUCHE_SPLITS = ("training", "validation", "validation-zhihu")


@adapter("touche23")
def touche23(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    """Touché23-ValueEval: premises with multi-label refined Schwartz values, one candidate per label.

    The labels say a value is *present* in the argument, not in which direction, and the stance is toward the
    conclusion, not the value, so direction stays missing. ``Universalism: objectivity`` has no leaf in the
    VALUEFLOW hierarchy and is kept at the value level (universalism).
    """
    tax = get_taxonomy()
    for split in TOUCHE_SPLITS:
        args_path = root / "touche23" / f"arguments-{split}.tsv"
        labels_path = root / "touche23" / f"labels-{split}.tsv"
        if not args_path.exists():
            continue
        args = read_table(args_path, required=("Argument ID", "Premise"))
        labels = read_table(labels_path, required=("Argument ID",)).set_index("Argument ID")
        rows = _rows(args)
        records = []
        unlabelled = []
        for idx, arg_id, premise in zip(args.index, args["Argument ID"], args["Premise"]):
            hits = [c for c in labels.columns if arg_id in labels.index and str(labels.at[arg_id, c]) == "1"]
            if not hits:
                unlabelled.append(idx)
            for category in hits:
                value_part, _, leaf_part = category.partition(":")
                value = tax.resolve(value_part)
                try:
                    leaf = tax.resolve_leaf(value, category) if leaf_part else ""
                except UnknownValueError:
                    leaf = ""  # Universalism: objectivity
                records.append(
                    {"text": premise, "value": value, "leaf": leaf, "direction": None, "reference_intensity": None,
                     "source_id": f"{arg_id}:{category}", "row": rows[idx]}
                )
        if unlabelled:
            sink.add(args.loc[unlabelled], "no value label for this argument", file=str(args_path), column="labels", rows=rows.loc[unlabelled])
        yield Candidates(f"touche23-{split}", "CC BY 4.0", args_path, len(args), _frame(records))


MFRC_FOUNDATIONS = {
    "care": "care-harm",
    "proportionality": "fairness-cheating",
    "equality": "fairness-cheating",
    "loyalty": "loyalty-betrayal",
    "authority": "authority-subversion",
    "purity": "sanctity-degradation",
}


@adapter("mfrc")
def mfrc(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    """MFRC: Reddit comments with majority foundation labels; presence only, so direction stays missing.

    Equality and proportionality both map to fairness-cheating (one candidate, with the leaf when only one is
    set). Comments labelled only "thin morality" or "non-moral" name no foundation and are rejected as such.
    """
    path = root / "mfrc" / "mfrc_train_full.csv"
    df = read_table(path, required=("text", *MFRC_FOUNDATIONS))
    rows = _rows(df)
    records, unlabelled = [], []
    for idx, record in df.iterrows():
        hits = [c for c in MFRC_FOUNDATIONS if str(record[c]) == "1"]
        if not hits:
            unlabelled.append(idx)
        for value in dict.fromkeys(MFRC_FOUNDATIONS[c] for c in hits):
            fairness = [c for c in hits if MFRC_FOUNDATIONS[c] == value and c in ("equality",)]
            leaf = "equality" if fairness and "proportionality" not in hits else ""
            records.append(
                {"text": str(record["text"]).strip(), "value": value, "leaf": leaf, "direction": None,
                 "reference_intensity": None, "source_id": f"mfrc:{rows[idx]}:{value}", "row": rows[idx]}
            )
    if unlabelled:
        sink.add(df.loc[unlabelled], "no moral foundation label (only thin morality or non-moral)", file=str(path), column="labels", rows=rows.loc[unlabelled])
    yield Candidates("mfrc", "CC BY 4.0", path, len(df), _frame(records))


@adapter("social_chem")
def social_chem(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    """Social Chemistry 101: actions with their foundations; direction is the sign of the moral judgment."""
    tax = get_taxonomy()
    for path in sorted((root / "social_chem_101").glob("sc101_*.csv")):
        df = read_table(path, required=("action", "rot-moral-foundations", "action-moral-judgment", "rot-id"))
        rows = _rows(df)
        records, unlabelled = [], []
        for idx, action, foundations, judgment, rot_id in zip(
            df.index, df["action"], df["rot-moral-foundations"], df["action-moral-judgment"], df["rot-id"]
        ):
            names = [f for f in str(foundations).split("|") if f.strip()]
            if not names:
                unlabelled.append(idx)
            try:
                direction = int(np.sign(float(judgment)))
            except ValueError:
                direction = judgment  # left for the schema to reject with the column named
            for name in names:
                records.append(
                    {"text": action, "value": tax.resolve(name), "leaf": "", "direction": direction,
                     "reference_intensity": None, "source_id": f"{rot_id}:{name}", "row": rows[idx]}
                )
        if unlabelled:
            sink.add(df.loc[unlabelled], "no moral foundation label", file=str(path), column="rot-moral-foundations", rows=rows.loc[unlabelled])
        yield Candidates("social_chem", "CC BY-SA 4.0", path, len(df), _frame(records))


def nearest_values(texts: list[str]) -> list[str]:
    """For each text, the value whose definition is nearest in the default base model's embedding space: the
    zero-shot value of texts that carry none (Moral Stories norms)."""
    from valueflow.models import CachedEncoder

    tax = get_taxonomy()
    encoder = CachedEncoder(batch_size=128)  # many stories share a norm: each distinct norm is encoded once
    definitions = encoder.encode([v.definition for v in tax.values])
    return [tax.values[i].name for i in (encoder.encode(texts) @ definitions.T).argmax(axis=1)]


@adapter("moral_stories")
def moral_stories(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    """Moral Stories norm-action pairs: the moral action supports, the immoral action opposes, a value.

    Moral Stories carries no value labels. The value is the one whose definition is nearest to the norm in the
    default base model's embedding space (a zero-shot choice, recorded in ``source_id`` as ``norm->value``).
    """
    path = root / "moral_stories" / "norm_actions_norm_distance_train.jsonl"
    df = read_table(path, required=("ID", "norm", "moral_action", "immoral_action"))
    nearest = nearest_values(df["norm"].astype(str).tolist())
    rows = _rows(df)
    records = []
    for idx, value in zip(df.index, nearest):
        for column, direction in (("moral_action", 1), ("immoral_action", -1)):
            records.append(
                {"text": df.at[idx, column], "value": value, "leaf": "", "direction": direction,
                 "reference_intensity": None, "source_id": f"{df.at[idx, 'ID']}:{column}:norm->{value}", "row": rows[idx]}
            )
    yield Candidates("moral_stories", "MIT", path, len(df), _frame(records))


@adapter("vidb_anchors")
def vidb_anchors(root: Path, sink: RejectSink) -> Iterator[Candidates]:
    """Texts from the published VIDB with their real intensities; direction is the sign of the intensity bin."""
    for path in sorted((root / "vidb_anchors").glob("*.csv")):
        df = read_table(path, required=("theory", "value", "intensity_bin", "text", "intensity"))
        rows = _rows(df)
        frame = pd.DataFrame(
            {
                "text": df["text"],
                "value": df["value"].map(get_taxonomy().resolve),
                "leaf": "",
                "direction": pd.to_numeric(df["intensity_bin"], errors="coerce").map(np.sign),
                "reference_intensity": df["intensity"],
                "source_id": rows.map(lambda r, s=path.stem: f"vidb-{s}:{r}"),
                "row": rows,
            },
            columns=CANDIDATE_COLUMNS,
        )
        yield Candidates("vidb_anchors", "VIDB (non-commercial research; source corpora licences)", path, len(df), frame)

