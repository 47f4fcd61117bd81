"""Array namespace, device and dtype, and the array operations the numerics need.

Every array operation of the gate, the E-step and the vectorized experts goes
through this module, written once against the Python array API standard
(docs/design.md §5): NumPy arrays are computed with NumPy itself, torch tensors
with the namespace of ``array-api-compat``. The operations the standard
lacks (``logsumexp``, ``einsum``, weighted Gram matrices, Cholesky solves,
top-k masks) are written here once, with a NumPy branch where NumPy has a
faster form (ufuncs with ``out=``).

This is the only module that imports torch and ``array-api-compat``, lazily,
inside functions: ``import skmoe`` and the whole NumPy path need neither.
Nothing global is set here (no default dtype or device; the thread counts
are ``_threads``'s, through :func:`torch_num_threads` for torch's).
"""

import functools
import sys

import numpy as np

__all__ = [
    "Design",
    "DesignCache",
    "add_intercept",
    "as_input_kind",
    "asarray_like",
    "astype",
    "at_least_dtype",
    "batched_solve",
    "device",
    "einsum",
    "get_namespace",
    "is_tensor",
    "log_softmax",
    "logsumexp",
    "move_to",
    "nonnegative_log",
    "numpy_dtype",
    "packed_products_into",
    "reduce_max",
    "reduce_sum",
    "resolve_device",
    "take",
    "target_like",
    "tensor_to_numpy",
    "to_device",
    "to_numpy",
    "top_k_mask",
    "torch_num_threads",
    "unpack_gram",
    "weighted_gram",
    "weighted_grams",
]

# Rows per chunk when accumulating Gram matrices: large enough for an
# efficient GEMM, small enough that the packed products of one chunk stay
# in cache-friendly memory (chunk * p * (p + 1) / 2 floats).
_GRAM_CHUNK_ROWS = 4096
# On an accelerator every chunk costs a few kernel launches: chunks there are
# as large as this many bytes of packed products allow.
_DEVICE_GRAM_CHUNK_BYTES = 1 << 28
# NumPy reduces a short last axis with one inner loop per row; looping over
# the few columns instead is much faster (benchmarks/README.md,
# "Measurements behind the code's choices"). Axes up to this length are
# looped.
_LOOPED_REDUCTION_MAX = 8
# Below this many elements the loop's per-call overhead outweighs its gain.
_LOOPED_REDUCTION_MIN_SIZE = 4096

_TORCH_EXTRA = 'pip install "skmoe[torch]"'


# ---------------------------------------------------------------------------
# Namespaces, devices and transfers
# ---------------------------------------------------------------------------


def _import_torch():
    """Return the torch module, or raise an ImportError naming the extra."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "backend='torch' needs PyTorch, which is not installed; install "
            f"the torch extra: {_TORCH_EXTRA}"
        ) from exc
    return torch


def _import_array_api_compat():
    try:
        import array_api_compat
    except ImportError as exc:
        raise ImportError(
            "backend='torch' needs array-api-compat, which is not installed; "
            f"install the torch extra: {_TORCH_EXTRA}"
        ) from exc
    return array_api_compat


def torch_num_threads(n_threads):
    """Set torch's CPU (intra-op) threads to ``n_threads``; return the former."""
    torch = _import_torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    return previous


def is_tensor(a):
    """Return whether ``a`` is a torch tensor (without importing torch).

    A program that never imported torch holds no tensor.
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def get_namespace(*arrays):
    """Return the array namespace of ``arrays``.

    NumPy arrays (and Python or NumPy scalars) give plain ``numpy``, without
    importing anything; other arrays (torch tensors) give the namespace of
    ``array_api_compat.array_namespace``.
    """
    arrays = [
        a
        for a in arrays
        if not (a is None or isinstance(a, (bool, int, float, np.generic)))
    ]
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np
    return _import_array_api_compat().array_namespace(*arrays)


def device(a):
    """Return the device of ``a``: ``"cpu"`` for a NumPy array."""
    return "cpu" if isinstance(a, np.ndarray) else a.device


def resolve_device(backend, device):
    """Return where the numerics of ``backend`` run.

    Parameters
    ----------
    backend : {"numpy", "torch"}
    device : str, torch.device or None
        For ``"torch"``, None means ``"cuda"`` when a CUDA device is
        available, else ``"cpu"``; ``"numpy"`` accepts only None or
        ``"cpu"``.

    Returns
    -------
    device : torch.device or None
        None for the NumPy backend.
    """
    if backend == "numpy":
        if device is None or (isinstance(device, str) and device == "cpu"):
            return None
        raise ValueError(
            f"device={device!r} needs backend='torch': the numpy backend runs "
            "on the CPU (leave device=None, or set it to 'cpu')."
        )
    torch = _import_torch()
    _import_array_api_compat()
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            "device must be None, a string such as 'cpu', 'cuda' or 'cuda:1', "
            f"or a torch.device; got {device!r}."
        )
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but torch sees no CUDA device.")
    return resolved


def to_numpy(a):
    """Return ``a`` as a NumPy array (a tensor is copied to the CPU if needed)."""
    if isinstance(a, np.ndarray):
        return a
    if is_tensor(a):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def tensor_to_numpy(a):
    """Return a tensor as a NumPy array, anything else unchanged.

    Inputs to scikit-learn's validation keep their kind (a DataFrame keeps
    its column names); only tensors, which it does not take, become NumPy.
    """
    return to_numpy(a) if is_tensor(a) else a


def move_to(a, device):
    """Return ``a`` on ``device`` (:func:`resolve_device`'s), dtype kept.

    None means a NumPy array; a torch device, a tensor on it.
    """
    if device is None:
        return to_numpy(a)
    return _import_torch().asarray(a, device=device)


def to_device(a, like):
    """Return ``a`` in the namespace and on the device of ``like``, dtype kept."""
    if isinstance(like, np.ndarray):
        return to_numpy(a)
    return get_namespace(like).asarray(a, device=like.device)


def asarray_like(a, like):
    """Return ``a`` in the namespace, on the device and with the dtype of ``like``.

    No copy is made when ``a`` already is so (the fit's own parameters); a
    fitted model's NumPy parameters are converted for a tensor input.
    """
    if isinstance(like, np.ndarray):
        return np.asarray(to_numpy(a), dtype=like.dtype)
    return get_namespace(like).asarray(a, dtype=like.dtype, device=like.device)


def target_like(y, like):
    """Return an encoded target on ``like``'s device.

    A float target takes ``like``'s dtype too (torch does not promote in
    matrix products); class indices stay integers.
    """
    move = asarray_like if y.dtype.kind == "f" else to_device
    return move(y, like)


def as_input_kind(a, like):
    """Return the result ``a`` as an array of the kind of the input ``like``.

    A tensor input gets a tensor on its own device; any other input (NumPy
    array, DataFrame, list) a NumPy array. Labels that torch cannot hold
    (strings, objects) stay a NumPy array.
    """
    if not is_tensor(like):
        return to_numpy(a)
    if isinstance(a, np.ndarray) and a.dtype.kind not in "biuf":
        return a
    return _import_torch().asarray(a, device=like.device)


def numpy_dtype(dtype):
    """Return the NumPy dtype of a NumPy or torch floating dtype."""
    if isinstance(dtype, np.dtype):
        return dtype
    return np.dtype(str(dtype).removeprefix("torch."))


def at_least_dtype(X, dtype):
    """Return ``X`` cast to ``dtype`` when that is the wider float, else ``X``.

    A model fitted in float64 predicts a float32 input in float64, as NumPy's
    promotion would; torch does not promote in matrix products, so the cast
    is made explicit for both.
    """
    if numpy_dtype(dtype).itemsize <= numpy_dtype(X.dtype).itemsize:
        return X
    if isinstance(X, np.ndarray):
        return X.astype(dtype)
    xp = get_namespace(X)
    return xp.astype(X, xp.float64)


def astype(a, dtype):
    """Return ``a`` as ``dtype`` (a dtype of its namespace), without a needless copy."""
    if isinstance(a, np.ndarray):
        return a.astype(dtype, copy=False)
    return get_namespace(a).astype(a, dtype, copy=False)


def take(a, indices, *, axis):
    """Return the entries of ``a`` at integer ``indices`` (NumPy) along ``axis``."""
    if isinstance(a, np.ndarray):
        return np.take(a, indices, axis=axis)
    xp = get_namespace(a)
    return xp.take(a, xp.asarray(indices, device=a.device), axis=axis)


def nonnegative_log(a):
    """Return ``log(a)`` of non-negative ``a``: ``-inf`` at zero, no warning."""
    xp = get_namespace(a)
    with np.errstate(divide="ignore"):
        return xp.log(a)


def einsum(subscripts, *operands):
    """Return ``einsum`` of the operands, in their namespace."""
    if all(isinstance(a, np.ndarray) for a in operands):
        return np.einsum(subscripts, *operands)
    return _import_torch().einsum(subscripts, *operands)


def top_k_mask(a, k):
    """Return the mask of the ``k`` largest entries of every row of ``a``.

    Ties at the k-th value are broken by column order, so exactly ``k``
    entries are kept on every row.
    """
    if isinstance(a, np.ndarray):
        order = np.argsort(-a, axis=1, kind="stable")[:, :k]
        keep = np.zeros(a.shape, dtype=bool)
        np.put_along_axis(keep, order, True, axis=1)
        return keep
    xp = get_namespace(a)
    order = xp.argsort(-a, axis=1, stable=True)
    # The rank of every column is the inverse permutation of the order.
    return xp.argsort(order, axis=1, stable=True) < k


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------


def _reduce(ufunc, a, axis, keepdims):
    if not isinstance(a, np.ndarray):
        xp = get_namespace(a)
        reduction = xp.max if ufunc is np.maximum else xp.sum
        return reduction(a, axis=axis, keepdims=keepdims)
    xp = np
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
    ones = xp.ones((X.shape[0], 1), dtype=X.dtype, device=device(X))
    return xp.concat([X, ones], axis=1)


@functools.cache
def _pair_offsets(p):
    """Return where each row block of the packed products starts.

    The packed products of a p-column design list, for each column ``a``,
    the products ``x_a x_b`` for ``b >= a``: the order of
    ``np.triu_indices(p)``. Block ``a`` spans ``offsets[a]:offsets[a + 1]``.
    """
    return tuple(np.concatenate([[0], np.cumsum(np.arange(p, 0, -1))]).tolist())


def packed_products_into(Xt, out):
    """Write the packed products of the columns of ``X`` into ``out``.

    ``Xt`` is X transposed, (p, n_rows) and C-contiguous, so every product
    is a contiguous row operation: one broadcast multiply per column of X
    (p calls, not p (p + 1) / 2 gathers: much faster than fancy indexing;
    benchmarks/README.md, "Measurements behind the code's choices").
    """
    offsets = _pair_offsets(Xt.shape[0])
    if isinstance(Xt, np.ndarray):
        multiply = np.multiply
    elif is_tensor(Xt):
        multiply = _import_torch().mul
    else:  # pragma: no cover - no other namespace is dispatched to
        raise TypeError(f"No packed products for {type(Xt).__name__}.")
    for a in range(Xt.shape[0]):
        multiply(Xt[a], Xt[a:], out=out[offsets[a] : offsets[a + 1]])
    return out


def _contiguous(a):
    """Return ``a`` in C order (rows of a transposed chunk made contiguous)."""
    return np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a.contiguous()


def _gram_chunk_rows(X, n_pairs):
    """Return the rows per chunk of :func:`weighted_grams` for X's device."""
    if isinstance(X, np.ndarray) or X.device.type == "cpu":
        return _GRAM_CHUNK_ROWS
    itemsize = numpy_dtype(X.dtype).itemsize
    return max(_GRAM_CHUNK_ROWS, _DEVICE_GRAM_CHUNK_BYTES // (n_pairs * itemsize))


def unpack_gram(packed, p):
    """Return symmetric (m, p, p) matrices from packed (n_pairs, m) sums."""
    xp = get_namespace(packed)
    rows, cols = np.triu_indices(p)
    pair = np.empty((p, p), dtype=np.int64)
    pair[rows, cols] = pair[cols, rows] = np.arange(rows.shape[0])
    index = xp.asarray(pair.reshape(-1), device=device(packed))
    return xp.reshape(xp.take(packed, index, axis=0).T, (packed.shape[1], p, p))


def weighted_grams(X, Vs):
    """Return the weighted Gram matrices ``X.T @ diag(V[:, m]) @ X`` of many V.

    One pass over X serves them all: each chunk of rows forms its packed
    products ``x_p x_q`` (p <= q) once, in a buffer that stays in cache, and
    one GEMM per V turns them into all of V's Gram matrices (docs/design.md §6).
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
    xp = get_namespace(X, *Vs)
    n_samples, p = X.shape
    n_pairs = p * (p + 1) // 2
    chunk = _gram_chunk_rows(X, n_pairs)
    # Sums are accumulated chunk by chunk in float64: one float32 sum over a
    # million rows loses about three digits (docs/design.md §5).
    packed = [
        xp.zeros((n_pairs, V.shape[1]), dtype=xp.float64, device=device(X)) for V in Vs
    ]
    buffer = xp.empty((n_pairs, min(chunk, n_samples)), dtype=X.dtype, device=device(X))
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        products = packed_products_into(
            _contiguous(X[start:stop].T), buffer[:, : stop - start]
        )
        for total, V in zip(packed, Vs, strict=True):
            total += products @ V[start:stop]
    return [unpack_gram(astype(total, X.dtype), p) for total in packed]


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
    columns. Nothing of it outlives the fit. ``host``, when given, is the
    source as a NumPy array already (the input before its move to a
    device): :meth:`host` then copies nothing.
    """

    def __init__(self, X, *, host=None):
        self.source = X
        self._designs = {}
        self._host = host

    def host(self):
        """Return the source as a NumPy array, copied from its device once.

        Generic scikit-learn experts and the k-means start run on the CPU;
        they share this one copy.
        """
        if self._host is None:
            self._host = to_numpy(self.source)
        return self._host

    def _key(self, columns, intercept):
        if columns is not None and len(columns) == self.source.shape[1]:
            if np.array_equal(columns, np.arange(self.source.shape[1])):
                columns = None
        return (None if columns is None else tuple(columns), intercept)

    def get(self, *, columns=None, intercept=True):
        """Return the design of ``source[:, columns]`` (all columns if None)."""
        key = self._key(columns, intercept)
        if key not in self._designs:
            X = self.source if columns is None else take(self.source, columns, axis=1)
            self._designs[key] = Design(X, intercept=intercept)
        return self._designs[key]

    def transposed(self, *, columns=None, intercept=True):
        """Return the design of :meth:`get` transposed, (p, n_samples), C order.

        NumPy sources only: the layout of the cache-blocked EM
        (``_fused``), where every operation runs along the rows.
        """
        columns, intercept = self._key(columns, intercept)
        key = ("transposed", columns, intercept)
        if key not in self._designs:
            X = self.host()
            if columns is not None:
                X = X[:, list(columns)]
            Xt = np.empty((X.shape[1] + int(intercept), X.shape[0]), dtype=X.dtype)
            Xt[: X.shape[1]] = X.T
            if intercept:
                Xt[-1] = 1.0
            self._designs[key] = Xt
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
    # The systems are small: solve them in float64 whatever the data's
    # precision (a float32 Cholesky of a near-singular Hessian gave Newton
    # steps that lost nearly all their gain: benchmarks/README.md, "Design
    # measurements", float32 Newton systems).
    dtype = B.dtype
    if not isinstance(A, np.ndarray):
        return astype(_torch_batched_solve(A, B), dtype)
    A, B = astype(A, np.float64), astype(B, np.float64)
    try:
        L = np.linalg.cholesky(A)
        out = np.squeeze(
            np.linalg.solve(np.swapaxes(L, -1, -2), np.linalg.solve(L, B[..., None])),
            axis=-1,
        )
    except np.linalg.LinAlgError:
        out = np.empty_like(B)
        for m in range(A.shape[0]):
            out[m] = np.linalg.lstsq(A[m], B[m], rcond=None)[0]
    return out.astype(dtype, copy=False)


def _torch_batched_solve(A, B):
    """Solve as :func:`batched_solve` does, for tensors on their device.

    Not with ``scipy.linalg``: it silently turns tensors into NumPy arrays
    (docs/design.md §5).
    """
    torch = _import_torch()
    A, B = A.to(torch.float64), B.to(torch.float64)[..., None]
    L, info = torch.linalg.cholesky_ex(A)
    if not bool(torch.any(info != 0)):
        return torch.cholesky_solve(B, L)[..., 0]
    # As NumPy's branch: every system falls back to the minimum-norm
    # solution when one of them is not positive definite.
    return (torch.linalg.pinv(A, hermitian=True) @ B)[..., 0]
