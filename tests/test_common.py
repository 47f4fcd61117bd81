"""scikit-learn's estimator checks over small, fast configurations."""

import pytest
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

FAST = {"max_iter": 20, "random_state": 0}

ESTIMATORS = [
    # Flat mixtures, each routing, default (vectorized) experts.
    MixtureOfExpertsRegressor(n_experts=2, **FAST),
    MixtureOfExpertsRegressor(n_experts=3, routing="hard", **FAST),
    MixtureOfExpertsRegressor(n_experts=3, routing="topk", top_k=2, **FAST),
    MixtureOfExpertsClassifier(n_experts=2, **FAST),
    MixtureOfExpertsClassifier(n_experts=3, routing="hard", **FAST),
    MixtureOfExpertsClassifier(n_experts=3, routing="topk", top_k=2, **FAST),
    # Generic tree experts.
    MixtureOfExpertsRegressor(DecisionTreeRegressor(max_depth=3), n_experts=2, **FAST),
    MixtureOfExpertsClassifier(
        DecisionTreeClassifier(max_depth=3), n_experts=2, **FAST
    ),
    # A gate that sees only the first column. The sample-weight check
    # compares fits from two k-means starts (weighted and repeated rows) that
    # must converge to the same optimum: this classifier needs more than 20
    # iterations to get there (it does in 50 whatever tol).
    MixtureOfExpertsRegressor(n_experts=2, gate_features=[0], **FAST),
    MixtureOfExpertsClassifier(
        n_experts=2, gate_features=[0], **{**FAST, "max_iter": 100}
    ),
    # Hierarchical mixtures.
    MixtureOfExpertsRegressor(hierarchy=(2, 2), **FAST),
    MixtureOfExpertsClassifier(hierarchy=(2, 2), routing="topk", **FAST),
]


WEIGHT_SCALE_REASON = (
    "Only relative weights matter: they are divided by their mean, so that "
    "the penalties count in rows of average weight (issue 18). Repeated rows "
    "add to the number of rows the penalties are weighed against, integer "
    "weights do not; the logistic experts' penalty makes the difference show "
    "(the regressor's priors are too weak to)."
)
TREE_EXPERT_REASON = (
    "Decision-tree experts apply their split rules to row counts, so a row of "
    "weight 2 and two repeated rows can grow different trees; whether the "
    "check passes then depends on rounding."
)


WEIGHT_CHECK = "check_sample_weight_equivalence_on_dense_data"


def has_tree_experts(estimator):
    return isinstance(
        estimator.estimator, (DecisionTreeClassifier, DecisionTreeRegressor)
    )


def expected_failed_checks(estimator):
    # Every routing of the classifier: since its EM takes one Newton step per
    # M-step (issue 16), the penalty shows under hard routing too (it passed
    # while the experts' M-step ran Newton to convergence).
    if isinstance(estimator, MixtureOfExpertsClassifier):
        return {WEIGHT_CHECK: WEIGHT_SCALE_REASON}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    # With tree experts the check passes or fails by rounding (any change of
    # the numerics has flipped it, both ways): it tests nothing here.
    if has_tree_experts(estimator) and WEIGHT_CHECK in str(check):
        pytest.skip(TREE_EXPERT_REASON)
    check(estimator)
