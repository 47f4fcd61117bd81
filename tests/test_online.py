"""partial_fit: stepwise EM over mini-batches, in memory that does not grow."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import (
    make_hme_regression,
    make_moe_classification,
    make_moe_regression,
)

N_TRAIN, N_TEST, CHUNK = 100_000, 10_000, 1_000


def _split(X, y):
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def _stream(moe, X, y, chunk=CHUNK, **kwargs):
    for start in range(0, X.shape[0], chunk):
        moe.partial_fit(X[start : start + chunk], y[start : start + chunk], **kwargs)
    return moe


def _assert_reaches(online, batch, X_test, y_test):
    """The online model's test log-likelihood is within 1% of the batch fit's."""
    batch_ll = batch.log_likelihood(X_test, y_test).mean()
    online_ll = online.log_likelihood(X_test, y_test).mean()
    assert online_ll >= batch_ll - 0.01 * abs(batch_ll), (online_ll, batch_ll)
    return online_ll, batch_ll


@pytest.mark.parametrize(
    "params", [{"n_experts": 4}, {"n_experts": 4, "estimator": Ridge(alpha=1.0)}]
)
def test_partial_fit_reaches_the_batch_fit_regressor(params):
    X, y = make_moe_regression(
        n_samples=N_TRAIN + N_TEST, n_features=5, n_experts=4, random_state=0
    )
    X_train, y_train, X_test, y_test = _split(X, y)
    batch = MixtureOfExpertsRegressor(random_state=0, **params).fit(X_train, y_train)
    online = _stream(
        MixtureOfExpertsRegressor(random_state=0, **params), X_train, y_train
    )
    online_ll, batch_ll = _assert_reaches(online, batch, X_test, y_test)
    # Both reach the same optimum here (measured: 2e-4 apart).
    assert online_ll == pytest.approx(batch_ll, rel=0.01)
    assert online.n_steps_ == N_TRAIN // CHUNK
    assert online.n_samples_seen_ == N_TRAIN


def test_partial_fit_reaches_the_batch_fit_tree():
    X, y = make_hme_regression(
        n_samples=N_TRAIN + N_TEST, n_features=4, hierarchy=(2, 2), random_state=0
    )
    X_train, y_train, X_test, y_test = _split(X, y)
    batch = MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0)
    batch.fit(X_train, y_train)
    online = _stream(
        MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0), X_train, y_train
    )
    _assert_reaches(online, batch, X_test, y_test)


def test_partial_fit_reaches_the_batch_fit_classifier():
    X, y = make_moe_classification(
        n_samples=N_TRAIN + N_TEST,
        n_features=3,
        n_experts=2,
        n_classes=2,
        random_state=0,
    )
    X_train, y_train, X_test, y_test = _split(X, y)
    batch = MixtureOfExpertsClassifier(n_experts=2, random_state=0)
    batch.fit(X_train, y_train)
    online = _stream(
        MixtureOfExpertsClassifier(n_experts=2, random_state=0),
        X_train,
        y_train,
        classes=np.unique(y),
    )
    _assert_reaches(online, batch, X_test, y_test)
    np.testing.assert_array_equal(online.classes_, np.unique(y))


def _state_bytes(moe):
    def size(tree):
        if isinstance(tree, dict):
            return sum(size(v) for v in tree.values())
        if isinstance(tree, list):
            return sum(size(v) for v in tree)
        return np.asarray(tree).nbytes

    return size(moe._online.stepwise.statistics)


def test_partial_fit_memory_does_not_grow_with_rows_seen():
    X, y = make_moe_regression(
        n_samples=60_000, n_features=4, n_experts=3, random_state=0
    )
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0)
    # Past the first 10,000 rows (kept for the start), nothing grows.
    _stream(moe, X[:15_000], y[:15_000])
    assert moe._online.start_rows is None
    state, pickled = _state_bytes(moe), len(pickle.dumps(moe))
    _stream(moe, X[15_000:], y[15_000:])
    assert moe.n_samples_seen_ == 60_000
    assert _state_bytes(moe) == state
    assert len(pickle.dumps(moe)) == pickled


def test_a_weight_of_two_is_a_repeated_row_in_a_step():
    X, y = make_moe_regression(n_samples=900, n_features=3, n_experts=2, random_state=2)
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    moe.partial_fit(X[:600], y[:600])
    weighted, repeated = copy.deepcopy(moe), copy.deepcopy(moe)
    weight = np.ones(300)
    weight[:100] = 2.0
    weighted.partial_fit(X[600:], y[600:], sample_weight=weight)
    rows = np.r_[np.arange(600, 900), np.arange(600, 700)]
    repeated.partial_fit(X[rows], y[rows])
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-10)
    np.testing.assert_allclose(
        weighted.noise_variance_, repeated.noise_variance_, rtol=1e-10
    )


def test_partial_fit_after_fit_continues_from_the_fitted_model():
    X, y = make_moe_regression(
        n_samples=6_000, n_features=3, n_experts=3, random_state=0
    )
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(
        X[:5_000], y[:5_000]
    )
    fitted_ll = moe.log_likelihood(X, y).mean()
    moe.partial_fit(X[5_000:], y[5_000:])
    assert moe.n_steps_ == 1
    assert moe.log_likelihood(X, y).mean() == pytest.approx(fitted_ll, rel=0.01)
    # fit starts over: the stepwise state is gone, and with it the count of
    # what partial_fit saw.
    moe.fit(X, y)
    assert "_online" not in moe.__dict__
    assert not hasattr(moe, "n_samples_seen_")
    assert not hasattr(moe, "n_steps_")


def test_partial_fit_stays_finite_on_a_target_far_from_zero():
    # The running sums of squares are kept about the first batch's mean.
    X, y = make_moe_regression(
        n_samples=4_000, n_features=3, n_experts=2, random_state=0
    )
    moe = _stream(MixtureOfExpertsRegressor(n_experts=2, random_state=0), X, y + 1e8)
    reference = _stream(MixtureOfExpertsRegressor(n_experts=2, random_state=0), X, y)
    np.testing.assert_allclose(
        moe.noise_variance_, reference.noise_variance_, rtol=1e-3
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_gate_penalty_scale_is_that_of_the_start_rows():
    """The start fixes the gate's penalty scales; later batches keep them."""
    X, y = make_moe_regression(n_samples=3000, n_features=3, random_state=0)
    X = X * [1.0, 10.0, 0.1]
    moe = MixtureOfExpertsRegressor(n_experts=2, max_iter=10, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.partial_fit(X[:1000], y[:1000])
        scale = moe.gate_.penalty_scale.copy()
        np.testing.assert_allclose(scale, np.std(X[:1000], axis=0), rtol=1e-12)
        _stream(moe, X[1000:], y[1000:])
    np.testing.assert_array_equal(moe.gate_.penalty_scale, scale)


def test_generic_experts_cannot_learn_online():
    moe = MixtureOfExpertsRegressor(DecisionTreeRegressor(), n_experts=2)
    assert not hasattr(moe, "partial_fit")
    with pytest.raises(AttributeError) as error:
        moe.partial_fit(np.ones((4, 2)), np.ones(4))
    assert "cannot learn online" in str(error.value.__cause__)


def test_classifier_needs_classes_on_the_first_call():
    X, y = make_moe_classification(n_samples=200, n_experts=2, random_state=0)
    moe = MixtureOfExpertsClassifier(n_experts=2, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        moe.partial_fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.partial_fit(X, y, classes=np.unique(y))
    moe.partial_fit(X, y)
    with pytest.raises(ValueError, match="is not the same as on last call"):
        moe.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="labels not seen"):
        moe.partial_fit(X, y + 5)


def test_partial_fit_checks_the_features():
    X, y = make_moe_regression(n_samples=200, n_features=3, n_experts=2, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features"):
        moe.partial_fit(X[:, :2], y)


def test_partial_fit_needs_the_numpy_backend():
    moe = MixtureOfExpertsRegressor(n_experts=2, backend="torch")
    with pytest.raises(ValueError, match="partial_fit learns with NumPy"):
        moe.partial_fit(np.ones((4, 2)), np.ones(4))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_experts": 3}, "the number of experts or the hierarchy"),
        ({"n_experts": None, "hierarchy": (2, 2)}, "the number of experts"),
        ({"gate_features": [0]}, "gate_features"),
        ({"estimator": Ridge(alpha=3.0)}, "estimator"),
    ],
)
def test_partial_fit_after_fit_refuses_a_changed_structure(params, match):
    X, y = make_moe_regression(n_samples=300, n_features=3, n_experts=2, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    moe.set_params(**params)
    with pytest.raises(ValueError, match=f"partial_fit cannot change {match}"):
        moe.partial_fit(X, y)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_step_leaves_the_model_as_it_was(monkeypatch, error):
    """The step changes copies: an error after it changed them all undoes it."""
    from skmoe._stepwise import StepwiseEM

    X, y = make_moe_regression(n_samples=600, n_features=3, n_experts=2, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    moe.partial_fit(X[:200], y[:200]).partial_fit(X[200:400], y[200:400])
    state = dict(vars(moe))
    coef = [c.copy() for c in moe.gate_.coef]
    statistics = copy.deepcopy(moe._online.stepwise.statistics)
    pred = moe.predict(X)
    step = StepwiseEM.step

    def failing_step(self, *args, **kwargs):
        step(self, *args, **kwargs)
        raise error

    monkeypatch.setattr(StepwiseEM, "step", failing_step)
    with pytest.raises(type(error)):
        moe.partial_fit(X[400:], y[400:])
    monkeypatch.undo()
    assert vars(moe).keys() == state.keys()
    assert all(vars(moe)[k] is v for k, v in state.items())
    for a, b in zip(coef, moe.gate_.coef, strict=True):
        np.testing.assert_array_equal(a, b)
    assert moe._online.stepwise.n_steps == 2
    np.testing.assert_equal(moe._online.stepwise.statistics, statistics)
    np.testing.assert_array_equal(moe.predict(X), pred)


def test_the_start_rows_are_kept_until_the_limit_then_dropped():
    from skmoe._online import OnlineState

    def batch(n, value):
        return np.full((n, 2), value), np.full(n, value), np.ones(n)

    online = OnlineState()
    rows, n_batches = online.rows_for_start(batch(3, 0.0), limit=8)
    assert (rows[0].shape, n_batches) == ((3, 2), 1)  # the first batch starts
    assert online.rows_for_start(batch(3, 1.0), limit=8) is None
    kept = online.copy()
    rows, n_batches = online.rows_for_start(batch(3, 2.0), limit=8)
    assert (rows[0].shape, n_batches) == ((9, 2), 3)  # refitted once on all
    np.testing.assert_array_equal(rows[1], np.repeat([0.0, 1.0, 2.0], 3))
    assert online.start_rows is None
    assert online.rows_for_start(batch(3, 3.0), limit=8) is None
    # A copy keeps its own list of the rows (a failed call leaves them).
    assert len(kept.start_rows) == 2
