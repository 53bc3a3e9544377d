"""Capacity of a memory layer's write rule, without training (the "a matrix memory of width d stores about
d associations; polynomial features raise that" claim of the memory-layer papers: ATLAS, Titans, DeltaNet).

    from iclab.analysis.memory_capacity import recall_error
    recall_error("delta", n_keys=24, key_dim=8)                        # 24 keys in 8 dimensions
    recall_error("delta", n_keys=24, key_dim=8, feature_map="poly2")   # a larger key space: a lower error

(the figures, with ``python benchmarks/memory_recall.py``, are in docs/models.md)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iclab.models.memory import memory_recurrent, poly2_features


def recall_error(
    rule: str,
    n_keys: int,
    key_dim: int,
    feature_map: str = "identity",
    value_dim: int | None = None,
    n_trials: int = 100,
    seed: int = 0,
    strengths=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
) -> float:
    """Capacity of a write rule, without training: write ``n_keys`` associations (random unit keys in
    ``key_dim`` dimensions, values ``N(0, I)``) into one memory with the rule (no forgetting), read every
    key back, and return the mean squared recall error per value coordinate (0: perfect recall; 1: no
    better than recalling nothing), at the best constant write strength ``beta`` in ``strengths`` (what a
    trained layer would tune; for Hebbian writes it scales the read-out). ``feature_map="poly2"`` stores
    ``phi(key)`` (normalised) instead: the memory grows to ``key_dim + key_dim (key_dim + 1) / 2`` columns."""
    g = torch.Generator().manual_seed(seed)
    dv = value_dim or key_dim
    keys = F.normalize(torch.randn(n_trials, 1, n_keys, key_dim, generator=g, dtype=torch.float64), dim=-1)
    values = torch.randn(n_trials, 1, n_keys, dv, generator=g, dtype=torch.float64)
    if feature_map == "poly2":
        keys = F.normalize(poly2_features(keys), dim=-1)
    # the writes, then n_keys reads: tokens that write nothing (zero key and value) and query each key
    k = torch.cat([keys, torch.zeros_like(keys)], dim=2)
    v = torch.cat([values, torch.zeros_like(values)], dim=2)
    q = torch.cat([torch.zeros_like(keys), keys], dim=2)
    ones = torch.ones(n_trials, 1, 2 * n_keys, dtype=torch.float64)
    errors = []
    hebbian = memory_recurrent(q, k, v, rule, decay=1.0)[:, :, n_keys:] if rule in ("linear", "decay") else None
    for beta in strengths:
        if hebbian is not None:  # a Hebbian memory is linear in the write strength: one pass, rescaled
            recalled = beta * hebbian
        else:
            recalled = memory_recurrent(q, k, v, rule, beta=beta * ones, alpha=ones, eta=0 * ones)[:, :, n_keys:]
        errors.append(((recalled - values) ** 2).mean().item())
    return min(errors)
