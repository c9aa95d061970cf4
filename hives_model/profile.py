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
    records = []
    for v in tax.values:
        for direction in (1, -1):
            texts = anchors.get(f"{v.name}|{direction:+d}")
            if texts is None:
                texts = [f"{v.name.replace('_', ' ')}: {v.definition}"] if direction == 1 else []
            if not texts:
                continue
            emb = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).mean(axis=0)
            records.append({"theory": v.theory, "value": v.name, "direction": direction,
                            "embedding": emb / (np.linalg.norm(emb) + 1e-12)})
    return pd.DataFrame(records)


def value_profiles(model, texts: list[str], model_dir: str | Path | None = None, top: int = 3,
                   prototypes: pd.DataFrame | None = None) -> pd.DataFrame:
    """``PROFILE_COLUMNS``: ``top`` nearest values per theory for each text (rank 1 = nearest)."""
    protos = prototypes if prototypes is not None else value_prototypes(model, model_dir)
    emb = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
    proto_emb = np.stack(protos["embedding"].to_numpy())
    sims = emb @ proto_emb.T  # (texts, prototypes)
    out = []
    for theory in THEORIES:
        sub = protos.index[protos["theory"] == theory]
        values = list(dict.fromkeys(protos.loc[sub, "value"]))
        for t, text in enumerate(texts):
            best = []
            for value in values:
                idx = protos.index[(protos["value"] == value)]
                j = idx[np.argmax(sims[t, idx])]
                best.append((float(sims[t, j]), value, int(protos.at[j, "direction"])))
            best.sort(key=lambda b: (-b[0], b[1]))
            for rank, (sim, value, direction) in enumerate(best[:top], start=1):
                out.append({"row": t + 1, "text": text, "theory": theory, "rank": rank, "value": value,
                            "similarity": round(sim, 4), "direction": direction})
    return pd.DataFrame(out, columns=PROFILE_COLUMNS).sort_values(["row", "theory", "rank"], kind="stable").reset_index(drop=True)


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
