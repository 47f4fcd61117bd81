"""EM over blocks of rows: the in-memory algorithm as sums of statistics.

These tests need no Dask: :class:`ArrayBlocks` feeds the same per-block
statistics as a Dask array's blocks do (``tests/test_dask.py`` runs them on
a cluster).
"""

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._backend import DesignCache
from skmoe._blockwise import ArrayBlocks
from skmoe._engine import SummedRows, run_em
from skmoe._fitting import run_em_on_rows
from skmoe._statistics import em_statistics, sum_statistics
from skmoe.datasets import make_moe_classification, make_moe_regression

RTOL = 1e-8


def _continue_both_ways(moe, X, y, sample_weight, *, block_rows, max_iter=12):
    """Fit a start, then continue it in memory and on blocks; return both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.set_params(max_iter=2, tol=0.0).fit(X, y, sample_weight=sample_weight)
    in_memory, blockwise = copy.deepcopy(moe), copy.deepcopy(moe)
    y_encoded = moe._encode_targets(y, reset=False)
    histories = []
    plan = moe._fit_plan(X.shape, False)
    for model, run in ((in_memory, "memory"), (blockwise, "blocks")):
        gate, pool = model.gate_, model._expert_pool
        if run == "memory":
            rows = (DesignCache(X), y_encoded, sample_weight)
            result = run_em_on_rows(plan, gate, pool, rows, max_iter=max_iter)
        else:
            blocks = ArrayBlocks(X, y_encoded, sample_weight, block_rows=block_rows)
            result = run_em(gate, pool, SummedRows(blocks), plan.em, max_iter=max_iter)
        histories.append(np.asarray(result.objectives))
    return in_memory, blockwise, histories


def _assert_same_model(a, b, histories):
    np.testing.assert_allclose(histories[1], histories[0], rtol=RTOL)
    for coef_a, coef_b in zip(a.gate_.coef, b.gate_.coef, strict=True):
        np.testing.assert_allclose(coef_b, coef_a, rtol=RTOL, atol=RTOL)
    pool_a, pool_b = a._expert_pool, b._expert_pool
    np.testing.assert_allclose(pool_b.coef_, pool_a.coef_, rtol=RTOL, atol=RTOL)
    if hasattr(pool_a, "variance_"):
        np.testing.assert_allclose(pool_b.variance_, pool_a.variance_, rtol=RTOL)
        np.testing.assert_allclose(pool_b.intercept_, pool_a.intercept_, rtol=RTOL)


@pytest.mark.parametrize(
    "params",
    [
        {"n_experts": 4},
        {"hierarchy": (2, 2)},
        {"n_experts": 4, "routing": "hard"},
        {"n_experts": 4, "routing": "topk", "top_k": 2},
        {"n_experts": 3, "gate_features": [0, 2], "estimator": Ridge(alpha=3.0)},
    ],
    ids=["flat", "tree", "hard", "topk", "gate-features-ridge"],
)
def test_blockwise_em_equals_in_memory_em_regressor(params):
    X, y = make_moe_regression(
        n_samples=1500, n_features=3, n_experts=4, random_state=0
    )
    weight = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    moe = MixtureOfExpertsRegressor(random_state=0, **params)
    a, b, histories = _continue_both_ways(moe, X, y, weight, block_rows=211)
    _assert_same_model(a, b, histories)


@pytest.mark.parametrize("hierarchy", [(3,), (2, 2)])
def test_blockwise_em_equals_in_memory_em_classifier(hierarchy):
    X, y = make_moe_classification(
        n_samples=1200, n_features=3, n_experts=3, n_classes=3, random_state=0
    )
    moe = MixtureOfExpertsClassifier(hierarchy=hierarchy, random_state=0)
    a, b, histories = _continue_both_ways(
        moe, X, y, np.ones(X.shape[0]), block_rows=300, max_iter=8
    )
    _assert_same_model(a, b, histories)


def test_statistics_of_blocks_sum_to_those_of_the_whole():
    X, y = make_moe_regression(n_samples=500, n_features=3, n_experts=3, random_state=1)
    moe = MixtureOfExpertsRegressor(n_experts=3, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.fit(X, y)
    options = {
        "gate": moe.gate_,
        "pool": moe._expert_pool,
        "routing": "soft",
        "top_k": 2,
    }
    weight = np.ones(X.shape[0])
    whole = em_statistics(X, y, weight, **options)
    parts = sum_statistics(
        em_statistics(X[i : i + 97], y[i : i + 97], weight[i : i + 97], **options)
        for i in range(0, X.shape[0], 97)
    )
    assert parts["n_rows"] == whole["n_rows"] == X.shape[0]
    np.testing.assert_allclose(parts["mass"], whole["mass"], rtol=1e-12)
    np.testing.assert_allclose(parts["bound"], whole["bound"], rtol=1e-12)
    np.testing.assert_allclose(
        parts["experts"]["gram"], whole["experts"]["gram"], rtol=1e-12
    )
    np.testing.assert_allclose(
        parts["gates"][0]["gradient"], whole["gates"][0]["gradient"], atol=1e-9
    )
    # The mean log-likelihood of the fitted model, as the estimator reports it.
    assert whole["bound"] / whole["weight"] == pytest.approx(
        moe.log_likelihood_, rel=1e-12
    )
