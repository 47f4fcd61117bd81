"""Round trips of fitted models: pickle, joblib and skops with trusted types."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.persistence import get_trusted_types

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def make_data(kind, n_samples=80, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, 3))
    if kind == "regressor":
        return X, np.where(X[:, 0] > 0, X[:, 1], -X[:, 2]) + 0.1 * rng.normal(
            size=n_samples
        )
    return X, np.array(["a", "b", "c"])[np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])]


def fitted(kind, hierarchy, estimator=None):
    X, y = make_data(kind)
    Estimator = (
        MixtureOfExpertsRegressor if kind == "regressor" else MixtureOfExpertsClassifier
    )
    moe = Estimator(estimator, hierarchy=hierarchy, max_iter=5, random_state=0)
    return moe.fit(X, y), X, y


def assert_same_predictions(original, loaded, X):
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    np.testing.assert_array_equal(loaded.predict_gate(X), original.predict_gate(X))
    if hasattr(original, "predict_proba"):
        np.testing.assert_array_equal(
            loaded.predict_proba(X), original.predict_proba(X)
        )


MODELS = [
    (kind, hierarchy)
    for kind in ("regressor", "classifier")
    for hierarchy in [(2,), (2, 2)]
]


@pytest.mark.parametrize("kind, hierarchy", MODELS)
def test_pickle_round_trip(kind, hierarchy):
    moe, X, _ = fitted(kind, hierarchy)
    assert_same_predictions(moe, pickle.loads(pickle.dumps(moe)), X)


@pytest.mark.parametrize("kind, hierarchy", MODELS)
def test_joblib_round_trip(kind, hierarchy, tmp_path):
    moe, X, _ = fitted(kind, hierarchy)
    joblib.dump(moe, tmp_path / "moe.joblib")
    assert_same_predictions(moe, joblib.load(tmp_path / "moe.joblib"), X)


@pytest.mark.parametrize("kind, hierarchy", MODELS)
def test_skops_round_trip_with_the_trusted_types(kind, hierarchy, tmp_path):
    sio = pytest.importorskip("skops.io")
    moe, X, y = fitted(kind, hierarchy)
    sio.dump(moe, tmp_path / "moe.skops")
    loaded = sio.load(tmp_path / "moe.skops", trusted=get_trusted_types())
    assert_same_predictions(moe, loaded, X)
    np.testing.assert_array_equal(loaded.log_likelihood(X, y), moe.log_likelihood(X, y))


@pytest.mark.parametrize(
    "kind, estimator",
    [
        ("regressor", LinearRegression()),
        ("regressor", Ridge(alpha=0.5)),
        ("regressor", [LinearRegression(), Ridge()]),
        ("classifier", LogisticRegression(C=0.5)),
        ("classifier", [LogisticRegression(), LogisticRegression(C=2.0)]),
    ],
)
def test_trusted_types_cover_linear_expert_pools(kind, estimator, tmp_path):
    """Vectorized pools (one template) and generic pools (a list) alike."""
    sio = pytest.importorskip("skops.io")
    moe, X, _ = fitted(kind, (2,), estimator)
    sio.dump(moe, tmp_path / "moe.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "moe.skops")
    assert set(untrusted) <= set(get_trusted_types())
    loaded = sio.load(tmp_path / "moe.skops", trusted=get_trusted_types())
    assert_same_predictions(moe, loaded, X)


def test_skops_refuses_untrusted_skmoe_types(tmp_path):
    sio = pytest.importorskip("skops.io")
    from skops.io.exceptions import UntrustedTypesFoundException

    moe, _, _ = fitted("regressor", (2, 2))
    sio.dump(moe, tmp_path / "moe.skops")
    with pytest.raises(UntrustedTypesFoundException, match="skmoe"):
        sio.load(tmp_path / "moe.skops", trusted=[])


def test_trusted_types_name_importable_classes():
    import importlib

    for name in get_trusted_types():
        module, _, cls = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), cls), type)


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_skops_round_trip_of_a_model_trained_online(kind, tmp_path):
    """The running statistics load too, and learning goes on the same."""
    sio = pytest.importorskip("skops.io")
    X, y = make_data(kind, n_samples=120)
    Estimator = (
        MixtureOfExpertsRegressor if kind == "regressor" else MixtureOfExpertsClassifier
    )
    extra = {} if kind == "regressor" else {"classes": np.unique(y)}
    moe = Estimator(n_experts=2, max_iter=5, random_state=0)
    moe.partial_fit(X[:60], y[:60], **extra)
    moe.partial_fit(X[60:90], y[60:90])
    sio.dump(moe, tmp_path / "moe.skops")
    untrusted = sio.get_untrusted_types(file=tmp_path / "moe.skops")
    assert set(untrusted) <= set(get_trusted_types())
    loaded = sio.load(tmp_path / "moe.skops", trusted=get_trusted_types())
    assert_same_predictions(moe, loaded, X)
    moe.partial_fit(X[90:], y[90:])
    loaded.partial_fit(X[90:], y[90:])
    assert_same_predictions(moe, loaded, X)


def test_pickles_carry_the_version_stamp():
    """A pickle from another scikit-learn version warns, as sklearn's own do."""
    import sklearn
    from sklearn.exceptions import InconsistentVersionWarning

    moe, X, _ = fitted("regressor", (2,))
    state = moe.__getstate__()
    assert state["_sklearn_version"] == sklearn.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = pickle.loads(pickle.dumps(moe))
    assert "_sklearn_version" not in vars(loaded)
    assert_same_predictions(moe, loaded, X)
    stale = MixtureOfExpertsRegressor.__new__(MixtureOfExpertsRegressor)
    with pytest.warns(InconsistentVersionWarning, match="from version 0.1 when"):
        stale.__setstate__({**state, "_sklearn_version": "0.1"})
    assert_same_predictions(moe, stale, X)


def test_a_model_trained_online_before_its_state_was_one_object_loads():
    """Older pickles kept partial_fit's state in four loose attributes."""
    X, y = make_data("regressor", n_samples=120)
    moe = MixtureOfExpertsRegressor(n_experts=2, max_iter=5, random_state=0)
    moe.partial_fit(X[:60], y[:60]).partial_fit(X[60:90], y[60:90])
    state = moe.__getstate__()
    online = state.pop("_online")
    legacy = {
        **state,
        "_stepwise": online.stepwise,
        "_start_rows_kept": online.start_rows,
        "n_samples_seen_": online.n_samples_seen,
        "n_steps_": online.stepwise.n_steps,
    }
    loaded = MixtureOfExpertsRegressor.__new__(MixtureOfExpertsRegressor)
    loaded.__setstate__(copy.deepcopy(legacy))
    assert not {"_stepwise", "_start_rows_kept"} & set(vars(loaded))
    assert (loaded.n_samples_seen_, loaded.n_steps_) == (90, moe.n_steps_)
    assert_same_predictions(moe, loaded, X)
    moe.partial_fit(X[90:], y[90:])
    loaded.partial_fit(X[90:], y[90:])
    assert_same_predictions(moe, loaded, X)
