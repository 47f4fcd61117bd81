"""The gating network: a complete tree of softmax gates.

A flat mixture of K experts is the depth-1 tree ``hierarchy=(K,)``; a
hierarchical mixture (Jordan & Jacobs 1994) is a deeper tree. Every internal
node is a multinomial logistic gate over its children and the leaves are the
experts, so one code path serves both (DESIGN.md §1).

Nodes are numbered breadth first: the root is node 0, then the nodes of
level 1, and so on; the leaves are the last level, in expert order. The
children of the ``j``-th node of level ``l`` are nodes ``j * b + c`` of level
``l + 1`` (``b = hierarchy[l]``). All gates of one level share a branching
factor, so a level is stored as one array and computed with one GEMM.

References
----------
.. [1] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts and
   the EM algorithm", Neural Computation 6(2), 181-214, 1994.
"""

import math

import numpy as np

from skmoe._backend import (
    add_intercept,
    batched_solve,
    get_namespace,
    log_softmax,
    weighted_gram,
)

__all__ = [
    "GateTree",
    "gate_newton_step",
    "level_log_proba",
    "node_posteriors",
    "tree_log_reach",
]

# A full-Hessian Newton step costs b (b + 1) / 2 weighted Gram matrices per
# gate against b for the block-diagonal step; above this branching the full
# step costs more than the experts' M-step and the block step is used
# (DESIGN.md §2 measured both: 0.97 of the attainable gain at K=16).
_FULL_NEWTON_MAX_BRANCHING = 8
_MAX_HALVINGS = 30


# ---------------------------------------------------------------------------
# Forward pass: probabilities of children, of reaching nodes, of leaves
# ---------------------------------------------------------------------------


def level_log_proba(Xa, coef):
    """Return the log-probabilities of every child under every gate of a level.

    Parameters
    ----------
    Xa : array of shape (n_samples, p)
        Gate features with a trailing column of ones.
    coef : array of shape (n_nodes, p, n_children)
        Gate coefficients, the intercept in the last row.

    Returns
    -------
    log_proba : array of shape (n_samples, n_nodes, n_children)
    """
    xp = get_namespace(Xa, coef)
    n_nodes, p, n_children = coef.shape
    flat = xp.reshape(xp.permute_dims(coef, (1, 0, 2)), (p, n_nodes * n_children))
    logits = xp.reshape(Xa @ flat, (Xa.shape[0], n_nodes, n_children))
    return log_softmax(logits, axis=-1)


def tree_log_reach(level_log_probas):
    """Return the log-probability of reaching every node, level by level.

    A node's gate probability is the product of the gate probabilities along
    its root-to-node path: a downward pass of sums in log space.

    Parameters
    ----------
    level_log_probas : list of arrays of shape (n_samples, n_nodes_l, b_l)
        Output of :func:`level_log_proba` for each level of gates.

    Returns
    -------
    log_reach : list of arrays of shape (n_samples, n_nodes_l)
        One per level including the root (zeros) and the leaves (last).
    """
    xp = get_namespace(level_log_probas[0])
    n_samples = level_log_probas[0].shape[0]
    log_reach = [xp.zeros((n_samples, 1), dtype=level_log_probas[0].dtype)]
    for log_proba in level_log_probas:
        reach = log_reach[-1][:, :, None] + log_proba
        log_reach.append(xp.reshape(reach, (n_samples, -1)))
    return log_reach


def node_posteriors(leaf_posterior, hierarchy):
    """Return the posterior probability of reaching every node.

    The posterior of reaching a node is the posterior mass of the leaves
    below it: an upward pass of sums from the leaves, which is exact for the
    complete trees used here.

    Parameters
    ----------
    leaf_posterior : array of shape (n_samples, n_leaves)
        Posterior responsibilities of the leaves (rows sum to one).
    hierarchy : tuple of int
        Branching factor of each level.

    Returns
    -------
    posteriors : list of arrays of shape (n_samples, n_nodes_l)
        One per level, root first, leaves last.
    """
    xp = get_namespace(leaf_posterior)
    n_samples = leaf_posterior.shape[0]
    posteriors = [leaf_posterior]
    for branching in reversed(hierarchy):
        below = xp.reshape(posteriors[0], (n_samples, -1, branching))
        posteriors.insert(0, xp.sum(below, axis=-1))
    return posteriors


# ---------------------------------------------------------------------------
# M-step: one monotone Newton-type step of weighted softmax regression with
# soft targets, batched over the gates of a level
# ---------------------------------------------------------------------------


def _penalised_objective(log_proba, targets, weights, coef, alpha):
    """Return each gate's weighted soft-target log-likelihood minus its penalty."""
    xp = get_namespace(log_proba)
    fit = xp.sum(weights * xp.sum(targets * log_proba, axis=-1), axis=0)
    penalty = 0.5 * alpha * xp.sum(coef[:, :-1, :] ** 2, axis=(1, 2))
    return fit - penalty


def _curvature(Xa, proba, weights, *, full):
    """Return each gate's Hessian of the negative log-likelihood.

    With ``full=True`` the whole (b p) x (b p) Hessian of a gate; otherwise
    only its b diagonal blocks (p x p), as a (n_nodes, b, p, p) array.
    """
    xp = get_namespace(Xa, proba)
    n_samples, n_nodes, n_children = proba.shape
    p = Xa.shape[1]
    if not full:
        V = weights[:, :, None] * proba * (1.0 - proba)
        gram = weighted_gram(Xa, xp.reshape(V, (n_samples, -1)))
        return xp.reshape(gram, (n_nodes, n_children, p, p))
    rows, cols = np.triu_indices(n_children)
    V = -proba[:, :, rows] * proba[:, :, cols]
    V[:, :, rows == cols] += proba
    V = weights[:, :, None] * V
    gram = weighted_gram(Xa, xp.reshape(V, (n_samples, -1)))
    gram = xp.reshape(gram, (n_nodes, rows.shape[0], p, p))
    hessian = xp.zeros((n_nodes, n_children, p, n_children, p), dtype=Xa.dtype)
    for pair, (r, c) in enumerate(zip(rows, cols, strict=True)):
        hessian[:, r, :, c, :] = gram[:, pair]
        hessian[:, c, :, r, :] = gram[:, pair]
    return xp.reshape(hessian, (n_nodes, n_children * p, n_children * p))


def _newton_direction(curvature, gradient, alpha, *, full):
    """Solve the (penalised, jittered) Newton system for every gate."""
    xp = get_namespace(curvature, gradient)
    n_nodes, p, n_children = gradient.shape
    penalty = xp.full((p,), alpha, dtype=gradient.dtype)
    penalty[-1] = 0.0  # the intercept is not penalised
    # Softmax is invariant to shifting all children's coefficients alike, so
    # the Hessian is singular along the intercept shift (and along every
    # shift when alpha = 0): a tiny jitter keeps the solve defined without
    # changing the ascent direction.
    if full:
        g = xp.reshape(xp.permute_dims(gradient, (0, 2, 1)), (n_nodes, -1))
        diag = xp.tile(penalty, n_children)
        scale = xp.mean(xp.diagonal(curvature, axis1=1, axis2=2), axis=1)
        jitter = 1e-10 * (scale + 1.0)
        A = curvature + (diag[None, :] + jitter[:, None])[:, :, None] * xp.eye(
            n_children * p, dtype=gradient.dtype
        )
        step = xp.reshape(batched_solve(A, g), (n_nodes, n_children, p))
    else:
        g = xp.reshape(xp.permute_dims(gradient, (0, 2, 1)), (-1, p))
        blocks = xp.reshape(curvature, (-1, p, p))
        scale = xp.mean(xp.diagonal(blocks, axis1=1, axis2=2), axis=1)
        jitter = 1e-10 * (scale + 1.0)
        A = blocks + (penalty[None, :] + jitter[:, None])[:, :, None] * xp.eye(
            p, dtype=gradient.dtype
        )
        step = xp.reshape(batched_solve(A, g), (n_nodes, n_children, p))
    return xp.permute_dims(step, (0, 2, 1))


def gate_newton_step(Xa, coef, targets, weights, *, alpha, solver="auto"):
    """Take one monotone Newton-type step for every gate of a level.

    Each gate ``j`` maximises the weighted soft-target log-likelihood
    ``sum_i weights[i, j] sum_c targets[i, j, c] log P_jc(x_i)`` minus
    ``alpha / 2`` times the squared norm of its non-intercept coefficients.
    A backtracking line search, per gate, makes sure that objective never
    decreases (generalised EM needs an improving step, not the optimum).

    Parameters
    ----------
    Xa : array of shape (n_samples, p)
        Gate features with a trailing column of ones.
    coef : array of shape (n_nodes, p, n_children)
        Current coefficients (intercept in the last row).
    targets : array of shape (n_samples, n_nodes, n_children)
        Soft targets; each row sums to one where its weight is positive.
    weights : array of shape (n_samples, n_nodes)
        Non-negative sample weights of each gate.
    alpha : float
        L2 penalty on the non-intercept coefficients.
    solver : {"auto", "newton", "block"}, default="auto"
        ``"newton"`` uses each gate's full Hessian, ``"block"`` only its
        per-child diagonal blocks; ``"auto"`` picks by branching factor.

    Returns
    -------
    coef : array of shape (n_nodes, p, n_children)
        Updated coefficients; a gate whose step found no improvement keeps
        its coefficients.
    """
    xp = get_namespace(Xa, coef)
    n_children = coef.shape[2]
    if solver == "auto":
        full = n_children <= _FULL_NEWTON_MAX_BRANCHING
    else:
        full = solver == "newton"

    log_proba = level_log_proba(Xa, coef)
    proba = xp.exp(log_proba)
    objective = _penalised_objective(log_proba, targets, weights, coef, alpha)

    residual = weights[:, :, None] * (targets - proba)
    n_samples, n_nodes, _ = residual.shape
    gradient = Xa.T @ xp.reshape(residual, (n_samples, -1))
    gradient = xp.permute_dims(
        xp.reshape(gradient, (Xa.shape[1], n_nodes, n_children)), (1, 0, 2)
    )
    gradient[:, :-1, :] -= alpha * coef[:, :-1, :]

    curvature = _curvature(Xa, proba, weights, full=full)
    step = _newton_direction(curvature, gradient, alpha, full=full)

    accepted = xp.zeros((n_nodes,), dtype=bool)
    new_coef = xp.asarray(coef, copy=True)
    step_size = 1.0
    for _ in range(_MAX_HALVINGS):
        trial = coef + step_size * step
        trial_objective = _penalised_objective(
            level_log_proba(Xa, trial), targets, weights, trial, alpha
        )
        improved = (trial_objective >= objective) & ~accepted
        new_coef[improved] = trial[improved]
        accepted |= improved
        if bool(xp.all(accepted)):
            break
        step_size *= 0.5
    # The intercepts are unpenalised and defined only up to a common shift:
    # centre them so that repeated fits do not drift.
    new_coef[:, -1, :] -= xp.mean(new_coef[:, -1, :], axis=1, keepdims=True)
    return new_coef


# ---------------------------------------------------------------------------
# The tree as a fitted object
# ---------------------------------------------------------------------------


class GateTree:
    """A fitted tree of softmax gates (the ``gate_`` attribute).

    Parameters
    ----------
    hierarchy : tuple of int
        Branching factor of each level; ``(K,)`` is a flat gate over K
        experts.
    n_features : int
        Number of gate features (the columns in ``feature_indices``).
    feature_indices : ndarray of shape (n_features,)
        Columns of the estimator's input that the gate sees.

    Attributes
    ----------
    coef : list of ndarray of shape (n_nodes_l, n_features + 1, b_l)
        Coefficients of every gate, one array per level, the intercept in
        the last row.
    n_nodes : int
        Number of nodes, leaves included.
    n_leaves : int
        Number of leaves (experts).
    parent : ndarray of shape (n_nodes,)
        Parent of every node, ``-1`` for the root.
    depth : ndarray of shape (n_nodes,)
        Depth of every node (the root has depth 0).
    """

    def __init__(self, hierarchy, n_features, feature_indices):
        self.hierarchy = tuple(int(b) for b in hierarchy)
        self.feature_indices = np.asarray(feature_indices, dtype=np.intp)
        self.coef = [
            np.zeros((n_nodes, n_features + 1, b))
            for n_nodes, b in zip(self.level_sizes[:-1], self.hierarchy, strict=True)
        ]

    # Structure -------------------------------------------------------------

    @property
    def level_sizes(self):
        """Number of nodes on each level, root (1) to leaves."""
        sizes = [1]
        for b in self.hierarchy:
            sizes.append(sizes[-1] * b)
        return sizes

    @property
    def n_leaves(self):
        """Number of leaves, that is of experts."""
        return math.prod(self.hierarchy)

    @property
    def n_nodes(self):
        """Number of nodes, root and leaves included."""
        return sum(self.level_sizes)

    @property
    def level_offsets(self):
        """Node id of the first node of every level."""
        return np.cumsum([0, *self.level_sizes[:-1]]).tolist()

    @property
    def depth(self):
        """Depth of every node."""
        return np.repeat(np.arange(len(self.level_sizes)), self.level_sizes)

    @property
    def parent(self):
        """Parent node id of every node (``-1`` for the root)."""
        parent = np.full(self.n_nodes, -1, dtype=np.intp)
        offsets = self.level_offsets
        for level, b in enumerate(self.hierarchy):
            children = np.arange(self.level_sizes[level + 1])
            parent[offsets[level + 1] + children] = offsets[level] + children // b
        return parent

    @property
    def leaves(self):
        """Node ids of the leaves, in expert order."""
        return np.arange(self.level_offsets[-1], self.n_nodes)

    def children(self, node):
        """Return the node ids of the children of ``node`` (empty for a leaf)."""
        return np.flatnonzero(self.parent == node)

    def node_coef(self, node):
        """Return ``(coef, intercept)`` of the gate at internal node ``node``.

        ``coef`` has shape (n_features, n_children): column c scores child c.
        """
        level = int(self.depth[node])
        if level >= len(self.hierarchy):
            raise ValueError(f"Node {node} is a leaf (expert); it has no gate.")
        j = node - self.level_offsets[level]
        return self.coef[level][j, :-1, :], self.coef[level][j, -1, :]

    @property
    def n_parameters(self):
        """Free parameters: ``(b - 1) * (n_features + 1)`` per gate."""
        return sum(
            n_nodes * (b - 1) * coef.shape[1]
            for n_nodes, b, coef in zip(
                self.level_sizes[:-1], self.hierarchy, self.coef, strict=True
            )
        )

    # Computation -----------------------------------------------------------

    def _design(self, X):
        return add_intercept(X[:, self.feature_indices])

    def level_log_probas(self, X):
        """Return every level's conditional log-probabilities of children."""
        Xa = self._design(X)
        return [level_log_proba(Xa, coef) for coef in self.coef]

    def log_reach(self, X):
        """Return the log-probability of reaching each node, shape (n, n_nodes)."""
        xp = get_namespace(X)
        return xp.concat(tree_log_reach(self.level_log_probas(X)), axis=1)

    def log_proba(self, X):
        """Return the leaves' log gate probabilities, shape (n, n_leaves)."""
        return tree_log_reach(self.level_log_probas(X))[-1]

    def m_step(self, X, leaf_posterior, sample_weight, *, alpha, solver="auto"):
        """Improve every gate given the leaves' posterior responsibilities.

        Node j's soft targets are its children's share of the posterior mass
        that reaches j, with sample weights ``w_i h_ij`` (DESIGN.md §2).
        """
        xp = get_namespace(X)
        Xa = self._design(X)
        posteriors = node_posteriors(leaf_posterior, self.hierarchy)
        for level, b in enumerate(self.hierarchy):
            reach = posteriors[level]
            children = xp.reshape(posteriors[level + 1], (X.shape[0], -1, b))
            safe = xp.where(reach > 0, reach, 1.0)
            targets = children / safe[:, :, None]
            weights = sample_weight[:, None] * reach
            self.coef[level] = gate_newton_step(
                Xa,
                self.coef[level],
                targets,
                weights,
                alpha=alpha,
                solver=solver,
            )
        return self

    # Display ---------------------------------------------------------------

    def __repr__(self):
        return (
            f"GateTree(hierarchy={self.hierarchy}, n_nodes={self.n_nodes}, "
            f"n_leaves={self.n_leaves}, n_features={len(self.feature_indices)})"
        )

    def describe(self):
        """Return a text drawing of the tree, one line per node."""
        lines = []
        offsets = self.level_offsets
        parent = self.parent

        def visit(node, indent):
            level = int(self.depth[node])
            if level == len(self.hierarchy):
                lines.append(f"{indent}leaf {node}: expert {node - offsets[-1]}")
                return
            lines.append(f"{indent}gate {node} -> {self.children(node).tolist()}")
            for child in np.flatnonzero(parent == node):
                visit(int(child), indent + "  ")

        visit(0, "")
        return "\n".join(lines)
