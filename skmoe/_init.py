"""Starting points of EM: partitions of the data and placements in a tree.

EM climbs to the nearest optimum of a start, so the start decides much of
the result: which experts exist (a partition of ``[X, y]``) and, in a tree,
which experts share a gate (a placement of the experts at the leaves).
"""

import functools
import math
import warnings
from itertools import combinations, islice

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from skmoe._backend import Design, device, get_namespace, take, to_numpy
from skmoe._softmax import softmax_log_proba, softmax_newton_step, softmax_objective

__all__ = [
    "START_KINDS",
    "group_clusters",
    "kmeans_labels",
    "nearest_row_labels",
    "random_labels",
    "restart_kind",
    "screen_kinds",
    "standardize",
    "start_labels",
    "start_rows",
]

# k-means initialisation is fitted on at most this many rows: the start only
# needs the regions, and k-means on 1e6 rows would cost more than EM.
_KMEANS_MAX_ROWS = 20_000
# Placing clusters at the leaves of a tree scores at most this many
# partitions per node, each by a softmax fit of this many Newton steps.
_MAX_PARTITIONS = 64
_SEPARABILITY_NEWTON_STEPS = 4
# Where a node has more partitions than that (16 clusters into 4 groups of 4
# have 2.6 million), candidates are searched for instead of sampled: the
# clusters' centroids in the gate's feature space grouped by a k-means with
# equal group sizes, from this many seeds, then improved by swapping clusters
# between groups while the separability rises, from the best few, for at
# most this many passes over all swaps. The search scores on at most this
# many rows (a swap's score needs no more, and scores on many more rows are
# slow: benchmarks/README.md, "Measurements behind the code's choices").
_GROUPING_KMEANS_SEEDS = 8
_GROUPING_SEARCH_STARTS = 2
_GROUPING_SWAP_PASSES = 3
_GROUPING_SEARCH_ROWS = 8192
# Above this many rows, a start's gate is fitted on a random subset of this
# size (its penalty scaled to match): a start needs no more, and eight Newton
# steps on all rows cost as much as several EM iterations
# (benchmarks/README.md, "Measurements behind the code's choices").
_INIT_GATE_MAX_ROWS = 50_000


# ---------------------------------------------------------------------------
# Partitions and placements
# ---------------------------------------------------------------------------


def standardize(Z, sample_weight):
    """Return the columns of ``Z`` centred and scaled by their weighted moments."""
    Z = np.asarray(Z, dtype=np.float64)
    # Weighted moments as products with the weights (``np.average`` takes
    # several passes over Z, several times slower: benchmarks/README.md,
    # "Measurements behind the code's choices").
    weight = np.asarray(sample_weight, dtype=np.float64)
    total = weight.sum()
    centred = Z - (weight @ Z) / total
    std = np.sqrt((weight @ np.square(centred)) / total)
    centred /= np.where(std > 0, std, 1.0)
    return centred


def kmeans_labels(Z, n_clusters, sample_weight, random_state):
    """Return k-means cluster labels of the rows of ``Z``.

    k-means is fitted on at most ``_KMEANS_MAX_ROWS`` rows, then every row is
    assigned to its nearest centre.
    """
    fit_rows = np.arange(Z.shape[0])
    if Z.shape[0] > _KMEANS_MAX_ROWS:
        fit_rows = random_state.choice(Z.shape[0], _KMEANS_MAX_ROWS, replace=False)
    kmeans = KMeans(
        n_clusters=n_clusters,
        n_init=1,
        random_state=random_state.randint(np.iinfo(np.int32).max),
    )
    with warnings.catch_warnings():
        # Duplicated points can leave fewer distinct clusters; the smoothing
        # of the initial responsibilities keeps every expert fittable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans.fit(Z[fit_rows], sample_weight=sample_weight[fit_rows])
    return kmeans.predict(Z)


def random_labels(n_samples, n_clusters, random_state):
    """Return a uniformly random cluster for every row (flexmix's start).

    Every expert then starts fitted to a random half (third, ...) of all
    rows, nearly the global fit: EM breaks the symmetry itself, and it
    reaches basins that k-means on ``[X, y]`` never proposes (the two
    crossing curves of a mixture of regressions, where k-means cuts across
    the crossing).
    """
    return random_state.randint(n_clusters, size=n_samples)


def nearest_row_labels(Z, n_clusters, random_state):
    """Return the nearest of ``n_clusters`` random rows of ``Z`` for every row."""
    centers = Z[random_state.choice(Z.shape[0], n_clusters, replace=False)]
    distances = (
        np.sum(Z**2, axis=1)[:, None]
        - 2.0 * Z @ centers.T
        + np.sum(centers**2, axis=1)[None, :]
    )
    return np.argmin(distances, axis=1)


def resampled_kmeans_labels(Z, n_clusters, sample_weight, random_state):
    """Return k-means labels on randomly reweighted rows and columns of ``Z``.

    Restarts of plain k-means on one ``Z`` differ only by k-means' own seed
    and mostly find the same clusters (every one on the crossing curves:
    ``benchmarks/README.md``, "Measurements behind the code's choices").
    Here every row's weight is multiplied by an exponential draw (a
    Bayesian bootstrap) and every column scaled by a factor in
    ``[0.25, 1.75]``, so that each restart clusters a different view of the
    data; every row is then assigned to its nearest centre in that view.
    """
    rows = random_state.exponential(size=Z.shape[0])
    columns = random_state.uniform(0.25, 1.75, size=Z.shape[1])
    return kmeans_labels(Z * columns, n_clusters, sample_weight * rows, random_state)


def _standardized(X, sample_weight):
    """Return standardized ``X``, or a zero column when there are no features."""
    if X.shape[1] == 0:
        return np.zeros((X.shape[0], 1))
    return standardize(X, sample_weight)


def tree_leaf_labels(X, y, n_clusters, sample_weight, random_state):
    """Return the leaf of a ``n_clusters``-leaf decision tree of ``y`` on ``X``.

    A classifier's experts are best placed where the classes change: the
    leaves of a small classification tree are regions of roughly constant
    class proportions, split where the proportions change.
    """
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(
        max_leaf_nodes=max(n_clusters, 2),
        random_state=random_state.randint(np.iinfo(np.int32).max),
    )
    # Standardized: the tree works in float32, where inputs of 1e100 overflow
    # (its splits do not depend on the scale of a column).
    Z = _standardized(X, sample_weight)
    tree.fit(Z, y, sample_weight=sample_weight)
    _, labels = np.unique(tree.apply(Z), return_inverse=True)
    return labels % n_clusters


# The kinds of start :func:`start_labels` knows. "kmeans_resampled" is the
# k-means of a restart after the first; "kmeans_X" (k-means on the inputs
# alone) and "tree_leaves" are classifier starts.
START_KINDS = (
    "kmeans",
    "kmeans_resampled",
    "random",
    "random_from_data",
    "kmeans_X",
    "tree_leaves",
)


def start_labels(kind, X, target, y, n_clusters, sample_weight, random_state):
    """Return the starting partition of the rows: a cluster per row.

    Parameters
    ----------
    kind : str
        One of :data:`START_KINDS`.
    X : ndarray of shape (n_samples, n_features)
        Inputs (NumPy).
    target : ndarray of shape (n_samples, n_targets)
        The target's columns (the value of a regression, the one-hot class
        of a classification).
    y : ndarray of shape (n_samples,)
        The encoded target (class indices of a classifier); used by
        "tree_leaves" only.
    n_clusters : int
    sample_weight : ndarray of shape (n_samples,)
    random_state : RandomState

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Cluster of every row, in ``[0, n_clusters)``.

    Notes
    -----
    The partitions of ``[X, y]`` cluster the standardized inputs and the
    standardized target, the target block scaled to weigh as much as all
    features together: on [X, y] with many features k-means would split
    the inputs alone and miss the experts (the gate agrees with the true
    one on far fewer rows without this weighting: ``benchmarks/README.md``,
    "Design measurements", Starts).
    """
    if kind == "random":
        return random_labels(X.shape[0], n_clusters, random_state)
    if kind == "tree_leaves":
        return tree_leaf_labels(X, y, n_clusters, sample_weight, random_state)
    if kind == "kmeans_X":
        return kmeans_labels(
            _standardized(X, sample_weight), n_clusters, sample_weight, random_state
        )
    target = standardize(target, sample_weight)
    target *= np.sqrt(max(X.shape[1], 1) / target.shape[1])
    Z = np.hstack([standardize(X, sample_weight), target])
    if kind == "random_from_data":
        return nearest_row_labels(Z, n_clusters, random_state)
    if kind == "kmeans_resampled":
        return resampled_kmeans_labels(Z, n_clusters, sample_weight, random_state)
    return kmeans_labels(Z, n_clusters, sample_weight, random_state)


def start_rows(n_samples, random_state, alpha):
    """Return the rows a start's gate fits are made on, and their penalty.

    ``(None, alpha)`` up to ``_INIT_GATE_MAX_ROWS`` rows; above, a sorted
    random subset of that size and the penalty ``alpha`` scaled to it, so
    that the balance of fit and penalty stays that of all rows (the gate's
    ``penalty_scale`` stays that of all rows too).
    """
    if n_samples <= _INIT_GATE_MAX_ROWS:
        return None, alpha
    rows = np.sort(random_state.choice(n_samples, _INIT_GATE_MAX_ROWS, replace=False))
    return rows, alpha * _INIT_GATE_MAX_ROWS / n_samples


def restart_kind(init_params, restart):
    """Return the kind of start of restart number ``restart`` (from 0).

    The first k-means restart is plain k-means (``n_init=1`` fits as it
    always did); the later ones cluster resampled views of the data, so
    that they differ by more than k-means' seed.
    """
    if init_params == "kmeans" and restart > 0:
        return "kmeans_resampled"
    return init_params


def screen_kinds(n_candidates, classifier):
    """Return the kinds of the candidate starts a screen runs, in order.

    A mix, so that a screen proposes basins of several kinds. A regression
    screens k-means and mostly random partitions (on two crossing curves
    k-means and its resampled restarts miss the best optimum on many
    seeds, random partitions find it). A classifier screens k-means, a
    tree's leaves, nearest-row partitions and resampled k-means: on a
    3-class classifier over 4 gated experts each of them was the best
    start on some seed and far off on another (both in
    ``benchmarks/README.md``, "Starts").
    """
    cycle = ["kmeans", "random", "random", "random_from_data"]
    if classifier:
        cycle = [
            "kmeans",
            "tree_leaves",
            "random_from_data",
            "kmeans_resampled",
            "random",
        ]
    return [cycle[i % len(cycle)] for i in range(n_candidates)]


def _equal_partitions(items, n_groups):
    """Yield every partition of ``items`` into ``n_groups`` groups of equal size."""
    if n_groups == 1:
        yield [list(items)]
        return
    size = len(items) // n_groups
    first, rest = items[0], items[1:]
    for others in combinations(rest, size - 1):
        group = [first, *others]
        remaining = [i for i in rest if i not in others]
        for partition in _equal_partitions(remaining, n_groups - 1):
            yield [group, *partition]


def _gate_separability(Xa, labels, groups, sample_weight, alpha):
    """Return how well a softmax gate separates ``groups`` of cluster labels.

    The penalised log-likelihood of a softmax regression of group membership
    on the gate's features, after a few Newton steps from zero. ``labels``
    is a NumPy array; ``Xa`` and ``sample_weight`` may live on a device,
    where the fits then run.
    """
    clusters = [c for members in groups for c in members]
    # The group of every cluster, -1 for clusters in no group.
    group_of = np.full(max(max(clusters), int(labels.max(initial=0))) + 1, -1)
    group_of[clusters] = [g for g, members in enumerate(groups) for _ in members]
    row_group = group_of[labels]
    rows = np.flatnonzero(row_group >= 0)
    if rows.shape[0] == 0:
        # Clusters that no row prefers (an expert that won no argmax) have
        # nothing to separate: every partition of them scores alike.
        return 0.0
    xp = get_namespace(Xa)
    eye = xp.eye(len(groups), dtype=Xa.dtype, device=device(Xa))
    targets = take(eye, row_group[rows], axis=0)[:, None, :]
    weights = take(sample_weight, rows, axis=0)[:, None]
    design = Design(take(Xa, rows, axis=0), intercept=False)
    coef = xp.zeros((1, Xa.shape[1], len(groups)), dtype=Xa.dtype, device=device(Xa))
    for _ in range(_SEPARABILITY_NEWTON_STEPS):
        coef, _, _ = softmax_newton_step(design, coef, targets, weights, alpha=alpha)
    log_proba = softmax_log_proba(design.X, coef)
    return float(softmax_objective(log_proba, targets, weights, coef, alpha)[0])


def _balanced_kmeans(points, n_groups, random_state, *, max_iter=50):
    """Return a label per point: k-means with groups of equal size.

    Each assignment step is the optimal assignment of the points to
    ``len(points) / n_groups`` copies of every centre (a linear sum
    assignment), so the groups keep equal sizes.
    """
    size = points.shape[0] // n_groups
    centres = points[random_state.choice(points.shape[0], n_groups, replace=False)]
    labels = None
    for _ in range(max_iter):
        cost = np.sum((points[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
        _, slot = linear_sum_assignment(np.repeat(cost, size, axis=1))
        new = slot // size
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centres = np.stack([points[labels == g].mean(axis=0) for g in range(n_groups)])
    return labels


def _searched_partitions(clusters, n_groups, centroids, score, random_state):
    """Return partitions of ``clusters`` into equal groups, found by search.

    Candidates are the distinct partitions of the clusters' ``centroids``
    by :func:`_balanced_kmeans` from ``_GROUPING_KMEANS_SEEDS`` seeds; the
    best ``_GROUPING_SEARCH_STARTS`` of them (by ``score(groups)``) are
    improved by first-improvement swaps of two clusters between groups.
    Returns ``(score, groups)`` pairs, best first.
    """
    seen = {}

    def scored(groups):
        key = frozenset(frozenset(g) for g in groups)
        if key not in seen:
            seen[key] = (score(groups), [list(g) for g in groups])
        return seen[key]

    points = centroids[clusters]
    starts = []
    for _ in range(_GROUPING_KMEANS_SEEDS):
        labels = _balanced_kmeans(points, n_groups, random_state)
        starts.append(
            scored(
                [
                    [clusters[i] for i in np.flatnonzero(labels == g)]
                    for g in range(n_groups)
                ]
            )
        )
    starts = sorted(starts, key=lambda item: -item[0])[:_GROUPING_SEARCH_STARTS]
    for best, groups in starts:
        for _ in range(_GROUPING_SWAP_PASSES):
            improved = False
            for a, b in combinations(range(n_groups), 2):
                for i in range(len(groups[a])):
                    for j in range(len(groups[b])):
                        trial = [list(g) for g in groups]
                        trial[a][i], trial[b][j] = groups[b][j], groups[a][i]
                        value, _ = scored(trial)
                        if value > best:
                            best, groups, improved = value, trial, True
            if not improved:
                break
    return sorted(seen.values(), key=lambda item: -item[0])


def group_clusters(
    labels, Xa, hierarchy, sample_weight, random_state, *, alpha, n_candidates
):
    """Propose placements of flat clusters at the leaves of a tree.

    A (2, 2) tree can split four clusters into pairs three ways, and EM keeps
    the pairing it starts from (docs/design.md §2.7; the wrong pairing costs
    test error, ``benchmarks/README.md``, "Design measurements", Starts). The
    partitions of the clusters into the root's children are ranked by how
    well a linear gate separates them: all scored when there are at most
    ``_MAX_PARTITIONS``; otherwise (16 clusters into 4 groups of 4 have
    2,627,625) the partitions found by :func:`_searched_partitions`, which
    groups the clusters' mean gate features and improves the groupings by
    swaps (a random sample of 64, scored before, never held the right
    grouping of a (4, 4) tree: benchmarks/README.md, "Trees"). The best
    ``n_candidates`` are completed level by level with the best-separated
    partition below each node.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Flat cluster of every row, in ``[0, n_leaves)``.
    Xa : ndarray of shape (n_samples, p)
        Gate features with a column of ones.
    hierarchy : tuple of int
    sample_weight : ndarray of shape (n_samples,)
    random_state : RandomState
    alpha : float
        The gate's L2 penalty; on the standardized ``Xa`` it is the penalty
        of the gate's ``penalty_scale``.
    n_candidates : int
        Number of placements to return.

    Returns
    -------
    candidates : list of ndarray of shape (n_leaves,)
        The leaf of every cluster under each proposed placement, best first.
    """

    def ranked(clusters, level):
        partitions = list(
            islice(_equal_partitions(clusters, hierarchy[level]), _MAX_PARTITIONS)
        )
        if len(partitions) == _MAX_PARTITIONS:
            return [
                groups
                for _, groups in _searched_partitions(
                    clusters, hierarchy[level], centroids(), search_score, random_state
                )
            ]
        scores = [
            _gate_separability(Xa, labels, groups, sample_weight, alpha)
            for groups in partitions
        ]
        return [partitions[i] for i in np.argsort(scores)[::-1]]

    @functools.cache
    def centroids():
        # Every cluster's mean gate features (standardized), NumPy.
        host, weight = to_numpy(Xa)[:, :-1], to_numpy(sample_weight)
        n_clusters = math.prod(hierarchy)
        mass = np.bincount(labels, weights=weight, minlength=n_clusters)
        sums = np.zeros((n_clusters, host.shape[1]))
        np.add.at(sums, labels, weight[:, None] * host)
        return sums / np.maximum(mass, np.finfo(np.float64).tiny)[:, None]

    def search_score(groups):
        rows_Xa, rows_labels, rows_weight = search_data()
        return _gate_separability(
            rows_Xa, rows_labels, groups, rows_weight, search_alpha()
        )

    @functools.cache
    def search_data():
        # The search's rows: at most _GROUPING_SEARCH_ROWS, drawn once.
        if labels.shape[0] <= _GROUPING_SEARCH_ROWS:
            return Xa, labels, sample_weight
        rows = np.sort(
            random_state.choice(labels.shape[0], _GROUPING_SEARCH_ROWS, replace=False)
        )
        return take(Xa, rows, axis=0), labels[rows], take(sample_weight, rows, axis=0)

    def search_alpha():
        # The penalty scaled to the rows scored, as start_rows does.
        return alpha * min(1.0, _GROUPING_SEARCH_ROWS / labels.shape[0])

    def place(clusters, level, partition=None):
        if level == len(hierarchy) - 1:
            return list(clusters)
        groups = partition if partition is not None else ranked(clusters, level)[0]
        return [leaf for group in groups for leaf in place(list(group), level + 1)]

    clusters = list(range(math.prod(hierarchy)))
    candidates = []
    for partition in ranked(clusters, 0)[:n_candidates]:
        leaf_order = np.asarray(place(clusters, 0, partition))
        cluster_to_leaf = np.empty(len(leaf_order), dtype=np.intp)
        cluster_to_leaf[leaf_order] = np.arange(len(leaf_order))
        candidates.append(cluster_to_leaf)
    return candidates
