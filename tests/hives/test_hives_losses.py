"""The HiVES losses: order-free, hierarchical, direction-aware; anchors pull rows to their value."""

from __future__ import annotations

import torch
from torch import nn

from hives_model.data import DIRECTION_UNKNOWN, LABEL_WIDTH, NO_LABEL, OTHER, L
from hives_model.losses import AnchorAlignmentLoss, HierarchicalContrastiveLoss, HiVESAlignmentLoss


def labels_for(rows: list[tuple[int, int, int, int, int]]) -> torch.Tensor:
    """rows of (prefix_1, prefix_2, prefix_3, direction, value); theory 0, group = value, text_key = row."""
    out = torch.full((len(rows), LABEL_WIDTH), NO_LABEL, dtype=torch.long)
    out[:, L["theory"]] = 0
    for i, (p1, p2, p3, d, v) in enumerate(rows):
        out[i, L["prefix_1"]], out[i, L["prefix_2"]], out[i, L["prefix_3"]] = p1, p2, p3
        out[i, L["direction"]], out[i, L["value"]], out[i, L["group"]], out[i, L["text_key"]] = d, v, v, i
    return out


# two level-1 branches, two values each, supporting and opposing rows
ROWS = [(a, 2 * a + b, 2 * a + b, d, 2 * a + b) for a in (0, 1) for b in (0, 1) for d in (1, -1) for _ in range(2)]


def hierarchical_embeddings(labels: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    basis = torch.eye(16)
    z = (2 * basis[labels[:, L["prefix_1"]]] + basis[4 + labels[:, L["prefix_2"]]]
         + 0.8 * labels[:, L["direction"]].float()[:, None] * basis[10 + labels[:, L["prefix_2"]]])
    return z + noise * torch.randn(z.shape, generator=g)


def test_loss_does_not_depend_on_batch_order():
    labels = labels_for(ROWS)
    emb = torch.randn(len(ROWS), 16, generator=torch.Generator().manual_seed(1))
    loss = HierarchicalContrastiveLoss(nn.Identity())
    perm = torch.randperm(len(ROWS), generator=torch.Generator().manual_seed(2))
    assert torch.allclose(loss.loss_from_embeddings(emb, labels), loss.loss_from_embeddings(emb[perm], labels[perm]))


def test_hierarchical_geometry_costs_less_than_random():
    labels = labels_for(ROWS)
    loss = HierarchicalContrastiveLoss(nn.Identity())
    good = loss.loss_from_embeddings(hierarchical_embeddings(labels), labels)
    rand = loss.loss_from_embeddings(torch.randn(len(ROWS), 16, generator=torch.Generator().manual_seed(3)), labels)
    assert good < rand


def test_deeper_level_never_cheaper_and_margin_separates_directions():
    labels = labels_for(ROWS)
    emb = torch.randn(len(ROWS), 16, generator=torch.Generator().manual_seed(4))
    loss = HierarchicalContrastiveLoss(nn.Identity(), level_weight_base=2.0)
    levels = loss.level_losses(emb, labels)
    constrained = [levels[0], torch.maximum(levels[1], levels[0]), torch.maximum(levels[2], torch.maximum(levels[1], levels[0]))]
    weights = [2 ** (1 / k) for k in (1, 2, 3)]
    expected = sum(w * c for w, c in zip(weights, constrained)) / sum(weights)
    assert torch.allclose(loss.loss_from_embeddings(emb, labels), expected)
    # with the opposite-direction margin, support and oppose rows that sit together cost more
    collapsed = hierarchical_embeddings(labels)
    collapsed[:, 10:] = 0  # directions indistinguishable
    no_margin = HierarchicalContrastiveLoss(nn.Identity(), direction_margin=0.0).loss_from_embeddings(collapsed, labels)
    margin = HierarchicalContrastiveLoss(nn.Identity(), direction_margin=0.3).loss_from_embeddings(collapsed, labels)
    assert margin > no_margin


def test_same_text_rows_are_neither_positive_nor_negative():
    # row 1 is row 0's text again under another label (a multi-label source): identical embedding
    labels = labels_for([(0, 0, 0, 1, 0), (1, 1, 1, 1, 1), (0, 0, 0, 1, 0), (1, 1, 1, 1, 1)])
    emb = torch.randn(4, 8, generator=torch.Generator().manual_seed(5))
    emb[1] = emb[0]
    loss = HierarchicalContrastiveLoss(nn.Identity())
    as_twins = labels.clone()
    as_twins[1, L["text_key"]] = as_twins[0, L["text_key"]]
    # counted as a negative, the identical twin would dominate the denominator
    assert loss.loss_from_embeddings(emb, as_twins) < loss.loss_from_embeddings(emb, labels)


def test_unknown_direction_is_compatible_and_gets_no_margin():
    known = labels_for([(0, 0, 0, 1, 0), (0, 0, 0, -1, 0), (1, 1, 1, 1, 1), (1, 1, 1, 1, 1)])
    unknown = known.clone()
    unknown[1, L["direction"]] = DIRECTION_UNKNOWN
    loss = HierarchicalContrastiveLoss(nn.Identity())
    levels_known = loss.level_losses(torch.eye(4), known)
    levels_unknown = loss.level_losses(torch.eye(4), unknown)
    assert levels_unknown[2] is not None and levels_known[2] is not None
    # with an unknown direction, rows 0 and 1 become positives of each other: more anchors with positives
    assert not torch.allclose(levels_known[2], levels_unknown[2])


class TableModel(nn.Module):
    """A stand-in encoder: each known text maps to a trainable vector."""

    def __init__(self, vectors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.names = list(vectors)
        self.table = nn.Parameter(torch.stack([vectors[n] for n in self.names]))

    def preprocess(self, texts):
        return {"ids": torch.tensor([self.names.index(t) for t in texts])}

    def forward(self, features):
        return {"sentence_embedding": self.table[features["ids"]]}


def test_anchor_loss_prefers_rows_near_their_own_anchor():
    anchors = {(0, 1): ["a+"], (0, -1): ["a-"], (1, 1): ["b+"], (1, -1): ["b-"]}
    model = TableModel({"a+": torch.tensor([1.0, 0, 0, 0]), "a-": torch.tensor([-1.0, 0, 0, 0]),
                        "b+": torch.tensor([0, 1.0, 0, 0]), "b-": torch.tensor([0, -1.0, 0, 0])})
    loss = AnchorAlignmentLoss(model, anchors, "value")
    labels = labels_for([(0, 0, 0, 1, 0), (0, 0, 0, -1, 0), (1, 1, 1, 1, 1), (0, 0, 0, 0, 0)])
    near = torch.tensor([[1.0, 0.1, 0, 0], [-1.0, 0, 0.1, 0], [0, 1.0, 0, 0.1], [0, 0, 0, 1.0]])
    swapped = near[[1, 0, 2, 3]]
    assert loss.loss_from_embeddings(near, labels) < loss.loss_from_embeddings(swapped, labels)
    # a neutral row has no anchor: it does not change the loss
    assert torch.allclose(loss.loss_from_embeddings(near[:3], labels[:3]), loss.loss_from_embeddings(near, labels))


def test_stage2_loss_reports_weighted_components():
    anchors = {(0, 1): ["a+"], (0, -1): ["a-"]}
    model = TableModel({"a+": torch.tensor([1.0, 0, 0, 0]), "a-": torch.tensor([-1.0, 0, 0, 0])})
    labels = labels_for([(0, 0, 0, 1, 0), (0, 0, 0, 1, 0), (0, 0, 0, -1, 0), (0, 0, 0, -1, 0)])
    emb = torch.randn(4, 4, generator=torch.Generator().manual_seed(6))

    class Fixed(nn.Module):
        def forward(self, features):
            return {"sentence_embedding": emb}

    stage2 = HiVESAlignmentLoss(Fixed(), HierarchicalContrastiveLoss(model), AnchorAlignmentLoss(model, anchors, "value"),
                                AnchorAlignmentLoss(model, anchors, "group"), lambda_individual=0.5, lambda_theory=0.0)
    parts = stage2([{}], labels)
    assert set(parts) == {"hierarchical", "individual", "cross_theory"}
    assert torch.allclose(parts["individual"], 0.5 * AnchorAlignmentLoss(model, anchors, "value").loss_from_embeddings(emb, labels))
    assert parts["cross_theory"] == 0


def test_multi_label_texts_are_related_through_any_of_their_labels():
    # row 0's text also carries row 1's label (another row of the same text elsewhere in the data)
    labels = labels_for([(0, 0, 0, 1, 0), (1, 1, 1, 1, 1), (1, 1, 1, 1, 1), (0, 0, 0, 1, 0)])
    emb = torch.randn(4, 8, generator=torch.Generator().manual_seed(7))
    loss = HierarchicalContrastiveLoss(nn.Identity())
    multi = labels.clone()
    for field, value in (("prefix_1", 1), ("prefix_2", 1), ("prefix_3", 1), ("direction", 1)):
        multi[0, OTHER[field][0]] = value
    plain, with_other = loss.level_losses(emb, labels), loss.level_losses(emb, multi)
    assert not torch.allclose(plain[0], with_other[0])
