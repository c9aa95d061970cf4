"""Value profiles: for each text, its nearest values per theory, with similarity and direction.

Each value has a support prototype (the value's definition plus its supporting anchor texts) and, when the model
folder ships opposing anchor texts (``hives_anchors.json``), an oppose prototype. A text's similarity to a value
is the larger of its cosines to the two prototypes; its direction is +1 when the support prototype is nearer,
-1 when the oppose prototype is nearer (0 is never guessed; without an oppose prototype the direction is +1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from valueflow.taxonomy import THEORIES, get_taxonomy

PROFILE_COLUMNS = ["row", "text", "theory", "rank", "value", "similarity", "direction"]


def value_prototypes(model, model_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per (value, direction) prototype: theory, value, direction, embedding (normalised mean)."""
    tax = get_taxonomy()
    anchors: dict[str, list[str]] = {}
    if model_dir is not None and (Path(model_dir) / "hives_anchors.json").exists():
        anchors = json.loads((Path(model_dir) / "hives_anchors.json").read_text(encoding="utf-8"))["values"]
    groups = []  # (value, direction, texts)
    for v in tax.values:
        for direction in (1, -1):
            texts = anchors.get(f"{v.name}|{direction:+d}")
            if texts is None:
                texts = [f"{v.name.replace('_', ' ')}: {v.definition}"] if direction == 1 else []
            if texts:
                groups.append((v, direction, texts))
    emb = model.encode([t for *_, texts in groups for t in texts], normalize_embeddings=True, convert_to_numpy=True)
    records, start = [], 0
    for v, direction, texts in groups:
        mean = emb[start : start + len(texts)].mean(axis=0)
        start += len(texts)
        records.append({"theory": v.theory, "value": v.name, "direction": direction,
                        "embedding": mean / (np.linalg.norm(mean) + 1e-12)})
    return pd.DataFrame(records)


def value_profiles(model, texts: list[str], model_dir: str | Path | None = None, top: int = 3,
                   prototypes: pd.DataFrame | None = None, embeddings: np.ndarray | None = None) -> pd.DataFrame:
    """``PROFILE_COLUMNS``: ``top`` nearest values per theory for each text (rank 1 = nearest; ties by value name).

    ``embeddings``: the texts' normalised embeddings when the caller already has them (else they are encoded).
    """
    protos = prototypes if prototypes is not None else value_prototypes(model, model_dir)
    texts = list(texts)
    emb = embeddings if embeddings is not None else model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    sims = emb @ np.stack(protos["embedding"].to_numpy()).T  # (texts, prototypes)
    proto_value = protos["value"].to_numpy()
    proto_direction = protos["direction"].to_numpy()
    rows = np.arange(len(texts))
    frames = []
    for theory in THEORIES:
        values = sorted(set(protos.loc[protos["theory"] == theory, "value"]))
        if not values:
            continue
        # per value: the nearer of its prototypes (support, oppose) gives the similarity and the direction
        value_sim = np.empty((len(texts), len(values)))
        value_dir = np.empty((len(texts), len(values)), dtype=int)
        for k, value in enumerate(values):
            idx = np.flatnonzero(proto_value == value)
            nearest = idx[np.argmax(sims[:, idx], axis=1)]
            value_sim[:, k], value_dir[:, k] = sims[rows, nearest], proto_direction[nearest]
        order = np.argsort(-value_sim, axis=1, kind="stable")[:, :top]  # values are sorted: ties go by name
        n = order.shape[1]
        frames.append(pd.DataFrame({
            "row": np.repeat(rows + 1, n),
            "text": np.repeat(np.asarray(texts, dtype=object), n),
            "theory": theory,
            "rank": np.tile(np.arange(1, n + 1), len(texts)),
            "value": np.asarray(values)[order].ravel(),
            "similarity": np.round(np.take_along_axis(value_sim, order, axis=1).ravel(), 4),
            "direction": np.take_along_axis(value_dir, order, axis=1).ravel(),
        }))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PROFILE_COLUMNS)
    return out[PROFILE_COLUMNS].sort_values(["row", "theory", "rank"], kind="stable").reset_index(drop=True)


def project_2d(emb: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (deterministic: SVD with a fixed sign convention)."""
    centred = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2].copy()
    for c in comps:  # the sign of a singular vector is arbitrary: make its largest entry positive
        c *= np.sign(c[np.argmax(np.abs(c))]) or 1.0
    return centred @ comps.T


def plot_value_space(emb: np.ndarray, theories: list[str], values: list[str], path: str | Path, title: str = "") -> Path:
    """Scatter of a 2-D projection, one panel per theory, coloured by value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from valueflow.io import atomic_path

    xy = project_2d(emb)
    theories_arr, values_arr = np.asarray(theories), np.asarray(values)
    present = [t for t in THEORIES if (theories_arr == t).any()]
    fig, axes = plt.subplots(1, max(1, len(present)), figsize=(5 * max(1, len(present)), 4.6), squeeze=False)
    for ax, theory in zip(axes[0], present):
        mask = theories_arr == theory
        names = sorted(set(values_arr[mask]))
        cmap = plt.get_cmap("tab20", max(1, len(names)))
        for k, name in enumerate(names):
            m = mask & (values_arr == name)
            ax.scatter(xy[m, 0], xy[m, 1], s=10, color=cmap(k), label=name, alpha=0.8)
        ax.set_title(theory)
        ax.legend(fontsize=6, markerscale=1.5, loc="best")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return path


def profile_file(file: str | Path, model: str = "release/hives", top: int = 3, out: str | Path | None = None,
                 plot: str | Path | None = None) -> pd.DataFrame:
    """``valueflow profile``: the value profiles (:data:`PROFILE_COLUMNS`) of a table's ``text`` column.

    ``out`` (``.parquet``, else CSV) receives the profiles; ``plot`` a 2-D plot of the texts among the value
    prototypes, each text drawn in the panel of its nearest theory.
    """
    import warnings

    from valueflow.io import InputError, check_outputs, read_table, write_parquet, write_text
    from valueflow.models import clip_to_window, load_sentence_model

    check_outputs({"--out": out, "--plot": plot}, {"FILE": file, "--model": model if Path(model).exists() else None})
    texts = read_table(file, required=("text",))["text"].astype(str).tolist()
    if not texts:
        raise InputError(f"{file}: no texts to profile (the file has only a header)")
    st = load_sentence_model(model)
    model_dir = Path(model) if Path(model).is_dir() else None
    protos = value_prototypes(st, model_dir)
    clipped, n_long = clip_to_window(st, texts)  # bounded memory for huge texts, and said, not silent
    if n_long:
        warnings.warn(f"{n_long} of {len(texts)} text(s) are longer than the model window ({st.max_seq_length} "
                      "tokens) and were truncated to it", stacklevel=2)
    emb = st.encode(clipped, normalize_embeddings=True, convert_to_numpy=True)
    profiles = value_profiles(st, texts, top=top, prototypes=protos, embeddings=emb)
    if out is not None:
        if Path(out).suffix.lower() == ".parquet":
            write_parquet(profiles, out)
        else:
            write_text(profiles.to_csv(index=False), out)
    if plot is not None:
        all_emb = np.concatenate([np.stack(protos["embedding"].to_numpy()), emb])
        theories = protos["theory"].tolist()
        values = protos["value"].tolist()
        nearest = profiles[profiles["rank"] == 1].sort_values("similarity", ascending=False).drop_duplicates("row").sort_values("row")
        theories += nearest["theory"].tolist()
        values += ["(text)"] * len(nearest)
        plot_value_space(all_emb, theories, values, plot, title="Texts among HiVES value prototypes")
    return profiles
