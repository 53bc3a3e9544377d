"""Learners that fit a model per prefix: a two-layer network trained by gradient descent (Garg et al.
2022's reference for ReLU-network tasks), a greedy decision tree and gradient-boosted trees (their
references for decision-tree tasks).

The network is trained for every prompt at once (one batched set of weights per prompt), one prefix
length after another. Trees are fitted with scikit-learn / XGBoost, one (prompt, prefix) at a time:
they are the slow learners of the catalogue.
"""

from __future__ import annotations

import math

from iclab.errors import ConfigError
from iclab.lazy import torch
from iclab.learners.base import LEARNERS, ReferenceLearner, check


@LEARNERS.register
class NNGD(ReferenceLearner):
    """A two-layer ReLU network (``hidden`` units) trained on the prefix with Adam for ``steps`` steps
    on the mean squared error, from a seeded initialisation, as Garg et al.'s reference (hidden 100,
    lr 5e-3, 100 steps). Predicts 0 with no examples."""

    name = "nn_gd"
    slow = True

    def __init__(self, hidden: int = 100, steps: int = 100, lr: float = 5e-3, seed: int = 0) -> None:
        super().__init__()
        check(isinstance(hidden, int) and hidden >= 1, f"nn_gd: hidden must be a positive integer, got {hidden!r}")
        check(isinstance(steps, int) and steps >= 1, f"nn_gd: steps must be a positive integer, got {steps!r}")
        check(isinstance(lr, (int, float)) and lr > 0, f"nn_gd: lr must be positive, got {lr!r}")
        self._set_params(hidden=hidden, steps=steps, lr=float(lr), seed=seed)

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        b, n, d = xs.shape
        out = torch.zeros_like(ys)
        xs32, ys32 = xs.float(), ys.float()
        for i in range(1, n):
            g = torch.Generator().manual_seed(self.seed)
            w1 = (torch.randn(b, d, self.hidden, generator=g) / math.sqrt(d)).to(xs.device).requires_grad_()
            b1 = torch.zeros(b, 1, self.hidden, device=xs.device, requires_grad=True)
            w2 = (torch.randn(b, self.hidden, 1, generator=g) / math.sqrt(self.hidden)).to(xs.device).requires_grad_()
            params = [w1, b1, w2]
            opt = torch.optim.Adam(params, lr=self.lr)
            x, y = xs32[:, :i], ys32[:, :i]
            with torch.enable_grad():
                for _ in range(self.steps):
                    pred = (torch.relu(x @ w1 + b1) @ w2).squeeze(-1)  # (B, i)
                    loss = ((pred - y) ** 2).mean(1).sum()  # each prompt's own mean squared error
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                out[:, i] = (torch.relu(xs32[:, i : i + 1] @ w1 + b1) @ w2)[:, 0, 0].to(out.dtype)
        return out


@LEARNERS.register
class GreedyTree(ReferenceLearner):
    """A CART regression tree (scikit-learn, greedy splits) fitted to the prefix; predicts 0 with no examples."""

    name = "tree"
    slow = True

    def __init__(self, max_depth: int | None = 4) -> None:
        super().__init__()
        check(
            max_depth is None or (isinstance(max_depth, int) and max_depth >= 1),
            f"tree: max_depth must be a positive integer or null, got {max_depth!r}",
        )
        self._set_params(max_depth=max_depth)

    def _fit_predict(self, x, y, query):
        from sklearn.tree import DecisionTreeRegressor

        return DecisionTreeRegressor(max_depth=self.max_depth, random_state=0).fit(x, y).predict(query)[0]

    def _predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        x, y = xs.cpu().numpy(), ys.cpu().numpy()
        out = torch.zeros(ys.shape, dtype=ys.dtype)
        for p in range(x.shape[0]):
            for i in range(1, x.shape[1]):
                out[p, i] = float(self._fit_predict(x[p, :i], y[p, :i], x[p, i : i + 1]))
        return out.to(ys.device)


@LEARNERS.register
class XGBoost(GreedyTree):
    """Gradient-boosted trees (XGBoost, an optional extra: ``pip install xgboost``) fitted to the prefix."""

    name = "xgboost"

    def __init__(self, n_estimators: int = 100, max_depth: int = 4, learning_rate: float = 0.3) -> None:
        ReferenceLearner.__init__(self)
        check(isinstance(n_estimators, int) and n_estimators >= 1, "xgboost: n_estimators must be a positive integer")
        check(isinstance(max_depth, int) and max_depth >= 1, "xgboost: max_depth must be a positive integer")
        self._set_params(n_estimators=n_estimators, max_depth=max_depth, learning_rate=float(learning_rate))

    @classmethod
    def applies_to(cls, task) -> str | None:
        try:
            import xgboost  # noqa: F401
        except ImportError:
            return "xgboost is not installed (pip install xgboost)"
        return None

    def _fit_predict(self, x, y, query):
        try:
            import xgboost
        except ImportError:
            raise ConfigError("xgboost: not installed; pip install xgboost") from None
        model = xgboost.XGBRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            n_jobs=1,
            verbosity=0,
        )
        return model.fit(x, y).predict(query)[0]
