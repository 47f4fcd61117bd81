"""Tests for the synthetic data generators in skmoe.datasets."""

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import norm
from sklearn.linear_model import LinearRegression

from skmoe.datasets import (
    MixtureTruth,
    make_hme_classification,
    make_hme_regression,
    make_moe_classification,
    make_moe_regression,
)

GENERATORS = [
    make_moe_regression,
    make_hme_regression,
    make_moe_classification,
    make_hme_classification,
]
REGRESSION = [make_moe_regression, make_hme_regression]
CLASSIFICATION = [make_moe_classification, make_hme_classification]

# Default-sized trees: four experts, flat and as a depth-2 binary tree.
DEFAULT_TREES = [
    pytest.param(make_moe_regression, {}, id="flat-4"),
    pytest.param(make_hme_regression, {"hierarchy": (2, 2)}, id="tree-2x2"),
]


def _expert_means(truth, X):
    return X @ truth.expert_coef.T + truth.expert_intercept


@pytest.mark.parametrize("make", GENERATORS)
def test_shapes_and_dtypes(make):
    """X, y and the truth's arrays have the documented shapes and dtypes."""
    X, y, truth = make(n_samples=50, n_features=3, random_state=0, return_truth=True)
    assert X.shape == (50, 3)
    assert X.dtype == np.float64
    assert y.shape == (50,)
    assert truth.assignments.shape == (50,)
    assert np.issubdtype(truth.assignments.dtype, np.integer)
    assert truth.n_experts == 4
    assert isinstance(truth, MixtureTruth)
    if make in REGRESSION:
        assert y.dtype == np.float64
        assert truth.expert_coef.shape == (4, 3)
        assert truth.expert_intercept.shape == (4,)
        assert truth.noise_std.shape == (4,)
        assert truth.classes is None
    else:
        assert np.issubdtype(y.dtype, np.integer)
        assert set(np.unique(y)) <= {0, 1}
        assert truth.expert_coef.shape == (4, 2, 3)
        assert truth.expert_intercept.shape == (4, 2)
        assert truth.noise_std is None
        np.testing.assert_array_equal(truth.classes, [0, 1])


@pytest.mark.parametrize("make", GENERATORS)
def test_return_truth_false_returns_two_arrays(make):
    """Without return_truth the generators return X and y only."""
    result = make(n_samples=5, random_state=0)
    assert len(result) == 2


@pytest.mark.parametrize("make", [make_hme_regression, make_hme_classification])
def test_gate_tree_shapes(make):
    """Gate arrays follow the hierarchy level by level, in breadth-first order."""
    _, _, truth = make(
        n_samples=10,
        n_features=5,
        hierarchy=(2, 3, 2),
        random_state=0,
        return_truth=True,
    )
    assert truth.hierarchy == (2, 3, 2)
    assert truth.n_experts == 12
    assert [c.shape for c in truth.gate_coef] == [(1, 5, 2), (2, 5, 3), (6, 5, 2)]
    assert [b.shape for b in truth.gate_intercept] == [(1, 2), (2, 3), (6, 2)]


@pytest.mark.parametrize("make", GENERATORS)
def test_same_random_state_same_output(make):
    """An integer random_state makes the output reproducible; another changes it."""
    X1, y1, truth1 = make(n_samples=30, random_state=3, return_truth=True)
    X2, y2, truth2 = make(n_samples=30, random_state=3, return_truth=True)
    X3, _ = make(n_samples=30, random_state=4)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(truth1.assignments, truth2.assignments)
    np.testing.assert_array_equal(truth1.expert_coef, truth2.expert_coef)
    for coef1, coef2 in zip(truth1.gate_coef, truth2.gate_coef, strict=True):
        np.testing.assert_array_equal(coef1, coef2)
    assert not np.allclose(X1, X3)


@pytest.mark.parametrize("make", GENERATORS)
def test_model_does_not_depend_on_n_samples(make):
    """The model is drawn before X, so a larger sample shares the model."""
    _, _, small = make(n_samples=10, random_state=0, return_truth=True)
    _, _, large = make(n_samples=500, random_state=0, return_truth=True)
    np.testing.assert_array_equal(small.expert_coef, large.expert_coef)
    np.testing.assert_array_equal(small.expert_intercept, large.expert_intercept)
    for coef_small, coef_large in zip(small.gate_coef, large.gate_coef, strict=True):
        np.testing.assert_array_equal(coef_small, coef_large)


@pytest.mark.parametrize(
    ("flat", "tree", "kwargs"),
    [
        (make_moe_regression, make_hme_regression, {"noise": [0.1, 0.2, 0.3]}),
        (make_moe_classification, make_hme_classification, {"n_classes": 3}),
    ],
)
def test_flat_equals_depth_one_tree(flat, tree, kwargs):
    """A flat mixture is exactly the tree (n_experts,), draw for draw."""
    X_flat, y_flat, truth_flat = flat(
        n_samples=100, n_experts=3, random_state=0, return_truth=True, **kwargs
    )
    X_tree, y_tree, truth_tree = tree(
        n_samples=100, hierarchy=(3,), random_state=0, return_truth=True, **kwargs
    )
    np.testing.assert_array_equal(X_flat, X_tree)
    np.testing.assert_array_equal(y_flat, y_tree)
    np.testing.assert_array_equal(truth_flat.assignments, truth_tree.assignments)
    np.testing.assert_array_equal(truth_flat.gate_coef[0], truth_tree.gate_coef[0])
    assert truth_flat.hierarchy == truth_tree.hierarchy == (3,)


@pytest.mark.parametrize("make", GENERATORS)
def test_predict_gate_is_a_distribution(make):
    """Leaf gate probabilities are non-negative and each row sums to one."""
    X, _, truth = make(n_samples=200, random_state=0, return_truth=True)
    gate = truth.predict_gate(X)
    assert gate.shape == (200, 4)
    assert np.all(gate >= 0)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0)
    np.testing.assert_array_equal(truth.apply(X), gate.argmax(axis=1))


def test_leaf_gate_is_product_along_path():
    """In a (2, 3) tree, leaf p * 3 + c has probability root[p] * node_p[c]."""
    X, _, truth = make_hme_regression(
        n_samples=20, hierarchy=(2, 3), random_state=0, return_truth=True
    )
    root = softmax(X @ truth.gate_coef[0][0] + truth.gate_intercept[0][0], axis=1)
    expected = np.hstack(
        [
            root[:, [p]]
            * softmax(X @ truth.gate_coef[1][p] + truth.gate_intercept[1][p], axis=1)
            for p in range(2)
        ]
    )
    np.testing.assert_allclose(truth.predict_gate(X), expected)


def test_single_expert_is_a_linear_model():
    """One expert: the gate is trivial and y is a noisy linear function of X."""
    X, y, truth = make_moe_regression(
        n_samples=2000, n_experts=1, random_state=0, return_truth=True
    )
    np.testing.assert_allclose(truth.predict_gate(X), 1.0)
    residual = y - truth.predict(X)
    assert abs(residual.std() - 0.5) < 0.03


@pytest.mark.parametrize(("make", "kwargs"), DEFAULT_TREES)
def test_default_gates_are_sharp_and_balanced(make, kwargs):
    """Default gates are fairly sharp and give every expert a fair share."""
    X, _, truth = make(n_samples=20_000, random_state=0, return_truth=True, **kwargs)
    gate = truth.predict_gate(X)
    mean_max = gate.max(axis=1).mean()
    assert 0.8 < mean_max < 0.97
    shares = np.bincount(truth.assignments, minlength=4) / X.shape[0]
    assert shares.min() >= 0.03
    # Leaves are drawn from the gate: empirical shares track mean probabilities.
    np.testing.assert_allclose(shares, gate.mean(axis=0), atol=0.02)


@pytest.mark.parametrize(("make", "kwargs"), DEFAULT_TREES)
def test_gate_scale_controls_sharpness(make, kwargs):
    """A larger gate_scale gives crisper gates; zero gives a uniform gate."""
    mean_max = []
    for gate_scale in [0.0, 1.0, 4.0, 16.0]:
        X, _, truth = make(
            n_samples=2000,
            gate_scale=gate_scale,
            random_state=0,
            return_truth=True,
            **kwargs,
        )
        mean_max.append(truth.predict_gate(X).max(axis=1).mean())
    assert mean_max[0] == pytest.approx(0.25)
    assert np.all(np.diff(mean_max) > 0)


@pytest.mark.parametrize(("make", "kwargs"), DEFAULT_TREES)
def test_regression_truth_error_is_what_the_model_implies(make, kwargs):
    """The truth's mixture mean errs by its own predictive variance, no more."""
    X, y, truth = make(n_samples=20_000, random_state=0, return_truth=True, **kwargs)
    y_pred = truth.predict(X)
    mse = np.mean((y - y_pred) ** 2)

    gate = truth.predict_gate(X)
    means = _expert_means(truth, X)
    np.testing.assert_allclose(y_pred, np.sum(gate * means, axis=1))
    predictive_variance = np.sum(gate * (truth.noise_std**2 + means**2), axis=1)
    predictive_variance -= y_pred**2
    assert mse == pytest.approx(predictive_variance.mean(), rel=0.1)

    # Rows near a gate boundary cost more than the noise, but the truth still
    # beats both the mean of y and the best single linear model by far.
    rmse = np.sqrt(mse)
    assert 0.5 < rmse < 0.6 * y.std()
    linear_rmse = np.sqrt(np.mean((y - LinearRegression().fit(X, y).predict(X)) ** 2))
    assert rmse < 0.7 * linear_rmse
    # Knowing the expert that drew each row leaves only the noise.
    oracle = y - means[np.arange(len(y)), truth.assignments]
    assert oracle.std() == pytest.approx(0.5, rel=0.03)


def test_noise_per_expert():
    """An array of noise levels gives each expert its own noise."""
    noise = np.array([0.1, 0.5, 1.0, 2.0])
    X, y, truth = make_moe_regression(
        n_samples=20_000, noise=noise, random_state=0, return_truth=True
    )
    np.testing.assert_array_equal(truth.noise_std, noise)
    residual = y - _expert_means(truth, X)[np.arange(len(y)), truth.assignments]
    for k in range(4):
        in_k = truth.assignments == k
        assert residual[in_k].std() == pytest.approx(noise[k], rel=0.1)


@pytest.mark.parametrize("make", CLASSIFICATION)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classification_truth_beats_chance(make, n_classes):
    """The true model's predictions are far better than chance."""
    X, y, truth = make(
        n_samples=5000, n_classes=n_classes, random_state=0, return_truth=True
    )
    np.testing.assert_array_equal(np.unique(y), np.arange(n_classes))
    proba = truth.predict_proba(X)
    assert proba.shape == (5000, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(truth.predict(X), proba.argmax(axis=1))
    majority = np.bincount(y).max() / len(y)
    assert np.mean(truth.predict(X) == y) > majority + 0.15


@pytest.mark.parametrize("make", GENERATORS)
def test_log_likelihood_prefers_the_true_targets(make):
    """The true log-likelihood is finite and drops when y is shuffled."""
    X, y, truth = make(n_samples=2000, random_state=0, return_truth=True)
    log_likelihood = truth.log_likelihood(X, y)
    assert log_likelihood.shape == (2000,)
    assert np.all(np.isfinite(log_likelihood))
    y_shuffled = np.random.RandomState(0).permutation(y)
    assert log_likelihood.mean() > truth.log_likelihood(X, y_shuffled).mean() + 0.5


def test_regression_log_likelihood_is_the_mixture_density():
    """Regression log-likelihood is the log of the Gaussian mixture density."""
    X, y, truth = make_moe_regression(
        n_samples=50, noise=[0.3, 0.5, 0.7, 0.9], random_state=0, return_truth=True
    )
    density = norm.pdf(y[:, None], _expert_means(truth, X), truth.noise_std)
    expected = np.log(np.sum(truth.predict_gate(X) * density, axis=1))
    np.testing.assert_allclose(truth.log_likelihood(X, y), expected)


@pytest.mark.parametrize("make", CLASSIFICATION)
def test_classification_log_likelihood_is_log_proba(make):
    """Classification log-likelihood is the log mixture probability of y."""
    X, y, truth = make(n_samples=50, n_classes=3, random_state=0, return_truth=True)
    expected = np.log(truth.predict_proba(X)[np.arange(50), y])
    np.testing.assert_allclose(truth.log_likelihood(X, y), expected)


def test_log_likelihood_stays_finite_far_from_the_data():
    """Log space keeps the likelihood finite where densities underflow."""
    X, y, truth = make_moe_regression(n_samples=5, random_state=0, return_truth=True)
    assert np.all(np.isfinite(truth.log_likelihood(X, y + 1e3)))
    X, y, truth = make_moe_classification(
        n_samples=5, random_state=0, return_truth=True
    )
    assert np.all(np.isfinite(truth.log_likelihood(100 * X, 1 - y)))


def test_regression_truth_has_no_predict_proba():
    """predict_proba exists for classification truths only."""
    _, _, truth = make_moe_regression(n_samples=5, random_state=0, return_truth=True)
    assert not hasattr(truth, "predict_proba")
    assert "regression" in repr(truth)


def test_truth_checks_its_inputs():
    """Truth methods reject the wrong number of features and unknown labels."""
    X, y, truth = make_moe_classification(
        n_samples=5, n_features=3, random_state=0, return_truth=True
    )
    with pytest.raises(ValueError, match="X has 2 features"):
        truth.predict_gate(X[:, :2])
    with pytest.raises(ValueError, match="not in classes"):
        truth.log_likelihood(X, y + 5)
    with pytest.raises(ValueError, match="not in classes"):
        truth.log_likelihood(X, np.array(["a"] * 5))
    X, y, noiseless = make_moe_regression(
        n_samples=5, noise=0.0, random_state=0, return_truth=True
    )
    with pytest.raises(ValueError, match="noise_std > 0"):
        noiseless.log_likelihood(X, y)


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (make_moe_regression, {"n_samples": 0}, "n_samples must be >= 1"),
        (make_moe_regression, {"n_samples": 2.5}, "n_samples must be an integer"),
        (make_moe_regression, {"n_features": 0}, "n_features must be >= 1"),
        (make_moe_regression, {"n_experts": 0}, "n_experts must be >= 1"),
        (make_moe_regression, {"noise": -0.1}, "noise must be finite and >= 0"),
        (make_moe_regression, {"noise": [0.1, 0.2]}, r"shape \(n_experts,\)"),
        (make_moe_regression, {"gate_scale": -1.0}, "gate_scale must be"),
        (make_hme_regression, {"hierarchy": (2, 1)}, "every branching factor"),
        (make_hme_regression, {"hierarchy": ()}, "at least one level"),
        (make_hme_regression, {"hierarchy": 4}, "tuple of branching factors"),
        (make_hme_regression, {"noise": np.nan}, "noise must be finite"),
        (make_moe_classification, {"n_classes": 1}, "n_classes must be >= 2"),
        (make_moe_classification, {"n_experts": True}, "n_experts must be an int"),
        (make_moe_classification, {"expert_scale": np.inf}, "expert_scale must"),
        (make_hme_classification, {"hierarchy": (3, 0)}, "every branching factor"),
        (make_hme_classification, {"n_classes": 0}, "n_classes must be >= 2"),
    ],
)
def test_invalid_arguments_raise(make, kwargs, match):
    """Bad arguments raise a ValueError that names the argument."""
    with pytest.raises(ValueError, match=match):
        make(**kwargs)
