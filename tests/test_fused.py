"""The cache-blocked EM of linear experts: the in-memory EM, reorganised.

``FusedRows`` computes the E-step and the M-step's sums on chunks of
transposed rows, one pass per iteration. Its fits must be those of the
classic in-memory loop (``_fitting.run_em_on_rows`` with the fused path
switched off) and its statistics those of ``_statistics`` on row blocks.
"""

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge

import skmoe._fitting
import skmoe._fused
from skmoe import MixtureOfExpertsRegressor
from skmoe._backend import DesignCache
from skmoe._blockwise import ArrayBlocks
from skmoe._fused import FusedRows, fit_linear_experts
from skmoe._statistics import block_posterior
from skmoe.datasets import make_moe_regression

RTOL = 1e-10


@pytest.fixture(scope="module")
def data():
    X, y = make_moe_regression(2_000, 4, 4, noise=0.3, random_state=0)[:2]
    sample_weight = np.random.RandomState(1).uniform(0.5, 2.0, size=y.shape[0])
    return X, y, sample_weight


def _fit(params, X, y, sample_weight, *, fused, monkeypatch):
    with monkeypatch.context() as patch:
        if not fused:
            patch.setattr(skmoe._fitting, "supports_fused", lambda X, pool: False)
            patch.setattr(skmoe._fitting, "fused_rows", lambda *args, **kwargs: None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # The two EM loops compared: no split-and-merge moves after them.
            return MixtureOfExpertsRegressor(
                random_state=0, tol=0.0, max_iter=12, split_merge=0, **params
            ).fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize(
    "params",
    [
        {"n_experts": 4},
        {"hierarchy": (2, 2)},
        {"hierarchy": (2, 3)},
        {"n_experts": 4, "routing": "hard"},
        {"n_experts": 4, "routing": "topk", "top_k": 2},
        {"n_experts": 3, "gate_features": [0, 2]},
        {"n_experts": 3, "estimator": Ridge(alpha=3.0, fit_intercept=False)},
        {"n_experts": 12},  # the gate's block-diagonal Newton step
    ],
    ids=["flat", "tree", "tree-2-3", "hard", "topk", "gate-features", "ridge", "K12"],
)
def test_fused_em_equals_the_in_memory_em(params, data, monkeypatch):
    X, y, sample_weight = data
    fused = _fit(params, X, y, sample_weight, fused=True, monkeypatch=monkeypatch)
    classic = _fit(params, X, y, sample_weight, fused=False, monkeypatch=monkeypatch)
    np.testing.assert_allclose(
        fused.objective_history_, classic.objective_history_, rtol=RTOL
    )
    for coef_a, coef_b in zip(fused.gate_.coef, classic.gate_.coef, strict=True):
        np.testing.assert_allclose(coef_a, coef_b, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(
        fused.noise_variance_, classic.noise_variance_, rtol=1e-8
    )
    np.testing.assert_allclose(
        fused.predict(X), classic.predict(X), rtol=1e-8, atol=1e-8 * np.std(y)
    )


def test_fused_em_in_float32_stays_float32(data, monkeypatch, float32_tolerance):
    X, y, sample_weight = (a.astype(np.float32) for a in data)
    params = {"n_experts": 3}
    fits = [
        _fit(params, X, y, sample_weight, fused=fused, monkeypatch=monkeypatch)
        for fused in (True, False)
    ]
    assert fits[0]._expert_pool.coef_.dtype == np.float32
    assert fits[0].gate_.coef[0].dtype == np.float32

    # Both paths round in float32, in different orders (the BLAS kernel,
    # chosen per CPU, decides some), so neither equals the other to a fixed
    # rtol everywhere: each must stay within float32's error of the float64
    # fit of the same rounded data.
    w64 = sample_weight.astype(np.float64)

    def fit_predict(X64, y64):
        fit = _fit(params, X64, y64, w64, fused=True, monkeypatch=monkeypatch)
        return fit.predict(X.astype(np.float64))

    expected = fit_predict(X.astype(np.float64), y.astype(np.float64))
    tolerance = float32_tolerance(fit_predict, X, y)
    for fit in fits:
        np.testing.assert_allclose(fit.predict(X), expected, rtol=0, atol=tolerance)


def _started_model(X, y, sample_weight, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MixtureOfExpertsRegressor(
            random_state=0, max_iter=2, tol=0.0, **params
        ).fit(X, y, sample_weight=sample_weight)


def _assert_same_statistics(found, expected, path="statistics", gradient_terms=0.0):
    """Compare nested statistics summed in two orders, to rounding.

    Each is compared to ``1e-12`` of its largest entry; a gate's gradient
    sums terms of both signs that cancel near a fitted gate, so its
    rounding is that of the terms: ``gradient_terms`` bounds the sum of
    their absolute values (``sum_i w_i max(1, |x_i|_inf)``, as
    ``|target - proba| <= 1``).
    """
    if isinstance(expected, dict):
        for key in expected:
            if key != "squares":  # not computed for linear experts' EM
                _assert_same_statistics(
                    found[key], expected[key], f"{path}.{key}", gradient_terms
                )
    elif isinstance(expected, list):
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            _assert_same_statistics(a, b, f"{path}[{i}]", gradient_terms)
    else:
        scale = np.max(np.abs(expected)) + 1e-300
        if ".gates[" in path and path.endswith(".gradient"):
            scale = max(scale, gradient_terms)
        np.testing.assert_allclose(
            found, expected, rtol=1e-12, atol=1e-12 * scale, err_msg=path
        )


def _gradient_terms(X, sample_weight):
    return float(sample_weight @ np.maximum(1.0, np.max(np.abs(X), axis=1)))


@pytest.mark.parametrize(
    "params",
    [{"n_experts": 4}, {"hierarchy": (2, 2)}, {"n_experts": 3, "gate_features": [1]}],
    ids=["flat", "tree", "gate-features"],
)
def test_statistics_equal_those_of_row_blocks(params, data):
    X, y, sample_weight = data
    moe = _started_model(X, y, sample_weight, **params)
    model = {"gate": moe.gate_, "pool": moe._expert_pool, "routing": "soft", "top_k": 2}
    rows = FusedRows(
        DesignCache(X), y, sample_weight, gate=moe.gate_, pool=moe._expert_pool
    )
    blocks = ArrayBlocks(X, y, sample_weight, block_rows=700)
    terms = _gradient_terms(X, sample_weight)
    _assert_same_statistics(
        rows.em_statistics(**model),
        blocks.em_statistics(**model),
        gradient_terms=terms,
    )
    pool = moe._expert_pool
    linear_coef = (pool.coef_ * 1.1 + 0.01, pool.intercept_ - 0.2)
    trials = [np.stack([coef * 0.9, coef * 1.2]) for coef in moe.gate_.coef]
    _assert_same_statistics(
        rows.trial_statistics(gate_trials=trials, linear_coef=linear_coef, **model),
        blocks.trial_statistics(gate_trials=trials, linear_coef=linear_coef, **model),
        gradient_terms=terms,
    )


def test_squared_residuals_need_no_pass_and_do_not_cancel(data):
    # A target far from zero: sum W y^2 - 2 b.m + b'Gb would lose every digit
    # here; the expansion around the E-step's residuals does not.
    X, y, sample_weight = data
    y = y + 1e7
    moe = _started_model(X, y, sample_weight, n_experts=3)
    model = {"gate": moe.gate_, "pool": moe._expert_pool, "routing": "soft", "top_k": 2}
    rows = FusedRows(
        DesignCache(X), y, sample_weight, gate=moe.gate_, pool=moe._expert_pool
    )
    rows.em_statistics(**model)
    pool = moe._expert_pool
    linear_coef = (pool.coef_ + 0.05, pool.intercept_ + 0.3)
    expected = ArrayBlocks(X, y, sample_weight, block_rows=2_000).trial_statistics(
        linear_coef=linear_coef, **model
    )["squared_residuals"]
    found = rows.trial_statistics(linear_coef=linear_coef, **model)["squared_residuals"]
    np.testing.assert_allclose(found, expected, rtol=1e-9)


def test_about_one_pass_per_iteration(data, monkeypatch):
    X, y, sample_weight = data
    passes = []
    for name, kind in (("_pass", None), ("_trial_pass", "trial")):
        original = getattr(FusedRows, name)

        def counted(self, *args, original=original, kind=kind, **kwargs):
            speculative = kwargs.get("trials") is not None
            passes.append(kind or ("speculative" if speculative else "e-step"))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(FusedRows, name, counted)
    # One k-means start: the passes counted are those of one EM run.
    moe = _fit(
        {"n_experts": 4, "init_params": "kmeans"},
        X,
        y,
        sample_weight,
        fused=True,
        monkeypatch=monkeypatch,
    )
    # Every iteration scores its full gate step in one pass that is also the
    # next E-step. Only where the line search refuses a full step (early,
    # far from the optimum) do halvings and a fresh E-step cost more passes.
    assert passes.count("speculative") == moe.n_iter_ == 12
    assert passes[0] == "e-step"
    assert len(passes) <= moe.n_iter_ + 3  # the two-pass scheme: 2 * 12 + 1


def test_a_refused_speculation_recomputes_the_e_step(data):
    X, y, sample_weight = data
    moe = _started_model(X, y, sample_weight, n_experts=3)
    gate, pool = moe.gate_, moe._expert_pool
    model = {"gate": gate, "pool": pool, "routing": "soft", "top_k": 2}
    rows = FusedRows(DesignCache(X), y, sample_weight, gate=gate, pool=pool)
    rows.em_statistics(**model)
    full_step = [coef * 1.5 for coef in gate.coef]
    rows.trial_statistics(
        gate_trials=[c[None] for c in full_step],
        linear_coef=(pool.coef_, pool.intercept_),
        **model,
    )
    # The line search kept a half step instead: another model than speculated.
    other_gate = copy.deepcopy(gate)
    other_gate.coef = [coef * 1.25 for coef in gate.coef]
    other = {**model, "gate": other_gate}
    found = rows.em_statistics(**other)
    fresh = FusedRows(DesignCache(X), y, sample_weight, gate=gate, pool=pool)
    _assert_same_statistics(found, fresh.em_statistics(**other))
    np.testing.assert_array_equal(rows.resp, fresh.resp)


def test_fit_linear_experts_equals_the_pool_m_step(data):
    X, y, sample_weight = data
    moe = _started_model(X, y, sample_weight, n_experts=3, estimator=Ridge(alpha=2.0))
    weights = sample_weight[:, None] * moe.predict_gate(X)
    expected, found = copy.deepcopy(moe._expert_pool), copy.deepcopy(moe._expert_pool)
    expected.m_step(DesignCache(X), y, weights)
    fit_linear_experts(found, DesignCache(X), y, weights)
    for name in ("coef_", "intercept_", "variance_"):
        np.testing.assert_allclose(
            getattr(found, name), getattr(expected, name), rtol=1e-10, atol=1e-12
        )


def test_chunks_cover_every_row_once(data, monkeypatch):
    # Chunks smaller than the data, the last one short.
    monkeypatch.setattr(skmoe._fused, "_CHUNK_BYTES", 1)
    monkeypatch.setattr(skmoe._fused, "_MIN_CHUNK_ROWS", 333)
    X, y, sample_weight = data
    moe = _started_model(X, y, sample_weight, n_experts=3)
    model = {"gate": moe.gate_, "pool": moe._expert_pool, "routing": "soft", "top_k": 2}
    rows = FusedRows(
        DesignCache(X), y, sample_weight, gate=moe.gate_, pool=moe._expert_pool
    )
    assert rows.chunk_rows == 333
    blocks = ArrayBlocks(X, y, sample_weight, block_rows=X.shape[0])
    _assert_same_statistics(rows.em_statistics(**model), blocks.em_statistics(**model))
    posterior = block_posterior(
        moe.gate_, moe._expert_pool, DesignCache(X), y, routing="soft", top_k=2
    )[1]
    np.testing.assert_allclose(
        rows.responsibilities(), posterior, rtol=1e-12, atol=1e-15
    )
