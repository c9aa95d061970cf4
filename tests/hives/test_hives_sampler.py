"""The batch sampler: blocks of one theory with positives, true negatives, reproducible, refuses the impossible."""

from __future__ import annotations

import numpy as np
import pytest

from hives_model.data import L, TrainingDataError, to_dataset, training_rows
from hives_model.sampler import HierarchicalBatchSampler


def batches(dataset, seed=0, epoch=0, **kw):
    sampler = HierarchicalBatchSampler(dataset, batch_size=kw.pop("batch_size", 16), seed=seed, **kw)
    sampler.set_epoch(epoch)
    return list(sampler), sampler


def test_blocks_hold_positives_and_the_rest_are_true_negatives(seed_texts):
    dataset = to_dataset(training_rows(seed_texts))
    labels = np.asarray(dataset["label"])
    got, sampler = batches(dataset, positives_per_anchor=3, negative_fraction=0.25)
    assert len(got) == len(sampler) == int(np.ceil(len(labels) / 16))
    mixed = 0
    for batch in got:
        lab = labels[batch]
        assert len(set(lab[:, L["text_key"]])) == len(batch)  # no text twice in a batch
        full = [tuple(r) for r in lab[:, [L["prefix_3"], L["direction"]]]]
        main = np.bincount(lab[:, L["theory"]]).argmax()  # blocks teach one theory's hierarchy
        in_block = np.array([full.count(f) > 1 for f in full]) & (lab[:, L["theory"]] == main)
        assert in_block.sum() >= len(batch) * 0.75 - 1  # the block share of the batch has positives
        # the negatives share no level-1 branch with any block row
        assert not set(lab[~in_block, L["prefix_1"]]) & set(lab[in_block, L["prefix_1"]])
        mixed += len(set(lab[:, L["theory"]])) > 1
    assert mixed > len(got) / 2  # most batches hold easy cross-theory negatives too


def test_same_seed_same_batches_other_epoch_other_batches(seed_texts):
    dataset = to_dataset(training_rows(seed_texts))
    assert batches(dataset, seed=7)[0] == batches(dataset, seed=7)[0]
    assert batches(dataset, seed=7)[0] != batches(dataset, seed=7, epoch=1)[0]


def test_refuses_batches_that_cannot_hold_positives(seed_texts):
    rows = training_rows(seed_texts)
    with pytest.raises(TrainingDataError, match="cannot hold an anchor and a positive"):
        HierarchicalBatchSampler(to_dataset(rows), batch_size=1)
    one_per_label = rows.drop_duplicates(["theory", "level_1", "level_2", "level_3", "direction"])
    with pytest.raises(TrainingDataError, match="no batch can hold positives"):
        HierarchicalBatchSampler(to_dataset(one_per_label), batch_size=8)


def test_support_and_oppose_blocks_of_one_path_share_batches(seed_texts):
    # the direction margin only acts on a support/oppose pair of one path that sits in the same batch
    dataset = to_dataset(training_rows(seed_texts))
    labels = np.asarray(dataset["label"])

    def share_with_opposite_pair(pair: bool) -> float:
        got, _ = batches(dataset, seed=3, pair_opposite_blocks=pair)
        hits = 0
        for batch in got:
            lab = labels[batch]
            signed = {(p, d) for p, d in lab[:, [L["prefix_3"], L["direction"]]].tolist() if d in (-1, 1)}
            hits += any((p, -d) in signed for p, d in signed)
        return hits / len(got)

    assert share_with_opposite_pair(True) > share_with_opposite_pair(False)
    assert share_with_opposite_pair(True) >= 0.9
