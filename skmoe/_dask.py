"""Dask arrays as the data of a fit: blocks on a cluster.

The only module that imports dask (lazily: it is the optional ``dask``
extra). A ``dask.array`` fit keeps the data where Dask holds it, on a
``dask.distributed`` cluster or in the local scheduler: every pass of the
blockwise EM (``_blockwise``) sends the model, a few kilobytes, to the
blocks, computes their statistics there, and reduces them on the cluster,
so the client receives one small result per pass and never the data.
Their validation is in ``_validation``, with the in-memory data's.
"""

import numpy as np

from skmoe._gating import scale_from_moments
from skmoe._statistics import SummedBlocks, sum_statistics

__all__ = [
    "DaskBlocks",
    "gate_penalty_scale",
    "import_dask_array",
    "is_dask_array",
    "map_method",
    "rows_like",
    "sample_rows",
]


def is_dask_array(a):
    """Return whether ``a`` is a ``dask.array.Array`` (without importing dask)."""
    return type(a).__module__.split(".")[:2] == ["dask", "array"] and hasattr(
        a, "to_delayed"
    )


def import_dask_array():
    """Return ``dask.array``, or raise the ImportError that names the extra."""
    try:
        import dask.array as da
    except ImportError as error:  # pragma: no cover - dask arrays need dask
        raise ImportError(
            'Fitting a dask array needs dask: pip install "skmoe[dask]".'
        ) from error
    return da


def rows_like(a, X, name, dtype=None):
    """Return ``a`` (array-like or dask) as a 1-d dask array in X's row chunks."""
    da = import_dask_array()
    if not is_dask_array(a):
        a = np.asarray(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(
            f"{name} should be a 1d array, got an array of shape {a.shape}."
        )
    if a.shape[0] != X.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {a.shape[0]}]"
        )
    if dtype is not None:
        a = a.astype(dtype)
    if is_dask_array(a):
        return a.rechunk((X.chunks[0],))
    return da.from_array(a, chunks=(X.chunks[0],))


def gate_penalty_scale(X, sample_weight, columns):
    """Return the gate's ``penalty_scale`` from all rows, summed on the blocks.

    The weighted moments of :func:`~skmoe._gating.penalty_scale` in two
    passes (the mean, then the squares about it, which do not cancel as
    ``sum w x^2 - (sum w x)^2`` would), each reduced by Dask.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
    sample_weight : dask.array.Array of shape (n_samples,)
    columns : ndarray of int
        The gate's columns.

    Returns
    -------
    scale : ndarray of shape (len(columns),)
    """
    da = import_dask_array()
    Xg = X[:, np.asarray(columns, dtype=np.intp)]
    total, weighted = da.compute(sample_weight.sum(), sample_weight @ Xg)
    mean = np.asarray(weighted) / total
    squares, centred = da.compute(
        sample_weight @ (Xg**2), sample_weight @ ((Xg - mean) ** 2)
    )
    return scale_from_moments(
        np.sqrt(np.asarray(centred) / total), np.sqrt(np.asarray(squares) / total)
    )


def unique_labels(y):
    """Return the sorted distinct values of a dask array ``y``."""
    return np.unique(np.asarray(import_dask_array().unique(y).compute()))


def _label_index(labels, classes):
    return np.searchsorted(classes, labels)


def encode_labels(y, classes):
    """Return class indices of a dask array of labels, block by block.

    ``classes`` must hold every label of ``y`` (:func:`unique_labels`).
    """
    return y.map_blocks(_label_index, classes, dtype=np.intp)


def compute(*collections):
    """Compute dask collections together (one pass where they share inputs)."""
    return import_dask_array().compute(*collections)


def sample_rows(rows, *arrays):
    """Return the ``rows`` of dask arrays as NumPy arrays (None: every row).

    One computation for all of them (a start's sample of X, y and the
    weights).
    """
    if rows is not None:
        arrays = tuple(a[rows] for a in arrays)
    return tuple(np.asarray(a) for a in compute(*arrays))


def _method_on_block(X, *columns, estimator, method, part, kwargs):
    """Call ``estimator.method`` on one block (extra arrays come as columns)."""
    result = getattr(estimator, method)(X, *(c[:, 0] for c in columns), **kwargs)
    return result if part is None else result[part]


def map_method(
    estimator, method, X, *rows, n_columns=None, dtype=np.float64, part=None, **kwargs
):
    """Return ``estimator.method(X, *rows, **kwargs)`` as a lazy dask array.

    The fitted estimator is sent to the blocks and applied to each; nothing
    is computed until the result is.

    Parameters
    ----------
    estimator : fitted estimator
    method : str
        A prediction method taking NumPy arrays.
    X : dask.array.Array of shape (n_samples, n_features)
    *rows : array-like or dask.array.Array of shape (n_samples,)
        Further per-row arguments (``y`` of ``log_likelihood``).
    n_columns : int, default=None
        Columns of the result; None for one value per row.
    dtype : dtype, default=np.float64
    part : int, default=None
        Take this item of a tuple result (``predict(return_std=True)``).
    **kwargs
        Passed to the method.
    """
    da = import_dask_array()
    X = X.rechunk({1: -1})
    columns = [rows_like(a, X, "y")[:, None] for a in rows]
    options = {
        "estimator": estimator,
        "method": method,
        "part": part,
        "kwargs": kwargs,
        "dtype": dtype,
    }
    if n_columns is None:
        return da.map_blocks(
            _method_on_block, X, *columns, drop_axis=1, chunks=(X.chunks[0],), **options
        )
    return da.map_blocks(
        _method_on_block, X, *columns, chunks=(X.chunks[0], (n_columns,)), **options
    )


def _persist_on_cluster(*arrays):
    """Persist ``arrays`` on the workers when a distributed client is active.

    EM reads the data a few times per iteration: persisted, the blocks are
    computed (or sent) to the workers once and every pass reuses them there,
    rather than recomputing them from their source. Without a distributed
    client (the local schedulers), the arrays stay lazy.
    """
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return arrays
    import dask

    return dask.persist(*arrays)


class DaskBlocks(SummedBlocks):
    """The row blocks of dask arrays, summed on the cluster.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        One chunk across the columns.
    y, sample_weight : dask.array.Array of shape (n_samples,)
        In X's row chunks.
    """

    # Block results are reduced on the cluster in groups of this many, so
    # that no worker (nor the client) gathers all of them at once.
    _REDUCE_FANIN = 16

    def __init__(self, X, y, sample_weight):
        X, y, sample_weight = _persist_on_cluster(X, y, sample_weight)
        # The persisted arrays hold the futures of the blocks: the cluster
        # keeps the data as long as they live.
        self._arrays = (X, y, sample_weight)
        self.blocks = list(
            zip(
                X.to_delayed().ravel(),
                y.to_delayed().ravel(),
                sample_weight.to_delayed().ravel(),
                strict=True,
            )
        )
        self.n_rows = X.shape[0]

    def sum(self, function, **kwargs):
        """Return the sum over blocks of ``function(X, y, sample_weight, **kwargs)``."""
        import dask

        # Each argument becomes one key of the graph, shared by every block's
        # task, rather than a copy in each.
        shared = {
            name: dask.delayed(value, traverse=False) for name, value in kwargs.items()
        }
        parts = [
            dask.delayed(function, pure=True)(*block, **shared) for block in self.blocks
        ]
        while len(parts) > 1:
            parts = [
                dask.delayed(sum_statistics, pure=True)(
                    parts[i : i + self._REDUCE_FANIN]
                )
                for i in range(0, len(parts), self._REDUCE_FANIN)
            ]
        return dask.compute(parts[0])[0]
