"""The HiVES losses: order-free, hierarchical, direction-aware; anchors pull rows to their value."""

from __future__ import annotations

import torch
from torch import nn

from hives_model.data import DIRECTION_UNKNOWN, LABEL_WIDTH, NO_LABEL, OTHER, L, own_label_positive
from hives_model.losses import AnchorAlignmentLoss, HierarchicalContrastiveLoss, LabelSimilarityLoss, WeightedLosses


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
    # the paper's margin is subtracted from opposite-direction logits: support and oppose rows of one value that sit
    # together are pushed apart less than rows of other values (same path, other direction ranks above other paths)
    collapsed = hierarchical_embeddings(labels)
    collapsed[:, 10:] = 0  # directions indistinguishable
    no_margin = HierarchicalContrastiveLoss(nn.Identity(), direction_margin=0.0).loss_from_embeddings(collapsed, labels)
    margin = HierarchicalContrastiveLoss(nn.Identity(), direction_margin=0.3).loss_from_embeddings(collapsed, labels)
    assert margin < no_margin


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


def test_unknown_direction_is_never_a_positive_across_directions_and_gets_no_margin():
    known = labels_for([(0, 0, 0, 1, 0), (0, 0, 0, 1, 0), (1, 1, 1, 1, 1), (1, 1, 1, 1, 1)])
    unknown = known.clone()
    unknown[1, L["direction"]] = DIRECTION_UNKNOWN
    loss = HierarchicalContrastiveLoss(nn.Identity())
    assert loss.anchor_costs(torch.eye(4), known)[2][1].tolist() == [True, True, True, True]
    # an unknown direction is a positive of neither the supporting row of its value nor vice versa ...
    assert loss.anchor_costs(torch.eye(4), unknown)[2][1].tolist() == [False, False, True, True]
    # ... nor a negative: it is left out of row 0's softmax, so moving it changes nothing for row 0
    emb = torch.randn(4, 4, generator=torch.Generator().manual_seed(8))
    moved = emb.clone()
    moved[1] = emb[0]
    row0 = [loss.anchor_costs(e, unknown)[0][0][0] for e in (emb, moved)]
    assert torch.allclose(row0[0], row0[1])
    # and the pair gets no opposite-direction margin: its cost does not depend on the margin
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

    stage2 = WeightedLosses(Fixed(), {"hierarchical": (HierarchicalContrastiveLoss(model), 1.0),
                                      "individual": (AnchorAlignmentLoss(model, anchors, "value"), 0.5),
                                      "cross_theory": (AnchorAlignmentLoss(model, anchors, "group"), 0.0)})
    parts = stage2([{}], labels)
    assert set(parts) == {"hierarchical", "individual"}  # a term of weight 0 is not computed at all
    assert torch.allclose(parts["individual"], 0.5 * AnchorAlignmentLoss(model, anchors, "value").loss_from_embeddings(emb, labels))


def test_positive_mask_of_a_multi_label_row_is_its_own_label():
    # row 0 is labelled A and its text also carries B; row 1 is B; row 2 is A; row 3 is C (another branch)
    labels = labels_for([(0, 0, 0, 1, 0), (0, 1, 1, 1, 1), (0, 0, 0, 1, 0), (1, 2, 2, 1, 2)])
    for field, value in (("prefix_1", 0), ("prefix_2", 1), ("prefix_3", 1), ("direction", 1)):
        labels[0, OTHER[field][0]] = value
    positive = own_label_positive(labels, 3)
    assert positive[0].tolist() == [True, False, True, False]  # row 0's positives: texts carrying A (itself, row 2)
    assert positive[1].tolist() == [True, True, False, False]  # row 1 (B): row 0's text carries B too
    # row 1 shares row 0's *other* label: left out of row 0's softmax at level 3, neither pulled nor pushed
    loss = HierarchicalContrastiveLoss(nn.Identity())
    emb = torch.randn(4, 8, generator=torch.Generator().manual_seed(7))
    moved = emb.clone()
    moved[1] = emb[0]
    assert torch.allclose(loss.anchor_costs(emb, labels)[2][0][0], loss.anchor_costs(moved, labels)[2][0][0])
    # row 3 shares nothing: a real negative, so moving it onto row 0 costs row 0 more
    moved = emb.clone()
    moved[3] = emb[0]
    assert loss.anchor_costs(moved, labels)[2][0][0] > loss.anchor_costs(emb, labels)[2][0][0]


def test_label_similarity_loss_asks_cosines_to_follow_shared_labels():
    labels = labels_for(ROWS)
    loss = LabelSimilarityLoss(nn.Identity())
    good = loss.loss_from_embeddings(hierarchical_embeddings(labels), labels)
    rand = loss.loss_from_embeddings(torch.randn(len(ROWS), 16, generator=torch.Generator().manual_seed(3)), labels)
    assert good < rand
    assert loss.loss_from_embeddings(torch.ones(len(ROWS), 16), labels) > good  # a collapsed space orders nothing


def test_path_scoped_margin_acts_only_on_opposite_directions_of_one_value():
    emb = torch.randn(len(ROWS), 16, generator=torch.Generator().manual_seed(9))
    labels = labels_for(ROWS)

    def cost(margin: float, scope: str, lab: torch.Tensor) -> torch.Tensor:
        return HierarchicalContrastiveLoss(nn.Identity(), direction_margin=margin, margin_scope=scope).loss_from_embeddings(emb, lab)

    assert cost(0.3, "path", labels) < cost(0.0, "path", labels)  # support/oppose pairs of one value get the margin
    # every value with one direction only: opposite pairs now only span different values
    one_direction = labels.clone()
    one_direction[:, L["direction"]] = torch.where(one_direction[:, L["prefix_3"]] % 2 == 0, 1, -1)
    assert torch.allclose(cost(0.3, "path", one_direction), cost(0.0, "path", one_direction))
    assert cost(0.3, "level", one_direction) < cost(0.0, "level", one_direction)  # level scope: same level_1 pairs too


def toy_multi_label_set(n_texts: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts of one theory (2 level-1 branches x 2 values, both directions) as noisy feature vectors; every other
    text also carries a second label from the other branch, as Touché23 arguments carry several values."""
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(24)
    feats, rows, extra = [], [], []
    for t in range(n_texts):
        p2, d = t % 4, 1 if (t // 4) % 2 == 0 else -1
        x = eye[p2] + 0.8 * d * eye[4 + p2] + 0.6 * eye[8 + p2 // 2]
        other = (p2 + 2) % 4 if t % 2 else None
        if other is not None:
            x = x + eye[other] + 0.8 * d * eye[4 + other] + 0.6 * eye[8 + other // 2]
        feats.append(x + 0.35 * torch.randn(24, generator=g))
        rows.append((p2 // 2, p2, p2, d, p2))
        extra.append((other, d))
    labels = labels_for(rows)
    for i, (other, d) in enumerate(extra):
        if other is not None:
            for field, value in (("prefix_1", other // 2), ("prefix_2", other), ("prefix_3", other), ("direction", d)):
                labels[i, OTHER[field][0]] = value
    return torch.stack(feats), labels


def train_toy_encoder(loss_factory, steps: int = 100) -> nn.Module:
    torch.manual_seed(0)
    encoder = nn.Linear(24, 12)
    x, labels = toy_multi_label_set(40, seed=1)
    loss = loss_factory(nn.Identity())
    opt = torch.optim.Adam(encoder.parameters(), lr=0.03)
    for _ in range(steps):
        opt.zero_grad()
        loss.loss_from_embeddings(encoder(x), labels).backward()
        opt.step()
    return encoder


def trained_geometry(factory) -> dict[str, float]:
    """Mean held-out cosine overall and per relatedness bin (single-label texts, whose bin is unambiguous)."""
    encoder = train_toy_encoder(factory)
    x, labels = toy_multi_label_set(40, seed=2)  # held-out rows: fresh noise
    with torch.no_grad():
        z = torch.nn.functional.normalize(encoder(x), dim=-1)
    cos = z @ z.T
    off = ~torch.eye(len(z), dtype=torch.bool)
    p1, p3, d = labels[:, L["prefix_1"]], labels[:, L["prefix_3"]], labels[:, L["direction"]]
    single = labels[:, OTHER["prefix_1"][0]] == NO_LABEL
    pair = single[:, None] & single[None, :] & off
    same_path = pair & (p3[:, None] == p3[None, :])
    return {"mean": float(cos[off].mean()), "same": float(cos[same_path & (d[:, None] == d[None, :])].mean()),
            "opposite": float(cos[same_path & (d[:, None] != d[None, :])].mean()),
            "other_branch": float(cos[pair & (p1[:, None] != p1[None, :])].mean())}


def test_label_similarity_training_on_multi_label_rows_orders_the_bins_without_collapsing():
    g = trained_geometry(LabelSimilarityLoss)
    assert g["mean"] < 0.6  # a collapsed space sits near 1 (0.84 here without the uniformity term)
    assert g["same"] > g["opposite"] > g["other_branch"]  # same path, other direction above another branch


def test_hierarchical_training_on_multi_label_rows_does_not_collapse():
    g = trained_geometry(HierarchicalContrastiveLoss)
    assert g["mean"] < 0.5
    assert g["same"] > g["other_branch"] and g["same"] > g["opposite"]
    # SupCon treats a same-path text of the other direction as a negative: even with the paper's margin it ends up
    # no closer than another branch (0.19 vs 0.25 here), which is why the default objective adds label similarity
