"""Probes (Akyürek et al. 2022): can a quantity be decoded, linearly or by a small MLP, from a layer's
activations at the token that predicts ``y_i``?

Targets (computed from the prompt for every position ``i``, i.e. from the ``i`` examples before it):

- ``w``: the prompt's true weight vector (tasks whose prompts carry one: linear families, representation);
- ``xty``: ``X^T Y`` of the prefix;
- ``w_ols``: the (minimum-norm) least-squares weights of the prefix;
- ``w_ridge``: ridge weights of the prefix, ``lam`` = the task's noise variance (1.0 when noiseless);
- ``phi``: the task's feature map of the current input, ``Phi(x_i)`` (representation, Fourier, monomials).

Each probe is trained on 70% of the prompts and scored on the rest by ``R^2`` (1: decoded exactly; 0: no
better than the mean; pooled over target coordinates). The control is the same probe on a randomly
initialised network of the same configuration: what the architecture alone makes decodable.

Example::

    rows = probe_model(model, task, task.eval_prompts(2000, seed=0), targets=["w_ols", "w"])
    [(r["hook"], r["r2_test"]) for r in rows if r["network"] == "trained"]
"""

from __future__ import annotations

import copy

import torch

from iclab.analysis.cache import resolve_hooks, run_with_cache
from iclab.errors import UserError
from iclab.learners.base import exclusive_cumsum
from iclab.types import Prompts

TARGETS = ("w", "xty", "w_ols", "w_ridge", "phi")


def probe_target(task, prompts: Prompts, name: str) -> torch.Tensor:
    """The target ``name`` at every position, ``(B, N, F)`` (float64)."""
    from iclab.learners.least_squares import LeastSquares, Ridge

    if name not in TARGETS:
        raise UserError(f"probe target {name!r} is unknown; choose from {', '.join(TARGETS)}")
    reason = task.probe_target_unsupported(name)
    if reason is not None:
        raise UserError(f"probe target {name!r} does not apply to task {task.name!r}: {reason}")
    b, n, d = prompts.xs.shape
    xs, ys = prompts.xs.double(), prompts.ys.double()
    if name == "phi":
        return task.features(prompts.xs).double()
    if name == "w":
        w = prompts.info["w"]
        return w.double().unsqueeze(1).expand(b, n, w.shape[1])
    if name == "xty":
        return exclusive_cumsum(xs * ys.unsqueeze(-1), dim=1)
    if name == "w_ols":
        return LeastSquares().weights(xs, ys)
    lam = getattr(task.config, "noise_std", 0.0) ** 2 or 1.0
    return Ridge(lam=lam).weights(xs, ys)


def _r2(pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor) -> float:
    return 1.0 - ((pred - target) ** 2).sum().item() / max(((target - mean) ** 2).sum().item(), 1e-300)


def fit_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    kind: str = "linear",
    lam: float = 1e-3,
    hidden: int = 64,
    steps: int = 300,
    seed: int = 0,
) -> dict:
    """Fit a probe ``features (n, D) -> target (n, F)`` and return ``{"r2_train", "r2_test"}``.

    ``linear``: ridge regression with an intercept on standardised features (``lam`` relative to the
    feature variance). ``mlp``: one hidden ReLU layer of ``hidden`` units, full-batch Adam for ``steps``.
    """
    if kind not in ("linear", "mlp"):
        raise UserError(f"probe kind {kind!r} is unknown; choose linear or mlp")
    train_x, test_x, train_y, test_y = (t.double() for t in (train_x, test_x, train_y, test_y))
    mu, sd = train_x.mean(0), train_x.std(0).clamp_min(1e-8)
    a, c = (train_x - mu) / sd, (test_x - mu) / sd
    y_mu = train_y.mean(0)
    if kind == "linear":
        gram = a.T @ a + lam * len(a) * torch.eye(a.shape[1], dtype=a.dtype)
        coef = torch.linalg.solve(gram, a.T @ (train_y - y_mu))
        fit_train, fit_test = a @ coef + y_mu, c @ coef + y_mu
    else:
        y_sd = train_y.std(0).clamp_min(1e-8)
        g = torch.Generator().manual_seed(seed)
        w1 = (torch.randn(a.shape[1], hidden, generator=g, dtype=a.dtype) / a.shape[1] ** 0.5).requires_grad_()
        b1 = torch.zeros(hidden, dtype=a.dtype, requires_grad=True)
        w2 = (torch.randn(hidden, train_y.shape[1], generator=g, dtype=a.dtype) / hidden**0.5).requires_grad_()
        b2 = torch.zeros(train_y.shape[1], dtype=a.dtype, requires_grad=True)
        opt = torch.optim.Adam([w1, b1, w2, b2], lr=1e-2)
        target = (train_y - y_mu) / y_sd

        def net(x):
            return torch.relu(x @ w1 + b1) @ w2 + b2

        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                loss = ((net(a) - target) ** 2).mean()
                loss.backward()
                opt.step()
        with torch.no_grad():
            fit_train, fit_test = net(a) * y_sd + y_mu, net(c) * y_sd + y_mu
    return {"r2_train": _r2(fit_train, train_y, y_mu), "r2_test": _r2(fit_test, test_y, y_mu)}


def default_layer_hooks(model) -> list[str]:
    """One hook per depth: the residual stream entering block 0, then after every block (state hooks for
    recurrent networks)."""
    from iclab.models import hook_points

    names = list(hook_points(model))
    post = [n for n in names if n.startswith("blocks.") and n.endswith(".hook_resid_post")]
    if post:
        return ["blocks.0.hook_resid_pre", *post]
    states = [n for n in names if n.startswith("blocks.") and n.endswith(".hook_state") and n.count(".") == 2]
    return ["hook_embed", *states]


def random_init_like(model, seed: int = 12345):
    """A copy of ``model`` with freshly initialised weights (the probes' control)."""
    from iclab.models import build_model

    torch.manual_seed(seed)
    fresh = build_model(copy.deepcopy(model.config), model.n_dims, model.n_classes)
    return fresh.to(next(model.parameters()).device)


def probe_model(
    model,
    task,
    prompts: Prompts,
    targets=("w_ols",),
    hooks: list[str] | None = None,
    kinds=("linear",),
    per_position: bool = False,
    min_k: int = 1,
    control: bool = True,
    train_fraction: float = 0.7,
    seed: int = 0,
) -> list[dict]:
    """Probe every hook (names or glob patterns; default one per depth) for every target and probe kind.

    Activations at the readout tokens of positions ``k >= min_k`` are pooled (or, with ``per_position``,
    one probe per ``k``). Returns rows ``{network, hook, depth, target, probe, k, r2_train, r2_test}``
    where ``network`` is ``trained`` or ``random init`` (the control) and ``k`` is ``"all"`` when pooled.
    """
    hooks = resolve_hooks(model, hooks) if hooks is not None else default_layer_hooks(model)
    wanted = {t: probe_target(task, prompts, t) for t in targets}  # errors for inapplicable targets come first
    n_train = int(round(train_fraction * prompts.batch_size))
    if n_train < 2 or prompts.batch_size - n_train < 2:
        raise UserError(f"probes need at least 4 prompts, got {prompts.batch_size}")
    networks = [("trained", model)] + ([("random init", random_init_like(model))] if control else [])
    rows = []
    for label, net in networks:
        _, cache = run_with_cache(net, prompts, hooks)
        for depth, hook in enumerate(hooks):
            acts = cache.at_readout(hook).double()  # (B, N, D)
            acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
            ks = list(range(min_k, prompts.n_points))
            groups = [[k] for k in ks] if per_position else [ks]
            for target, values in wanted.items():
                for kind in kinds:
                    for group in groups:
                        x = acts[:, group]
                        y = values[:, group]
                        fit = fit_probe(
                            x[:n_train].reshape(-1, x.shape[-1]),
                            y[:n_train].reshape(-1, y.shape[-1]),
                            x[n_train:].reshape(-1, x.shape[-1]),
                            y[n_train:].reshape(-1, y.shape[-1]),
                            kind=kind,
                            seed=seed,
                        )
                        rows.append(
                            {
                                "network": label,
                                "hook": hook,
                                "depth": depth,
                                "target": target,
                                "probe": kind,
                                "k": group[0] if per_position else "all",
                                **{k: round(v, 5) for k, v in fit.items()},
                            }
                        )
    return rows
