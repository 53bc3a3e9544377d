"""Pasting (Guo et al. 2023): do a trained transformer's upper layers run linear in-context learning on
their own?

Take a transformer trained on a representation task ``y = <w, Phi(x)> + noise``; keep its blocks from
``layer`` up (and its final norm and read-out) frozen, and put in front of them a fresh linear embedding
of the tokens built from ``(Phi(x), y)`` instead of ``(x, y)``. Only that embedding is trained, on the
task's own prompts with inputs replaced by ``Phi(x)``. If the upper layers implement linear ICL, the
pasted network approaches ridge on ``Phi(x)`` after a short training; the control does the same with
randomly initialised upper layers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from iclab.errors import UserError
from iclab.types import Prompts


class Pasted(nn.Module):
    """A fresh token embedding in front of blocks ``layer ..`` of a transformer (frozen)."""

    def __init__(self, model, layer: int, width: int) -> None:
        super().__init__()
        net = copy.deepcopy(model.backbone)
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.layer = layer
        self.encoder = model.encoder
        self.read_in = nn.Linear(self.encoder.width(width), net.config.n_embd)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        tokens, layout = self.encoder.encode(xs, ys)
        b, t, _ = tokens.shape
        x = self.read_in(tokens) + self.net.pos_embed(layout.positions).unsqueeze(0).expand(b, t, -1)
        for block in self.net.blocks[self.layer :]:
            x = block(x, layout)
        out = self.net.read_out(self.net.ln_f(x)).squeeze(-1)
        return out[:, layout.readout]


def paste(
    model,
    task,
    layer: int | None = None,
    steps: int = 500,
    lr: float = 1e-2,
    batch_size: int = 64,
    n_eval: int = 1000,
    seed: int = 0,
    control: bool = True,
    log=None,
) -> dict:
    """Train a fresh ``(Phi(x), y)`` embedding into the upper layers ``layer ..`` (default: the upper half)
    and return error-vs-k curves ``{"trained upper layers": [...], "random upper layers": [...],
    "feature ridge": [...]}`` (errors divided by the task's error scale) and the layer used."""
    from iclab.analysis.probes import random_init_like
    from iclab.learners import make_learner

    if model.config.name != "transformer":
        raise UserError(f"pasting needs a transformer, got model {model.config.name!r}")
    if task.features(task.eval_prompts(1, seed=0).xs) is None:
        raise UserError(
            f"pasting needs a task with a fixed feature map Phi (e.g. representation); {task.name!r} has none"
        )
    n_layer = model.config.n_layer
    layer = n_layer // 2 if layer is None else layer
    if not 0 <= layer < n_layer:
        raise UserError(f"paste layer must be in 0 .. {n_layer - 1}, got {layer}")
    if log is not None:
        log(f"pasting at layer {layer} ...")
    width = task.features(task.eval_prompts(1, seed=0).xs).shape[-1]
    test = task.eval_prompts(n_eval, seed=seed + 77)
    test_phi = Prompts(task.features(test.xs), test.ys)
    device = next(model.parameters()).device
    curves = {}
    sources = [("trained upper layers", model)] + (
        [("random upper layers", random_init_like(model))] if control else []
    )
    for label, source in sources:
        torch.manual_seed(seed)
        pasted = Pasted(source, layer, width).to(device)
        opt = torch.optim.Adam(pasted.read_in.parameters(), lr=lr)
        for step in range(steps):
            batch = task.train_batch(batch_size, seed + 1000, step)
            xs, ys = task.features(batch.xs).to(device), batch.ys.to(device)
            loss = task.loss(pasted(xs, ys), ys)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = pasted(test_phi.xs.to(device), test_phi.ys.to(device)).cpu()
        curves[label] = task.error(pred.double(), test.ys.double()).mean(0).tolist()
    ridge = make_learner(task.relevant_learners()[0], task=task)  # the Bayes learner on Phi(x)
    curves[ridge.label] = task.error(ridge.predict(test).double(), test.ys.double()).mean(0).tolist()
    return {"layer": layer, "steps": steps, "curves": curves}
