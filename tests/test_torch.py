"""The torch backend: the same EM on torch tensors, on the CPU and on a GPU.

The numerics are written once (skmoe/_backend.py), so a fit with
``backend="torch"`` must follow the NumPy fit from the same start to rounding:
float64 fits agree to 1e-8 relative, parameters, histories and predictions
alike (save logistic experts' intercepts that diverge along a flat direction,
compared by their probabilities instead). The CPU wheel runs everything here;
the GPU tests skip without CUDA.
"""

import pickle
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._experts import LogisticExperts
from skmoe._softmax import _ROUNDING_SLACK
from skmoe.datasets import make_moe_classification, make_moe_regression

torch = pytest.importorskip("torch")
pytest.importorskip("array_api_compat")

RTOL = 1e-8
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def regression():
    return make_moe_regression(
        n_samples=300, n_features=3, n_experts=4, noise=0.3, random_state=0
    )


@pytest.fixture(scope="module")
def classification():
    return make_moe_classification(
        n_samples=300, n_features=3, n_experts=4, n_classes=3, random_state=0
    )


def fit(estimator, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.set_params(**params).fit(X, y)


def assert_close(actual, desired, rtol=RTOL):
    """Max absolute difference within ``rtol`` of the largest entry."""
    actual = actual.numpy(force=True) if torch.is_tensor(actual) else actual
    actual, desired = np.asarray(actual, float), np.asarray(desired, float)
    assert actual.shape == desired.shape
    scale = max(float(np.max(np.abs(desired), initial=0.0)), 1e-12)
    assert float(np.max(np.abs(actual - desired), initial=0.0)) <= rtol * scale


def assert_same_model(a, b, rtol=RTOL, *, expert_rtol=None):
    for coef_a, coef_b in zip(a.gate_.coef, b.gate_.coef, strict=True):
        assert_close(coef_b, coef_a, rtol)
    for expert_a, expert_b in zip(a.experts_, b.experts_, strict=True):
        assert_close(expert_b.coef_, expert_a.coef_, expert_rtol or rtol)
        assert_close(expert_b.intercept_, expert_a.intercept_, expert_rtol or rtol)
    if hasattr(a, "noise_variance_"):
        assert_close(b.noise_variance_, a.noise_variance_, rtol)
    assert a.n_iter_ == b.n_iter_
    assert_close(b.log_likelihood_history_, a.log_likelihood_history_, rtol)
    assert_close(b.objective_history_, a.objective_history_, rtol)


STRUCTURES = [{"n_experts": 3}, {"hierarchy": (2, 2)}]
ROUTINGS = [{"routing": "soft"}, {"routing": "hard"}, {"routing": "topk"}]


# ---------------------------------------------------------------------------
# numpy and torch agree
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("routing", ROUTINGS, ids=lambda p: p["routing"])
@pytest.mark.parametrize("structure", STRUCTURES, ids=["flat", "tree"])
def test_regressor_numpy_and_torch_agree(regression, structure, routing):
    X, y = regression
    params = {"random_state": 0, "max_iter": 15, "tol": 0.0, **structure, **routing}
    a = fit(MixtureOfExpertsRegressor(), X, y, **params)
    b = fit(MixtureOfExpertsRegressor(), X, y, backend="torch", device="cpu", **params)
    assert_same_model(a, b)
    assert_close(b.predict(X), a.predict(X))
    mean, std = b.predict(torch.from_numpy(X), return_std=True)
    assert_close(mean, a.predict(X))
    assert_close(std, a.predict(X, return_std=True)[1])
    assert_close(b.predict_gate(X), a.predict_gate(X))
    assert_close(b.log_likelihood(X, y), a.log_likelihood(X, y))
    np.testing.assert_array_equal(b.apply(X), a.apply(X))


@pytest.mark.parametrize("routing", ROUTINGS, ids=lambda p: p["routing"])
@pytest.mark.parametrize("structure", STRUCTURES, ids=["flat", "tree"])
def test_classifier_numpy_and_torch_agree(classification, structure, routing):
    X, y = classification
    # torch takes the whole-array EM, NumPy the fused one: both take
    # em_newton_steps line-searched Newton steps per M-step.
    # One k-means start: a screen's 60 extra iterations would compound the
    # backends' rounding beyond what the tolerance of 15 iterations allows.
    params = {"init_params": "kmeans", "random_state": 0, "max_iter": 15, "tol": 0.0}
    params = {**params, **structure, **routing}
    a = fit(MixtureOfExpertsClassifier(), X, y, **params)
    b = fit(MixtureOfExpertsClassifier(), X, y, backend="torch", device="cpu", **params)
    # Top-k EM hides a class from some expert, whose unpenalised intercept
    # then diverges (to about -19 here) along a direction where the
    # likelihood is flat to 1e-8: rounding moves it by 1e-7 relative, and
    # no probability by more than 1e-15. Those experts are compared by
    # their probabilities at 1e-8.
    topk = routing["routing"] == "topk"
    assert_same_model(a, b, expert_rtol=1e-5 if topk else None)
    for expert_a, expert_b in zip(a.experts_, b.experts_, strict=True):
        assert_close(expert_b.predict_proba(X), expert_a.predict_proba(X))
    assert_close(b.predict_proba(X), a.predict_proba(X))
    assert_close(b.predict_gate(torch.from_numpy(X)), a.predict_gate(X))
    assert_close(b.log_likelihood(X, y), a.log_likelihood(X, y))
    np.testing.assert_array_equal(b.predict(X), a.predict(X))


def test_generic_experts_run_on_the_cpu_with_a_warning(regression):
    X, y = regression
    # Tree experts turn rounding into another split where two splits tie, so
    # the backends agree only while the gate's rounding stays far below the
    # gaps between split scores. The condition number of the gate's Newton
    # systems grows as 1 / gate_alpha: at the default 0.01 the backends'
    # gates differ by 1e-13 after three iterations here and a split flips at
    # the fourth; with a penalty of 1 they stay within 1e-15.
    params = {
        "n_experts": 2,
        "random_state": 0,
        "max_iter": 5,
        "tol": 0.0,
        "gate_alpha": 1.0,
    }
    a = fit(
        MixtureOfExpertsRegressor(DecisionTreeRegressor(max_depth=2)), X, y, **params
    )
    b = MixtureOfExpertsRegressor(DecisionTreeRegressor(max_depth=2), backend="torch")
    with pytest.warns(UserWarning, match="CPU with NumPy") as record:
        fit(b, X, y, device="cpu", **params)
    assert sum("CPU with NumPy" in str(w.message) for w in record) == 1
    assert_close(b.predict(torch.from_numpy(X)), a.predict(X))
    assert_close(b.noise_variance_, a.noise_variance_)


def test_float32_stays_close_to_float64(regression, float32_tolerance):
    params = {"n_experts": 3, "random_state": 0, "max_iter": 20, "tol": 0.0}
    X, y = (a.astype(np.float32) for a in regression)
    single = fit(
        MixtureOfExpertsRegressor(backend="torch", device="cpu"),
        torch.from_numpy(X),
        torch.from_numpy(y),
        **params,
    ).predict(torch.from_numpy(X))
    assert single.dtype == torch.float32
    assert single.device.type == "cpu"

    def fit_predict(X64, y64):
        model = MixtureOfExpertsRegressor(backend="torch")
        model = fit(model, X64, y64, device="cpu", **params)
        return model.predict(X.astype(np.float64))

    expected = fit_predict(X.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(
        single.numpy(), expected, rtol=0, atol=float32_tolerance(fit_predict, X, y)
    )

    # Logistic experts whose unpenalised intercepts diverge amplify float32
    # rounding through EM: the perturbed refits measure that amplification.
    X, y = make_moe_classification(
        n_samples=300, n_features=3, n_classes=2, expert_scale=1.0, random_state=0
    )
    X = X.astype(np.float32)
    single = fit(
        MixtureOfExpertsClassifier(backend="torch", device="cpu"),
        torch.from_numpy(X),
        y,
        **params,
    ).predict_proba(torch.from_numpy(X))
    assert single.dtype == torch.float32

    def fit_predict_proba(X64, y):
        model = MixtureOfExpertsClassifier(backend="torch")
        model = fit(model, X64, y, device="cpu", **params)
        return model.predict_proba(X.astype(np.float64))

    expected = fit_predict_proba(X.astype(np.float64), y)
    np.testing.assert_allclose(
        single.numpy(),
        expected,
        rtol=0,
        atol=float32_tolerance(fit_predict_proba, X, y),
    )


# ---------------------------------------------------------------------------
# EM on whole arrays
# ---------------------------------------------------------------------------


# Soft EM and classification EM (hard routing trained by EM: each iteration
# raises its bound too), flat and a tree.
WHOLE_ARRAY_EM = {
    "flat-soft": {"n_experts": 4},
    "tree-soft": {"hierarchy": (2, 2)},
    "flat-hard": {"n_experts": 4, "routing": "hard", "train_routing": "em"},
    "tree-hard": {"hierarchy": (2, 2), "routing": "hard", "train_routing": "em"},
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", WHOLE_ARRAY_EM)
def test_one_newton_step_per_m_step_never_decreases_the_objective(
    case, dtype, newton_step_counts
):
    # Each EM iteration on whole arrays takes one line-searched Newton step
    # on the logistic experts (a generalised EM): the objective may not
    # fall by more than its rounding. Sharp experts, barely penalised, are
    # close to separable and full Newton steps overshoot: without the line
    # search the flat soft fit loses 4e-2 per row in an iteration.
    X, y = make_moe_classification(
        n_samples=300,
        n_features=3,
        n_experts=4,
        n_classes=3,
        expert_scale=30.0,
        random_state=0,
    )
    X = torch.from_numpy(X).to(dtype)
    steps = newton_step_counts
    n_iter = 30
    moe = fit(
        MixtureOfExpertsClassifier(
            LogisticRegression(C=1e4), backend="torch", device="cpu"
        ),
        X,
        y,
        init_params="kmeans",
        random_state=0,
        max_iter=n_iter,
        tol=0.0,
        split_merge=0,
        **WHOLE_ARRAY_EM[case],
    )
    assert moe.n_iter_ == n_iter
    # The objective per row is a mean of n log-probabilities: summed in the
    # fit's precision, each of two objectives compared is off by at most
    # n * eps of its magnitude (Higham's gamma_n, a worst case); the line
    # searches accept a loss of _ROUNDING_SLACK of it besides.
    eps = torch.finfo(dtype).eps
    history = np.asarray(moe.objective_history_, dtype=np.float64)
    rtol = 2 * X.shape[0] * eps + _ROUNDING_SLACK
    slack = rtol * np.maximum(1.0, np.abs(history[:-1]))
    drops = history[:-1] - history[1:]
    assert np.all(drops <= slack), f"largest drop {drops.max():.3e}"
    # EM's own M-steps (the last run's) took one step each; the start's
    # fresh experts were fitted with more.
    assert steps[-n_iter:] == [LogisticExperts.em_newton_steps] * n_iter
    assert max(steps[:-n_iter]) > 1


# ---------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_tensors_in_tensors_out(regression, classification, backend):
    X, y = regression
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    reg = fit(
        MixtureOfExpertsRegressor(n_experts=2, max_iter=5), Xt, yt, backend=backend
    )
    for out in [
        reg.predict(Xt),
        *reg.predict(Xt, return_std=True),
        reg.predict_gate(Xt),
        reg.apply(Xt),
        reg.decision_path(Xt),
        reg.log_likelihood(Xt, yt),
    ]:
        assert torch.is_tensor(out)
    for out in [
        reg.predict(X),
        *reg.predict(X, return_std=True),
        reg.predict_gate(X),
        reg.apply(X),
        reg.decision_path(X),
        reg.log_likelihood(X, y),
    ]:
        assert isinstance(out, np.ndarray)
    assert isinstance(reg.bic(Xt, yt), float)

    X, y = classification
    Xt = torch.from_numpy(X)
    clf = fit(
        MixtureOfExpertsClassifier(n_experts=2, max_iter=5), Xt, y, backend=backend
    )
    assert torch.is_tensor(clf.predict_proba(Xt))
    assert torch.is_tensor(clf.predict(Xt))
    assert isinstance(clf.predict(X), np.ndarray)
    # Labels torch cannot hold stay NumPy.
    labels = np.array(["a", "b", "c"])[y]
    clf = fit(MixtureOfExpertsClassifier(n_experts=2, max_iter=5), Xt, labels)
    assert clf.predict(Xt).dtype.kind == "U"


def test_torch_fitted_model_holds_numpy_and_pickles(regression):
    X, y = regression
    moe = fit(
        MixtureOfExpertsRegressor(hierarchy=(2, 2), max_iter=5, random_state=0),
        torch.from_numpy(X),
        torch.from_numpy(y),
        backend="torch",
        device="cpu",
    )
    arrays = [
        *moe.gate_.coef,
        moe.noise_variance_,
        moe._expert_pool.coef_,
        moe._expert_pool.intercept_,
        moe._expert_pool.variance_,
        *(e.coef_ for e in moe.experts_),
    ]
    assert all(type(a) is np.ndarray for a in arrays)
    loaded = pickle.loads(pickle.dumps(moe))
    np.testing.assert_array_equal(loaded.predict(X), moe.predict(X))
    numpy_model = loaded.set_params(backend="numpy", device=None)
    assert_close(numpy_model.predict(X), moe.predict(X))


def test_numpy_model_predicts_on_torch(regression):
    X, y = regression
    moe = fit(MixtureOfExpertsRegressor(n_experts=2, max_iter=5), X, y)
    expected = moe.predict(X)
    out = moe.set_params(backend="torch", device="cpu").predict(torch.from_numpy(X))
    assert torch.is_tensor(out)
    assert_close(out, expected)


def test_warm_start_continues_on_torch(regression):
    X, y = regression
    params = {"n_experts": 2, "max_iter": 3, "random_state": 0, "tol": 0.0}
    moe = MixtureOfExpertsRegressor(warm_start=True, backend="torch", device="cpu")
    fit(moe, X, y, **params)
    first = moe.log_likelihood_history_[-1]
    fit(moe, X, y)
    assert moe.log_likelihood_history_[0] == pytest.approx(first)
    assert type(moe.gate_.coef[0]) is np.ndarray


def test_rescaled_weights_give_the_same_fit_on_torch(regression):
    """Weights are divided by their mean before they move to the device."""
    X, y = regression
    weight = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    params = {"backend": "torch", "device": "cpu", "max_iter": 10, "tol": 0.0}
    a = MixtureOfExpertsRegressor(n_experts=3, random_state=0)
    b = MixtureOfExpertsRegressor(n_experts=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.set_params(**params).fit(torch.tensor(X), y, sample_weight=weight)
        b.set_params(**params).fit(torch.tensor(X), y, sample_weight=1e-12 * weight)
    assert_same_model(a, b)


def test_tensor_input_is_validated(regression):
    X, y = regression
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    moe = MixtureOfExpertsRegressor(n_experts=2, max_iter=3, backend="torch")
    bad = Xt.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        moe.fit(bad, yt)
    with pytest.raises(ValueError, match="2D tensor"):
        moe.fit(Xt[:, 0], yt)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        moe.fit(Xt, yt[:-1])
    # As NumPy input: a cast would silently drop the imaginary part.
    with pytest.raises(ValueError, match="Complex data not supported"):
        moe.fit(Xt.to(torch.complex128), yt)
    fit(moe, Xt.to(torch.int64), yt)  # integers become float64
    with pytest.raises(ValueError, match="Complex data not supported"):
        moe.predict(Xt.to(torch.complex64))
    assert moe.gate_.coef[0].dtype == np.float64
    with pytest.raises(ValueError, match="features"):
        moe.predict(Xt[:, :2])


def test_device_is_checked(regression):
    X, y = regression
    with pytest.raises(ValueError, match="needs backend='torch'"):
        MixtureOfExpertsRegressor(device="cuda").fit(X, y)
    with pytest.raises(ValueError, match="not a torch device"):
        MixtureOfExpertsRegressor(backend="torch", device="nowhere").fit(X, y)
    with pytest.raises(TypeError, match="device must be"):
        MixtureOfExpertsRegressor(backend="torch", device=3).fit(X, y)


@pytest.mark.parametrize("module", ["torch", "array_api_compat"])
def test_missing_torch_names_the_extra(regression, monkeypatch, module):
    X, y = regression
    monkeypatch.setitem(sys.modules, module, None)  # its import now fails
    with pytest.raises(ImportError, match=r'pip install "skmoe\[torch\]"'):
        MixtureOfExpertsRegressor(backend="torch").fit(X, y)
    # The numpy path needs no torch.
    fit(MixtureOfExpertsRegressor(n_experts=2, max_iter=3), X, y).predict(X)


# ---------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------


@pytest.mark.gpu
@CUDA
@pytest.mark.parametrize("structure", STRUCTURES, ids=["flat", "tree"])
def test_cuda_agrees_with_numpy(regression, classification, structure):
    params = {"random_state": 0, "max_iter": 15, "tol": 0.0, **structure}
    X, y = regression
    a = fit(MixtureOfExpertsRegressor(), X, y, **params)
    b = fit(MixtureOfExpertsRegressor(backend="torch"), X, y, device="cuda", **params)
    assert_same_model(a, b, rtol=1e-6)
    X, y = classification
    a = fit(MixtureOfExpertsClassifier(), X, y, **params)
    b = fit(MixtureOfExpertsClassifier(backend="torch"), X, y, device="cuda", **params)
    assert_same_model(a, b, rtol=1e-6)


@pytest.mark.gpu
@CUDA
def test_cuda_tensors_stay_on_the_device(regression):
    X, y = regression
    Xc, yc = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    moe = fit(
        MixtureOfExpertsRegressor(n_experts=2, max_iter=5, backend="torch"), Xc, yc
    )
    assert moe.device is None  # cuda by default when available
    assert moe.predict(Xc).device.type == "cuda"
    assert moe.log_likelihood(Xc, yc).device.type == "cuda"
    assert isinstance(moe.predict(X), np.ndarray)
    assert type(moe.gate_.coef[0]) is np.ndarray
    cpu = pickle.loads(pickle.dumps(moe)).set_params(backend="numpy")
    assert_close(cpu.predict(X), moe.predict(X), rtol=1e-6)
