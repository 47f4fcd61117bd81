"""Array namespace and the array operations the numerics need.

Every array operation of the gate, the E-step and the vectorized experts goes
through this module, so that another array library (torch, DESIGN.md §5) can
be slotted in here without touching the maths. For now the namespace is
NumPy; the helpers below use only what the Python array API standard offers,
plus the few operations it lacks (``logsumexp``, weighted Gram matrices,
batched solves), written once here.
"""

import numpy as np

__all__ = [
    "Design",
    "DesignCache",
    "add_intercept",
    "batched_solve",
    "get_namespace",
    "log_softmax",
    "logsumexp",
    "reduce_max",
    "reduce_sum",
    "weighted_gram",
]

# Rows per chunk when accumulating Gram matrices: large enough for an
# efficient GEMM, small enough that the packed products of one chunk stay
# in cache-friendly memory (chunk * p * (p + 1) / 2 floats).
_GRAM_CHUNK_ROWS = 16384
# The packed products of a design are kept for the whole fit when they take
# at most this much memory; larger designs recompute them chunk by chunk.
_MAX_CACHED_PRODUCTS_BYTES = 512 * 2**20
# NumPy reduces a short last axis with one inner loop per row; looping over
# the few columns instead is much faster (measured here on (10000, 4, 2):
# max 2.5 ms against 0.11 ms). Axes up to this length are looped.
_LOOPED_REDUCTION_MAX = 8
# Below this many elements the loop's per-call overhead outweighs its gain.
_LOOPED_REDUCTION_MIN_SIZE = 4096


def get_namespace(*arrays):
    """Return the array namespace of ``arrays`` (NumPy for now)."""
    return np


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------


def _reduce(ufunc, a, axis, keepdims):
    xp = get_namespace(a)
    axis = axis % a.ndim
    if (
        a.shape[axis] > _LOOPED_REDUCTION_MAX
        or a.shape[axis] == 0
        or a.size < _LOOPED_REDUCTION_MIN_SIZE
    ):
        return ufunc.reduce(a, axis=axis, keepdims=keepdims)
    a = xp.moveaxis(a, axis, -1)
    out = xp.asarray(a[..., 0], copy=True)
    for column in range(1, a.shape[-1]):
        ufunc(out, a[..., column], out=out)
    return xp.expand_dims(out, axis=axis) if keepdims else out


def reduce_max(a, *, axis=-1, keepdims=False):
    """Return the maximum along ``axis`` (fast for short axes)."""
    return _reduce(np.maximum, a, axis, keepdims)


def reduce_sum(a, *, axis=-1, keepdims=False):
    """Return the sum along ``axis`` (fast for short axes)."""
    return _reduce(np.add, a, axis, keepdims)


def logsumexp(a, *, axis=-1, keepdims=False):
    """Return ``log(sum(exp(a)))`` along ``axis``, stable for ``-inf`` rows.

    Parameters
    ----------
    a : array of shape (..., m, ...)
        Log-values.
    axis : int, default=-1
        Axis to reduce.
    keepdims : bool, default=False
        Keep the reduced axis with length one.

    Returns
    -------
    out : array
        Reduced log-sum; ``-inf`` where every entry along ``axis`` is ``-inf``.
    """
    xp = get_namespace(a)
    a_max = reduce_max(a, axis=axis, keepdims=True)
    # A row of -inf must stay -inf without producing nan from (-inf) - (-inf).
    a_max = xp.where(xp.isfinite(a_max), a_max, xp.zeros_like(a_max))
    out = xp.log(reduce_sum(xp.exp(a - a_max), axis=axis, keepdims=True)) + a_max
    if not keepdims:
        out = xp.squeeze(out, axis=axis)
    return out


def log_softmax(a, *, axis=-1):
    """Return ``a - logsumexp(a)`` along ``axis`` (log-probabilities)."""
    return a - logsumexp(a, axis=axis, keepdims=True)


# ---------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------


def add_intercept(X):
    """Return ``[X, 1]``: the design matrix with a trailing column of ones."""
    xp = get_namespace(X)
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype)
    return xp.concat([X, ones], axis=1)


def _packed_products(X, rows, cols):
    """Return the products ``x_p * x_q`` for the pairs ``(rows, cols)``."""
    return X[:, rows] * X[:, cols]


def weighted_gram(X, V, *, products=None):
    """Return one weighted Gram matrix ``X.T @ diag(V[:, m]) @ X`` per column m.

    All ``m`` matrices come from one GEMM per chunk of rows against the
    packed products ``x_p x_q`` (p <= q), which reads X once instead of once
    per column of ``V`` (DESIGN.md §6).

    Parameters
    ----------
    X : array of shape (n_samples, p)
        Design matrix.
    V : array of shape (n_samples, m)
        Row weights, one column per Gram matrix.
    products : array of shape (n_samples, p * (p + 1) / 2), default=None
        The packed products of X, when precomputed (:class:`Design`).

    Returns
    -------
    gram : array of shape (m, p, p)
        Symmetric Gram matrices.
    """
    xp = get_namespace(X, V)
    n_samples, p = X.shape
    rows, cols = np.triu_indices(p)
    if products is not None:
        packed = V.T @ products
    else:
        packed = xp.zeros((V.shape[1], rows.shape[0]), dtype=X.dtype)
        for start in range(0, n_samples, _GRAM_CHUNK_ROWS):
            stop = min(start + _GRAM_CHUNK_ROWS, n_samples)
            packed += V[start:stop].T @ _packed_products(X[start:stop], rows, cols)
    gram = xp.zeros((V.shape[1], p, p), dtype=X.dtype)
    gram[:, rows, cols] = packed
    gram[:, cols, rows] = packed
    return gram


class Design:
    """A design matrix that stays fixed during a fit.

    Holds X (with a trailing column of ones when ``intercept``) and, within
    a memory budget, its packed pairwise products, so that every weighted
    Gram matrix of the fit is one GEMM.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    intercept : bool
        Append a column of ones.
    """

    def __init__(self, X, *, intercept):
        self.X = add_intercept(X) if intercept else X
        self._products = None

    def gram(self, V):
        """Return ``X.T @ diag(V[:, m]) @ X`` for every column m of V."""
        n_samples, p = self.X.shape
        n_packed = p * (p + 1) // 2
        nbytes = n_samples * n_packed * self.X.dtype.itemsize
        if self._products is None and nbytes <= _MAX_CACHED_PRODUCTS_BYTES:
            rows, cols = np.triu_indices(p)
            self._products = _packed_products(self.X, rows, cols)
        return weighted_gram(self.X, V, products=self._products)


class DesignCache:
    """The designs of one fit, keyed by columns and intercept.

    The EM loop owns one for the duration of ``fit``: the gate and the
    experts ask it for their design, and share one when they see the same
    columns. Nothing of it outlives the fit.
    """

    def __init__(self, X):
        self.source = X
        self._designs = {}

    def get(self, *, columns=None, intercept=True):
        """Return the design of ``source[:, columns]`` (all columns if None)."""
        if columns is not None and len(columns) == self.source.shape[1]:
            if np.array_equal(columns, np.arange(self.source.shape[1])):
                columns = None
        key = (None if columns is None else tuple(columns), intercept)
        if key not in self._designs:
            X = self.source if columns is None else self.source[:, columns]
            self._designs[key] = Design(X, intercept=intercept)
        return self._designs[key]


def batched_solve(A, B):
    """Solve ``A[m] @ x[m] = B[m]`` for a stack of symmetric matrices.

    Uses a batched Cholesky factorisation; a matrix that is not numerically
    positive definite falls back to the minimum-norm least-squares solution
    (what ``LinearRegression`` returns for collinear features).

    Parameters
    ----------
    A : array of shape (m, p, p)
        Symmetric positive semi-definite matrices.
    B : array of shape (m, p)
        Right-hand sides.

    Returns
    -------
    x : array of shape (m, p)
    """
    xp = get_namespace(A, B)
    try:
        L = xp.linalg.cholesky(A)
        return xp.squeeze(
            np.linalg.solve(xp.swapaxes(L, -1, -2), np.linalg.solve(L, B[..., None])),
            axis=-1,
        )
    except np.linalg.LinAlgError:
        out = xp.empty_like(B)
        for m in range(A.shape[0]):
            out[m] = np.linalg.lstsq(A[m], B[m], rcond=None)[0]
        return out
