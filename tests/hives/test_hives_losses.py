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
    (c1, h1), (c2, h2), (c3, h3) = loss.anchor_costs(emb, labels)
    constrained = [c1, torch.maximum(c2, c1), torch.maximum(c3, torch.maximum(c2, c1))]  # per anchor
    assert torch.all(constrained[2] >= constrained[1]) and torch.all(constrained[1] >= constrained[0])
    weights = [2 ** (1 / k) for k in (1, 2, 3)]
    expected = sum(w * c[h].mean() for w, c, h in zip(weights, constrained, (h1, h2, h3))) / sum(weights)
    assert torch.allclose(loss.loss_from_embeddings(emb, labels), expected)
    # with the opposite-direction margin, support and oppose rows that sit together cost more
    collapsed = hierarchical_embeddings(labels)
    collapsed[:, 10:] = 0  # directions indistinguishable
    no_margin = HierarchicalContrastiveLoss(nn.Identity(), direction_margin=0.0).loss_from_embeddings(collapsed, labels)
    margin = HierarchicalContrastiveLoss(nn.Identity(), direction_margin=0.3).loss_from_embeddings(collapsed, labels)
    assert margin > no_margin


def test_finer_levels_are_not_starved_by_the_coarse_level():
    # one level-1 branch, four leaves of three texts: level 1 has 11 positives per anchor, level 3 only 2
    labels = labels_for([(0, v // 2, v, 1, v) for v in range(4) for _ in range(3)])
    leaves_apart = (torch.eye(8)[labels[:, L["prefix_3"]]] + 0.5 * torch.eye(8)[4 + labels[:, L["prefix_2"]]] + 1.0)
    collapsed = torch.ones(len(labels), 8)
    excess = HierarchicalContrastiveLoss(nn.Identity())  # default: levels compared above their log(#positives) floor
    assert excess.loss_from_embeddings(leaves_apart, labels) < excess.loss_from_embeddings(collapsed, labels)
    assert all(c[0][c[1]].min() >= -1e-5 for c in excess.anchor_costs(torch.randn(12, 8), labels))
    # raw SupCon losses under the max: level 1 (floor log 11) always wins, so collapsing everything is cheaper
    raw = HierarchicalContrastiveLoss(nn.Identity(), level_costs="raw")
    assert raw.loss_from_embeddings(collapsed, labels) < raw.loss_from_embeddings(leaves_apart, labels)


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
    with_positive_known = loss.anchor_costs(torch.eye(4), known)[2][1]
    with_positive_unknown = loss.anchor_costs(torch.eye(4), unknown)[2][1]
    # with an unknown direction, rows 0 and 1 become positives of each other: more anchors with positives
    assert with_positive_known.tolist() == [False, False, True, True]
    assert with_positive_unknown.tolist() == [True, True, True, True]
    # and the pair gets no opposite-direction margin: its cost does not depend on the margin
    emb = torch.randn(4, 4, generator=torch.Generator().manual_seed(8))
    costs = [HierarchicalContrastiveLoss(nn.Identity(), direction_margin=m).loss_from_embeddings(emb, unknown)
             for m in (0.0, 0.5)]
    assert torch.allclose(costs[0], costs[1])


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


def test_path_scoped_margin_acts_only_on_opposite_directions_of_one_value():
    emb = torch.randn(len(ROWS), 16, generator=torch.Generator().manual_seed(9))
    labels = labels_for(ROWS)

    def cost(margin: float, scope: str, lab: torch.Tensor) -> torch.Tensor:
        return HierarchicalContrastiveLoss(nn.Identity(), direction_margin=margin, margin_scope=scope).loss_from_embeddings(emb, lab)

    assert cost(0.3, "path", labels) > cost(0.0, "path", labels)  # support/oppose pairs of one value get the margin
    # every value with one direction only: opposite pairs now only span different values
    one_direction = labels.clone()
    one_direction[:, L["direction"]] = torch.where(one_direction[:, L["prefix_3"]] % 2 == 0, 1, -1)
    assert torch.allclose(cost(0.3, "path", one_direction), cost(0.0, "path", one_direction))
    assert cost(0.3, "level", one_direction) > cost(0.0, "level", one_direction)  # level scope: same level_1 pairs too
