"""One-shot structured pruning without retraining: score every attention head and MLP neuron on one batch, keep the
most important until a share of their FLOPs is kept, and write the masked network as a run folder.

Methods (``prune.method``):

- ``optin`` (Khaki & Plataniotis 2024, "The Need for Speed: Pruning Transformers with One Recipe", OPTIN; code
  Skhaki18/optin-transformer-pruning): a unit's importance is what removing it alone does to the network, on the
  ranking batch: the sum over the *later* layers of the squared Frobenius distance between the layer's normalised
  feature Gram matrices (each token's residual stream scaled to unit length, 768 tokens of the batch) with and
  without the unit, plus ``kl_weight`` times the change of the output: the KL divergence of the output
  distributions for logits, the squared error (over the task's error scale) for real-valued predictions. Each term is
  divided by its mean over the units, so ``kl_weight`` is the output term's weight against the Gram term (the
  reference code rescales its KL term by a power of ten towards a target ratio instead).
  Two things the reference code does are left out on purpose: it multiplies each neuron's score by a prior that
  decays geometrically with the neuron's index (100 down to 1), and its masks are not reset between units in some
  paths; here every unit is scored alone against the unpruned network.
- ``magnitude``: the product of the norms of the unit's input and output weights (a head: its q, k, v rows and its
  output-projection columns; a neuron: its first-layer row and second-layer column).
- ``random``: a random order (``prune.seed``).

The budget is split between the two kinds: heads keep ``keep`` of the heads' FLOPs and neurons ``keep`` of the
neurons', each ranked globally over the layers (:func:`iclab.models.pruning.prunable_units` gives each unit's
multiply-adds per token).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from iclab.config import PRUNE_METHODS, RunConfig
from iclab.errors import ConfigError
from iclab.models.hooks import capture
from iclab.models.pruning import Unit, prunable_units, unit_mask

__all__ = [
    "ablation_effects",
    "apply_choice",
    "choose",
    "prune_config",
    "prune_run",
    "rank_correlation",
    "rank_units",
    "score_units",
]

GRAM_TOKENS = 768  # token features per Gram matrix (the reference code's K)


def _outputs(model, batch) -> torch.Tensor:
    return model(batch.tokens) if hasattr(batch, "tokens") else model(batch.xs, batch.ys)


def _resid_names(model) -> list[str]:
    """Every block's residual-stream output hook, in block order."""
    from iclab.models.hooks import hook_points

    names = [n for n in hook_points(model) if re.fullmatch(r"blocks\.\d+\.hook_resid_post", n)]
    return sorted(names, key=lambda n: int(n.split(".")[1]))


def _forward(model, batch, names: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's outputs and every block's residual-stream output, flattened to ``(tokens, D)``."""
    with torch.no_grad(), capture(model, names) as cache:
        out = _outputs(model, batch)
    return out.double(), [cache[name].flatten(0, -2) for name in names]


def _grams(features: list[torch.Tensor], rows: torch.Tensor) -> list[torch.Tensor]:
    """The Gram matrix of the normalised features at the sampled token ``rows``, per layer."""
    out = []
    for f in features:
        f = F.normalize(f[rows].double(), dim=-1)
        out.append(f @ f.T)
    return out


def _output_change(base: torch.Tensor, now: torch.Tensor, scale: float) -> float:
    if base.dim() == 3:  # logits: KL(base || pruned), mean over positions
        p = base.log_softmax(-1)
        return float((p.exp() * (p - now.log_softmax(-1))).sum(-1).mean())
    return float(((now - base) ** 2).mean() / scale)


def _magnitude(model, unit: Unit) -> float:
    block = list(getattr(model, "backbone", model).blocks)[unit.layer]
    if unit.kind == "head":
        attn = block.attn
        d = attn.proj.in_features
        dh = d // attn.n_head
        rows = torch.cat([torch.arange(j * d + unit.index * dh, j * d + (unit.index + 1) * dh) for j in range(3)])
        cols = slice(unit.index * dh, (unit.index + 1) * dh)
        return float(attn.qkv.weight[rows].norm() * attn.proj.weight[:, cols].norm())
    mlp = block.mlp
    reads = [m.weight[unit.index] for m in (mlp.fc, getattr(mlp, "gate", None)) if m is not None]  # SwiGLU: both
    return float(torch.cat(reads).norm() * mlp.proj.weight[:, unit.index].norm())


def score_units(model, batch, method: str, kl_weight: float = 1.0, seed: int = 0, error_scale: float = 1.0):
    """``(units, scores)`` for every head and neuron of a masked ``model`` (all masks one) on ``batch``; a higher
    score is a more important unit. ``error_scale`` divides a real-valued output's squared error (the task's)."""
    names = _resid_names(model)
    base_out, base_features = _forward(model, batch, names)
    per_prompt = base_features[0].shape[0] // len(base_out)  # tokens the network reads per prompt
    units = prunable_units(model, per_prompt)
    if method == "random":
        g = torch.Generator().manual_seed(seed)
        return units, torch.rand(len(units), generator=g, dtype=torch.float64).tolist()
    if method == "magnitude":
        with torch.no_grad():
            return units, [_magnitude(model, u) for u in units]
    g = torch.Generator().manual_seed(seed)
    n_tokens = base_features[0].shape[0]
    rows = torch.randperm(n_tokens, generator=g)[: min(GRAM_TOKENS, n_tokens)]
    base_grams = _grams(base_features, rows)
    gram_terms, out_terms = [], []
    for unit in units:
        mask = unit_mask(model, unit)
        mask[unit.index] = 0.0
        out, features = _forward(model, batch, names)
        grams = _grams(features, rows)
        mask[unit.index] = 1.0
        later = range(unit.layer + 1, len(names))
        gram_terms.append(sum(float(((grams[i] - base_grams[i]) ** 2).sum()) for i in later))
        out_terms.append(_output_change(base_out, out, error_scale))

    def normalised(values: list[float]) -> list[float]:
        mean = sum(values) / len(values)
        return [v / mean if mean > 0 else 0.0 for v in values]

    scores = [a + kl_weight * b for a, b in zip(normalised(gram_terms), normalised(out_terms))]
    return units, scores


def choose(units: list[Unit], scores: list[float], keep: float) -> list[bool]:
    """Which units stay: per kind, the highest-scoring until ``keep`` of that kind's FLOPs is kept (ties: the
    earlier unit)."""
    kept = [False] * len(units)
    for kind in ("head", "neuron"):
        idx = [i for i, u in enumerate(units) if u.kind == kind]
        if not idx:
            continue
        total = sum(units[i].flops for i in idx)
        spent = 0.0
        for i in sorted(idx, key=lambda i: (-scores[i], i)):
            if spent >= keep * total - 1e-9:
                break
            kept[i] = True
            spent += units[i].flops
    return kept


def apply_choice(model, units: list[Unit], kept: list[bool]) -> None:
    """Write the chosen units into the masks (1 kept, 0 pruned)."""
    with torch.no_grad():
        for unit, k in zip(units, kept):
            unit_mask(model, unit)[unit.index] = 1.0 if k else 0.0


def ablation_effects(model, task, batch, units: list[Unit]) -> list[float]:
    """Each unit's measured single-unit ablation effect: the task's loss on ``batch`` with the unit alone removed,
    minus the loss of the whole network."""
    with torch.no_grad():
        base = float(task.batch_loss(model, batch))
        effects = []
        for unit in units:
            mask = unit_mask(model, unit)
            mask[unit.index] = 0.0
            effects.append(float(task.batch_loss(model, batch)) - base)
            mask[unit.index] = 1.0
    return effects


def rank_units(model, task, cfg: RunConfig, effects: list[float] | None = None):
    """Score every unit of the masked ``model`` with ``cfg.prune``'s method on one batch of the training
    distribution, and measure each unit's single-unit ablation effect on other, held-out prompts (not the
    evaluation's): ``(units, scores, effects)``. ``effects`` already measured (they do not depend on the method)
    are passed through."""
    from iclab.utils import derive_seed

    p = cfg.prune
    batch = task.train_batch(p.batch_size, derive_seed(p.seed, 7), 0)
    held_out = task.eval_prompts(p.batch_size, cfg.eval.seed + 1)
    scale = float(getattr(task, "error_scale", 1.0) or 1.0)
    units, scores = score_units(model, batch, p.method, p.kl_weight, p.seed, scale)
    return units, scores, effects if effects is not None else ablation_effects(model, task, held_out, units)


def rank_correlation(units: list[Unit], scores: list[float], effects: list[float]) -> dict[str, float | None]:
    """Spearman's rank correlation between the scores and the measured ablation effects, per kind of unit (None
    where it is undefined: a constant score or effect)."""
    from scipy.stats import spearmanr

    out = {}
    for kind in ("head", "neuron"):
        idx = [i for i, u in enumerate(units) if u.kind == kind]
        if len(idx) > 2:
            rho = spearmanr([scores[i] for i in idx], [effects[i] for i in idx]).statistic
            out[kind] = None if rho != rho else round(float(rho), 4)
    return out


def prune_config(run_dir: str | Path, method: str, keep: float, overrides: list[str] | None = None) -> RunConfig:
    """``iclab prune RUN --method M --keep F``: the base's config with a ``prune`` section, named
    ``<base>-<method><keep>``."""
    from iclab.change import changed_config, parse_call
    from iclab.config import read_run_config

    name, kwargs = parse_call(method, "--method")
    if name not in PRUNE_METHODS:
        raise ConfigError(f"--method: {name!r} is not a pruning method; methods: {', '.join(PRUNE_METHODS)}")
    base = read_run_config(Path(run_dir))
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise ConfigError(f"--keep: must be a share of the FLOPs in (0, 1], got {keep!r}")
    if name == "magnitude" and getattr(base.model, "linear", "dense") != "dense":
        raise ConfigError(
            f"--method: magnitude reads the heads' and neurons' weight rows, which a model.linear="
            f"{base.model.linear} network does not have; use optin or random"
        )
    section = {"method": name, "keep": float(keep), **kwargs}
    named = [f"name={base.name}-{name}{keep:g}"]
    if base.prune is not None:
        raise ConfigError(f"{run_dir}: is already pruned; prune the run it came from ({base.start.run})")
    return changed_config(run_dir, named + list(overrides or []), prune=section)


def prune_run(cfg: RunConfig, run_dir: Path) -> dict:
    """Score, choose and write the pruned network of ``cfg`` (its ``start`` run, its ``prune`` section) into the new
    folder ``run_dir``: a checkpoint at the base's step (masks beside the weights), ``start.json`` and
    ``prune.json`` (every unit's score, its single-unit ablation effect on held-out prompts and whether it was kept,
    with the rank correlation of the two). Returns what ``prune.json`` holds."""
    from iclab.config import save_config, to_dict
    from iclab.kinds import build_run_network
    from iclab.tasks import make_task
    from iclab.training.checkpoint import save_checkpoint
    from iclab.training.loop import make_optimizer
    from iclab.training.start import load_start
    from iclab.utils import atomic_write_text

    p = cfg.prune
    task = make_task(cfg.task)
    model = build_run_network(cfg, task)
    record = load_start(cfg, model)
    model.eval()
    units, scores, effects = rank_units(model, task, cfg)
    kept = choose(units, scores, p.keep)
    apply_choice(model, units, kept)
    flops_total = sum(u.flops for u in units)
    summary = {
        "method": p.method,
        "keep": p.keep,
        "kept_flops_share": sum(u.flops for u, k in zip(units, kept) if k) / flops_total,
        "heads_kept": sum(k for u, k in zip(units, kept) if u.kind == "head"),
        "heads": sum(u.kind == "head" for u in units),
        "neurons_kept": sum(k for u, k in zip(units, kept) if u.kind == "neuron"),
        "neurons": sum(u.kind == "neuron" for u in units),
        "score_vs_ablation_spearman": rank_correlation(units, scores, effects),
        "units": [
            {
                "unit": u.name,
                "kind": u.kind,
                "layer": u.layer,
                "index": u.index,
                "flops": u.flops,
                "score": s,
                "ablation_effect": e,
                "kept": k,
            }
            for u, s, e, k in zip(units, scores, effects, kept)
        ],
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "metrics.jsonl", "")
    atomic_write_text(run_dir / "start.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(run_dir / "prune.json", json.dumps(summary, indent=1) + "\n")
    save_config(cfg, run_dir / "config.yaml")
    state = {"elapsed_s": 0.0, "config": to_dict(cfg), "pruned_from_step": record["step"]}
    save_checkpoint(run_dir, record["step"], model, make_optimizer(model, cfg), state, cfg.train.keep_checkpoints)
    return summary
