"""Task families: distributions over prompts. ``TASKS`` maps a config's ``task.name`` to its class; each
family registers itself with ``@TASKS.register`` in its own file (importing this package imports them all).

Each family names its relevant reference learners (``relevant_learners()``, the Bayes-optimal one first
where it is known) and how its errors are normalised (``error_scale``).
"""

from iclab.tasks.arithmetic import Arithmetic
from iclab.tasks.base import TASKS, Curriculum, Task
from iclab.tasks.chebyshev import ChebyshevKernelRegression, ChebyshevSharedRoots
from iclab.tasks.digits import DigitsClassification
from iclab.tasks.explanations import Explanations
from iclab.tasks.fourier import FourierSeries
from iclab.tasks.haar import HaarWavelets
from iclab.tasks.linear import (
    GaussianMixtureRegression,
    LinearClassification,
    LinearRegression,
    LinearRegressionConfig,
    LowRankRegression,
    SignVectorRegression,
    SparseLinearRegression,
)
from iclab.tasks.mixture import Mixture
from iclab.tasks.monomials import MonomialRegression
from iclab.tasks.mqar import Mqar
from iclab.tasks.nonlinear import DecisionTree, ReluNetwork
from iclab.tasks.parity import SparseParity
from iclab.tasks.pool import TaskPool
from iclab.tasks.positions import OrderedSet, PositionPrediction
from iclab.tasks.rasp import Rasp
from iclab.tasks.recall import AssociativeRecall
from iclab.tasks.regbench import RegBench
from iclab.tasks.representation import Representation
from iclab.tasks.retrieval import VectorRetrieval
from iclab.tasks.shifts import SHIFTS, apply_shift
from iclab.tasks.token_task import TokenTask
from iclab.tasks.wrappers import Noisy, Scaled


def make_task(config) -> Task:
    """Build the task a config section describes (``config.name`` selects the family)."""
    return TASKS[config.name](config)


__all__ = [
    "SHIFTS",
    "TASKS",
    "Arithmetic",
    "AssociativeRecall",
    "ChebyshevKernelRegression",
    "ChebyshevSharedRoots",
    "Curriculum",
    "DecisionTree",
    "DigitsClassification",
    "Explanations",
    "FourierSeries",
    "GaussianMixtureRegression",
    "HaarWavelets",
    "LinearClassification",
    "LinearRegression",
    "OrderedSet",
    "PositionPrediction",
    "LinearRegressionConfig",
    "Noisy",
    "Scaled",
    "SparseParity",
    "VectorRetrieval",
    "LowRankRegression",
    "Mixture",
    "MonomialRegression",
    "Mqar",
    "Rasp",
    "RegBench",
    "ReluNetwork",
    "Representation",
    "SignVectorRegression",
    "SparseLinearRegression",
    "Task",
    "TaskPool",
    "TokenTask",
    "apply_shift",
    "make_task",
]
