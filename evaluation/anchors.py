"""The anchor panel: VIDB texts with known intensities that new texts are ranked against.

An evaluator score is only as meaningful as its anchors, so the panel can come from any published VIDB version:

- a VIDB release folder (``release/vidb``, the pipeline's own; its ``data/full/*.parquet`` rows follow
  ``validation.schemas.VidbSchema`` and are validated on load),
- a Hub dataset id with an optional revision (``valueflow/vidb@v1.2.0`` or ``revision="v1.2.0"``), loaded with
  ``datasets.load_dataset`` (config ``full``),
- any CSV, TSV, JSONL or Parquet table with ``text``, ``value`` and ``intensity`` columns.

Rows that cannot serve as anchors (no text, no intensity, an intensity outside [-10, 10], a value name the
taxonomy does not know) are kept in :attr:`AnchorPanel.rejected` with the file, row, column and reason, never
dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from valueflow.io import InputError, normalise_text, read_table
from valueflow.taxonomy import UnknownValueError, get_taxonomy

DEFAULT_VIDB = Path("release/vidb")
DEFAULT_CONFIG = "full"
PANEL_COLUMNS = ["anchor_id", "text", "value", "intensity", "split"]


@dataclass
class AnchorPanel:
    """Anchors per value: ``table`` has columns anchor_id, text, value (canonical name), intensity, split.

    Build one with :meth:`from_source`; ``rejected`` holds the rows that could not be anchors, with reasons
    (columns of ``validation.rejects.REJECT_COLUMNS`` minus ``stage``).
    """

    table: pd.DataFrame
    source: str = ""
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["file", "row", "column", "reason", "record"]))

    def __post_init__(self) -> None:
        missing = [c for c in PANEL_COLUMNS if c not in self.table.columns]
        if missing:
            raise ValueError(f"anchor panel needs columns {PANEL_COLUMNS}; missing {missing}")
        self.table = self.table[PANEL_COLUMNS].reset_index(drop=True)
        self._by_value = {v: g.reset_index(drop=True) for v, g in self.table.groupby("value", sort=True)}

    # -- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_source(
        cls, source: str | Path | None = None, revision: str | None = None, split: str | None = None
    ) -> AnchorPanel:
        """Load a panel from a release folder, a Hub dataset id or a table file (read by :func:`read_vidb_records`).

        Args:
            source: ``None`` (the pipeline's ``release/vidb``), a VIDB release folder, a CSV/TSV/JSONL/Parquet
                file with text, value and intensity columns, a folder of seed CSVs (``reference_intensity``), or
                a Hub dataset id (``owner/name``, optionally ``owner/name@revision``).
            revision: a Hub revision (tag, branch or commit) to pin the published version; Hub ids only.
            split: keep only these splits (``"train"`` or a comma-separated list such as
                ``"train,validation"``); a table without a split column counts as all ``train``, and so does a
                folder of seed CSVs when no split is asked for (every seed text is an anchor).

        Raises:
            InputError: the source does not exist, cannot be read, or has no usable anchor at all.
        """
        record = read_vidb_records(source, revision=revision)
        raw = record.rows
        if record.kind == "seed" and not split:
            raw = raw.assign(split="train")
        panel = cls._from_raw(raw, record.label)
        if len(record.rejected):
            panel.rejected = pd.concat([record.rejected, panel.rejected], ignore_index=True)
        if split:
            wanted = [s.strip() for s in split.split(",") if s.strip()]
            panel = panel.subset(panel.table["split"].isin(wanted))
        if panel.table.empty:
            raise InputError(f"{record.label}: no usable anchors" + (f" in split {split!r}" if split else ""))
        return panel

    @classmethod
    def _from_raw(cls, raw: pd.DataFrame, label: str) -> AnchorPanel:
        tax = get_taxonomy()
        df = raw.reset_index(drop=True)
        reasons: list[tuple[int, str, str]] = []
        keep = np.ones(len(df), dtype=bool)
        text = df["text"].astype("string")
        bad_text = text.isna() | ~text.fillna("").str.contains(r"\S", regex=True)
        intensity = pd.to_numeric(df["intensity"], errors="coerce")
        bad_intensity = intensity.isna() | (intensity < -10) | (intensity > 10)
        canonical = []
        for i, name in enumerate(df["value"].astype("string").fillna("")):
            try:
                canonical.append(tax.resolve(name))
            except UnknownValueError:
                canonical.append("")
                reasons.append((i, "value", f"unknown value {name!r}"))
                keep[i] = False
        for i in np.flatnonzero(bad_text.to_numpy()):
            reasons.append((int(i), "text", "empty text"))
            keep[i] = False
        for i in np.flatnonzero(bad_intensity.to_numpy()):
            reasons.append((int(i), "intensity", f"intensity {df['intensity'].iloc[i]!r} is missing or outside [-10, 10]"))
            keep[i] = False
        split = df["split"].astype(str) if "split" in df.columns else pd.Series("train", index=df.index)
        ids = (
            df["text_id"].astype(str)
            if "text_id" in df.columns
            else pd.Series([f"anchor-{i}" for i in range(len(df))], index=df.index)
        )
        table = pd.DataFrame(
            {"anchor_id": ids, "text": text.astype(str), "value": canonical, "intensity": intensity.astype(float), "split": split}
        )[keep]
        rejected = pd.DataFrame(
            [
                {"file": label, "row": r, "column": c, "reason": why, "record": df.iloc[r].to_json(default_handler=str)}
                for r, c, why in sorted(reasons)
            ],
            columns=["file", "row", "column", "reason", "record"],
        )
        return cls(table=table, source=label, rejected=rejected)

    def subset(self, mask: pd.Series | np.ndarray) -> AnchorPanel:
        """A panel with only the rows where ``mask`` holds (e.g. without held-out texts)."""
        return AnchorPanel(self.table[np.asarray(mask, dtype=bool)], self.source, self.rejected)

    def without_texts(self, texts: object) -> AnchorPanel:
        """A panel without the given texts (compared in the project's duplicate-text form: NFKC, case, spacing).

        Scoring a text against a panel that contains that very text would leak its gold intensity.
        """
        drop = {normalise_text(t) for t in texts}  # type: ignore[union-attr]
        return self.subset(~self.table["text"].map(normalise_text).isin(drop))

    # -- lookups -------------------------------------------------------------------------------------------
    @property
    def values(self) -> list[str]:
        """The canonical value names that have at least one anchor."""
        return sorted(self._by_value)

    def resolve(self, value: str) -> str:
        """Canonical value name; raises ``UnknownValueError`` listing the valid values for an unknown name."""
        return get_taxonomy().resolve(value)

    def anchors(self, value: str) -> pd.DataFrame:
        """The anchors of one value (possibly empty for a known value that VIDB does not cover)."""
        name = self.resolve(value)
        return self._by_value.get(name, self.table.iloc[:0])

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class VidbRecord:
    """VIDB-shaped rows as read from one source, before any consumer's own checks.

    ``rows`` has ``text, value, intensity, split`` and ``text_id`` where the source has one; ``rejected`` the rows
    a release folder's schema refused (file, row, column, reason, record); ``kind`` is ``release``, ``seed``,
    ``table`` or ``hub``; ``label`` names the source in messages.
    """

    rows: pd.DataFrame
    rejected: pd.DataFrame
    kind: str
    label: str


def read_vidb_records(source: str | Path | None = None, *, revision: str | None = None,
                      config: str = DEFAULT_CONFIG) -> VidbRecord:
    """The one reader of VIDB panels and exemplar pools (evaluator anchors, steering exemplars, eval_steering).

    ``source``: ``None`` (``release/vidb``), a release folder (``data/<config>/*.parquet``, falling back to
    ``data/full`` and then to the folder's own ``*.parquet``; rows with every VIDB column are validated), a
    folder of seed CSVs (``reference_intensity`` as the intensity, a deterministic :func:`seed_split`), a table
    file with ``text, value`` and ``intensity`` (or ``reference_intensity``), or a Hub dataset id
    (``owner/name[@revision]``, config ``full``).
    """
    source_str = str(DEFAULT_VIDB if source is None else source)
    path = Path(source_str).expanduser()
    empty = pd.DataFrame(columns=["file", "row", "column", "reason", "record"])
    if path.is_dir() and not (path / "data").is_dir() and not any(path.glob("*.parquet")) and any(path.glob("*.csv")):
        return VidbRecord(_read_seed_folder(path), empty, "seed", str(path))
    if path.is_dir():
        raw, invalid = _read_release_folder(path, config)
        return VidbRecord(raw, invalid, "release", str(path))
    if path.is_file():
        raw = read_table(path, required=("text", "value"))
        if "intensity" not in raw.columns and "reference_intensity" in raw.columns:
            raw = raw.assign(intensity=raw["reference_intensity"])
        if "intensity" not in raw.columns:
            raise InputError(f"{path}: missing column(s) intensity (or reference_intensity)")
        return VidbRecord(raw, empty, "table", str(path))
    if source is None:
        raise InputError(
            f"{path}: VIDB release folder not found; run `dvc repro build_vidb` or pass --vidb "
            "(a release folder, a Hub dataset id or a table with text, value, intensity columns)"
        )
    if _looks_like_hub_id(source_str):
        repo, _, at_rev = source_str.partition("@")
        return VidbRecord(_read_hub(repo, revision or at_rev or None), empty, "hub", source_str)
    raise InputError(f"{source_str}: not found (not a file, a folder or a Hub dataset id owner/name)")


def _read_seed_folder(folder: Path) -> pd.DataFrame:
    """The seed corpus's labelled CSVs as VIDB rows: texts with a reference intensity, a deterministic split."""
    from valueflow.io import stable_text_id

    files = sorted(folder.glob("*.csv"))
    df = pd.concat([read_table(f, required=("text", "value", "reference_intensity")) for f in files], ignore_index=True)
    df = df.assign(intensity=pd.to_numeric(df["reference_intensity"].replace("", None), errors="coerce"))
    df = df.dropna(subset=["intensity"])
    df["text_id"] = [stable_text_id(str(v), str(t)) for v, t in zip(df["value"], df["text"])]
    df["split"] = seed_split(df)
    return df


def seed_split(df: pd.DataFrame) -> pd.Series:
    """A deterministic held-out split of a small corpus without one: per (value, intensity bin), the text with the
    smallest id is ``test``, the rest ``train``. The oracle answers with ``test`` texts while the evaluator's anchors
    (and a probe judge) use ``train``, so a control's answer is never scored against itself."""
    from evaluation.prompts import intensity_level

    level = df["intensity"].astype(float).map(intensity_level)
    first = df.assign(_level=level).groupby(["value", "_level"])["text_id"].transform("min")
    return pd.Series(["test" if a == b else "train" for a, b in zip(df["text_id"], first)], index=df.index)


def _looks_like_hub_id(source: str) -> bool:
    repo = source.partition("@")[0]
    parts = repo.split("/")
    return len(parts) == 2 and all(parts) and not source.startswith((".", "/", "~")) and Path(parts[0]).suffix == ""


def _read_release_folder(folder: Path, config: str = DEFAULT_CONFIG) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``data/<config>/*.parquet`` of a release folder (else ``data/full``), validated as VIDB rows, and the rows
    that are not valid. The split comes from the rows (or the file name when a file has no split column).
    """
    from validation.rejects import RejectSink, validate_rows
    from validation.schemas import VidbSchema

    files = []
    for name in dict.fromkeys((config, DEFAULT_CONFIG)):
        files = sorted((folder / "data" / name).glob("*.parquet"))
        if files:
            break
    if not files:
        # a plain folder of tables is accepted too (e.g. the Hub snapshot of another layout)
        files = sorted(folder.glob("*.parquet"))
    if not files:
        raise InputError(f"{folder}: no data/{DEFAULT_CONFIG}/*.parquet (is this a VIDB release folder?)")
    frames, invalid = [], []
    for f in files:
        df = pd.read_parquet(f)
        if "split" not in df.columns:
            df["split"] = f.stem
        missing = [c for c in ("text", "value", "intensity") if c not in df.columns]
        if missing:
            raise InputError(f"{f}: missing column(s) {', '.join(missing)}")
        if all(c in df.columns for c in VidbSchema.to_schema().columns):
            sink = RejectSink("anchors")
            df = validate_rows(df, VidbSchema, sink, file=str(f))
            invalid.append(sink.frame().drop(columns="stage"))
        frames.append(df)
    bad = pd.concat(invalid, ignore_index=True) if invalid else pd.DataFrame(columns=["file", "row", "column", "reason", "record"])
    return pd.concat(frames, ignore_index=True), bad


def _read_hub(repo: str, revision: str | None) -> pd.DataFrame:
    """All splits of the ``full`` config of a Hub dataset (falls back to the default config)."""
    import datasets

    from valueflow.hub import hub_limits, hub_timeout, with_retries

    def load():
        try:
            return datasets.load_dataset(repo, DEFAULT_CONFIG, revision=revision)
        except ValueError:  # no config named "full": a plain table dataset
            return datasets.load_dataset(repo, revision=revision)

    # a Hub that never answers or answers 5xx: bounded, then one line (a missing repo or revision: one line at once)
    timeout_s, attempts = hub_limits()
    with hub_timeout(timeout_s):
        ds = with_retries(f"{repo}" + (f"@{revision}" if revision else "") + ": loading from the Hub", load, attempts,
                          error=InputError)
    frames = []
    for split_name, part in ds.items():
        df = part.to_pandas()
        if "split" not in df.columns:
            df["split"] = str(split_name)
        frames.append(df)
    raw = pd.concat(frames, ignore_index=True)
    missing = [c for c in ("text", "value", "intensity") if c not in raw.columns]
    if missing:
        raise InputError(f"{repo}: missing column(s) {', '.join(missing)}")
    return raw
