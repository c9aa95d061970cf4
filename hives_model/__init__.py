"""HiVES: hierarchical value embedding model: training pairs, losses, sampler, training, export, metrics."""
