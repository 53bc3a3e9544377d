"""Hybrid networks from a list of blocks: softmax attention (with or without rotary positions), any memory rule, the
selective SSM and the feed-forward MLP, in the order the config lists them.

Each entry of ``model.blocks`` is one pre-norm residual sub-layer, ``x + mixer(norm(x))``, written as a name or a
call (the same syntax as ``iclab finetune --method``)::

    attention                     softmax attention, the transformer family's (learned absolute positions)
    attention(rope=true)          with rotary q/k (Su et al. 2021); also token_shift, qkv_conv as the transformer's
    memory(rule=gated_delta)      a matrix-memory layer; any field of the memory family but its size (rule, form,
                                  decay, window, feature_map, token_shift)
    mamba                         the selective SSM (Gu & Dao 2023); d_state, d_conv, expand, dt_rank, form
    mlp                           the feed-forward sub-layer (model.mlp: gelu or swiglu, model.mlp_ratio)

``model.n_layer`` repeats the whole list (Jamba-style patterns: ``blocks: [attention, mlp, mamba, mlp]``,
``n_layer: 4`` is 16 sub-layers), so layer ``l`` of a hybrid is one pass through the list and its sub-layers are
``blocks.{l}.{j}``. The width, heads and norm are the network's; learned absolute positions are added to the read-in
unless ``positional: none`` (rotary attention, the memory layers' token shift and the SSM's recurrence carry order
on their own). Reads the interleaved stream (causal): every mixer here is causal.

Hooks (sub-layer ``j`` of layer ``l``; the mixers' own hooks as in their families)::

    hook_embed, hook_pos_embed                 (B, T, D)
    blocks.{l}.hook_resid_pre                  (B, T, D)    entering layer l
    blocks.{l}.{j}.hook_in                     (B, T, D)    the residual stream entering sub-layer j
    blocks.{l}.{j}.attn.hook_q/k/v/pattern     attention: as the transformer's
    blocks.{l}.{j}.mem.hook_q/k/v              memory: as the memory family's
    blocks.{l}.{j}.ssm.hook_delta/B/C/state    mamba: as the SSM family's
    blocks.{l}.{j}.hook_out                    (B, T, D)    the sub-layer's output, added to the residual stream
    blocks.{l}.hook_resid_post                 (B, T, D)    leaving layer l
    hook_final                                 (B, T, D)

Initialisation: attention and MLP sub-layers GPT-2's (N(0, 0.02), output projections scaled by
``1 / sqrt(2 * sub-layers)``), memory and SSM sub-layers their families' own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import nn

from iclab.errors import ConfigError
from iclab.models.encoders import Layout
from iclab.models.family import MODELS, ModelConfig, heads_divide_width
from iclab.models.hooks import HookPoint
from iclab.models.memory import MemoryConfig, MemorySublayer
from iclab.models.ngram_heads import with_ngram_layers
from iclab.models.parts import (
    feed_forward,
    learned_positions,
    linear_read_out,
    norm,
    position_embeddings,
    read_in,
)
from iclab.models.ssm import MambaConfig, SelectiveSSM
from iclab.models.transformer import Attention, TransformerConfig
from iclab.schema import from_dict, parse_call, require, require_positive

# the block kinds, each with the fields of its family's config that an entry may set
KINDS = {
    "attention": ("rope", "token_shift", "qkv_conv"),
    "memory": ("rule", "form", "decay", "window", "feature_map", "token_shift"),
    "mamba": ("d_state", "d_conv", "expand", "dt_rank", "form"),
    "mlp": (),
}
_SUBMODULE = {"attention": "attn", "memory": "mem", "mamba": "ssm", "mlp": "mlp"}


@MODELS.register
@dataclass
class HybridConfig(ModelConfig):
    """A network from a list of blocks: attention (optionally rotary), memory layers, the selective SSM, MLPs."""

    name: str = "hybrid"
    encoder: str = "interleaved"
    blocks: list[str] = field(default_factory=lambda: ["attention", "mlp", "memory(rule=gated_delta)", "mlp"])
    n_layer: int = 1  # repeats of the list
    n_embd: int = 64
    n_head: int = 4
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    mlp: Literal["gelu", "swiglu"] = "gelu"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    bias: bool = True  # biases in the attention and MLP sub-layers' linear maps and LayerNorms (Llama has none)
    positional: Literal["learned", "none"] = "learned"  # learned absolute positions on the read-in, or none
    n_positions: int | None = None  # learned positions; null = fitted to the task

    quick: ClassVar[dict] = {"n_embd": 32, "n_head": 2, "blocks": ["attention", "memory(rule=delta)", "mlp"]}

    def build(self, d_in: int, n_outputs: int = 1, vocab_size: int | None = None) -> HybridNetwork:
        return HybridNetwork(self, d_in, n_outputs, vocab_size)

    def validate(self, path: str = "model") -> None:
        super().validate(path)
        heads_divide_width(self, path)
        require_positive(self, path, "mlp_ratio")
        if self.n_positions is not None:
            require_positive(self, path, "n_positions")
        require(len(self.blocks) > 0, f"{path}.blocks", "must list at least one block", self.blocks)
        for j in range(len(self.blocks)):
            self.sublayer_config(j, f"{path}.blocks[{j}]")

    def sublayer_config(self, j: int, where: str = "") -> tuple[str, object]:
        """``(kind, config)`` of entry ``j``: the family config its mixer is built from (None for an MLP)."""
        where = where or f"model.blocks[{j}]"
        spec = self.blocks[j]
        if not isinstance(spec, str):
            raise ConfigError(f"{where}: expected a block such as 'attention(rope=true)', got {spec!r}")
        if spec.count("(") != spec.count(")"):  # a YAML flow list splits an unquoted entry at its commas
            raise ConfigError(
                f"{where}: {spec!r} was cut at a comma; quote an entry with several settings: "
                "\"model.blocks=['attention(rope=true, token_shift=true)', mlp]\""
            )
        kind, args = parse_call(spec, where)
        if kind not in KINDS:
            raise ConfigError(f"{where}: unknown block {kind!r}; blocks: {', '.join(KINDS)}")
        for key in args:
            if key not in KINDS[kind]:
                allowed = ", ".join(KINDS[kind]) or "none"
                article = "an" if kind[0] in "aeiou" else "a"
                raise ConfigError(f"{where}.{key}: not a setting of {article} {kind} block; its settings: {allowed}")
        size = {"n_embd": self.n_embd, "n_head": self.n_head, "n_layer": 1}
        if kind == "attention":
            rope = args.pop("rope", False)
            require(isinstance(rope, bool), f"{where}.rope", "must be true or false", rope)
            if rope:
                require(
                    (self.n_embd // self.n_head) % 2 == 0,
                    f"{where}.rope",
                    f"needs an even head width (n_embd / n_head = {self.n_embd // self.n_head})",
                    rope,
                )
            data = {**size, **args, "positional": "rope" if rope else "learned", "bias": self.bias, "n_positions": 1}
            return kind, from_dict(TransformerConfig, data, where)
        if kind == "memory":
            return kind, from_dict(MemoryConfig, {**size, **args, "n_positions": 1}, where)
        if kind == "mamba":
            return kind, from_dict(MambaConfig, {"n_embd": self.n_embd, "n_layer": 1, **args}, where)
        return kind, None

    def parameters_lower_bound(self) -> int:
        mats = {"attention": 4, "memory": 4, "mamba": 3, "mlp": (3 if self.mlp == "swiglu" else 2) * self.mlp_ratio}
        return self.n_layer * sum(mats[parse_call(b, "model.blocks")[0]] for b in self.blocks) * self.n_embd**2

    def activations_lower_bound(self) -> int:
        return self.n_layer * 4 * len(self.blocks) * self.n_embd  # each sub-layer's mixer, output and residuals

    def label(self, tokens: bool = False) -> str:
        parts = []
        for spec in self.blocks:
            kind, args = parse_call(spec, "model.blocks")
            parts.append(
                "rope attention"
                if kind == "attention" and args.get("rope")
                else f"{args.get('rule', 'delta')} memory"
                if kind == "memory"
                else kind
            )
        repeat = f"{self.n_layer}x" if self.n_layer > 1 else ""
        return f"Hybrid {repeat}[{', '.join(parts)}] {self.n_embd}"


__all__ = ["HybridConfig", "HybridLayer", "HybridNetwork", "HybridSublayer"]


class HybridSublayer(nn.Module):
    """One entry of the list: ``x + mixer(norm(x))``, the mixer under its family's name (``attn``, ``mem``,
    ``ssm`` or ``mlp``)."""

    def __init__(self, c: HybridConfig, j: int) -> None:
        super().__init__()
        self.kind, sub = c.sublayer_config(j)
        self.hook_in = HookPoint()
        self.ln = norm(c.norm, c.n_embd, c.bias)
        if self.kind == "attention":
            mixer = Attention(sub)
        elif self.kind == "memory":
            mixer = MemorySublayer(sub)
        elif self.kind == "mamba":
            mixer = SelectiveSSM(sub)
        else:
            mixer = feed_forward(c.mlp, c.n_embd, c.mlp_ratio * c.n_embd, c.bias)
        self.add_module(_SUBMODULE[self.kind], mixer)
        self.hook_out = HookPoint()

    @property
    def mixer(self) -> nn.Module:
        return getattr(self, _SUBMODULE[self.kind])

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_in(x)
        h = self.ln(x)
        out = self.mixer(h, layout) if self.kind == "attention" else self.mixer(h)
        return x + self.hook_out(out)


class HybridLayer(nn.Module):
    """One pass through the list of blocks (layer ``l`` of the network), its sub-layers named ``0, 1, ...``."""

    def __init__(self, c: HybridConfig) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.n_sublayers = len(c.blocks)
        for j in range(self.n_sublayers):
            self.add_module(str(j), HybridSublayer(c, j))
        self.hook_resid_post = HookPoint()

    def sublayers(self) -> list[HybridSublayer]:
        return [getattr(self, str(j)) for j in range(self.n_sublayers)]

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        for sub in self.sublayers():
            x = sub(x, layout)
        return self.hook_resid_post(x)


class HybridNetwork(nn.Module):
    """Read-in, learned positions (unless ``positional: none``), the layers (with any n-gram layers), final norm,
    read-out."""

    def __init__(self, config: HybridConfig, d_in: int, n_outputs: int = 1, vocab_size: int | None = None):
        super().__init__()
        self.config = config
        width = config.n_embd
        self.read_in = read_in(d_in, width, vocab_size)
        self.hook_embed = HookPoint()
        self.pos_embed = learned_positions(config, width) if config.positional == "learned" else None
        if self.pos_embed is not None:
            self.hook_pos_embed = HookPoint()
        layers = [HybridLayer(config) for _ in range(config.n_layer)]
        self.blocks = nn.ModuleList(with_ngram_layers(layers, config, width))
        self.ln_f = norm(config.norm, width, config.bias)
        self.hook_final = HookPoint()
        self.read_out = nn.Linear(width, n_outputs)
        self._init_weights()

    def forward(self, tokens: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.hook_embed(self.read_in(tokens))  # (B, T, D)
        if self.pos_embed is not None:
            x = x + self.hook_pos_embed(position_embeddings(self.pos_embed, layout.positions, x.shape[0]))
        for block in self.blocks:
            x = block(x, layout)
        return linear_read_out(self.read_out(self.hook_final(self.ln_f(x))))

    def _init_weights(self) -> None:
        depth = self.config.n_layer * len(self.config.blocks)
        for sub in self.modules():
            if not (isinstance(sub, HybridSublayer) and sub.kind in ("attention", "mlp")):
                continue
            for module in sub.mixer.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=0.02)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
            nn.init.normal_(sub.mixer.proj.weight, std=0.02 / math.sqrt(2 * depth))
