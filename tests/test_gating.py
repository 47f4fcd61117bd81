"""The tree of gates: pure functions, the GateTree object, hierarchical mixtures."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import GateTree, MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._backend import Design, add_intercept, log_softmax
from skmoe._gating import (
    node_posteriors,
    penalty_scale,
    scale_from_moments,
    tree_log_reach,
)
from skmoe._softmax import (
    softmax_log_proba,
    softmax_newton_step,
    softmax_objective,
)
from skmoe.datasets import make_hme_classification, make_hme_regression


@pytest.fixture
def random_tree():
    rng = np.random.default_rng(0)
    tree = GateTree((2, 3), n_features=2, feature_indices=[0, 1])
    tree.coef = [rng.normal(size=c.shape) for c in tree.coef]
    return tree, rng.normal(size=(50, 2))


# ---------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------


def test_leaf_probability_is_the_product_along_the_path(random_tree):
    tree, X = random_tree
    Xa = add_intercept(X)
    root = np.exp(softmax_log_proba(Xa, tree.coef[0]))[:, 0, :]  # (n, 2)
    second = np.exp(softmax_log_proba(Xa, tree.coef[1]))  # (n, 2, 3)
    expected = (root[:, :, None] * second).reshape(len(X), 6)
    np.testing.assert_allclose(np.exp(tree.log_proba(X)), expected)
    np.testing.assert_allclose(np.exp(tree.log_proba(X)).sum(axis=1), 1.0)


def test_reach_of_a_node_is_the_sum_of_its_children(random_tree):
    tree, X = random_tree
    reach = np.exp(tree.log_reach(X))
    parent = tree.parent
    for node in range(tree.n_nodes):
        children = np.flatnonzero(parent == node)
        if len(children):
            np.testing.assert_allclose(reach[:, children].sum(axis=1), reach[:, node])
    np.testing.assert_allclose(reach[:, 0], 1.0)


def test_node_posteriors_sum_leaves_up_the_tree():
    rng = np.random.default_rng(0)
    leaf = rng.dirichlet(np.ones(6), size=20)
    posteriors = node_posteriors(leaf, (2, 3))
    assert [p.shape[1] for p in posteriors] == [1, 2, 6]
    np.testing.assert_allclose(posteriors[0], 1.0)
    np.testing.assert_allclose(posteriors[1][:, 0], leaf[:, :3].sum(axis=1))


def test_tree_log_reach_starts_at_zero():
    log_proba = log_softmax(np.zeros((4, 1, 3)), axis=-1)
    reach = tree_log_reach([log_proba])
    np.testing.assert_allclose(reach[0], 0.0)
    np.testing.assert_allclose(np.exp(reach[1]), 1.0 / 3.0)


# Full Newton converges quadratically; the block-diagonal step linearly.
@pytest.mark.parametrize("solver, gradient_tol", [("newton", 1e-8), ("block", 1e-3)])
def test_softmax_newton_step_is_monotone_and_converges(solver, gradient_tol):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    Xa = add_intercept(X)
    targets = rng.dirichlet(np.ones(4), size=(300, 2))  # two problems
    weights = rng.uniform(0.0, 2.0, size=(300, 2))
    coef = np.zeros((2, 4, 4))
    log_proba = None
    objectives = []
    for _ in range(30):
        objectives.append(
            softmax_objective(
                softmax_log_proba(Xa, coef), targets, weights, coef, alpha=0.1
            )
        )
        coef, gain, log_proba = softmax_newton_step(
            Design(X, intercept=True),
            coef,
            targets,
            weights,
            alpha=0.1,
            solver=solver,
            log_proba=log_proba,
        )
        # The step hands back the probabilities of the coefficients it
        # returns (the next E-step uses them), and its gain.
        np.testing.assert_allclose(
            log_proba, softmax_log_proba(Xa, coef), rtol=1e-12, atol=1e-12
        )
        new_objective = softmax_objective(log_proba, targets, weights, coef, 0.1)
        np.testing.assert_allclose(gain, new_objective - objectives[-1], atol=1e-9)
    objectives = np.array(objectives)
    assert np.all(np.diff(objectives, axis=0) >= -1e-12)
    # At the optimum the penalised gradient vanishes.
    residual = weights[:, :, None] * (targets - np.exp(softmax_log_proba(Xa, coef)))
    gradient = np.einsum("np,njc->jpc", Xa, residual)
    gradient[:, :-1, :] -= 0.1 * coef[:, :-1, :]
    assert np.abs(gradient).max() < gradient_tol


def test_penalty_scale_is_the_weighted_std_of_each_column():
    rng = np.random.default_rng(2)
    X = rng.normal(3.0, [0.5, 2.0], size=(200, 2))
    weight = rng.uniform(0.1, 2.0, size=200)
    mean = np.average(X, axis=0, weights=weight)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weight))
    np.testing.assert_allclose(penalty_scale(X, weight), std, rtol=1e-13)
    # The weights' own scale does not matter, nor does a unit of X.
    np.testing.assert_allclose(
        penalty_scale(X * [1e-3, 1e3], weight * 1e6), std * [1e-3, 1e3], rtol=1e-13
    )


def test_penalty_scale_of_a_constant_column_is_its_magnitude():
    """Constant columns (to rounding) scale like the intercept, in any unit."""
    X = np.column_stack([np.full(50, 7.0), np.full(50, -1e-100), np.zeros(50)])
    X[:, 0] += np.linspace(-1, 1, 50) * 1e-15  # constant to rounding
    scale = penalty_scale(X, np.ones(50))
    np.testing.assert_allclose(scale, [7.0, 1e-100, 1.0], rtol=1e-12)
    np.testing.assert_array_equal(
        scale_from_moments([0.0, 1e-9, 2.0], [0.0, 1.0, 2.0]), [1.0, 1.0, 2.0]
    )


@pytest.mark.parametrize("full", [True, False])
def test_scaled_penalty_is_the_penalty_on_standardized_features(full):
    """A Newton step with ``scale`` is the plain step on ``X / scale``."""
    rng = np.random.default_rng(3)
    scale = np.array([1e-3, 1.0, 1e3])
    Z = rng.normal(size=(200, 3))  # standardized features
    targets = rng.dirichlet(np.ones(3), size=(200, 2))
    weights = rng.uniform(0.0, 2.0, size=(200, 2))
    coef_z = rng.normal(size=(2, 4, 3))
    coef_x = coef_z.copy()
    coef_x[:, :-1, :] /= scale[:, None]
    solver = "newton" if full else "block"
    new_z, gain_z, _ = softmax_newton_step(
        Design(Z, intercept=True), coef_z, targets, weights, alpha=2.0, solver=solver
    )
    new_x, gain_x, _ = softmax_newton_step(
        Design(Z * scale, intercept=True),
        coef_x,
        targets,
        weights,
        alpha=2.0,
        scale=scale,
        solver=solver,
    )
    # Both solve the same system, up to the rounding of its equilibration.
    new_x[:, :-1, :] *= scale[:, None]
    np.testing.assert_allclose(new_x, new_z, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gain_x, gain_z, rtol=1e-10)


# ---------------------------------------------------------------------------
# GateTree structure
# ---------------------------------------------------------------------------


def test_tree_structure():
    tree = GateTree((2, 2), n_features=3, feature_indices=[0, 1, 2])
    assert tree.n_nodes == 7 and tree.n_leaves == 4
    np.testing.assert_array_equal(tree.parent, [-1, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(tree.depth, [0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(tree.leaves, [3, 4, 5, 6])
    np.testing.assert_array_equal(tree.children(2), [5, 6])
    coef, intercept = tree.node_coef(2)
    assert coef.shape == (3, 2) and intercept.shape == (2,)
    with pytest.raises(ValueError, match="is a leaf"):
        tree.node_coef(5)
    # (b - 1) * (n_features + 1) per gate, three gates.
    assert tree.n_parameters == 3 * 1 * 4
    assert "gate 2 -> [5, 6]" in tree.describe()


# ---------------------------------------------------------------------------
# Hierarchical mixtures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "Estimator, fixture",
    [
        (MixtureOfExpertsRegressor, "moe_regression"),
        (MixtureOfExpertsClassifier, "moe_classification"),
    ],
)
@pytest.mark.parametrize("routing", ["soft", "hard", "topk"])
def test_depth_one_tree_equals_flat_mixture(Estimator, fixture, routing, request):
    X, y, _ = request.getfixturevalue(fixture)
    flat = Estimator(n_experts=3, routing=routing, random_state=0).fit(X, y)
    tree = Estimator(hierarchy=(3,), routing=routing, random_state=0).fit(X, y)
    np.testing.assert_allclose(flat.objective_history_, tree.objective_history_)
    method = "predict" if Estimator is MixtureOfExpertsRegressor else "predict_proba"
    np.testing.assert_allclose(getattr(flat, method)(X), getattr(tree, method)(X))


def test_hierarchical_mixture_recovers_a_known_tree():
    X, y, truth = make_hme_regression(
        n_samples=40_000,
        n_features=5,
        hierarchy=(2, 2),
        random_state=0,
        return_truth=True,
    )
    train, test = slice(0, 20_000), slice(20_000, None)
    tree = MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0)
    tree.fit(X[train], y[train])
    flat = MixtureOfExpertsRegressor(n_experts=4, random_state=0).fit(
        X[train], y[train]
    )
    rmse = np.sqrt(np.mean((tree.predict(X[test]) - y[test]) ** 2))
    rmse_truth = np.sqrt(np.mean((truth.predict(X[test]) - y[test]) ** 2))
    assert rmse <= 1.02 * rmse_truth
    tree_ll = np.mean(tree.log_likelihood(X[test], y[test]))
    flat_ll = np.mean(flat.log_likelihood(X[test], y[test]))
    assert tree_ll >= flat_ll - 0.005 * abs(flat_ll)


@pytest.mark.parametrize("routing", ["soft", "hard", "topk"])
def test_tree_inspection(hme_regression, routing):
    X, y, _ = hme_regression
    moe = MixtureOfExpertsRegressor(
        hierarchy=(2, 2), routing=routing, random_state=0
    ).fit(X, y)
    assert moe.hierarchy_ == (2, 2) and moe.n_experts_ == 4
    assert len(moe.experts_) == 4
    path = moe.decision_path(X)
    assert path.shape == (len(X), 7)
    np.testing.assert_allclose(path[:, moe.gate_.leaves], moe.predict_gate(X))
    np.testing.assert_array_equal(moe.apply(X), moe.predict_gate(X).argmax(axis=1))
    _, std = moe.predict(X, return_std=True)
    assert np.all(np.isfinite(std)) and np.all(std > 0)
    assert np.isfinite(moe.bic(X, y))


def test_tree_parameter_count_includes_every_gate(hme_regression):
    X, y, _ = hme_regression
    moe = MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0).fit(X, y)
    d = X.shape[1]
    n_parameters = 4 * (d + 2) + 3 * (d + 1)
    total = moe.log_likelihood(X, y).sum()
    assert moe.aic(X, y) == pytest.approx(-2 * total + 2 * n_parameters)


def test_tree_classifier_with_sample_weight_and_gate_features():
    X, y = make_hme_classification(
        n_samples=600, n_features=4, hierarchy=(2, 2), random_state=0
    )
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    moe = MixtureOfExpertsClassifier(
        hierarchy=(2, 2), gate_features=[0, 1, 2], n_jobs=2, random_state=0
    ).fit(X, y, sample_weight=weights)
    assert moe.score(X, y) > 0.7
    proba = moe.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_grid_search_over_hierarchy_in_a_pipeline(hme_regression):
    X, y, _ = hme_regression
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("moe", MixtureOfExpertsRegressor(random_state=0)),
        ]
    )
    grid = {"moe__hierarchy": [(2,), (4,), (2, 2)]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert search.best_params_["moe__hierarchy"] in [(4,), (2, 2)]
    assert search.best_estimator_[-1].n_experts_ == 4


def test_tree_warm_start_continues_from_the_fitted_tree(hme_regression):
    X, y, _ = hme_regression
    moe = MixtureOfExpertsRegressor(hierarchy=(2, 2), warm_start=True, random_state=0)
    moe.fit(X, y)
    before = moe.objective_history_[-1]
    coef = [c.copy() for c in moe.gate_.coef]
    moe.fit(X, y)
    assert moe.objective_history_[0] == pytest.approx(before, rel=1e-12)
    assert moe.objective_history_[-1] >= before - 1e-12
    np.testing.assert_allclose(moe.gate_.coef[0], coef[0], atol=1e-2)


def test_placement_tolerates_clusters_without_rows():
    """A flat expert that wins no row must not break the tree's start."""
    from skmoe._backend import add_intercept
    from skmoe._init import group_clusters

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    labels = np.where(X[:, 0] > 0, 0, 1)  # clusters 2..7 hold no row
    placements = group_clusters(
        labels,
        add_intercept(X),
        (2, 2, 2),
        np.ones(200),
        np.random.RandomState(0),
        alpha=1.0,
        n_candidates=2,
    )
    for cluster_to_leaf in placements:
        assert sorted(cluster_to_leaf) == list(range(8))
