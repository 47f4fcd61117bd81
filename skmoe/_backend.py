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
    "add_intercept",
    "batched_solve",
    "get_namespace",
    "log_softmax",
    "logsumexp",
    "weighted_gram",
]

# Rows per chunk when accumulating Gram matrices: large enough for an
# efficient GEMM, small enough that the packed products of one chunk stay
# in cache-friendly memory (chunk * p * (p + 1) / 2 floats).
_GRAM_CHUNK_ROWS = 16384


def get_namespace(*arrays):
    """Return the array namespace of ``arrays`` (NumPy for now)."""
    return np


# ---------------------------------------------------------------------------
# Reductions in log space
# ---------------------------------------------------------------------------


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
    a_max = xp.max(a, axis=axis, keepdims=True)
    # A row of -inf must stay -inf without producing nan from (-inf) - (-inf).
    a_max = xp.where(xp.isfinite(a_max), a_max, xp.zeros_like(a_max))
    out = xp.log(xp.sum(xp.exp(a - a_max), axis=axis, keepdims=True)) + a_max
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


def weighted_gram(X, V):
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

    Returns
    -------
    gram : array of shape (m, p, p)
        Symmetric Gram matrices.
    """
    xp = get_namespace(X, V)
    n_samples, p = X.shape
    rows, cols = np.triu_indices(p)
    packed = xp.zeros((V.shape[1], rows.shape[0]), dtype=X.dtype)
    for start in range(0, n_samples, _GRAM_CHUNK_ROWS):
        stop = min(start + _GRAM_CHUNK_ROWS, n_samples)
        products = _packed_products(X[start:stop], rows, cols)
        packed += V[start:stop].T @ products
    gram = xp.zeros((V.shape[1], p, p), dtype=X.dtype)
    gram[:, rows, cols] = packed
    gram[:, cols, rows] = packed
    return gram


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
