"""Split-and-merge EM: the criteria and the candidate starts (pure functions).

After EM converges, split-and-merge EM (Ueda, Nakano, Ghahramani & Hinton
2000) moves experts from where they crowd to where they are missing: it
merges the two experts whose posteriors overlap most, splits the expert that
fits its rows worst, restarts EM from there and keeps the result only if the
penalised objective rises. The functions here rank the moves and build each
move's start as leaf responsibilities; the driver
(:meth:`skmoe._start.Starter.split_and_merge`) fits them.

Responsibilities may be NumPy arrays or torch tensors for the criteria
(:func:`merge_criterion`, :func:`split_criterion`); the sides of a split and
the candidate starts are NumPy (the starts, like k-means', are built on the
host and moved to the fit's device by the caller).
"""

import numpy as np

from skmoe._backend import get_namespace, to_numpy

__all__ = [
    "Trial",
    "candidate_responsibilities",
    "extrapolated_limit",
    "merge_criterion",
    "ranked_candidates",
    "split_criterion",
    "split_sides",
]

# A split needs rows for both halves: an expert with less responsibility
# mass than this many rows of average weight is not split.
_MIN_SPLIT_MASS = 4.0
# A move's EM run is stopped as hopeless only once its objective rises by
# less than this many times tol per iteration (see Trial).
_HOPELESS_TOL_FACTOR = 10.0
# An entry of a split's axis counts as non-zero above this fraction of its
# largest entry: far above eigh's rounding (~1e-16), far below any real
# direction's weight.
_AXIS_ENTRY = 1e-6

# ---------------------------------------------------------------------------
# Criteria
# ---------------------------------------------------------------------------


def merge_criterion(resp, sample_weight):
    """Return the overlap of every pair of experts' posteriors.

    ``J_merge(i, j) = r_i . r_j / (|r_i| |r_j|)`` in the inner product
    weighted by ``sample_weight`` (Ueda et al. 2000, eq. 4.1): 1 for two
    experts that take the same rows in the same shares, 0 for experts
    that share no row.

    Parameters
    ----------
    resp : array of shape (n_samples, n_experts)
        Posterior responsibilities (NumPy or torch).
    sample_weight : array of shape (n_samples,)

    Returns
    -------
    overlap : ndarray of shape (n_experts, n_experts)
        Symmetric, NumPy; the diagonal is one for an expert with mass, zero
        for one without.
    """
    gram = to_numpy(resp.T @ (sample_weight[:, None] * resp)).astype(np.float64)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    denominator = np.outer(norms, norms)
    return np.divide(gram, denominator, out=np.zeros_like(gram), where=denominator > 0)


def split_criterion(resp, log_expert, sample_weight):
    """Return how badly every expert fits the rows it takes.

    The responsibility-weighted mean negative log-likelihood of each expert
    on its own rows, ``-sum_i w_i r_ik log p_k(y_i | x_i) / sum_i w_i r_ik``:
    the cross-entropy of the expert's predictive density against its rows'
    empirical conditional density, the part of Ueda et al.'s local
    Kullback-Leibler divergence (eq. 4.3) that depends on the model. An
    expert that covers two different relations of ``y`` to ``x`` has a wide
    noise (a regressor) or uncertain classes (a classifier), hence a large
    value. Experts with less than ``_MIN_SPLIT_MASS`` rows' worth of mass
    get ``-inf`` (they are never split).

    Parameters
    ----------
    resp : array of shape (n_samples, n_experts)
    log_expert : array of shape (n_samples, n_experts)
        ``log p_k(y_i | x_i)`` of every expert.
    sample_weight : array of shape (n_samples,)
        Weights of mean one.

    Returns
    -------
    deficit : ndarray of shape (n_experts,)
        NumPy; larger is worse.
    """
    xp = get_namespace(resp, log_expert)
    weights = sample_weight[:, None] * resp
    mass = to_numpy(xp.sum(weights, axis=0)).astype(np.float64)
    # 0 * -inf (a row an expert gives zero probability and no weight) is 0.
    log_expert = xp.where(weights > 0, log_expert, xp.zeros_like(log_expert))
    total = to_numpy(xp.sum(weights * log_expert, axis=0)).astype(np.float64)
    deficit = np.full(mass.shape, -np.inf)
    fits = mass >= _MIN_SPLIT_MASS
    deficit[fits] = -total[fits] / mass[fits]
    return deficit


# ---------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------


class Trial:
    """The label of a move's EM run, which also stops it once hopeless.

    Passed as ``init`` to the EM loop (its verbose lines then name the
    move). :meth:`hopeless` says when the run cannot end above ``target``,
    the objective of the model the move would replace: EM from a move's
    start mostly falls back into the same optimum or into a worse one,
    and running it to convergence only to reject it would cost a full fit
    per move.

    Parameters
    ----------
    init : int
        Number of the initialisation whose model the move changes.
    move : tuple
        The move (:func:`ranked_candidates`).
    target : float
        The objective to beat.
    tol : float
        EM's tolerance: the run is judged only once its increments fall
        below ``_HOPELESS_TOL_FACTOR * tol``, near its optimum. Early on,
        EM from a move's start is often slow before it speeds up: an early
        extrapolated limit far below the target can still end at it
        (``benchmarks/README.md``, "Measurements behind the code's
        choices").
    """

    def __init__(self, init, move, target, tol):
        self.init, self.move, self.target, self.tol = init, move, target, tol

    def __str__(self):
        return f"{self.init}, split-and-merge {self.move}"

    def hopeless(self, objectives):
        """Return whether EM, at ``objectives``, will not end above the target."""
        return (
            objectives[-1] < self.target
            and objectives[-1] - objectives[-2] < _HOPELESS_TOL_FACTOR * self.tol
            and extrapolated_limit(objectives) < self.target
        )


def extrapolated_limit(objectives):
    """Return the Aitken extrapolation of an EM history's limit.

    EM converges linearly near an optimum: the increments shrink by a
    roughly constant ratio ``a``, and the limit is about ``l_t + d_t a /
    (1 - a)`` (Aitken's delta-squared, used for EM's stopping by Böhning
    et al. 1994). The extrapolation is only trusted once three increments
    shrink in turn; before that, or while they grow, the limit is unknown
    (``inf``).

    Parameters
    ----------
    objectives : sequence of float
        The history so far.

    Returns
    -------
    limit : float
    """
    if len(objectives) < 4:
        return np.inf
    d = np.diff(np.asarray(objectives[-4:], dtype=np.float64))
    if not (d[0] > d[1] > d[2] > 0):
        return np.inf
    ratio = d[2] / d[1]
    return float(objectives[-1] + d[2] * ratio / (1.0 - ratio))


def ranked_candidates(overlap, deficit, *, active, n_candidates):
    """Return the moves to try, best first.

    Pairs of active experts are taken by decreasing ``overlap``. Each pair
    ``(i, j)`` gives, when there are at least three active experts, Ueda's
    move ``("merge-split", i, j, k)``: merge ``i`` and ``j`` into ``i`` and
    split the worst-fitting other expert ``k`` (largest ``deficit``) into
    ``j`` and ``k``; then the move ``("exchange", i, j)``, which splits
    both experts and swaps a half of each: the merge of the pair followed
    by a split of the merged rows into two new experts, the only
    split-and-merge a mixture of two experts has.

    Parameters
    ----------
    overlap : ndarray of shape (n_experts, n_experts)
        :func:`merge_criterion`.
    deficit : ndarray of shape (n_experts,)
        :func:`split_criterion`; ``-inf`` for an expert that cannot be
        split.
    active : ndarray of bool of shape (n_experts,)
        Experts that take part (pruned experts do not).
    n_candidates : int
        At most this many moves are returned.

    Returns
    -------
    candidates : list of tuple
        ``("merge-split", i, j, k)`` or ``("exchange", i, j)``, with
        ``i < j``.
    """
    experts = np.flatnonzero(active)
    pairs = [(i, j) for n, i in enumerate(experts) for j in experts[n + 1 :]]
    # Stable: equal overlaps keep the order of the experts.
    pairs.sort(key=lambda pair: -overlap[pair])
    split_order = [k for k in np.argsort(-deficit, kind="stable") if active[k]]
    candidates = []
    for i, j in pairs:
        splits = [k for k in split_order if k not in (i, j) and deficit[k] > -np.inf]
        if splits:
            candidates.append(("merge-split", int(i), int(j), int(splits[0])))
        if deficit[i] > -np.inf and deficit[j] > -np.inf:
            candidates.append(("exchange", int(i), int(j)))
    return candidates[:n_candidates]


def split_sides(residual, weights):
    """Return the side of every row when an expert is split in two.

    The rows are divided by the sign of their residual's projection on the
    residuals' principal axis (weighted by ``weights``, the expert's
    responsibility times the sample weight, and centred by their weighted
    mean): for a regressor, rows above the expert's line against rows
    below it; for a classifier, the direction in which its class
    probabilities are most wrong. Measured against a 2-means of the
    expert's rows in the standardized ``[X, y]`` (see benchmarks/README.md,
    "Split-and-merge").

    Parameters
    ----------
    residual : ndarray of shape (n_samples, n_outputs)
        Target columns minus the expert's prediction (one column for a
        regressor; one-hot classes minus probabilities for a classifier).
    weights : ndarray of shape (n_samples,)

    Returns
    -------
    side : ndarray of bool of shape (n_samples,)
        True for the positive side of the axis.
    """
    residual = np.asarray(residual, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return np.zeros(residual.shape[0], dtype=bool)
    centred = residual - (weights @ residual) / total
    if residual.shape[1] == 1:
        axis = np.ones(1)
    else:
        covariance = (centred * weights[:, None]).T @ centred / total
        # The eigenvector's sign is arbitrary; its first clearly non-zero
        # entry is made positive so that the sides depend neither on the
        # solver nor on rounding. (Not its largest entry: with two classes
        # the axis is (1, -1) / sqrt(2), whose largest entry is a tie that
        # rounding decides.)
        axis = np.linalg.eigh(covariance)[1][:, -1]
        leading = np.flatnonzero(np.abs(axis) > _AXIS_ENTRY * np.abs(axis).max())[0]
        axis = axis * np.sign(axis[leading])
    return centred @ axis > 0


def candidate_responsibilities(resp, candidate, sides, *, active, smoothing):
    """Return the start of a move as leaf responsibilities.

    ``("merge-split", i, j, k)``: column ``i`` takes ``r_i + r_j``;
    expert ``k``'s responsibility goes to ``j`` on the rows of
    ``sides[k]``, and stays with ``k`` on the others. ``("exchange", i,
    j)``: expert ``i`` keeps its rows on ``sides[i]`` and takes ``j``'s
    rows off ``sides[j]``; ``j`` the rest. The other columns are kept.
    A share ``smoothing`` of uniform responsibility over the active
    experts is mixed in, as in the first start, so that no expert starts
    without rows; inactive (pruned) experts keep zero.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_experts)
        The converged posterior responsibilities (NumPy).
    candidate : tuple
        A move of :func:`ranked_candidates`.
    sides : ndarray of bool of shape (n_samples, n_experts)
        :func:`split_sides` of every expert.
    active : ndarray of bool of shape (n_experts,)
    smoothing : float

    Returns
    -------
    resp : ndarray of shape (n_samples, n_experts)
        Rows sum to one over the active experts.
    """
    resp = np.array(resp, dtype=np.float64)
    kind, i, j = candidate[:3]
    r_i, r_j = resp[:, i].copy(), resp[:, j].copy()
    if kind == "merge-split":
        k = candidate[3]
        r_k = resp[:, k].copy()
        resp[:, i] = r_i + r_j
        resp[:, j] = np.where(sides[:, k], r_k, 0.0)
        resp[:, k] = np.where(sides[:, k], 0.0, r_k)
    elif kind == "exchange":
        resp[:, i] = np.where(sides[:, i], r_i, 0.0) + np.where(sides[:, j], 0.0, r_j)
        resp[:, j] = np.where(sides[:, i], 0.0, r_i) + np.where(sides[:, j], r_j, 0.0)
    else:
        raise ValueError(f"Unknown split-and-merge move {kind!r}.")
    resp[:, ~active] = 0.0
    resp /= resp.sum(axis=1, keepdims=True)
    n_active = int(active.sum())
    resp = (1.0 - smoothing) * resp + np.where(active, smoothing / n_active, 0.0)
    return resp
