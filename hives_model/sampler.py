"""The HiVES batch sampler: every anchor gets several positives; the rest of the batch are true negatives.

A batch's *blocks* are drawn from one theory (its hierarchy is what the blocks teach): 1 anchor + up to
``positives_per_anchor`` rows of the same full label (theory, level_1..3, direction), each block from a different
label, so every block member has positives at every level. A ``negative_fraction`` of the batch is then filled
with rows of any theory that share no level-1 prefix, through any of their labels, with any block row: negatives
that really are negatives (random rows of the blocks' own theory mostly share a level-1 branch with some block, on
multi-label Touché23 arguments 88 % of the time), among them the easy cross-theory ones. With
``pair_opposite_blocks`` a supporting block is followed by the opposing block of the same path (and vice versa) when
the data have one, so the direction margin meets support/oppose pairs of one value in most batches (drawn at random
they almost never share a batch). The order inside a batch carries no meaning: the losses read each row's labels.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler

from hives_model.data import NO_LABEL, OTHER, L, TrainingDataError


class HierarchicalBatchSampler(DefaultBatchSampler):
    """Seeded per epoch (``seed + epoch``), so a run is reproducible; yields ``ceil(n / batch_size)`` batches."""

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns=None, generator=None,
                 seed: int = 0, positives_per_anchor: int = 3, negative_fraction: float = 0.25,
                 pair_opposite_blocks: bool = True) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                         generator=generator, seed=seed)
        if positives_per_anchor < 1:
            raise TrainingDataError(f"positives_per_anchor must be >= 1, got {positives_per_anchor}")
        if batch_size < 2:
            raise TrainingDataError(f"batch size {batch_size} cannot hold an anchor and a positive (need >= 2)")
        if not 0 <= negative_fraction < 1:
            raise TrainingDataError(f"negative_fraction must be in [0, 1), got {negative_fraction}")
        labels = np.asarray(dataset["label"], dtype=np.int64)
        self.labels = labels
        self.positives_per_anchor = positives_per_anchor
        self.negative_fraction = negative_fraction
        self.pair_opposite_blocks = pair_opposite_blocks
        self.by_theory: dict[int, np.ndarray] = {}
        self.blocks: dict[int, list[np.ndarray]] = defaultdict(list)
        groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for i, row in enumerate(labels):
            groups[(int(row[L["theory"]]), int(row[L["prefix_3"]]), int(row[L["direction"]]))].append(i)
        self.twin: dict[int, dict[int, int]] = defaultdict(dict)  # theory -> block -> opposite-direction block
        where: dict[tuple[int, int, int], int] = {}
        for (theory, path, direction), members in sorted(groups.items()):
            if len(members) >= 2:
                where[(theory, path, direction)] = len(self.blocks[theory])
                self.blocks[theory].append(np.asarray(members))
        for (theory, path, direction), b in where.items():
            if direction in (-1, 1) and (theory, path, -direction) in where:
                self.twin[theory][b] = where[(theory, path, -direction)]
        for theory in np.unique(labels[:, L["theory"]]):
            self.by_theory[int(theory)] = np.flatnonzero(labels[:, L["theory"]] == theory)
        self.level1 = labels[:, [L["prefix_1"], *OTHER["prefix_1"]]]  # every level-1 prefix of a row's text
        if not self.blocks:
            raise TrainingDataError(
                "no (theory, path, direction) label has 2 or more rows, so no batch can hold positives; "
                "add texts or use a coarser labelling"
            )
        self.theories = sorted(self.blocks)
        weights = np.array([sum(len(b) for b in self.blocks[t]) for t in self.theories], dtype=float)
        self.theory_weights = weights / weights.sum()

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last and n >= self.batch_size else max(1, math.ceil(n / self.batch_size))

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        for _ in range(len(self)):
            yield self._batch(rng)

    def _batch(self, rng: np.random.Generator) -> list[int]:
        theory = self.theories[rng.choice(len(self.theories), p=self.theory_weights)]
        size = min(self.batch_size, len(self.by_theory[theory]))
        block_budget = max(2, size - round(size * self.negative_fraction))
        batch: list[int] = []
        texts: set[int] = set()

        def take(i: int) -> bool:
            key = int(self.labels[i, L["text_key"]])
            if key in texts:  # a multi-label text twice in one batch would be its own negative
                return False
            batch.append(int(i))
            texts.add(key)
            return True

        order: list[int] = []
        for b in rng.permutation(len(self.blocks[theory])).tolist():
            if b in order:
                continue
            order.append(b)
            twin = self.twin[theory].get(b) if self.pair_opposite_blocks else None
            if twin is not None and twin not in order:
                order.append(twin)
        for b in order:
            room = block_budget - len(batch)
            if room < 2:
                break
            members = rng.permutation(self.blocks[theory][b])
            taken = 0
            start = len(batch)
            for i in members:
                if taken == min(room, self.positives_per_anchor + 1):
                    break
                taken += take(i)
            if taken == 1:  # a lone row is no block; give its place back
                texts.discard(int(self.labels[batch[start], L["text_key"]]))
                del batch[start:]
        chosen = set(batch)
        branches = np.setdiff1d(np.unique(self.level1[batch]), [NO_LABEL])
        candidates = rng.permutation(len(self.labels))
        clean = ~np.isin(self.level1[candidates], branches).any(axis=1)
        # true negatives first; when the data hold too few (one small theory), related rows fill the rest: the
        # losses leave what is related but not positive out of each anchor's softmax
        for i in np.concatenate([candidates[clean], candidates[~clean]]):
            if len(batch) >= min(self.batch_size, len(self.labels)):
                break
            if int(i) not in chosen:
                take(int(i))
        return batch
