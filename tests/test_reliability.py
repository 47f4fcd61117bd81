"""Bad and hostile inputs: a clear error in scikit-learn's words, or a right result.

One test (or parametrized case) per item of the catalogue in
``tests/RELIABILITY.md``. An illegal input raises ``ValueError`` or
``TypeError`` with a message that names the problem; a legal but hostile one
fits, and nothing it returns is NaN or infinite. RuntimeWarnings (overflow,
division by zero, invalid values) are errors in this module: a warning from
numpy is a numerical accident, never an answer.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._softmax import _ROUNDING_SLACK

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("error::RuntimeWarning"),
]

ESTIMATORS = {
    "regressor": MixtureOfExpertsRegressor,
    "classifier": MixtureOfExpertsClassifier,
}


def make_data(n_samples=60, n_features=2, seed=0):
    """Return X, a piecewise-linear regression target and a binary class target."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = np.where(X[:, 0] > 0, 2.0 * X[:, 0], -X[:, 0]) + 0.1 * rng.normal(
        size=n_samples
    )
    y_class = (X[:, 0] + 0.5 * X[:, -1] > 0).astype(int)
    return X, y, y_class


def small(kind, **params):
    """Return a small, fast, seeded estimator of ``kind``."""
    params = {"n_experts": 2, "max_iter": 10, "random_state": 0, **params}
    return ESTIMATORS[kind](**params)


def data_for(kind, **kwargs):
    X, y, y_class = make_data(**kwargs)
    return X, (y if kind == "regressor" else y_class)


def r2(y, pred):
    return 1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def fitted_outputs(est, X, y):
    """Return every output and fitted array of ``est`` by name."""
    outputs = {
        "predict_gate": est.predict_gate(X),
        "decision_path": est.decision_path(X),
        "log_likelihood": est.log_likelihood(X, y),
        "log_likelihood_": np.asarray(est.log_likelihood_),
        "objective_history_": est.objective_history_,
        "log_likelihood_history_": est.log_likelihood_history_,
    }
    if isinstance(est, MixtureOfExpertsRegressor):
        mean, std = est.predict(X, return_std=True)
        outputs.update(
            predict=mean, predict_std=std, noise_variance_=est.noise_variance_
        )
    else:
        outputs["predict_proba"] = est.predict_proba(X)
    for level, coef in enumerate(est.gate_.coef):
        outputs[f"gate_.coef[{level}]"] = coef
    for k, expert in enumerate(est.experts_):
        for name in ("coef_", "intercept_"):
            if hasattr(expert, name):
                outputs[f"experts_[{k}].{name}"] = np.asarray(getattr(expert, name))
    return outputs


def assert_all_finite(est, X, y):
    for name, value in fitted_outputs(est, X, y).items():
        assert np.all(np.isfinite(value)), f"{name} is not finite"


# ---------------------------------------------------------------------------
# Non-finite values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize(
    "value, match",
    [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")],
)
def test_non_finite_X_is_rejected(kind, value, match):
    X, y = data_for(kind)
    X[3, 1] = value
    with pytest.raises(ValueError, match=match):
        small(kind).fit(X, y)


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize(
    "value, match",
    [(np.nan, "Input y contains NaN"), (np.inf, "Input y contains infinity")],
)
def test_non_finite_y_is_rejected(kind, value, match):
    X, y = data_for(kind)
    y = y.astype(float)
    y[3] = value
    with pytest.raises(ValueError, match=match):
        small(kind).fit(X, y)


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize(
    "value, match",
    [
        (np.nan, "Input sample_weight contains NaN"),
        (np.inf, "Input sample_weight contains infinity"),
    ],
)
def test_non_finite_sample_weight_is_rejected(kind, value, match):
    X, y = data_for(kind)
    sample_weight = np.ones(len(y))
    sample_weight[3] = value
    with pytest.raises(ValueError, match=match):
        small(kind).fit(X, y, sample_weight=sample_weight)


# ---------------------------------------------------------------------------
# Sizes and shapes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_empty_X_is_rejected(kind):
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        small(kind).fit(np.empty((0, 2)), np.empty(0))


def test_one_sample_is_rejected_with_several_experts():
    X, y = data_for("regressor")
    with pytest.raises(ValueError, match="n_samples=1 should be >= n_experts=3"):
        MixtureOfExpertsRegressor().fit(X[:1], y[:1])


def test_one_sample_is_rejected_by_the_classifier():
    X, y = data_for("classifier")
    with pytest.raises(ValueError, match="only one class"):
        MixtureOfExpertsClassifier(n_experts=1).fit(X[:1], y[:1])


def test_one_sample_with_one_expert_fits_it():
    """Legal: one expert on one row interpolates it (away from it, any line does)."""
    X, y = data_for("regressor")
    moe = MixtureOfExpertsRegressor(n_experts=1).fit(X[:1], y[:1])
    np.testing.assert_allclose(moe.predict(X[:1]), y[:1], rtol=1e-6)
    assert_all_finite(moe, X[:5], y[:5])


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("params", [{"n_experts": 4}, {"hierarchy": (2, 2)}])
def test_fewer_samples_than_experts_is_rejected(kind, params):
    X, y = data_for(kind)
    X, y = X[:3], (y[:3] if kind == "regressor" else np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="n_samples=3 should be >= n_experts=4"):
        ESTIMATORS[kind](**params).fit(X, y)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_X_and_y_lengths_must_match(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small(kind).fit(X, y[:-1])


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_X_and_sample_weight_lengths_must_match(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(59,\), expected"):
        small(kind).fit(X, y, sample_weight=np.ones(59))


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_1d_X_is_rejected(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        small(kind).fit(X[:, 0], y)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_3d_X_is_rejected(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match="Found array with dim 3"):
        small(kind).fit(X[:, :, None], y)


# ---------------------------------------------------------------------------
# Dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_complex_X_is_rejected(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match="Complex data not supported"):
        small(kind).fit(X.astype(complex), y)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_object_X_of_numbers_is_converted(kind):
    """Legal: an object array of numbers is converted, as scikit-learn does."""
    X, y = data_for(kind)
    from_object = small(kind).fit(X.astype(object), y)
    from_float = small(kind).fit(X, y)
    np.testing.assert_array_equal(from_object.predict(X), from_float.predict(X))


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_object_X_of_strings_is_rejected(kind):
    X, y = data_for(kind)
    X = X.astype(object)
    X[0, 0] = "a"
    with pytest.raises(ValueError, match="could not convert string to float"):
        small(kind).fit(X, y)


def test_string_targets_are_predicted_as_strings():
    X, y = data_for("classifier")
    labels = np.array(["no", "yes"])[y]
    moe = small("classifier").fit(X, labels)
    assert moe.classes_.tolist() == ["no", "yes"]
    assert set(moe.predict(X)) <= {"no", "yes"}
    assert np.mean(moe.predict(X) == labels) > 0.9
    assert_all_finite(moe, X, labels)


def test_single_class_is_rejected():
    X, _ = data_for("classifier")
    with pytest.raises(ValueError, match="contains only one class"):
        small("classifier").fit(X, np.zeros(len(X), dtype=int))


def test_constant_target_predicts_the_constant():
    X, _ = data_for("regressor")
    y = np.full(len(X), 3.5)
    moe = small("regressor").fit(X, y)
    np.testing.assert_allclose(moe.predict(X), 3.5, rtol=1e-9)
    assert np.isfinite(moe.log_likelihood_)
    assert np.all(moe.noise_variance_ > 0)
    assert_all_finite(moe, X, y)


# ---------------------------------------------------------------------------
# Sample weights
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_all_zero_sample_weight_is_rejected(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match="at least one non-zero"):
        small(kind).fit(X, y, sample_weight=np.zeros(len(y)))


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_negative_sample_weight_is_rejected(kind):
    X, y = data_for(kind)
    sample_weight = np.ones(len(y))
    sample_weight[0] = -1.0
    with pytest.raises(ValueError, match="Negative values in data passed to"):
        small(kind).fit(X, y, sample_weight=sample_weight)


# ---------------------------------------------------------------------------
# Degenerate but legal data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_duplicated_rows_fit(kind):
    X, y = data_for(kind)
    X2, y2 = np.vstack([X, X]), np.concatenate([y, y])
    moe = small(kind).fit(X2, y2)
    assert_all_finite(moe, X2, y2)
    assert moe.score(X, y) > 0.9


def test_collinear_features_fit_as_well_as_least_squares():
    X, y = data_for("regressor")
    X = np.column_stack([X, 2.0 * X[:, 0], X[:, 0] - X[:, 1]])
    moe = small("regressor").fit(X, y)
    assert_all_finite(moe, X, y)
    mse = np.mean((moe.predict(X) - y) ** 2)
    mse_linear = np.mean((LinearRegression().fit(X, y).predict(X) - y) ** 2)
    assert mse <= 1.01 * mse_linear


def test_collinear_features_classifier_fits():
    X, y = data_for("classifier")
    X = np.column_stack([X, 2.0 * X[:, 0]])
    moe = small("classifier").fit(X, y)
    assert_all_finite(moe, X, y)
    assert moe.score(X, y) >= LogisticRegression().fit(X, y).score(X, y) - 0.05


@pytest.mark.parametrize("routing", ["soft", "hard", "topk"])
def test_separable_classes_are_classified_perfectly(routing):
    X, _ = data_for("classifier")
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] += np.where(y == 1, 1.0, -1.0)  # a margin of 2 between the classes
    moe = small("classifier", routing=routing).fit(X, y)
    assert moe.score(X, y) == 1.0
    assert_all_finite(moe, X, y)


# ---------------------------------------------------------------------------
# Extreme magnitudes
# ---------------------------------------------------------------------------
# Decided behaviour: EM squares X and y (standardisation, Gram matrices,
# Gaussian residuals), so values whose squares overflow float64 (|v| beyond
# about 1e154) cannot be fitted: they are rejected in scikit-learn's words,
# "too large". Up to 1e100, X gives the fit of unscaled X. Small X is legal:
# the gate's L2 penalty (gate_alpha) acts on standardized features, so at
# 1e-100 the regressor's fit is that of unscaled X; at 1e-300 a feature's
# squares underflow and it acts as a constant, as in StandardScaler. A
# target of ~1e-300 is legal and predicted, but its noise variance (~1e-600)
# is not representable and is floored, so the experts do not specialise:
# finite, degraded (standardise y first).


def linear_data():
    X, _, _ = make_data()
    y = X @ np.array([1.5, -0.5]) + 0.1 * np.random.RandomState(2).normal(size=len(X))
    return X, y


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_huge_X_is_rejected(kind):
    X, y = data_for(kind)
    with pytest.raises(ValueError, match="too large"):
        small(kind).fit(X * 1e300, y)


def test_huge_y_is_rejected():
    X, y = data_for("regressor")
    with pytest.raises(ValueError, match="too large"):
        small("regressor").fit(X, y * 1e300)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_large_X_fits_like_unscaled_X(kind):
    X, y = data_for(kind)
    scaled = small(kind).fit(X * 1e100, y)
    assert_all_finite(scaled, X * 1e100, y)
    unscaled = small(kind).fit(X, y)
    assert scaled.score(X * 1e100, y) >= unscaled.score(X, y) - 1e-3


def test_small_X_fits_like_unscaled_X():
    """The gate's penalty acts on standardized features: 1e-100 is a unit."""
    X, y = make_data()[:2]
    scaled = small("regressor").fit(X * 1e-100, y)
    assert_all_finite(scaled, X * 1e-100, y)
    unscaled = small("regressor").fit(X, y)
    assert_same_predictions(scaled, X * 1e-100, unscaled, X, y)


# Rescaled columns give the same fit up to rounding, and EM turns rounding
# into a difference of decisions only in its line searches: a step whose
# gain is below the relative slack (``_ROUNDING_SLACK``) may be taken by one
# fit and halved by the other. Near the optimum the objective is quadratic
# in the step, so such a step moves the gate's log-odds by about
# ``sqrt(slack)`` per row and the predictions by that times the spread of
# the experts: the tolerance, with a factor 10 for the few rows that weigh
# least in the objective.
_UNIT_RTOL = 10.0 * np.sqrt(_ROUNDING_SLACK)


def assert_same_predictions(scaled, X_scaled, reference, X, y):
    """Assert that two fits predict alike, to ``_UNIT_RTOL`` of their spread."""
    np.testing.assert_allclose(
        scaled.predict_gate(X_scaled),
        reference.predict_gate(X),
        rtol=0,
        atol=_UNIT_RTOL,
    )
    if isinstance(reference, MixtureOfExpertsClassifier):
        np.testing.assert_allclose(
            scaled.predict_proba(X_scaled),
            reference.predict_proba(X),
            rtol=0,
            atol=_UNIT_RTOL,
        )
        np.testing.assert_array_equal(scaled.predict(X_scaled), reference.predict(X))
    else:
        spread = np.std(y)
        for scaled_out, out in zip(
            scaled.predict(X_scaled, return_std=True),
            reference.predict(X, return_std=True),
            strict=True,
        ):
            np.testing.assert_allclose(
                scaled_out, out, rtol=0, atol=_UNIT_RTOL * spread
            )


_UNITS = {
    "each column its own": np.array([1e-3, 1e3, 1.0]),
    "all columns 1e-3": 1e-3,
    "all columns 1e3": 1e3,
}


@pytest.fixture(scope="module")
def three_feature_data():
    X, _, _ = make_data(n_samples=200, n_features=3, seed=1)
    y = np.where(
        X[:, 0] > 0, 2.0 * X[:, 1], 1.0 - X[:, 1]
    ) + 0.1 * np.random.RandomState(3).normal(size=len(X))
    return X, y


@pytest.mark.parametrize("units", _UNITS.values(), ids=_UNITS.keys())
@pytest.mark.parametrize(
    "structure", [{"n_experts": 3}, {"n_experts": None, "hierarchy": (2, 2)}]
)
def test_units_of_X_do_not_change_the_fit(three_feature_data, structure, units):
    """Columns in other units (x 1e-3, x 1e3): the same predictions.

    The default experts (least squares) and the gate's penalty, which acts
    on standardized features, are invariant to the units of X.
    """
    X, y = three_feature_data
    reference = small("regressor", **structure).fit(X, y)
    scaled = small("regressor", **structure).fit(X * units, y)
    assert_same_predictions(scaled, X * units, reference, X, y)


@pytest.mark.parametrize("units", _UNITS.values(), ids=_UNITS.keys())
def test_units_of_X_do_not_change_the_classifier_gate(three_feature_data, units):
    """The classifier's gate is invariant to units, given invariant experts.

    LogisticRegression experts penalise raw coefficients (their ``C``, as in
    scikit-learn), so they change with the units of X and the gate with
    them; decision trees do not, and leave only the gate's invariance to
    test.
    """
    X, y = three_feature_data
    y_class = (y > 0.5).astype(int)
    expert = DecisionTreeClassifier(max_depth=2)
    reference = small("classifier", estimator=expert).fit(X, y_class)
    scaled = small("classifier", estimator=expert).fit(X * units, y_class)
    assert_same_predictions(scaled, X * units, reference, X, y_class)


def test_tiny_X_acts_as_a_constant_feature():
    X, y = linear_data()
    moe = small("regressor").fit(X * 1e-300, y)
    assert_all_finite(moe, X * 1e-300, y)
    assert moe.score(X * 1e-300, y) >= -1e-6


def test_tiny_y_is_predicted():
    X, y = data_for("regressor")
    moe = small("regressor").fit(X, y * 1e-300)
    assert_all_finite(moe, X, y * 1e-300)
    assert r2(y, moe.predict(X) / 1e-300) > 0.0


def test_target_with_a_large_offset_fits_like_the_centred_target():
    """y = 1e8 + O(1) keeps 8 digits of signal: the fit must not lose them."""
    X, y = data_for("regressor")
    centred = small("regressor").fit(X, y)
    offset = small("regressor").fit(X, y + 1e8)
    np.testing.assert_allclose(offset.predict(X) - 1e8, centred.predict(X), atol=1e-4)
    np.testing.assert_allclose(
        offset.noise_variance_, centred.noise_variance_, rtol=1e-3
    )
    np.testing.assert_allclose(
        offset.predict(X, return_std=True)[1],
        centred.predict(X, return_std=True)[1],
        rtol=1e-3,
    )


# ---------------------------------------------------------------------------
# Experts that cannot serve
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, expert",
    [("regressor", KNeighborsRegressor()), ("classifier", KNeighborsClassifier())],
)
def test_expert_without_sample_weight_is_rejected(kind, expert):
    X, y = data_for(kind)
    with pytest.raises(TypeError, match="does not support sample_weight"):
        small(kind, estimator=expert).fit(X, y)


def test_classifier_expert_without_predict_proba_is_rejected():
    X, y = data_for("classifier")
    with pytest.raises(TypeError, match="LinearSVC has no predict_proba"):
        small("classifier", estimator=LinearSVC()).fit(X, y)


# ---------------------------------------------------------------------------
# Invalid parameters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_experts": 0}, r"'n_experts' parameter .* range \[1, inf\)"),
        ({"n_experts": 2, "routing": "topk", "top_k": 3}, "top_k=3 is larger than"),
        ({"routing": "sparse"}, "'routing' parameter"),
        ({"top_k": 0}, "'top_k' parameter"),
        ({"max_iter": 0}, "'max_iter' parameter"),
        ({"n_init": 0}, "'n_init' parameter"),
        ({"tol": -1.0}, "'tol' parameter"),
        ({"gate_alpha": -1.0}, "'gate_alpha' parameter"),
        ({"init_params": "kmeans++"}, "'init_params' parameter"),
        ({"hierarchy": (2, 0)}, "hierarchy must be a non-empty tuple of integers"),
        ({"hierarchy": (1, 2)}, "hierarchy must be a non-empty tuple of integers"),
        ({"hierarchy": (3, 1)}, "hierarchy must be a non-empty tuple of integers"),
        ({"hierarchy": ()}, "hierarchy must be a non-empty tuple of integers"),
        ({"hierarchy": (2, 2), "n_experts": 3}, "does not match hierarchy"),
        ({"gate_features": [5]}, r"gate_features indices must lie in \[0, 2\)"),
        ({"gate_features": [-3]}, r"gate_features indices must lie in \[0, 2\)"),
        ({"gate_features": ["x0"]}, "X has no feature names"),
        ({"gate_features": [True]}, "boolean mask of length 1, but X has 2"),
        ({"gate_features": [[0, 1]]}, "gate_features must be a 1-d list"),
        ({"gate_features": [0.5]}, "must hold integer indices"),
    ],
)
def test_invalid_parameters_are_rejected(kind, params, match):
    X, y = data_for(kind)
    params = {"max_iter": 5, "random_state": 0, **params}
    with pytest.raises(ValueError, match=match):
        ESTIMATORS[kind](**params).fit(X, y)


def test_invalid_reg_variance_is_rejected():
    X, y = data_for("regressor")
    with pytest.raises(ValueError, match="'reg_variance' parameter"):
        small("regressor", reg_variance=-1.0).fit(X, y)


def test_unknown_gate_feature_name_is_rejected():
    pd = pytest.importorskip("pandas")
    X, y = data_for("regressor")
    X = pd.DataFrame(X, columns=["a", "b"])
    with pytest.raises(ValueError, match=r"gate_features \['z'\] are not feature"):
        small("regressor", gate_features=["z"]).fit(X, y)


def test_expert_list_of_the_wrong_length_is_rejected():
    X, y = data_for("regressor")
    experts = [LinearRegression()] * 3
    with pytest.raises(ValueError, match="list of 3 estimators but the mixture has 2"):
        small("regressor", estimator=experts).fit(X, y)


# ---------------------------------------------------------------------------
# Prediction inputs
# ---------------------------------------------------------------------------


def _methods(kind):
    methods = ["predict", "predict_gate", "apply", "decision_path"]
    return methods + (["predict_proba"] if kind == "classifier" else [])


@pytest.mark.parametrize(
    "kind, method",
    [(kind, method) for kind in ESTIMATORS for method in _methods(kind)],
)
def test_predicting_with_the_wrong_number_of_features_is_rejected(kind, method):
    X, y = data_for(kind)
    moe = small(kind).fit(X, y)
    with pytest.raises(ValueError, match=r"X has 1 features, but .* is expecting 2"):
        getattr(moe, method)(X[:, :1])
    with pytest.raises(ValueError, match=r"X has 1 features, but .* is expecting 2"):
        moe.log_likelihood(X[:, :1], y)


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_other_feature_names_in_predict_are_rejected(kind):
    pd = pytest.importorskip("pandas")
    X, y = data_for(kind)
    moe = small(kind).fit(pd.DataFrame(X, columns=["a", "b"]), y)
    with pytest.raises(ValueError, match="feature names should match those"):
        moe.predict(pd.DataFrame(X, columns=["a", "c"]))


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_missing_or_new_feature_names_warn(kind):
    pd = pytest.importorskip("pandas")
    X, y = data_for(kind)
    named = small(kind).fit(pd.DataFrame(X, columns=["a", "b"]), y)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        named.predict(X)
    unnamed = small(kind).fit(X, y)
    with pytest.warns(UserWarning, match="X has feature names, but"):
        unnamed.predict(pd.DataFrame(X, columns=["a", "b"]))


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_sparse_X_is_rejected(kind):
    X, y = data_for(kind)
    assert not small(kind).__sklearn_tags__().input_tags.sparse
    with pytest.raises(TypeError, match="Sparse data was passed"):
        small(kind).fit(sp.csr_matrix(X), y)
    moe = small(kind).fit(X, y)
    with pytest.raises(TypeError, match="Sparse data was passed"):
        moe.predict(sp.csr_matrix(X))


# ---------------------------------------------------------------------------
# Inputs untouched, results repeatable
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("container", ["numpy", "pandas"])
def test_inputs_are_not_mutated(kind, container):
    X, y = data_for(kind)
    sample_weight = np.linspace(0.5, 2.0, len(y))
    if container == "pandas":
        pd = pytest.importorskip("pandas")
        X = pd.DataFrame(X, columns=["a", "b"])
        y, sample_weight = pd.Series(y, name="y"), pd.Series(sample_weight)
    copies = [v.copy() for v in (X, y, sample_weight)]
    gate_features = [0]
    moe = small(kind, gate_features=gate_features)
    moe.fit(X, y, sample_weight=sample_weight)
    moe.predict(X)
    moe.log_likelihood(X, y)
    for before, after in zip(copies, (X, y, sample_weight), strict=True):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
        assert np.asarray(before).dtype == np.asarray(after).dtype
    if container == "pandas":
        assert list(X.columns) == ["a", "b"]
    assert moe.gate_features is gate_features and gate_features == [0]


def _assert_identical_fits(first, second, X, y):
    a, b = fitted_outputs(first, X, y), fitted_outputs(second, X, y)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    for e1, e2 in zip(first.experts_, second.experts_, strict=True):
        np.testing.assert_array_equal(e1.predict(X), e2.predict(X))
    assert first.n_iter_ == second.n_iter_


@pytest.mark.parametrize("kind", ESTIMATORS)
@pytest.mark.parametrize("hierarchy", [(3,), (2, 2)])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_same_random_state_gives_identical_fits(kind, hierarchy, init_params):
    X, y = data_for(kind, n_samples=80)
    params = {"hierarchy": hierarchy, "init_params": init_params, "n_init": 2}
    first = ESTIMATORS[kind](max_iter=5, random_state=7, **params).fit(X, y)
    second = ESTIMATORS[kind](max_iter=5, random_state=7, **params).fit(X, y)
    _assert_identical_fits(first, second, X, y)


@pytest.mark.parametrize(
    "kind, expert",
    [
        ("regressor", DecisionTreeRegressor(max_depth=3)),
        ("classifier", DecisionTreeClassifier(max_depth=3)),
    ],
)
def test_n_jobs_does_not_change_the_fit(kind, expert):
    X, y = data_for(kind, n_samples=80)
    serial = small(kind, estimator=expert, n_experts=3, n_jobs=1).fit(X, y)
    parallel = small(kind, estimator=expert, n_experts=3, n_jobs=2).fit(X, y)
    _assert_identical_fits(serial, parallel, X, y)


# ---------------------------------------------------------------------------
# Hostile but legal data: nothing non-finite comes out
# ---------------------------------------------------------------------------


def hostile_data(name, kind):
    rng = np.random.RandomState(1)
    X, y, y_class = make_data(n_samples=40)
    if name in ("constant_y", "constant_y_far_from_zero"):
        y = np.full(len(X), -2.0 if name == "constant_y" else 1e8)
        y_class = np.r_[np.zeros(len(X) - 2, dtype=int), 1, 1]
    elif name == "duplicated_points":
        X, y, y_class = (np.repeat(v[:3], 14, axis=0)[:40] for v in (X, y, y_class))
        y_class[:2] = [0, 1]
    elif name == "n_equal_to_n_experts":
        X, y, y_class = X[:4], y[:4], np.array([0, 1, 1, 0])
    elif name == "mixed_scales":
        X = X * np.array([1e8, 1e-8])
        y = 1e-8 * X[:, 0] + 1e8 * X[:, 1] + 0.1 * rng.normal(size=len(X))
    return X, (y if kind == "regressor" else y_class)


HOSTILE = ["constant_y", "duplicated_points", "n_equal_to_n_experts", "mixed_scales"]


@pytest.mark.parametrize(
    "name, kind",
    [(name, kind) for name in HOSTILE for kind in ESTIMATORS]
    + [("constant_y_far_from_zero", "regressor")],
)
@pytest.mark.parametrize("hierarchy", [(4,), (2, 2)])
@pytest.mark.parametrize("routing", ["soft", "hard", "topk"])
def test_hostile_data_gives_finite_outputs(name, kind, hierarchy, routing):
    X, y = hostile_data(name, kind)
    moe = ESTIMATORS[kind](
        hierarchy=hierarchy, routing=routing, max_iter=8, random_state=0
    ).fit(X, y)
    assert_all_finite(moe, X, y)
