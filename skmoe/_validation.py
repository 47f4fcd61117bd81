"""Input validation of the estimators: NumPy, torch tensors and Dask arrays.

The checks of scikit-learn's ``validate_data`` and ``_check_sample_weight``
for every kind of input a fit or a prediction takes, with one set of
messages (scikit-learn's words where it has them). As ``validate_data``
does, the functions take the estimator: they read its public parameters
(``backend``, ``device``) and record or check ``n_features_in_`` and
``feature_names_in_``; they never call its private methods.

EM squares the inputs (standardisation, Gram matrices, residuals), so
values whose squares summed over the rows would overflow are refused, as
NaN is: they would leave a silently useless fit.
"""

import math
from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from skmoe._backend import (
    at_least_dtype,
    get_namespace,
    is_tensor,
    move_to,
    numpy_dtype,
    resolve_device,
    tensor_to_numpy,
)
from skmoe._dask import import_dask_array, rows_like

__all__ = [
    "check_continuation",
    "check_dask_features",
    "check_dask_fit",
    "check_structure",
    "mean_weight",
    "relative_weights",
    "resolve_gate_features",
    "resolve_hierarchy",
    "same_parameters",
    "validate_dask_fit_data",
    "validate_fit_data",
    "validate_predict_data",
    "validate_tensor",
    "validate_tensor_target",
]


# ---------------------------------------------------------------------------
# Messages shared by every kind of input
# ---------------------------------------------------------------------------


def _square_limit(dtype, n_rows):
    """Return the largest magnitude whose squares summed over the rows stay finite."""
    return np.sqrt(np.finfo(dtype).max / max(n_rows, 1))


def _check_magnitude(name, largest, limit):
    """Raise if ``largest`` (of X or y) exceeds :func:`_square_limit`."""
    if largest > limit:
        hint = "rescale X, e.g. with StandardScaler." if name == "X" else "rescale y."
        raise ValueError(
            f"Input {name} contains a value too large for the squares EM "
            f"computes (|{name.lower()}| > {limit:.3g}); {hint}"
        )


def _check_weight_summary(*, finite, smallest, largest):
    """Raise unless the weights are finite, non-negative and not all zero.

    In scikit-learn's words: its ``_check_sample_weight`` refuses in-memory
    weights so, and dask weights are checked from their summary alike.
    """
    if not finite:
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if smallest < 0:
        raise ValueError("Negative values in data passed to `sample_weight`.")
    if largest <= 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")


def _n_features_error(estimator, n_features):
    # scikit-learn's words (validate_data's feature count check).
    return ValueError(
        f"X has {n_features} features, but {type(estimator).__name__} is "
        f"expecting {estimator.n_features_in_} features as input."
    )


# ---------------------------------------------------------------------------
# In-memory data (NumPy and torch)
# ---------------------------------------------------------------------------


def validate_fit_data(estimator, X, y, sample_weight, *, reset):
    """Return a fit's ``X``, ``y`` and ``sample_weight``, checked.

    A tensor ``X`` of the torch backend is checked on its own device
    (:func:`validate_tensor`); any other input by ``validate_data`` (a
    tensor is then copied to NumPy). ``X`` keeps float32 or float64;
    weights are non-negative, finite, not all zero, in X's precision.

    Parameters
    ----------
    estimator : BaseMixtureOfExperts
        Its ``backend`` decides where a tensor is validated; its feature
        record is set (``reset=True``) or checked.
    X : array-like or tensor of shape (n_samples, n_features)
    y : array-like or tensor of shape (n_samples,)
    sample_weight : array-like, tensor or None
    reset : bool
        Record the features (a new fit) rather than check them.

    Returns
    -------
    X : ndarray or tensor of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    sample_weight : ndarray of shape (n_samples,)
    """
    classifier = is_classifier(estimator)
    y, sample_weight = tensor_to_numpy(y), tensor_to_numpy(sample_weight)
    if is_tensor(X) and estimator.backend == "torch":
        X = validate_tensor(estimator, X, reset=reset)
        y = validate_tensor_target(y, X, classifier=classifier)
    else:
        X, y = validate_data(
            estimator,
            tensor_to_numpy(X),
            y,
            reset=reset,
            dtype=[np.float64, np.float32],
            y_numeric=not classifier,
        )
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=numpy_dtype(X.dtype), ensure_non_negative=True
    )
    _check_weight_summary(
        finite=bool(np.all(np.isfinite(sample_weight))),
        smallest=float(np.min(sample_weight)),
        largest=float(np.max(sample_weight)),
    )
    limit = _square_limit(numpy_dtype(X.dtype), X.shape[0])
    xp = get_namespace(X)
    if math.prod(X.shape):
        _check_magnitude("X", float(xp.max(xp.abs(X))), limit)
    if not classifier and y.dtype.kind not in "biuf":
        # validate_data converts object targets only; strings get
        # check_array's message, not a NumPy error from the checks below.
        y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
    if not classifier and y.size:
        _check_magnitude("y", np.max(np.abs(y)), limit)
    return X, y, sample_weight


def validate_tensor(estimator, X, *, reset):
    """Validate a tensor on its own device, without a copy to NumPy.

    The checks of ``validate_data`` for arrays: 2-d, not empty, finite;
    float32 and float64 are kept, any other dtype becomes float64. A tensor
    that requires grad is detached (no gradient flows through the fit or
    the predictions). ``validate_data`` itself only keeps the record of the
    features (``n_features_in_``; a tensor has no feature names).
    """
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D tensor, got a tensor of shape {tuple(X.shape)}."
        )
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            f"Found a tensor of shape {tuple(X.shape)}, while at least one "
            "sample and one feature are required."
        )
    # EM's in-place arithmetic (out=) is not differentiable: a tensor that
    # requires grad is read as data, its graph left alone.
    X = X.detach()
    xp = get_namespace(X)
    if xp.isdtype(X.dtype, "complex floating"):
        # As check_array refuses NumPy input: casting would drop the
        # imaginary part.
        raise ValueError(f"Complex data not supported\n{X!r}\n")
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    if X.dtype not in (xp.float32, xp.float64):
        X = xp.astype(X, xp.float64)
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError("Input X contains NaN or infinity.")
    return X


def validate_tensor_target(y, X, *, classifier):
    """Validate ``y`` (NumPy) for a tensor ``X``, as ``validate_data`` does."""
    y = check_array(
        column_or_1d(y, warn=True),
        ensure_2d=False,
        dtype=None if classifier else "numeric",
        input_name="y",
    )
    check_consistent_length(X, y)
    return y


def validate_predict_data(estimator, X, y=None):
    """Return a fitted estimator's ``X`` (and ``y``) checked, for the backend.

    ``X`` lands on the backend's device, in the wider of its precision and
    the model's (NumPy would promote a float32 input of a float64 model
    anyway). A tensor input of the torch backend is validated on its own
    device; any other input by ``validate_data`` (a tensor is then copied
    to NumPy).
    """
    check_is_fitted(estimator)
    classifier = is_classifier(estimator)
    device = resolve_device(estimator.backend, estimator.device)
    if device is not None and is_tensor(X):
        X = validate_tensor(estimator, X, reset=False)
        if y is not None:
            y = validate_tensor_target(tensor_to_numpy(y), X, classifier=classifier)
    elif y is None:
        X = validate_data(
            estimator, tensor_to_numpy(X), reset=False, dtype=[np.float64, np.float32]
        )
    else:
        X, y = validate_data(
            estimator,
            tensor_to_numpy(X),
            tensor_to_numpy(y),
            reset=False,
            dtype=[np.float64, np.float32],
            y_numeric=not classifier,
        )
    X = move_to(at_least_dtype(X, estimator.gate_.coef[0].dtype), device)
    return X if y is None else (X, y)


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


def mean_weight(sample_weight):
    """Return the mean of non-negative weights, without overflow or underflow.

    The weights are divided by their largest first: their sum could
    overflow (weights near the largest float) and the mean of subnormal
    weights would lose its digits.
    """
    largest = float(np.max(sample_weight))
    return largest * float(np.mean(sample_weight / largest, dtype=np.float64))


def relative_weights(sample_weight, scale):
    """Return ``sample_weight / scale`` in the weights' dtype (a new array).

    EM sees weights of mean one (``scale`` is the mean weight), so that only
    relative weights matter: the penalties (gate, logistic experts, the
    variance prior) and the starvation threshold count in rows of average
    weight, and multiplying every weight by a constant changes nothing.
    """
    return (sample_weight / scale).astype(sample_weight.dtype, copy=False)


# ---------------------------------------------------------------------------
# Parameters of a continued fit
# ---------------------------------------------------------------------------


def same_parameters(a, b):
    """Return whether two parameter values are equal (estimators by parameters).

    Estimators are equal when of the same type with equal parameters, so a
    clone equals its original; arrays compare by value. Two
    ``RandomState`` instances count as equal: a clone's generator is a copy
    that need not be in the same state.
    """
    if a is b:
        return True
    if hasattr(a, "get_params") and not isinstance(a, type):
        return type(a) is type(b) and same_parameters(
            a.get_params(deep=False), b.get_params(deep=False)
        )
    if isinstance(a, np.random.RandomState) and isinstance(b, np.random.RandomState):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_parameters(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            same_parameters(x, y) for x, y in zip(a, b, strict=True)
        )
    try:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return bool(np.array_equal(a, b))
        return bool(a == b)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------
# Parameters that depend on the data
# ---------------------------------------------------------------------------


def resolve_hierarchy(hierarchy, n_experts):
    """Return the tree of gates as a tuple of branching factors.

    From the ``hierarchy`` and ``n_experts`` parameters (None and None: three
    experts).
    """
    if hierarchy is None:
        n_experts = 3 if n_experts is None else n_experts
        return (n_experts,)
    hierarchy_param, hierarchy = hierarchy, tuple(hierarchy)
    # (1,) is one expert, as n_experts=1 (a grid over hierarchy may
    # include it). A 1 inside a deeper tree would be a gate with a single
    # child, which decides nothing: refused rather than silently dropped,
    # so that hierarchy_ is always the tree asked for.
    if hierarchy != (1,) and (
        len(hierarchy) == 0
        or not all(
            isinstance(b, Integral) and not isinstance(b, bool) and b >= 2
            for b in hierarchy
        )
    ):
        raise ValueError(
            "hierarchy must be (1,) (one expert) or a non-empty tuple of "
            "integers >= 2 (the branching factor of each level; a level "
            "of 1 would be a gate with a single child), got "
            f"{hierarchy_param!r}."
        )
    n_leaves = math.prod(hierarchy)
    if n_experts is not None and n_experts != n_leaves:
        raise ValueError(
            f"n_experts={n_experts} does not match hierarchy="
            f"{hierarchy}, which has {n_leaves} leaves; leave n_experts "
            "unset (None) or set it to the number of leaves."
        )
    return hierarchy


def resolve_gate_features(gate_features, n_features, feature_names=None):
    """Return the column indices the gate sees.

    From the ``gate_features`` parameter; ``feature_names`` are the names
    seen in fit (None: X had none).
    """
    if gate_features is None:
        return np.arange(n_features)
    features = np.asarray(gate_features)
    if features.ndim != 1:
        raise ValueError(
            "gate_features must be a 1-d list of column indices, names or "
            f"a boolean mask, got an array of shape {features.shape}."
        )
    if features.dtype == bool:
        if features.shape[0] != n_features:
            raise ValueError(
                f"gate_features is a boolean mask of length "
                f"{features.shape[0]}, but X has {n_features} features."
            )
        return np.flatnonzero(features)
    if features.shape[0] == 0:
        return np.arange(0)
    if features.dtype.kind in "OUS":
        names = feature_names
        if names is None:
            raise ValueError(
                "gate_features names columns, but X has no feature names; "
                "pass a DataFrame or give column indices."
            )
        known = set(names)
        missing = [str(f) for f in features if f not in known]
        if missing:
            raise ValueError(
                f"gate_features {missing} are not feature names seen in fit."
            )
        # Sorted and without repeats, as integer indices are.
        return np.unique([np.flatnonzero(names == f)[0] for f in features])
    if features.dtype.kind not in "iu":
        raise ValueError(
            "gate_features must hold integer indices, feature names or "
            f"booleans, got dtype {features.dtype}."
        )
    if features.min() < -n_features or features.max() >= n_features:
        raise ValueError(
            f"gate_features indices must lie in [0, {n_features}), got "
            f"{features.tolist()}."
        )
    return np.unique(features % n_features)


def check_structure(
    shape, *, hierarchy, n_experts, gate_features, feature_names, top_k
):
    """Return the tree and the gate's columns of a fit, checked against the data.

    ``top_k`` is the parameter under top-k routing (None otherwise): it may
    not exceed the number of experts, nor may the experts exceed the rows.
    """
    n_samples, n_features = shape
    hierarchy = resolve_hierarchy(hierarchy, n_experts)
    n_leaves = math.prod(hierarchy)
    if top_k is not None and top_k > n_leaves:
        raise ValueError(
            f"top_k={top_k} is larger than the number of experts ({n_leaves})."
        )
    if n_samples < n_leaves:
        raise ValueError(
            f"n_samples={n_samples} should be >= n_experts={n_leaves}: "
            "every expert needs at least one sample."
        )
    return hierarchy, resolve_gate_features(gate_features, n_features, feature_names)


def check_continuation(gate, hierarchy, gate_idx, estimator_changed, how):
    """Refuse to continue a fit whose structure the parameters changed.

    The gates' coefficients are sized by the tree and the gate's columns,
    and the experts are the fitted ones: a continued fit (``how``:
    warm_start or partial_fit) cannot change the fitted ``gate``'s
    ``hierarchy`` or columns (``gate_idx``), nor the experts' template
    (``estimator_changed``).
    """
    if tuple(gate.hierarchy) != hierarchy:
        raise ValueError(
            f"{how} cannot change the number of experts or the "
            f"hierarchy (fitted {gate.hierarchy}, asked {hierarchy}); "
            "fit afresh (warm_start=False) to change them."
        )
    if not np.array_equal(gate.feature_indices, gate_idx):
        raise ValueError(
            f"{how} cannot change gate_features (fitted columns "
            f"{gate.feature_indices.tolist()}, asked "
            f"{gate_idx.tolist()}); fit afresh (warm_start=False) to "
            "change them."
        )
    if estimator_changed:
        raise ValueError(
            f"{how} cannot change estimator: the experts are the fitted "
            "ones; fit afresh (warm_start=False) to change them."
        )


# ---------------------------------------------------------------------------
# Dask arrays
# ---------------------------------------------------------------------------


def check_dask_features(estimator, X, *, reset):
    """Record (``reset``) or check ``n_features_in_`` for a dask array.

    A dask array has no feature names: a new fit forgets any it recorded.
    """
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.ndim != 2 or X.shape[1] != estimator.n_features_in_:
        raise _n_features_error(estimator, X.shape[-1])


def check_dask_fit(backend, generic_experts):
    """Refuse a fit on a dask array that its blocks' statistics cannot serve.

    EM on blocks runs with NumPy, on experts whose M-step works on summed
    statistics; ``generic_experts`` describes the experts where it does
    not (None: it does).
    """
    if backend != "numpy":
        raise ValueError(
            "A dask array is fitted on its blocks with NumPy: use "
            f"backend='numpy' (got backend={backend!r})."
        )
    if generic_experts is not None:
        raise TypeError(
            "Fitting a dask array needs experts whose M-step works on "
            "sufficient statistics: LinearRegression or Ridge (regressor), "
            "LogisticRegression (classifier), or the default; got "
            f"{generic_experts}. Fit generic experts on an "
            "in-memory array (joblib's Dask backend can run their fits "
            "on the cluster)."
        )


def validate_dask_fit_data(X, y, sample_weight, *, classifier):
    """Validate a dask-array fit's data; return it chunked by rows, float64.

    The checks of :func:`validate_fit_data`, computed on the blocks in one
    pass: 2-d numeric X with known chunk sizes, finite values, non-negative
    weights with a positive sum, and no value whose square would overflow.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    y : array-like or dask.array.Array of shape (n_samples,)
    sample_weight : array-like, dask.array.Array or None
    classifier : bool
        Targets are class labels (not checked for finiteness or scale).

    Returns
    -------
    X : dask.array.Array of float64, one chunk across the columns
    y : dask.array.Array in X's row chunks
    sample_weight : dask.array.Array of float64 in X's row chunks
        Divided by ``scale``: their mean is one.
    scale : float
        The mean of the given weights (one for None).
    """
    da = import_dask_array()
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D dask array, got an array of shape {X.shape}; X must "
            "have shape (n_samples, n_features)."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"dask array X has dtype {X.dtype}; a numeric dtype is required."
        )
    if any(np.isnan(size) for size in X.shape):
        raise ValueError(
            "dask array X has unknown chunk sizes; call X.compute_chunk_sizes() first."
        )
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(
            f"Found array with shape {X.shape}, while at least one sample and "
            "one feature are required."
        )
    X = X.astype(np.float64).rechunk({1: -1})
    y = rows_like(y, X, "y", dtype=None if classifier else np.float64)
    if sample_weight is None:
        sample_weight = da.ones(X.shape[0], chunks=(X.chunks[0],))
    else:
        sample_weight = rows_like(sample_weight, X, "sample_weight", np.float64)

    checks = {
        "X finite": da.isfinite(X).all(),
        "X max": abs(X).max(),
        "weight finite": da.isfinite(sample_weight).all(),
        "weight min": sample_weight.min(),
        "weight max": sample_weight.max(),
        "weight sum": sample_weight.sum(),
    }
    if not classifier:
        checks["y finite"] = da.isfinite(y).all()
        checks["y max"] = abs(y).max()
    (found,) = da.compute(checks)
    if not found["X finite"]:
        raise ValueError("Input X contains NaN or infinity.")
    if not classifier and not found["y finite"]:
        raise ValueError("Input y contains NaN or infinity.")
    _check_weight_summary(
        finite=found["weight finite"],
        smallest=found["weight min"],
        largest=found["weight max"],
    )
    limit = _square_limit(np.float64, X.shape[0])
    _check_magnitude("X", found["X max"], limit)
    if not classifier:
        _check_magnitude("y", found["y max"], limit)
    # The weights relative to their mean, as in memory: divided by their
    # largest first when their sum overflowed or underflowed (one more pass).
    largest = float(found["weight max"])
    total = float(found["weight sum"])
    if np.isfinite(total) and total >= np.finfo(np.float64).tiny:
        scale = total / X.shape[0]
    else:
        scale = largest * float((sample_weight / largest).mean().compute())
    return X, y, sample_weight / scale, scale
