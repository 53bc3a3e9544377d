"""GPT-2-style transformer (Radford et al. 2019), as used for in-context regression by Garg et al. 2022.

This file is the whole family, top to bottom: its config (:class:`TransformerConfig`), its blocks (attention,
the pre-norm block) and its network (:class:`Transformer`: linear read-in or token embedding, learned absolute
positions or rotary q/k, the blocks, final norm, read-out, GPT-2's initialisation). Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` (causal, or with the encoder's mask). A Llama block
(Touvron et al. 2023) is a config of this family: ``positional: rope``, ``norm: rmsnorm``, ``mlp: swiglu``,
``bias: false``.

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
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from iclab.models.encoders import Layout
from iclab.models.family import MODELS, ModelConfig, heads_divide_width
from iclab.models.hashed import HashedLinear
from iclab.models.hooks import HookPoint
from iclab.models.ngram_heads import with_ngram_layers
from iclab.models.parts import (
    feed_forward,
    learned_positions,
    linear_read_out,
    norm,
    position_embeddings,
    read_in,
)
from iclab.models.pattention import Pattention
from iclab.schema import one_of, require, require_positive

HASHED_TARGETS = ("qkv", "proj", "mlp")  # the maps ``linear: hashed`` may replace


@MODELS.register
@dataclass
class TransformerConfig(ModelConfig):
    """GPT-2-style transformer (Radford et al. 2019; Garg et al. 2022): pre-LN softmax attention + GELU MLP."""

    name: str = "transformer"
    encoder: str = (
        "interleaved"  # "interleaved" (Garg et al.), "stacked" (von Oswald et al.) or "set" (order-invariant)
    )
    n_layer: int = 4
    n_embd: int = 64  # residual stream width D
    n_head: int = 4
    n_positions: int | None = None  # learned positions; null = just enough for the task's prompts
    # learned absolute positions, rotary q/k (RoPE), or none (position prediction's pretext: order is never told)
    positional: Literal["learned", "rope", "none"] = "learned"
    # keys from the previous token (values from the token itself), as the memory layers' token shift: one
    # head can then look up "what followed this token before" (an induction head in one layer)
    token_shift: bool = False
    # Primer's multi-dconv-head attention (So et al. 2021): a causal depthwise convolution over this many
    # tokens on q, k and v after their projection (0 = none; Primer uses 3), so one head can match the last
    # few tokens at once (an n-gram head in one layer)
    qkv_conv: int = 0
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    # Llama's block is a config of this family (Touvron et al. 2023): positional: rope, norm: rmsnorm, mlp: swiglu,
    # bias: false
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"  # every pre-norm and the final norm
    mlp: Literal["gelu", "swiglu"] = "gelu"  # GPT-2's tanh-GELU MLP, or the gated SwiGLU (Shazeer 2020)
    bias: bool = True  # biases in the blocks' linear maps and LayerNorms (Llama has none)
    dropout: float = 0.0
    # "pattention": TokenFormer's layers (Wang et al. 2024) in place of the q/k/v and output projections and of the
    # MLP (one Pattention layer, as TokenFormer's feed-forward), each over param_tokens key-value parameter tokens
    linear: Literal["dense", "pattention", "hashed"] = "dense"
    param_tokens: int = 128  # parameter tokens per Pattention layer (iclab grow appends more)
    param_scale_tokens: int | None = None  # the count the normalisation scales by; null = param_tokens (grown: old)
    pattention_norm: Literal["gelu_l2", "softmax"] = "gelu_l2"  # the reference code's default, or softmax
    # "hashed": MemoryFormer's hashed memory layers (Ding et al. 2024; iclab.models.hashed) in place of the linear
    # maps listed in ``hashed``: the q/k/v projection, the attention's output projection, the MLP's two maps
    hashed: list[str] = field(default_factory=lambda: ["qkv", "mlp"])
    hash_bits: int = 8  # tau: bits of each chunk's code, 2^tau rows per table
    hash_score: Literal["probability", "scaled"] = "probability"  # the paper's score, or the reference code's
    hash_temperature: float = 1.0

    encoders: ClassVar[tuple[str, ...]] = ("interleaved", "stacked", "set")
    quick: ClassVar[dict] = {"encoder": "stacked", "n_layer": 2, "n_embd": 32, "n_head": 2}
    bidirectional: ClassVar[bool] = True  # attention takes a padding mask (a task that reads its whole input)

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> Transformer:
        return Transformer(self, d_in, n_outputs, vocab_size)

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        heads_divide_width(self, path)
        require_positive(self, path, "mlp_ratio")
        if self.n_positions is not None:
            require_positive(self, path, "n_positions")
        require(0 <= self.dropout < 1, f"{path}.dropout", "must be in [0, 1)", self.dropout)
        if self.token_shift:
            require(
                self.encoder != "set",
                f"{path}.token_shift",
                "does not go with the set encoder (its demonstrations have no order to shift along)",
                self.token_shift,
            )
        require(self.qkv_conv >= 0, f"{path}.qkv_conv", "must be 0 (none) or a convolution width", self.qkv_conv)
        if self.qkv_conv:
            require(
                self.encoder != "set",
                f"{path}.qkv_conv",
                "does not go with the set encoder (its demonstrations have no order to convolve along)",
                self.qkv_conv,
            )
        if self.linear == "hashed":
            for i, target in enumerate(self.hashed):
                require(target in HASHED_TARGETS, f"{path}.hashed[{i}]", one_of(HASHED_TARGETS), target)
            require_positive(self, path, "hash_bits")
            require(
                self.hash_bits <= 16, f"{path}.hash_bits", "must be at most 16 (2^16 rows per table)", self.hash_bits
            )
            require(self.hash_temperature > 0, f"{path}.hash_temperature", "must be positive", self.hash_temperature)
            widths = {"n_embd": self.n_embd} | (
                {"mlp_ratio * n_embd": self.mlp_ratio * self.n_embd} if "mlp" in self.hashed else {}
            )
            for name, width in widths.items():
                require(
                    width % self.hash_bits == 0,
                    f"{path}.hash_bits",
                    f"must divide {name} ({width}): each table reads hash_bits dimensions",
                    self.hash_bits,
                )
        if self.linear == "pattention":
            require(
                self.mlp == "gelu",
                f"{path}.mlp",
                "must be gelu under linear: pattention (TokenFormer's feed-forward is one Pattention layer)",
                self.mlp,
            )
            require_positive(self, path, "param_tokens")
            if self.param_scale_tokens is not None:
                require_positive(self, path, "param_scale_tokens")
        if self.positional == "rope":
            require(
                (self.n_embd // self.n_head) % 2 == 0,
                f"{path}.n_embd",
                f"rope needs an even head width (n_embd / n_head = {self.n_embd // self.n_head})",
                self.n_embd,
            )

    def parameters_lower_bound(self) -> int:
        if self.linear == "pattention":  # q/k/v (D -> 3D), out and feed-forward (D -> D): n (d_in + d_out) each
            return self.n_layer * 8 * self.param_tokens * self.n_embd
        mlp = 3 if self.mlp == "swiglu" else 2  # the MLP's matrices
        return self.n_layer * (4 + mlp * self.mlp_ratio) * self.n_embd**2  # q, k, v, out; the MLP

    def activations_lower_bound(self) -> int:
        return self.n_layer * (8 + self.mlp_ratio) * self.n_embd  # q, k, v, attention, residuals, MLP hidden

    def label(self, tokens: bool = False) -> str:
        parts = (
            ([] if tokens else [self.encoder])
            + (["rope"] if self.positional == "rope" else [])
            + (["no positions"] if self.positional == "none" else [])
            + (["token shift"] if self.token_shift else [])
            + ([f"qkv conv {self.qkv_conv}"] if self.qkv_conv else [])
            + ([f"pattention {self.param_tokens} tokens"] if self.linear == "pattention" else [])
            + ([f"hashed {'+'.join(self.hashed)}, tau {self.hash_bits}"] if self.linear == "hashed" else [])
            + (["RMSNorm"] if self.norm == "rmsnorm" else [])
            + (["SwiGLU"] if self.mlp == "swiglu" else [])
            + (["no bias"] if not self.bias else [])
        )
        return f"Transformer {self.n_layer}x{self.n_embd}" + (f" ({', '.join(parts)})" if parts else "")


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021, RoFormer) of ``x (B, H, T, Dh)`` at ``positions (T,)``: channel
    pairs ``(i, i + Dh/2)`` rotated by ``position * base^(-2i/Dh)``, so ``q . k`` depends on the offset only."""
    half = x.shape[-1] // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32).unsqueeze(-1) * freqs  # (T, Dh/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def linear(c: TransformerConfig, d_in: int, d_out: int, role: str = "") -> nn.Module:
    """A projection of the block (``role``: qkv, proj or mlp): ``nn.Linear``, a
    :class:`~iclab.models.pattention.Pattention` layer under ``linear: pattention``, or a
    :class:`~iclab.models.hashed.HashedLinear` under ``linear: hashed`` where ``hashed`` lists the role."""
    if c.linear == "hashed" and role in c.hashed:
        return HashedLinear(d_in, d_out, c.hash_bits, c.hash_temperature, c.hash_score, bias=c.bias)
    if c.linear in ("dense", "hashed"):
        return nn.Linear(d_in, d_out, bias=c.bias)
    return Pattention(d_in, d_out, c.param_tokens, c.pattention_norm, c.param_scale_tokens)


class Attention(nn.Module):
    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.n_head = c.n_head
        self.qkv = linear(c, c.n_embd, 3 * c.n_embd, "qkv")
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern = HookPoint()
        self.proj = linear(c, c.n_embd, c.n_embd, "proj")
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
        # prefix tuning (Li & Liang 2021; He et al. 2022): learned keys and values every query also attends to,
        # (H, l, Dh) each; set by iclab.models.petl, None otherwise
        self.register_parameter("prefix_k", None)
        self.register_parameter("prefix_v", None)
        self.register_buffer("head_mask", None)  # (H,) when pruned (iclab.models.pruning)

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
        if self.prefix_k is not None:
            y = self._with_prefix(q, k, v, mask, p)
        elif self.hook_pattern.active:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, T, T)
            allowed = mask if mask is not None else torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            pattern = self.hook_pattern(scores.masked_fill(~allowed, float("-inf")).softmax(-1))
            y = F.dropout(pattern, p, self.training) @ v
        elif mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        if self.head_mask is not None:
            y = y * self.head_mask.view(1, h, 1, 1)
        y = y.transpose(1, 2).reshape(b, t, dm)  # (B, T, D)
        return self.proj(y)

    def _with_prefix(self, q, k, v, mask, p: float) -> torch.Tensor:
        """Attention over the prefix's keys and values (visible to every query, no position) and then the
        tokens': ``(B, H, T, Dh)``. ``hook_pattern`` records the tokens' share, ``(B, H, T, T)``, whose rows sum to
        1 - lambda (the prefix's share, He et al.'s gate)."""
        b, t, n = q.shape[0], q.shape[2], self.prefix_k.shape[1]
        pk = self.prefix_k.unsqueeze(0).expand(b, -1, -1, -1).to(k.dtype)
        pv = self.prefix_v.unsqueeze(0).expand(b, -1, -1, -1).to(v.dtype)
        allowed = mask if mask is not None else torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        allowed = torch.cat([torch.ones(*allowed.shape[:-1], n, dtype=torch.bool, device=q.device), allowed], -1)
        k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        if self.hook_pattern.active:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            pattern = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
            self.hook_pattern(pattern[..., n:])
            return F.dropout(pattern, p, self.training) @ v
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)


class TransformerBlock(nn.Module):
    """Pre-norm: ``x + attn(ln1(x))``, then ``+ mlp(ln2(x))`` (LayerNorm or RMSNorm; GELU MLP or SwiGLU)."""

    def __init__(self, c: TransformerConfig, width: int) -> None:
        super().__init__()
        # modules are registered in forward order, so hook names list in forward order
        self.hook_resid_pre = HookPoint()
        self.ln1 = norm(c.norm, c.n_embd, c.bias)
        self.attn = Attention(c)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = norm(c.norm, c.n_embd, c.bias)
        hidden = c.mlp_ratio * c.n_embd
        if c.linear == "pattention":  # TokenFormer's feed-forward: one Pattention layer
            self.mlp = linear(c, c.n_embd, c.n_embd)
        else:
            self.mlp = feed_forward(c.mlp, c.n_embd, hidden, c.bias, lambda d_in, d_out: linear(c, d_in, d_out, "mlp"))
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.drop(self.attn(self.ln1(x), layout))))
        x = self.hook_resid_post(x + self.hook_mlp_out(self.drop(self.mlp(self.ln2(x)))))
        return x


class Transformer(nn.Module):
    """The network: read-in, positions, dropout, the blocks (with any n-gram layers), final LayerNorm, read-out."""

    def __init__(self, config: TransformerConfig, d_in: int, n_outputs: int = 1, vocab_size: int | None = None):
        super().__init__()
        self.config = config
        width = config.n_embd
        # modules are registered in forward order (hook names list in forward order; initial weights follow)
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = learned_positions(config, width) if config.positional == "learned" else None
        if self.pos_embed is not None:
            self.hook_pos_embed = HookPoint()
        self.drop = nn.Dropout(config.dropout)
        layers = [TransformerBlock(config, width) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.ln_f = norm(config.norm, width, config.bias)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)
        self._init_weights()

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        if self.pos_embed is not None:
            x = x + self.hook_pos_embed(position_embeddings(self.pos_embed, layout.positions, x.shape[0]))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(self.ln_f(x))))  # (B, T) or (B, T, C)

    def _init_weights(self) -> None:
        # GPT-2: N(0, 0.02) everywhere, residual projections scaled down by sqrt(2 * n_layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        for block in self.blocks:
            if not isinstance(block, TransformerBlock):  # inserted n-gram layers have no projection to scale
                continue
            for proj in (block.attn.proj, getattr(block.mlp, "proj", block.mlp)):
                out = (
                    proj.weight
                    if isinstance(proj, nn.Linear)
                    else proj.tables
                    if isinstance(proj, HashedLinear)
                    else proj.param_values
                )
                nn.init.normal_(out, std=0.02 / math.sqrt(2 * self.config.n_layer))
