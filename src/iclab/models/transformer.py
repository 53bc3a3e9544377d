"""GPT-2-style transformer (Radford et al. 2019), as used for in-context regression by Garg et al. 2022.

Pre-LayerNorm blocks, learned absolute position embeddings, multi-head attention through
``torch.nn.functional.scaled_dot_product_attention`` (causal, or with the encoder's mask), GELU MLP,
a linear read-in from the encoder's token width and a linear read-out to one scalar per token.

Hooks (``B`` batch, ``T`` tokens, ``D`` width, ``H`` heads, ``Dh = D / H``)::

    hook_embed                     (B, T, D)    read-in of the tokens
    hook_pos_embed                 (B, T, D)    position embeddings, broadcast over the batch
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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.hooks import HookPoint
from iclab.schema import require, require_positive


@dataclass
class TransformerConfig:
    name: str = "transformer"
    encoder: str = "interleaved"  # "interleaved" (Garg et al.), "stacked" (von Oswald et al.) or "set" (order-invariant)
    n_layer: int = 4
    n_embd: int = 64  # residual stream width D
    n_head: int = 4
    n_positions: int | None = None  # learned positions; null = just enough for the task's prompts
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    dropout: float = 0.0

    def label(self) -> str:
        """The network's name in tables and plots: ``Transformer 4x64 (stacked)``."""
        return f"Transformer {self.n_layer}x{self.n_embd} ({self.encoder})"

    def validate(self, path: str = "model") -> None:
        from iclab.models.encoders import ENCODERS

        require(self.encoder in ENCODERS, f"{path}.encoder", f"must be one of {', '.join(ENCODERS)}", self.encoder)
        require_positive(self, path, "n_layer", "n_embd", "n_head", "mlp_ratio")
        if self.n_positions is not None:
            require_positive(self, path, "n_positions")
        require(self.n_embd % self.n_head == 0, f"{path}.n_embd", f"must be divisible by model.n_head "
                f"({self.n_head})", self.n_embd)
        require(0 <= self.dropout < 1, f"{path}.dropout", "must be in [0, 1)", self.dropout)


class Attention(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern = HookPoint()
        self.proj = nn.Linear(c.n_embd, c.n_embd)
        self.dropout = c.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, dm = x.shape
        h = self.n_head
        q, k, v = self.qkv(x).view(b, t, 3, h, dm // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
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


class MLP(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(c.n_embd, c.mlp_ratio * c.n_embd)
        self.proj = nn.Linear(c.mlp_ratio * c.n_embd, c.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        # modules are registered in forward order, so hook names list in forward order
        self.hook_resid_pre = HookPoint()
        self.ln1 = nn.LayerNorm(c.n_embd)
        self.attn = Attention(c)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = nn.LayerNorm(c.n_embd)
        self.mlp = MLP(c)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.drop(self.attn(self.ln1(x), mask))))
        x = self.hook_resid_post(x + self.hook_mlp_out(self.drop(self.mlp(self.ln2(x)))))
        return x


class Transformer(nn.Module):
    """Maps tokens ``(B, T, d_in)`` to one scalar per token ``(B, T)`` (or ``n_outputs`` logits, ``(B, T, C)``)."""

    Config = TransformerConfig
    encoders = ("interleaved", "stacked", "set")

    def __init__(self, config: TransformerConfig, d_in: int, n_outputs: int = 1) -> None:
        super().__init__()
        if config.n_positions is None:
            raise ValueError("TransformerConfig.n_positions must be resolved before building the model")
        self.config = config
        self.read_in = nn.Linear(d_in, config.n_embd)
        self.hook_embed = HookPoint()
        self.pos_embed = nn.Embedding(config.n_positions, config.n_embd)
        self.hook_pos_embed = HookPoint()
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(config.n_embd, n_outputs)
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2: N(0, 0.02) everywhere, residual projections scaled down by sqrt(2 * n_layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        b, t, _ = tokens.shape
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        pos = self.hook_pos_embed(self.pos_embed(layout.positions).unsqueeze(0).expand(b, t, -1))
        x = self.drop(x + pos)
        for block in self.blocks:
            x = block(x, layout.attn_mask)
        x = self.hook_final(self.ln_f(x))
        out = self.read_out(x)  # (B, T, n_outputs)
        return out.squeeze(-1) if out.shape[-1] == 1 else out
