"""Synthetic data drawn from a known mixture of experts.

Each generator draws ``X`` from a standard normal distribution, routes every
row to one expert through a tree of softmax gates and draws ``y`` from that
expert. With ``return_truth=True`` the generating model comes back as a
:class:`MixtureTruth`, which predicts and scores like a fitted model, so that
an estimator can be compared with the model that made its data.
"""

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm
from sklearn.utils import (
    check_array,
    check_consistent_length,
    check_random_state,
    column_or_1d,
)
from sklearn.utils.metaestimators import available_if

__all__ = [
    "MixtureTruth",
    "make_hme_classification",
    "make_hme_regression",
    "make_moe_classification",
    "make_moe_regression",
]

# Standard deviation of the regression experts' coefficients and intercepts:
# large enough that two experts disagree by far more than the default noise.
_REGRESSION_EXPERT_STD = 2.0


###############################################################################
# The true model: gate tree and experts


def _log_leaf_gate(X, gate_coef, gate_intercept):
    """Log gate probability of every leaf, in leaf order.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Input rows.
    gate_coef : list of ndarray
        Per level, gate coefficients of shape (n_nodes, n_features, n_children).
    gate_intercept : list of ndarray
        Per level, gate intercepts of shape (n_nodes, n_children).

    Returns
    -------
    log_gate : ndarray of shape (n_samples, n_leaves)
        Sum of the log gate probabilities along each root-to-leaf path.
    """
    log_gate = np.zeros((X.shape[0], 1))
    for coef, intercept in zip(gate_coef, gate_intercept, strict=True):
        logits = np.einsum("nd,pdb->npb", X, coef) + intercept
        # Child c of node p is node p * n_children + c on the next level, which
        # is exactly the order of a C-contiguous reshape of (node, child).
        log_gate = log_gate[:, :, np.newaxis] + log_softmax(logits, axis=2)
        log_gate = log_gate.reshape(X.shape[0], -1)
    return log_gate


def _regression_expert_mean(X, expert_coef, expert_intercept):
    """Mean of every linear-Gaussian expert, shape (n_samples, n_experts)."""
    return X @ expert_coef.T + expert_intercept


def _gaussian_log_density(y, mean, std):
    """Log density of ``y[:, None]`` under ``N(mean, std**2)`` per expert."""
    z = (y[:, np.newaxis] - mean) / std
    return -0.5 * (np.log(2 * np.pi) + z**2) - np.log(std)


def _classification_expert_log_proba(X, expert_coef, expert_intercept):
    """Class log-probabilities of every expert, (n_samples, n_experts, n_classes)."""
    logits = np.einsum("nd,kcd->nkc", X, expert_coef) + expert_intercept
    return log_softmax(logits, axis=2)


###############################################################################
# Drawing the true model


def _simplex_vertices(n_vertices):
    """Vertices of a regular simplex centred at 0, as unit-norm columns.

    Returns an array of shape (n_vertices - 1, n_vertices) whose columns sum to
    zero and are equally far apart.
    """
    if n_vertices == 1:
        return np.zeros((0, 1))
    centred = np.eye(n_vertices) - 1.0 / n_vertices
    basis, _ = np.linalg.qr(centred[:, :-1])
    return basis.T / np.sqrt(1.0 - 1.0 / n_vertices)


def _draw_softmax_coef(rng, n_features, n_outputs, scale, *, orthogonal_to):
    """Draw softmax coefficients whose outputs split the inputs evenly.

    The coefficients sum to zero over the outputs (the identifiable form of a
    softmax) and each output's column has norm ``scale``. When ``n_outputs - 1
    <= n_features`` the columns are a regular simplex in a random subspace, so
    that for standard normal inputs the logits are exchangeable and every
    output wins on the same share of the inputs. That subspace is also kept
    orthogonal to ``orthogonal_to`` when there is room, which makes a child
    gate's split independent of its ancestors' and so even within their
    regions.

    When no regular simplex fits (more outputs than ``n_features + 1``, as
    with three experts on 1-D inputs), the logits are those of the nearest of
    ``n_outputs`` centres, ``scale * (c_k . x - |c_k|^2 / 2)``: every output
    still owns a region (the Voronoi cell of its centre), which random
    directions without intercepts would not give (in 1-D they collapse onto
    two opposite slopes). The centres lie along a random direction, spaced so
    that the cells split standard normal inputs about evenly.

    Returns
    -------
    coef : ndarray of shape (n_features, n_outputs)
        The coefficients.
    intercept : ndarray of shape (n_outputs,)
        The intercepts (zero for the simplex, centred otherwise).
    basis : ndarray of shape (n_features, n_directions)
        ``orthogonal_to`` extended by the directions used here when they were
        kept orthogonal to it, else ``orthogonal_to`` unchanged.
    """
    n_directions = n_outputs - 1
    if n_directions > n_features:
        direction = rng.standard_normal(n_features)
        direction /= np.linalg.norm(direction)
        # Cell boundaries (midpoints between neighbouring centres) fall at or
        # near the normal quantiles k / n_outputs: near-equal shares.
        bounds = norm.ppf(np.arange(1, n_outputs) / n_outputs)
        spacing = np.diff(bounds).mean()
        centres = np.concatenate(
            [[bounds[0] - spacing / 2], (bounds[:-1] + bounds[1:]) / 2]
        )
        centres = np.append(centres, bounds[-1] + spacing / 2)
        # Dividing by the spacing gives neighbouring logits a slope gap of
        # ``scale``, as sharp as the simplex gates.
        coef = (scale / spacing) * np.outer(direction, centres)
        intercept = -0.5 * (scale / spacing) * centres**2
        return coef, intercept - intercept.mean(), orthogonal_to

    draw = rng.standard_normal((n_features, n_directions))
    room = orthogonal_to.shape[1] + n_directions <= n_features
    if room:
        draw -= orthogonal_to @ (orthogonal_to.T @ draw)
    directions, _ = np.linalg.qr(draw)
    coef = scale * directions @ _simplex_vertices(n_outputs)
    basis = np.hstack([orthogonal_to, directions]) if room else orthogonal_to
    return coef, np.zeros(n_outputs), basis


def _draw_gate_tree(rng, n_features, hierarchy, gate_scale):
    """Draw every gate of a complete tree, level by level in breadth-first order."""
    gate_coef, gate_intercept = [], []
    node_bases = [np.empty((n_features, 0))]
    for n_children in hierarchy:
        level_coef = np.empty((len(node_bases), n_features, n_children))
        level_intercept = np.empty((len(node_bases), n_children))
        child_bases = []
        for node, basis in enumerate(node_bases):
            level_coef[node], level_intercept[node], child_basis = _draw_softmax_coef(
                rng, n_features, n_children, gate_scale, orthogonal_to=basis
            )
            child_bases.extend([child_basis] * n_children)
        gate_coef.append(level_coef)
        gate_intercept.append(level_intercept)
        node_bases = child_bases
    return gate_coef, gate_intercept


def _sample_categories(proba, rng):
    """Draw one category per row of ``proba`` (rows sum to one)."""
    u = rng.uniform(size=(proba.shape[0], 1))
    # Category k owns [cumsum[k - 1], cumsum[k]); the clip guards against a
    # last cumulative sum that rounds below u.
    index = np.sum(np.cumsum(proba, axis=1) <= u, axis=1)
    return np.minimum(index, proba.shape[1] - 1)


def _make_tree_data(
    n_samples,
    n_features,
    hierarchy,
    *,
    n_classes,
    noise,
    gate_scale,
    expert_scale,
    random_state,
    return_truth,
):
    """Draw a tree of gates and its experts, then data from them.

    The one code path behind the four public generators; a flat mixture is
    ``hierarchy=(n_experts,)``. ``n_classes=None`` means regression. The
    model is drawn before ``X``, so it depends on ``random_state`` and the
    shapes but not on ``n_samples``.
    """
    rng = check_random_state(random_state)
    n_experts = int(np.prod(hierarchy))
    gate_coef, gate_intercept = _draw_gate_tree(rng, n_features, hierarchy, gate_scale)

    if n_classes is None:
        expert_coef = _REGRESSION_EXPERT_STD * rng.standard_normal(
            (n_experts, n_features)
        )
        expert_intercept = _REGRESSION_EXPERT_STD * rng.standard_normal(n_experts)
        noise_std, classes = noise, None
    else:
        no_basis = np.empty((n_features, 0))
        expert_coef = np.empty((n_experts, n_classes, n_features))
        expert_intercept = np.empty((n_experts, n_classes))
        for k in range(n_experts):
            coef, _, _ = _draw_softmax_coef(
                rng, n_features, n_classes, expert_scale, orthogonal_to=no_basis
            )
            expert_coef[k] = coef.T
            intercept = rng.standard_normal(n_classes)
            expert_intercept[k] = intercept - intercept.mean()
        noise_std, classes = None, np.arange(n_classes)

    X = rng.standard_normal((n_samples, n_features))
    gate = np.exp(_log_leaf_gate(X, gate_coef, gate_intercept))
    assignments = _sample_categories(gate, rng)
    rows = np.arange(n_samples)
    if n_classes is None:
        mean = _regression_expert_mean(X, expert_coef, expert_intercept)
        y = mean[rows, assignments] + noise_std[assignments] * rng.standard_normal(
            n_samples
        )
    else:
        log_proba = _classification_expert_log_proba(X, expert_coef, expert_intercept)
        y = classes[_sample_categories(np.exp(log_proba[rows, assignments]), rng)]

    if not return_truth:
        return X, y
    truth = MixtureTruth(
        hierarchy=tuple(hierarchy),
        gate_coef=gate_coef,
        gate_intercept=gate_intercept,
        expert_coef=expert_coef,
        expert_intercept=expert_intercept,
        noise_std=noise_std,
        classes=classes,
        assignments=assignments,
    )
    return X, y, truth


###############################################################################
# Argument checks


def _check_int(value, name, *, min_value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    return int(value)


def _check_scale(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def _check_hierarchy(hierarchy):
    try:
        branching = tuple(hierarchy)
    except TypeError:
        raise ValueError(
            f"hierarchy must be a tuple of branching factors, got {hierarchy!r}."
        ) from None
    if not branching:
        raise ValueError("hierarchy must have at least one level, got ().")
    for n_children in branching:
        if (
            isinstance(n_children, bool)
            or not isinstance(n_children, numbers.Integral)
            or n_children < 2
        ):
            raise ValueError(
                "every branching factor in hierarchy must be an integer >= 2, "
                f"got hierarchy={hierarchy!r}."
            )
    return tuple(int(n_children) for n_children in branching)


def _check_noise(noise, n_experts):
    try:
        noise_std = np.asarray(noise, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"noise must be a float or an array of floats, got {noise!r}."
        ) from None
    if noise_std.ndim == 0:
        noise_std = np.full(n_experts, float(noise_std))
    elif noise_std.shape != (n_experts,):
        raise ValueError(
            "noise must be a float or an array of shape (n_experts,) = "
            f"({n_experts},), got an array of shape {noise_std.shape}."
        )
    if not np.all(np.isfinite(noise_std)) or np.any(noise_std < 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}.")
    return noise_std.copy()


def _check_common(n_samples, n_features, gate_scale):
    return (
        _check_int(n_samples, "n_samples", min_value=1),
        _check_int(n_features, "n_features", min_value=1),
        _check_scale(gate_scale, "gate_scale"),
    )


###############################################################################
# Public API


def _is_classification(truth):
    return truth.classes is not None


@dataclass(eq=False, repr=False)
class MixtureTruth:
    """The known mixture of experts behind a synthetic data set.

    Returned by the ``make_*`` generators of :mod:`skmoe.datasets` with
    ``return_truth=True``. It evaluates the true gate, the true conditional
    mean or class probabilities and the true log-likelihood on any input, so
    that a fitted estimator can be compared with the best possible model.

    The gate is a complete tree of softmax gates: ``hierarchy[l]`` is the
    number of children of each node at depth ``l``, child ``c`` of node ``p``
    is node ``p * hierarchy[l] + c`` at depth ``l + 1`` and the experts are
    the leaves in that (breadth-first) order. A leaf's gate probability is the
    product of the gate probabilities along its root-to-leaf path; a flat
    mixture is the tree ``(n_experts,)``.

    Parameters
    ----------
    hierarchy : tuple of int
        Branching factor at each depth of the gate tree.

    gate_coef : list of ndarray
        Gate coefficients per depth ``l``, each of shape
        ``(n_nodes_l, n_features, hierarchy[l])`` where ``n_nodes_l`` is the
        product of ``hierarchy[:l]``.

    gate_intercept : list of ndarray
        Gate intercepts per depth ``l``, each of shape
        ``(n_nodes_l, hierarchy[l])``.

    expert_coef : ndarray of shape (n_experts, n_features) or \
            (n_experts, n_classes, n_features)
        Coefficients of the linear (regression) or multinomial logistic
        (classification) experts, in leaf order.

    expert_intercept : ndarray of shape (n_experts,) or (n_experts, n_classes)
        Intercepts of the experts.

    noise_std : ndarray of shape (n_experts,) or None
        Standard deviation of each regression expert's Gaussian noise; None
        for classification.

    classes : ndarray of shape (n_classes,) or None
        Class labels for classification; None for regression.

    assignments : ndarray of shape (n_samples,)
        Index of the expert (leaf) that generated each row of the data set.

    Attributes
    ----------
    n_experts : int
        Number of experts, the product of ``hierarchy``.

    See Also
    --------
    make_moe_regression : Data from a flat mixture of linear experts.
    make_hme_classification : Data from a tree of gates over logistic experts.

    Examples
    --------
    >>> from skmoe.datasets import make_hme_regression
    >>> X, y, truth = make_hme_regression(
    ...     n_samples=100, hierarchy=(2, 3), random_state=0, return_truth=True
    ... )
    >>> truth.n_experts
    6
    >>> [coef.shape for coef in truth.gate_coef]
    [(1, 10, 2), (2, 10, 3)]
    >>> truth.predict_gate(X).shape
    (100, 6)
    """

    hierarchy: tuple
    gate_coef: list
    gate_intercept: list
    expert_coef: np.ndarray
    expert_intercept: np.ndarray
    noise_std: np.ndarray | None
    classes: np.ndarray | None
    assignments: np.ndarray

    @property
    def n_experts(self):
        """Number of experts, the product of ``hierarchy``."""
        return int(np.prod(self.hierarchy))

    def __repr__(self):
        """Summarise the model without printing its arrays."""
        task = "regression" if self.classes is None else "classification"
        return (
            f"MixtureTruth({task}, hierarchy={self.hierarchy}, "
            f"n_features={self.expert_coef.shape[-1]})"
        )

    def _validate_X(self, X):
        X = check_array(X)
        n_features = self.expert_coef.shape[-1]
        if X.shape[1] != n_features:
            raise ValueError(
                f"X has {X.shape[1]} features, but the model has {n_features}."
            )
        return X

    def _log_gate(self, X):
        return _log_leaf_gate(X, self.gate_coef, self.gate_intercept)

    def predict_gate(self, X):
        """Gate probability of each expert.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        gate : ndarray of shape (n_samples, n_experts)
            Leaf gate probabilities, in leaf order; each row sums to one.
        """
        return np.exp(self._log_gate(self._validate_X(X)))

    def apply(self, X):
        """Index of the most probable expert for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        leaves : ndarray of shape (n_samples,)
            Leaf index of the expert with the largest gate probability.
        """
        return np.argmax(self._log_gate(self._validate_X(X)), axis=1)

    def predict(self, X):
        """Predict with the true model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Regression: the mixture mean ``sum_k g_k(x) f_k(x)``.
            Classification: the class of largest mixture probability.
        """
        if _is_classification(self):
            return self.classes[np.argmax(self.predict_proba(X), axis=1)]
        X = self._validate_X(X)
        mean = _regression_expert_mean(X, self.expert_coef, self.expert_intercept)
        return np.sum(np.exp(self._log_gate(X)) * mean, axis=1)

    @available_if(_is_classification)
    def predict_proba(self, X):
        """Class probabilities of the true mixture (classification only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``sum_k g_k(x) P_k(c | x)``, columns in the order of ``classes``.
        """
        X = self._validate_X(X)
        log_proba = _classification_expert_log_proba(
            X, self.expert_coef, self.expert_intercept
        )
        log_joint = self._log_gate(X)[:, :, np.newaxis] + log_proba
        return np.exp(logsumexp(log_joint, axis=1))

    def log_likelihood(self, X, y):
        """Per-sample log-likelihood ``log p(y | x)`` of the true model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input samples.

        y : array-like of shape (n_samples,)
            Targets: real values for regression, labels in ``classes`` for
            classification.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
            Log of the mixture density (regression) or of the mixture
            probability of the observed class (classification).
        """
        X = self._validate_X(X)
        y = column_or_1d(y)
        check_consistent_length(X, y)
        log_gate = self._log_gate(X)
        if _is_classification(self):
            if not np.all(np.isin(y, self.classes)):
                raise ValueError(
                    f"y contains labels that are not in classes {self.classes}."
                )
            index = np.searchsorted(self.classes, y)
            log_proba = _classification_expert_log_proba(
                X, self.expert_coef, self.expert_intercept
            )
            log_expert = log_proba[np.arange(X.shape[0]), :, index]
        else:
            if np.any(self.noise_std <= 0):
                raise ValueError(
                    "log_likelihood needs noise_std > 0 for every expert; a "
                    "noiseless expert has no density."
                )
            y = np.asarray(y, dtype=np.float64)
            mean = _regression_expert_mean(X, self.expert_coef, self.expert_intercept)
            log_expert = _gaussian_log_density(y, mean, self.noise_std)
        return logsumexp(log_gate + log_expert, axis=1)


def make_hme_regression(
    n_samples=1000,
    n_features=10,
    hierarchy=(2, 2),
    *,
    noise=0.5,
    gate_scale=4.0,
    random_state=None,
    return_truth=False,
):
    """Generate a regression problem from a hierarchical mixture of experts.

    ``X`` is standard normal. A complete tree of softmax gates (the
    hierarchical mixture of experts of Jordan and Jacobs) routes each row to
    one of ``prod(hierarchy)`` linear experts, drawn from its leaf gate
    probabilities, and ``y`` is that expert's linear function of the row plus
    Gaussian noise.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.

    n_features : int, default=10
        Number of features, seen by both the gates and the experts.

    hierarchy : tuple of int, default=(2, 2)
        Branching factor at each depth of the gate tree, each at least 2: the
        root has ``hierarchy[0]`` children, each of those ``hierarchy[1]``,
        and so on. The experts are the ``prod(hierarchy)`` leaves.

    noise : float or array-like of shape (n_experts,), default=0.5
        Standard deviation of the Gaussian noise, shared or per expert.

    gate_scale : float, default=4.0
        Sharpness of the gates: the norm of each child's gate coefficients
        (taken to sum to zero over the children). Larger values give crisper
        regions; 0 gives uniform gates.

    random_state : int, RandomState instance or None, default=None
        Determines the model and the data. Pass an int for reproducible
        output across multiple function calls.
        See :term:`Glossary <random_state>`.

    return_truth : bool, default=False
        If True, also return the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The input samples.

    y : ndarray of shape (n_samples,)
        The target values.

    truth : MixtureTruth
        The generating model and the expert that drew each row. Only returned
        if ``return_truth`` is True.

    See Also
    --------
    make_moe_regression : The same with a flat gate.
    make_hme_classification : A tree of gates over logistic experts.

    Notes
    -----
    Each gate's coefficients form a regular simplex of norm ``gate_scale`` in
    a random subspace, orthogonal to its ancestors' gates when ``n_features``
    allows it, and the gate intercepts are zero: for standard normal inputs
    every leaf then gets the same expected share of the rows. The expert
    coefficients and intercepts are drawn from ``N(0, 2**2)``.

    The model is drawn before ``X``, so two calls with the same integer
    ``random_state`` and shapes share the model whatever their
    ``n_samples``.

    References
    ----------
    .. [1] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation, 6(2), 181-214, 1994.

    Examples
    --------
    >>> from skmoe.datasets import make_hme_regression
    >>> X, y, truth = make_hme_regression(
    ...     n_samples=200, hierarchy=(2, 2), random_state=0, return_truth=True
    ... )
    >>> X.shape, y.shape
    ((200, 10), (200,))
    >>> truth.predict_gate(X).shape
    (200, 4)
    """
    n_samples, n_features, gate_scale = _check_common(n_samples, n_features, gate_scale)
    hierarchy = _check_hierarchy(hierarchy)
    noise_std = _check_noise(noise, int(np.prod(hierarchy)))
    return _make_tree_data(
        n_samples,
        n_features,
        hierarchy,
        n_classes=None,
        noise=noise_std,
        gate_scale=gate_scale,
        expert_scale=None,
        random_state=random_state,
        return_truth=return_truth,
    )


def make_moe_regression(
    n_samples=1000,
    n_features=10,
    n_experts=4,
    *,
    noise=0.5,
    gate_scale=4.0,
    random_state=None,
    return_truth=False,
):
    """Generate a regression problem from a mixture of linear experts.

    ``X`` is standard normal. A softmax gate routes each row to one of
    ``n_experts`` linear experts, drawn from its gate probabilities, and
    ``y`` is that expert's linear function of the row plus Gaussian noise.
    This is :func:`make_hme_regression` with ``hierarchy=(n_experts,)``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.

    n_features : int, default=10
        Number of features, seen by both the gate and the experts.

    n_experts : int, default=4
        Number of experts.

    noise : float or array-like of shape (n_experts,), default=0.5
        Standard deviation of the Gaussian noise, shared or per expert.

    gate_scale : float, default=4.0
        Sharpness of the gate: the norm of each expert's gate coefficients
        (taken to sum to zero over the experts). Larger values give crisper
        regions; 0 gives a uniform gate.

    random_state : int, RandomState instance or None, default=None
        Determines the model and the data. Pass an int for reproducible
        output across multiple function calls.
        See :term:`Glossary <random_state>`.

    return_truth : bool, default=False
        If True, also return the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The input samples.

    y : ndarray of shape (n_samples,)
        The target values.

    truth : MixtureTruth
        The generating model and the expert that drew each row. Only returned
        if ``return_truth`` is True.

    See Also
    --------
    make_hme_regression : The same with a tree of gates.
    make_moe_classification : A softmax gate over logistic experts.

    Notes
    -----
    With ``n_experts <= n_features + 1`` the gate's coefficients form a
    regular simplex of norm ``gate_scale`` and the intercepts are zero, so
    every expert gets the same expected share of the rows. The expert
    coefficients and intercepts are drawn from ``N(0, 2**2)``.

    References
    ----------
    .. [1] R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton,
       "Adaptive mixtures of local experts", Neural Computation, 3(1),
       79-87, 1991.

    Examples
    --------
    >>> from skmoe.datasets import make_moe_regression
    >>> X, y, truth = make_moe_regression(
    ...     n_samples=200, n_experts=3, random_state=0, return_truth=True
    ... )
    >>> X.shape, y.shape
    ((200, 10), (200,))
    >>> truth.expert_coef.shape, truth.noise_std
    ((3, 10), array([0.5, 0.5, 0.5]))
    """
    n_samples, n_features, gate_scale = _check_common(n_samples, n_features, gate_scale)
    n_experts = _check_int(n_experts, "n_experts", min_value=1)
    noise_std = _check_noise(noise, n_experts)
    return _make_tree_data(
        n_samples,
        n_features,
        (n_experts,),
        n_classes=None,
        noise=noise_std,
        gate_scale=gate_scale,
        expert_scale=None,
        random_state=random_state,
        return_truth=return_truth,
    )


def make_hme_classification(
    n_samples=1000,
    n_features=10,
    hierarchy=(2, 2),
    n_classes=2,
    *,
    gate_scale=4.0,
    expert_scale=4.0,
    random_state=None,
    return_truth=False,
):
    """Generate a classification problem from a hierarchical mixture of experts.

    ``X`` is standard normal. A complete tree of softmax gates (the
    hierarchical mixture of experts of Jordan and Jacobs) routes each row to
    one of ``prod(hierarchy)`` multinomial logistic experts, drawn from its
    leaf gate probabilities, and the label is drawn from that expert's class
    probabilities.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.

    n_features : int, default=10
        Number of features, seen by both the gates and the experts.

    hierarchy : tuple of int, default=(2, 2)
        Branching factor at each depth of the gate tree, each at least 2: the
        root has ``hierarchy[0]`` children, each of those ``hierarchy[1]``,
        and so on. The experts are the ``prod(hierarchy)`` leaves.

    n_classes : int, default=2
        Number of classes; labels are ``0, ..., n_classes - 1``.

    gate_scale : float, default=4.0
        Sharpness of the gates: the norm of each child's gate coefficients
        (taken to sum to zero over the children). Larger values give crisper
        regions; 0 gives uniform gates.

    expert_scale : float, default=4.0
        Sharpness of the experts: the norm of each class's coefficients in an
        expert (taken to sum to zero over the classes). Larger values give
        less label noise.

    random_state : int, RandomState instance or None, default=None
        Determines the model and the data. Pass an int for reproducible
        output across multiple function calls.
        See :term:`Glossary <random_state>`.

    return_truth : bool, default=False
        If True, also return the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The input samples.

    y : ndarray of shape (n_samples,)
        The integer class labels.

    truth : MixtureTruth
        The generating model and the expert that drew each row. Only returned
        if ``return_truth`` is True.

    See Also
    --------
    make_moe_classification : The same with a flat gate.
    make_hme_regression : A tree of gates over linear experts.

    Notes
    -----
    Gates and experts are drawn alike: their coefficients form a regular
    simplex of norm ``gate_scale`` or ``expert_scale`` in a random subspace
    (each gate's orthogonal to its ancestors' when ``n_features`` allows it).
    Gate intercepts are zero; expert intercepts are standard normal, centred
    over the classes.

    References
    ----------
    .. [1] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation, 6(2), 181-214, 1994.

    Examples
    --------
    >>> from skmoe.datasets import make_hme_classification
    >>> X, y, truth = make_hme_classification(
    ...     n_samples=200, n_classes=3, random_state=0, return_truth=True
    ... )
    >>> X.shape, y.shape
    ((200, 10), (200,))
    >>> truth.predict_proba(X).shape
    (200, 3)
    """
    n_samples, n_features, gate_scale = _check_common(n_samples, n_features, gate_scale)
    hierarchy = _check_hierarchy(hierarchy)
    n_classes = _check_int(n_classes, "n_classes", min_value=2)
    expert_scale = _check_scale(expert_scale, "expert_scale")
    return _make_tree_data(
        n_samples,
        n_features,
        hierarchy,
        n_classes=n_classes,
        noise=None,
        gate_scale=gate_scale,
        expert_scale=expert_scale,
        random_state=random_state,
        return_truth=return_truth,
    )


def make_moe_classification(
    n_samples=1000,
    n_features=10,
    n_experts=4,
    n_classes=2,
    *,
    gate_scale=4.0,
    expert_scale=4.0,
    random_state=None,
    return_truth=False,
):
    """Generate a classification problem from a mixture of logistic experts.

    ``X`` is standard normal. A softmax gate routes each row to one of
    ``n_experts`` multinomial logistic experts, drawn from its gate
    probabilities, and the label is drawn from that expert's class
    probabilities. This is :func:`make_hme_classification` with
    ``hierarchy=(n_experts,)``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.

    n_features : int, default=10
        Number of features, seen by both the gate and the experts.

    n_experts : int, default=4
        Number of experts.

    n_classes : int, default=2
        Number of classes; labels are ``0, ..., n_classes - 1``.

    gate_scale : float, default=4.0
        Sharpness of the gate: the norm of each expert's gate coefficients
        (taken to sum to zero over the experts). Larger values give crisper
        regions; 0 gives a uniform gate.

    expert_scale : float, default=4.0
        Sharpness of the experts: the norm of each class's coefficients in an
        expert (taken to sum to zero over the classes). Larger values give
        less label noise.

    random_state : int, RandomState instance or None, default=None
        Determines the model and the data. Pass an int for reproducible
        output across multiple function calls.
        See :term:`Glossary <random_state>`.

    return_truth : bool, default=False
        If True, also return the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The input samples.

    y : ndarray of shape (n_samples,)
        The integer class labels.

    truth : MixtureTruth
        The generating model and the expert that drew each row. Only returned
        if ``return_truth`` is True.

    See Also
    --------
    make_hme_classification : The same with a tree of gates.
    make_moe_regression : A softmax gate over linear experts.

    References
    ----------
    .. [1] R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton,
       "Adaptive mixtures of local experts", Neural Computation, 3(1),
       79-87, 1991.

    Examples
    --------
    >>> from skmoe.datasets import make_moe_classification
    >>> X, y, truth = make_moe_classification(
    ...     n_samples=200, random_state=0, return_truth=True
    ... )
    >>> X.shape, y.shape, truth.classes
    ((200, 10), (200,), array([0, 1]))
    >>> truth.expert_coef.shape
    (4, 2, 10)
    """
    n_samples, n_features, gate_scale = _check_common(n_samples, n_features, gate_scale)
    n_experts = _check_int(n_experts, "n_experts", min_value=1)
    n_classes = _check_int(n_classes, "n_classes", min_value=2)
    expert_scale = _check_scale(expert_scale, "expert_scale")
    return _make_tree_data(
        n_samples,
        n_features,
        (n_experts,),
        n_classes=n_classes,
        noise=None,
        gate_scale=gate_scale,
        expert_scale=expert_scale,
        random_state=random_state,
        return_truth=return_truth,
    )
