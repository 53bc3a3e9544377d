"""Every reference learner against an independent implementation (numpy / scikit-learn) or a closed form."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge as SkRidge
from sklearn.neighbors import KNeighborsRegressor

from conftest import real_valued
from iclab.errors import ConfigError
from iclab.learners import LEARNERS, make_learner, parse_learner_spec
from iclab.types import Prompts


def _np_zero(xs, ys, **_):
    return np.zeros_like(ys)


def _np_averaging(xs, ys, **_):
    b, n, _ = xs.shape
    out = np.zeros((b, n))
    for i in range(1, n):
        w = (xs[:, :i] * ys[:, :i, None]).mean(1)
        out[:, i] = (w * xs[:, i]).sum(-1)
    return out


def _np_knn(xs, ys, k=3):
    b, n, _ = xs.shape
    out = np.zeros((b, n))
    for p in range(b):
        for i in range(1, n):
            reg = KNeighborsRegressor(n_neighbors=min(k, i)).fit(xs[p, :i], ys[p, :i])
            out[p, i] = reg.predict(xs[p, i : i + 1])[0]
    return out


def _np_least_squares(xs, ys, **_):
    b, n, _ = xs.shape
    out = np.zeros((b, n))
    for p in range(b):
        for i in range(1, n):
            w = np.linalg.lstsq(xs[p, :i], ys[p, :i], rcond=None)[0]
            out[p, i] = xs[p, i] @ w
    return out


def _np_ridge(xs, ys, lam=1.0):
    b, n, _ = xs.shape
    out = np.zeros((b, n))
    for p in range(b):
        for i in range(1, n):
            reg = SkRidge(alpha=lam, fit_intercept=False, solver="svd").fit(xs[p, :i], ys[p, :i])
            out[p, i] = reg.predict(xs[p, i : i + 1])[0]
    return out


def _np_gd(xs, ys, steps=1, lr=0.1):
    b, n, d = xs.shape
    out = np.zeros((b, n))
    for p in range(b):
        for i in range(1, n):
            X, y, w = xs[p, :i], ys[p, :i], np.zeros(d)
            for _ in range(steps):
                w = w - lr * X.T @ (X @ w - y) / i
            out[p, i] = xs[p, i] @ w
    return out


def _np_online_gd(xs, ys, lr=0.1):
    b, n, d = xs.shape
    out = np.zeros((b, n))
    for p in range(b):
        w = np.zeros(d)
        for i in range(n):
            out[p, i] = xs[p, i] @ w
            w = w - lr * (xs[p, i] @ w - ys[p, i]) * xs[p, i]
    return out


REFERENCES = {
    "zero": (_np_zero, [{}]),
    "averaging": (_np_averaging, [{}]),
    "knn": (_np_knn, [{"k": 1}, {"k": 3}, {"k": 10}]),  # k = 10: past SELECT_BY_MIN, by topk
    "least_squares": (_np_least_squares, [{}]),
    "ridge": (_np_ridge, [{"lam": 0.25}, {"lam": 3.0}]),
    "gd": (_np_gd, [{"steps": 1, "lr": 0.5}, {"steps": 7, "lr": 0.2}]),
    "online_gd": (_np_online_gd, [{"lr": 0.1}]),
    "gd_lsa": (
        lambda xs, ys, lr, steps=1: _np_gd(xs, ys, steps=steps, lr=lr),
        [{"lr": 0.3}, {"lr": 2.0}, {"lr": 0.4, "steps": 3}],
    ),
}

CASES = [
    # (B, N, d, active dims, noise): fewer points than dims, more, and inactive (zero) coordinates
    (12, 9, 6, 6, 0.0),
    (12, 16, 4, 4, 0.5),
    (8, 15, 8, 5, 0.1),
]


def _prompts(b, n, d, active, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(b, n, d, generator=g, dtype=torch.float64)
    xs[:, :, active:] = 0
    w = torch.randn(b, d, generator=g, dtype=torch.float64)
    ys = torch.einsum("bnd,bd->bn", xs, w) + noise * torch.randn(b, n, generator=g, dtype=torch.float64)
    return Prompts(xs, ys, {"w": w})


def test_every_learner_has_an_independent_reference():
    # the learners of the catalogue are checked in test_catalogue.py
    assert set(REFERENCES) <= set(LEARNERS)


# a task each learner applies to (posterior means need their own prior)
HOME_TASK = {
    "dmmse": ["task.name=task_pool", "task.pool_size=5"],
    "gmm_posterior": ["task.name=gaussian_mixture_regression"],
    "sparse_posterior": ["task.name=sparse_linear_regression", "task.n_dims=5", "task.sparsity=2"],
    "sign_posterior": ["task.name=sign_vector_regression", "task.n_dims=4"],
    "parity_elimination": ["task.name=sparse_parity", "task.n_dims=5", "task.k=2"],
    "bayes_mixture": ["task.name=mixture"],
    "nuclear_min": ["task.name=low_rank_regression", "task.n_dims=9"],
    "feature_ridge": ["task.name=representation"],
    "feature_least_squares": ["task.name=representation"],
}


def _home(name, n_points=10):
    from iclab.config import load_config
    from iclab.tasks import make_task

    if name == "xgboost":
        pytest.importorskip("xgboost")
    task = make_task(load_config(None, HOME_TASK.get(name, ["task.n_dims=3"]) + [f"task.n_points={n_points}"]).task)
    fast = {"nn_gd": "nn_gd(steps=5, hidden=8)", "xgboost": "xgboost(n_estimators=5)"}
    return task, make_learner(fast.get(name, name), task=task)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}N{c[1]}d{c[2]}a{c[3]}")
def test_learner_matches_independent_implementation(name, case):
    ref_fn, param_sets = REFERENCES[name]
    prompts = _prompts(*case)
    for params in param_sets:
        ours = make_learner({"name": name, **params}).predict(prompts).numpy()
        ref = ref_fn(prompts.xs.numpy(), prompts.ys.numpy(), **params)
        scale = max(np.abs(ref).max(), 1e-12)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale, err_msg=f"{name} {params}")


@pytest.mark.parametrize("name", real_valued(LEARNERS))
def test_learner_uses_only_the_prefix(name):
    task, learner = _home(name)
    prompts = task.eval_prompts(4, seed=0)
    base = learner.predict(prompts)
    for i in (0, 3, 8):
        changed = Prompts(prompts.xs.clone(), prompts.ys.clone())
        changed.ys[:, i:] += 10.0
        changed.xs[:, i + 1 :] *= -3.0
        out = learner.predict(changed)
        torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", real_valued(LEARNERS))
def test_learner_keeps_float32_and_shape(name):
    task, learner = _home(name, n_points=6)
    prompts = task.eval_prompts(3, seed=0)
    out = learner.predict(Prompts(prompts.xs.float(), prompts.ys.float(), prompts.info))
    assert out.shape == (3, 6) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_least_squares_interpolates_then_recovers_w():
    prompts = _prompts(5, 12, 4, 4, 0.0)
    pred = make_learner("least_squares").predict(prompts)
    # noiseless: exact once the prefix spans R^d
    torch.testing.assert_close(pred[:, 4:], prompts.ys[:, 4:], rtol=1e-8, atol=1e-8)


def test_least_squares_is_ridge_limit():
    prompts = _prompts(6, 10, 5, 5, 0.3)
    ls = make_learner("least_squares").predict(prompts)
    ridge = make_learner("ridge(lam=1e-9)").predict(prompts)
    torch.testing.assert_close(ls, ridge, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lassso", "unknown learner 'lassso'"),
        ("ridge(alpha=1)", "has no parameter 'alpha'"),
        ("ridge(lam=-1)", "lam must be positive"),
        ("knn(k=0)", "k must be a positive integer"),
        ("knn(k=2.5)", "expected an integer"),
        ("gd(steps=0)", "steps must be a positive integer"),
        ("ridge(lam", "expected a learner name or call"),
        ({"name": "ridge", "lam": "big"}, "expected a number"),
    ],
)
def test_bad_learner_specs_are_rejected_clearly(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_learner_spec(spec, "eval.learners[0]")


def test_spec_forms_agree():
    assert make_learner("ridge(lam=0.5)").label == make_learner({"name": "ridge", "lam": 0.5}).label == "ridge(lam=0.5)"
    assert make_learner("knn").label == "knn(k=3)"


@pytest.mark.parametrize("spec", ["least_squares", "ridge(lam=0.3)", "gd(steps=2, lr=0.3)", "online_gd"])
def test_weights_give_the_predictions(spec):
    prompts = _prompts(6, 12, 4, 4, 0.2)
    learner = make_learner(spec)
    w = learner.weights(prompts.xs, prompts.ys)  # (B, N, d): the w each prefix implies
    torch.testing.assert_close((w * prompts.xs).sum(-1), learner.predict(prompts), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# the slow learners, each against a separate implementation


def _np_cart(x, y, query, max_depth):
    """CART regression written out: at each node try every feature and every midpoint between sorted distinct
    values, keep the split with the lowest summed squared error (scikit-learn's criterion, min 1 sample per
    leaf), stop at max_depth or when no split lowers the error; predict the leaf mean."""

    def grow(idx, depth):
        ys = y[idx]
        best = None
        if depth < max_depth and len(idx) >= 2:
            base = ((ys - ys.mean()) ** 2).sum()
            for f in range(x.shape[1]):
                values = np.unique(x[idx, f])
                for lo, hi in zip(values[:-1], values[1:]):
                    t = (lo + hi) / 2
                    left, right = idx[x[idx, f] <= t], idx[x[idx, f] > t]
                    sse = ((y[left] - y[left].mean()) ** 2).sum() + ((y[right] - y[right].mean()) ** 2).sum()
                    if sse < base - 1e-12 and (best is None or sse < best[0] - 1e-12):
                        best = (sse, f, t, left, right)
        if best is None:
            return ("leaf", ys.mean())
        _, f, t, left, right = best
        return ("split", f, t, grow(left, depth + 1), grow(right, depth + 1))

    node = grow(np.arange(len(y)), 0)
    while node[0] == "split":
        node = node[3] if query[node[1]] <= node[2] else node[4]
    return node[1]


def test_tree_equals_a_cart_written_out():
    """One input feature, so that no two features tie for the same split (scikit-learn breaks such ties by a
    random feature order, which changes where the query falls though not the fit)."""
    g = torch.Generator().manual_seed(3)
    xs, ys = (
        torch.randn(4, 12, 1, generator=g, dtype=torch.float64),
        torch.randn(4, 12, generator=g, dtype=torch.float64),
    )
    for depth in (1, 2, 4):
        ours = make_learner(f"tree(max_depth={depth})").predict(Prompts(xs, ys)).numpy()
        for b in range(4):
            assert ours[b, 0] == 0.0
            for i in range(1, 12):
                ref = _np_cart(xs[b, :i].numpy(), ys[b, :i].numpy(), xs[b, i].numpy(), depth)
                assert ours[b, i] == pytest.approx(ref, abs=1e-12), (depth, b, i)


def _np_nn_gd(x, y, query, w1, w2, steps, lr):
    """The two-layer ReLU network and Adam written out in numpy (gradients by hand, float64)."""
    b1 = np.zeros((1, w1.shape[1]))
    params = [w1.copy(), b1, w2.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    n = len(y)
    for t in range(1, steps + 1):
        h_pre = x @ params[0] + params[1]  # (n, H)
        h = np.maximum(h_pre, 0)
        pred = (h @ params[2])[:, 0]
        r = 2 * (pred - y) / n  # d loss / d pred
        g_w2 = h.T @ r[:, None]
        g_h = r[:, None] @ params[2].T * (h_pre > 0)
        grads = [x.T @ g_h, g_h.sum(0, keepdims=True), g_w2]
        for j, gj in enumerate(grads):
            m[j] = 0.9 * m[j] + 0.1 * gj
            v[j] = 0.999 * v[j] + 0.001 * gj**2
            params[j] = params[j] - lr * (m[j] / (1 - 0.9**t)) / (np.sqrt(v[j] / (1 - 0.999**t)) + 1e-8)
    return (np.maximum(query @ params[0] + params[1], 0) @ params[2])[0, 0]


def test_nn_gd_equals_a_network_written_out_in_numpy():
    import math

    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(2, 6, 3, generator=g), torch.randn(2, 6, generator=g)
    ours = make_learner("nn_gd(hidden=8, steps=30, lr=0.01)").predict(Prompts(xs, ys))
    gi = torch.Generator().manual_seed(0)  # the learner's seeded initialisation, drawn the same way
    w1_all = (torch.randn(2, 3, 8, generator=gi) / math.sqrt(3)).double().numpy()
    w2_all = (torch.randn(2, 8, 1, generator=gi) / math.sqrt(8)).double().numpy()
    for b in range(2):
        for i in (1, 3, 5):
            ref = _np_nn_gd(
                xs[b, :i].double().numpy(),
                ys[b, :i].double().numpy(),
                xs[b, i : i + 1].double().numpy(),
                w1_all[b],
                w2_all[b],
                steps=30,
                lr=0.01,
            )
            assert ours[b, i].item() == pytest.approx(ref, rel=1e-3, abs=1e-4), (b, i)


def test_xgboost_equals_direct_calls_per_prefix():
    xgboost = pytest.importorskip("xgboost")
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(2, 8, 3, generator=g, dtype=torch.float64), torch.randn(2, 8, generator=g, dtype=torch.float64)
    ours = make_learner("xgboost(n_estimators=10, max_depth=3, learning_rate=0.5)").predict(Prompts(xs, ys)).numpy()
    for b in range(2):
        for i in range(1, 8):
            model = xgboost.XGBRegressor(n_estimators=10, max_depth=3, learning_rate=0.5, random_state=0, n_jobs=1)
            ref = model.fit(xs[b, :i].numpy(), ys[b, :i].numpy()).predict(xs[b, i : i + 1].numpy())[0]
            assert ours[b, i] == pytest.approx(float(ref), rel=1e-5, abs=1e-6)
