"""The gating network: a complete tree of softmax gates.

A flat mixture of K experts is the depth-1 tree ``hierarchy=(K,)``; a
hierarchical mixture (Jordan & Jacobs 1994) is a deeper tree. Every internal
node is a multinomial logistic gate over its children and the leaves are the
experts, so one code path serves both (docs/design.md §1).

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
    asarray_like,
    device,
    get_namespace,
    logsumexp,
    nonnegative_log,
    reduce_sum,
    take,
    to_device,
)
from skmoe._softmax import (
    softmax_curvature_weights,
    softmax_log_proba,
    softmax_newton_step,
    softmax_penalty,
    uses_full_hessian,
)

__all__ = [
    "GateTree",
    "node_posteriors",
    "penalty_scale",
    "scale_from_moments",
    "tree_log_reach",
]


# ---------------------------------------------------------------------------
# Forward pass: probabilities of children, of reaching nodes, of leaves
# ---------------------------------------------------------------------------


def tree_log_reach(level_log_probas):
    """Return the log-probability of reaching every node, level by level.

    A node's gate probability is the product of the gate probabilities along
    its root-to-node path: a downward pass of sums in log space.

    Parameters
    ----------
    level_log_probas : list of arrays of shape (n_samples, n_nodes_l, b_l)
        Output of :func:`~skmoe._softmax.softmax_log_proba` for each level.

    Returns
    -------
    log_reach : list of arrays of shape (n_samples, n_nodes_l)
        One per level including the root (zeros) and the leaves (last).
    """
    first = level_log_probas[0]
    xp, n_samples = get_namespace(first), first.shape[0]
    log_reach = [xp.zeros((n_samples, 1), dtype=first.dtype, device=device(first))]
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
        posteriors.insert(0, reduce_sum(below, axis=-1))
    return posteriors


# ---------------------------------------------------------------------------
# The scale of the gate's penalty
# ---------------------------------------------------------------------------


def scale_from_moments(std, root_mean_square):
    """Return the scale of every gate feature from its weighted moments.

    The gates' penalty acts on the features divided by these scales, so that
    it does not depend on their units: a feature's weighted standard
    deviation, as StandardScaler's. A feature whose deviation is below
    ``sqrt(eps)`` of its root mean square is constant to the precision of
    the Newton systems (with the intercept, its curvature has a condition
    number above ``1 / eps``): it gets its root mean square, which divides
    it to +-1 like the intercept column, in any units; an all-zero feature
    gets 1 (its coefficient is then free of the data and stays 0).

    Parameters
    ----------
    std, root_mean_square : ndarray of shape (n_features,)
        Weighted standard deviation and root mean square (about 0).

    Returns
    -------
    scale : ndarray of shape (n_features,)
        Positive.
    """
    std = np.asarray(std, dtype=np.float64)
    root_mean_square = np.asarray(root_mean_square, dtype=np.float64)
    constant = ~(std > np.sqrt(np.finfo(np.float64).eps) * root_mean_square)
    fallback = np.where(root_mean_square > 0, root_mean_square, 1.0)
    return np.where(constant, fallback, std)


def penalty_scale(X, sample_weight):
    """Return the gate's feature scales from its training columns (NumPy).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The gate's columns.
    sample_weight : ndarray of shape (n_samples,)

    Returns
    -------
    scale : ndarray of shape (n_features,)
        :func:`scale_from_moments` of the weighted moments.
    """
    X = np.asarray(X, dtype=np.float64)
    weight = np.asarray(sample_weight, dtype=np.float64)
    total = weight.sum()
    mean = (weight @ X) / total
    std = np.sqrt((weight @ np.square(X - mean)) / total)
    return scale_from_moments(std, np.sqrt((weight @ np.square(X)) / total))


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
    penalty_scale : ndarray of shape (n_features,), default=None
        Scale of every gate feature on the training data
        (:func:`penalty_scale`); None for ones, which penalises the raw
        coefficients.

    Attributes
    ----------
    coef : list of ndarray of shape (n_nodes_l, n_features + 1, b_l)
        Coefficients of every gate, one array per level, the intercept in
        the last row.
    n_nodes : int
        Number of nodes, leaves included.
    n_leaves : int
        Number of leaves (experts).
    penalty_scale : ndarray of shape (n_features,)
        The L2 penalty ``alpha`` of :meth:`log_prior` and :meth:`m_step`
        acts on the coefficients of the features divided by these scales
        (standardized features, the intercept unpenalised), so that the fit
        does not depend on the features' units. NumPy, fixed at the start
        of a fit.
    pruned : ndarray of shape (n_leaves,)
        Leaves pruned during the fit (experts that starved): their gate
        probability is zero and the other leaves' are renormalised.
    parent : ndarray of shape (n_nodes,)
        Parent of every node, ``-1`` for the root.
    depth : ndarray of shape (n_nodes,)
        Depth of every node (the root has depth 0).
    """

    def __init__(self, hierarchy, n_features, feature_indices, penalty_scale=None):
        self.hierarchy = tuple(int(b) for b in hierarchy)
        self.feature_indices = np.asarray(feature_indices, dtype=np.intp)
        if penalty_scale is None:
            penalty_scale = np.ones(n_features)
        self.penalty_scale = np.asarray(penalty_scale, dtype=np.float64)
        self.coef = [
            np.zeros((n_nodes, n_features + 1, b))
            for n_nodes, b in zip(self.level_sizes[:-1], self.hierarchy, strict=True)
        ]
        self.pruned = np.zeros(self.n_leaves, dtype=bool)

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
        """Return the node ids of the children of a node.

        Parameters
        ----------
        node : int
            Node id.

        Returns
        -------
        children : ndarray of int
            Ids of the children (empty for a leaf).
        """
        return np.flatnonzero(self.parent == node)

    def node_coef(self, node):
        """Return the coefficients of the gate at an internal node.

        Parameters
        ----------
        node : int
            Id of an internal node.

        Returns
        -------
        coef : ndarray of shape (n_features, n_children)
            Column c scores child c.
        intercept : ndarray of shape (n_children,)
            The children's intercepts.
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

    def log_prior(self, alpha):
        """Return the log of the gates' Gaussian prior (the L2 penalty).

        Parameters
        ----------
        alpha : float
            The gates' L2 penalty.

        Returns
        -------
        log_prior : float
            ``-alpha / 2`` times the squared norm of every gate's slopes,
            each times its feature's ``penalty_scale``.
        """
        penalties = (
            float(softmax_penalty(c, alpha, self.penalty_scale).sum())
            for c in self.coef
        )
        return -sum(penalties)

    def map_arrays(self, function):
        """Replace every coefficient array by ``function`` of it.

        The EM loop moves the coefficients to the fit's device and back to
        NumPy once fitted: ``coef`` of a fitted tree is always NumPy.

        Parameters
        ----------
        function : callable
            Takes and returns an array, such as ``skmoe._backend.to_numpy``.

        Returns
        -------
        self : GateTree
            The tree, its coefficients replaced.
        """
        self.coef = [function(c) for c in self.coef]
        return self

    # Computation -----------------------------------------------------------

    def _design(self, X):
        return add_intercept(take(X, self.feature_indices, axis=1))

    def level_log_probas(self, X, *, design=None):
        """Return every level's conditional log-probabilities of children.

        Parameters
        ----------
        X : array of shape (n_samples, n_input_features)
            Input of the estimator, a NumPy array or a torch tensor; the gate
            reads ``feature_indices``.
        design : Design, default=None
            The gate's design for ``X`` (its columns with an intercept), when
            the caller holds one (the EM loop's :class:`DesignCache`): it
            saves building it again.

        Returns
        -------
        log_probas : list of array of shape (n_samples, n_nodes_l, b_l)
            One per level of gates, of the kind, device and dtype of ``X``.
        """
        Xa = self._design(X) if design is None else design.X
        return [softmax_log_proba(Xa, asarray_like(coef, Xa)) for coef in self.coef]

    def log_reach(self, X):
        """Return the log-probability of reaching every node.

        Parameters
        ----------
        X : array of shape (n_samples, n_input_features)
            Input of the estimator (a NumPy array or a torch tensor).

        Returns
        -------
        log_reach : array of shape (n_samples, n_nodes)
            Columns in node id order. With pruned leaves, a node's reach is
            the renormalised probability of the leaves below it.
        """
        xp = get_namespace(X)
        level_log_probas = self.level_log_probas(X)
        if not np.any(self.pruned):
            return xp.concat(tree_log_reach(level_log_probas), axis=1)
        leaf_proba = xp.exp(self.leaf_log_proba(level_log_probas))
        return nonnegative_log(
            xp.concat(node_posteriors(leaf_proba, self.hierarchy), axis=1)
        )

    def log_proba(self, X):
        """Return the leaves' log gate probabilities.

        Parameters
        ----------
        X : array of shape (n_samples, n_input_features)
            Input of the estimator (a NumPy array or a torch tensor).

        Returns
        -------
        log_proba : array of shape (n_samples, n_leaves)
            Columns in expert (leaf) order.
        """
        return self.leaf_log_proba(self.level_log_probas(X))

    def leaf_log_proba(self, level_log_probas):
        """Return the leaves' log gate probabilities from every level's.

        Pruned leaves get ``-inf`` and the others are renormalised.

        Parameters
        ----------
        level_log_probas : list of ndarray
            Output of :meth:`level_log_probas`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_leaves)
            Columns in expert (leaf) order; rows sum to one in probability.
        """
        log_proba = tree_log_reach(level_log_probas)[-1]
        if not np.any(self.pruned):
            return log_proba
        xp = get_namespace(log_proba)
        pruned = to_device(self.pruned, log_proba)
        log_proba = xp.where(
            pruned[None, :], xp.full_like(log_proba, -xp.inf), log_proba
        )
        return log_proba - logsumexp(log_proba, axis=1, keepdims=True)

    def problems(self, leaf_posterior, sample_weight):
        """Return every level's softmax problems given the leaves' posterior.

        Node j's soft targets are its children's share of the posterior mass
        that reaches j, with sample weights ``w_i h_ij`` (docs/design.md §2.2).

        Parameters
        ----------
        leaf_posterior : array of shape (n_samples, n_leaves)
            Posterior responsibilities of the leaves.
        sample_weight : array of shape (n_samples,)
            Weights of the samples.

        Returns
        -------
        problems : list of (targets, weights)
            Per level, targets of shape (n_samples, n_nodes_l, b_l) and
            weights of shape (n_samples, n_nodes_l).
        """
        xp = get_namespace(leaf_posterior)
        n_samples = leaf_posterior.shape[0]
        posteriors = node_posteriors(leaf_posterior, self.hierarchy)
        problems = []
        for level, b in enumerate(self.hierarchy):
            reach = posteriors[level]
            children = xp.reshape(posteriors[level + 1], (n_samples, -1, b))
            safe = xp.where(reach > 0, reach, 1.0)
            problems.append(
                (children / safe[:, :, None], sample_weight[:, None] * reach)
            )
        return problems

    def design(self, designs):
        """Return the gate's design (its columns with an intercept) from a cache.

        Parameters
        ----------
        designs : DesignCache
            The designs of the rows at hand.

        Returns
        -------
        design : Design
            The cached design of ``feature_indices`` with an intercept.
        """
        return designs.get(columns=self.feature_indices, intercept=True)

    def m_step(
        self,
        designs,
        leaf_posterior,
        sample_weight,
        *,
        alpha,
        solver="auto",
        n_steps=1,
        level_log_probas=None,
        shared_gram_weights=(),
    ):
        """Improve every gate given the leaves' posterior responsibilities.

        Node j's soft targets are its children's share of the posterior mass
        that reaches j, with sample weights ``w_i h_ij`` (docs/design.md §2.2).

        Parameters
        ----------
        designs : DesignCache
            The fit's designs; the gate uses its own columns with an
            intercept.
        leaf_posterior : array of shape (n_samples, n_leaves)
            Posterior responsibilities of the leaves.
        sample_weight : array of shape (n_samples,)
            Weights of the samples.
        alpha : float
            L2 penalty on the gate coefficients of the features divided by
            ``penalty_scale``.
        solver : {"auto", "newton", "block"}, default="auto"
            Newton step with full or block-diagonal Hessians.
        n_steps : int, default=1
            Newton steps per gate; one improving step is enough for
            generalised EM, more fit a fresh gate to a starting partition.
        level_log_probas : list of arrays, default=None
            :meth:`level_log_probas` at the current coefficients, when the
            caller has them (the E-step computed them).
        shared_gram_weights : sequence of arrays of shape (n_samples, m), \
                default=()
            Row weights of other Gram matrices on the gate's design (the
            linear experts' when they see the same columns): they are
            computed in the same pass over X as the gates' first Hessians.

        Returns
        -------
        level_log_probas : list of arrays of shape (n_samples, n_nodes_l, b_l)
            :meth:`level_log_probas` at the updated coefficients, which the
            line search of each step computed: the next E-step's gate.
        shared_grams : list of arrays of shape (m, p, p)
            The Gram matrices of ``shared_gram_weights``, in order.
        """
        xp = get_namespace(leaf_posterior)
        design = designs.get(columns=self.feature_indices, intercept=True)
        if level_log_probas is None:
            level_log_probas = [softmax_log_proba(design.X, coef) for coef in self.coef]
        problems = self.problems(leaf_posterior, sample_weight)

        # One pass over X for the first Newton step of every level and for
        # the shared Gram matrices.
        p = design.X.shape[1]
        curvature_weights = [
            softmax_curvature_weights(
                xp.exp(log_proba), weights, full=uses_full_hessian(solver, b, p)
            )
            for log_proba, (_, weights), b in zip(
                level_log_probas, problems, self.hierarchy, strict=True
            )
        ]
        grams = design.grams([*shared_gram_weights, *curvature_weights])
        shared_grams = grams[: len(shared_gram_weights)]
        level_grams = grams[len(shared_gram_weights) :]

        updated = []
        for level, (targets, weights) in enumerate(problems):
            log_proba, gram = level_log_probas[level], level_grams[level]
            for _ in range(n_steps):
                self.coef[level], _, log_proba = softmax_newton_step(
                    design,
                    self.coef[level],
                    targets,
                    weights,
                    alpha=alpha,
                    scale=self.penalty_scale,
                    solver=solver,
                    log_proba=log_proba,
                    gram=gram,
                )
                gram = None
            updated.append(log_proba)
        return updated, shared_grams

    # Display ---------------------------------------------------------------

    def __repr__(self):
        return (
            f"GateTree(hierarchy={self.hierarchy}, n_nodes={self.n_nodes}, "
            f"n_leaves={self.n_leaves}, n_features={len(self.feature_indices)})"
        )

    def describe(self):
        """Return a text drawing of the tree.

        Returns
        -------
        text : str
            One line per node, children indented under their gate.
        """
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
