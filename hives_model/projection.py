"""The projection recipe of HiVES: a ``Dense`` module trained on the frozen base encoder's embeddings.

Why. On a CPU, full fine-tuning sees a few thousand texts in the time budget; a linear map on cached embeddings
sees every real labelled text hundreds of times in seconds, with the same losses (they take embeddings and label
vectors, not texts). The encoder pass over the training texts is the whole cost, and it is paid once.

The map starts as the PCA of the training embeddings (the base space, reduced to ``dim`` dimensions), so step 0
is the base encoder's geometry and training only moves it where the labels ask. The model keeps its base
modules and gains ``Dense`` + ``Normalize``: built-in sentence-transformers modules, so the folder loads with
``SentenceTransformer(path)`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from valueflow.io import InputError

ACTIVATIONS = ("identity", "tanh")


class ProjectionConfig(BaseModel):
    """``train_hives.projection``: the Dense module trained on frozen embeddings (``recipe: projection``)."""

    model_config = ConfigDict(extra="forbid")

    dim: int = Field(256, ge=2)  # width of the HiVES space (at most the base width: the PCA start needs it)
    activation: Literal["identity", "tanh"] = "identity"
    steps: int = Field(600, ge=1)
    batch_size: int = Field(64, ge=2)  # the label-similarity loss compares every pair of a batch
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


def pca_start(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """(dim, d) rows of the top principal directions: the Dense weight that starts as the base space."""
    centred = (embeddings - embeddings.mean(axis=0)).astype(np.float64)
    _, vectors = np.linalg.eigh(centred.T @ centred)  # (d, d) covariance: seconds where an SVD of (n, d) takes minutes
    return np.ascontiguousarray(vectors[:, ::-1][:, :dim].T, dtype=np.float32)


def train_projection(embeddings: np.ndarray, labels: np.ndarray, terms: dict[str, tuple[object, float]],
                     cfg: ProjectionConfig, *, sampler_options: dict | None = None, seed: int = 42,
                     evaluate: Callable[[int, object], None] | None = None, eval_every: int = 0):
    """Train a ``Dense`` on ``embeddings`` (n, d; the base model's normalised output) with the weighted loss
    ``terms`` (name -> (loss with ``loss_from_embeddings``, weight)); return (dense, loss curve).

    Batches come from :class:`hives_model.sampler.HierarchicalBatchSampler` (``sampler_options``), as in full
    training, so every anchor meets its positives. ``evaluate(step, dense)`` is called every ``eval_every`` steps
    and at the end (a learning curve).
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense
    from torch import nn

    from hives_model.sampler import HierarchicalBatchSampler

    n, d = embeddings.shape
    if cfg.dim > d:  # a user's setting against the chosen base: one error line, as for any bad input
        raise InputError(f"train_hives.projection.dim {cfg.dim} is wider than the base embedding ({d}): the PCA start needs dim <= {d}")
    torch.manual_seed(seed)
    activation = nn.Tanh() if cfg.activation == "tanh" else nn.Identity()
    dense = Dense(d, cfg.dim, bias=True, activation_function=activation,
                  init_weight=torch.from_numpy(pca_start(embeddings, cfg.dim)), init_bias=torch.zeros(cfg.dim))
    weighted = [(loss, float(w)) for loss, w in terms.values() if w]
    if not weighted:
        raise ValueError("the projection needs at least one loss with a nonzero weight")
    sampler = HierarchicalBatchSampler({"label": labels}, batch_size=min(cfg.batch_size, n), seed=seed,
                                       **(sampler_options or {}))
    x, y = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)), torch.from_numpy(labels)
    optimiser = torch.optim.AdamW(dense.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    curve: list[tuple[int, float]] = []
    epoch, batches = 0, iter(sampler)
    for step in range(1, cfg.steps + 1):
        batch = next(batches, None)
        if batch is None:  # a new epoch: the sampler reseeds with seed + epoch
            epoch += 1
            sampler.set_epoch(epoch)
            batches = iter(sampler)
            batch = next(batches)
        index = torch.as_tensor(batch)
        z = dense({"sentence_embedding": x[index]})["sentence_embedding"]
        loss = sum(w * term.loss_from_embeddings(z, y[index]) for term, w in weighted)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % max(1, cfg.steps // 20) == 0 or step == cfg.steps:
            curve.append((step, round(loss.item(), 4)))
        if evaluate is not None and eval_every and (step % eval_every == 0 or step == cfg.steps):
            with torch.no_grad():
                evaluate(step, dense)
    dense.eval()
    return dense, curve


def project(dense, embeddings: np.ndarray) -> np.ndarray:
    """The normalised HiVES embeddings of base embeddings (what ``Dense`` + ``Normalize`` do inside the model)."""
    import torch

    with torch.no_grad():
        z = dense({"sentence_embedding": torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))})
    z = z["sentence_embedding"].numpy()
    return z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)


def attach(model, dense) -> None:
    """Append the trained ``Dense`` and a ``Normalize`` to the model (after a ``Normalize`` when the base ends
    without one: the Dense was trained on normalised embeddings)."""
    from sentence_transformers.sentence_transformer.modules import Normalize

    if not isinstance(model[-1], Normalize):
        model.append(Normalize())
    model.append(dense)
    model.append(Normalize())
