"""Reference learners: the algorithms a trained model might implement.

Each is batched over prompts and over every prefix length at once (the tree learners excepted), and
checked in the tests against an independent implementation (numpy / scipy / scikit-learn) or a closed
form. Build one from a spec::

    from iclab.learners import make_learner
    ridge = make_learner("ridge(lam=0.25)")
    y_hat = ridge.predict(prompts)  # (B, N): y_hat[:, i] uses the first i examples
    dmmse = make_learner("dmmse", task=task)  # posterior means need the task's prior
"""

from iclab.learners.base import (
    LEARNERS,
    ReferenceLearner,
    make_learner,
    parse_learner_spec,
)
from iclab.learners.baselines import Averaging, Zero
from iclab.learners.bayes import (
    DMMSE,
    BayesMixture,
    FeatureLeastSquares,
    FeatureRidge,
    GMMPosterior,
    ParityElimination,
    PosteriorMean,
    SignPosterior,
    SparsePosterior,
)
from iclab.learners.gd import GD, GDConstruction, OnlineGD
from iclab.learners.knn import KNN
from iclab.learners.lasso import Lasso
from iclab.learners.least_squares import LeastSquares, Ridge
from iclab.learners.linf import LinfMin
from iclab.learners.nonparametric import NNGD, GreedyTree, XGBoost
from iclab.learners.nuclear import NuclearMin
from iclab.learners.retrieval import Retrieval
from iclab.learners.token_learners import Automaton, Counting, NGram, TokenLearner, Unigram

__all__ = [
    "DMMSE",
    "GD",
    "KNN",
    "LEARNERS",
    "NNGD",
    "Automaton",
    "Counting",
    "Averaging",
    "NGram",
    "TokenLearner",
    "Unigram",
    "BayesMixture",
    "FeatureLeastSquares",
    "ParityElimination",
    "Retrieval",
    "FeatureRidge",
    "GDConstruction",
    "GMMPosterior",
    "GreedyTree",
    "Lasso",
    "LeastSquares",
    "LinfMin",
    "NuclearMin",
    "OnlineGD",
    "PosteriorMean",
    "ReferenceLearner",
    "Ridge",
    "SignPosterior",
    "SparsePosterior",
    "XGBoost",
    "Zero",
    "make_learner",
    "parse_learner_spec",
]
