"""Thread limits of the numerics (``_threads``): set for a call, restored after."""

import threading

import pytest
from numpy.testing import assert_array_equal
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_info, threadpool_limits

import skmoe._fitting
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._base import BaseMixtureOfExperts
from skmoe._threads import _SharedLimit, numerics_threads, single_thread
from skmoe.datasets import make_moe_classification, make_moe_regression


def _blas_threads():
    return [
        pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"
    ]


def _pools():
    return [(pool["filepath"], pool["num_threads"]) for pool in threadpool_info()]


@pytest.fixture
def data():
    return make_moe_regression(n_samples=300, n_features=3, n_experts=2, random_state=0)


def _regressor(**params):
    # One k-means start: the tests count the thread limits of one EM run.
    params = {"init_params": "kmeans", **params}
    return MixtureOfExpertsRegressor(n_experts=2, max_iter=5, random_state=0, **params)


def _record_threads_in(monkeypatch, owner, name):
    """Record the BLAS threads each time ``owner.name`` runs."""
    seen = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return seen


def test_fit_runs_on_one_blas_thread_and_restores_the_pools(data, monkeypatch):
    X, y = data
    seen = _record_threads_in(monkeypatch, skmoe._fitting, "run_em_on_rows")
    before = _pools()
    _regressor(n_init=2).fit(X, y)
    assert seen and all(threads == [1] * len(threads) for threads in seen)
    assert _pools() == before


def test_predictions_run_on_one_blas_thread(data, monkeypatch):
    X, y = data
    model = _regressor().fit(X, y)
    seen = _record_threads_in(monkeypatch, BaseMixtureOfExperts, "_validate_X")
    before = _pools()
    model.predict(X)
    model.predict_gate(X)
    model.apply(X)
    model.decision_path(X)
    model.bic(X, y)
    model.score(X, y)
    assert len(seen) == 6
    assert all(threads == [1] * len(threads) for threads in seen)
    assert _pools() == before


def test_partial_fit_runs_on_one_blas_thread(monkeypatch):
    X, y = make_moe_classification(
        n_samples=300, n_features=3, n_experts=2, random_state=0
    )
    model = MixtureOfExpertsClassifier(n_experts=2, max_iter=5, random_state=0)
    seen = _record_threads_in(monkeypatch, skmoe._fitting, "run_em_on_rows")
    before = _pools()
    model.partial_fit(X, y, classes=[0, 1])
    assert seen and all(threads == [1] * len(threads) for threads in seen)
    seen = _record_threads_in(monkeypatch, BaseMixtureOfExperts, "_validate_X")
    model.predict_proba(X)
    model.predict(X)
    assert len(seen) == 2
    assert all(threads == [1] * len(threads) for threads in seen)
    assert _pools() == before


def test_pools_are_restored_when_fit_raises(data, monkeypatch):
    X, y = data

    def fail(*args, **kwargs):
        raise RuntimeError("inside fit")

    monkeypatch.setattr(skmoe._fitting, "run_em_on_rows", fail)
    before = _pools()
    with pytest.raises(RuntimeError, match="inside fit"):
        _regressor().fit(X, y)
    assert _pools() == before


def test_a_user_limit_is_kept(data, monkeypatch):
    X, y = data
    seen = _record_threads_in(monkeypatch, skmoe._fitting, "run_em_on_rows")
    with threadpool_limits(limits=1, user_api="blas"):
        limited = _pools()
        _regressor().fit(X, y)
        # Restored to the user's limit, not to the libraries' defaults.
        assert _pools() == limited
    assert all(threads == [1] * len(threads) for threads in seen)


def test_generic_experts_keep_the_pools_as_they_are(data, monkeypatch):
    X, y = data
    seen = _record_threads_in(monkeypatch, skmoe._fitting, "run_em_on_rows")
    outside = _blas_threads()
    _regressor(estimator=DecisionTreeRegressor(max_depth=2)).fit(X, y)
    # Every EM run of the fit (the first, and split-and-merge moves').
    assert seen and all(threads == outside for threads in seen)


def test_results_do_not_depend_on_the_limit(data, monkeypatch):
    # One thread or the libraries' default: the same fit and predictions
    # (the limit changes no seed, no order of work; these products are too
    # small for BLAS to split them, so the sums agree exactly).
    X, y = data
    limited = _regressor(n_init=2).fit(X, y)
    monkeypatch.setattr("skmoe._threads.numerics_threads", lambda n_features: None)
    default = _regressor(n_init=2).fit(X, y)
    assert_array_equal(limited.objective_history_, default.objective_history_)
    assert_array_equal(limited.predict(X), default.predict(X))


def test_a_shared_limit_is_undone_by_its_last_holder():
    events = []

    def apply():
        events.append("apply")
        return lambda: events.append("undo")

    limit = _SharedLimit(apply)
    with limit.held():
        with limit.held():
            assert events == ["apply"]
        assert events == ["apply"]
    assert events == ["apply", "undo"]
    with pytest.raises(ValueError), limit.held():
        raise ValueError
    assert events == ["apply", "undo", "apply", "undo"]


def test_concurrent_fits_restore_the_pools(data):
    # Limits are process-wide: two fits at once share one, restored by the
    # last to finish.
    X, y = data
    before = _pools()
    barrier = threading.Barrier(2)
    errors = []

    def fit():
        try:
            barrier.wait()
            _regressor(n_init=2).fit(X, y)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _pools() == before


def test_torch_threads_are_one_on_the_cpu_and_restored(data, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")
    X, y = data
    seen = []
    original = skmoe._fitting.run_em_on_rows

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(skmoe._fitting, "run_em_on_rows", recording)
    before = torch.get_num_threads()
    _regressor(backend="torch", device="cpu").fit(X, y)
    assert seen and all(threads == 1 for threads in seen)
    assert torch.get_num_threads() == before


def test_single_thread_outside_an_estimator():
    before = _pools()
    with single_thread():
        assert all(threads == 1 for threads in _blas_threads())
    assert _pools() == before


def test_only_designs_up_to_the_widest_measured_run_on_one_thread():
    assert numerics_threads(10) == 1
    assert numerics_threads(400) == 1
    assert numerics_threads(401) is None
