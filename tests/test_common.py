"""scikit-learn's estimator checks over small, fast configurations."""

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
    # A gate that sees only the first column.
    MixtureOfExpertsRegressor(n_experts=2, gate_features=[0], **FAST),
    MixtureOfExpertsClassifier(n_experts=2, gate_features=[0], **FAST),
    # Hierarchical mixtures.
    MixtureOfExpertsRegressor(hierarchy=(2, 2), **FAST),
    MixtureOfExpertsClassifier(hierarchy=(2, 2), routing="topk", **FAST),
]


SAMPLE_WEIGHT_REASON = (
    "The k-means start draws from weighted rows differently than from "
    "repeated rows, and EM can then reach another local optimum; the fitted "
    "objective is the same, the start is not."
)


def expected_failed_checks(estimator):
    linear_soft_regressor = (
        isinstance(estimator, MixtureOfExpertsRegressor)
        and estimator.estimator is None
        and estimator.routing == "soft"
    )
    if linear_soft_regressor:
        return {}
    return {"check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_REASON}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
