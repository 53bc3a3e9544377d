"""Parameter-efficient fine-tuning (He, Zhou, Ma, Berg-Kirkpatrick, Neubig 2022, "Towards a Unified View of
Parameter-Efficient Transfer Learning"; code jxhe/unify-parameter-efficient-tuning): what each method adds to a
trained network, and which parameters then train.

    full              every parameter
    readout           the read-out only
    lora              W x + (alpha / r) B A x on the blocks' linear maps named in ``targets`` (Hu et al. 2021)
    adapter           sequential bottleneck after each MLP: h + up(ReLU(down(h))) (Houlsby et al. 2019)
    parallel_adapter  beside each MLP: MLP(x) + s * up(ReLU(down(x))) (He et al. 2022)
    prefix            l learned keys and values per attention layer that every query also attends to
                      (Li & Liang 2021)
    mam               prefix on attention + a scaled parallel adapter on the MLP (He et al.'s "mix-and-match")

LoRA's ``B`` and the adapters' up-projections start at zero, so before its first step the changed network computes
exactly what the base computes. A prefix cannot: for any finite prefix every query gives it a positive share
``lambda`` of its attention, and the output is ``(1 - lambda) Attn(x) + lambda softmax(q P_k^T) P_v`` (He et al.'s
gated form, tested); ``P_v`` starts at zero and ``P_k`` small, so the start is the base's attention scaled by
``1 - lambda``.

Names keep the base's: a LoRA map is still ``blocks.0.attn.qkv`` (with ``lora_a``, ``lora_b`` beside its weight),
an adapter is ``blocks.0.mlp.adapter``, a prefix ``blocks.0.attn.prefix_k``, so the base's state dict loads into
the changed network as it is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from iclab.errors import ConfigError
from iclab.models.parts import MLP
from iclab.models.transformer import Attention

__all__ = ["LoRALinear", "Adapter", "apply_petl", "merge_lora", "petl_parameters", "trainable_parameters"]

PREFIX_INIT_STD = 0.02  # P_k's initial scale (P_v starts at zero)


class LoRALinear(nn.Linear):
    """A linear map with a low-rank update: ``W x + b + (alpha / r) B A x``, ``A (r, in)`` Kaiming-uniform and ``B
    (out, r)`` zero at the start (Hu et al. 2021). ``weight`` and ``bias`` are the base's own parameters."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        nn.Module.__init__(self)  # not nn.Linear's: the weight and bias are the base's, not new ones
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(r, self.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, r, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises a weight
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scaling

    def merged(self) -> nn.Linear:
        """The plain linear map ``W + (alpha / r) B A`` (same bias) that computes what this one computes."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=self.weight.device)
        with torch.no_grad():
            out.weight.copy_(self.weight + self.scaling * self.lora_b @ self.lora_a)
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out


class Adapter(nn.Module):
    """Bottleneck ``up(ReLU(down(x)))`` with the up-projection at zero, so it adds nothing at the start."""

    def __init__(self, width: int, bottleneck: int, scale: float = 1.0) -> None:
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(F.relu(self.down(x)))


# forward hooks at module level (not closures): a deep copy of the network keeps working on its own adapter
def _sequential_adapter(mlp: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return output + mlp.adapter(output)


def _parallel_adapter(mlp: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return output + mlp.adapter(inputs[0])


def _blocks(model: nn.Module) -> list[nn.Module]:
    backbone = getattr(model, "backbone", model)
    return list(getattr(backbone, "blocks", []))


def _family(model: nn.Module) -> str:
    return getattr(getattr(model, "config", None), "name", type(model).__name__)


def _refuse(method: str, family: str, why: str) -> None:
    raise ConfigError(f"finetune.method: {method} does not apply to model {family}: {why}")


def _lora_targets(model: nn.Module, targets: list[str]) -> list[tuple[nn.Module, str, nn.Linear]]:
    """``(parent, attribute, linear)`` for every linear map of the blocks whose name is a target or ends with
    ``.target``; refuses a target that matches nothing."""
    found, names = [], set()
    for block in _blocks(model):
        for name, module in block.named_modules():
            if not isinstance(module, nn.Linear) or not name:
                continue
            names.add(name)
            hit = [t for t in targets if name == t or name.endswith("." + t)]
            if hit:
                parent_name, _, attr = name.rpartition(".")
                parent = block.get_submodule(parent_name) if parent_name else block
                found.append((parent, attr, module, hit[0]))
    for i, target in enumerate(targets):
        if not any(hit == target for *_, hit in found):
            available = ", ".join(sorted(names)) or "none"
            raise ConfigError(
                f"finetune.targets[{i}]: {target!r} names no linear map of model {_family(model)}'s blocks; "
                f"its linear maps: {available}"
            )
    return [(parent, attr, module) for parent, attr, module, _ in found]


def _mlps(model: nn.Module, method: str) -> list[nn.Module]:
    mlps = [b.mlp for b in _blocks(model) if isinstance(getattr(b, "mlp", None), MLP)]
    if not mlps:
        _refuse(method, _family(model), "its blocks have no MLP sub-layer to put an adapter on")
    return mlps


def _attentions(model: nn.Module, method: str) -> list[Attention]:
    attns = [b.attn for b in _blocks(model) if isinstance(getattr(b, "attn", None), Attention)]
    if not attns:
        _refuse(method, _family(model), "a prefix needs softmax attention layers (the transformer family's)")
    return attns


def _read_out(model: nn.Module, method: str) -> nn.Linear:
    out = getattr(getattr(model, "backbone", model), "read_out", None)
    if not isinstance(out, nn.Linear):
        _refuse(method, _family(model), "it has no linear read-out (its prediction is read off the residual stream)")
    return out


def apply_petl(model: nn.Module, cfg) -> nn.Module:
    """Add ``cfg.method``'s parameters to ``model`` (in place, initialised from the current torch generator) and
    freeze everything else; returns ``model``. Refuses, with a :class:`ConfigError`, a method that does not apply
    to the family."""
    method = cfg.method
    family = _family(model)
    if family == "transformer_program" and method not in ("full", "readout"):
        _refuse(method, family, "its modules are discrete choices and lookup tables; use full or readout")
    if method == "readout":
        _read_out(model, method)
    if method == "lora":
        for parent, attr, linear in _lora_targets(model, cfg.targets):
            setattr(parent, attr, LoRALinear(linear, cfg.r, cfg.alpha))
    if method in ("adapter", "parallel_adapter", "mam"):
        parallel = method != "adapter"
        for mlp in _mlps(model, method):
            width = mlp.fc.in_features
            ref = mlp.fc.weight
            mlp.adapter = Adapter(width, cfg.bottleneck, cfg.scale if parallel else 1.0).to(ref.device, ref.dtype)
            mlp.register_forward_hook(_parallel_adapter if parallel else _sequential_adapter)
    if method in ("prefix", "mam"):
        for attn in _attentions(model, method):
            h, dh = attn.n_head, attn.proj.in_features // attn.n_head
            ref = attn.proj.weight
            attn.prefix_k = nn.Parameter(
                torch.randn(h, cfg.prefix_length, dh, device=ref.device, dtype=ref.dtype) * PREFIX_INIT_STD
            )
            attn.prefix_v = nn.Parameter(torch.zeros(h, cfg.prefix_length, dh, device=ref.device, dtype=ref.dtype))
    trains = petl_parameters(model, method)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trains:
        p.requires_grad_(True)
    return model


def petl_parameters(model: nn.Module, method: str) -> list[nn.Parameter]:
    """The parameters ``method`` trains in a network it was applied to."""
    if method == "full":
        return list(model.parameters())
    if method == "readout":
        return list(_read_out(model, method).parameters())
    marks = ("lora_a", "lora_b", "adapter.", "prefix_k", "prefix_v")
    return [p for name, p in model.named_parameters() if any(m in name for m in marks)]


def trainable_parameters(model: nn.Module) -> int:
    """How many parameters train (``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def petl_formula(model: nn.Module, cfg) -> tuple[int, str]:
    """The trainable-parameter count of ``cfg.method`` on ``model`` by formula, from the sizes alone (``D`` width,
    ``L`` layers, ``V`` read-out outputs), and the formula with its numbers: ``(count, "L * 2 l D = ...")``."""
    method = cfg.method
    if method == "full":
        n = sum(p.numel() for p in model.parameters())
        return n, f"every parameter = {n}"
    if method == "readout":
        out = _read_out(model, method)
        d, v = out.in_features, out.out_features
        n = d * v + v
        return n, f"D V + V = {d}*{v} + {v} = {n}"
    parts = []
    if method == "lora":
        shapes: dict[tuple[int, int], int] = {}
        for *_, linear in _lora_targets(model, cfg.targets):
            key = (linear.in_features, linear.out_features)
            shapes[key] = shapes.get(key, 0) + 1
        for (i, o), count in sorted(shapes.items()):
            parts.append((f"{count} maps * r (in + out) = {count}*{cfg.r}*({i}+{o})", count * cfg.r * (i + o)))
    if method in ("adapter", "parallel_adapter", "mam"):
        mlps = _mlps(model, method)
        d, b = mlps[0].fc.in_features, cfg.bottleneck
        parts.append((f"L (2 D b + b + D) = {len(mlps)}*(2*{d}*{b}+{b}+{d})", len(mlps) * (2 * d * b + b + d)))
    if method in ("prefix", "mam"):
        attns = _attentions(model, method)
        d, n_prefix = attns[0].proj.in_features, cfg.prefix_length
        parts.append((f"L 2 l D = {len(attns)}*2*{n_prefix}*{d}", len(attns) * 2 * n_prefix * d))
    total = sum(n for _, n in parts)
    shown = "; ".join(f"{text} = {n}" for text, n in parts)
    return total, shown if len(parts) == 1 else f"{shown}; total {total}"


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its weight (in place): the plain network computing the same function."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
    return model
