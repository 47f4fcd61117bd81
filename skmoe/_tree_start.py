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
root's regions (a (4, 4) tree at 2e4 rows: training log-likelihood -2.18
against -1.36 from the placement start; benchmarks/README.md, "Trees").
"""

import numpy as np

from skmoe._backend import (
    add_intercept,
    get_namespace,
    take,
    to_device,
    to_numpy,
)
from skmoe._init import group_clusters, standardize

__all__ = ["tree_start"]

# A tree tries this many placements of its experts, each with a short EM
# run; the fit continues from the best ("restarts over pairings", DESIGN §2).
_PLACEMENT_CANDIDATES = 4
_PLACEMENT_EM_ITERATIONS = 10
# A later placement is kept only if it beats the best so far by more than
# rounding: mirrored placements reach the same objective, and which one a
# last-digit difference picks must not depend on how the sums were ordered.
_PLACEMENT_TIE = 1e-9


def tree_start(
    estimator, designs, y_encoded, sample_weight, hierarchy, gate_idx, rs, scale, flat
):
    """Return a tree's gate and experts, fitted from the flat start ``flat``.

    ``flat`` is the started (not yet fitted) flat mixture ``(gate, pool)``
    with as many experts as the tree has leaves; it is fitted by EM here.
    Each of the placements of its experts that :func:`group_clusters` ranks
    best is started (``_start``) and run ``_PLACEMENT_EM_ITERATIONS`` EM
    iterations; the best continues to convergence. EM cannot carry a flat
    gate into a tree exactly, so a tree can still end below its flat start:
    then every other placement runs to convergence too, and the highest
    objective is kept. The returned model has converged, so the fit's own
    EM loop stops after one iteration.
    """
    gate, pool = flat
    *_, flat_log_liks, _, _, resp = estimator._fit_once(
        gate, pool, designs, y_encoded, sample_weight, max_iter=estimator.max_iter
    )
    X, host_weight = designs.host(), to_numpy(sample_weight)
    # The placements are scored on the fit's device (a softmax fit per
    # candidate partition); the standardisation is NumPy's. Like a fresh
    # gate's start, the scores need no more than _INIT_GATE_MAX_ROWS
    # rows (measured: a (4, 4) fit at n=1e5 took 46 s against 52 s when
    # every row was scored). On the standardized features the plain
    # penalty is the gate's (its penalty_scale).
    labels = to_numpy(get_namespace(resp).argmax(resp, axis=1))
    rows, alpha = estimator._start_rows(X.shape[0], rs)
    if rows is None:
        rows = slice(None)
    Xa = to_device(
        add_intercept(standardize(X[rows][:, gate_idx], host_weight[rows])),
        designs.source,
    )
    placements = group_clusters(
        labels[rows],
        Xa,
        hierarchy,
        to_device(host_weight[rows], designs.source),
        rs,
        alpha=alpha,
        n_candidates=_PLACEMENT_CANDIDATES,
    )
    runs = []
    for expert_to_leaf in placements:
        leaf_resp = take(resp, np.argsort(expert_to_leaf), axis=1)
        gate, pool = estimator._start(
            designs, y_encoded, sample_weight, hierarchy, gate_idx, rs, leaf_resp, scale
        )
        objectives, log_liks, converged = estimator._fit_once(
            gate,
            pool,
            designs,
            y_encoded,
            sample_weight,
            max_iter=_PLACEMENT_EM_ITERATIONS,
        )[:3]
        runs.append([objectives[-1], log_liks[-1], converged, gate, pool])

    def finish(run):
        # EM to convergence from where the short run stopped.
        if not run[2]:
            objectives, log_liks, run[2] = estimator._fit_once(
                run[3],
                run[4],
                designs,
                y_encoded,
                sample_weight,
                max_iter=estimator.max_iter,
            )[:3]
            run[0], run[1] = objectives[-1], log_liks[-1]
        return run

    def better(run, other):
        return run[0] > other[0] + _PLACEMENT_TIE * abs(other[0])

    best = runs[0]
    for run in runs[1:]:
        if better(run, best):
            best = run
    finish(best)
    if best[1] < flat_log_liks[-1]:
        for run in runs:
            if run is not best and better(finish(run), best):
                best = run
    return best[3], best[4]
