"""The one fine-tuning loop of the project: an encoder and a head that starts from its closed-form fit, moved
together by AdamW with a linear warm-up over the first tenth of the steps and a linear decay to 0.

The learned judge (``valueflow.judges.value_head.tune_encoder``) and HiVES (``hives_model.encoder_tuning``) each
bring their own loss and batches; the optimiser, schedule and bookkeeping are the same, so they live here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np


def fine_tune(model, parameter_groups: list[dict], batches: Callable[[], Iterable[np.ndarray]],
              batch_loss: Callable[[np.ndarray], object], *, epochs: int,
              echo: Callable[[str], None] | None = None, what: str = "fine-tuning") -> list[float]:
    """Train ``parameter_groups`` (AdamW groups, each with its ``lr``; weight decay 0.01) for ``epochs``: each epoch
    walks ``batches()`` (row indices) and steps on ``batch_loss(batch)`` (a mean over the batch's rows). ``model``
    is in train mode meanwhile and left in eval mode. Returns each epoch's mean loss per row."""
    import torch

    plan = [list(batches()) for _ in range(epochs)]  # drawn up front: the schedule knows the number of steps
    optimiser = torch.optim.AdamW(parameter_groups, weight_decay=0.01)
    steps = max(1, sum(map(len, plan)))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1.0, 0.1 * steps)) * max(0.0, (steps - s) / steps))
    losses: list[float] = []
    model.train()
    try:
        for epoch, epoch_batches in enumerate(plan):
            total, rows = 0.0, 0
            for batch in epoch_batches:
                loss = batch_loss(batch)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total, rows = total + loss.item() * len(batch), rows + len(batch)
            losses.append(total / max(1, rows))
            if echo:
                echo(f"{what}: epoch {epoch + 1}/{epochs}, loss {losses[-1]:.4f}")
    finally:
        model.eval()
    return losses
