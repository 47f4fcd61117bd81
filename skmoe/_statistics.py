"""Sufficient statistics of EM on a block of rows.

EM on data that is not one array in memory (the blocks of a Dask array, the
mini-batches of ``partial_fit``) splits every iteration in two halves: per
block, the E-step and the sums that the M-step needs; then, once, the
M-step from the sums. This module is the per-block half, for mixtures of
vectorized experts (linear-Gaussian or logistic) under a tree of gates:

* :func:`em_statistics`: the E-step at the model, and what each M-step
  needs at the model: the experts' weighted Gram matrices and moments (or
  the logistic experts' Newton statistics) and every gate's Newton
  statistics (fit, gradient and curvature Gram matrices);
* :func:`trial_statistics`: the fits of trial coefficients for the gates'
  and logistic experts' line searches, and the linear experts' squared
  residuals at their new coefficients (for the variances);
* :func:`expert_statistics`: the logistic experts' Newton statistics at
  given coefficients, for the further Newton steps of their M-step.

Summed over blocks they equal what the in-memory EM computes on the whole
array (``_blockwise``); averaged over mini-batches they are the state of
stepwise EM (``_stepwise``). Every function recomputes the E-step of the
model it is given rather than storing responsibilities: memory stays that
of a block. All take and return NumPy arrays; sums are float64.
"""

import numpy as np

from skmoe._backend import DesignCache, logsumexp
from skmoe._routing import log_posterior, routed_log_joint
from skmoe._softmax import one_hot, softmax_statistics, softmax_trial_fits

__all__ = [
    "SummedBlocks",
    "block_posterior",
    "em_statistics",
    "expert_statistics",
    "likelihood_statistics",
    "sum_statistics",
    "trial_statistics",
]


# ---------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------


def block_posterior(gate, pool, designs, y, *, routing, top_k):
    """Return the E-step of one block: bound, responsibilities, gate levels.

    Parameters
    ----------
    gate : GateTree
    pool : LinearGaussianExperts or LogisticExperts
    designs : DesignCache
        The block's designs.
    y : ndarray of shape (n_rows,)
        Targets (class indices for a classifier).
    routing : {"soft", "hard", "topk"}
    top_k : int

    Returns
    -------
    log_bound : ndarray of shape (n_rows,)
    resp : ndarray of shape (n_rows, n_experts)
    level_log_probas : list of ndarray
        :meth:`GateTree.level_log_probas` of the block.
    """
    X = designs.source
    level_log_probas = gate.level_log_probas(X, design=gate.design(designs))
    log_joint = gate.leaf_log_proba(level_log_probas) + pool.log_likelihood(X, y)
    log_bound, log_resp = log_posterior(log_joint, routing=routing, top_k=top_k)
    return log_bound, np.exp(log_resp), level_log_probas


def _float64(tree):
    """Return a nested structure of arrays with every array in float64."""
    if isinstance(tree, dict):
        return {key: _float64(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [_float64(value) for value in tree]
    return np.asarray(tree, dtype=np.float64)


def sum_statistics(parts):
    """Return the element-wise sum of nested statistics (dicts, lists, arrays).

    Parameters
    ----------
    parts : iterable of dict
        Statistics of blocks, all of the same structure.

    Returns
    -------
    total : dict
    """

    def add(a, b):
        if isinstance(a, dict):
            return {key: add(a[key], b[key]) for key in a}
        if isinstance(a, list):
            return [add(x, y) for x, y in zip(a, b, strict=True)]
        return a + b

    total = None
    for part in parts:
        total = part if total is None else add(total, part)
    return total


# ---------------------------------------------------------------------------
# Per-block statistics
# ---------------------------------------------------------------------------


def em_statistics(X, y, sample_weight, *, gate, pool, routing, top_k):
    """Return the E-step of a block at the model and the M-step's sums.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    y : ndarray of shape (n_rows,)
        Targets (class indices for a classifier).
    sample_weight : ndarray of shape (n_rows,)
    gate : GateTree
    pool : LinearGaussianExperts or LogisticExperts
    routing : {"soft", "hard", "topk"}
    top_k : int

    Returns
    -------
    statistics : dict
        ``n_rows``, ``weight`` (sum of the weights), ``bound`` (weighted sum
        of the E-step's log-bound), ``mass`` (each expert's responsibility
        mass); ``gates``: per level a dict of ``fit``, ``gradient`` and
        ``gram`` (the Newton statistics of its softmax problems at the
        current coefficients); ``experts``: ``gram``, ``moment`` and
        ``squares`` (weighted sum of y**2) for linear experts, or ``fit``,
        ``gradient`` and ``gram`` for logistic ones.
    """
    designs = DesignCache(X)
    log_bound, resp, level_log_probas = block_posterior(
        gate, pool, designs, y, routing=routing, top_k=top_k
    )
    weights = sample_weight[:, None] * resp
    gate_design = gate.design(designs)
    gate_parts = [
        softmax_statistics(gate_design.X, coef, targets, problem_weights, log_proba=lp)
        for coef, (targets, problem_weights), lp in zip(
            gate.coef, gate.problems(resp, sample_weight), level_log_probas, strict=True
        )
    ]
    curvature = [V for _, _, V in gate_parts]
    # Pools whose M-step takes the Gram matrices of their weights on the
    # gate's design get them from the gate's product (one GEMM).
    if pool.gram_design(designs) is gate_design:
        expert_gram, *gate_grams = gate_design.grams([weights, *curvature])
    else:
        expert_gram, gate_grams = None, gate_design.grams(curvature)
    experts = pool.block_statistics(designs, y, weights, gram=expert_gram)
    statistics = {
        "n_rows": X.shape[0],
        "weight": np.sum(sample_weight),
        "bound": sample_weight @ log_bound,
        "mass": np.sum(weights, axis=0),
        "gates": [
            {"fit": fit, "gradient": gradient, "gram": gram}
            for (fit, gradient, _), gram in zip(gate_parts, gate_grams, strict=True)
        ],
        "experts": experts,
    }
    return _float64(statistics)


def expert_statistics(
    X,
    y,
    sample_weight,
    *,
    gate,
    pool,
    routing,
    top_k,
    coef,
    weights=None,
    designs=None,
):
    """Return logistic experts' Newton statistics at ``coef`` on a block.

    The experts' weights come from the E-step at the model (``gate`` and
    ``pool``), whatever ``coef`` is: the M-step's Newton steps all fit the
    same responsibilities.

    Returns
    -------
    statistics : dict
        ``fit`` (n_experts,), ``gradient`` (n_experts, p, n_classes) and
        ``gram`` (the curvature Gram matrices).
    """
    if designs is None:
        designs = DesignCache(X)
    if weights is None:
        _, resp, _ = block_posterior(
            gate, pool, designs, y, routing=routing, top_k=top_k
        )
        weights = sample_weight[:, None] * resp
    return _float64(pool.block_statistics(designs, y, weights, coef=coef))


def trial_statistics(
    X,
    y,
    sample_weight,
    *,
    gate,
    pool,
    routing,
    top_k,
    gate_trials=None,
    expert_trials=None,
    linear_coef=None,
    newton_at_first_trial=False,
):
    """Return what the line searches and the variance update need on a block.

    The responsibilities are those of the E-step at the model (``gate`` and
    ``pool``, before the M-step): the trials are scored on the targets
    they were computed for.

    Parameters
    ----------
    X, y, sample_weight, gate, pool, routing, top_k
        As in :func:`em_statistics`.
    gate_trials : list of ndarray of shape (n_trials, P_l, p, b_l), default=None
        Trial coefficients of every level's gates.
    expert_trials : ndarray of shape (n_trials, K, p, n_classes), default=None
        Trial coefficients of logistic experts.
    linear_coef : tuple of ndarray, default=None
        ``(coef, intercept)`` of linear experts: their weighted squared
        residuals are returned.
    newton_at_first_trial : bool, default=False
        Also return :func:`expert_statistics` at ``expert_trials[0]`` (the
        full Newton step, nearly always accepted): the next Newton step of
        the logistic experts then needs no pass of its own.

    Returns
    -------
    statistics : dict
        ``gates`` (per level, the trials' fits, (n_trials, P_l)),
        ``experts`` (the trials' fits, (n_trials, K)), ``squared_residuals``
        (K,) and ``newton`` (:func:`expert_statistics` at the first expert
        trial), for what was asked.
    """
    designs = DesignCache(X)
    _, resp, _ = block_posterior(gate, pool, designs, y, routing=routing, top_k=top_k)
    statistics = {}
    if gate_trials is not None:
        Xa = gate.design(designs).X
        statistics["gates"] = [
            softmax_trial_fits(Xa, trials, targets, problem_weights)
            for trials, (targets, problem_weights) in zip(
                gate_trials, gate.problems(resp, sample_weight), strict=True
            )
        ]
    weights = sample_weight[:, None] * resp
    if expert_trials is not None:
        statistics["experts"] = softmax_trial_fits(
            designs.get(intercept=True).X,
            expert_trials,
            one_hot(y, expert_trials.shape[3], X.dtype),
            weights,
        )
        if newton_at_first_trial:
            statistics["newton"] = expert_statistics(
                X,
                y,
                sample_weight,
                gate=gate,
                pool=pool,
                routing=routing,
                top_k=top_k,
                coef=expert_trials[0],
                weights=weights,
                designs=designs,
            )
    if linear_coef is not None:
        statistics["squared_residuals"] = pool.block_squared_residuals(
            X, y, weights, linear_coef
        )
    return _float64(statistics)


def likelihood_statistics(X, y, sample_weight, *, gate, pool, routing, top_k):
    """Return the weighted log-likelihood of a block under the routed gate.

    What ``log_likelihood`` computes (the prediction's routing applied to
    the gate), summed: ``log_likelihood`` and ``weight``.
    """
    log_joint = routed_log_joint(gate, pool, X, y, routing=routing, top_k=top_k)
    log_lik = logsumexp(log_joint, axis=1)
    return _float64(
        {"log_likelihood": sample_weight @ log_lik, "weight": np.sum(sample_weight)}
    )


class SummedBlocks:
    """The statistics of EM as sums over row blocks.

    A mixin for sources of row blocks that implement ``sum(function,
    **kwargs)``, the sum over their blocks of ``function(X, y,
    sample_weight, **kwargs)``: it gives them the methods through which
    ``_blockwise`` asks for statistics.
    """

    def em_statistics(self, **kwargs):
        """Return the sum over blocks of :func:`em_statistics`."""
        return self.sum(em_statistics, **kwargs)

    def trial_statistics(self, **kwargs):
        """Return the sum over blocks of :func:`trial_statistics`."""
        return self.sum(trial_statistics, **kwargs)

    def expert_statistics(self, **kwargs):
        """Return the sum over blocks of :func:`expert_statistics`."""
        return self.sum(expert_statistics, **kwargs)
