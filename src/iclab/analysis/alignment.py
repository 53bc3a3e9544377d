"""Alignment between learners (a trained model or a reference algorithm): which algorithm does the model
behave like? (Akyürek et al. 2022; von Oswald et al. 2022; Panwar et al. 2023.)

- **SPD** (squared prediction difference) at ``k`` examples: ``E (y_hat_A - y_hat_B)^2``, divided by the task's
  error scale like the error curves.
- **Implicit weights**: fix the first ``k`` examples of a prompt, ask a learner for predictions at
  ``n_queries`` fresh query inputs, and fit the linear map ``w_hat`` (least squares, no intercept) that
  best explains them. **ILWD** (implicit linear weight difference) is ``E |w_hat_A - w_hat_B|^2`` over
  prompts, divided by the error scale.
- **Weight recovery** (Panwar et al.): the implied ``w_hat`` of one learner against the true ``w`` (and
  against a reference learner's weights): squared error / scale and cosine similarity, per ``k``. With
  ``2d + 1`` probe queries by default.
- **Sensitivity** (von Oswald et al.): ``d y_hat / d x_q`` at the query after ``k`` examples (autograd for
  networks, central differences for reference learners); cosine similarity and squared L2 difference
  between two learners.

Example::

    rows = alignment_table(model, task, prompts, ["least_squares", "ridge(lam=0.1)"], ks=[2, 5, 10])
"""

from __future__ import annotations

import torch

from iclab.analysis.sensitivity import query_sensitivity
from iclab.errors import UserError
from iclab.types import Prompts


def _predict(learner, prompts: Prompts) -> torch.Tensor:
    return learner.predict(prompts).double()


def spd(learner_a, learner_b, prompts: Prompts, scale: float = 1.0) -> torch.Tensor:
    """Squared prediction difference per position ``(N,)``, divided by ``scale``."""
    return ((_predict(learner_a, prompts) - _predict(learner_b, prompts)) ** 2).mean(0) / scale


def query_inputs(task, n_prompts: int, n_queries: int, seed: int = 1234) -> torch.Tensor:
    """``(B, n_queries, d)`` fresh inputs from the task's own input distribution (held-out stream)."""
    fresh = task.eval_prompts(n_prompts * n_queries, seed=seed).xs[:, 0]  # one input from each fresh prompt
    return fresh.view(n_prompts, n_queries, -1)


def implicit_weights(learner, prompts: Prompts, k: int, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_hat (B, d), r2 (B,))``: the linear map fitted to the learner's predictions at ``queries (B, M, d)``
    with the first ``k`` examples of each prompt as context, and how much of the predictions it explains."""
    b, m, d = queries.shape
    if not 0 <= k < prompts.n_points:
        raise UserError(f"k must be in 0 .. {prompts.n_points - 1}, got {k}")
    ctx_x = prompts.xs[:, :k].unsqueeze(1).expand(b, m, k, d)
    ctx_y = prompts.ys[:, :k].unsqueeze(1).expand(b, m, k)
    xs = torch.cat([ctx_x, queries.to(prompts.xs).unsqueeze(2)], dim=2).reshape(b * m, k + 1, d)
    ys = torch.cat([ctx_y, prompts.ys.new_zeros(b, m, 1)], dim=2).reshape(b * m, k + 1)
    pred = _predict(learner, Prompts(xs, ys))[:, k].view(b, m)  # the prediction at the query
    q = queries.double()
    w_hat = torch.linalg.lstsq(q, pred.unsqueeze(-1)).solution.squeeze(-1)  # (B, d)
    resid = pred - torch.einsum("bmd,bd->bm", q, w_hat)
    r2 = 1 - (resid**2).sum(-1) / ((pred - pred.mean(-1, keepdim=True)) ** 2).sum(-1).clamp_min(1e-300)
    return w_hat, r2


def ilwd(learner_a, learner_b, prompts: Prompts, k: int, queries: torch.Tensor, scale: float = 1.0) -> float:
    """Implicit linear weight difference at ``k`` examples: ``E |w_hat_A - w_hat_B|^2 / scale``."""
    wa, _ = implicit_weights(learner_a, prompts, k, queries)
    wb, _ = implicit_weights(learner_b, prompts, k, queries)
    return _weight_difference(wa, wb, scale)


def _weight_difference(wa: torch.Tensor, wb: torch.Tensor, scale: float) -> float:
    return ((wa - wb) ** 2).sum(-1).mean().item() / scale


def weight_recovery(
    learner, prompts: Prompts, k: int, queries: torch.Tensor, scale: float = 1.0, reference=None
) -> dict:
    """Panwar et al.'s weight recovery at ``k`` examples: the learner's implied weights against the true
    ``w`` (``prompts.info["w"]``) and, when given, a reference learner's implied weights."""
    w = prompts.info.get("w")
    if w is None or w.dim() != 2 or w.shape[1] != queries.shape[-1]:
        raise UserError("weight recovery needs prompts whose true function is linear in x (a weight vector w)")
    w = w.double()
    w_hat, r2 = implicit_weights(learner, prompts, k, queries)
    cos = torch.nn.functional.cosine_similarity(w_hat, w, dim=-1, eps=1e-12)
    out = {
        "k": k,
        "error_vs_true": ((w_hat - w) ** 2).sum(-1).mean().item() / scale,
        "cosine_vs_true": cos.mean().item(),
        "linear_fit_r2": r2.mean().item(),
    }
    if reference is not None:
        w_ref, _ = implicit_weights(reference, prompts, k, queries)
        out["error_vs_reference"] = ((w_hat - w_ref) ** 2).sum(-1).mean().item() / scale
        out["cosine_vs_reference"] = (
            torch.nn.functional.cosine_similarity(w_hat, w_ref, dim=-1, eps=1e-12).mean().item()
        )
    return out


def _sensitivity(learner, prompts: Prompts, k: int) -> torch.Tensor:
    p = Prompts(prompts.xs[:, : k + 1], prompts.ys[:, : k + 1], prompts.info)
    if isinstance(learner, torch.nn.Module):  # a network: differentiate its forward pass, on its device
        device = next(learner.parameters()).device
        return query_sensitivity(learner, Prompts(p.xs.to(device), p.ys.to(device))).double().cpu()
    # a reference learner: central differences in float64 (works for learners autograd cannot follow)
    xs, ys = p.xs.double(), p.ys.double()
    b, n, d = xs.shape
    eps = 1e-5
    shifted = xs.unsqueeze(1).repeat(1, 2 * d, 1, 1)  # (B, 2d, n, d)
    j = torch.arange(d)
    shifted[:, j, -1, j] += eps
    shifted[:, d + j, -1, j] -= eps
    out = learner.predict(Prompts(shifted.view(b * 2 * d, n, d), ys.repeat_interleave(2 * d, 0))).double()
    out = out[:, -1].view(b, 2 * d)
    return (out[:, :d] - out[:, d:]) / (2 * eps)


def sensitivity_alignment(learner_a, learner_b, prompts: Prompts, k: int) -> dict:
    """Cosine similarity and squared L2 difference of ``d y_hat / d x_q`` at the query after ``k`` examples."""
    return _compare_sensitivities(_sensitivity(learner_a, prompts, k), _sensitivity(learner_b, prompts, k))


def _compare_sensitivities(sa: torch.Tensor, sb: torch.Tensor) -> dict:
    return {
        "sensitivity_cosine": torch.nn.functional.cosine_similarity(sa, sb, dim=-1, eps=1e-12).mean().item(),
        "sensitivity_l2": ((sa - sb) ** 2).sum(-1).mean().item(),
    }


def alignment_table(
    model,
    task,
    prompts: Prompts,
    learners: list,
    ks: list[int] | None = None,
    n_queries: int | None = None,
    seed: int = 1234,
) -> list[dict]:
    """For every reference learner and every ``k``: SPD, ILWD and the sensitivity similarity between
    ``model`` and the learner, plus the model's own error. ``learners`` are specs or learner objects."""
    from iclab.learners import make_learner

    objs = [make_learner(spec, task=task) if isinstance(spec, str) else spec for spec in learners]
    ks = ks if ks is not None else list(range(1, prompts.n_points))
    scale = task.error_scale
    d = prompts.xs.shape[-1]
    queries = query_inputs(task, prompts.batch_size, n_queries or 2 * d + 1, seed)
    model_pred = _predict(model, prompts)
    # the model's side of every comparison, computed once per k rather than once per learner
    model_w = {k: implicit_weights(model, prompts, k, queries)[0] for k in ks}
    model_sens = {k: _sensitivity(model, prompts, k) for k in ks}
    ys = prompts.ys.double()
    rows = []
    for learner in objs:
        pred = _predict(learner, prompts)
        for k in ks:
            rows.append(
                {
                    "learner": learner.label,
                    "k": k,
                    "spd": ((model_pred[:, k] - pred[:, k]) ** 2).mean().item() / scale,
                    "ilwd": _weight_difference(model_w[k], implicit_weights(learner, prompts, k, queries)[0], scale),
                    **_compare_sensitivities(model_sens[k], _sensitivity(learner, prompts, k)),
                    "model_error": ((model_pred[:, k] - ys[:, k]) ** 2).mean().item() / scale,
                    "learner_error": ((pred[:, k] - ys[:, k]) ** 2).mean().item() / scale,
                }
            )
    return rows
