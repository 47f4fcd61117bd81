"""Input validation: in-memory and Dask data refused in the same words."""

import numpy as np
import pytest

from skmoe import MixtureOfExpertsRegressor
from skmoe._validation import validate_fit_data


def _bad_data(case):
    rng = np.random.RandomState(0)
    X, y, weight = rng.normal(size=(40, 2)), rng.normal(size=40), np.ones(40)
    if case == "infinite weight":
        weight[2] = np.inf
    elif case == "negative weight":
        weight[3] = -1.0
    elif case == "zero weights":
        weight[:] = 0.0
    elif case == "huge X":
        X[5, 1] = 1e160
    elif case == "huge y":
        y[7] = -1e160
    return X, y, weight


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("infinite weight", "Input sample_weight contains (NaN or )?infinity"),
        ("negative weight", "Negative values in data passed to `sample_weight`"),
        ("zero weights", "Sample weights must contain at least one non-zero"),
        ("huge X", "Input X contains a value too large for the squares"),
        ("huge y", "Input y contains a value too large for the squares"),
    ],
)
def test_in_memory_and_dask_data_get_the_same_message(case, match):
    da = pytest.importorskip("dask.array")
    from skmoe._validation import validate_dask_fit_data

    X, y, weight = _bad_data(case)
    with pytest.raises(ValueError, match=match) as in_memory:
        validate_fit_data(MixtureOfExpertsRegressor(), X, y, weight, reset=True)
    with pytest.raises(ValueError, match=match) as on_blocks:
        validate_dask_fit_data(
            da.from_array(X, chunks=(10, 2)), y, weight, classifier=False
        )
    if case != "infinite weight":
        # Dask says "NaN or infinity" (one pass checks both).
        assert str(in_memory.value) == str(on_blocks.value)


def test_validation_records_the_features_and_mutates_nothing():
    X, y, weight = _bad_data("none")
    originals = X.copy(), y.copy(), weight.copy()
    moe = MixtureOfExpertsRegressor()
    Xv, yv, wv = validate_fit_data(moe, X, y, weight, reset=True)
    np.testing.assert_array_equal(yv, y)
    assert moe.n_features_in_ == 2
    for given, original in zip((X, y, weight), originals, strict=True):
        np.testing.assert_array_equal(given, original)
    np.testing.assert_array_equal(Xv, X)
    np.testing.assert_array_equal(wv, weight)
