"""Exact learning of permutations: the batched ensemble against networks trained one by one, the NTK against a
Monte-Carlo estimate and as the ensembles' limit, and the rounding rule."""

import math

import pytest
import torch

from iclab.permutations import (
    Ensemble,
    all_nonzero_inputs,
    ensemble_exact_share,
    exact_match,
    ntk,
    ntk_regression,
    permutation_matrix,
    round_outputs,
)


def test_inputs_and_permutation_matrix():
    x = all_nonzero_inputs(3)
    assert x.shape == (7, 3) and len({tuple(r) for r in x.tolist()}) == 7 and bool((x.sum(-1) > 0).all())
    p = permutation_matrix(torch.tensor([2, 0, 1]))
    torch.testing.assert_close(
        p @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0, 0, 1.0], dtype=torch.float64)
    )


def test_the_batched_ensemble_equals_networks_trained_one_by_one_with_autograd():
    k, m, width = 3, 4, 8
    basis, target = torch.eye(k, dtype=torch.float64), permutation_matrix(torch.tensor([1, 2, 0])).T
    ens = Ensemble(k, m, width, seed=3)
    w0, a0 = ens.w.clone(), ens.a.clone()
    ens.train(basis, basis @ target, steps=25, lr=0.3)
    for i in range(m):
        w, a = w0[i].clone().requires_grad_(), a0[i].clone().requires_grad_()
        for _ in range(25):
            out = torch.relu(basis @ w.T) @ a.T / math.sqrt(width)
            loss = 0.5 * ((out - basis @ target) ** 2).sum()
            gw, ga = torch.autograd.grad(loss, [w, a])
            with torch.no_grad():
                w -= 0.3 * gw
                a -= 0.3 * ga
        torch.testing.assert_close(ens.w[i], w.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ens.a[i], a.detach(), rtol=1e-10, atol=1e-12)


def test_the_ntk_matches_a_monte_carlo_estimate_of_the_gradient_inner_product():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[1.0, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.float64)
    width = 200_000
    w = torch.randn(width, 3, generator=g, dtype=torch.float64)
    a = torch.randn(width, generator=g, dtype=torch.float64)
    pre = x @ w.T  # (3, width)
    # d f / d a_r = relu(pre_r) / sqrt(width); d f / d W_r = a_r 1(pre_r > 0) x / sqrt(width)
    grads_a = torch.relu(pre) / math.sqrt(width)
    grads_w = (a * (pre > 0)).unsqueeze(-1) * x.unsqueeze(1) / math.sqrt(width)  # (3, width, 3)
    empirical = grads_a @ grads_a.T + torch.einsum("iwd,jwd->ij", grads_w, grads_w)
    torch.testing.assert_close(empirical, ntk(x, x), rtol=0.02, atol=0.01)


def test_wide_ensembles_approach_ntk_regression():
    k = 4
    p = permutation_matrix(torch.tensor([2, 0, 3, 1]))
    basis, inputs = torch.eye(k, dtype=torch.float64), all_nonzero_inputs(k)
    limit = ntk_regression(basis, basis @ p.T, inputs)
    errors = []
    for m, width in ((8, 16), (256, 256)):
        ens = Ensemble(k, m, width, seed=1)
        ens.train(basis, basis @ p.T, steps=150, lr=0.6)
        errors.append(float((ens(inputs).mean(0) - limit).abs().max()))
    assert errors[1] < 0.12 and errors[1] < 0.5 * errors[0], errors


def test_the_top_rule_is_exact_on_the_ntk_mean_where_one_half_is_not():
    k = 12
    p = permutation_matrix(torch.randperm(k, generator=torch.Generator().manual_seed(0)))
    basis, inputs = torch.eye(k, dtype=torch.float64), all_nonzero_inputs(k)
    mean, target = ntk_regression(basis, basis @ p.T, inputs), inputs @ p.T
    assert bool(exact_match(round_outputs(mean, inputs, "top"), target).all())
    half = exact_match(round_outputs(mean, inputs, "half"), target)
    assert not bool(half.all()) and not bool(half[-1])  # the all-ones input: its outputs fall below one half
    with pytest.raises(ValueError, match="rounding"):
        round_outputs(mean, inputs, "nearest")


def test_a_moderate_ensemble_learns_a_small_permutation_exactly():
    share, every = ensemble_exact_share(k=4, m=64, width=64, steps=200, lr=0.6, seed=0)
    assert every and share == 1.0
