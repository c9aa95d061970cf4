"""HiVES losses, each a small ``nn.Module`` with the ``(sentence_features, labels)`` signature of
sentence-transformers losses, so ``SentenceTransformerTrainer`` drives them (and accelerate/torchrun with it).

Every loss reads a row's role from its label vector (``hives_model.data.LABEL_FIELDS``), never from its position
in the batch, so any batch order gives the same loss.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hives_model.data import L, label_match, label_similarity, own_label_positive

LEVELS = 3


def _embed(model: nn.Module, sentence_features: Iterable[dict[str, Tensor]]) -> Tensor:
    """The batch's sentence embeddings: every HiVES loss sees one text column."""
    return model(next(iter(sentence_features)))["sentence_embedding"]


def _pair_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """(same_text, opposite) boolean (n, n) masks.

    Opposite: one row supports (+1) and the other opposes (-1) its value. Two rows of one text (a multi-label
    source) are excluded from every comparison: neither positive nor negative.
    """
    key = labels[:, L["text_key"]]
    same_text = key[:, None] == key[None, :]
    d = labels[:, L["direction"]]
    opposite = (d[:, None] * d[None, :]) == -1
    return same_text, opposite


class HierarchicalContrastiveLoss(nn.Module):
    """Hierarchical supervised contrastive loss (stage 1).

    For each level l = 1..3, the positives of an anchor row are the rows whose text carries the anchor row's *own*
    level-l path prefix with the *same* direction (``hives_model.data.own_label_positive``). Rows that are related
    to the anchor's text in another way (a multi-label text sharing one of the anchor text's *other* labels, or a
    row of unknown direction on the anchor's path) are left out of the anchor's softmax: they are neither pulled
    in nor pushed away. Everything else is a negative. The loss is SupCon over the batch (normalised embeddings,
    ``temperature``).

    Why own-label positives. Touché23 arguments carry 3.4 labels on average; with "any label matches any label",
    two random arguments are level-1 positives 88 % of the time, so the loss sees almost no negatives and
    collapsing the whole space is nearly free (measured: mean cosine 0.91 after training against 0.14 before).

    Direction margin, as in the paper's code: ``direction_margin`` (cosine units; the paper's 1.0 logit at
    temperature 0.1 is 0.1) is *subtracted* from the logits of opposite-direction negatives (one row supports, the
    other opposes), so a same-value text of the other direction is pushed away less than a text of another value:
    the metrics (and the paper) rank "same path, other direction" above every other-path bin.
    ``margin_scope="path"`` (default) applies it to opposite directions of one full path (one value), ``"level"``
    to opposite directions sharing the level-l prefix at level l.

    Level costs (``level_costs``). An anchor's SupCon loss at a level with P positives can never go below log P
    (the loss is -1/P sum log p over a softmax), so a coarse level, with many positives, always has the larger raw
    loss. ``excess`` (default) compares levels by the loss above that floor (loss - log P >= 0, 0 when the
    positives take all the probability mass, equally); ``raw`` uses the plain loss. With raw costs, the max below
    almost always picks level 1 and the finer levels get no gradient of their own (measured on Touché23 +
    ValueNet batches: level losses 3.44 > 3.25 > 3.02 for levels 1 > 2 > 3).

    ``hierarchy_constraint="max"``: a deeper level never costs less than a shallower one; per anchor, the cost of
    level l is max(own cost, costs of shallower levels). ``"none"`` drops the max. Levels are weighted
    ``level_weight_base ** (1 / l)`` (coarser levels weigh more); each level's cost is averaged over the anchors
    with positives at that level, and the weighted levels over those present in the batch.
    """

    def __init__(self, model: nn.Module, temperature: float = 0.1, direction_margin: float = 0.1,
                 level_weight_base: float = 2.0, hierarchy_constraint: str = "max", level_costs: str = "excess",
                 margin_scope: str = "path") -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if hierarchy_constraint not in ("max", "none"):
            raise ValueError(f"hierarchy_constraint must be 'max' or 'none', got {hierarchy_constraint!r}")
        if level_costs not in ("excess", "raw"):
            raise ValueError(f"level_costs must be 'excess' or 'raw', got {level_costs!r}")
        if margin_scope not in ("path", "level"):
            raise ValueError(f"margin_scope must be 'path' or 'level', got {margin_scope!r}")
        self.margin_scope = margin_scope
        self.hierarchy_constraint = hierarchy_constraint
        self.level_costs = level_costs
        self.model = model
        self.temperature = temperature
        self.direction_margin = direction_margin
        self.level_weight_base = level_weight_base

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        embeddings = _embed(self.model, sentence_features)
        return self.loss_from_embeddings(embeddings, labels)

    def anchor_costs(self, embeddings: Tensor, labels: Tensor) -> list[tuple[Tensor, Tensor] | None]:
        """Per level: (cost of every anchor, whether it has a positive), before the hierarchy constraint; None
        where no anchor has a positive. Costs are raw SupCon losses or their excess over log P (``level_costs``)."""
        z = F.normalize(embeddings, dim=-1)
        same_text, opposite = _pair_masks(labels)
        sim = z @ z.T
        out: list[tuple[Tensor, Tensor] | None] = []
        path_share = label_match(labels, labels, LEVELS, ignore_direction=True) if self.margin_scope == "path" else None
        for level in range(1, LEVELS + 1):
            # pairs the margin acts on: same full path (path scope, one mask for every level) or same level-l prefix
            share = path_share if path_share is not None else label_match(labels, labels, level, ignore_direction=True)
            positive = own_label_positive(labels, level) & ~same_text
            # related through another label, or of a direction that may or may not agree: out of the softmax
            left_out = same_text | (label_match(labels, labels, level) & ~positive)
            count = positive.sum(dim=1)
            has = count > 0
            if not bool(has.any()):
                out.append(None)
                continue
            margin = self.direction_margin * (opposite & share).to(sim.dtype)
            logits = ((sim - margin) / self.temperature).masked_fill(left_out, float("-inf"))
            log_prob = (logits - torch.logsumexp(logits, dim=1, keepdim=True)).masked_fill(left_out, 0.0)
            cost = -(log_prob * positive.to(log_prob.dtype)).sum(dim=1) / count.clamp(min=1)
            if self.level_costs == "excess":
                cost = cost - torch.log(count.clamp(min=1).to(cost.dtype))
            out.append((cost, has))
        return out

    def level_losses(self, embeddings: Tensor, labels: Tensor) -> list[Tensor | None]:
        """Unconstrained cost per level, averaged over the anchors with positives (None where there are none)."""
        return [None if c is None else c[0][c[1]].mean() for c in self.anchor_costs(embeddings, labels)]

    def constrained_losses(self, embeddings: Tensor, labels: Tensor) -> list[Tensor | None]:
        """Cost per level after the hierarchy constraint (per anchor), averaged over the anchors with positives."""
        out: list[Tensor | None] = []
        floor = None
        for costs in self.anchor_costs(embeddings, labels):
            if costs is None:
                out.append(None)
                continue
            cost, has = costs
            if self.hierarchy_constraint == "max" and floor is not None:
                cost = torch.maximum(cost, floor)  # never cheaper than shallower levels (positives are nested)
            floor = cost
            out.append(cost[has].mean())
        return out

    def loss_from_embeddings(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        total, weight = embeddings.new_zeros(()), 0.0
        for level, loss in enumerate(self.constrained_losses(embeddings, labels), start=1):
            if loss is None:
                continue
            w = self.level_weight_base ** (1.0 / level)
            total, weight = total + w * loss, weight + w
        if weight == 0:  # no positives at all: contribute no gradient rather than a fake number
            return embeddings.sum() * 0.0
        return total / weight

    @property
    def citation(self) -> str:
        return "VALUEFLOW, arXiv:2602.03160 (HiVES stage 1)"


class AnchorAlignmentLoss(nn.Module):
    """Pull each directed row toward its anchor (stage 2): InfoNCE over the anchors relevant to the batch.

    ``anchors`` maps (label id, direction) to anchor texts, where the label id is the row's ``value`` (per-value
    anchors) or ``group`` (cross-theory concordance anchors) code, per ``key_field``. An anchor's embedding is the
    normalised mean of its texts' embeddings, computed with the current model at every step (so gradients flow
    into the anchors too). Candidates are the anchors of the keys in the batch plus their opposite-direction
    anchors, so each supporting row also learns to sit away from the opposing anchor of its own value. Rows that are
    neutral, of unknown direction or without an anchor are left out.
    """

    def __init__(self, model: nn.Module, anchors: dict[tuple[int, int], list[str]], key_field: str = "value",
                 temperature: float = 0.07) -> None:
        super().__init__()
        if key_field not in ("value", "group"):
            raise ValueError(f"key_field must be 'value' or 'group', got {key_field!r}")
        self.model = model
        self.anchors = {k: list(v) for k, v in anchors.items() if v}
        self.key_field = key_field
        self.temperature = temperature

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        embeddings = _embed(self.model, sentence_features)
        return self.loss_from_embeddings(embeddings, labels)

    def row_keys(self, labels: Tensor) -> list[tuple[int, int] | None]:
        out = []
        for key, d in zip(labels[:, L[self.key_field]].tolist(), labels[:, L["direction"]].tolist()):
            out.append((key, d) if d in (-1, 1) and (key, d) in self.anchors else None)
        return out

    def encode_anchors(self, keys: list[tuple[int, int]], device: torch.device) -> Tensor:
        texts = [t for k in keys for t in self.anchors[k]]
        features = self.model.preprocess(texts)
        features = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in features.items()}
        emb = F.normalize(self.model(features)["sentence_embedding"], dim=-1)
        out, start = [], 0
        for k in keys:
            n = len(self.anchors[k])
            out.append(emb[start : start + n].mean(dim=0))
            start += n
        return F.normalize(torch.stack(out), dim=-1)

    def loss_from_embeddings(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        row_keys = self.row_keys(labels)
        present = sorted({k for k in row_keys if k is not None})
        if not present:
            return embeddings.sum() * 0.0
        candidates = sorted(set(present) | {(k, -d) for k, d in present if (k, -d) in self.anchors})
        if len(candidates) < 2:  # one candidate makes the softmax trivially 1
            return embeddings.sum() * 0.0
        index = {k: i for i, k in enumerate(candidates)}
        anchors = self.encode_anchors(candidates, embeddings.device)
        rows = [i for i, k in enumerate(row_keys) if k is not None]
        z = F.normalize(embeddings[rows], dim=-1)
        target = torch.tensor([index[row_keys[i]] for i in rows], device=embeddings.device)
        return F.cross_entropy(z @ anchors.T / self.temperature, target)


class LabelSimilarityLoss(nn.Module):
    """CoSENT over label similarity: every pair of rows in the batch is ordered by how much of their labels they
    share, and the loss asks their cosines to keep that order.

    The target of a pair is ``hives_model.data.label_similarity`` (matching path levels from the top, + 0.5 for a
    compatible direction, best over the texts' labels): the very quantity the similarity-correlation metric
    correlates with, and the order the ranking metric checks (same path and direction > same path, other
    direction > same level_2 > same level_1 > other). CoSENT (Su, 2022; sentence-transformers' ``CoSENTLoss``) is
    log(1 + sum over pairs (a, b) with target_a > target_b of exp(scale * (cos_b - cos_a))): only the order of the
    cosines matters, not their values, so the space keeps its spread (no collapse), and a multi-label text is
    simply as close to another as its best-matching labels say. Pairs of one text are left out.

    Order alone does not keep the space spread: the order can be kept inside a narrow cone, and it is (measured on
    a multi-label toy set: mean cosine 0.84 between held-out texts; on Touché23 + ValueNet, 0.96 after 150
    steps). ``uniformity_weight`` adds Wang and Isola's (2020) uniformity term, log E exp(-2 |z_i - z_j|^2) over
    pairs of distinct texts, which spreads the batch over the sphere (the toy set: 0.46 at weight 2, order kept).
    """

    def __init__(self, model: nn.Module, scale: float = 20.0, uniformity_weight: float = 2.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if uniformity_weight < 0:
            raise ValueError(f"uniformity_weight must be >= 0, got {uniformity_weight}")
        self.model = model
        self.scale = scale
        self.uniformity_weight = uniformity_weight

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        return self.loss_from_embeddings(_embed(self.model, sentence_features), labels)

    def loss_from_embeddings(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        lab = labels.detach().cpu().numpy()
        i, j = np.triu_indices(len(lab), k=1)
        keep = lab[i, L["text_key"]] != lab[j, L["text_key"]]
        i, j = i[keep], j[keep]
        target = torch.as_tensor(label_similarity(lab, i, j), device=embeddings.device)
        z = F.normalize(embeddings, dim=-1)
        ii, jj = torch.as_tensor(i, device=z.device), torch.as_tensor(j, device=z.device)
        cos = self.scale * (z[ii] * z[jj]).sum(dim=-1)
        worse_first = cos[None, :] - cos[:, None]  # [a, b] = cos_b - cos_a, counted where target_a > target_b
        worse_first = worse_first.masked_fill(~(target[:, None] > target[None, :]), float("-inf"))
        loss = torch.logsumexp(torch.cat([worse_first.new_zeros(1), worse_first.flatten()]), dim=0)
        if self.uniformity_weight and len(ii):
            squared = (2 - 2 * (z[ii] * z[jj]).sum(dim=-1)).clamp(min=0)  # |z_i - z_j|^2 of unit vectors
            loss = loss + self.uniformity_weight * torch.logsumexp(-2 * squared, dim=0) - self.uniformity_weight * np.log(len(ii))
        return loss

    @property
    def citation(self) -> str:
        return "Su, CoSENT (2022); VALUEFLOW label similarity, arXiv:2602.03160"


class WeightedLosses(nn.Module):
    """Several losses on one batch, each with its weight: one embedding pass, one term per loss in the logs.

    Stage 1 is the hierarchical contrastive and/or the label-similarity loss; stage 2 adds the per-value and
    cross-theory anchor losses (L_hier + lambda_ind * L_ind + lambda_theory * L_theory). Returns the weighted
    components as a dict; the trainer sums them and logs each one.
    """

    def __init__(self, model: nn.Module, terms: dict[str, tuple[nn.Module, float]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("WeightedLosses needs at least one term")
        self.model = model
        self.terms = {name: (loss, float(weight)) for name, (loss, weight) in terms.items() if weight != 0}
        for name, (loss, _) in self.terms.items():
            self.add_module(name, loss)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> dict[str, Tensor]:
        embeddings = _embed(self.model, sentence_features)
        return {name: weight * loss.loss_from_embeddings(embeddings, labels) for name, (loss, weight) in self.terms.items()}
