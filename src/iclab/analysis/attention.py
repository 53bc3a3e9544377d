"""Attention patterns and linear self-attention weight products.

- :func:`attention_patterns`: the softmax attention of every layer and head, averaged over prompts
  (``(L, H, T, T)``), from the transformer's ``attn.hook_pattern`` hooks (linear self-attention: its
  unnormalised ``attn.hook_scores``, one "head").
- :func:`lsa_products`: for each linear self-attention layer, ``W_K^T W_Q`` (which input coordinates a
  query matches against a key) and ``W_P W_V`` (what a matched token writes), and their agreement with
  von Oswald et al.'s gradient-descent construction, where ``W_K^T W_Q = [[I_d, 0], [0, 0]]`` and
  ``W_P W_V = -eta e_y e_y^T``: the cosine similarity of the matrices (Frobenius inner product) and the
  best scale ``c`` in ``product ~ c * construction``. Negating both products gives the same layer, so
  the pair is reported with the sign that makes ``W_K^T W_Q`` agree with the construction.
"""

from __future__ import annotations

import torch

from iclab.analysis.cache import run_with_cache
from iclab.errors import UserError
from iclab.types import Prompts


def attention_patterns(model, prompts: Prompts) -> dict[str, torch.Tensor]:
    """Mean attention per layer: ``{hook name: (H, T, T)}`` (linear self-attention: ``(1, T, T)`` scores)."""
    from iclab.models import hook_points

    names = [n for n in hook_points(model) if n.endswith(("attn.hook_pattern", "attn.hook_scores"))]
    if not names:
        raise UserError(
            f"model {model.config.name!r} has no attention patterns (hooks: {', '.join(hook_points(model))})"
        )
    _, cache = run_with_cache(model, prompts, names)
    out = {}
    for n in names:
        t = cache[n].double().mean(0)
        out[n] = t if t.dim() == 3 else t.unsqueeze(0)
    return out


def _agreement(product: torch.Tensor, construction: torch.Tensor) -> dict:
    p, c = product.double().flatten(), construction.double().flatten()
    cos = (p @ c / (p.norm() * c.norm()).clamp_min(1e-300)).item()
    return {"cosine": cos, "scale": (p @ c / (c @ c)).item()}


def lsa_products(model) -> list[dict]:
    """Per linear self-attention layer: ``{"layer", "kq", "pv", "kq_vs_gd", "pv_vs_gd"}`` with the products
    as tensors and their agreement with the gradient-descent construction."""
    net = getattr(model, "backbone", model)
    if getattr(net, "config", None) is None or net.config.name != "linear_self_attention":
        raise UserError("weight products are defined for linear_self_attention models only")
    width = net.blocks[0].attn.w_q.shape[0]
    d = width - 2
    gd_kq = torch.zeros(width, width, dtype=torch.float64)
    gd_kq[:d, :d] = torch.eye(d)
    gd_pv = torch.zeros(width, width, dtype=torch.float64)
    gd_pv[d, d] = -1.0
    rows = []
    for i, block in enumerate(net.blocks):
        a = block.attn
        kq = (a.w_k.T @ a.w_q).detach().double()  # score(q_i, k_j) = h_j^T (W_K^T W_Q) h_i
        pv = (a.w_p @ a.w_v).detach().double()
        if (kq * gd_kq).sum() < 0:  # (-KQ, -PV) is the same layer: report the sign that matches the construction's KQ
            kq, pv = -kq, -pv
        rows.append(
            {"layer": i, "kq": kq, "pv": pv, "kq_vs_gd": _agreement(kq, gd_kq), "pv_vs_gd": _agreement(pv, gd_pv)}
        )
    return rows
