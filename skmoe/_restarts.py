"""The restart driver: several EM runs from different starts, the best kept.

One driver for every fit (in memory or on Dask blocks, from fresh starts
or continuing a fitted model): the caller passes how to start a run and
how to run EM from a start, and the driver runs one per random state
(through joblib or in turn), prints their closing lines, and keeps the
run of the highest final objective.
"""

import time
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed

__all__ = ["Restarts", "fit_restarts", "print_fit_summary", "restart_seeds"]


class Restarts(NamedTuple):
    """The EM runs of a fit, one per initialisation, and the one kept.

    Attributes
    ----------
    runs : list of EMRun
        The runs, in the order of their random states.
    starts : list of str
        The kind of start each run began from (``"continued"`` for a
        continued fit).
    kept : int
        The index of the kept run: the highest final objective, the first
        of equal ones.
    """

    runs: list
    starts: list
    kept: int

    @property
    def best(self):
        """The kept :class:`~skmoe._engine.EMRun`."""
        return self.runs[self.kept]

    @property
    def histories(self):
        """Every run's log-likelihood history, as arrays."""
        return [np.asarray(run.log_likelihoods) for run in self.runs]


def restart_seeds(random_state, n_init):
    """Return one random state per initialisation.

    Each restart has its own seed, drawn up front, so that the result does
    not depend on where or in which order restarts run. A single
    initialisation uses ``random_state`` itself.

    Parameters
    ----------
    random_state : RandomState
        The estimator's, checked.
    n_init : int

    Returns
    -------
    random_states : list of RandomState
    """
    if n_init == 1:
        return [random_state]
    seeds = random_state.randint(np.iinfo(np.int32).max, size=n_init)
    return [np.random.RandomState(seed) for seed in seeds]


def _print_run(init, run, seconds, start):
    """Print a run's closing line."""
    print(
        f"Initialization {init}: start {start}, {run.n_iter} iterations, "
        f"{'converged' if run.converged else 'did not converge'}, "
        f"log-likelihood {run.log_likelihoods[-1]:.6f}, objective "
        f"{run.objectives[-1]:.6f}, {seconds:.2f} s"
    )


def _restart(start, run_em, init, random_state, verbose):
    """Start and run one initialisation (a joblib task); return (run, start)."""
    started = time.perf_counter()
    gate, pool, kind = start(init, random_state)
    run = run_em(gate, pool, init, random_state)
    if verbose:
        _print_run(init, run, time.perf_counter() - started, kind)
    return run, kind


def fit_restarts(
    start, run_em, random_states, *, n_jobs=None, in_parallel=True, verbose=0
):
    """Run EM from one start per random state; return the runs and the kept one.

    Parameters
    ----------
    start : callable
        ``start(init, random_state)`` returns ``(gate, pool, kind)``: the
        start of the initialisation numbered ``init`` and the name of its
        kind.
    run_em : callable
        ``run_em(gate, pool, init, random_state)`` runs EM from the start;
        returns its :class:`~skmoe._engine.EMRun`.
    random_states : list
        One per initialisation (None for a continued fit).
    n_jobs : int, default=None
        joblib's ``n_jobs`` (``in_parallel`` only).
    in_parallel : bool, default=True
        Run the initialisations as joblib tasks (threads by default, or the
        backend the user configures, such as Dask's): they are
        independent. False runs them in turn here (a continued fit, or a
        Dask fit whose every pass already runs on the cluster).
    verbose : int, default=0
        Print each run's closing line.

    Returns
    -------
    restarts : Restarts
    """
    if in_parallel:
        results = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_restart)(start, run_em, init, random_state, verbose)
            for init, random_state in enumerate(random_states)
        )
    else:
        results = [
            _restart(start, run_em, init, random_state, verbose)
            for init, random_state in enumerate(random_states)
        ]
    runs, starts = (list(column) for column in zip(*results, strict=True))
    # The first of equal objectives (max keeps the first).
    kept = max(range(len(runs)), key=lambda i: runs[i].objectives[-1])
    return Restarts(runs, starts, kept)


def print_fit_summary(restarts, started):
    """Print a fit's closing line (``started``: its ``perf_counter``)."""
    best = restarts.best
    print(
        f"Fit done: kept initialization {restarts.kept} of {len(restarts.runs)}, "
        f"objective {best.objectives[-1]:.6f}, {best.n_iter} "
        f"iterations, {time.perf_counter() - started:.2f} s"
    )
