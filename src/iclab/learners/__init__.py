"""Reference learners: the algorithms a trained model might implement.

Each is batched over prompts and over every prefix length at once, and checked in the tests against
an independent implementation (numpy / scikit-learn). Build one from a spec::

    from iclab.learners import make_learner
    ridge = make_learner("ridge(lam=0.25)")
    y_hat = ridge.predict(prompts)  # (B, N): y_hat[:, i] uses the first i examples
"""

from iclab.learners.base import ReferenceLearner, make_learner, parse_learner_spec
from iclab.learners.baselines import Averaging, Zero
from iclab.learners.gd import GD, OnlineGD
from iclab.learners.knn import KNN
from iclab.learners.least_squares import LeastSquares, Ridge

LEARNERS: dict[str, type[ReferenceLearner]] = {
    "zero": Zero,
    "averaging": Averaging,
    "knn": KNN,
    "least_squares": LeastSquares,
    "ridge": Ridge,
    "gd": GD,
    "online_gd": OnlineGD,
}

__all__ = [
    "LEARNERS",
    "GD",
    "KNN",
    "Averaging",
    "LeastSquares",
    "OnlineGD",
    "ReferenceLearner",
    "Ridge",
    "Zero",
    "make_learner",
    "parse_learner_spec",
]
