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
    "weighted_grams",
]

# Rows per chunk when accumulating Gram matrices: large enough for an
# efficient GEMM, small enough that the packed products of one chunk stay
# in cache-friendly memory (chunk * p * (p + 1) / 2 floats).
_GRAM_CHUNK_ROWS = 4096
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


def _shifted(a, axis):
    """Return ``(a - max, max)`` along ``axis``, the max kept as a dimension.

    A row whose entries are all ``-inf`` gets a max of 0, so that it stays
    ``-inf`` instead of producing nan from ``(-inf) - (-inf)``.
    """
    xp = get_namespace(a)
    a_max = reduce_max(a, axis=axis, keepdims=True)
    a_max = xp.where(xp.isfinite(a_max), a_max, xp.zeros_like(a_max))
    return a - a_max, a_max


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
    shifted, a_max = _shifted(a, axis)
    # In place where NumPy allows it: these arrays are as large as the
    # data, and each fresh one costs a pass of page faults.
    exp = xp.exp(shifted, out=shifted) if xp is np else xp.exp(shifted)
    out = xp.log(reduce_sum(exp, axis=axis, keepdims=True)) + a_max
    if not keepdims:
        out = xp.squeeze(out, axis=axis)
    return out


def log_softmax(a, *, axis=-1):
    """Return ``a - logsumexp(a)`` along ``axis`` (log-probabilities)."""
    xp = get_namespace(a)
    shifted, _ = _shifted(a, axis)
    log_norm = xp.log(reduce_sum(xp.exp(shifted), axis=axis, keepdims=True))
    return shifted - log_norm


# ---------------------------------------------------------------------------
# Linear algebra
# ---------------------------------------------------------------------------


def add_intercept(X):
    """Return ``[X, 1]``: the design matrix with a trailing column of ones."""
    xp = get_namespace(X)
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype)
    return xp.concat([X, ones], axis=1)


def _pair_offsets(p):
    """Return where each row block of the packed products starts.

    The packed products of a p-column design list, for each column ``a``,
    the products ``x_a x_b`` for ``b >= a``: the order of
    ``np.triu_indices(p)``. Block ``a`` spans ``offsets[a]:offsets[a + 1]``.
    """
    return np.concatenate([[0], np.cumsum(np.arange(p, 0, -1))]).tolist()


def _packed_products_into(Xt, out):
    """Write the packed products of the columns of ``X`` into ``out``.

    ``Xt`` is X transposed, (p, n_rows) and C-contiguous, so every product
    is a contiguous row operation: one broadcast multiply per column of X
    (p calls, not p (p + 1) / 2 gathers; measured 20x faster than fancy
    indexing at n=1e6, p=11).
    """
    offsets = _pair_offsets(Xt.shape[0])
    for a in range(Xt.shape[0]):
        np.multiply(Xt[a], Xt[a:], out=out[offsets[a] : offsets[a + 1]])
    return out


def _unpack_gram(packed, p):
    """Return symmetric (m, p, p) matrices from packed (n_pairs, m) sums."""
    xp = get_namespace(packed)
    rows, cols = np.triu_indices(p)
    gram = xp.zeros((packed.shape[1], p, p), dtype=packed.dtype)
    gram[:, rows, cols] = packed.T
    gram[:, cols, rows] = packed.T
    return gram


def weighted_grams(X, Vs):
    """Return the weighted Gram matrices ``X.T @ diag(V[:, m]) @ X`` of many V.

    One pass over X serves them all: each chunk of rows forms its packed
    products ``x_p x_q`` (p <= q) once, in a buffer that stays in cache, and
    one GEMM per V turns them into all of V's Gram matrices (DESIGN.md §6).
    The EM loop asks for the experts' and the gates' Gram matrices in one
    call, so an iteration reads X once for all of them, and no products of
    the whole data are ever stored: memory stays that of the chunk.

    Parameters
    ----------
    X : array of shape (n_samples, p)
        Design matrix.
    Vs : list of arrays of shape (n_samples, m_j)
        Row weights, one column per Gram matrix.

    Returns
    -------
    grams : list of arrays of shape (m_j, p, p)
        Symmetric Gram matrices, one array per V, in X's precision.
    """
    n_samples, p = X.shape
    n_pairs = p * (p + 1) // 2
    # Sums are accumulated chunk by chunk in float64: one float32 sum over a
    # million rows loses about three digits (DESIGN.md §6).
    packed = [np.zeros((n_pairs, V.shape[1]), dtype=np.float64) for V in Vs]
    buffer = np.empty((n_pairs, min(_GRAM_CHUNK_ROWS, n_samples)), dtype=X.dtype)
    for start in range(0, n_samples, _GRAM_CHUNK_ROWS):
        stop = min(start + _GRAM_CHUNK_ROWS, n_samples)
        products = _packed_products_into(
            np.ascontiguousarray(X[start:stop].T), buffer[:, : stop - start]
        )
        for total, V in zip(packed, Vs, strict=True):
            total += products @ V[start:stop]
    return [_unpack_gram(total.astype(X.dtype, copy=False), p) for total in packed]


def weighted_gram(X, V):
    """Return one weighted Gram matrix ``X.T @ diag(V[:, m]) @ X`` per column m.

    Parameters
    ----------
    X : array of shape (n_samples, p)
        Design matrix.
    V : array of shape (n_samples, m)
        Row weights, one column per Gram matrix.

    Returns
    -------
    gram : array of shape (m, p, p)
        Symmetric Gram matrices (see :func:`weighted_grams`).
    """
    return weighted_grams(X, [V])[0]


class Design:
    """A design matrix that stays fixed during a fit.

    Holds X, with a trailing column of ones when ``intercept``, built once
    per fit and shared by the gate and the experts that see the same columns.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    intercept : bool
        Append a column of ones.
    """

    def __init__(self, X, *, intercept):
        self.X = add_intercept(X) if intercept else X

    def gram(self, V):
        """Return ``X.T @ diag(V[:, m]) @ X`` for every column m of V."""
        return weighted_gram(self.X, V)

    def grams(self, Vs):
        """Return the Gram matrices of several V from one pass over X."""
        return weighted_grams(self.X, Vs)


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
    # The systems are small: solve them in float64 whatever the data's
    # precision (a float32 Cholesky of a near-singular Hessian gave Newton
    # steps that lost 99% of their gain).
    dtype = B.dtype
    A, B = A.astype(np.float64), B.astype(np.float64)
    try:
        L = xp.linalg.cholesky(A)
        out = xp.squeeze(
            np.linalg.solve(xp.swapaxes(L, -1, -2), np.linalg.solve(L, B[..., None])),
            axis=-1,
        )
    except np.linalg.LinAlgError:
        out = xp.empty_like(B)
        for m in range(A.shape[0]):
            out[m] = np.linalg.lstsq(A[m], B[m], rcond=None)[0]
    return out.astype(dtype, copy=False)
