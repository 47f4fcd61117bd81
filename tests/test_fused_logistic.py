"""The classifier's cache-blocked EM: the EM of row blocks, reorganised.

``FusedLogisticRows`` computes the E-step and the M-step's sums of logistic
experts on chunks of transposed rows. Its statistics must be those of
``_statistics`` on row blocks, and its fits those of the whole-array EM.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import skmoe._fitting
from skmoe import MixtureOfExpertsClassifier
from skmoe._backend import DesignCache
from skmoe._blockwise import ArrayBlocks
from skmoe._fused_logistic import FusedLogisticRows
from skmoe.datasets import make_moe_classification


@pytest.fixture(scope="module")
def data():
    X, y = make_moe_classification(
        n_samples=1500, n_features=4, n_experts=4, n_classes=3, random_state=0
    )
    sample_weight = np.random.RandomState(1).uniform(0.5, 2.0, size=y.shape[0])
    return X, y, sample_weight


def _started_model(X, y, sample_weight, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MixtureOfExpertsClassifier(
            random_state=0, max_iter=2, tol=0.0, split_merge=0, **params
        ).fit(X, y, sample_weight=sample_weight)


def _assert_same_statistics(found, expected, path, terms):
    """Compare nested statistics summed in two orders, to rounding.

    Each to ``1e-12`` of ``terms``, the sum of the absolute values of the
    terms it sums (``sum_i w_i max(1, |x_i|_inf)`` for a gradient or a Gram
    matrix, whose row terms are bounded by that, ``|target - proba| <= 1``
    and probabilities <= 1), or of its largest entry if larger: the
    gradients of fitted softmax problems cancel.
    """
    if isinstance(expected, dict):
        for key in expected:
            _assert_same_statistics(found[key], expected[key], f"{path}.{key}", terms)
    elif isinstance(expected, list):
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            _assert_same_statistics(a, b, f"{path}[{i}]", terms)
    else:
        scale = max(float(np.max(np.abs(expected))), terms)
        np.testing.assert_allclose(
            found, expected, rtol=1e-12, atol=1e-12 * scale, err_msg=path
        )


@pytest.mark.parametrize(
    "structure", [{"n_experts": 4}, {"hierarchy": (2, 2)}], ids=["flat", "tree"]
)
@pytest.mark.parametrize("gate_features", [None, [1]], ids=["all", "one-column"])
def test_chunk_sums_equal_the_sums_of_row_blocks(structure, gate_features, data):
    X, y, sample_weight = data
    moe = _started_model(X, y, sample_weight, gate_features=gate_features, **structure)
    y_index = moe._encode_targets(y, reset=False)
    gate, pool = moe.gate_, moe._expert_pool
    model = {"gate": gate, "pool": pool, "routing": "soft", "top_k": 2}
    rows = FusedLogisticRows(
        DesignCache(X), y_index, sample_weight, gate=gate, pool=pool
    )
    blocks = ArrayBlocks(X, y_index, sample_weight, block_rows=700)
    # log-likelihoods are bounded by -log(PROBA_FLOOR) = 23 per row.
    terms = float(sample_weight @ np.maximum(1.0, np.max(np.abs(X), axis=1))) * 23
    _assert_same_statistics(
        rows.em_statistics(**model), blocks.em_statistics(**model), "em", terms
    )
    gate_trials = [np.stack([coef * 0.9, coef * 1.2]) for coef in gate.coef]
    expert_trials = np.stack([pool.coef_ * 0.8, pool.coef_ + 0.1])
    trials = {
        "gate_trials": gate_trials,
        "expert_trials": expert_trials,
        "newton_at_first_trial": True,
    }
    _assert_same_statistics(
        rows.trial_statistics(**trials, **model),
        blocks.trial_statistics(**trials, **model),
        "trials",
        terms,
    )


# Each: the structure and options of the EM compared.
WHOLE_ARRAY_CASES = {
    "flat": {"n_experts": 4},
    "tree": {"hierarchy": (2, 2)},
    "hard": {"n_experts": 4, "routing": "hard"},
    "gate-features": {"n_experts": 3, "gate_features": [0, 2]},
}


@pytest.mark.parametrize("case", WHOLE_ARRAY_CASES)
def test_fused_em_equals_the_whole_array_em(case, data, monkeypatch):
    X, y, sample_weight = data
    # Both take em_newton_steps line-searched Newton steps per M-step.
    fits = {}
    for path in ("fused", "whole"):
        if path == "whole":
            monkeypatch.setattr(skmoe._fitting, "fused_rows", lambda *args, **kw: None)
        moe = MixtureOfExpertsClassifier(
            random_state=0, tol=0.0, max_iter=10, split_merge=0
        ).set_params(**WHOLE_ARRAY_CASES[case])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[path] = moe.fit(X, y, sample_weight=sample_weight)
    fused, whole = fits["fused"], fits["whole"]
    # The same M-step rule from the same statistics, summed in another
    # order: the fits agree to the rounding the line searches see.
    np.testing.assert_allclose(
        fused.objective_history_, whole.objective_history_, rtol=1e-9
    )
    np.testing.assert_allclose(
        fused._expert_pool.coef_, whole._expert_pool.coef_, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        fused.predict_proba(X), whole.predict_proba(X), rtol=1e-6, atol=1e-9
    )


def test_one_newton_step_per_m_step_never_decreases_the_objective(
    data, newton_step_counts, assert_never_decreases
):
    # The fused EM's logistic M-step is one line-searched Newton step (a
    # generalised EM): the objective still never decreases.
    X, y, sample_weight = data
    steps = newton_step_counts
    moe = MixtureOfExpertsClassifier(
        n_experts=4, random_state=0, tol=0.0, max_iter=30, split_merge=0
    )
    with pytest.warns(ConvergenceWarning):
        moe.fit(X, y, sample_weight=sample_weight)
    assert_never_decreases(moe.objective_history_)
    # The last run's M-steps took one step each.
    assert steps[-30:] == [1] * 30
