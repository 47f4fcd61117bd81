"""The public estimators: parameters, routing, combination, inspection, errors."""

from itertools import permutations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from skmoe import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    bic_scorer,
    log_likelihood_scorer,
)
from skmoe.datasets import make_moe_classification, make_moe_regression


def best_permutation_agreement(labels, truth, n_experts):
    return max(
        np.mean(np.asarray(perm)[labels] == truth)
        for perm in permutations(range(n_experts))
    )


# ---------------------------------------------------------------------------
# Recovery of a known mixture
# ---------------------------------------------------------------------------


def test_regressor_recovers_a_known_mixture():
    X, y, truth = make_moe_regression(
        n_samples=20_000, n_features=10, n_experts=4, random_state=0, return_truth=True
    )
    train, test = slice(0, 10_000), slice(10_000, None)
    moe = MixtureOfExpertsRegressor(n_experts=4, random_state=0).fit(X[train], y[train])
    rmse = np.sqrt(np.mean((moe.predict(X[test]) - y[test]) ** 2))
    rmse_truth = np.sqrt(np.mean((truth.predict(X[test]) - y[test]) ** 2))
    assert rmse <= 1.02 * rmse_truth
    agreement = best_permutation_agreement(moe.apply(X[test]), truth.apply(X[test]), 4)
    assert agreement >= 0.95


def test_classifier_matches_the_true_models_accuracy():
    X, y, truth = make_moe_classification(
        n_samples=20_000, n_features=10, n_experts=4, random_state=0, return_truth=True
    )
    train, test = slice(0, 10_000), slice(10_000, None)
    moe = MixtureOfExpertsClassifier(n_experts=4, n_init=3, random_state=0)
    moe.fit(X[train], y[train])
    accuracy_truth = np.mean(truth.predict(X[test]) == y[test])
    assert moe.score(X[test], y[test]) >= accuracy_truth - 0.01


def test_grid_search_with_bic_picks_the_true_number_of_experts():
    X, y = make_moe_regression(
        n_samples=4000, n_features=5, n_experts=4, random_state=1
    )
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("moe", MixtureOfExpertsRegressor(random_state=0)),
        ]
    )
    search = GridSearchCV(
        pipe, {"moe__n_experts": [1, 2, 3, 4, 6]}, scoring=bic_scorer, cv=3
    ).fit(X, y)
    assert search.best_params_ == {"moe__n_experts": 4}


def test_log_likelihood_scorer(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    assert log_likelihood_scorer(moe, X, y) == pytest.approx(
        np.mean(moe.log_likelihood(X, y))
    )
    assert bic_scorer(moe, X, y) == pytest.approx(-moe.bic(X, y))


# ---------------------------------------------------------------------------
# Combination and routing
# ---------------------------------------------------------------------------


def test_predict_is_the_gate_weighted_mean(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    gate = moe.predict_gate(X)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0)
    means = np.column_stack([e.predict(X) for e in moe.experts_])
    mean, std = moe.predict(X, return_std=True)
    np.testing.assert_allclose(mean, np.sum(gate * means, axis=1))
    variance = np.sum(gate * (moe.noise_variance_ + means**2), axis=1) - mean**2
    np.testing.assert_allclose(std, np.sqrt(variance))
    np.testing.assert_array_equal(moe.apply(X), np.argmax(gate, axis=1))


def test_hard_routing_predicts_with_one_expert(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, routing="hard", random_state=0)
    moe.fit(X, y)
    chosen = moe.apply(X)
    means = np.column_stack([e.predict(X) for e in moe.experts_])
    np.testing.assert_allclose(moe.predict(X), means[np.arange(len(X)), chosen])
    _, std = moe.predict(X, return_std=True)
    np.testing.assert_allclose(std, np.sqrt(moe.noise_variance_[chosen]))


@pytest.mark.parametrize("experts", ["vectorized", "generic"])
def test_hard_routing_refit_is_soft_em_then_the_experts_refit(moe_regression, experts):
    """train_routing="refit": the soft fit's gate, experts fitted to its choices."""
    X, y, _ = moe_regression
    weight = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    estimator = None if experts == "vectorized" else [LinearRegression()] * 3
    params = {"n_experts": 3, "random_state": 0}
    soft = MixtureOfExpertsRegressor(estimator, **params).fit(
        X, y, sample_weight=weight
    )
    hard = MixtureOfExpertsRegressor(estimator, routing="hard", **params)
    hard.fit(X, y, sample_weight=weight)
    assert hard.train_routing == "auto"  # which is "refit" for hard routing
    np.testing.assert_array_equal(hard.objective_history_, soft.objective_history_)
    for a, b in zip(hard.gate_.coef, soft.gate_.coef, strict=True):
        np.testing.assert_array_equal(a, b)
    chosen = hard.apply(X)
    for k, expert in enumerate(hard.experts_):
        rows = chosen == k
        least_squares = LinearRegression().fit(
            X[rows], y[rows], sample_weight=weight[rows]
        )
        # Weighted least squares on ~300 well-conditioned rows: rounding.
        np.testing.assert_allclose(expert.coef_, least_squares.coef_, rtol=1e-8)
        np.testing.assert_allclose(
            expert.intercept_, least_squares.intercept_, rtol=1e-8, atol=1e-10
        )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore:Expert\\(s\\):UserWarning")
def test_hard_routing_refit_keeps_experts_with_too_few_rows():
    """An expert routed fewer rows than X's columns + 1 keeps its soft-EM fit."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    y = X @ [1.0, 2.0, 3.0] + rng.normal(size=40)
    params = {"n_experts": 8, "max_iter": 20, "random_state": 0}
    soft = MixtureOfExpertsRegressor(**params).fit(X, y)
    hard = MixtureOfExpertsRegressor(routing="hard", **params).fit(X, y)
    counts = np.bincount(hard.apply(X), minlength=8)
    assert np.any(counts < 4) and np.any(counts >= 4)
    for k in range(8):
        same = np.array_equal(hard.experts_[k].coef_, soft.experts_[k].coef_)
        assert same == (counts[k] < 4)
    assert np.all(np.isfinite(hard.predict(X, return_std=True)))


def test_hard_routing_train_routing_soft_and_em(moe_classification):
    X, y, _ = moe_classification
    params = {"n_experts": 3, "max_iter": 10, "random_state": 0}
    soft = MixtureOfExpertsClassifier(**params).fit(X, y)
    trained_soft = MixtureOfExpertsClassifier(
        routing="hard", train_routing="soft", **params
    ).fit(X, y)
    # Soft EM, hard at prediction only: the soft model, routed.
    np.testing.assert_array_equal(
        trained_soft.objective_history_, soft.objective_history_
    )
    soft.set_params(routing="hard")
    np.testing.assert_array_equal(trained_soft.predict_proba(X), soft.predict_proba(X))
    cem = MixtureOfExpertsClassifier(routing="hard", train_routing="em", **params)
    # Classification EM: its bound is not the soft log-likelihood.
    assert cem.fit(X, y).objective_history_[0] != soft.objective_history_[0]


# Classification EM starves an expert here (pruned, with a warning).
@pytest.mark.filterwarnings("ignore:Expert\\(s\\):UserWarning")
def test_hard_routing_is_calibrated_without_mixture_structure():
    """On data from one logistic model, hard routing's log-loss is the soft one's.

    Classification EM made the experts pure on rows the gate cannot tell
    apart (log-loss 7.9 against 0.59, benchmarks/README.md "Hard routing");
    the default training refits each expert to the rows it predicts.
    """
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 4))
    y = rng.uniform(size=3000) < 1.0 / (1.0 + np.exp(-X @ [0.5, -0.5, 0.3, 0.0]))
    train, test = slice(0, 1000), slice(1000, None)

    def test_log_loss(**params):
        moe = MixtureOfExpertsClassifier(n_experts=3, random_state=0, **params)
        proba = moe.fit(X[train], y[train]).predict_proba(X[test])
        return -np.mean(np.log(proba[np.arange(2000), y[test].astype(int)]))

    soft = test_log_loss()
    # The benchmark's target: within 10% of the soft mixture.
    assert test_log_loss(routing="hard") <= 1.1 * soft
    # From the k-means start without moves, classification EM ends with
    # pure experts (the better starts of the default only hide it here).
    cem = test_log_loss(
        routing="hard", train_routing="em", init_params="kmeans", split_merge=0
    )
    assert cem > 2.0 * soft


def test_train_routing_refit_needs_the_rows_in_memory(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, routing="hard", train_routing="refit")
    with pytest.raises(ValueError, match="train_routing='refit' refits"):
        moe.partial_fit(X, y)
    # "auto" learns online by soft stepwise EM, hard at prediction.
    moe.set_params(train_routing="auto").partial_fit(X, y)
    chosen = moe.apply(X)
    means = np.column_stack([e.predict(X) for e in moe.experts_])
    np.testing.assert_allclose(moe.predict(X), means[np.arange(len(X)), chosen])


def test_topk_routing_renormalises_the_k_largest(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3, routing="topk", top_k=2, random_state=0
    ).fit(X, y)
    gate = moe.predict_gate(X)
    kept = gate.copy()
    kept[np.arange(len(X)), np.argmin(gate, axis=1)] = 0.0
    kept /= kept.sum(axis=1, keepdims=True)
    means = np.column_stack([e.predict(X) for e in moe.experts_])
    np.testing.assert_allclose(moe.predict(X), np.sum(kept * means, axis=1))


def test_topk_with_all_experts_equals_soft(moe_regression):
    X, y, _ = moe_regression
    soft = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    topk = MixtureOfExpertsRegressor(
        n_experts=3, routing="topk", top_k=3, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(soft.predict(X), topk.predict(X))


def test_classifier_predict_proba_is_the_gate_weighted_mixture(moe_classification):
    X, y, _ = moe_classification
    moe = MixtureOfExpertsClassifier(n_experts=3, random_state=0).fit(X, y)
    proba = moe.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    expert_proba = np.stack([e.predict_proba(X) for e in moe.experts_], axis=1)
    mixture = np.einsum("nk,nkc->nc", moe.predict_gate(X), expert_proba)
    np.testing.assert_allclose(proba, mixture, atol=1e-8)
    np.testing.assert_array_equal(moe.predict(X), moe.classes_[proba.argmax(axis=1)])
    log_lik = moe.log_likelihood(X, y)
    np.testing.assert_allclose(log_lik, np.log(proba[np.arange(len(y)), y]), rtol=1e-6)


@pytest.mark.parametrize("routing", ["soft", "hard", "topk"])
def test_classifier_predict_log_proba_is_the_log_of_predict_proba(
    moe_classification, routing
):
    """Computed in log space; equal to log(predict_proba) up to rounding."""
    X, y, _ = moe_classification
    moe = MixtureOfExpertsClassifier(n_experts=3, routing=routing, random_state=0)
    moe.fit(X, y)
    log_proba = moe.predict_log_proba(X)
    # A few operations on each of 3 x 3 terms: a few dozen ulps at most.
    rtol = 64 * np.finfo(np.float64).eps
    np.testing.assert_allclose(np.exp(log_proba), moe.predict_proba(X), rtol=rtol)
    np.testing.assert_allclose(np.log(np.exp(log_proba).sum(axis=1)), 0.0, atol=rtol)
    # The observed labels' column is the per-sample log-likelihood.
    np.testing.assert_allclose(
        log_proba[np.arange(len(y)), y], moe.log_likelihood(X, y), rtol=1e-12
    )


def test_classifier_with_string_labels_and_tree_experts():
    X, y = make_moe_classification(n_samples=400, n_features=3, random_state=0)
    labels = np.array(["no", "yes"])[y]
    moe = MixtureOfExpertsClassifier(
        DecisionTreeClassifier(max_depth=2), n_experts=2, random_state=0
    ).fit(X, labels)
    assert set(moe.predict(X)) <= {"no", "yes"}
    assert moe.score(X, labels) > 0.7
    assert all(isinstance(e, DecisionTreeClassifier) for e in moe.experts_)


# ---------------------------------------------------------------------------
# Experts
# ---------------------------------------------------------------------------


def test_heterogeneous_experts(moe_regression):
    X, y, _ = moe_regression
    experts = [
        LinearRegression(),
        Ridge(alpha=10.0),
        DecisionTreeRegressor(max_depth=3),
    ]
    moe = MixtureOfExpertsRegressor(experts, random_state=0).fit(X, y)
    assert [type(e) for e in moe.experts_] == [type(e) for e in experts]
    assert moe.experts_[0] is not experts[0]  # cloned, the user's are untouched
    assert not hasattr(experts[0], "coef_")


def test_experts_are_usable_sklearn_estimators(moe_regression, moe_classification):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(Ridge(alpha=0.5), n_experts=3, random_state=0)
    moe.fit(X, y)
    for expert in moe.experts_:
        assert isinstance(expert, Ridge) and expert.alpha == 0.5
        assert expert.predict(X).shape == (len(X),)
    X, y, _ = moe_classification
    moe = MixtureOfExpertsClassifier(n_experts=3, random_state=0).fit(X, y)
    for expert in moe.experts_:
        assert isinstance(expert, LogisticRegression)
        np.testing.assert_array_equal(expert.classes_, moe.classes_)
        assert expert.predict_proba(X).shape == (len(X), 3)


def test_n_jobs_does_not_change_the_fit(moe_regression):
    X, y, _ = moe_regression
    template = DecisionTreeRegressor(max_depth=3)
    serial = MixtureOfExpertsRegressor(template, n_experts=3, random_state=0).fit(X, y)
    parallel = MixtureOfExpertsRegressor(
        template, n_experts=3, n_jobs=2, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(serial.predict(X), parallel.predict(X))


def test_expert_without_sample_weight_is_rejected(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(KNeighborsRegressor(), n_experts=2)
    with pytest.raises(TypeError, match="does not support sample_weight"):
        moe.fit(X, y)


def test_classifier_expert_without_predict_proba_is_rejected(moe_classification):
    X, y, _ = moe_classification
    moe = MixtureOfExpertsClassifier(SVC(), n_experts=2)
    with pytest.raises(TypeError, match="has no predict_proba"):
        moe.fit(X, y)


def test_expert_list_must_match_the_number_of_experts(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor([LinearRegression()] * 2, n_experts=3)
    with pytest.raises(ValueError, match="one estimator per expert"):
        moe.fit(X, y)


def test_bic_and_aic(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    n_features = X.shape[1]
    # 3 experts x (coef + intercept + variance) + one gate of (3 - 1) x (d + 1).
    n_parameters = 3 * (n_features + 2) + 2 * (n_features + 1)
    total = moe.log_likelihood(X, y).sum()
    assert moe.bic(X, y) == pytest.approx(-2 * total + n_parameters * np.log(len(y)))
    assert moe.aic(X, y) == pytest.approx(-2 * total + 2 * n_parameters)


def test_bic_needs_a_parameter_count(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        DecisionTreeRegressor(max_depth=2), n_experts=2, random_state=0
    ).fit(X, y)
    with pytest.raises(TypeError, match="has no parameter count"):
        moe.bic(X, y)


# ---------------------------------------------------------------------------
# The gate's features
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gate_features", [[0, 2], np.array([True, False, True, False]), [-4, 2]]
)
def test_gate_features_forms_agree(moe_regression, gate_features):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3, gate_features=gate_features, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(moe.gate_.feature_indices, [0, 2])
    # The gate ignores the other columns.
    X_changed = X.copy()
    X_changed[:, [1, 3]] = 0.0
    np.testing.assert_allclose(moe.predict_gate(X), moe.predict_gate(X_changed))


def test_gate_features_by_name(moe_regression):
    pd = pytest.importorskip("pandas")
    X, y, _ = moe_regression
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    moe = MixtureOfExpertsRegressor(
        n_experts=3, gate_features=["a", "c"], random_state=0
    ).fit(frame, y)
    np.testing.assert_array_equal(moe.gate_.feature_indices, [0, 2])


def test_empty_gate_features_gives_constant_gate(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, gate_features=[], random_state=0)
    gate = moe.fit(X, y).predict_gate(X)
    np.testing.assert_allclose(gate, np.broadcast_to(gate[0], gate.shape))


@pytest.mark.parametrize(
    "gate_features, match",
    [
        ([0, 9], r"indices must lie in \[0, 4\)"),
        ([True, False], "boolean mask of length 2"),
        (["a"], "no feature names"),
        ([[0, 1]], "1-d list"),
        ([0.5], "integer indices"),
    ],
)
def test_bad_gate_features(moe_regression, gate_features, match):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=2, gate_features=gate_features)
    with pytest.raises(ValueError, match=match):
        moe.fit(X, y)


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_experts": 0}, ValueError, "n_experts"),
        ({"routing": "sparse"}, ValueError, "routing"),
        ({"routing": "topk", "top_k": 4, "n_experts": 3}, ValueError, "top_k=4"),
        ({"hierarchy": (2, 1)}, ValueError, "integers >= 2"),
        ({"hierarchy": ()}, ValueError, "non-empty"),
        ({"hierarchy": (2, 2), "n_experts": 3}, ValueError, "4 leaves"),
        ({"gate_alpha": -1.0}, ValueError, "gate_alpha"),
        ({"init_params": "kmeans++"}, ValueError, "init_params"),
        ({"n_init": 0}, ValueError, "n_init"),
    ],
)
def test_invalid_parameters(moe_regression, params, error, match):
    X, y, _ = moe_regression
    with pytest.raises(error, match=match):
        MixtureOfExpertsRegressor(**params).fit(X, y)


def test_fewer_samples_than_experts():
    X = np.arange(4.0).reshape(2, 2)
    with pytest.raises(ValueError, match="n_samples=2 should be >= n_experts=3"):
        MixtureOfExpertsRegressor().fit(X, [1.0, 2.0])


def test_classifier_needs_two_classes(moe_classification):
    X, _, _ = moe_classification
    with pytest.raises(ValueError, match="only one class"):
        MixtureOfExpertsClassifier(n_experts=2).fit(X, np.zeros(len(X)))


def test_unseen_label_in_log_likelihood(moe_classification):
    X, y, _ = moe_classification
    moe = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="not seen in fit"):
        moe.log_likelihood(X[:3], [0, 1, 7])


def test_inputs_are_not_mutated(moe_regression):
    X, y, _ = moe_regression
    weights = np.ones(len(y))
    copies = X.copy(), y.copy(), weights.copy()
    estimator = LinearRegression()
    moe = MixtureOfExpertsRegressor(estimator, n_experts=3, random_state=0)
    params = clone(moe).get_params()
    moe.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(weights, copies[2])
    assert moe.get_params()["n_experts"] == params["n_experts"]
    assert not hasattr(estimator, "coef_")


@pytest.mark.parametrize("hierarchy", [(3,), (2, 2)])
def test_float32_runs_in_float32_and_tracks_float64(
    moe_regression, hierarchy, float32_tolerance
):
    """float32 input stays float32 end to end and tracks the float64 fit.

    Same start, same number of EM iterations: float32 costs only its own
    rounding, bounded by ``float32_tolerance`` (conftest).
    """
    X, y, _ = moe_regression
    # One EM run from one start: the default's screen and moves compare
    # objectives, and float32 rounding may tip a near tie between them.
    params = {
        "hierarchy": hierarchy,
        "init_params": "kmeans",
        "split_merge": 0,
        "random_state": 0,
        "tol": 0.0,
        "max_iter": 30,
    }
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    with pytest.warns(ConvergenceWarning):
        moe = MixtureOfExpertsRegressor(**params).fit(X32, y32)
    assert all(coef.dtype == np.float32 for coef in moe.gate_.coef)
    assert moe._expert_pool.coef_.dtype == np.float32
    assert moe._expert_pool.variance_.dtype == np.float32
    mean, std = moe.predict(X32, return_std=True)
    assert mean.dtype == np.float32 and std.dtype == np.float32
    assert moe.predict_gate(X32).dtype == np.float32

    def fit_predict(X64, y64):
        with pytest.warns(ConvergenceWarning):
            fit = MixtureOfExpertsRegressor(**params).fit(X64, y64)
        return fit.predict(X32.astype(np.float64))

    expected = fit_predict(X32.astype(np.float64), y32.astype(np.float64))
    np.testing.assert_allclose(
        mean, expected, rtol=0, atol=float32_tolerance(fit_predict, X32, y32)
    )


def test_float32_classifier_runs_in_float32(moe_classification, float32_tolerance):
    X, y, _ = moe_classification
    params = {"n_experts": 3, "random_state": 0, "tol": 0.0, "max_iter": 10}
    X32 = X.astype(np.float32)
    with pytest.warns(ConvergenceWarning):
        moe = MixtureOfExpertsClassifier(**params).fit(X32, y)
    proba = moe.predict_proba(X32)
    assert proba.dtype == np.float32

    def fit_predict(X64, y):
        with pytest.warns(ConvergenceWarning):
            fit = MixtureOfExpertsClassifier(**params).fit(X64, y)
        return fit.predict_proba(X32.astype(np.float64))

    expected = fit_predict(X32.astype(np.float64), y)
    np.testing.assert_allclose(
        proba, expected, rtol=0, atol=float32_tolerance(fit_predict, X32, y)
    )
