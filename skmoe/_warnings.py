"""The fit's warnings, pointed at the user's line.

A fit is reached through skmoe's own calls and, in a search or a
cross-validation, through scikit-learn's and joblib's: a warning's
``stacklevel`` skips their frames (:func:`user_stacklevel`), so that it
names the line that called ``fit``.
"""

import os
import sys
import warnings

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning

from skmoe._engine import MIN_EFFECTIVE_SAMPLES

__all__ = ["user_stacklevel", "warn_host_experts", "warn_not_converged", "warn_pruned"]

# Frames of these packages are skipped when a warning points at the user's
# line: the fit is reached through skmoe's own calls and, in a search or a
# cross-validation, through scikit-learn's and joblib's.
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (sklearn.__file__, joblib.__file__, __file__)
)


def user_stacklevel():
    """Return the ``stacklevel`` that points a warning at the user's line.

    Counted from the caller of this function: the first frame outside
    skmoe, scikit-learn and joblib (the outermost frame when there is none,
    as in a joblib worker).
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(
        _LIBRARY_DIRS
    ):
        frame, level = frame.f_back, level + 1
    return level


def _warn(message, category=UserWarning):
    """Issue a warning pointed at the user's line."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


def warn_pruned(gate, pruned_before=None):
    """Warn once about the experts the kept model pruned in this fit.

    Pruning is recorded in ``gate.pruned`` as EM goes (in the runs that
    place a tree's experts, the kept run and its restarts alike); only the
    model that is kept is reported, so discarded runs never warn.
    ``pruned_before`` is the mask of a continued model (None: a fresh fit,
    nothing pruned before it).
    """
    pruned = gate.pruned if pruned_before is None else gate.pruned & ~pruned_before
    pruned = np.flatnonzero(pruned)
    if pruned.size == 0:
        return
    _warn(
        f"Expert(s) {pruned.tolist()} received less than "
        f"{MIN_EFFECTIVE_SAMPLES:g} sample's worth of responsibility and were "
        "pruned (their gate probability is now zero); "
        f"{int(gate.pruned.sum())} of {gate.n_leaves} experts are pruned. "
        "Fewer experts, another init_params or more n_init may fit better."
    )


def warn_not_converged(n_runs, max_iter):
    """Warn that the kept run of a fit stopped at ``max_iter``."""
    _warn(
        f"The best of {n_runs} EM run(s) did not converge in "
        f"{max_iter} iterations; increase max_iter or tol, or "
        "check the data.",
        ConvergenceWarning,
    )


def warn_host_experts(pool, device):
    """Warn that generic experts make a fit on ``device`` copy to the host."""
    _warn(
        f"{type(pool.estimators[0]).__name__} experts "
        "are generic scikit-learn estimators: they are fitted on the "
        "CPU with NumPy whatever the backend, so every EM iteration "
        f"copies their weights and outputs between {device} and "
        "NumPy arrays. Only the gate, the E-step and the routing run "
        "on the device; LinearRegression, Ridge and LogisticRegression "
        "experts run there too."
    )
