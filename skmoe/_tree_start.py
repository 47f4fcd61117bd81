"""The start of a tree of gates: fitted flat experts placed at its leaves.

A tree's EM keeps the grouping of experts it starts from (which experts
share a gate), so a tree starts from the flat mixture with as many experts
as it has leaves, fitted by EM, and its experts are placed at the leaves in
the few ways :func:`~skmoe._init.group_clusters` ranks best (the groupings
a linear gate separates best). Each placement gets a short EM run; the best
runs to convergence, and if it ends below the flat mixture's
log-likelihood, so do the others (the best of all is kept).

Growing the tree top-down instead (Waterhouse & Robinson 1994: the root's
children fitted as a flat mixture, then each child's rows, weighted by its
responsibilities, as a mixture of its own children) was measured and
dropped: on ``make_hme_regression`` data the experts under one gate are
unrelated lines, so the root's flat fit finds single experts, not the
root's regions, and a (4, 4) tree ended far below the placement start
(benchmarks/README.md, "Trees").
"""

import numpy as np

from skmoe._backend import (
    add_intercept,
    get_namespace,
    take,
    to_device,
    to_numpy,
)
from skmoe._init import group_clusters, standardize, start_rows

__all__ = ["tree_start"]

# A tree tries this many placements of its experts, each with a short EM
# run; the fit continues from the best (docs/design.md §2.7).
_PLACEMENT_CANDIDATES = 4
_PLACEMENT_EM_ITERATIONS = 10
# Placements tried in all when the best ends below the flat start: on few
# rows, trees that ended below their flat start from 4 placements, and
# from 8, reached it with 16 (benchmarks/README.md, "Trees" and
# "Measurements behind the code's choices").
_FALLBACK_CANDIDATES = 16
# A later placement is kept only if it beats the best so far by more than
# rounding: mirrored placements reach the same objective, and which one a
# last-digit difference picks must not depend on how the sums were ordered.
_PLACEMENT_TIE = 1e-9


def tree_start(
    designs,
    sample_weight,
    hierarchy,
    gate_idx,
    rs,
    flat,
    *,
    run_em,
    start,
    alpha,
    max_iter,
):
    """Return a tree's gate and experts, fitted from the flat start ``flat``.

    ``flat`` is the started (not yet fitted) flat mixture ``(gate, pool)``
    with as many experts as the tree has leaves; it is fitted by EM here.
    Each of the ``_PLACEMENT_CANDIDATES`` placements of its experts that
    :func:`group_clusters` ranks best is started and run
    ``_PLACEMENT_EM_ITERATIONS`` EM iterations; the best is returned, and
    the fit's own EM loop continues it. A tree's gate cannot always carry
    the flat gate (nor can the tree always match the flat mixture: its
    gates are constrained), so a tree can end below its flat start's
    log-likelihood. If the best short run is below it, that run continues
    to convergence; if it is still below, the other placements, and more of
    the ranked ones (``_FALLBACK_CANDIDATES`` in all), run to convergence
    in the order of their short runs' objectives, until one reaches the
    flat start's log-likelihood; the highest objective is kept.

    The caller's hooks: ``run_em(gate, pool, max_iter)`` runs the start's
    EM and returns its :class:`~skmoe._engine.EMRun`; ``start(resp)``
    returns a tree's ``(gate, pool)`` fitted to leaf responsibilities
    ``resp`` (on the fit's device). ``alpha`` is the gate's penalty and
    ``max_iter`` the length of a run to convergence.
    """
    fitted = run_em(*flat, max_iter)
    flat_log_lik, resp = fitted.log_likelihoods[-1], fitted.responsibilities
    place = _placer(designs, sample_weight, hierarchy, gate_idx, rs, resp, alpha)

    def short_run(expert_to_leaf):
        gate, pool = start(take(resp, np.argsort(expert_to_leaf), axis=1))
        return _Run(run_em(gate, pool, _PLACEMENT_EM_ITERATIONS))

    def finish(run):
        # EM to convergence from where the short run stopped.
        if not run.converged:
            run.record(run_em(run.gate, run.pool, max_iter))
        return run

    placements = place(_PLACEMENT_CANDIDATES)
    runs = [short_run(placement) for placement in placements]
    best = _best(runs)
    # EM never lowers the objective: a short run at or above the flat start
    # ends there too, and the fit's own EM loop continues it.
    if best.log_lik < flat_log_lik and finish(best).log_lik < flat_log_lik:
        tried = {tuple(placement) for placement in placements}
        more = [p for p in place(_FALLBACK_CANDIDATES) if tuple(p) not in tried]
        others = [run for run in runs if run is not best]
        others += [short_run(placement) for placement in more]
        # Python's sort is stable: equal objectives keep their rank.
        for run in sorted(others, key=lambda run: -run.objective):
            if _better(finish(run), best):
                best = run
            if best.log_lik >= flat_log_lik:
                break
    return best.gate, best.pool


class _Run:
    """A placement's model and its last EM run's objective and log-likelihood."""

    def __init__(self, run):
        self.record(run)

    def record(self, run):
        """Keep the model and the last values of an :class:`~skmoe._engine.EMRun`."""
        self.gate, self.pool = run.gate, run.pool
        self.objective, self.log_lik = run.objectives[-1], run.log_likelihoods[-1]
        self.converged = run.converged


def _better(run, other):
    return run.objective > other.objective + _PLACEMENT_TIE * abs(other.objective)


def _best(runs):
    """Return the first run whose objective no later run beats by more than ties."""
    best = runs[0]
    for run in runs[1:]:
        if _better(run, best):
            best = run
    return best


def _placer(designs, sample_weight, hierarchy, gate_idx, rs, resp, alpha):
    """Return ``place(n)``: the ``n`` best placements of the flat experts.

    The placements are scored on the fit's device (a softmax fit per
    candidate partition); the standardisation is NumPy's. Like a fresh
    gate's start, the scores need no more than the rows of
    :func:`~skmoe._init.start_rows` (scoring every row made a large fit
    slower: ``benchmarks/README.md``, "Measurements behind the code's
    choices"), with the penalty
    ``alpha`` scaled to them. On the standardized features the plain
    penalty is the gate's (its ``penalty_scale``).
    """
    X, host_weight = designs.host(), to_numpy(sample_weight)
    labels = to_numpy(get_namespace(resp).argmax(resp, axis=1))
    rows, alpha = start_rows(X.shape[0], rs, alpha)
    if rows is None:
        rows = slice(None)
    Xa = to_device(
        add_intercept(standardize(X[rows][:, gate_idx], host_weight[rows])),
        designs.source,
    )
    weight = to_device(host_weight[rows], designs.source)

    def place(n_candidates):
        return group_clusters(
            labels[rows],
            Xa,
            hierarchy,
            weight,
            rs,
            alpha=alpha,
            n_candidates=n_candidates,
        )

    return place
