"""Dask: joblib's Dask backend, dask.array fits and predictions, on a LocalCluster.

The cluster is started once for the module (two worker processes) and
closed at its end; nothing is mocked. Every test checks that the work ran
on the cluster (its task stream) and that the result equals the in-memory
one.
"""

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._gating import penalty_scale
from skmoe.datasets import make_moe_classification, make_moe_regression

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
from skmoe._dask import DaskBlocks, gate_penalty_scale  # noqa: E402 (needs dask)

RTOL = 1e-8

# A dask fit runs no split-and-merge moves (split_merge is ignored there):
# it equals the in-memory fit without them.
NO_MOVES = {"split_merge": 0}


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def regression():
    return make_moe_regression(
        n_samples=3000, n_features=3, n_experts=3, random_state=0
    )


def _quiet_fit(moe, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return moe.fit(*args, **kwargs)


def _ran_on_cluster(client, run):
    """Run ``run()`` and return its result and the tasks the cluster ran."""
    with distributed.get_task_stream(client) as stream:
        result = run()
    return result, stream.data


# ---------------------------------------------------------------------------
# joblib's Dask backend
# ---------------------------------------------------------------------------


def test_generic_expert_fits_run_on_the_cluster(client, regression):
    X, y = regression
    params = {"n_experts": 3, "max_iter": 5, "random_state": 0}
    local = _quiet_fit(
        MixtureOfExpertsRegressor(DecisionTreeRegressor(max_depth=3), **params), X, y
    )

    def run():
        with joblib.parallel_config(backend="dask"):
            return _quiet_fit(
                MixtureOfExpertsRegressor(DecisionTreeRegressor(max_depth=3), **params),
                X,
                y,
            )

    remote, tasks = _ran_on_cluster(client, run)
    assert tasks, "no task ran on the cluster"
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=RTOL)


def test_restarts_run_on_the_cluster(client, regression):
    X, y = regression
    params = {"n_experts": 3, "n_init": 3, "init_params": "random", "random_state": 0}
    local = _quiet_fit(MixtureOfExpertsRegressor(**params), X, y)

    def run():
        with joblib.parallel_config(backend="dask"):
            return _quiet_fit(MixtureOfExpertsRegressor(**params), X, y)

    remote, tasks = _ran_on_cluster(client, run)
    assert tasks, "no task ran on the cluster"
    assert len(remote.log_likelihood_histories_) == 3
    for a, b in zip(
        remote.log_likelihood_histories_, local.log_likelihood_histories_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=RTOL)
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=RTOL)


def test_grid_search_runs_on_the_cluster(client, regression):
    X, y = regression
    grid = {"n_experts": [1, 2, 3]}
    moe = MixtureOfExpertsRegressor(random_state=0, max_iter=30)
    local = GridSearchCV(moe, grid, cv=3).fit(X, y)

    def run():
        with joblib.parallel_config(backend="dask"):
            return GridSearchCV(moe, grid, cv=3, n_jobs=-1).fit(X, y)

    remote, tasks = _ran_on_cluster(client, run)
    assert tasks, "no task ran on the cluster"
    assert remote.best_params_ == local.best_params_
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        rtol=RTOL,
    )


# ---------------------------------------------------------------------------
# dask.array fits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"n_experts": 3},
        {"hierarchy": (2, 2)},
        {"n_experts": 3, "routing": "topk"},
        # Each restart screens its starts on the in-memory sample.
        {"n_experts": 3, "init_params": "screen", "n_init": 2},
    ],
    ids=["flat", "tree", "topk", "screen"],
)
def test_dask_array_fit_equals_the_in_memory_fit(client, regression, params):
    X, y = regression
    weight = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    params = {"random_state": 0, "max_iter": 8, **NO_MOVES, **params}
    local = _quiet_fit(MixtureOfExpertsRegressor(**params), X, y, sample_weight=weight)
    dX = da.from_array(X, chunks=(700, 2))
    dy = da.from_array(y, chunks=500)
    dw = da.from_array(weight, chunks=1000)
    remote, tasks = _ran_on_cluster(
        client,
        lambda: _quiet_fit(
            MixtureOfExpertsRegressor(**params),
            dX,
            dy,
            sample_weight=dw,
        ),
    )
    assert tasks, "no task ran on the cluster"
    # Up to 50,000 rows the start is fitted on all of them, as in memory:
    # the same start, then the same EM steps.
    assert remote.n_iter_ == local.n_iter_
    assert remote.init_starts_ == local.init_starts_
    np.testing.assert_allclose(
        remote.log_likelihood_history_, local.log_likelihood_history_, rtol=RTOL
    )
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=RTOL)
    np.testing.assert_allclose(remote.noise_variance_, local.noise_variance_, rtol=RTOL)
    assert remote.log_likelihood_ == pytest.approx(local.log_likelihood_, rel=RTOL)
    np.testing.assert_allclose(
        remote.gate_.penalty_scale, local.gate_.penalty_scale, rtol=RTOL
    )


def test_gate_penalty_scale_is_summed_on_the_blocks(client):
    """The scales of all rows, as in memory, for a column far from zero too."""
    rng = np.random.default_rng(1)
    X = np.column_stack(
        [rng.normal(1e6, 1.0, 5000), rng.normal(0.0, 1e-3, 5000), np.full(5000, 4.0)]
    )
    weight = rng.uniform(0.5, 2.0, 5000)
    dX, dw = da.from_array(X, chunks=(700, 3)), da.from_array(weight, chunks=700)
    # Two passes (mean, then squares about it) lose nothing to cancellation.
    np.testing.assert_allclose(
        gate_penalty_scale(dX, dw, [0, 1, 2]), penalty_scale(X, weight), rtol=1e-12
    )
    np.testing.assert_allclose(
        gate_penalty_scale(dX, dw, [2, 0]), penalty_scale(X[:, [2, 0]], weight)
    )


def test_dask_array_fit_equals_the_in_memory_fit_classifier(client):
    X, y = make_moe_classification(
        n_samples=1500, n_features=3, n_experts=2, n_classes=3, random_state=0
    )
    labels = np.array(["a", "b", "c"])[y]
    params = {"n_experts": 2, "random_state": 0, "max_iter": 4, **NO_MOVES}
    local = _quiet_fit(MixtureOfExpertsClassifier(**params), X, labels)
    remote = _quiet_fit(
        MixtureOfExpertsClassifier(**params),
        da.from_array(X, chunks=(400, 3)),
        da.from_array(labels, chunks=400),
    )
    np.testing.assert_array_equal(remote.classes_, local.classes_)
    np.testing.assert_allclose(
        remote.log_likelihood_history_, local.log_likelihood_history_, rtol=RTOL
    )
    np.testing.assert_allclose(
        remote.predict_proba(X), local.predict_proba(X), rtol=RTOL, atol=1e-12
    )


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_dask_array_fit_with_rescaled_weights_equals_the_in_memory_fit(
    client, regression, scale
):
    """Dask weights are divided by their mean too (from the validation pass)."""
    X, y = regression
    weight = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0])
    params = {"n_experts": 3, "random_state": 0, "max_iter": 8, **NO_MOVES}
    local = _quiet_fit(MixtureOfExpertsRegressor(**params), X, y, sample_weight=weight)
    remote = _quiet_fit(
        MixtureOfExpertsRegressor(**params),
        da.from_array(X, chunks=(700, 3)),
        da.from_array(y, chunks=700),
        sample_weight=da.from_array(scale * weight, chunks=700),
    )
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=RTOL)
    np.testing.assert_allclose(remote.noise_variance_, local.noise_variance_, rtol=RTOL)


def test_dask_array_hard_routing_trains_by_soft_em(client, regression):
    """On a dask array, hard routing's "auto" is soft EM (no refit), as in memory."""
    X, y = regression
    params = {
        "n_experts": 3,
        "routing": "hard",
        "random_state": 0,
        "max_iter": 8,
        **NO_MOVES,
    }
    local = _quiet_fit(MixtureOfExpertsRegressor(train_routing="soft", **params), X, y)
    dX, dy = da.from_array(X, chunks=(700, 3)), da.from_array(y, chunks=700)
    remote = _quiet_fit(MixtureOfExpertsRegressor(**params), dX, dy)
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=RTOL)
    with pytest.raises(ValueError, match="train_routing='refit' refits"):
        MixtureOfExpertsRegressor(train_routing="refit", **params).fit(dX, dy)


def test_dask_array_fit_from_a_warm_start_equals_the_in_memory_fit(client):
    # Above 50,000 rows the dask fit's start is fitted on a sample: from a
    # shared start (warm_start), the EM iterations are still the same.
    X, y = make_moe_regression(
        n_samples=60_000, n_features=3, n_experts=2, random_state=1
    )
    start = _quiet_fit(
        MixtureOfExpertsRegressor(
            n_experts=2, max_iter=2, warm_start=True, random_state=0
        ),
        X,
        y,
    )
    local, remote = copy.deepcopy(start), copy.deepcopy(start)
    local.set_params(max_iter=6)
    remote.set_params(max_iter=6)
    _quiet_fit(local, X, y)
    _quiet_fit(
        remote, da.from_array(X, chunks=(15_000, 3)), da.from_array(y, chunks=15_000)
    )
    np.testing.assert_allclose(
        remote.log_likelihood_history_, local.log_likelihood_history_, rtol=RTOL
    )
    np.testing.assert_allclose(remote.predict(X), local.predict(X), rtol=RTOL)


def test_dask_array_generated_on_the_cluster(client):
    # Data that only ever exists on the workers: the fit works on it there.
    rng = da.random.default_rng(0)
    X = rng.normal(size=(20_000, 3), chunks=(5_000, 3))
    y = da.where(X[:, 0] > 0, 2.0 * X[:, 1], -X[:, 2]) + 0.1 * rng.normal(
        size=20_000, chunks=5_000
    )
    params = {"n_experts": 2, "random_state": 0, "max_iter": 8, **NO_MOVES}
    remote = _quiet_fit(MixtureOfExpertsRegressor(**params), X, y)
    # Computed only now, for the reference fit in memory.
    X_local, y_local = X.compute(), y.compute()
    local = _quiet_fit(MixtureOfExpertsRegressor(**params), X_local, y_local)
    np.testing.assert_allclose(
        remote.log_likelihood_history_, local.log_likelihood_history_, rtol=RTOL
    )
    np.testing.assert_allclose(
        remote.predict(X_local), local.predict(X_local), rtol=RTOL
    )


def test_predictions_on_a_dask_array_are_lazy_and_blockwise(client, regression):
    X, y = regression
    moe = _quiet_fit(
        MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0, max_iter=5), X, y
    )
    dX, dy = da.from_array(X, chunks=(700, 2)), da.from_array(y, chunks=500)
    lazy = {
        "predict": (moe.predict(dX), moe.predict(X)),
        "predict_gate": (moe.predict_gate(dX), moe.predict_gate(X)),
        "apply": (moe.apply(dX), moe.apply(X)),
        "decision_path": (moe.decision_path(dX), moe.decision_path(X)),
        "log_likelihood": (moe.log_likelihood(dX, dy), moe.log_likelihood(X, y)),
    }
    for name, (result, expected) in lazy.items():
        assert type(result) is type(dX), name
        assert result.shape == expected.shape, name
    computed, tasks = _ran_on_cluster(
        client, lambda: da.compute(*(r for r, _ in lazy.values()))
    )
    assert tasks, "no task ran on the cluster"
    for (name, (_, expected)), value in zip(lazy.items(), computed, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-12, err_msg=name)
    _, std = moe.predict(dX, return_std=True)
    np.testing.assert_allclose(std.compute(), moe.predict(X, return_std=True)[1])

    Xc, yc = make_moe_classification(n_samples=600, n_experts=2, random_state=0)
    labels = np.array(["no", "yes"])[yc]
    clf = _quiet_fit(
        MixtureOfExpertsClassifier(n_experts=2, random_state=0), Xc, labels
    )
    dXc = da.from_array(Xc, chunks=200)
    np.testing.assert_array_equal(clf.predict(dXc).compute(), clf.predict(Xc))
    np.testing.assert_allclose(
        clf.predict_proba(dXc).compute(), clf.predict_proba(Xc), rtol=1e-12
    )
    with pytest.raises(ValueError, match="X has 2 features"):
        clf.predict(dXc[:, :2])


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_dask_array_needs_vectorized_experts(regression):
    X, y = regression
    moe = MixtureOfExpertsRegressor(DecisionTreeRegressor(), n_experts=2)
    with pytest.raises(TypeError, match="sufficient statistics"):
        moe.fit(da.from_array(X, chunks=1000), y)


def test_dask_array_needs_the_numpy_backend(regression):
    X, y = regression
    moe = MixtureOfExpertsRegressor(n_experts=2, backend="torch")
    with pytest.raises(ValueError, match="backend='numpy'"):
        moe.fit(da.from_array(X, chunks=1000), y)


def test_dask_array_input_is_validated(regression):
    X, y = regression
    moe = MixtureOfExpertsRegressor(n_experts=2)
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        moe.fit(da.from_array(bad, chunks=1000), y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        moe.fit(da.from_array(X, chunks=1000), y[:-1])
    with pytest.raises(ValueError, match="Negative values"):
        moe.fit(da.from_array(X, chunks=1000), y, sample_weight=-np.ones(len(y)))
    unknown = da.from_array(X, chunks=1000)
    unknown = unknown[unknown[:, 0] > 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        moe.fit(unknown, y)
    moe.fit(da.from_array(X, chunks=1000), y)
    pred = moe.predict(X)
    with pytest.raises(ValueError, match="X has 2 features"):
        moe.set_params(warm_start=True).fit(da.from_array(X[:, :2], chunks=1000), y)
    assert moe.n_features_in_ == 3
    np.testing.assert_array_equal(moe.predict(X), pred)


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_failed_dask_fit_leaves_the_model_as_it_was(
    regression, monkeypatch, warm_start
):
    """EM fails after it changed the (copied) model: the fitted one stays."""
    import skmoe._fitting

    X, y = regression
    moe = _quiet_fit(
        MixtureOfExpertsRegressor(n_experts=2, max_iter=5, random_state=0),
        da.from_array(X, chunks=1000),
        y,
    )
    state, pred = dict(vars(moe)), moe.predict(X)
    coef = [c.copy() for c in moe.gate_.coef]
    run_em = skmoe._fitting.run_em

    def failing_em(gate, pool, source, *args, **kwargs):
        run = run_em(gate, pool, source, *args, **kwargs)
        # The EM on the blocks (not the in-memory start's runs) fails.
        if isinstance(getattr(source, "statistics", None), DaskBlocks):
            raise KeyboardInterrupt
        return run

    monkeypatch.setattr(skmoe._fitting, "run_em", failing_em)
    with pytest.raises(KeyboardInterrupt):
        moe.set_params(warm_start=warm_start).fit(da.from_array(X, chunks=1000), y)
    monkeypatch.undo()
    moe.set_params(warm_start=False)
    assert all(vars(moe)[k] is v for k, v in state.items())
    for a, b in zip(coef, moe.gate_.coef, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(moe.predict(X), pred)
