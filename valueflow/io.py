"""File helpers every stage shares: atomic writes, tolerant-but-loud table reading, metrics, stable ids."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd


class InputError(ValueError):
    """A whole input file cannot be used; the message names the file and the reason.

    Row-level problems are not raised: they go to the rejected-rows sink (validation.rejects) instead.
    """


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and move it into place only if the block succeeds.

    A stage killed half-way therefore never leaves a truncated output that DVC or the next stage would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty sibling folder and swap it in for ``path`` only if the block succeeds.

    Model and release folders are read as a whole (a model loads all its files), so a half-written one must
    never replace a good one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj: object, path: str | Path) -> Path:
    return write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n", path)


def _json_default(obj: object) -> object:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_metrics(stage: str, metrics: dict, root: str | Path = ".") -> Path:
    """``metrics/<stage>.json``: the stage's counts and timings, read by cards and ``dvc metrics show``."""
    return write_json(metrics, Path(root) / "metrics" / f"{stage}.json")


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_table(path: str | Path, *, required: tuple[str, ...] = (), sep: str | None = None) -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet as strings-as-``str``; refuse an unusable file with a clear reason.

    Refused (``InputError``): a missing file, an empty file, a file that is not UTF-8 (with the byte offset), an
    unknown format, and a file without the ``required`` columns. The file itself is never changed.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: unsupported format {suffix!r}; use one of {', '.join(TABLE_SUFFIXES)}")
    if suffix != ".parquet":
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise InputError(f"{path}: not UTF-8 text (byte {err.start}, line {line}): {err.reason}") from None
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
        else:
            sep = sep or ("\t" if suffix == ".tsv" else ",")
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: cannot be parsed as {suffix[1:]}: {err}") from None
    if df.empty and not len(df.columns):
        raise InputError(f"{path}: file has no columns")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}"
        )
    return df


def normalise_text(text: str) -> str:
    """The form exact duplicates are detected on: Unicode NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", str(text)).casefold().split())


def stable_text_id(source: str, text: str) -> str:
    """Stable across runs and machines: a hash of the source and the normalised text."""
    return hashlib.sha1(f"{source}\x1f{normalise_text(text)}".encode()).hexdigest()[:16]


def held_out_by_text_hash(texts: pd.Series, fraction: float = 0.2) -> pd.Series:
    """A fixed share of texts, chosen by a hash of the normalised text: the same held-out part on every machine,
    and a text is held out under every label it carries (so it never sits in training under another)."""
    return texts.map(lambda t: int(hashlib.sha1(normalise_text(t).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF) < fraction


def seeded_rng(*parts: object) -> np.random.Generator:
    """A generator seeded by a hash of ``parts``: the same draws for the same inputs on every machine and run."""
    digest = hashlib.sha1("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def refdata_dir() -> Path | None:
    """The shared real reference data (``$VALUEFLOW_REFDATA`` or ``../shared/data``), or None when absent."""
    env = os.environ.get("VALUEFLOW_REFDATA")
    candidates = [Path(env)] if env else [Path.cwd().parent / "shared" / "data", PROJECT_ROOT.parent / "shared" / "data"]
    return next((p for p in candidates if p.is_dir()), None)


PROJECT_ROOT = Path(__file__).resolve().parent.parent
