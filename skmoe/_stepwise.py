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

from skmoe._softmax import newton_quadratic, quadratic_maximiser
from skmoe._statistics import em_statistics

__all__ = ["StepwiseEM"]

STEP_DECAY = 0.6


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
        shift = pool.target_shift(self.y_offset)
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
                    newton_quadratic(coef, level, weight)
                    for coef, level in zip(gate.coef, batch["gates"], strict=True)
                ],
                "experts": pool.running_statistics(batch["experts"], weight),
            }

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
            quadratic_maximiser(quadratic, total, alpha, coef.dtype, gate.penalty_scale)
            for quadratic, coef in zip(statistics["gates"], gate.coef, strict=True)
        ]
        pool.update_from_running(
            statistics["experts"], total * statistics["mass"], total
        )


def _blend(old, new, gamma):
    """Return ``(1 - gamma) old + gamma new`` over nested statistics."""
    if old is None:
        return new
    if isinstance(new, dict):
        return {key: _blend(old[key], new[key], gamma) for key in new}
    if isinstance(new, list):
        return [_blend(a, b, gamma) for a, b in zip(old, new, strict=True)]
    return (1.0 - gamma) * old + gamma * new
