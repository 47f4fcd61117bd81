"""EM of logistic experts on cache-sized chunks of transposed rows.

The classifier's counterpart of :class:`~skmoe._fused.FusedRows`: the same
chunks, layout and passes (see ``_fused``), with the logistic experts'
Newton statistics computed in the E-step's pass exactly as the gates' are.
Logistic experts are softmax regressions too, with one-hot targets and the
responsibilities as weights: one :func:`~skmoe._fused.softmax_chunk_sums`
serves both, and their curvature Gram matrices come from the same GEMM as
the gates' when they see the same columns.

An EM iteration is one full pass (the E-step and every sum the M-step
needs), then a pass that scores the gates' line search and one that scores
the experts': each of those evaluates one softmax per chunk, on the
responsibilities kept from the E-step.
"""

import numpy as np

from skmoe._experts import PROBA_FLOOR
from skmoe._fused import (
    FusedRows,
    _chunk_rows,
    _GramSums,
    _leaf_log_proba,
    _node_posteriors,
    _softmax_levels,
    _transposed_coef,
    softmax_chunk_sums,
    softmax_sums,
    supports_fused,
)
from skmoe._softmax import uses_full_hessian

__all__ = ["FusedLogisticRows", "fused_rows"]


def fused_rows(designs, y, sample_weight, *, gate, pool):
    """Return the chunked source of statistics of a fit, or None.

    :class:`FusedLogisticRows` for logistic experts and
    :class:`~skmoe._fused.FusedRows` for linear ones, on NumPy data; None
    for anything else (the whole-array EM).
    """
    if not isinstance(designs.source, np.ndarray):
        return None
    if pool.fused_kind == "logistic":
        return FusedLogisticRows(designs, y, sample_weight, gate=gate, pool=pool)
    if supports_fused(designs.source, pool):
        return FusedRows(designs, y, sample_weight, gate=gate, pool=pool)
    return None


class FusedLogisticRows(FusedRows):
    """The rows of an in-memory classifier fit, chunked for EM's passes.

    A source of statistics for :func:`~skmoe._engine.run_em`: the
    sums of :mod:`skmoe._statistics` for logistic experts, from passes over
    the chunks that keep the E-step's responsibilities.

    Parameters
    ----------
    designs : DesignCache
        The fit's designs (NumPy source).
    y : ndarray of shape (n_samples,)
        Class indices.
    sample_weight : ndarray of shape (n_samples,)
    gate : GateTree
    pool : LogisticExperts
    """

    def __init__(self, designs, y, sample_weight, *, gate, pool):
        self.gate_x = designs.transposed(columns=gate.feature_indices)
        self.expert_x = designs.transposed(intercept=True)
        self.y = y
        self.sample_weight = sample_weight
        self.n_rows = y.shape[0]
        self.chunk_rows = _chunk_rows(self.gate_x)
        n_classes = pool.classes.shape[0]
        # The one-hot targets, (n_classes, n_samples): the experts' fits and
        # gradients are those of soft targets.
        self.targets = np.zeros((n_classes, self.n_rows), dtype=self.gate_x.dtype)
        self.targets[y, np.arange(self.n_rows)] = 1.0
        self.resp = np.empty((pool.n_experts, self.n_rows), dtype=self.gate_x.dtype)

    # The statistics -----------------------------------------------------------

    def em_statistics(self, *, gate, pool, routing, top_k):
        """Return the E-step at the model and the M-step's sums.

        Those of :func:`~skmoe._statistics.em_statistics` over the rows; the
        responsibilities are kept for the trials and further Newton steps.
        """
        return self._pass(gate, pool, routing, top_k)

    def trial_statistics(
        self,
        *,
        gate,
        gate_trials=None,
        expert_trials=None,
        newton_at_first_trial=False,
        **model,
    ):
        """Return the fits of the line searches' trials.

        Those of :func:`~skmoe._statistics.trial_statistics`, on the
        responsibilities of the last :meth:`em_statistics` (``model``: the
        rest of the model they were computed at, unused).
        """
        statistics = {}
        if gate_trials:
            statistics["gates"] = self._trial_pass(gate, gate_trials)
        if expert_trials is not None:
            statistics["experts"] = self._expert_trial_pass(expert_trials)
            if newton_at_first_trial:
                statistics["newton"] = self.expert_statistics(coef=expert_trials[0])
        return statistics

    def expert_statistics(self, *, coef, **model):
        """Return the experts' Newton statistics at ``coef``, one pass.

        Those of :func:`~skmoe._statistics.expert_statistics`, weighted by
        the responsibilities of the last :meth:`em_statistics`.
        """
        n_experts, p, n_classes = coef.shape
        full = uses_full_hessian("auto", n_classes, p)
        coef_t = _transposed_coef(coef)
        n_blocks = n_classes * (n_classes - 1) // 2 if full else n_classes
        V = np.empty((n_experts * n_blocks, self.chunk_rows), dtype=self.gate_x.dtype)
        sums = _GramSums(self.expert_x, V.shape[0], self.chunk_rows, intercept=True)
        fit, gradient = np.zeros(n_experts), np.zeros((n_experts * n_classes, p))
        for rows in self._chunks():
            x, n = self.expert_x[:, rows], rows.stop - rows.start
            ((log_proba, proba),) = _softmax_levels([(coef_t, n_experts)], x)
            weighted = self.resp[:, rows] * self.sample_weight[rows]
            chunk_fit, chunk_gradient = softmax_chunk_sums(
                log_proba,
                proba,
                weighted[:, None, :] * self.targets[:, rows],
                weighted,
                x,
                V[:, :n],
                full=full,
            )
            fit += chunk_fit
            gradient += chunk_gradient
            sums.add(x, V[:, :n])
        return softmax_sums(coef.shape, fit, gradient, sums.grams(), full=full)

    # Passes over the chunks ---------------------------------------------------

    def _pass(self, gate, pool, routing, top_k):
        """Return the E-step's statistics at a model, from one pass.

        Writes the responsibilities to ``self.resp``.
        """
        problems = [*gate.coef, pool.coef_]
        full = [uses_full_hessian("auto", c.shape[2], c.shape[1]) for c in problems]
        levels = [(_transposed_coef(coef), coef.shape[0]) for coef in gate.coef]
        expert_level = [(_transposed_coef(pool.coef_), pool.n_experts)]
        shared = self.gate_x is self.expert_x
        # Rows of every problem batch's curvature weights in the chunk's
        # buffer: the gate levels', then the experts'.
        n_columns = [
            c.shape[0] * (c.shape[2] * (c.shape[2] - 1) // 2 if f else c.shape[2])
            for c, f in zip(problems, full, strict=True)
        ]
        bounds = np.cumsum([0, *n_columns])
        V = np.empty((bounds[-1], self.chunk_rows), dtype=self.gate_x.dtype)
        n_gate = bounds[-2] if not shared else bounds[-1]
        gate_sums = _GramSums(self.gate_x, n_gate, self.chunk_rows, intercept=True)
        if not shared:
            expert_sums = _GramSums(
                self.expert_x, n_columns[-1], self.chunk_rows, intercept=True
            )
        bound, mass = 0.0, np.zeros(pool.n_experts)
        fits = [np.zeros(c.shape[0]) for c in problems]
        gradients = [np.zeros((c.shape[0] * c.shape[2], c.shape[1])) for c in problems]

        for rows in self._chunks():
            x, w = self.gate_x[:, rows], self.sample_weight[rows]
            expert_x, targets = self.expert_x[:, rows], self.targets[:, rows]
            n = x.shape[1]
            softmax = _softmax_levels(levels, x)
            ((expert_log_proba, expert_proba),) = _softmax_levels(
                expert_level, expert_x
            )
            # log P_k(y | x) as LogisticExperts.log_likelihood computes it:
            # the probabilities floored and renormalised.
            floored = np.maximum(expert_proba, PROBA_FLOOR)
            log_joint = np.log(
                np.einsum("kcr,cr->kr", floored, targets) / floored.sum(axis=1)
            )
            log_joint += _leaf_log_proba([lp for lp, _ in softmax], gate.pruned)
            log_bound = self._posterior(log_joint, self.resp[:, rows], routing, top_k)
            weighted = self.resp[:, rows] * w
            bound += float(w @ log_bound)
            mass += weighted.sum(axis=1)

            posteriors = _node_posteriors(weighted, gate.hierarchy)
            parts = [
                (lp, proba, posteriors[level + 1].reshape(lp.shape), posteriors[level])
                for level, (lp, proba) in enumerate(softmax)
            ]
            parts.append(
                (
                    expert_log_proba,
                    expert_proba,
                    weighted[:, None, :] * targets,
                    weighted,
                )
            )
            xs = [x] * len(softmax) + [expert_x]
            for j, (part, part_x) in enumerate(zip(parts, xs, strict=True)):
                fit, gradient = softmax_chunk_sums(
                    *part, part_x, V[bounds[j] : bounds[j + 1], :n], full=full[j]
                )
                fits[j] += fit
                gradients[j] += gradient
            gate_sums.add(x, V[:n_gate, :n])
            if not shared:
                expert_sums.add(expert_x, V[n_gate:, :n])

        if shared:
            grams = np.split(gate_sums.grams(), bounds[1:-1], axis=0)
        else:
            grams = [
                *np.split(gate_sums.grams(), bounds[1:-2], axis=0),
                expert_sums.grams(),
            ]
        *gate_parts, experts = [
            softmax_sums(c.shape, fit, gradient, gram, full=f)
            for c, fit, gradient, gram, f in zip(
                problems, fits, gradients, grams, full, strict=True
            )
        ]
        return {
            "n_rows": self.n_rows,
            "weight": float(np.sum(self.sample_weight, dtype=np.float64)),
            "bound": bound,
            "mass": mass,
            "gates": gate_parts,
            "experts": experts,
        }

    def _expert_trial_pass(self, trials):
        """Return the fits of several trials per expert, (n_trials, K)."""
        n_trials, n_experts = trials.shape[:2]
        level = [
            (
                _transposed_coef(trials.reshape(-1, *trials.shape[2:])),
                n_trials * n_experts,
            )
        ]
        fits = np.zeros((n_trials, n_experts))
        for rows in self._chunks():
            x = self.expert_x[:, rows]
            weighted = self.resp[:, rows] * self.sample_weight[rows]
            ((log_proba, _),) = _softmax_levels(level, x, with_proba=False)
            fits += np.einsum(
                "kcr,tkcr->tk",
                weighted[:, None, :] * self.targets[:, rows],
                log_proba.reshape(n_trials, n_experts, -1, x.shape[1]),
            )
        return fits
