"""Standard errors: exact derivatives, penalties, tables, methods, errors."""

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor

from skmoe import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    MixtureSummary,
    bic_scorer,
    icl_scorer,
)
from skmoe._experts import gaussian_log_prior
from skmoe._inference import (
    ParameterLayout,
    align_to_reference,
    fitted_layout,
    information_penalty,
    mixture_derivatives,
    mixture_log_likelihood_rows,
    model_penalty,
    pack,
    penalty_gradient,
    permute_gate,
    unpack,
)
from skmoe._softmax import softmax_penalty
from skmoe.datasets import (
    make_hme_classification,
    make_hme_regression,
    make_moe_regression,
)

# Tight fits: standard errors describe the maximum, which EM's default tol
# stops short of on flat likelihoods.
TIGHT = {"tol": 1e-10, "max_iter": 3000}


def _regression(hierarchy, n_samples=400, random_state=0):
    return make_hme_regression(
        n_samples=n_samples,
        n_features=2,
        hierarchy=hierarchy,
        random_state=random_state,
    )


def _classification(hierarchy, n_samples=600, random_state=0):
    return make_hme_classification(
        n_samples=n_samples,
        n_features=2,
        hierarchy=hierarchy,
        n_classes=3,
        random_state=random_state,
    )


@pytest.fixture(scope="module")
def flat_regressor():
    X, y = _regression((2,))
    model = MixtureOfExpertsRegressor(n_experts=2, random_state=0, **TIGHT)
    return model.fit(X, y), X, y


# ---------------------------------------------------------------------------
# Exact derivatives
# ---------------------------------------------------------------------------


def _problem(kind, hierarchy, fit_intercept=True, seed=0):
    """A random point of a mixture's parameter space and data for it."""
    rng = np.random.default_rng(seed)
    n, d = 50, 2
    X = rng.standard_normal((n, d))
    Xg = np.column_stack([X, np.ones(n)])
    Xe = Xg if fit_intercept else X
    n_classes = 3 if kind == "logistic" else None
    layout = ParameterLayout(
        hierarchy, 3, kind, Xe.shape[1], n_classes, fit_intercept=fit_intercept
    )
    theta = 0.5 * rng.standard_normal(layout.size)
    if kind == "gaussian":
        y = rng.standard_normal(n)
        for k in range(layout.n_experts):
            theta[layout.expert_slice(k).stop - 1] = 0.5 + rng.random()
    else:
        y = rng.integers(0, n_classes, n)
    weight = 0.5 + rng.random(n)
    return layout, theta, Xg, Xe, y, weight


def _central_jacobian(function, theta, step):
    columns = []
    for e in np.eye(theta.size):
        h = step * max(1.0, abs(theta @ e))
        columns.append((function(theta + h * e) - function(theta - h * e)) / (2 * h))
    return np.array(columns)


CASES = [
    ("gaussian", (1,), True),
    ("gaussian", (2,), True),
    ("gaussian", (3,), False),
    ("gaussian", (2, 2), True),
    ("logistic", (2,), True),
    ("logistic", (2, 2), True),
]


@pytest.mark.parametrize(("kind", "hierarchy", "fit_intercept"), CASES)
def test_scores_and_hessian_equal_finite_differences(kind, hierarchy, fit_intercept):
    layout, theta, Xg, Xe, y, w = _problem(kind, hierarchy, fit_intercept)
    scores, hessian, _ = mixture_derivatives(layout, theta, Xg, Xe, y, w)

    def log_likelihood(t):
        return w @ mixture_log_likelihood_rows(layout, t, Xg, Xe, y)

    def gradient(t):
        return w @ mixture_derivatives(layout, t, Xg, Xe, y, w)[0]

    # Central differences: truncation h^2 and rounding eps / h; h = 1e-5
    # gives about 1e-9 relative for both, far inside 1e-5.
    numeric_gradient = _central_jacobian(log_likelihood, theta, 1e-5)
    scale = np.abs(numeric_gradient).max()
    np.testing.assert_allclose(w @ scores, numeric_gradient, atol=1e-6 * scale)
    numeric_hessian = _central_jacobian(gradient, theta, 1e-5)
    scale = np.abs(hessian).max()
    np.testing.assert_allclose(hessian, numeric_hessian, atol=1e-5 * scale)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12 * scale)


@pytest.mark.parametrize(("kind", "hierarchy", "fit_intercept"), CASES)
def test_pack_and_unpack_are_inverse(kind, hierarchy, fit_intercept):
    layout, theta, *_ = _problem(kind, hierarchy, fit_intercept)
    np.testing.assert_array_equal(pack(layout, *unpack(layout, theta)), theta)


@pytest.mark.parametrize("kind", ["gaussian", "logistic"])
def test_penalty_hessian_is_that_of_the_centred_penalties(kind):
    # The fit penalises all b columns of a softmax; in the free parameters
    # that is the penalty of the centred columns (the fit's representative).
    layout, theta, *_ = _problem(kind, (3, 2))
    scale = np.array([0.5, 2.0])
    gate_alpha, expert_alpha = 0.3, 0.7
    options = {"reg_variance": 2.0, "prior_variance": 1.5, "weight_scale": 1.7}

    def penalty(t):
        gate_coef, params = unpack(layout, t)
        total = 0.0
        for coef in gate_coef:
            slopes = coef.copy()
            slopes[:, :-1] -= slopes[:, :-1].mean(axis=-1, keepdims=True)
            total += softmax_penalty(slopes, gate_alpha, scale).sum()
        if kind == "gaussian":
            coef, variance = params
            # Ridge's penalty in least-squares units, the variance held.
            total += 0.5 * expert_alpha * np.sum(coef[:, :-1] ** 2 / theta_v[:, None])
            total -= gaussian_log_prior(variance, reg_variance=2.0, prior_variance=1.5)
        else:
            (coef,) = params
            centred = coef - coef.mean(axis=-1, keepdims=True)
            total += softmax_penalty(centred, expert_alpha).sum()
        return options["weight_scale"] * total

    theta_v = unpack(layout, theta)[1][-1] if kind == "gaussian" else None
    hessian = information_penalty(
        layout,
        theta,
        gate_alpha=gate_alpha,
        gate_scale=scale,
        expert_alpha=expert_alpha,
        **options,
    )
    numeric = _central_jacobian(
        lambda t: _central_jacobian(penalty, t, 1e-4), theta, 1e-4
    )
    gradient = penalty_gradient(
        layout,
        theta,
        hessian,
        reg_variance=2.0,
        prior_variance=1.5,
        weight_scale=1.7,
    )
    np.testing.assert_allclose(hessian, numeric, atol=1e-5 * np.abs(hessian).max())
    np.testing.assert_allclose(
        gradient, _central_jacobian(penalty, theta, 1e-6), atol=1e-6
    )


@pytest.mark.parametrize(
    ("estimator", "data", "hierarchy"),
    [
        (MixtureOfExpertsRegressor, _regression, (2,)),
        (MixtureOfExpertsRegressor, _regression, (2, 2)),
        (MixtureOfExpertsClassifier, _classification, (2,)),
    ],
    ids=["regressor", "tree", "classifier"],
)
def test_fit_is_a_stationary_point_of_the_penalised_likelihood(
    estimator, data, hierarchy
):
    # The penalties of the information are the fit's own: at a converged fit
    # (uneven sample weights, which set their scale), the gradient of the
    # log-likelihood equals that of the penalties.
    X, y = data(hierarchy)
    w = np.random.default_rng(1).uniform(0.5, 3.0, X.shape[0])
    model = estimator(hierarchy=hierarchy, random_state=0, **TIGHT).fit(
        X, y, sample_weight=w
    )
    mixture = model._fitted_mixture()
    layout, theta, Xg, Xe = fitted_layout(mixture, X)
    y_enc = model._encode_targets(y, reset=False).astype(float)
    if layout.kind == "logistic":
        y_enc = y_enc.astype(int)
    scores, hessian, _ = mixture_derivatives(layout, theta, Xg, Xe, y_enc, w)
    penalty = model_penalty(mixture, layout, theta, w.mean())
    options = {}
    if layout.kind == "gaussian":
        pool = model._expert_pool
        options = {
            "reg_variance": pool.reg_variance,
            "prior_variance": pool.prior_variance,
        }
    gradient = w @ scores - penalty_gradient(
        layout, theta, penalty, weight_scale=w.mean(), **options
    )
    # In standard errors: the Newton step left to the maximum.
    step = np.linalg.solve(penalty - hessian, gradient)
    se = np.sqrt(np.diag(np.linalg.inv(penalty - hessian)))
    assert np.max(np.abs(step) / se) < 1e-3


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


def test_summary_table_prints_and_exposes_arrays(flat_regressor):
    model, X, y = flat_regressor
    table = model.summary(X, y)
    assert isinstance(table, MixtureSummary)
    n = model.gate_.n_parameters + model._expert_pool.n_parameters
    assert table.coef.shape == table.std_err.shape == (n,) and table.ci.shape == (n, 2)
    assert np.all(table.std_err > 0)
    variance = np.array([t == "variance" for t in table.term])
    np.testing.assert_allclose(table.coef[variance], model.noise_variance_)
    assert np.all(np.isnan(table.z[variance])) and not np.any(
        np.isnan(table.z[~variance])
    )
    np.testing.assert_allclose(table.log_likelihood, model.log_likelihood(X, y).sum())
    np.testing.assert_allclose(table.bic, model.bic(X, y))
    np.testing.assert_allclose(table.aic, model.aic(X, y))
    np.testing.assert_allclose(table.icl, model.icl(X, y))
    inside = (table.ci[:, 0] < table.coef) & (table.coef < table.ci[:, 1])
    assert np.all(inside)
    text = str(table)
    assert "gate 0: expert 1 vs expert 0" in text and "expert 1" in text
    assert "reference" in text and "gate_alpha" in text
    assert repr(table) == text


def test_to_frame(flat_regressor):
    pd = pytest.importorskip("pandas")
    model, X, y = flat_regressor
    frame = model.summary(X, y).to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "coef",
        "std_err",
        "z",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert frame.loc[("expert 0", "intercept"), "std_err"] > 0


def test_to_frame_without_pandas(flat_regressor, monkeypatch):
    import builtins

    model, X, y = flat_regressor
    table = model.summary(X, y)
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match="to_frame needs pandas"):
        table.to_frame()


def test_feature_names_label_the_rows(flat_regressor):
    pd = pytest.importorskip("pandas")
    model, X, y = flat_regressor
    frame = pd.DataFrame(X, columns=["age", "dose"])
    named = clone_fit(model, frame, y)
    table = named.summary(frame, y)
    assert table.term[:3] == ["age", "dose", "intercept"]


def clone_fit(model, X, y, **params):
    from sklearn.base import clone

    return clone(model).set_params(**params).fit(X, y)


def _permute(model, order):
    """A copy of a flat mixture with its experts in ``order``."""
    permuted = copy.deepcopy(model)
    permuted.gate_.coef = [model.gate_.coef[0][:, :, order]]
    pool = permuted._expert_pool
    for name in pool._arrays:
        setattr(pool, name, np.asarray(getattr(pool, name))[order])
    return permuted


@pytest.mark.parametrize("estimator", ["regressor", "classifier"])
def test_permuted_refit_gives_the_same_table_up_to_the_order(estimator):
    if estimator == "regressor":
        X, y = _regression((3,))
        model = MixtureOfExpertsRegressor(n_experts=3, random_state=0, **TIGHT)
    else:
        X, y = _classification((3,))
        model = MixtureOfExpertsClassifier(n_experts=3, random_state=0, **TIGHT)
    model.fit(X, y)
    table = model.summary(X, y)
    # Experts 1 and 2 swapped (the gate's reference, expert 0, kept), then
    # refitted from there: the same maximum, in the new order.
    permuted = _permute(model, [0, 2, 1]).set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        permuted.fit(X, y)
    other = permuted.summary(X, y)
    layout = fitted_layout(model._fitted_mixture(), X)[0]
    order = np.arange(layout.size)
    gate = layout.node_slice(0, 0)
    p = layout.n_gate_columns
    gate_order = np.concatenate([np.arange(p, 2 * p), np.arange(p)])
    order[gate] = gate_order
    one, two = layout.expert_slice(1), layout.expert_slice(2)
    order[one], order[two] = (
        np.arange(two.start, two.stop),
        np.arange(one.start, one.stop),
    )
    # Both fits stop where EM's rise falls below tol, not at the maximum
    # itself: along a flat ridge of the likelihood the coefficients still
    # drift by ~1e-4 of themselves per iteration there (the classifier's),
    # a thousandth of their standard errors, far below what the table reads.
    np.testing.assert_array_less(
        np.abs(other.coef - table.coef[order]), 1e-3 * table.std_err[order]
    )
    np.testing.assert_allclose(other.std_err, table.std_err[order], rtol=1e-3)


def test_alignment_undoes_a_permutation_that_respects_the_tree():
    rng = np.random.default_rng(0)
    posterior = rng.dirichlet(np.full(6, 0.2), size=200)
    hierarchy = (2, 3)
    # The refit's leaf j is the reference's leaf perm[j]: the root's
    # subtrees swapped and the leaves reordered under each.
    perm = np.array([5, 3, 4, 0, 1, 2])
    node_maps = align_to_reference(hierarchy, posterior, posterior[:, perm])
    np.testing.assert_array_equal(node_maps[0], [1, 0])
    np.testing.assert_array_equal(perm[node_maps[1]], np.arange(6))
    coef = [rng.standard_normal((1, 3, 2)), rng.standard_normal((2, 3, 3))]
    moved = permute_gate(coef, hierarchy, node_maps)
    np.testing.assert_array_equal(moved[0], coef[0][:, :, [1, 0]])
    np.testing.assert_array_equal(moved[1][0], coef[1][1])
    np.testing.assert_array_equal(moved[1][1], coef[1][0][:, [1, 2, 0]])


def test_sample_weight_are_frequency_weights():
    # Without penalties (whose strength counts rows of average weight),
    # weights of 2 are two copies of the row.
    X, y = _regression((2,), n_samples=200)
    weight = np.random.default_rng(0).integers(1, 3, X.shape[0]).astype(float)
    params = {"n_experts": 2, "gate_alpha": 0.0, "reg_variance": 0.0, **TIGHT}
    weighted = MixtureOfExpertsRegressor(random_state=0, **params).fit(
        X, y, sample_weight=weight
    )
    rows = np.repeat(np.arange(X.shape[0]), weight.astype(int))
    copies = copy.deepcopy(weighted).set_params(warm_start=True).fit(X[rows], y[rows])
    one = weighted.summary(X, y, sample_weight=weight)
    two = copies.summary(X[rows], y[rows])
    # Both fits stop at tol: equal to a small fraction of a standard error.
    assert np.all(np.abs(one.coef - two.coef) < 1e-3 * one.std_err)
    np.testing.assert_allclose(one.std_err, two.std_err, rtol=1e-4)
    np.testing.assert_allclose(one.bic, two.bic, rtol=1e-8)


# ---------------------------------------------------------------------------
# The three methods
# ---------------------------------------------------------------------------


def test_observed_sandwich_and_bootstrap_agree_on_a_well_specified_model():
    X, y = make_moe_regression(
        n_samples=800, n_features=2, n_experts=2, gate_scale=2.0, random_state=0
    )
    model = MixtureOfExpertsRegressor(
        n_experts=2, random_state=0, tol=1e-8, max_iter=1000
    ).fit(X, y)
    observed = model.summary(X, y).std_err
    sandwich = model.summary(X, y, method="sandwich").std_err
    bootstrap = model.summary(
        X, y, method="bootstrap", n_bootstrap=200, random_state=0
    ).std_err
    # The same asymptotic covariance; the sandwich's meat and 200 replicates
    # each scatter by about 1 / sqrt(2 * 200) = 5% (the variances' more:
    # fourth moments), so 15% is three of those deviations.
    np.testing.assert_allclose(sandwich / observed, 1.0, atol=0.15)
    np.testing.assert_allclose(bootstrap / observed, 1.0, atol=0.15)


def test_bootstrap_keeps_labels_and_gives_percentile_intervals(flat_regressor):
    model, X, y = flat_regressor
    table = model.summary(X, y, method="bootstrap", n_bootstrap=20, random_state=0)
    assert "bootstrap (20 of 20" in table.method
    assert np.all(table.ci[:, 0] <= table.ci[:, 1])
    # Matched replicates centre on the estimates (a label switch would put
    # intervals of experts 0 and 1 on each other's values).
    inside = (table.ci[:, 0] < table.coef) & (table.coef < table.ci[:, 1])
    assert inside.mean() > 0.8


# ---------------------------------------------------------------------------
# What has no standard error here
# ---------------------------------------------------------------------------


def test_generic_experts_are_refused_with_a_hint():
    X, y = _regression((2,), n_samples=100)
    model = MixtureOfExpertsRegressor(
        DecisionTreeRegressor(max_depth=2), n_experts=2, random_state=0
    ).fit(X, y)
    with pytest.raises(TypeError, match="bootstrap what you need"):
        model.summary(X, y)


def test_pruned_experts_are_refused():
    X, y = _regression((2,), n_samples=100)
    model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    model.gate_.pruned = np.array([False, True])
    model.n_pruned_experts_ = 1
    with pytest.raises(ValueError, match="pruned"):
        model.summary(X, y)


def test_hard_routing_only_bootstraps():
    X, y = _regression((2,), n_samples=200)
    model = MixtureOfExpertsRegressor(n_experts=2, routing="hard", random_state=0)
    model.fit(X, y)
    with pytest.raises(ValueError, match="method='bootstrap'"):
        model.summary(X, y)
    table = model.summary(X, y, method="bootstrap", n_bootstrap=5, random_state=0)
    assert np.all(np.isfinite(table.std_err))


def test_singular_information_gives_a_hint():
    # A duplicated column: its coefficient and its copy's are not separable.
    X, y = _regression((2,), n_samples=200)
    X = np.column_stack([X, X[:, 0]])
    model = MixtureOfExpertsRegressor(
        n_experts=2, gate_alpha=0.0, random_state=0, **TIGHT
    ).fit(X, y)
    with pytest.raises(ValueError, match="gate_alpha"):
        model.summary(X, y)


def test_dask_arrays_are_refused(flat_regressor):
    da = pytest.importorskip("dask.array")
    model, X, y = flat_regressor
    with pytest.raises(TypeError, match=r"X.compute\(\)"):
        model.summary(da.from_array(X, chunks=100), y)


def test_arguments_are_checked(flat_regressor):
    model, X, y = flat_regressor
    with pytest.raises(ValueError, match="method must be one of"):
        model.summary(X, y, method="jackknife")
    with pytest.raises(ValueError, match="alpha must lie"):
        model.summary(X, y, alpha=1.5)


def test_an_early_stop_is_warned():
    X, y = _classification((2,), n_samples=800)
    model = MixtureOfExpertsClassifier(n_experts=2, random_state=0, tol=1e-2)
    model.fit(X, y)
    with pytest.raises((ValueError, Warning), match="tol"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            model.summary(X, y)


def test_ridge_experts_include_their_penalty():
    X, y = _regression((2,), n_samples=300)
    model = MixtureOfExpertsRegressor(
        Ridge(alpha=5.0), n_experts=2, random_state=0, **TIGHT
    ).fit(X, y)
    table = model.summary(X, y)
    assert "alpha=5" in str(table)


# ---------------------------------------------------------------------------
# ICL
# ---------------------------------------------------------------------------


def test_icl_adds_twice_the_posterior_entropy(flat_regressor):
    model, X, y = flat_regressor
    log_joint = np.log(model.predict_gate(X)) + model._expert_pool.log_likelihood(
        np.hstack([X]), y
    )
    resp = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    entropy = -np.sum(resp * np.log(np.clip(resp, 1e-300, None)))
    np.testing.assert_allclose(model.icl(X, y), model.bic(X, y) + 2 * entropy)
    assert model.icl(X, y) >= model.bic(X, y)
    np.testing.assert_allclose(icl_scorer(model, X, y), -model.icl(X, y))
    assert icl_scorer(model, X, y) <= bic_scorer(model, X, y)


def test_a_torch_fit_is_summarised_in_numpy(flat_regressor):
    torch = pytest.importorskip("torch")
    model, X, y = flat_regressor
    on_torch = copy.deepcopy(model).set_params(backend="torch", device="cpu")
    expected = model.summary(X, y)
    table = on_torch.summary(torch.from_numpy(X), torch.from_numpy(y))
    np.testing.assert_allclose(table.std_err, expected.std_err, rtol=1e-10)
    np.testing.assert_allclose(table.icl, expected.icl, rtol=1e-10)
