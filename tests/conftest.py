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
