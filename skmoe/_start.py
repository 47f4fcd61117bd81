"""The start of EM: a model fitted to a start, screened, placed, then moved.

EM climbs to the optimum nearest its start, so the start decides much of
the fit. A start is a partition of the rows (:mod:`skmoe._init`) turned into
a model: smoothed into responsibilities, a fresh gate fitted to them and the
experts refitted with them (:meth:`Starter.fit_to`). ``init_params`` chooses
the partition; the default screen runs a few EM iterations from starts of
mixed kinds and continues the best (:meth:`Starter.flat`). A tree starts
from a flat mixture placed at its leaves (:func:`~skmoe._tree_start.tree_start`).
After EM converges, split-and-merge EM moves experts from where they crowd
to where they are missing (:meth:`Starter.split_and_merge`; its criteria
are in :mod:`skmoe._split_merge`).

This module never sees the estimator: a :class:`Starter` holds the fit's
rows, the options of the start (:class:`StartOptions`) and the estimator's
hooks as callables (a new model, an M-step, the experts' refit, an EM run),
which the estimator builds and passes down. The reasons for each choice are
in ``docs/design.md`` and the measurements in ``benchmarks/README.md``
("Starts", "Split-and-merge").
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from skmoe._backend import DesignCache, asarray_like, take, to_numpy
from skmoe._engine import EMRun
from skmoe._gating import penalty_scale
from skmoe._init import restart_kind, screen_kinds, start_labels, start_rows
from skmoe._split_merge import (
    Trial,
    candidate_responsibilities,
    merge_criterion,
    ranked_candidates,
    split_criterion,
    split_sides,
)
from skmoe._tree_start import tree_start

__all__ = [
    "StartOptions",
    "Starter",
    "expert_templates",
    "screen_iterations",
    "starts_soft",
]

# Share of uniform responsibility mixed into the initial assignment, so that
# every expert starts with some mass on every row (an empty k-means cluster
# must not leave an expert unfittable).
_INIT_SMOOTHING = 1e-2
# Newton steps that fit a fresh gate to the starting partition.
_INIT_GATE_NEWTON_STEPS = 8
# init_params="screen": every restart fits this many candidate starts of
# mixed kinds (skmoe._init.screen_kinds), runs this many EM iterations from
# each, and continues the best to convergence (Biernacki, Celeux & Govaert
# 2003, "short runs, then the best continues"). Measured in
# benchmarks/README.md ("Starts").
# A classifier's runs are longer: its EM histories cross late (on a 3-class
# classifier over 4 gated experts, 10 iterations ranked the starts wrongly
# and 30 kept the one that ends best: benchmarks/README.md, "Starts").
_SCREEN_CANDIDATES = 4
_SCREEN_ITERATIONS = 10
_SCREEN_ITERATIONS_CLASSIFIER = 30
# A split-and-merge move is accepted only if it raises the objective by more
# than tol and than this share of it: a real escape gains far more per row
# (benchmarks/README.md, "Split-and-merge"), and a move's run that ends on
# the same optimum must not win by the last digits of a run cut short.
_SPLIT_MERGE_TIE = 1e-6


def screen_iterations(classifier, max_iter):
    """Return the length of a screen's short runs (at most ``max_iter``)."""
    n_iter = _SCREEN_ITERATIONS_CLASSIFIER if classifier else _SCREEN_ITERATIONS
    return min(n_iter, max_iter)


def starts_soft(routing, train_routing, top_k, n_experts):
    """Return whether routed EM starts from a soft fit (top-k's "auto").

    Not when ``top_k`` keeps every expert: truncated EM is soft EM then,
    and its fit stays the soft mixture's.
    """
    return routing == "topk" and train_routing == "auto" and top_k < n_experts


def expert_templates(estimator, n_experts, random_state, *, default, check):
    """Return one unfitted clone of the expert template per expert.

    ``estimator`` is the estimator's parameter: one template, a list of one
    per expert, or None for ``default``; ``check`` raises on a template that
    cannot serve as an expert. Experts with an unset ``random_state`` get a
    seed drawn from ``random_state``, so that the mixture's ``random_state``
    makes the whole fit repeatable.
    """
    if isinstance(estimator, list):
        if len(estimator) != n_experts:
            raise ValueError(
                f"estimator is a list of {len(estimator)} estimators "
                f"but the mixture has {n_experts} experts; give one "
                "estimator per expert."
            )
        templates = [clone(e) for e in estimator]
    else:
        template = default if estimator is None else estimator
        templates = [clone(template) for _ in range(n_experts)]
    for template in templates:
        check(template)
        seeds = {
            name: random_state.randint(np.iinfo(np.int32).max)
            for name, value in template.get_params().items()
            if name.endswith("random_state") and value is None
        }
        template.set_params(**seeds)
    return templates


@dataclass(frozen=True)
class StartOptions:
    """The estimator's parameters that a start reads.

    Attributes
    ----------
    init_params : str
        The kind of start (``"screen"`` or a kind of :mod:`skmoe._init`).
    classifier : bool
        Whether the experts classify (the screen's kinds and length, the
        residuals a split divides).
    gate_alpha : float
        The gate's penalty.
    max_iter : int
        The length of an EM run to convergence.
    routing : str
        The E-step routing of the start's EM runs.
    soft_first : bool
        Whether a flat start is fitted by soft EM to convergence first
        (:func:`starts_soft`).
    split_merge : int
        The number of split-and-merge moves tried per round.
    tol : float
        EM's tolerance; a move is accepted above it.
    verbose : int
        ``verbose >= 1`` prints every move.
    """

    init_params: str
    classifier: bool
    gate_alpha: float
    max_iter: int
    routing: str
    soft_first: bool
    split_merge: int
    tol: float
    verbose: int


@dataclass(frozen=True)
class Starter:
    """The start of one fit: its rows, its options and the estimator's hooks.

    Attributes
    ----------
    options : StartOptions
    designs : DesignCache
        The fit's designs (on its device).
    y_encoded : array of shape (n_samples,)
        The encoded target, on the fit's device.
    sample_weight : array of shape (n_samples,)
        Relative sample weights, on the fit's device.
    new_model : callable
        ``new_model(hierarchy, gate_idx, rs, scale)`` returns an unfitted
        ``(gate, pool)`` (the gate's penalty scale ``scale``, the experts'
        seeds drawn from ``rs``).
    m_step : callable
        ``m_step(gate, pool, resp, *, gate_steps)``: the fit's M-step on all
        rows.
    fit_experts : callable
        ``fit_experts(pool, weights)`` refits the experts with per-expert
        row weights.
    run_em : callable
        ``run_em(gate, pool, *, max_iter, init=None, routing=None)`` runs EM
        and returns its :class:`~skmoe._engine.EMRun`.
    target_columns : callable
        ``target_columns(y)`` returns a NumPy encoded target as columns (the
        value of a regression, the one-hot class of a classification).
    """

    options: StartOptions
    designs: Any
    y_encoded: Any
    sample_weight: Any
    new_model: Callable
    m_step: Callable
    fit_experts: Callable
    run_em: Callable
    target_columns: Callable

    def fit_to(self, hierarchy, gate_idx, rs, resp, scale):
        """Return a model fitted to starting responsibilities ``resp``.

        ``scale`` is the gate's ``penalty_scale``. A fresh gate is fitted to
        the start, not just nudged towards it: ``_INIT_GATE_NEWTON_STEPS``
        Newton steps, on the rows of :func:`~skmoe._init.start_rows`.
        """
        designs, sample_weight = self.designs, self.sample_weight
        gate, pool = self.new_model(hierarchy, gate_idx, rs, scale)
        rows, alpha = start_rows(designs.source.shape[0], rs, self.options.gate_alpha)
        if rows is None:
            self.m_step(gate, pool, resp, gate_steps=_INIT_GATE_NEWTON_STEPS)
            return gate, pool
        gate.m_step(
            DesignCache(take(designs.source, rows, axis=0)),
            take(resp, rows, axis=0),
            take(sample_weight, rows, axis=0),
            alpha=alpha,
            n_steps=_INIT_GATE_NEWTON_STEPS,
        )
        self.fit_experts(pool, sample_weight[:, None] * resp)
        return gate, pool

    def initialize(self, hierarchy, gate_idx, rs, *, scale=None, restart=0):
        """Return a gate tree and an expert pool fitted to a fresh start.

        Returns ``(gate, pool, kind)``, ``kind`` the kind of start. The
        gate's penalty acts on its features standardized by ``scale``
        (:func:`~skmoe._gating.penalty_scale` of the rows at hand when None;
        a Dask fit gives that of all its rows). ``restart`` numbers the
        restart (its kind of start depends on it, :meth:`flat`).

        A flat mixture starts from :meth:`flat`. A tree starts from the flat
        mixture with as many experts, fitted by EM: its experts are placed
        at the leaves in the few ways :func:`~skmoe._init.group_clusters`
        ranks best, each placement gets a short EM run, and the best is
        returned, run to convergence (:func:`~skmoe._tree_start.tree_start`).
        EM keeps the placement it starts from, so it is chosen with care
        (docs/design.md §2.7). Where routed EM
        starts from a soft fit (top-k's ``train_routing="auto"``), the
        start's EM runs are soft and a flat start is fitted by soft EM
        (:meth:`soft`).
        """
        options = self.options
        # The start is computed on the CPU with NumPy (k-means), whatever
        # the backend, and its result moved to the fit's device.
        if scale is None:
            scale = penalty_scale(
                self.designs.host()[:, gate_idx], to_numpy(self.sample_weight)
            )
        flat = (math.prod(hierarchy),)
        gate, pool, kind = self.flat(flat, gate_idx, rs, scale, restart)
        if len(hierarchy) == 1:
            return *self.soft(gate, pool), kind
        gate, pool = tree_start(
            self.designs,
            self.sample_weight,
            hierarchy,
            gate_idx,
            rs,
            (gate, pool),
            run_em=lambda gate, pool, max_iter: self.run_em(
                gate, pool, max_iter=max_iter, routing=options.routing
            ),
            start=lambda resp: self.fit_to(hierarchy, gate_idx, rs, resp, scale),
            alpha=options.gate_alpha,
            max_iter=options.max_iter,
        )
        return gate, pool, kind

    def flat(self, hierarchy, gate_idx, rs, scale, restart):
        """Return a flat model fitted to a start, and the start's kind.

        ``init_params="screen"`` fits ``_SCREEN_CANDIDATES`` starts of mixed
        kinds, runs EM a few iterations (:func:`screen_iterations`) from
        each, and returns the model of the best objective (where its run
        stopped: EM continues from there); any other ``init_params`` gives
        the start of :func:`~skmoe._init.restart_kind`.
        """
        options = self.options
        X, host_weight = self.designs.host(), to_numpy(self.sample_weight)
        host_y = to_numpy(self.y_encoded)
        n_experts = math.prod(hierarchy)

        def start(kind):
            # The partition smoothed: random soft responsibilities would
            # make all experts alike, and EM would stall there.
            labels = start_labels(
                kind,
                X,
                self.target_columns(host_y),
                host_y,
                n_experts,
                host_weight,
                rs,
            )
            resp = np.full((X.shape[0], n_experts), _INIT_SMOOTHING / n_experts)
            resp[np.arange(X.shape[0]), labels] += 1.0 - _INIT_SMOOTHING
            resp = asarray_like(resp.astype(X.dtype), self.designs.source)
            return self.fit_to(hierarchy, gate_idx, rs, resp, scale)

        if options.init_params != "screen":
            kind = restart_kind(options.init_params, restart)
            return *start(kind), kind
        best = None
        n_iter = screen_iterations(options.classifier, options.max_iter)
        for kind in screen_kinds(_SCREEN_CANDIDATES, options.classifier):
            gate, pool = start(kind)
            objective = self.run_em(
                gate, pool, max_iter=n_iter, routing=options.routing
            ).objectives[-1]
            # The first of equal objectives, as fit keeps among restarts.
            if best is None or objective > best[0]:
                best = (objective, gate, pool, kind)
        return best[1], best[2], f"screen:{best[3]}"

    def soft(self, gate, pool):
        """Fit a flat start by soft EM where routed EM starts from a soft fit.

        Top-k routing trained by default (``train_routing="auto"``) runs
        soft EM to convergence from the start, then truncated EM from there
        (the fit's own EM loop). Its history is not recorded: the fit's
        histories are those of the truncated EM, whose objective differs
        (``log_likelihood_history_``), as a tree's flat start is not
        recorded either. Returns ``(gate, pool)``, fitted in place.
        """
        if self.options.soft_first:
            self.run_em(gate, pool, max_iter=self.options.max_iter, routing="soft")
        return gate, pool

    def split_and_merge(self, run, rs, init):
        """Improve a run by split-and-merge EM (Ueda et al. 2000).

        ``run`` is an :class:`~skmoe._engine.EMRun`. Up to ``split_merge``
        moves of :func:`~skmoe._split_merge.ranked_candidates` are tried,
        best first: each starts a model from its responsibilities
        (:meth:`fit_to`, the gate refitted to them, seeded by ``rs``) and
        runs EM (stopped early once hopeless,
        :class:`~skmoe._split_merge.Trial`); the first whose objective
        exceeds the current one by more than ``tol`` (and
        ``_SPLIT_MERGE_TIE`` of it) is accepted, and the moves are ranked
        afresh from it, until no move improves (at most one accepted move
        per expert). ``init`` numbers the initialisation in verbose output.
        Ueda's partial EM (the three moved experts alone first) is replaced
        by EM on all experts from the move's start, in which the experts
        that did not move start where they were. The history of an accepted
        move continues the kept run's from its first iteration above the
        model it replaced, so the objective history never decreases;
        ``n_iter`` counts the iterations in it and ``converged`` is the
        last accepted move's.
        """
        options = self.options
        objectives, log_liks = run.objectives, run.log_likelihoods
        converged, n_iter = run.converged, run.n_iter
        gate, pool, resp = run.gate, run.pool, run.responsibilities
        hierarchy, gate_idx = gate.hierarchy, gate.feature_indices
        # At most one accepted move per expert: a run cut short by max_iter
        # (or tol=0) could otherwise gain a little at every round, as if
        # EM went on.
        improved, rounds = True, 0
        while improved and rounds < gate.n_leaves:
            improved, rounds = False, rounds + 1
            for move, start in self.split_merge_moves(gate, pool, resp):
                trial_gate, trial_pool = self.fit_to(
                    hierarchy,
                    gate_idx,
                    rs,
                    asarray_like(start, self.designs.source),
                    gate.penalty_scale,
                )
                trial_gate.pruned = gate.pruned.copy()
                current = objectives[-1]
                trial = self.run_em(
                    trial_gate,
                    trial_pool,
                    max_iter=options.max_iter,
                    init=Trial(init, move, current, options.tol),
                )
                # A rise below tol is within EM's own convergence noise, one
                # below _SPLIT_MERGE_TIE within that of a run cut short (tol=0
                # or max_iter): a move back to the same optimum is no move.
                margin = max(options.tol, _SPLIT_MERGE_TIE * abs(current))
                improved = trial.objectives[-1] > current + margin
                if options.verbose:
                    print(
                        f"Initialization {init}, split-and-merge {move}: "
                        f"objective {trial.objectives[-1]:.6f} against {current:.6f}, "
                        f"{'accepted' if improved else 'rejected'}"
                    )
                if improved:
                    below = [t for t, o in enumerate(trial.objectives) if o <= current]
                    first = below[-1] + 1 if below else 0
                    objectives = [*objectives, *trial.objectives[first:]]
                    log_liks = [*log_liks, *trial.log_likelihoods[first:]]
                    converged, n_iter = trial.converged, len(objectives) - 1
                    gate, pool, resp = trial_gate, trial_pool, trial.responsibilities
                    break
        return EMRun(objectives, log_liks, converged, n_iter, gate, pool, resp)

    def split_merge_moves(self, gate, pool, resp):
        """Return the split-and-merge moves of a fitted model, best first.

        A list of ``(move, start)``: a move of
        :func:`~skmoe._split_merge.ranked_candidates` and its start as NumPy
        leaf responsibilities. Pruned experts take no part.
        """
        designs, y_encoded, sample_weight = (
            self.designs,
            self.y_encoded,
            self.sample_weight,
        )
        active = ~gate.pruned
        log_expert = pool.log_likelihood(designs.source, y_encoded)
        deficit = split_criterion(resp, log_expert, sample_weight)
        deficit[~active] = -np.inf
        moves = ranked_candidates(
            merge_criterion(resp, sample_weight),
            deficit,
            active=active,
            n_candidates=self.options.split_merge,
        )
        if not moves:
            return []
        # An expert is split along its residuals (regressor: y minus its
        # prediction; classifier: one-hot classes minus its probabilities).
        host_resp, host_weight = to_numpy(resp), to_numpy(sample_weight)
        target = self.target_columns(to_numpy(y_encoded))
        if self.options.classifier:
            fitted = to_numpy(pool.predict_proba(designs.source))
        else:
            fitted = to_numpy(pool.predict(designs.source))[:, :, None]
        sides = np.zeros(host_resp.shape, dtype=bool)
        for k in {k for move in moves for k in move[1:]}:
            sides[:, k] = split_sides(
                target - fitted[:, k], host_weight * host_resp[:, k]
            )
        return [
            (
                move,
                candidate_responsibilities(
                    host_resp, move, sides, active=active, smoothing=_INIT_SMOOTHING
                ),
            )
            for move in moves
        ]
