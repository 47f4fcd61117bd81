"""skmoe: mixture-of-experts estimators for scikit-learn.

Soft, hard, top-k and hierarchical mixtures of experts trained by EM, with
any scikit-learn estimator that accepts ``sample_weight`` as an expert.
"""

from skmoe._estimators import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._gating import GateTree
from skmoe._scoring import bic_scorer, icl_scorer, log_likelihood_scorer
from skmoe._summary import MixtureSummary

__version__ = "0.1.0"

__all__ = [
    "GateTree",
    "MixtureOfExpertsClassifier",
    "MixtureOfExpertsRegressor",
    "MixtureSummary",
    "__version__",
    "bic_scorer",
    "icl_scorer",
    "log_likelihood_scorer",
]
