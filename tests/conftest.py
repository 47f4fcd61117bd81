"""Seeded data shared by the tests: small, fast, drawn from known mixtures."""

import numpy as np
import pytest

from skmoe.datasets import (
    make_hme_regression,
    make_moe_classification,
    make_moe_regression,
)


@pytest.fixture(scope="session")
def moe_regression():
    """1,000 rows from a 3-expert mixture, 4 features, with the truth."""
    return make_moe_regression(
        n_samples=1000, n_features=4, n_experts=3, random_state=0, return_truth=True
    )


@pytest.fixture(scope="session")
def moe_classification():
    """1,000 rows, 3 classes, from a 3-expert mixture, 4 features, with the truth."""
    return make_moe_classification(
        n_samples=1000,
        n_features=4,
        n_experts=3,
        n_classes=3,
        random_state=0,
        return_truth=True,
    )


@pytest.fixture(scope="session")
def hme_regression():
    """1,000 rows from a (2, 2) tree, 4 features, with the truth."""
    return make_hme_regression(
        n_samples=1000,
        n_features=4,
        hierarchy=(2, 2),
        random_state=0,
        return_truth=True,
    )


# EM for linear-Gaussian and logistic experts is a MAP-EM: each iteration may
# not decrease the penalised log-likelihood. Rounding is the only slack.
MONOTONE_RTOL = 1e-10


def _assert_never_decreases(history):
    history = np.asarray(history)
    slack = MONOTONE_RTOL * np.maximum(1.0, np.abs(history[:-1]))
    drops = history[:-1] - history[1:]
    assert np.all(drops <= slack), f"largest drop {drops.max():.3e}"


@pytest.fixture(scope="session")
def assert_never_decreases():
    """Assert that an EM history never falls by more than rounding."""
    return _assert_never_decreases


def _float32_tolerance(fit_predict, X, y, *, n_perturbations=3, seed=0):
    """Return the absolute error float32 rounding may cause in a fit's output.

    ``fit_predict(X, y)`` fits a model in float64 and returns its output on
    fixed rows. Two kinds of rounding bound a float32 fit, relative to the
    output's scale:

    - sums over the n rows carry a relative error up to ``n * eps`` (a
      float32 GEMM need not accumulate pairwise, and the BLAS kernel,
      chosen per CPU, decides the order);
    - line searches and Newton loops stop by comparing objectives known to
      ``eps`` relative; a smooth optimum is then located to
      ``sqrt(eps)`` relative only (the objective is flat to second order).

    The larger is amplified by the fit's conditioning, measured rather than
    assumed: the float64 fit is repeated with ``X`` (and a real-valued
    ``y``) perturbed by one float32 rounding, and the change of the output
    per unit of ``eps`` is the amplification factor (at least one).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    expected = np.asarray(fit_predict(X, y))
    eps = np.finfo(np.float32).eps
    rs = np.random.RandomState(seed)

    def perturb(a):
        return a * (1 + eps * rs.uniform(-1, 1, a.shape))

    changes = [
        np.max(
            np.abs(
                np.asarray(
                    fit_predict(perturb(X), perturb(y) if y.dtype.kind == "f" else y)
                )
                - expected
            )
        )
        for _ in range(n_perturbations)
    ]
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
    conditioning = max(max(changes) / (eps * scale), 1.0)
    return max(X.shape[0] * eps, np.sqrt(eps)) * conditioning * scale


@pytest.fixture(scope="session")
def float32_tolerance():
    """The error bound of a float32 fit's output against its float64 twin."""
    return _float32_tolerance


@pytest.fixture
def newton_step_counts(monkeypatch):
    """Record the Newton steps each M-step of the logistic experts takes.

    A list with one count per call of ``LogisticExperts.newton_steps``, in
    the order of the calls.
    """
    from skmoe._experts import LogisticExperts

    steps = []
    newton_steps = LogisticExperts.newton_steps

    def counted(self, take_step, *args, **kwargs):
        def step(*step_args):
            steps[-1] += 1
            return take_step(*step_args)

        steps.append(0)
        return newton_steps(self, step, *args, **kwargs)

    monkeypatch.setattr(LogisticExperts, "newton_steps", counted)
    return steps
