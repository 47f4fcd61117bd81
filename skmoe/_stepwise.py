"""Stepwise EM: online learning from running averages of statistics.

``partial_fit`` learns from one mini-batch at a time, in memory that does
not grow with the rows seen. After batch t, the running statistics move
towards the batch's (Cappé & Moulines 2009),

    s_t = (1 - gamma_t) s_{t-1} + gamma_t s(batch_t),  gamma_t = t ** -0.6,

and the M-step maximises the objective they define, with the priors
weighed against the total weight seen:

* linear experts: the running weighted Gram matrices, moments and sums of
  squares are the sufficient statistics of the weighted least squares
  problems and of the variances, so their M-step is exact;
* gates and logistic experts have no finite sufficient statistics: each
  batch contributes the Newton (quadratic) model of its objective at the
  coefficients it was computed with, the curvature ``H`` and ``H theta + g``,
  and the M-step maximises the running quadratic (penalised): on-line
  IRLS, as in Jordan & Jacobs (1994).

A step size ``gamma_t = t ** -kappa`` with ``1/2 < kappa <= 1`` forgets
the statistics of early, poorer models while still averaging the batches'
noise; kappa = 0.6 is a common choice in the stepwise-EM literature (Liang
& Klein 2009).
"""

import numpy as np

from skmoe._experts import MIN_EXPERT_WEIGHT, LinearGaussianExperts
from skmoe._softmax import newton_direction, softmax_hessian, uses_full_hessian
from skmoe._statistics import em_statistics

__all__ = ["StepwiseEM"]

STEP_DECAY = 0.6


def _curvature_times(curvature, coef, *, full):
    """Return ``H theta`` in the layout of ``coef`` (P, p, b)."""
    n_problems, p, n_classes = coef.shape
    if full:
        flat = np.reshape(np.transpose(coef, (0, 2, 1)), (n_problems, -1))
        product = np.einsum("kij,kj->ki", curvature, flat)
        return np.transpose(np.reshape(product, (n_problems, n_classes, p)), (0, 2, 1))
    return np.einsum("kcij,kjc->kic", curvature, coef)


def _quadratic(coef, statistics, weight):
    """Return the per-unit-weight Newton model of softmax problems at ``coef``."""
    n_problems, p, n_classes = coef.shape
    full = uses_full_hessian("auto", n_classes, p)
    curvature = softmax_hessian(statistics["gram"], n_problems, n_classes, full=full)
    rhs = _curvature_times(curvature, coef, full=full) + statistics["gradient"]
    return {"curvature": curvature / weight, "rhs": rhs / weight}


def _maximiser(quadratic, total, alpha, dtype, scale=None):
    """Return the coefficients that maximise the penalised running quadratic.

    The penalty is ``softmax_penalty``'s with ``alpha`` and ``scale``.
    """
    rhs = quadratic["rhs"]
    full = quadratic["curvature"].ndim == 3
    coef = newton_direction(
        total * quadratic["curvature"], total * rhs, alpha, full=full, scale=scale
    )
    # The intercepts are defined up to a common shift: centre them.
    coef[:, -1, :] -= np.mean(coef[:, -1, :], axis=1, keepdims=True)
    return coef.astype(dtype, copy=False)


class StepwiseEM:
    """The state of stepwise EM: running statistics and what they have seen.

    Its size depends on the model only (the number of experts, gates and
    features), never on the rows seen.

    Parameters
    ----------
    y_offset : float, default=0.0
        Subtracted from regression targets inside the statistics, so that
        the running sums of squares do not cancel when y is far from zero
        (the first batch's mean, for experts with an intercept).
    """

    def __init__(self, *, y_offset=0.0):
        self.y_offset = y_offset
        self.n_steps = 0
        self.weight_seen = 0.0
        self.statistics = None

    def step(self, gate, pool, X, y, sample_weight, *, routing, top_k, alpha):
        """Learn from one batch: update the statistics, then the model in place.

        Parameters
        ----------
        gate : GateTree
        pool : LinearGaussianExperts or LogisticExperts
        X : ndarray of shape (n_rows, n_features)
        y : ndarray of shape (n_rows,)
            Targets (class indices for a classifier).
        sample_weight : ndarray of shape (n_rows,)
        routing : {"soft", "hard", "topk"}
        top_k : int
        alpha : float
            The gates' L2 penalty (on features divided by the gate's
            ``penalty_scale``, which stays that of the start's rows).

        Returns
        -------
        mean_bound : float
            The batch's weighted mean log-bound under the model before the
            update (its log-likelihood for soft routing).
        """
        linear = isinstance(pool, LinearGaussianExperts)
        shift = self.y_offset if linear and pool.fit_intercept else 0.0
        if shift:
            # The same model on shifted targets: y - c with intercepts - c.
            y = y - shift
            pool.intercept_ -= shift
        try:
            batch = em_statistics(
                X, y, sample_weight, gate=gate, pool=pool, routing=routing, top_k=top_k
            )
            weight = float(batch["weight"])
            current = {
                "mass": batch["mass"] / weight,
                "gates": [
                    _quadratic(coef, level, weight)
                    for coef, level in zip(gate.coef, batch["gates"], strict=True)
                ],
            }
            experts = batch["experts"]
            if linear:
                current["experts"] = {
                    name: experts[name] / weight
                    for name in ("gram", "moment", "squares")
                }
            else:
                current["experts"] = _quadratic(pool.coef_, experts, weight)

            self.n_steps += 1
            self.weight_seen += weight
            gamma = self.n_steps**-STEP_DECAY
            self.statistics = _blend(self.statistics, current, gamma)
            self._m_step(gate, pool, alpha)
        finally:
            # Back to the targets' own scale, whether or not the step ran.
            if shift:
                pool.intercept_ += shift
        return float(batch["bound"]) / weight

    def _m_step(self, gate, pool, alpha):
        """Set the model to the maximiser of the running statistics' objective."""
        total = self.weight_seen
        statistics = self.statistics
        gate.coef = [
            _maximiser(quadratic, total, alpha, coef.dtype, gate.penalty_scale)
            for quadratic, coef in zip(statistics["gates"], gate.coef, strict=True)
        ]
        mass = total * statistics["mass"]
        experts = statistics["experts"]
        if isinstance(pool, LinearGaussianExperts):
            gram, moment = total * experts["gram"], total * experts["moment"]
            pool.solve(gram, moment, mass)
            beta = pool.coef_
            if pool.fit_intercept:
                beta = np.concatenate([beta, pool.intercept_[:, None]], axis=1)
            ssr = (
                total * experts["squares"]
                - 2.0 * np.einsum("kp,kp->k", beta, moment)
                + np.einsum("kp,kpq,kq->k", beta, gram, beta)
            )
            pool.update_variance(np.maximum(ssr, 0.0), mass)
        else:
            refit = mass > MIN_EXPERT_WEIGHT
            coef = _maximiser(experts, total, pool.alpha, pool.coef_.dtype)
            pool.coef_[refit] = coef[refit]


def _blend(old, new, gamma):
    """Return ``(1 - gamma) old + gamma new`` over nested statistics."""
    if old is None:
        return new
    if isinstance(new, dict):
        return {key: _blend(old[key], new[key], gamma) for key in new}
    if isinstance(new, list):
        return [_blend(a, b, gamma) for a, b in zip(old, new, strict=True)]
    return (1.0 - gamma) * old + gamma * new
