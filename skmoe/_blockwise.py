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
* logistic experts: ``LogisticExperts.newton_steps`` from the sums, one
  line-searched Newton step per EM iteration (``em_newton_steps``); where
  more are asked, the pass that scores a full step computes the next
  step's statistics there (another pass only when the step is refused).

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
from skmoe._softmax import line_search, newton_step
from skmoe._statistics import SummedBlocks, sum_statistics

__all__ = ["ArrayBlocks", "m_step"]

# Trial step sizes of a line search scored per pass over the blocks. The
# first pass scores the full step alone: it is nearly always accepted, and
# every trial costs a softmax over the block (benchmarks/README.md, "Scale
# out": four trials cost a pass almost twice one). Passes after it score a
# few halvings at once, as each pass costs a read of the data.
_TRIALS_PER_PASS = 4


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
        newton_step(
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


def _line_search(coefs, steps, score, linear_coef=None):
    """Return :func:`~skmoe._softmax.line_search` of blocks, and what it found.

    Scores a few step sizes per pass over the blocks; ``score(trials,
    linear_coef)`` returns the trials' fits per batch and whatever the pass
    computed for ``linear_coef`` (asked on the first pass only), which is
    returned third.
    """
    extra = {}

    def fits(trials, first):
        found, more = score(trials, linear_coef if first else None)
        if first:
            extra["found"] = more
        return found

    new_coefs, gains = line_search(coefs, steps, fits, trials_per_pass=_TRIALS_PER_PASS)
    return new_coefs, gains, extra.get("found")


def _logistic_m_step(pool, blocks, statistics, model):
    """Take the logistic experts' M-step (``newton_steps``) from block sums."""
    refit = statistics["mass"] > MIN_EXPERT_WEIGHT

    def take_step(coef, state, last):
        if state is None:
            experts = statistics["experts"]
        elif np.array_equal(coef, state["full_step"]):
            experts = state["newton"]
        else:
            experts = blocks.expert_statistics(coef=coef, **model)
        objective, step, penalty = newton_step(
            coef, experts["fit"], experts["gradient"], experts["gram"], pool.alpha
        )
        # Experts that are not refit keep their coefficients: a zero step.
        step[~refit] = 0.0
        # The first pass of the line search scores the full step alone and,
        # unless this step is the last, computes the next Newton statistics
        # there, on speculation.
        first_pass = {}

        def score(trials, _):
            found = blocks.trial_statistics(
                expert_trials=trials[0],
                newton_at_first_trial=not first_pass and not last,
                **model,
            )
            if not first_pass:
                first_pass.update(full_step=trials[0][0], newton=found.get("newton"))
            return [found["experts"]], None

        (coef,), (gain,), _ = _line_search([coef], [(objective, step, penalty)], score)
        return coef, gain[refit], first_pass

    pool.coef_ = pool.newton_steps(
        take_step,
        np.array(pool.coef_, copy=True),
        float(np.sum(statistics["mass"])),
        max_steps=pool.em_newton_steps,
    )
