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

    # labels: per-label logistic head (Dense + sigmoid, fitted like a one-vs-rest logistic regression), its
    # probabilities mapped by a fixed Dense onto the oracle's layout; contrastive: one Dense trained with the label
    # objective of stage 1 (train_hives.hierarchical_weight / label_similarity_weight)
    head: Literal["labels", "contrastive"] = "labels"
    centre: float = Field(0.7, ge=0, le=1)  # labels: share of the mean training probability subtracted (spreads the space)
    dim: int = Field(256, ge=2)  # contrastive: width of the HiVES space (at most the base width: the PCA start needs it)
    activation: Literal["identity", "tanh"] = "identity"
    steps: int = Field(600, ge=1)
    batch_size: int = Field(64, ge=2)  # the label-similarity loss compares every pair of a batch
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)  # L2 penalty (labels: about 1/texts, a logistic regression's C = 1)


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


def train_label_head(embeddings: np.ndarray, labels: np.ndarray, cfg: ProjectionConfig) -> list:
    """Two ``Dense`` modules: the probability of each (value path, direction) label of the training rows (a
    sigmoid head fitted as one-vs-rest logistic regressions with an L2 penalty, by L-BFGS on all texts at once),
    then a fixed map of those probabilities onto the oracle's layout (``hives_model.data.oracle_embeddings``), less
    ``centre`` x the mean training probability.

    Why. The metrics rank texts by the labels they share, and the oracle encodes exactly that; an embedding can at
    best encode the labels it predicts (``benchmarks/hives_label_noise.py``), so the head predicts them and embeds
    the prediction the oracle's way. Probabilities are all positive, so uncentred every text leans on the
    common labels (mean cosine 0.81 on Touché23); subtracting 0.7 x their mean spreads the space (0.32) at no cost.
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense
    from torch import nn

    from hives_model.data import OTHER, L, NO_LABEL, oracle_embeddings

    own = labels[:, [L["prefix_3"], L["direction"]]]
    units, unit_of_row = np.unique(own, axis=0, return_inverse=True)
    keys, first = np.unique(labels[:, L["text_key"]], return_index=True)
    text_of_row = np.searchsorted(keys, labels[:, L["text_key"]])
    target = np.zeros((len(keys), len(units)), dtype=np.float32)
    target[text_of_row, unit_of_row.ravel()] = 1.0
    x = torch.from_numpy(np.ascontiguousarray(embeddings[first], dtype=np.float32))
    y = torch.from_numpy(target)
    linear = nn.Linear(x.shape[1], len(units))
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=cfg.steps, line_search_fn="strong_wolfe")
    n = len(x)

    def closure():
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(linear(x), y, reduction="sum") / n
        loss = loss + cfg.weight_decay * (linear.weight ** 2).sum() / 2
        loss.backward()
        return loss

    optimiser.step(closure)
    # one oracle vector per unit: a row of that label alone (no other labels of its text)
    single = labels[[int(np.flatnonzero(unit_of_row.ravel() == u)[0]) for u in range(len(units))]].copy()
    for columns in OTHER.values():
        single[:, columns] = NO_LABEL
    layout = oracle_embeddings(single)  # (units, oracle dims)
    with torch.no_grad():
        mean_probability = torch.sigmoid(linear(x)).mean(dim=0).numpy()
    to_oracle = torch.from_numpy(np.ascontiguousarray(layout.T, dtype=np.float32))
    offset = torch.from_numpy((-cfg.centre * mean_probability @ layout).astype(np.float32))
    probabilities = Dense(x.shape[1], len(units), activation_function=nn.Sigmoid(),
                          init_weight=linear.weight.detach().clone(), init_bias=linear.bias.detach().clone())
    return [probabilities, Dense(len(units), layout.shape[1], activation_function=nn.Identity(),
                                 init_weight=to_oracle, init_bias=offset)]


def project(modules, embeddings: np.ndarray) -> np.ndarray:
    """The normalised HiVES embeddings of base embeddings (what the head modules + ``Normalize`` do in the model)."""
    import torch

    features = {"sentence_embedding": torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))}
    with torch.no_grad():
        for module in modules if isinstance(modules, list) else [modules]:
            features = module(features)
    z = features["sentence_embedding"].numpy()
    return z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)


def attach(model, modules) -> None:
    """Append the trained head and a ``Normalize`` to the model (after a ``Normalize`` when the base ends without
    one: the head was trained on normalised embeddings)."""
    from sentence_transformers.sentence_transformer.modules import Normalize

    if not isinstance(model[-1], Normalize):
        model.append(Normalize())
    for module in modules if isinstance(modules, list) else [modules]:
        model.append(module)
    model.append(Normalize())
