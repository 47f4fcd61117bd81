"""The EM engine's results.

Every EM run, in memory or on Dask blocks, from a start or continuing a
fit, returns an :class:`EMRun`: the histories it recorded and the model
it ended at.
"""

from typing import Any, NamedTuple

__all__ = ["EMRun"]


class EMRun(NamedTuple):
    """One EM run: its history, convergence and the model it ended at.

    Attributes
    ----------
    objectives : list of float
        The penalised objective per row after every E-step (the start's
        first); it never decreases within a run.
    log_likelihoods : list of float
        The E-step's log-likelihood per row, likewise.
    converged : bool
        Whether the objective's change fell below ``tol``.
    n_iter : int
        The number of EM iterations run.
    gate : GateTree
        The gate the run ended at (updated in place during the run).
    pool : expert pool
        The experts the run ended at (likewise).
    responsibilities : array of shape (n_samples, n_experts) or None
        The last E-step's responsibilities; None where the run keeps none
        (Dask blocks).
    """

    objectives: list
    log_likelihoods: list
    converged: bool
    n_iter: int
    gate: Any
    pool: Any
    responsibilities: Any = None
