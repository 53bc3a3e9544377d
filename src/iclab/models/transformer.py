"""GPT-2-style transformer (Radford et al. 2019), as used for in-context regression by Garg et al. 2022.

Pre-LayerNorm blocks, multi-head attention through ``torch.nn.functional.scaled_dot_product_attention``
(causal, or with the encoder's mask), GELU MLP, GPT-2's initialisation. The shell
(:mod:`iclab.models.shell`) adds the linear read-in, learned absolute positions, the final LayerNorm and
the read-out; the config is :class:`iclab.models.configs.TransformerConfig`.

Hooks (``B`` batch, ``T`` tokens, ``D`` width, ``H`` heads, ``Dh = D / H``)::

    hook_embed                     (B, T, D)    read-in of the tokens
    hook_pos_embed                 (B, T, D)    learned position embeddings, broadcast over the batch
                                                (with ``positional: rope``, q and k are rotated instead)
    blocks.{l}.hook_resid_pre      (B, T, D)    residual stream entering block l
    blocks.{l}.attn.hook_q/k/v     (B, H, T, Dh)
    blocks.{l}.attn.hook_pattern   (B, H, T, T) attention probabilities (computed explicitly only
                                                while hooked; otherwise the fused kernel runs)
    blocks.{l}.hook_attn_out       (B, T, D)    attention output added to the residual stream
    blocks.{l}.hook_resid_mid      (B, T, D)
    blocks.{l}.hook_mlp_out        (B, T, D)
    blocks.{l}.hook_resid_post     (B, T, D)
    hook_final                     (B, T, D)    after the final LayerNorm, before the read-out
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.configs import TransformerConfig
from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.models.shell import MLP


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021, RoFormer) of ``x (B, H, T, Dh)`` at ``positions (T,)``: channel
    pairs ``(i, i + Dh/2)`` rotated by ``position * base^(-2i/Dh)``, so ``q . k`` depends on the offset only."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32).unsqueeze(-1) * freqs  # (T, Dh/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern = HookPoint()
        self.proj = nn.Linear(c.n_embd, c.n_embd)
        self.dropout = c.dropout
        self.rope = c.positional == "rope"
        self.token_shift = c.token_shift
        # Primer's multi-dconv-head attention: a causal depthwise convolution over the last qkv_conv tokens
        # on every channel of q, k and v
        self.qkv_conv = (
            nn.Conv1d(3 * c.n_embd, 3 * c.n_embd, c.qkv_conv, groups=3 * c.n_embd, padding=c.qkv_conv - 1)
            if c.qkv_conv
            else None
        )

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        b, t, dm = x.shape
        h = self.n_head
        mask = layout.attn_mask
        qkv = self.qkv(x)
        if self.qkv_conv is not None:  # causal: drop the look-ahead of the padded convolution
            qkv = self.qkv_conv(qkv.transpose(1, 2))[..., :t].transpose(1, 2)
        q, k, v = qkv.view(b, t, 3, h, dm // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        if self.token_shift:  # causal: the key at position t is made from token t - 1 (its value from token t)
            k = F.pad(k, (0, 0, 1, 0))[:, :, :-1]
        if self.rope:
            q, k = rotary(q, layout.positions), rotary(k, layout.positions)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        p = self.dropout if self.training else 0.0
        if self.hook_pattern.active:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, T, T)
            allowed = mask if mask is not None else torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            pattern = self.hook_pattern(scores.masked_fill(~allowed, float("-inf")).softmax(-1))
            y = F.dropout(pattern, p, self.training) @ v
        elif mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(b, t, dm)  # (B, T, D)
        return self.proj(y)


class TransformerBlock(nn.Module):
    """Pre-LN: ``x + attn(ln1(x))``, then ``+ mlp(ln2(x))``."""

    def __init__(self, c: TransformerConfig, width: int) -> None:
        super().__init__()
        # modules are registered in forward order, so hook names list in forward order
        self.hook_resid_pre = HookPoint()
        self.ln1 = nn.LayerNorm(c.n_embd)
        self.attn = Attention(c)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = nn.LayerNorm(c.n_embd)
        self.mlp = MLP(c.n_embd, c.mlp_ratio * c.n_embd)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.drop(self.attn(self.ln1(x), layout))))
        x = self.hook_resid_post(x + self.hook_mlp_out(self.drop(self.mlp(self.ln2(x)))))
        return x

    @staticmethod
    def init_weights(network: nn.Module) -> None:
        # GPT-2: N(0, 0.02) everywhere, residual projections scaled down by sqrt(2 * n_layer)
        for module in network.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for block in network.blocks:
            if not isinstance(block, TransformerBlock):  # inserted n-gram layers have no projection to scale
                continue
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * network.config.n_layer))
