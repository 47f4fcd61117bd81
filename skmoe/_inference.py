"""Standard errors of a fitted mixture: scores, information, bootstrap.

The numerics behind ``summary``: pure functions of the fitted parameters
and the data (NumPy, float64), so that a later engine can feed them its own
per-row statistics.

Parametrisation
---------------
A softmax is identifiable only up to a common shift of its columns. Every
gate node and every multinomial logistic expert is reported with its
**first** child (class) as the reference: the free coefficients of child
``c >= 1`` are ``W[:, c] - W[:, 0]``, the log-odds of child ``c`` against
child 0 (as statsmodels' ``MNLogit`` and R's ``multinom``; for a binary
logistic expert, scikit-learn's ``coef_``). The likelihood depends on ``W``
through these differences only, so its derivatives in the free parameters
are those in ``W`` at a ``W`` whose reference column is zero. A regression
expert's parameters are its coefficients (intercept last) and its noise
variance.

Penalties
---------
The fit maximises the log-likelihood plus log-priors (``gate_alpha``'s L2
penalty on standardized gate features, the inverse-gamma prior of the noise
variances, the L2 penalty of ``Ridge`` and ``LogisticRegression`` experts).
The information used here is the curvature of that penalised objective, so
the standard errors are those of the estimate actually returned (for the
small default penalties the difference is small). A penalty on all ``b``
columns of a softmax is, in the free parameters, the penalty of the
centred columns (the fitted ``W`` is centred: its minimal-norm
representative), whose Hessian is ``alpha (I - 11'/b)`` restricted to the
free columns, times the features' scales squared.

Louis' identity
---------------
With ``a_ik = log g_k(x_i) + log f_k(y_i | x_i)`` the log joint of row i
and leaf k and ``r_ik`` its posterior, the observed log-likelihood
``l_i = log sum_k exp(a_ik)`` has gradient ``s_i = sum_k r_ik grad a_ik``
and Hessian ``sum_k r_ik (hess a_ik + grad a_ik grad a_ik') - s_i s_i'``:
the complete-data curvature minus the missing information (Louis 1982).
It is exact, not an approximation.

References
----------
.. [1] T. A. Louis, "Finding the observed information matrix when using
   the EM algorithm", JRSS B 44(2), 226-233, 1982.
.. [2] H. White, "A heteroskedasticity-consistent covariance matrix
   estimator and a direct test for heteroskedasticity", Econometrica
   48(4), 817-838, 1980.
"""

import math
import warnings
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed
from scipy.optimize import linear_sum_assignment
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from skmoe._summary import MixtureSummary

__all__ = [
    "FittedMixture",
    "ParameterLayout",
    "align_to_reference",
    "free_softmax",
    "full_softmax",
    "information_criteria",
    "information_penalty",
    "mixture_derivatives",
    "mixture_log_likelihood_rows",
    "posterior_entropy",
    "robust_covariance",
]


# ---------------------------------------------------------------------------
# Parameters as one vector
# ---------------------------------------------------------------------------


class ParameterLayout:
    """Where each parameter of a mixture lies in the free parameter vector.

    The vector holds the gates level by level (nodes breadth first; in a
    node, child ``c = 1 .. b-1`` then the gate features, intercept last),
    then the experts in leaf order: a regression expert's coefficients
    (intercept last when fitted) and its variance, or a logistic expert's
    classes ``1 .. C-1``, each with its features and intercept.

    Parameters
    ----------
    hierarchy : tuple of int
        Branching factor of each level of gates.
    n_gate_columns : int
        Gate features plus one (the intercept).
    kind : {"gaussian", "logistic"}
        The experts.
    n_expert_columns : int
        Columns of the experts' design (the intercept included when fitted).
    n_classes : int, default=None
        Classes of logistic experts.
    fit_intercept : bool, default=True
        Whether the experts' design ends in a column of ones (unpenalised).
    """

    def __init__(
        self,
        hierarchy,
        n_gate_columns,
        kind,
        n_expert_columns,
        n_classes=None,
        fit_intercept=True,
    ):
        self.hierarchy = tuple(hierarchy)
        self.fit_intercept = fit_intercept
        self.n_gate_columns = n_gate_columns
        self.kind = kind
        self.n_expert_columns = n_expert_columns
        self.n_classes = n_classes
        self.level_sizes = [
            math.prod(self.hierarchy[:level]) for level in range(len(self.hierarchy))
        ]
        sizes = [
            n_nodes * (b - 1) * n_gate_columns
            for n_nodes, b in zip(self.level_sizes, self.hierarchy, strict=True)
        ]
        self.level_offsets = np.cumsum([0, *sizes]).tolist()
        self.n_gate_parameters = self.level_offsets[-1]
        self.n_experts = math.prod(self.hierarchy)
        if kind == "gaussian":
            self.expert_size = n_expert_columns + 1
        else:
            self.expert_size = (n_classes - 1) * n_expert_columns
        self.size = self.n_gate_parameters + self.n_experts * self.expert_size

    def node_slice(self, level, node):
        """Return the slice of the ``node``-th gate of ``level``."""
        size = (self.hierarchy[level] - 1) * self.n_gate_columns
        start = self.level_offsets[level] + node * size
        return slice(start, start + size)

    def expert_slice(self, k):
        """Return the slice of expert ``k``'s parameters."""
        start = self.n_gate_parameters + k * self.expert_size
        return slice(start, start + self.expert_size)

    def path(self, leaf):
        """Return ``(level, node, child)`` of every gate on a leaf's path."""
        steps = []
        for level, b in enumerate(self.hierarchy):
            below = math.prod(self.hierarchy[level + 1 :])
            steps.append((level, leaf // (below * b), (leaf // below) % b))
        return steps


def free_softmax(coef):
    """Return softmax coefficients against the first column, shape (..., b-1).

    ``coef[..., c] - coef[..., 0]`` for ``c >= 1``: the identifiable
    parameters of a softmax whose logits are ``X @ coef``.
    """
    coef = np.asarray(coef, dtype=np.float64)
    return coef[..., 1:] - coef[..., :1]


def full_softmax(free):
    """Return the softmax coefficients of :func:`free_softmax`, reference 0."""
    free = np.asarray(free, dtype=np.float64)
    return np.concatenate([np.zeros((*free.shape[:-1], 1)), free], axis=-1)


def pack(layout, gate_coef, expert_params):
    """Return the free parameter vector.

    Parameters
    ----------
    layout : ParameterLayout
    gate_coef : list of ndarray of shape (n_nodes_l, n_gate_columns, b_l)
        Full gate coefficients per level (any reference).
    expert_params : tuple
        ``(coef, variance)`` with coef of shape (K, n_expert_columns) for
        regression experts, ``(coef,)`` with coef of shape
        (K, n_expert_columns, C) for logistic experts.

    Returns
    -------
    theta : ndarray of shape (layout.size,)
    """
    parts = [np.swapaxes(free_softmax(coef), 1, 2).ravel() for coef in gate_coef]
    if layout.kind == "gaussian":
        coef, variance = expert_params
        parts.append(np.column_stack([coef, variance]).ravel())
    else:
        (coef,) = expert_params
        parts.append(np.swapaxes(free_softmax(coef), 1, 2).ravel())
    return np.concatenate(parts)


def unpack(layout, theta):
    """Return ``(gate_coef, expert_params)`` of :func:`pack` (reference 0)."""
    theta = np.asarray(theta, dtype=np.float64)
    p = layout.n_gate_columns
    gate_coef = []
    for level, (n_nodes, b) in enumerate(
        zip(layout.level_sizes, layout.hierarchy, strict=True)
    ):
        block = theta[layout.level_offsets[level] : layout.level_offsets[level + 1]]
        free = np.swapaxes(block.reshape(n_nodes, b - 1, p), 1, 2)
        gate_coef.append(full_softmax(free))
    experts = theta[layout.n_gate_parameters :].reshape(layout.n_experts, -1)
    if layout.kind == "gaussian":
        return gate_coef, (experts[:, :-1], experts[:, -1])
    free = np.swapaxes(
        experts.reshape(layout.n_experts, layout.n_classes - 1, -1), 1, 2
    )
    return gate_coef, (full_softmax(free),)


# ---------------------------------------------------------------------------
# The observed log-likelihood and its derivatives
# ---------------------------------------------------------------------------


def _level_log_probas(Xg, gate_coef):
    return [
        log_softmax(np.einsum("np,jpb->njb", Xg, coef), axis=-1) for coef in gate_coef
    ]


def _log_gate(layout, level_log_probas):
    n_samples = level_log_probas[0].shape[0]
    log_reach = np.zeros((n_samples, 1))
    for log_proba in level_log_probas:
        log_reach = (log_reach[:, :, None] + log_proba).reshape(n_samples, -1)
    return log_reach


def _expert_log_likelihood(layout, Xe, y, expert_params):
    if layout.kind == "gaussian":
        coef, variance = expert_params
        residual = y[:, None] - Xe @ coef.T
        return -0.5 * (np.log(2.0 * np.pi * variance) + residual**2 / variance)
    (coef,) = expert_params
    log_proba = log_softmax(np.einsum("np,kpc->nkc", Xe, coef), axis=-1)
    return log_proba[np.arange(Xe.shape[0]), :, y]


def mixture_log_likelihood_rows(layout, theta, Xg, Xe, y):
    """Return every row's log-likelihood ``log sum_k g_k f_k``, shape (n,).

    Parameters
    ----------
    layout : ParameterLayout
    theta : ndarray of shape (layout.size,)
    Xg : ndarray of shape (n_samples, n_gate_columns)
        The gate's features, a column of ones last.
    Xe : ndarray of shape (n_samples, n_expert_columns)
        The experts' design (a column of ones last when they have an
        intercept).
    y : ndarray of shape (n_samples,)
        Targets, class indices for logistic experts.

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples,)
    """
    gate_coef, expert_params = unpack(layout, theta)
    log_joint = _log_gate(layout, _level_log_probas(Xg, gate_coef))
    log_joint = log_joint + _expert_log_likelihood(layout, Xe, y, expert_params)
    return logsumexp(log_joint, axis=1)


def _softmax_free_gradient(Xa, proba, chosen):
    """Gradient of ``log proba[chosen]`` in the free columns, (n, (b-1) p).

    ``x (1[chosen == c] - proba_c)`` for ``c >= 1``, child-major.
    """
    n_samples, b = proba.shape
    indicator = np.zeros((n_samples, b))
    indicator[np.arange(n_samples), chosen] = 1.0
    factor = (indicator - proba)[:, 1:]
    return (factor[:, :, None] * Xa[:, None, :]).reshape(n_samples, -1)


def _softmax_free_curvature(Xa, proba, weights):
    """Return ``sum_i w_i`` times the Hessian of a softmax log-probability.

    ``-(diag(pi) - pi pi')`` over the free columns, Kronecker the design's
    outer product; the same for every chosen child. Shape ((b-1) p,) * 2.
    """
    pi = proba[:, 1:]
    cov = pi[:, :, None] * (np.eye(pi.shape[1])[None] - pi[:, None, :])
    block = np.einsum("n,ncd,nf,ng->cfdg", weights, cov, Xa, Xa, optimize=True)
    size = pi.shape[1] * Xa.shape[1]
    return -block.reshape(size, size)


def _expert_gradient(layout, Xe, y, expert_params, k):
    """Return the gradient of ``log f_k(y_i | x_i)`` in expert k's block."""
    if layout.kind == "gaussian":
        coef, variance = expert_params
        v = variance[k]
        residual = y - Xe @ coef[k]
        return np.column_stack(
            [Xe * (residual / v)[:, None], -0.5 / v + 0.5 * residual**2 / v**2]
        )
    (coef,) = expert_params
    proba = np.exp(log_softmax(Xe @ coef[k], axis=-1))
    return _softmax_free_gradient(Xe, proba, y)


def _expert_curvature(layout, Xe, y, expert_params, k, weights):
    """Return ``sum_i w_i`` times the Hessian of ``log f_k`` in its block."""
    if layout.kind == "gaussian":
        coef, variance = expert_params
        v = variance[k]
        residual = y - Xe @ coef[k]
        q = Xe.shape[1]
        hessian = np.empty((q + 1, q + 1))
        hessian[:q, :q] = -(Xe.T * weights) @ Xe / v
        hessian[:q, q] = hessian[q, :q] = -(weights * residual) @ Xe / v**2
        hessian[q, q] = weights @ (0.5 / v**2 - residual**2 / v**3)
        return hessian
    (coef,) = expert_params
    proba = np.exp(log_softmax(Xe @ coef[k], axis=-1))
    return _softmax_free_curvature(Xe, proba, weights)


def mixture_derivatives(layout, theta, Xg, Xe, y, sample_weight):
    """Return the rows' scores and the weighted Hessian of the log-likelihood.

    Exact, by Louis' identity (module docstring), for softmax gate trees
    over linear-Gaussian or multinomial logistic experts.

    Parameters
    ----------
    layout : ParameterLayout
    theta : ndarray of shape (layout.size,)
    Xg, Xe, y
        As in :func:`mixture_log_likelihood_rows`.
    sample_weight : ndarray of shape (n_samples,)
        Frequency weights.

    Returns
    -------
    scores : ndarray of shape (n_samples, layout.size)
        Gradient of every row's log-likelihood.
    hessian : ndarray of shape (layout.size, layout.size)
        ``sum_i w_i`` times the Hessian of row i's log-likelihood.
    posterior : ndarray of shape (n_samples, n_experts)
        The leaves' posterior responsibilities.
    """
    w = np.asarray(sample_weight, dtype=np.float64)
    gate_coef, expert_params = unpack(layout, theta)
    level_log_probas = _level_log_probas(Xg, gate_coef)
    level_probas = [np.exp(lp) for lp in level_log_probas]
    log_joint = _log_gate(layout, level_log_probas) + _expert_log_likelihood(
        layout, Xe, y, expert_params
    )
    posterior = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    n_samples = Xg.shape[0]
    scores = np.zeros((n_samples, layout.size))
    hessian = np.zeros((layout.size, layout.size))
    # sum_k r_k grad a_k grad a_k' (the complete data's outer products), one
    # leaf at a time: a leaf's gradient lives on its path and its expert.
    for k in range(layout.n_experts):
        gradient = np.zeros((n_samples, layout.size))
        for level, node, child in layout.path(k):
            proba = level_probas[level][:, node, :]
            gradient[:, layout.node_slice(level, node)] = _softmax_free_gradient(
                Xg, proba, np.full(n_samples, child)
            )
        gradient[:, layout.expert_slice(k)] = _expert_gradient(
            layout, Xe, y, expert_params, k
        )
        r = posterior[:, k]
        scores += r[:, None] * gradient
        hessian += (gradient.T * (w * r)) @ gradient
        block = layout.expert_slice(k)
        hessian[block, block] += _expert_curvature(
            layout, Xe, y, expert_params, k, w * r
        )
    # sum_k r_k hess a_k for the gates: a node's curvature is the same for
    # each of its children, weighted by the posterior of reaching the node.
    reach = _node_posteriors(posterior, layout.hierarchy)
    for level, n_nodes in enumerate(layout.level_sizes):
        for node in range(n_nodes):
            block = layout.node_slice(level, node)
            hessian[block, block] += _softmax_free_curvature(
                Xg, level_probas[level][:, node, :], w * reach[level][:, node]
            )
    hessian -= (scores.T * w) @ scores
    return scores, hessian, posterior


def _node_posteriors(posterior, hierarchy):
    """Posterior of reaching each node, per level of gates (root first)."""
    n_samples = posterior.shape[0]
    levels = [posterior]
    for b in reversed(hierarchy):
        levels.insert(0, levels[0].reshape(n_samples, -1, b).sum(axis=-1))
    return levels[:-1]


def information_penalty(
    layout,
    theta,
    *,
    gate_alpha,
    gate_scale,
    expert_alpha=0.0,
    reg_variance=0.0,
    prior_variance=1.0,
    weight_scale=1.0,
):
    """Return the Hessian of the fit's penalties (minus its log-priors).

    Parameters
    ----------
    layout : ParameterLayout
    theta : ndarray of shape (layout.size,)
    gate_alpha : float
        The gates' L2 penalty.
    gate_scale : ndarray of shape (n_gate_columns - 1,)
        The gate features' scales (``GateTree.penalty_scale``).
    expert_alpha : float, default=0.0
        L2 penalty of the experts' slopes: ``Ridge``'s alpha (least-squares
        units, divided here by the expert's variance, held fixed) or the
        logistic experts' ``alpha`` of :class:`~skmoe._experts.LogisticExperts`.
    reg_variance, prior_variance : float
        The noise variances' inverse-gamma prior.
    weight_scale : float, default=1.0
        Mean of the sample weights: a fit counts its penalties in rows of
        average weight.

    Returns
    -------
    penalty : ndarray of shape (layout.size, layout.size)
        Positive semi-definite; add it to minus the log-likelihood's Hessian.
    """
    penalty = np.zeros((layout.size, layout.size))
    gate_diagonal = np.append(np.square(gate_scale), 0.0)
    for level, (n_nodes, b) in enumerate(
        zip(layout.level_sizes, layout.hierarchy, strict=True)
    ):
        block = gate_alpha * np.kron(_centring(b), np.diag(gate_diagonal))
        for node in range(n_nodes):
            rows = layout.node_slice(level, node)
            penalty[rows, rows] += block
    _, expert_params = unpack(layout, theta)
    for k in range(layout.n_experts):
        rows = np.arange(layout.size)[layout.expert_slice(k)]
        if layout.kind == "gaussian":
            _, variance = expert_params
            v = variance[k]
            q = layout.n_expert_columns
            slopes = rows[: q - 1] if layout.fit_intercept else rows[:q]
            penalty[slopes, slopes] += expert_alpha / v
            a = reg_variance
            penalty[rows[-1], rows[-1]] += (
                0.5 * a * (2.0 * prior_variance / v**3 - 1 / v**2)
            )
        else:
            diagonal = np.append(np.ones(layout.n_expert_columns - 1), 0.0)
            block = expert_alpha * np.kron(
                _centring(layout.n_classes), np.diag(diagonal)
            )
            penalty[np.ix_(rows, rows)] += block
    return weight_scale * penalty


def penalty_gradient(
    layout, theta, penalty, *, reg_variance=0.0, prior_variance=1.0, weight_scale=1.0
):
    """Return the gradient of the penalties (minus the log-priors) at ``theta``.

    Every penalty is quadratic in the free parameters (``penalty @ theta``)
    except the variance prior, whose gradient is
    ``reg_variance / 2 * (1 / v - prior_variance / v**2)`` per variance.
    """
    gradient = penalty @ theta
    if layout.kind == "gaussian":
        for k in range(layout.n_experts):
            i = layout.expert_slice(k).stop - 1
            v = theta[i]
            gradient[i] = (
                weight_scale * 0.5 * reg_variance * (1.0 / v - prior_variance / v**2)
            )
    return gradient


def _centring(b):
    """``I - 11'/b`` on the free columns ``1 .. b-1``: a centred penalty."""
    return (np.eye(b) - 1.0 / b)[1:, 1:]


# ---------------------------------------------------------------------------
# Covariances
# ---------------------------------------------------------------------------


def invert_information(information):
    """Return the inverse of a symmetric information matrix, or raise.

    Raises
    ------
    numpy.linalg.LinAlgError
        If the matrix is not positive definite to the precision of its
        largest eigenvalue (a parameter the data do not determine).
    """
    information = 0.5 * (information + information.T)
    eigenvalues, vectors = np.linalg.eigh(information)
    floor = (
        information.shape[0]
        * np.finfo(np.float64).eps
        * max(abs(eigenvalues).max(initial=0.0), 1.0)
    )
    if eigenvalues.size and eigenvalues.min() <= floor:
        worst = int(np.argmax(np.abs(vectors[:, 0])))
        raise np.linalg.LinAlgError(
            f"the information matrix is singular (smallest eigenvalue "
            f"{eigenvalues.min():.3g}, mostly parameter {worst})"
        )
    return (vectors / eigenvalues) @ vectors.T


def robust_covariance(information_inverse, scores, sample_weight):
    """Return the sandwich ``A^-1 (sum_i w_i s_i s_i') A^-1`` (Huber-White).

    Parameters
    ----------
    information_inverse : ndarray of shape (P, P)
        Inverse of the penalised observed information ``A``.
    scores : ndarray of shape (n_samples, P)
        Rows' scores.
    sample_weight : ndarray of shape (n_samples,)
        Frequency weights.

    Returns
    -------
    covariance : ndarray of shape (P, P)
    """
    meat = (scores.T * sample_weight) @ scores
    covariance = information_inverse @ meat @ information_inverse
    return 0.5 * (covariance + covariance.T)


def information_criteria(log_likelihood, n_parameters, n_samples, entropy):
    """Return the AIC, BIC and ICL of a model (lower is better).

    Parameters
    ----------
    log_likelihood : float
        The (weighted) sum of the rows' log-likelihoods.
    n_parameters : int
    n_samples : float
        The number of rows (the sum of frequency weights).
    entropy : float
        :func:`posterior_entropy` of the same rows.

    Returns
    -------
    criteria : dict
        ``"aic"``, ``"bic"`` and ``"icl"`` (the BIC plus twice the entropy).
    """
    bic = -2.0 * log_likelihood + n_parameters * np.log(n_samples)
    return {
        "aic": -2.0 * log_likelihood + 2.0 * n_parameters,
        "bic": bic,
        "icl": bic + 2.0 * entropy,
    }


def posterior_entropy(log_joint, sample_weight=None):
    """Return ``-sum_i w_i sum_k r_ik log r_ik``, the posterior's entropy.

    Parameters
    ----------
    log_joint : ndarray of shape (n_samples, n_experts)
        ``log g_k(x_i) + log f_k(y_i | x_i)``; ``-inf`` where an expert is
        excluded.
    sample_weight : ndarray of shape (n_samples,), default=None

    Returns
    -------
    entropy : float
        Non-negative.
    """
    log_joint = np.asarray(log_joint, dtype=np.float64)
    log_resp = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    resp = np.exp(log_resp)
    terms = np.where(resp > 0, resp * np.where(resp > 0, log_resp, 0.0), 0.0)
    per_row = -terms.sum(axis=1)
    if sample_weight is None:
        return float(per_row.sum())
    return float(np.asarray(sample_weight, dtype=np.float64) @ per_row)


# ---------------------------------------------------------------------------
# Aligning refits (bootstrap) to a reference fit
# ---------------------------------------------------------------------------


def align_to_reference(hierarchy, reference_posterior, posterior):
    """Return the leaf permutation that best matches a refit to a reference.

    Level by level, the children of every matched node are matched to the
    children of its counterpart by the Hungarian algorithm on the overlap of
    their posterior mass, so that the permutation respects the tree (a
    leaf moves only with its subtree).

    Parameters
    ----------
    hierarchy : tuple of int
    reference_posterior, posterior : ndarray of shape (n_samples, n_experts)
        The leaves' posteriors of the reference and of the refit on the
        same rows.

    Returns
    -------
    node_maps : list of ndarray
        Per level of nodes below the root, ``node_maps[l][j]`` is the
        refit's node matched to the reference's j-th node of level ``l + 1``;
        the last entry maps the leaves.
    """
    reference_levels = _node_posteriors(reference_posterior, hierarchy)[1:]
    refit_levels = _node_posteriors(posterior, hierarchy)[1:]
    reference_levels.append(reference_posterior)
    refit_levels.append(posterior)
    parents = np.zeros(1, dtype=np.intp)
    node_maps = []
    for level, b in enumerate(hierarchy):
        mapped = np.empty(parents.shape[0] * b, dtype=np.intp)
        overlap = reference_levels[level].T @ refit_levels[level]
        for j, parent in enumerate(parents):
            mine = np.arange(j * b, (j + 1) * b)
            theirs = np.arange(parent * b, (parent + 1) * b)
            _, columns = linear_sum_assignment(-overlap[np.ix_(mine, theirs)])
            mapped[mine] = theirs[columns]
        node_maps.append(mapped)
        parents = mapped
    return node_maps


def permute_gate(gate_coef, hierarchy, node_maps):
    """Return a refit's gate coefficients in the reference's node order.

    Parameters
    ----------
    gate_coef : list of ndarray of shape (n_nodes_l, p, b_l)
        The refit's coefficients.
    hierarchy : tuple of int
    node_maps : list of ndarray
        Output of :func:`align_to_reference`.

    Returns
    -------
    gate_coef : list of ndarray
        Node j of level l is the refit's node matched to it, its children
        reordered as their matches (so the reference child is the matched
        one).
    """
    permuted = []
    parents = np.zeros(1, dtype=np.intp)
    for coef, b, children in zip(gate_coef, hierarchy, node_maps, strict=True):
        level = np.empty_like(coef)
        for j, parent in enumerate(parents):
            local = children[j * b : (j + 1) * b] - parent * b
            level[j] = coef[parent][:, local]
        permuted.append(level)
        parents = children
    return permuted


# ---------------------------------------------------------------------------
# The summary of a fitted model
# ---------------------------------------------------------------------------

METHODS = ("observed", "sandwich", "bootstrap")


class FittedMixture(NamedTuple):
    """What :func:`summarize` reads of a fitted mixture: values, no estimator.

    The estimator builds it (``InspectionMixin._fitted_mixture``), so that
    this module takes the fitted parts and options, never the estimator.

    Attributes
    ----------
    gate : GateTree
        The fitted gate tree.
    pool : expert pool
        The fitted experts (``parameter_kind`` says whether they have a
        parameter vector here).
    gate_alpha, tol : float
        The fit's gate penalty and stopping tolerance.
    routing : str
        The model's routing.
    classes : ndarray or None
        The classes of a classifier; None for a regressor.
    feature_names_in : ndarray of str or None
        The fit's feature names, where it had some.
    expert_description : str
        The experts as an error message names them.
    estimator_name : str
        The estimator's class name, for the table's title.
    """

    gate: object
    pool: object
    gate_alpha: float
    tol: float
    routing: str
    classes: object
    feature_names_in: object
    expert_description: str
    estimator_name: str


def fitted_layout(mixture, X):
    """Return the layout, parameters and designs of a fitted mixture.

    Parameters
    ----------
    mixture : FittedMixture
        With linear-Gaussian or logistic experts (checked by the caller).
    X : ndarray of shape (n_samples, n_features)
        float64.

    Returns
    -------
    layout : ParameterLayout
    theta : ndarray of shape (layout.size,)
    Xg, Xe : ndarray
        The gate's and the experts' designs.
    """
    gate, pool = mixture.gate, mixture.pool
    ones = np.ones((X.shape[0], 1))
    Xg = np.hstack([X[:, gate.feature_indices], ones])
    gate_coef = [np.asarray(c, dtype=np.float64) for c in gate.coef]
    if pool.parameter_kind == "gaussian":
        fit_intercept = bool(pool.fit_intercept)
        Xe = np.hstack([X, ones]) if fit_intercept else X
        coef = np.asarray(pool.coef_, dtype=np.float64)
        if fit_intercept:
            coef = np.column_stack([coef, np.asarray(pool.intercept_, dtype=float)])
        params = (coef, np.asarray(pool.variance_, dtype=np.float64))
        layout = ParameterLayout(
            gate.hierarchy,
            Xg.shape[1],
            "gaussian",
            Xe.shape[1],
            fit_intercept=fit_intercept,
        )
    else:
        Xe = np.hstack([X, ones])
        params = (np.asarray(pool.coef_, dtype=np.float64),)
        layout = ParameterLayout(
            gate.hierarchy,
            Xg.shape[1],
            "logistic",
            Xe.shape[1],
            n_classes=pool.classes.shape[0],
        )
    return layout, pack(layout, gate_coef, params), Xg, Xe


def parameter_labels(mixture, layout, feature_names):
    """Return the block and term of every free parameter, as the table prints."""
    gate = mixture.gate
    offsets = gate.level_offsets
    n_leaves_offset = offsets[-1]

    def node_label(node):
        if node >= n_leaves_offset:
            return f"expert {node - n_leaves_offset}"
        return f"node {node}"

    gate_terms = [feature_names[i] for i in gate.feature_indices] + ["intercept"]
    blocks, terms = [], []
    for level, (n_nodes, b) in enumerate(
        zip(layout.level_sizes, layout.hierarchy, strict=True)
    ):
        for j in range(n_nodes):
            node = offsets[level] + j
            first = offsets[level + 1] + j * b
            for c in range(1, b):
                blocks += [
                    f"gate {node}: {node_label(first + c)} vs {node_label(first)}"
                ] * len(gate_terms)
                terms += gate_terms
    expert_terms = list(feature_names)
    if layout.kind == "gaussian":
        if layout.fit_intercept:
            expert_terms.append("intercept")
        for k in range(layout.n_experts):
            blocks += [f"expert {k}"] * (len(expert_terms) + 1)
            terms += [*expert_terms, "variance"]
    else:
        classes = mixture.classes
        expert_terms.append("intercept")
        for k in range(layout.n_experts):
            for c in range(1, layout.n_classes):
                blocks += [f"expert {k}: class {classes[c]} vs {classes[0]}"] * len(
                    expert_terms
                )
                terms += expert_terms
    return blocks, terms


def _variance_prior(pool, layout):
    """Return the Gaussian experts' variance prior as keyword options."""
    if layout.kind != "gaussian":
        return {}
    return {"reg_variance": pool.reg_variance, "prior_variance": pool.prior_variance}


def model_penalty(mixture, layout, theta, weight_scale):
    """Return :func:`information_penalty` with a fitted mixture's penalties."""
    pool = mixture.pool
    options = _variance_prior(pool, layout)
    return information_penalty(
        layout,
        theta,
        gate_alpha=mixture.gate_alpha,
        gate_scale=mixture.gate.penalty_scale,
        expert_alpha=pool.alpha,
        weight_scale=weight_scale,
        **options,
    )


def _refit_parameters(refit, counts, reference_posterior, layout, X, Xg, Xe, y_enc):
    """Refit on resampled rows; the refit's parameters, aligned.

    ``refit(counts)`` returns the :class:`FittedMixture` of a fit started
    from the model's parameters (a warm start, so that it climbs to the
    mode that the data's resample gives that fit); its experts are then
    matched to the model's by their posteriors on the original rows.
    Returns None when the refit pruned an expert.
    """
    fitted = refit(counts)
    if fitted.gate.pruned.any():
        return None
    _, theta, _, _ = fitted_layout(fitted, X)
    gate_coef, params = unpack(layout, theta)
    level_log = _level_log_probas(Xg, gate_coef)
    log_joint = _log_gate(layout, level_log) + _expert_log_likelihood(
        layout, Xe, y_enc, params
    )
    posterior = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    node_maps = align_to_reference(layout.hierarchy, reference_posterior, posterior)
    leaves = node_maps[-1]
    gate_coef = permute_gate(gate_coef, layout.hierarchy, node_maps)
    params = tuple(p[leaves] for p in params)
    return pack(layout, gate_coef, params)


def bootstrap_parameters(
    refit,
    sample_weight,
    *,
    n_bootstrap,
    random_state,
    n_jobs,
    layout,
    X,
    Xg,
    Xe,
    y_enc,
    reference_posterior,
):
    """Return ``n_bootstrap`` aligned refits' parameters, shape (B, P).

    Rows are resampled as frequency weights: each replicate draws
    ``round(sum(w))`` rows with probabilities ``w / sum(w)``, and the refit
    gets the counts (``refit(counts)``, see :func:`_refit_parameters`).
    Refits run through joblib.
    Replicates that pruned an expert are dropped (their number is the
    difference between B and the rows returned).
    """
    rng = check_random_state(random_state)
    w = np.asarray(sample_weight, dtype=np.float64)
    total = max(round(float(w.sum())), 1)
    counts = [
        rng.multinomial(total, w / w.sum()).astype(np.float64)
        for _ in range(n_bootstrap)
    ]
    thetas = Parallel(n_jobs=n_jobs)(
        delayed(_refit_parameters)(
            refit, c, reference_posterior, layout, X, Xg, Xe, y_enc
        )
        for c in counts
    )
    kept = [t for t in thetas if t is not None]
    return np.array(kept).reshape(len(kept), layout.size)


# An estimate more than this many standard errors from the maximum that a
# Newton step would reach is not the estimate the errors describe.
_MAX_NEWTON_STEP_IN_SE = 0.1


def _warn_unconverged(mixture, layout, theta, scores, w, information, inverse):
    """Warn when the fitted parameters are measurably short of the maximum."""
    options = _variance_prior(mixture.pool, layout)
    weight_scale = float(np.mean(w))
    penalty = model_penalty(mixture, layout, theta, weight_scale)
    gradient = w @ scores - penalty_gradient(
        layout, theta, penalty, weight_scale=weight_scale, **options
    )
    step = inverse @ gradient
    distance = float(np.max(np.abs(step) / np.sqrt(np.diag(inverse))))
    if distance > _MAX_NEWTON_STEP_IN_SE:
        warnings.warn(
            f"The fitted parameters are up to {distance:.2g} standard errors "
            "away from the maximum a Newton step reaches: EM stopped early "
            f"(tol={mixture.tol:g}). Refit with a smaller tol (e.g. tol=1e-8, "
            "max_iter=1000) for standard errors of the maximum.",
            ConvergenceWarning,
            stacklevel=3,
        )


def check_summary_support(mixture, method, alpha):
    """Raise a clear error where a mixture has no standard errors here.

    Also checks :func:`summarize`'s ``method`` and ``alpha``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if mixture.pool.parameter_kind is None:
        raise TypeError(
            "summary gives standard errors for the parameters of linear "
            "experts (LinearRegression, Ridge or the default) and logistic "
            "experts (LogisticRegression or the default); the experts here "
            f"({mixture.expert_description}) have no parameter vector of "
            "ours. For them, bootstrap what you need: refit clones on rows "
            "resampled with sklearn.utils.resample and take the spread of "
            "their predictions."
        )
    n_pruned = int(mixture.gate.pruned.sum())
    if n_pruned:
        raise ValueError(
            f"{n_pruned} expert(s) were pruned during the fit "
            "(their responsibility starved): their parameters are not "
            "estimated and the model sits on the boundary of its parameter "
            "space. Refit with fewer experts (n_experts="
            f"{mixture.gate.n_leaves - n_pruned}) before summary."
        )
    if mixture.routing != "soft" and method != "bootstrap":
        raise ValueError(
            f"method={method!r} differentiates the soft mixture's likelihood, "
            f"which a model with routing={mixture.routing!r} does not maximise; "
            "use method='bootstrap' (refits with the model's own routing), or "
            "fit with routing='soft'."
        )


def summarize(
    mixture,
    X,
    y,
    sample_weight,
    log_joint,
    *,
    method="observed",
    alpha=0.05,
    n_bootstrap=200,
    random_state=None,
    n_jobs=None,
    refit=None,
):
    """Return the :class:`~skmoe._summary.MixtureSummary` of a fitted mixture.

    See ``InspectionMixin.summary``, which checks the mixture and options
    (:func:`check_summary_support`) and the rows.

    Parameters
    ----------
    mixture : FittedMixture
    X : ndarray of shape (n_samples, n_features)
        Validated, float64.
    y : ndarray of shape (n_samples,)
        Encoded targets: float64, or class indices for logistic experts.
    sample_weight : ndarray of shape (n_samples,)
        Frequency weights.
    log_joint : ndarray of shape (n_samples, n_experts)
        The model's routed log joint of the rows (its likelihood and
        posterior entropy).
    method, alpha, n_bootstrap, random_state, n_jobs
        As in ``summary``.
    refit : callable, default=None
        ``refit(counts)`` returns the :class:`FittedMixture` of a fit started
        from this one on the rows weighted by ``counts``; needed by
        ``method="bootstrap"``.
    """
    layout, theta, Xg, Xe = fitted_layout(mixture, X)
    scores, hessian, posterior = mixture_derivatives(
        layout, theta, Xg, Xe, y, sample_weight
    )
    log_likelihood = float(sample_weight @ logsumexp(log_joint, axis=1))
    n_samples, n_parameters = float(sample_weight.sum()), layout.size
    statistics = {
        "log_likelihood": log_likelihood,
        **information_criteria(
            log_likelihood,
            n_parameters,
            n_samples,
            posterior_entropy(log_joint, sample_weight),
        ),
        "n_samples": n_samples,
        "n_parameters": n_parameters,
    }
    notes = [
        "Gates: each row is the log-odds of a child against the gate's first "
        "child (the reference, fixed at 0)."
    ]
    if layout.kind == "logistic":
        notes.append(
            "Experts: log-odds of each class against the first class "
            "(reference, fixed at 0)."
        )
    quantile = norm.ppf(1.0 - alpha / 2.0)
    if method == "bootstrap":
        thetas = bootstrap_parameters(
            refit,
            sample_weight,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
            n_jobs=n_jobs,
            layout=layout,
            X=X,
            Xg=Xg,
            Xe=Xe,
            y_enc=y,
            reference_posterior=posterior,
        )
        if thetas.shape[0] < 2:
            raise ValueError(
                "fewer than two bootstrap refits kept all their experts; the "
                "model is too large for the data (fewer experts, more rows)."
            )
        covariance = np.cov(thetas, rowvar=False)
        ci = np.percentile(thetas, [50 * alpha, 100 - 50 * alpha], axis=0).T
        description = (
            f"bootstrap ({thetas.shape[0]} of {n_bootstrap} refits kept; "
            "percentile intervals)"
        )
        notes.append(
            "Bootstrap: rows resampled as frequency weights, each refit "
            "started from the fit, its experts matched to the fit's by "
            "their posteriors (Hungarian algorithm, within each gate)."
        )
    else:
        weight_scale = float(np.mean(sample_weight))
        information = -hessian + model_penalty(mixture, layout, theta, weight_scale)
        try:
            inverse = invert_information(information)
        except np.linalg.LinAlgError as error:
            raise ValueError(
                f"summary cannot give standard errors: {error}. Either the "
                "fit stopped before the maximum (EM's default tol stops early "
                "on flat likelihoods: refit with e.g. tol=1e-8, "
                "max_iter=1000), or the data do not determine every "
                "parameter (an expert or gate with too few rows, collinear "
                "features, a gate that separates its rows perfectly): try "
                "more data, fewer experts, a larger gate_alpha, or "
                "method='bootstrap'."
            ) from error
        _warn_unconverged(
            mixture, layout, theta, scores, sample_weight, information, inverse
        )
        if method == "observed":
            covariance = 0.5 * (inverse + inverse.T)
            description = "observed information (Louis' identity), penalised"
        else:
            covariance = robust_covariance(inverse, scores, sample_weight)
            description = "sandwich (Huber-White), penalised information"
        se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        ci = np.column_stack([theta - quantile * se, theta + quantile * se])
        notes.append(
            "Penalties in the information (the fit's curvature): gate_alpha="
            f"{mixture.gate_alpha:g} on standardized gate features"
            + (
                f", the variance prior (reg_variance={mixture.pool.reg_variance:g})"
                if layout.kind == "gaussian"
                else ""
            )
            + (
                f", the experts' L2 penalty (alpha={mixture.pool.alpha:g})"
                if mixture.pool.alpha
                else ""
            )
            + "."
        )
    names = mixture.feature_names_in
    if names is None:
        names = [f"x{i}" for i in range(X.shape[1])]
    block, term = parameter_labels(mixture, layout, [str(n) for n in names])
    return MixtureSummary(
        block,
        term,
        theta,
        covariance,
        ci,
        statistics,
        description,
        alpha,
        notes,
        title=f"{mixture.estimator_name}, hierarchy {layout.hierarchy}: summary",
    )
