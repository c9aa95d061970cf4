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

    # labels: a logistic unit per node of the oracle's layout (Dense + sigmoid, fitted like one-vs-rest logistic
    # regressions), its probabilities mapped by a fixed Dense onto that layout; contrastive: one Dense trained with
    # the label objective of stage 1 (train_hives.hierarchical_weight / label_similarity_weight)
    head: Literal["labels", "contrastive"] = "labels"
    centre: float = Field(0.6, ge=0, le=1)  # labels: share of the mean training probability subtracted (spreads it)
    base_share: float = Field(0.3, ge=0)  # labels: weight of the base embedding kept beside the label layout (0: none)
    dim: int = Field(256, ge=2)  # contrastive: width of the HiVES space (at most the base width: the PCA start needs it)
    activation: Literal["identity", "tanh"] = "identity"
    steps: int = Field(600, ge=1)
    batch_size: int = Field(64, ge=2)  # the label-similarity loss compares every pair of a batch
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)  # L2 penalty (labels: about 1/texts, a logistic regression's C = 1)
    # labels: epochs of fine-tuning the encoder's top layers with the head's own loss before the head is fitted again
    # on the moved encoder (hives_model.encoder_tuning); 0: the encoder stays frozen
    encoder_epochs: int = Field(2, ge=0)
    encoder_layers: int = Field(4, ge=1)  # top transformer layers that move (the backward pass stops below them)
    encoder_learning_rate: float = Field(1e-4, gt=0)
    encoder_batch_size: int = Field(32, ge=1)


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


def label_units(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The labels head's units, one per node of the oracle's layout that the training labels switch on.

    Returns (first row of each distinct text, targets (texts, units), mask (texts, units), layout (units, oracle
    dims)). Units: every level-1, level-2 and level-3 path node, fitted on all texts (a text is a positive when any
    of its labels has that prefix), and every (level-3 node, known direction), fitted only on the texts whose
    direction is known for that path: a text that carries the path with an unknown direction (Touché23) is neither a
    positive nor a negative of its supporting or opposing unit. Each unit writes 1/2 on its node, the weight the node
    has in a single-label text's oracle; a level-3 unit also spreads 1/(2 sqrt 3) over the node's three direction
    slots, as the oracle does for an unknown direction, and a known direction adds its own slot.

    Why one unit per node and not per (path, direction) label. Sources label alike at some levels only: Touché23
    labels refined values with no direction, ValueNet basic values with one; per label, a ValueNet text about a path
    was a negative of the Touché23 unit of the same path, and a Touché23 text of a refined value a negative of the
    ValueNet unit of its basic value. Per node, every source teaches the nodes it labels and none contradicts another.
    """
    from hives_model.data import DIRECTION_UNKNOWN, ORACLE_DIRECTIONS, L, oracle_column, oracle_nodes

    _, first, text_of_row = np.unique(labels[:, L["text_key"]], return_index=True, return_inverse=True)
    text_of_row = text_of_row.ravel()
    n_texts, n_nodes = len(first), oracle_nodes()
    direction = labels[:, L["direction"]]

    def texts_with(rows: np.ndarray) -> np.ndarray:
        out = np.zeros(n_texts, dtype=bool)
        out[text_of_row[rows]] = True
        return out

    targets, masks, layout = [], [], []
    everyone = np.ones(n_texts, dtype=bool)
    for level in (1, 2, 3):
        prefix = labels[:, L[f"prefix_{level}"]]
        for node in np.unique(prefix):
            row = np.zeros(2 * 3 * n_nodes, dtype=np.float32)
            row[oracle_column(n_nodes, level, node)] = 0.5
            if level == 3:  # the path's direction slots, as an unknown direction fills them
                for code in ORACLE_DIRECTIONS:
                    row[oracle_column(n_nodes, 3, node, code)] = 0.5 * np.sqrt(1 / 3)
            targets.append(texts_with(prefix == node))
            masks.append(everyone)
            layout.append(row)
    prefix = labels[:, L["prefix_3"]]
    unknown = direction == DIRECTION_UNKNOWN
    for node, code in np.unique(labels[~unknown][:, [L["prefix_3"], L["direction"]]], axis=0):
        row = np.zeros(2 * 3 * n_nodes, dtype=np.float32)
        row[oracle_column(n_nodes, 3, node, int(code))] = 0.5
        targets.append(texts_with((prefix == node) & (direction == code)))
        masks.append(~texts_with((prefix == node) & unknown))
        layout.append(row)
    return (first, np.stack(targets, axis=1).astype(np.float32), np.stack(masks, axis=1).astype(np.float32),
            np.stack(layout))


def fit_units(x, targets: np.ndarray, masks: np.ndarray, cfg: ProjectionConfig):
    """The labels head's units as one ``nn.Linear`` over embeddings ``x`` (texts x d, a tensor): masked
    one-vs-rest logistic regressions with an L2 penalty (``cfg.weight_decay``), fitted by L-BFGS on all texts at once."""
    import torch
    from torch import nn

    y, mask = torch.from_numpy(targets), torch.from_numpy(masks)
    linear = nn.Linear(x.shape[1], targets.shape[1])
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=cfg.steps, line_search_fn="strong_wolfe")
    n = len(x)

    def closure():
        optimiser.zero_grad()
        loss = (nn.functional.binary_cross_entropy_with_logits(linear(x), y, reduction="none") * mask).sum() / n
        loss = loss + cfg.weight_decay * (linear.weight ** 2).sum() / 2
        loss.backward()
        return loss

    optimiser.step(closure)
    return linear


def train_label_head(embeddings: np.ndarray, labels: np.ndarray, cfg: ProjectionConfig) -> list:
    """Two ``Dense`` modules: the probability of each node of the oracle's layout (a sigmoid head over the units of
    :func:`label_units`, fitted as masked one-vs-rest logistic regressions with an L2 penalty, by L-BFGS on all
    texts at once), then a fixed map of those probabilities onto the layout (``hives_model.data.oracle_embeddings``),
    less ``centre`` x the mean training probability, beside ``base_share`` x the base embedding itself.

    Why. The metrics rank texts by the labels they share, and the oracle encodes exactly that; an embedding can at
    best encode the labels it predicts (``benchmarks/hives_label_noise.py``), so the head predicts them and embeds
    the prediction the oracle's way. Probabilities are all positive, so uncentred every text leans on the common
    nodes (mean cosine 0.78 on Touché23); subtracting a share of their mean spreads the space, but a text the head
    is unsure of (low probabilities everywhere: most of held-out ValueNet) then lands near that one offset (mean
    cosine 0.71 there). The base embedding beside the layout keeps such texts apart as the base did.

    The base embedding passes through the sigmoid ``Dense`` in its near-linear range (sigmoid(x) = 1/2 + x/4 to
    within x^2/12, under 0.5 % for the coordinates of a unit vector) and the second ``Dense`` takes it back to
    ``base_share`` x x: both stay plain built-in modules, loadable by any sentence-transformers version.
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense
    from torch import nn

    first, targets, masks, layout = label_units(labels)
    x = torch.from_numpy(np.ascontiguousarray(embeddings[first], dtype=np.float32))
    linear = fit_units(x, targets, masks, cfg)
    with torch.no_grad():
        mean_probability = torch.sigmoid(linear(x)).mean(dim=0).numpy()
    d, units, width = x.shape[1], targets.shape[1], layout.shape[1]
    weight, bias = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    to_layout, offset = layout.T, -cfg.centre * mean_probability @ layout
    if cfg.base_share:  # the base embedding as extra sigmoid units, mapped back by 4 x base_share less 2 x base_share
        weight, bias = np.vstack([weight, np.eye(d)]), np.concatenate([bias, np.zeros(d)])
        to_layout = np.block([[to_layout, np.zeros((width, d))],
                              [np.zeros((d, units)), 4 * cfg.base_share * np.eye(d)]])
        offset = np.concatenate([offset, np.full(d, -2 * cfg.base_share)])

    def tensor(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    probabilities = Dense(d, len(bias), activation_function=nn.Sigmoid(), init_weight=tensor(weight),
                          init_bias=tensor(bias))
    return [probabilities, Dense(len(bias), len(offset), activation_function=nn.Identity(),
                                 init_weight=tensor(to_layout), init_bias=tensor(offset))]


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
