"""Thread limits of the library's numerics: BLAS, OpenMP and torch's CPU pool.

The products EM and the predictions form are thin: a design of d + 1
columns against K experts, or ``_fused``'s packed products against a few
thousand rows of weights (55 x 1024 by 1024 x 10 at d=10). Threaded
OpenBLAS, OpenMP (scikit-learn's k-means start) and torch's CPU pool split
them into pieces too small to pay for waking threads, and when the cores
are busy those threads spin waiting for each other: on 2 busy cores a fit
of the default regressor took several times longer with the default two
threads than with one, on the torch backend (CPU) too
(benchmarks/README.md, "Threads").

So for vectorized experts (linear, ridge, logistic) ``fit``, ``partial_fit``
and the prediction methods run with one thread in each pool. The limit is
taken once around the whole call (not in each restart's joblib thread) and
restored after it, also when it raises; one thread never raises a limit the
user set. Generic scikit-learn experts keep the pools as they are: their
fits are theirs, of shapes skmoe does not know.

BLAS limits and torch's are process-wide, so calls running at once in
several threads share one limit: the first to start sets it, the last to
finish restores it. OpenMP's is per thread: it covers the calling thread,
where restarts run unless ``n_jobs`` asks for more.
"""

import contextlib
import functools
import threading

from threadpoolctl import ThreadpoolController

from skmoe._backend import resolve_device, torch_num_threads

__all__ = ["limits_threads", "numerics_threads", "single_thread"]

# The widest design measured (benchmarks/README.md, "Threads"). Up to it,
# with the cores busy, two threads made whole fits several times slower
# than one; with free cores they gained at most a tenth, though single Gram
# products ran faster. Wider designs, unmeasured, keep the libraries'
# threads.
_MAX_SINGLE_THREAD_FEATURES = 400


def numerics_threads(n_features):
    """Return the thread limit of skmoe's numerics on ``n_features`` columns.

    1, or None to keep the libraries' threads (wide designs).
    """
    return 1 if n_features <= _MAX_SINGLE_THREAD_FEATURES else None


@functools.cache
def _controller():
    # Inspecting the loaded libraries is too slow to repeat at every call
    # (benchmarks/README.md, "Measurements behind the code's choices"); one
    # controller, made at the first fit (numpy's and scipy's OpenBLAS and
    # scikit-learn's OpenMP are loaded by then), serves every call. torch's
    # pool is set apart.
    return ThreadpoolController()


class _SharedLimit:
    """A process-wide limit held while any caller needs it.

    ``apply()`` sets the limit and returns the function that undoes it.
    The first holder applies it, the last to leave undoes it, so nested
    calls (``bic`` calling ``log_likelihood``) and calls in several threads
    at once restore what was there before the first of them.
    """

    _lock = threading.Lock()

    def __init__(self, apply):
        self._apply = apply
        self._holders = 0
        self._undo = None

    @contextlib.contextmanager
    def held(self):
        with self._lock:
            if self._holders == 0:
                self._undo = self._apply()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    undo, self._undo = self._undo, None
                    undo()


def _limit_pools():
    return _controller().limit(limits=1).restore_original_limits


def _limit_torch():
    previous = torch_num_threads(1)
    return functools.partial(torch_num_threads, previous)


_POOLS = _SharedLimit(_limit_pools)
_TORCH = _SharedLimit(_limit_torch)


@contextlib.contextmanager
def single_thread(*, torch=False):
    """Run the block with one BLAS and one OpenMP thread (and one torch thread).

    Parameters
    ----------
    torch : bool, default=False
        Also set torch's CPU threads to one (the torch backend on the CPU).
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(_POOLS.held())
        if torch:
            stack.enter_context(_TORCH.held())
        yield


def _n_features(X, estimator):
    """Return the columns of ``X`` without converting it (a list: its first row)."""
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] == shape[1]:
        return int(shape[1])  # (a dask array's unknown sizes are NaN)
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None:
        return n_features
    try:
        return len(X[0])
    except (TypeError, IndexError, KeyError):
        return 1  # validation will refuse X


def limits_threads(method):
    """Run an estimator method ``method(self, X, ...)`` under :func:`single_thread`.

    Applies to vectorized experts (the library's own numerics) whose width
    :func:`numerics_threads` limits; generic experts run as they are.
    """

    @functools.wraps(method)
    def wrapper(estimator, X, *args, **kwargs):
        if not estimator._has_vectorized_experts() or (
            numerics_threads(_n_features(X, estimator)) is None
        ):
            return method(estimator, X, *args, **kwargs)
        try:
            device = resolve_device(estimator.backend, estimator.device)
        except (ImportError, ValueError):
            # torch missing or a bad device: the method says so itself, after
            # the checks it makes first (a dask array or partial_fit refuse
            # the torch backend whether torch is installed or not).
            return method(estimator, X, *args, **kwargs)
        on_torch_cpu = device is not None and device.type == "cpu"
        with single_thread(torch=on_torch_cpu):
            return method(estimator, X, *args, **kwargs)

    return wrapper
