"""Expert pools own their maths: every source of statistics gives one fit.

The linear-Gaussian pool computes its statistics from any block of rows and
its update from their sums, whichever path (whole arrays, blocks, running
averages) supplies them; the Gaussian noise's MAP rule is one, shared by
the vectorized and the generic regression pools.
"""

import copy

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge

from skmoe._backend import DesignCache
from skmoe._experts import (
    GenericRegressionExperts,
    LinearGaussianExperts,
    weighted_squared_residuals,
)

# Sums of a few hundred O(1) terms in float64, then small well-conditioned
# solves: agreement to rounding, far below any effect of the statistics.
RTOL = 1e-10


@pytest.fixture(scope="module")
def rows():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0 + rng.normal(scale=0.3, size=600)
    weights = rng.dirichlet(np.ones(4), size=600)
    return X, y, weights


def _pool(template=None):
    return LinearGaussianExperts(
        LinearRegression() if template is None else template,
        4,
        reg_variance=2.0,
        prior_variance=1.5,
    )


@pytest.mark.parametrize("template", [LinearRegression(), Ridge(alpha=3.0)])
def test_summed_block_statistics_give_the_whole_array_m_step(rows, template):
    X, y, weights = rows
    whole = _pool(template)
    whole.m_step(DesignCache(X), y, weights)

    blocks = _pool(template)
    parts = [
        blocks.block_statistics(DesignCache(X[s]), y[s], weights[s])
        for s in (slice(0, 250), slice(250, 600))
    ]
    summed = {name: parts[0][name] + parts[1][name] for name in parts[0]}
    mass = weights.sum(axis=0)
    coef = blocks.solve_sums(summed, mass)
    ssr = sum(
        blocks.block_squared_residuals(X[s], y[s], weights[s], coef)
        for s in (slice(0, 250), slice(250, 600))
    )
    blocks.update_variance(ssr, mass)
    for name in ("coef_", "intercept_", "variance_"):
        np.testing.assert_allclose(
            getattr(blocks, name), getattr(whole, name), rtol=RTOL
        )


def test_squared_residuals_from_sums_equal_those_of_the_rows(rows):
    X, y, weights = rows
    pool = _pool()
    pool.m_step(DesignCache(X), y, weights)
    statistics = pool.block_statistics(DesignCache(X), y, weights)
    rows_ssr = weighted_squared_residuals(y, pool.predict(X), weights)
    # Around zero (the running statistics of stepwise EM) ...
    around_zero = pool.expanded_squared_residuals(
        statistics["squares"],
        statistics["moment"],
        statistics["gram"],
        pool.design_coef(),
    )
    # ... and around other coefficients, from the residuals' sums there.
    start = copy.deepcopy(pool)
    start.intercept_ = start.intercept_ + 0.7
    residual = y[:, None] - start.predict(X)
    design = np.hstack([X, np.ones((X.shape[0], 1))])
    around_start = pool.expanded_squared_residuals(
        np.sum(weights * residual**2, axis=0),
        (weights * residual).T @ design,
        statistics["gram"],
        pool.design_coef() - start.design_coef(),
    )
    # Around zero the terms are of the size of sum W y^2 (y has mean 3):
    # the rounding of their difference scales with it, not with the result.
    scale = statistics["squares"]
    np.testing.assert_allclose(around_zero, rows_ssr, rtol=0, atol=RTOL * scale.max())
    np.testing.assert_allclose(around_start, rows_ssr, rtol=RTOL)


def test_running_statistics_of_one_batch_give_the_m_step(rows):
    X, y, weights = rows
    whole = _pool()
    whole.m_step(DesignCache(X), y, weights)
    running = _pool()
    total = 600.0
    averaged = running.running_statistics(
        running.block_statistics(DesignCache(X), y, weights), total
    )
    running.update_from_running(averaged, weights.sum(axis=0), total)
    np.testing.assert_allclose(running.coef_, whole.coef_, rtol=RTOL)
    np.testing.assert_allclose(running.intercept_, whole.intercept_, rtol=RTOL)
    # The variance from the expansion around zero: its rounding is that of
    # sum W y^2, about 100 times the residuals' here (y has mean 3).
    np.testing.assert_allclose(running.variance_, whole.variance_, rtol=100 * RTOL)


def test_noise_rule_is_shared_by_vectorized_and_generic_pools(rows):
    X, y, weights = rows
    linear = _pool()
    linear.m_step(DesignCache(X), y, weights)
    generic = GenericRegressionExperts(
        [LinearRegression() for _ in range(4)], reg_variance=2.0, prior_variance=1.5
    )
    generic.m_step(DesignCache(X, host=X), y, weights)
    # Two least-squares solvers (lstsq, normal equations): rounding of
    # well-conditioned 4 x 4 problems.
    np.testing.assert_allclose(generic.variance_, linear.variance_, rtol=RTOL)
    assert generic.log_prior() == pytest.approx(linear.log_prior(), rel=RTOL)


def test_starving_expert_keeps_its_variance():
    pool = _pool()
    pool.update_variance(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 0, 5, 5]))
    assert pool.variance_[1] == 1.5
    assert pool.variance_[0] == pytest.approx((1.0 + 2.0 * 1.5) / 12.0)


def test_a_generic_expert_given_no_rows_before_its_first_fit_is_fitted():
    """A split-and-merge move's start gives a pruned expert no responsibility;
    a fresh generic pool must still fit it (to all rows alike: its gate
    probability is zero), where scikit-learn refuses all-zero weights."""
    from sklearn.tree import DecisionTreeClassifier

    from skmoe._experts import GenericClassificationExperts

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    weights = rng.uniform(size=(60, 3))
    weights[:, 1] = 0.0
    pool = GenericClassificationExperts(
        [DecisionTreeClassifier(max_depth=1, random_state=0) for _ in range(3)],
        np.array([0, 1]),
    )
    log_lik = pool.m_step(DesignCache(X), y, weights)
    assert pool.fitted.all()
    assert np.all(np.isfinite(log_lik))
    # The experts with rows of their own are fitted to them alone.
    expected = DecisionTreeClassifier(max_depth=1, random_state=0).fit(
        X, y, sample_weight=weights[:, 0]
    )
    np.testing.assert_array_equal(
        pool.estimators[0].predict_proba(X), expected.predict_proba(X)
    )
