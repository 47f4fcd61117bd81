"""EM over blocks of rows: the M-step from sums of statistics.

When the data is a set of row blocks (a Dask array on a cluster), every EM
iteration maps :mod:`skmoe._statistics` over the blocks and reduces the
sums; the M-steps are then taken once, from the sums, by the same rules as
the in-memory EM. The in-memory fit of linear experts takes its M-steps
here too, its sums computed by :class:`~skmoe._fused.FusedRows` on chunks
of rows. The loop around them is the engine's
(:func:`skmoe._engine.run_em`, through :class:`skmoe._engine.SummedRows`);
this module is the M-step:

* linear experts: the batched least-squares solve of the summed Gram
  matrices and moments, then their variances from one more pass (the
  squared residuals at the new coefficients);
* gates: one Newton step per gate from the summed gradients and curvature,
  with the same backtracking line search, whose trial step sizes are scored
  a few at a time in one pass;
* logistic experts: Newton steps to convergence, each from one pass that
  scores the full step and computes the next step's statistics there
  (another pass only when the full step is refused).

Same start, same steps: the fit agrees with the in-memory one to rounding.
A source of statistics is any object with ``n_rows`` and the methods
``em_statistics``, ``trial_statistics`` and ``expert_statistics`` that return
the sums of the functions of :mod:`skmoe._statistics` over its rows. Row
blocks get them from :class:`~skmoe._statistics.SummedBlocks` and their
``sum(function, **kwargs)`` (:class:`ArrayBlocks` here, ``DaskBlocks`` in
``_dask``); the in-memory fit of linear experts uses
:class:`~skmoe._fused.FusedRows`, which computes them in two passes over
cache-sized chunks.
"""

import copy

import numpy as np

from skmoe._experts import MIN_EXPERT_WEIGHT
from skmoe._softmax import (
    centred_trial,
    newton_direction,
    penalty_gradient,
    softmax_hessian,
    softmax_penalty,
    uses_full_hessian,
)
from skmoe._statistics import SummedBlocks, sum_statistics

__all__ = ["ArrayBlocks", "m_step"]

# Trial step sizes of a line search scored per pass over the blocks. The
# first pass scores the full step alone: it is nearly always accepted, and
# every trial costs a softmax over the block (measured per 1e5-row block,
# d=10, K=4: 0.083 s with one trial, 0.144 s with four). Passes after it
# score a few halvings at once, as each pass costs a read of the data.
_TRIALS_PER_PASS = 4
# As in the in-memory line search (``_softmax``).
_MAX_HALVINGS = 30
_ROUNDING_SLACK = 1e-12
# As in ``LogisticExperts.m_step``.
_LOGISTIC_MAX_NEWTON = 10
_LOGISTIC_GAIN_TOL = 1e-12


class ArrayBlocks(SummedBlocks):
    """Row blocks of in-memory arrays, summed one after the other.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    sample_weight : ndarray of shape (n_samples,)
    block_rows : int
        Rows per block (the last block may be shorter).
    """

    def __init__(self, X, y, sample_weight, *, block_rows):
        self.blocks = [
            (
                X[start : start + block_rows],
                y[start : start + block_rows],
                sample_weight[start : start + block_rows],
            )
            for start in range(0, X.shape[0], block_rows)
        ]
        self.n_rows = X.shape[0]

    def sum(self, function, **kwargs):
        """Return the sum over blocks of ``function(X, y, sample_weight, **kwargs)``."""
        return sum_statistics(function(*block, **kwargs) for block in self.blocks)


# ---------------------------------------------------------------------------
# The M-step from summed statistics
# ---------------------------------------------------------------------------


def m_step(gate, pool, blocks, statistics, *, alpha, routing, top_k):
    """Update the model in place from the statistics of its E-step.

    Every further pass scores its trials on the E-step of the model as it
    was (a frozen copy): the M-step fits the responsibilities it started
    from, as the in-memory M-step does.
    """
    model = {
        "gate": copy.deepcopy(gate),
        "pool": copy.deepcopy(pool),
        "routing": routing,
        "top_k": top_k,
    }
    gate_steps = [
        _newton_step(
            coef,
            level["fit"],
            level["gradient"],
            level["gram"],
            alpha,
            scale=gate.penalty_scale,
        )
        for coef, level in zip(gate.coef, statistics["gates"], strict=True)
    ]
    # A pool with a closed-form update solves from the sums and returns the
    # coefficients at which the line search's first pass computes what it
    # still needs (linear experts: the squared residuals); others, None.
    linear_coef = pool.solve_sums(statistics["experts"], statistics["mass"])

    def score(trials, linear_coef):
        found = blocks.trial_statistics(
            gate_trials=trials, linear_coef=linear_coef, **model
        )
        return found["gates"], found.get("squared_residuals")

    gate.coef, _, squared_residuals = _line_search(
        gate.coef, gate_steps, score, linear_coef
    )
    if linear_coef is not None:
        pool.update_variance(squared_residuals, statistics["mass"])
    else:
        _logistic_m_step(pool, blocks, statistics, model)


def _newton_step(coef, fit, gradient, gram, alpha, *, scale=None):
    """Return (objective, step, penalty) of softmax problems from their statistics.

    ``penalty`` is ``(alpha, scale)``, as the line search scores trials.
    """
    n_problems, p, n_classes = coef.shape
    full = uses_full_hessian("auto", n_classes, p)
    gradient = np.array(gradient, dtype=coef.dtype)
    gradient[:, :-1, :] -= penalty_gradient(coef, alpha, scale)
    curvature = softmax_hessian(
        gram.astype(coef.dtype), n_problems, n_classes, full=full
    )
    step = newton_direction(curvature, gradient, alpha, full=full, scale=scale)
    objective = fit - softmax_penalty(coef, alpha, scale)
    return objective, step, (alpha, scale)


def _line_search(coefs, steps, score, linear_coef=None):
    """Backtrack every problem of every batch, a few step sizes per pass.

    Each problem takes the largest halving of its step whose objective
    loses no more than rounding, as ``softmax_newton_step`` does; problems
    that find none keep their coefficients.

    Parameters
    ----------
    coefs : list of ndarray of shape (P, p, b)
        Current coefficients of each batch of problems.
    steps : list of (objective, step, penalty)
        From :func:`_newton_step`, per batch.
    score : callable
        ``score(trials, linear_coef)`` returns the trials' fits per batch,
        each (n_trials, P), and whatever the pass computed for
        ``linear_coef`` (asked on the first pass only).

    Returns
    -------
    coefs : list of ndarray
        The accepted coefficients.
    gains : list of ndarray of shape (P,)
        Each problem's increase of its objective (0 where none was found).
    extra : object
        What the first pass returned for ``linear_coef``.
    """
    new_coefs = [np.array(coef, copy=True) for coef in coefs]
    accepted = [np.zeros(coef.shape[0], dtype=bool) for coef in coefs]
    gains = [np.zeros(coef.shape[0]) for coef in coefs]
    extra = None
    for first in (0, *range(1, _MAX_HALVINGS, _TRIALS_PER_PASS)):
        last = 1 if first == 0 else min(first + _TRIALS_PER_PASS, _MAX_HALVINGS)
        sizes = [0.5**h for h in range(first, last)]
        trials = [
            np.stack([centred_trial(coef, step, size) for size in sizes])
            for coef, (_, step, _) in zip(coefs, steps, strict=True)
        ]
        fits, found = score(trials, linear_coef if first == 0 else None)
        if first == 0:
            extra = found
        for j, (objective, _, penalty) in enumerate(steps):
            floor = objective - _ROUNDING_SLACK * np.abs(objective)
            for t in range(len(sizes)):
                trial_objective = fits[j][t] - softmax_penalty(trials[j][t], *penalty)
                improved = (trial_objective >= floor) & ~accepted[j]
                new_coefs[j][improved] = trials[j][t][improved]
                gains[j][improved] = (trial_objective - objective)[improved]
                accepted[j] |= improved
        if all(np.all(a) for a in accepted):
            break
    return new_coefs, gains, extra


def _logistic_m_step(pool, blocks, statistics, model):
    """Newton steps of the logistic experts to convergence, as in memory."""
    mass = statistics["mass"]
    refit = mass > MIN_EXPERT_WEIGHT
    coef = np.array(pool.coef_, copy=True)
    scale = 1.0 + float(np.sum(mass))
    experts = statistics["experts"]
    for _ in range(_LOGISTIC_MAX_NEWTON):
        objective, step, penalty = _newton_step(
            coef, experts["fit"], experts["gradient"], experts["gram"], pool.alpha
        )
        # Experts that are not refit keep their coefficients: a zero step.
        step[~refit] = 0.0
        # The first pass of the line search scores the full step alone and
        # computes the next Newton statistics there, on speculation.
        first_pass = {}

        def score(trials, _, first_pass=first_pass):
            found = blocks.trial_statistics(
                expert_trials=trials[0],
                newton_at_first_trial=not first_pass,
                **model,
            )
            if not first_pass:
                first_pass.update(full_step=trials[0][0], newton=found["newton"])
            return [found["experts"]], None

        (coef,), (gain,), _ = _line_search([coef], [(objective, step, penalty)], score)
        largest_gain = float(np.max(gain[refit])) if np.any(refit) else 0.0
        if max(largest_gain, 0.0) <= _LOGISTIC_GAIN_TOL * scale:
            break
        if np.array_equal(coef, first_pass["full_step"]):
            experts = first_pass["newton"]
        else:
            experts = blocks.expert_statistics(coef=coef, **model)
    pool.coef_ = coef
