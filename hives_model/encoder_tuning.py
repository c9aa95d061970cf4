"""The labels head's own loss with the encoder unfrozen: the projection recipe's short fine-tune (issue 21's (c)).

Why. A frozen encoder does not hold what some real labels need: which of ValueNet's 10 values a scenario was
annotated for is predicted at top-1 0.26-0.28 from frozen all-mpnet-base-v2 embeddings, whatever the head, and an
embedding can at best encode the labels it predicts (``benchmarks/hives_label_noise.py``). Moving the encoder with
the head's own loss (masked one-vs-rest cross-entropy over the units of :func:`hives_model.projection.label_units`)
teaches it those labels; the head is then fitted again on the moved encoder's embeddings, as on a frozen one.

Why the top layers only. On 2 CPU cores all-mpnet-base-v2 trains on about 9 short texts a second with every weight
moving and about 23-33 with the top 4 of its 12 layers: the backward pass stops there. The head starts as the
logistic regressions fitted on the frozen embeddings, so the first steps move the encoder towards what the head
already reads, not towards a random head.

Measured on the default real sources of ``benchmarks/hives_real.py`` (held-out Touché23 ranking accuracy /
similarity correlation, held-out ValueNet ranking accuracy): frozen 0.591 / 0.232, 0.540; top 4 layers, 2 epochs
(about 11 minutes) 0.630 / 0.288, 0.551; 3 epochs 0.631 / 0.281, 0.549; top 6 layers, 4 epochs 0.622 / 0.260, 0.541:
past 2 epochs the encoder fits its training texts, not held-out ones.
"""

from __future__ import annotations

import numpy as np


def transformer_layers(model):
    """The encoder's list of transformer layers: the longest ``ModuleList`` inside the model's first module (BERT,
    MPNet, RoBERTa and their kin keep them in ``encoder.layer``), or None when it has none."""
    from torch import nn

    lists = [m for m in model[0].modules() if isinstance(m, nn.ModuleList)]
    return max(lists, key=len) if lists else None


def trainable_top(model, layers: int) -> list:
    """Freeze every weight of ``model`` but those of its top ``layers`` transformer layers; return those weights
    (all of the encoder's when it has fewer layers, or no layer list to cut)."""
    stack = transformer_layers(model)
    for p in model.parameters():
        p.requires_grad_(stack is None or layers >= len(stack))
    if stack is not None and layers < len(stack):
        for layer in list(stack)[len(stack) - layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of texts of similar length (little padding: the cost of a batch is its longest text), in a
    shuffled order: texts are shuffled, sorted by length within windows of 50 batches, then cut into batches."""
    order = rng.permutation(len(lengths))
    window = 50 * batch_size
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def tune_encoder(model, texts: list[str], targets: np.ndarray, masks: np.ndarray, weight: np.ndarray,
                 bias: np.ndarray, *, epochs: int, layers: int, learning_rate: float, batch_size: int,
                 head_learning_rate: float = 1e-3, seed: int = 42, echo=print) -> list[float]:
    """Fine-tune the top ``layers`` of ``model`` (a sentence-transformers model whose output the head reads
    normalised) and a linear head (starting at ``weight``, ``bias``: units x dim) on the masked one-vs-rest loss of
    the head's units, ``targets``/``masks`` (texts x units), for ``epochs`` over ``texts`` in batches of similar
    length (:func:`length_batches`). The model moves in place and is left in eval mode; returns each epoch's mean
    loss per text."""
    import torch
    from torch import nn

    from valueflow.fine_tuning import fine_tune

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        head.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))
    lengths = np.array([len(ids) for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]])
    y, m = torch.from_numpy(targets), torch.from_numpy(masks)

    def batch_loss(batch: np.ndarray):
        z = nn.functional.normalize(model(model.preprocess([texts[i] for i in batch]))["sentence_embedding"], dim=-1)
        index = torch.from_numpy(batch)
        per_unit = nn.functional.binary_cross_entropy_with_logits(head(z), y[index], reduction="none")
        return (per_unit * m[index]).sum() / len(batch)

    try:
        return fine_tune(model, [{"params": trainable_top(model, layers), "lr": learning_rate},
                                 {"params": list(head.parameters()), "lr": head_learning_rate}],
                         lambda: length_batches(lengths, batch_size, rng), batch_loss, epochs=epochs, echo=echo,
                         what="fine-tuning the HiVES encoder")
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
