"""File helpers every stage shares: atomic writes, tolerant-but-loud table reading, metrics, stable ids."""

from __future__ import annotations

import contextlib
import errno
import glob
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


def warn(message: str) -> None:
    """One ``warning:`` line on stderr for a problem that does not stop the run (redacted like every message).

    Through ``tqdm.write``, so a progress bar on the terminal is moved out of the line's way.
    """
    import sys

    from tqdm.auto import tqdm

    from valueflow.redact import redact

    tqdm.write(f"warning: {redact(message)}", file=sys.stderr)


class InputError(ValueError):
    """A whole input file cannot be used; the message names the file and the reason.

    Row-level problems are not raised: they go to the rejected-rows sink (validation.rejects) instead.
    """


class ConfigError(InputError):
    """A setting (a params key, an option, an endpoint's key policy) cannot be used; the message names it and why."""


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
        if Path(tmp).is_file():  # mkstemp makes 0600: a release file must be readable like any other
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        full = disk_full_errno(err)
        if full is None:
            raise
        # writers (pyarrow) often say it without an errno or a file name: name the output the user knows
        raise OSError(full, os.strerror(full), str(path)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


#: a full disk, a quota, a file-size limit: no input is at fault, and the old output stays whole
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def disk_full_errno(err: OSError) -> int | None:
    """The errno when ``err`` says the disk (or a quota or size limit) is full, else None; also when a library
    only says so in its message (pyarrow: "[errno 27] File too large")."""
    if err.errno in DISK_FULL_ERRNOS:
        return err.errno
    text = str(err)
    return next((e for e in DISK_FULL_ERRNOS if os.strerror(e) in text or f"errno {e}]" in text), None)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty sibling folder and swap it in for ``path`` only if the block succeeds.

    Model and release folders are read as a whole (a model loads all its files), so a half-written one must
    never replace a good one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():  # a swap was killed between its two renames: the old folder is whole
        old.rename(path)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*"):  # folders of builds that were killed midway
        if stale != old and stale.is_dir() and not stale.name.endswith(".tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        _normal_modes(tmp)
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


def _umask() -> int:
    global _UMASK
    if _UMASK is None:  # read once: setting it to read it is not thread-safe
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def _normal_modes(folder: Path) -> None:
    """0755 folders and 0644 files (less the umask): mkdtemp and mkstemp make them private to the builder."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o777 & ~mask)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, (0o777 if os.access(p, os.X_OK) else 0o666) & ~mask)


def check_writable(path: str | Path) -> Path:
    """Refuse an output path that cannot be written, before any work is done (not after an hour of judge calls)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name")
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise InputError(f"{path}: cannot be written: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot be written: no permission to write in {parent}")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve()) and path.resolve() != folder.resolve()
    except OSError:
        return False


def check_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> None:
    """Before any work: no output (out, log, store, rejected rows, metrics, receipt) is one of the inputs, and
    every output file can be written. ``outputs`` and ``inputs`` map what a path is (``--out``, ``texts``) to the
    path; None entries are skipped.

    One check for every command, so ``--out`` naming the input file is exit 2 with nothing written instead of the
    texts replaced by scores. Paths are compared resolved (links, ``..``), by inode where both exist.
    """
    given_in = {name: Path(p) for name, p in inputs.items() if p is not None}
    seen: dict[Path, str] = {}
    for name, p in outputs.items():
        if p is None:
            continue
        out = Path(p)
        folder = name.endswith(("store", "folder"))
        for in_name, inp in given_in.items():
            if _same_file(out, inp):
                raise InputError(f"{out}: {name} is the input {in_name}; choose another path (nothing was written)")
            if folder and _inside(inp, out):  # a folder output is swapped in whole: what it held would be gone
                raise InputError(f"{out}: {name} holds the input {in_name} ({inp}); choose another folder "
                                 "(nothing was written)")
        for other, other_name in seen.items():
            if _same_file(out, other):
                raise InputError(f"{out}: {name} and {other_name} are the same file; choose another path (nothing was written)")
        seen[out] = name
        if not folder:  # a folder output (a store, a release) is made as needed
            check_writable(out)


def read_part_or_drop(path: Path) -> pd.DataFrame | None:
    """A Parquet part of a store (collected rankings, a window design), or None when it cannot be read.

    A part that a kill or a full disk cut short (or that is not Parquet at all) is set aside as
    ``<name>.corrupt`` with a warning naming it, so its windows are asked again instead of the run dying on it.
    """
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        aside = path.with_name(path.name + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        warn(f"{path}: unreadable ({type(err).__name__}: {str(err)[:120]}); set aside as {aside.name}, "
             "its windows are asked again")
        return None


@contextlib.contextmanager
def one_writer(folder: str | Path, what: str) -> Iterator[None]:
    """Hold the lock of ``folder`` (a store) while the block runs: one writer per store.

    A second process on the same store says who holds it and waits; when it gets the lock it reads the store
    afresh, so it finds what the first one collected and asks nothing twice.
    """
    import datetime
    import socket

    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock, holder = FileLock(str(folder / ".lock")), folder / ".lock.holder"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = holder.read_text(encoding="utf-8").strip() if holder.is_file() else "another process"
        warn(f"{folder}: {what} is in use by {who}; waiting until it is done")
        lock.acquire()
    try:
        since = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        holder.write_text(f"pid {os.getpid()} on {socket.gethostname()} since {since}\n", encoding="utf-8")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj: object, path: str | Path) -> Path:
    """Metrics, receipts, caches: redacted on the way out (a failure reason in metrics may quote a server)."""
    from valueflow.redact import redact

    return write_text(redact(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default)) + "\n", path)


def _json_default(obj: object) -> object:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def pipeline_outputs() -> frozenset[str]:
    """Every output path ``dvc.yaml`` declares (relative to the project root): the pipeline's own files."""
    global _PIPELINE_OUTPUTS
    if _PIPELINE_OUTPUTS is None:
        import yaml

        spec = PROJECT_ROOT / "dvc.yaml"
        stages = (yaml.safe_load(spec.read_text(encoding="utf-8")) or {}).get("stages", {}) if spec.exists() else {}
        outs = set()
        for stage in stages.values():
            for entry in stage.get("outs", []) or []:
                outs.update([entry] if isinstance(entry, str) else entry)
        _PIPELINE_OUTPUTS = frozenset(os.path.normpath(o) for o in outs)
    return _PIPELINE_OUTPUTS


_PIPELINE_OUTPUTS: frozenset[str] | None = None


def stage_records(stage: str, out: str | Path | None, root: str | Path = ".", metrics_name: str | None = None) -> tuple[Path, Path]:
    """Where a stage run writes its metrics and its rejected rows: ``(metrics file, rejected-rows file)``.

    A pipeline run (its main output ``out`` is the one ``dvc.yaml`` declares, under ``root``) writes
    ``metrics/<name>.json`` and ``data/rejected/<stage>.parquet`` there. An ad-hoc run (``--out`` or ``--params``
    pointing elsewhere) writes ``<out>.metrics.json`` and ``<out>.rejected.parquet`` beside its output instead:
    it must never overwrite the pipeline's records (``dvc checkout`` cannot restore uncached metrics, and the next
    stage would read foreign rejected rows). Decided here once, for every stage.
    """
    root = Path(root)
    name = metrics_name or stage
    pipeline = (root / "metrics" / f"{name}.json", root / "data" / "rejected" / f"{stage}.parquet")
    if out is None:
        return pipeline
    target = Path(out) if Path(out).is_absolute() else root / out
    try:
        relative = os.path.normpath(os.path.relpath(os.path.abspath(target), os.path.abspath(root)))
    except ValueError:  # another drive (Windows)
        relative = ""
    if relative in pipeline_outputs():
        return pipeline
    return target.with_name(target.name + ".metrics.json"), target.with_name(target.name + ".rejected.parquet")


def write_metrics(name: str, metrics: dict, root: str | Path = ".", out: str | Path | None = None) -> Path:
    """The stage's counts and timings, read by cards and ``dvc metrics show`` (where: :func:`stage_records`).

    ``name`` names the metrics file of a pipeline run (``metrics/<name>.json``); ``out`` is the run's main output.
    """
    return write_json(metrics, stage_records(name, out, root)[0])


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file; else one clear :class:`InputError`. A FIFO or a device would block or
    never end when read, a folder is a typo: each is refused before it is opened."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what}")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file (a FIFO, socket or device); give a {what}")
    return path


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_table(path: str | Path, *, required: tuple[str, ...] = (), sep: str | None = None) -> pd.DataFrame:
    """Read CSV, TSV, JSONL or Parquet as strings-as-``str``; refuse an unusable file with a clear reason.

    Refused (``InputError``): a missing file, an empty file, a file that is not UTF-8 (with the byte offset), an
    unknown format, and a file without the ``required`` columns. The file itself is never changed.
    """
    path = regular_file(path)
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


def held_out_by_text_hash(texts: pd.Series, fraction: float = 0.2, part: int = 0) -> pd.Series:
    """A fixed share of texts, chosen by a hash of the normalised text: the same held-out part on every machine,
    and a text is held out under every label it carries (so it never sits in training under another).

    ``part`` k takes the k-th share of that size (hash in [k x fraction, (k + 1) x fraction)): the first is the
    part every script holds out; the others serve cross-fitting, or a choice among rows that lack the first."""
    share = texts.map(lambda t: int(hashlib.sha1(normalise_text(t).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF)
    return (share >= part * fraction) & (share < (part + 1) * fraction)


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
