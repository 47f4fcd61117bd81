"""The EM engine: one batch EM loop over sources of E-step statistics.

:func:`run_em` runs EM from a start: an E-step at the model, then M-steps
and E-steps in turn until the objective stops rising, pruning the experts
that starve on the way. It takes its options (:class:`EMOptions`: the
E-step's routing, ``top_k``, the gate's penalty, ``tol``, ``verbose``),
never the estimator, and returns an :class:`EMRun`.

Where the rows are, and how an iteration reads them, is the source's
business:

* :class:`ArrayRows`: whole arrays in memory (NumPy or torch), the E-step
  on them at once and the M-step by the gate's and the pool's own rules
  (generic scikit-learn experts refit on their rows, :meth:`ArrayRows.rows`);
* :class:`SummedRows`: sums of the statistics of :mod:`skmoe._statistics`
  over row blocks (``ArrayBlocks``, the blocks of a Dask array) or over
  cache-sized chunks (:class:`~skmoe._fused.FusedRows`, the in-memory fit of
  linear experts), the M-step from the sums
  (:func:`skmoe._blockwise.m_step`).

Every source's E-step gives the same few numbers (:class:`EStep`): the
weighted log-bound, the total weight and each expert's responsibility
mass. From them the loop computes the objective, prunes and tests
convergence, once for all sources (``docs/design.md``, "The engine").
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from skmoe._backend import get_namespace, numpy_dtype, to_numpy
from skmoe._blockwise import m_step as summed_m_step
from skmoe._routing import log_posterior
from skmoe._split_merge import Trial

__all__ = [
    "MIN_EFFECTIVE_SAMPLES",
    "ArrayRows",
    "EMOptions",
    "EMRun",
    "EStep",
    "SummedRows",
    "array_e_step",
    "array_m_step",
    "objective",
    "prune_starving",
    "record_iteration",
    "run_em",
]

# An expert starves when its responsibility mass falls below this many rows
# (of average sample weight): its fit is then defined by almost nothing, so
# it is pruned (flexmix drops components the same way, by their prior).
MIN_EFFECTIVE_SAMPLES = 1.0


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


@dataclass(frozen=True)
class EMOptions:
    """What an EM run needs to know besides the model and the rows.

    The estimator builds them (``_fitting.FitPlan.em``); the engine never
    sees the estimator.

    Parameters
    ----------
    routing : {"soft", "hard", "topk"}
        The E-step's routing (soft unless trained by routed EM).
    top_k : int
        Experts kept per row under ``routing="topk"``.
    gate_alpha : float
        The gates' L2 penalty (their log-prior is part of the objective).
    tol : float
        EM stops once the objective changes by less than this.
    verbose : int, default=0
        Above 1, every iteration prints a line.
    """

    routing: str
    top_k: int
    gate_alpha: float
    tol: float
    verbose: int = 0


class EStep(NamedTuple):
    """What an E-step tells the loop, whatever the source.

    Attributes
    ----------
    bound : float
        The weighted sum of the rows' log-bound
        (:func:`~skmoe._routing.log_posterior`'s; the log-likelihood under
        soft routing).
    total : float
        The sum of the weights (a NumPy scalar of the weights' precision
        for whole arrays, so that their histories keep it).
    mass : ndarray of shape (n_experts,)
        Each expert's responsibility mass in rows of average weight.
    state : object
        What the source's M-step needs (responsibilities, or summed
        statistics).
    """

    bound: float
    total: Any
    mass: np.ndarray
    state: Any


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------


def run_em(gate, pool, source, options, *, max_iter, init=None):
    """Run EM from a fitted start; return its :class:`EMRun`.

    Parameters
    ----------
    gate : GateTree
        The start's gate; updated in place.
    pool : expert pool
        The start's experts; updated in place.
    source : ArrayRows or SummedRows
        The rows, and how an iteration reads them.
    options : EMOptions
    max_iter : int
        The most M-steps run.
    init : int, Trial or None, default=None
        Number of the initialisation in verbose output; None marks a run of
        the start, a :class:`~skmoe._split_merge.Trial` the run of a
        split-and-merge move (which also stops once hopeless).

    Returns
    -------
    run : EMRun
    """
    e_step = _pruned_e_step(gate, pool, source, options)
    current, log_lik = objective(gate, pool, e_step, options.gate_alpha)
    objectives, log_liks = [current], [log_lik]
    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):
        source.m_step(
            gate,
            pool,
            e_step,
            alpha=options.gate_alpha,
            routing=options.routing,
            top_k=options.top_k,
        )
        e_step = _pruned_e_step(gate, pool, source, options)
        current, log_lik = objective(gate, pool, e_step, options.gate_alpha)
        if record_iteration(
            objectives, log_liks, current, log_lik, n_iter, init, options
        ):
            converged = True
            break
    return EMRun(
        objectives,
        log_liks,
        converged,
        n_iter,
        gate,
        pool,
        source.responsibilities(e_step),
    )


def _pruned_e_step(gate, pool, source, options):
    """Return the source's E-step at the model, after pruning starving experts."""
    e_step = source.e_step(gate, pool, routing=options.routing, top_k=options.top_k)
    if prune_starving(gate, e_step.mass):
        e_step = source.e_step(gate, pool, routing=options.routing, top_k=options.top_k)
    return e_step


def objective(gate, pool, e_step, alpha):
    """Return (objective, mean bound) per row of an E-step.

    The objective adds the log-priors (the experts' and the gates' penalty
    ``alpha``) to the bound: it is what EM never decreases.
    """
    mean_bound = e_step.bound / e_step.total
    log_prior = pool.log_prior() + gate.log_prior(alpha)
    return mean_bound + log_prior / e_step.total, mean_bound


def prune_starving(gate, mass):
    """Prune the experts whose responsibility mass starved; return if any.

    An expert with less than ``MIN_EFFECTIVE_SAMPLES`` rows' worth of
    responsibility is fitted to almost nothing: EM would keep refitting
    it to a handful of points (or to none, under hard routing). Its leaf
    is pruned: its gate probability becomes zero and the other leaves
    are renormalised, so it no longer takes part in the E-step or in
    predictions; its parameters stay as they were. The objective of the
    iteration that prunes can drop by at most the pruned expert's share
    (less than one row's likelihood); EM climbs again from there.
    ``mass`` is each expert's responsibility mass in rows of average
    weight (NumPy). The pruned experts stay marked in ``gate.pruned``; the
    estimator warns about those of the model a fit keeps.
    """
    starving = (mass < MIN_EFFECTIVE_SAMPLES) & ~gate.pruned
    if not np.any(starving):
        return False
    # Recorded on the gate, not warned here: start-up runs and restarts
    # that are thrown away prune too; fit warns about the kept model.
    gate.pruned = gate.pruned | starving
    return True


def record_iteration(objectives, log_liks, objective, log_lik, n_iter, init, options):
    """Append an iteration to the history, print it; return if EM converged.

    Iterations are printed at ``options.verbose > 1``; ``init`` numbers the
    initialisation, None marks a run of the start (a tree's flat fit and
    the short runs that choose between placements), a
    :class:`~skmoe._split_merge.Trial` the run of a split-and-merge move,
    which also stops once it cannot beat the model it would replace.
    """
    change = objective - objectives[-1]
    objectives.append(objective)
    log_liks.append(log_lik)
    if options.verbose > 1:
        label = "candidate start" if init is None else f"Initialization {init}"
        print(
            f"{label}, iteration {n_iter}: "
            f"log-likelihood {log_lik:.6f}, objective change {change:.3e}"
        )
    if isinstance(init, Trial):
        return abs(change) < options.tol or init.hopeless(objectives)
    return abs(change) < options.tol


# ---------------------------------------------------------------------------
# Whole arrays
# ---------------------------------------------------------------------------


def array_e_step(gate, level_log_probas, log_expert, sample_weight, *, routing, top_k):
    """Return the :class:`EStep` of whole arrays; its state is the responsibilities.

    Parameters
    ----------
    gate : GateTree
    level_log_probas : list of arrays
        :meth:`GateTree.level_log_probas` of the rows.
    log_expert : array of shape (n_samples, n_experts)
        The experts' log-likelihoods of the rows.
    sample_weight : array of shape (n_samples,)
    routing : {"soft", "hard", "topk"}
    top_k : int
    """
    log_joint = gate.leaf_log_proba(level_log_probas) + log_expert
    xp = get_namespace(log_joint)
    log_bound, log_resp = log_posterior(log_joint, routing=routing, top_k=top_k)
    # A NumPy scalar of the weights' precision, whatever the backend (as
    # NumPy's own sum gives it): the histories are NumPy floats.
    total = numpy_dtype(sample_weight.dtype).type(float(xp.sum(sample_weight)))
    resp = xp.exp(log_resp)
    mass = (sample_weight @ resp) / xp.mean(sample_weight)
    return EStep(float(sample_weight @ log_bound), total, to_numpy(mass), resp)


def array_m_step(
    gate,
    pool,
    designs,
    y,
    sample_weight,
    resp,
    *,
    alpha,
    gate_steps=1,
    expert_steps=None,
    level_log_probas=None,
):
    """Refit the experts and improve the gates given responsibilities.

    Parameters
    ----------
    gate : GateTree
        Updated in place.
    pool : expert pool
        Updated in place.
    designs : DesignCache
        The fit's designs.
    y : array of shape (n_samples,)
        The encoded target.
    sample_weight : array of shape (n_samples,)
    resp : array of shape (n_samples, n_experts)
        The responsibilities the M-step fits.
    alpha : float
        The gates' L2 penalty.
    gate_steps : int, default=1
        Newton steps per gate (a start fits its fresh gate with several).
    expert_steps : int, default=None
        At most this many Newton steps for experts fitted by Newton's method
        (``max_steps`` of the pool's M-step): an EM iteration takes the
        pool's ``em_newton_steps``; None fits them to convergence, as a
        start's fresh experts need. Other pools' M-steps are exact.
    level_log_probas : list of arrays, default=None
        The gates' log-probabilities at the current coefficients, when the
        E-step has them.

    Returns
    -------
    log_expert : array of shape (n_samples, n_experts)
        The updated experts' log-likelihoods of the rows.
    level_log_probas : list of arrays
        The updated gates' log-probabilities: both were computed on the
        way (the variance update, the gates' line search), and they are
        all the next E-step needs.
    """
    weights = sample_weight[:, None] * resp
    # Linear experts on the gate's design get their Gram matrices from
    # the gate's pass over X (one pass per iteration, docs/design.md).
    shared = pool.gram_design(designs) is gate.design(designs)
    level_log_probas, grams = gate.m_step(
        designs,
        resp,
        sample_weight,
        alpha=alpha,
        n_steps=gate_steps,
        level_log_probas=level_log_probas,
        shared_gram_weights=[weights] if shared else [],
    )
    how = {"gram": grams[0]} if shared else {}
    if expert_steps is not None:
        how["max_steps"] = expert_steps
    log_expert = pool.m_step(designs, y, weights, **how)
    return log_expert, level_log_probas


class ArrayRows:
    """Whole arrays in memory (NumPy or torch) as the source of an EM run.

    The E-step is taken on all rows at once, the M-step by the gate's and
    the pool's own rules (:func:`array_m_step`). The M-step computes the
    new model's gate log-probabilities and experts' log-likelihoods on its
    way; they are kept for the E-step that follows, so an iteration
    evaluates the model once.

    Parameters
    ----------
    designs : DesignCache
        The fit's designs (its source: the rows).
    y : array of shape (n_samples,)
        The encoded target.
    sample_weight : array of shape (n_samples,)
    """

    def __init__(self, designs, y, sample_weight):
        self.designs, self.y, self.sample_weight = designs, y, sample_weight
        self._joint = None  # the model's (level_log_probas, log_expert)

    def rows(self):
        """Return ``(designs, y, sample_weight)``: what generic experts refit on."""
        return self.designs, self.y, self.sample_weight

    def e_step(self, gate, pool, *, routing, top_k):
        """Return the :class:`EStep` at the model (the M-step's, or computed)."""
        if self._joint is None:
            X = self.designs.source
            self._joint = (
                gate.level_log_probas(X, design=gate.design(self.designs)),
                pool.log_likelihood(X, self.y),
            )
        level_log_probas, log_expert = self._joint
        return array_e_step(
            gate,
            level_log_probas,
            log_expert,
            self.sample_weight,
            routing=routing,
            top_k=top_k,
        )

    def m_step(self, gate, pool, e_step, *, alpha, routing, top_k):
        """Update the model in place to fit the E-step's responsibilities.

        A generalised EM step where the experts are fitted by Newton's
        method: ``em_newton_steps`` line-searched steps, as on summed rows.
        """
        log_expert, level_log_probas = array_m_step(
            gate,
            pool,
            *self.rows(),
            e_step.state,
            alpha=alpha,
            expert_steps=pool.em_newton_steps,
            level_log_probas=self._joint[0],
        )
        self._joint = (level_log_probas, log_expert)

    def responsibilities(self, e_step):
        """Return the E-step's responsibilities, (n_samples, n_experts)."""
        return e_step.state


# ---------------------------------------------------------------------------
# Summed statistics
# ---------------------------------------------------------------------------


class SummedRows:
    """Rows read through sums of statistics, as the source of an EM run.

    Parameters
    ----------
    statistics : object
        Gives the sums of the functions of :mod:`skmoe._statistics` over
        its rows: ``em_statistics``, ``trial_statistics`` and
        ``expert_statistics`` (``ArrayBlocks``, ``DaskBlocks``,
        :class:`~skmoe._fused.FusedRows`).
    responsibilities : callable, default=None
        Returns the last E-step's responsibilities, (n_samples,
        n_experts), where the statistics keep them (``FusedRows``); None
        where they keep none (blocks).
    """

    def __init__(self, statistics, *, responsibilities=None):
        self.statistics = statistics
        self._responsibilities = responsibilities

    def e_step(self, gate, pool, *, routing, top_k):
        """Return the :class:`EStep` at the model; its state is the sums."""
        found = self.statistics.em_statistics(
            gate=gate, pool=pool, routing=routing, top_k=top_k
        )
        mean_weight = found["weight"] / found["n_rows"]
        return EStep(
            float(found["bound"]),
            float(found["weight"]),
            found["mass"] / mean_weight,
            found,
        )

    def m_step(self, gate, pool, e_step, *, alpha, routing, top_k):
        """Update the model in place from the sums of its E-step."""
        summed_m_step(
            gate,
            pool,
            self.statistics,
            e_step.state,
            alpha=alpha,
            routing=routing,
            top_k=top_k,
        )

    def responsibilities(self, e_step):
        """Return the last E-step's responsibilities, or None if not kept."""
        if self._responsibilities is None:
            return None
        return self._responsibilities()
