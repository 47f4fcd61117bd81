"""A fit's runs: the start, EM, split-and-merge moves and the refit to the routing.

The estimator checks its data and resolves its parameters into a
:class:`FitPlan`; this module runs the fit's restarts from the plan on rows
held in memory (NumPy arrays or torch tensors, :func:`fit_rows`), on the
blocks of a dask array (:func:`fit_blocks`), or the single run that starts
``partial_fit`` (:func:`fit_start`), and returns a :class:`Fit`: the
restarts (:class:`~skmoe._restarts.Restarts`), of which the estimator keeps
the best, and how to score the kept model on the fit's rows.
It never sees the estimator: the plan carries the expert factory and the
target's columns as callables (docs/design.md §3.3).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from skmoe._backend import (
    DesignCache,
    asarray_like,
    get_namespace,
    logsumexp,
    to_numpy,
)
from skmoe._dask import DaskBlocks, gate_penalty_scale, sample_rows
from skmoe._engine import ArrayRows, EMOptions, SummedRows, array_m_step, run_em
from skmoe._fused import fit_linear_experts, supports_fused
from skmoe._fused_logistic import fused_rows
from skmoe._gating import GateTree
from skmoe._init import start_rows
from skmoe._restarts import Restarts, fit_restarts
from skmoe._routing import route_log_weights, routed_log_joint
from skmoe._start import Starter, StartOptions
from skmoe._statistics import likelihood_statistics

__all__ = [
    "Fit",
    "FitPlan",
    "fit_blocks",
    "fit_rows",
    "fit_start",
    "run_em_on_rows",
]


@dataclass(frozen=True)
class FitPlan:
    """The estimator's parameters, resolved for one fit.

    Attributes
    ----------
    hierarchy : tuple of int
        The tree of gates' branching factors.
    gate_idx : ndarray of int
        The columns the gate sees.
    em : EMOptions
        The fit's EM (its routing is the E-step's).
    start : StartOptions
        The start's and the moves' (with ``max_iter`` and ``split_merge``).
    routing : str
        The prediction's routing.
    top_k : int
    refit : bool
        Whether the experts are refitted to the routed gate after EM
        (``train_routing`` resolved to ``"refit"``).
    new_pool : callable
        ``new_pool(n_experts, rs, y, sample_weight)`` returns an unfitted
        expert pool (seeds drawn from ``rs``; NumPy ``y`` and weights).
    target_columns : callable
        ``target_columns(y)``: a NumPy encoded target as columns
        (:class:`~skmoe._start.Starter`).
    """

    hierarchy: tuple
    gate_idx: Any
    em: EMOptions
    start: StartOptions
    routing: str
    top_k: int
    refit: bool
    new_pool: Callable
    target_columns: Callable


class Fit(NamedTuple):
    """A fit's result: its tree, its runs and its routed log-likelihood.

    Attributes
    ----------
    hierarchy : tuple of int
    restarts : Restarts
        The runs, one per restart, and the kept one.
    log_likelihood : callable or None
        ``log_likelihood(gate, pool)``: the weighted mean log-likelihood of
        the fit's rows under the prediction's routing (``log_likelihood_``
        where it is not the E-step's bound, i.e. unless routing is soft);
        None where the E-step's bound stands (``partial_fit``'s start).
    """

    hierarchy: tuple
    restarts: Restarts
    log_likelihood: Callable | None


def fit_experts(pool, designs, y, weights):
    """Fit every expert to its column of ``weights`` (the gate untouched).

    Linear experts on NumPy data are fitted in chunks (``_fused``), any
    other pool by its own M-step.
    """
    if supports_fused(designs.source, pool):
        fit_linear_experts(pool, designs, y, weights)
    else:
        pool.m_step(designs, y, weights)


def run_em_on_rows(plan, gate, pool, rows, *, max_iter, init=None, routing=None):
    """Run EM from a start on in-memory rows; return its :class:`~skmoe._engine.EMRun`.

    ``rows`` is ``(designs, y, sample_weight)``; ``init`` numbers the
    initialisation in verbose output (None: a run of the start);
    ``routing`` is the E-step's (None: the plan's EM routing).
    """
    fused = fused_rows(*rows, gate=gate, pool=pool)
    if fused is not None:
        # Vectorized experts on NumPy data: the same EM iterations, each a
        # pass over cache-sized chunks of rows (docs/design.md §6).
        source = SummedRows(fused, responsibilities=fused.responsibilities)
    else:
        source = ArrayRows(*rows)
    options = plan.em if routing is None else replace(plan.em, routing=routing)
    return run_em(gate, pool, source, options, max_iter=max_iter, init=init)


def _new_model(plan, like, y, sample_weight, hierarchy, gate_idx, rs, scale):
    """Return an unfitted gate tree (on ``like``'s device) and expert pool."""
    gate = GateTree(hierarchy, len(gate_idx), gate_idx, penalty_scale=scale)
    gate.map_arrays(lambda coef: asarray_like(coef, like))
    pool = plan.new_pool(gate.n_leaves, rs, to_numpy(y), to_numpy(sample_weight))
    return gate, pool


def starter(plan, rows):
    """Return the :class:`~skmoe._start.Starter` of in-memory ``rows``."""
    designs, y, sample_weight = rows
    return Starter(
        plan.start,
        *rows,
        new_model=functools.partial(_new_model, plan, designs.source, y, sample_weight),
        m_step=lambda gate, pool, resp, **how: array_m_step(
            gate, pool, *rows, resp, alpha=plan.em.gate_alpha, **how
        ),
        fit_experts=lambda pool, weights: fit_experts(pool, designs, y, weights),
        run_em=lambda gate, pool, **how: run_em_on_rows(plan, gate, pool, rows, **how),
        target_columns=plan.target_columns,
    )


def fresh_start(plan, rows, init, rs, *, scale=None):
    """Return a fresh start ``(gate, pool, kind)`` fitted to ``rows``.

    :meth:`~skmoe._start.Starter.initialize`; ``init`` numbers the restart,
    ``scale`` is the gate's penalty scale (None: that of ``rows``).
    """
    return starter(plan, rows).initialize(
        plan.hierarchy, plan.gate_idx, rs, scale=scale, restart=init
    )


def refit_to_routing(plan, gate, pool, rows):
    """Refit the experts to the routed gate weights (``"refit"``), gate kept.

    After soft EM, each expert is refitted with the weights that the
    prediction gives it (hard: the rows whose most probable expert it is;
    top-k: its renormalised top-k weight), which depend on x only. The
    experts' probabilities are then those of the rows they will predict,
    not of the rows whose label they explained best.
    """
    designs, y, sample_weight = rows
    log_gate = gate.log_proba(designs.source)
    xp = get_namespace(log_gate)
    routed = route_log_weights(log_gate, routing=plan.routing, top_k=plan.top_k)
    weights = sample_weight[:, None] * xp.exp(routed)
    # An expert the routed gate gives fewer rows' worth (the weights have
    # mean one) than X has columns, plus one, keeps its soft-EM fit: a
    # refit would be underdetermined. All pools keep an expert whose
    # weights are zero.
    enough = xp.sum(weights, axis=0) >= designs.source.shape[1] + 1
    if not bool(xp.any(enough)):
        return
    weights = xp.where(enough[None, :], weights, xp.zeros_like(weights))
    fit_experts(pool, designs, y, weights)


def _run_with_moves(plan, rows, gate, pool, init, rs):
    """Run EM from a start, then its moves and the refit (a restart's run).

    The run is improved by split-and-merge EM (``split_merge`` moves,
    seeded by ``rs``; None, a continued fit, runs EM alone), then the
    experts are refitted to the routing where the plan asks for it.
    """
    run = run_em_on_rows(
        plan, gate, pool, rows, max_iter=plan.start.max_iter, init=init
    )
    # A run that reached max_iter is moved too: a move escapes a basin that
    # more iterations would not leave (benchmarks/README.md, "Measurements
    # behind the code's choices").
    if plan.start.split_merge and rs is not None:
        run = starter(plan, rows).split_and_merge(run, rs, init)
    if plan.refit:
        refit_to_routing(plan, run.gate, run.pool, rows)
    return run


def _continued(model, init, rs):
    """Return a fitted model's copies as the start of a continued fit."""
    return *model, "continued"


def fit_rows(plan, rows, random_states, *, n_jobs=None, continued=None):
    """Run a fit's restarts on in-memory rows; return its :class:`Fit`.

    Parameters
    ----------
    plan : FitPlan
    rows : tuple
        ``(designs, y, sample_weight)``: a :class:`~skmoe._backend.DesignCache`
        of X and the encoded target and relative weights, on one device.
    random_states : list
        One per restart (``[None]`` for a continued fit).
    n_jobs : int, default=None
        joblib's, for the restarts (which run as joblib tasks: the callables
        given to the driver are module functions, so that a backend that
        pickles its tasks, Dask's, can run them).
    continued : tuple, default=None
        ``(gate, pool)`` that a continued fit starts from (run in turn, by
        EM alone).
    """
    start = (
        functools.partial(fresh_start, plan, rows)
        if continued is None
        else functools.partial(_continued, continued)
    )
    restarts = fit_restarts(
        start,
        functools.partial(_run_with_moves, plan, rows),
        random_states,
        n_jobs=n_jobs,
        in_parallel=continued is None,
        verbose=plan.em.verbose,
    )
    return Fit(
        plan.hierarchy, restarts, functools.partial(_rows_log_likelihood, plan, rows)
    )


def fit_blocks(plan, X, y, sample_weight, random_states, *, continued=None):
    """Run a fit's restarts on the blocks of dask arrays; return its :class:`Fit`.

    Each start is fitted in memory on a random sample of the rows
    (:func:`~skmoe._init.start_rows`; all rows when there are few), with the
    gate's penalty scaled by all rows as in memory; EM then runs on all rows
    by :func:`~skmoe._engine.run_em` on their blocks, whose iterations are
    those of the in-memory EM. Restarts run in turn: every pass of each
    already runs on the blocks. ``y`` is encoded and ``sample_weight``
    relative (:func:`~skmoe._validation.validate_dask_fit_data`).
    """
    blocks = DaskBlocks(X, y, sample_weight)

    # The gate's penalty scales are those of all rows, as in memory, though
    # each start is fitted on a sample.
    scale = None
    if continued is None:
        scale = gate_penalty_scale(X, sample_weight, plan.gate_idx)

    def fresh(init, rs):
        rows, _ = start_rows(X.shape[0], rs, plan.em.gate_alpha)
        Xs, ys, ws = sample_rows(rows, X, y, sample_weight)
        start_rows_ = (DesignCache(Xs, host=Xs), ys, ws)
        return fresh_start(plan, start_rows_, init, rs, scale=scale)

    def run(gate, pool, init, rs):
        source = SummedRows(blocks)
        return run_em(
            gate, pool, source, plan.em, max_iter=plan.start.max_iter, init=init
        )

    start = fresh if continued is None else functools.partial(_continued, continued)
    restarts = fit_restarts(
        start, run, random_states, in_parallel=False, verbose=plan.em.verbose
    )
    # The blocks EM ran on (persisted once on a cluster) score the kept model.
    log_likelihood = functools.partial(_blocks_log_likelihood, plan, blocks)
    return Fit(plan.hierarchy, restarts, log_likelihood)


def fit_start(plan, rows, rs):
    """Return the :class:`Fit` of one run from a fresh start (``partial_fit``'s).

    The start of ``init_params`` and EM to convergence, without moves or
    the refit: stepwise EM continues from it.
    """
    gate, pool, kind = fresh_start(plan, rows, 0, rs)
    run = run_em_on_rows(plan, gate, pool, rows, max_iter=plan.start.max_iter)
    return Fit(plan.hierarchy, Restarts([run], [kind], 0), None)


def _rows_log_likelihood(plan, rows, gate, pool):
    """Return the weighted mean log-likelihood of in-memory rows, routed.

    Under the prediction's routing (``log_likelihood_`` of a fit whose
    E-step is not the likelihood, i.e. unless routing is soft).
    """
    designs, y, sample_weight = rows
    log_joint = routed_log_joint(
        gate, pool, designs.source, y, routing=plan.routing, top_k=plan.top_k
    )
    log_lik = logsumexp(log_joint, axis=1)
    return float(sample_weight @ log_lik) / float(sample_weight.sum())


def _blocks_log_likelihood(plan, blocks, gate, pool):
    """Return :func:`_rows_log_likelihood` of :class:`DaskBlocks`, summed."""
    found = blocks.sum(
        likelihood_statistics,
        gate=gate,
        pool=pool,
        routing=plan.routing,
        top_k=plan.top_k,
    )
    return float(found["log_likelihood"]) / float(found["weight"])
