"""Tree starts: groupings of flat experts, and a tree that keeps up with its start."""

import math

import numpy as np
import pytest

import skmoe._tree_start as tree_start
from skmoe import MixtureOfExpertsRegressor
from skmoe._backend import add_intercept
from skmoe._init import group_clusters
from skmoe.datasets import make_hme_regression


def _planted_clusters(n_samples=2000, seed=0):
    """Rows in 16 angular wedges, grouped by quadrant; cluster ids shuffled.

    A linear gate separates the quadrants (the planted grouping) and not a
    grouping that mixes wedges of different quadrants.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 2))
    angle = np.mod(np.arctan2(X[:, 1], X[:, 0]), 2 * np.pi)
    wedge = np.minimum((angle / (2 * np.pi) * 16).astype(int), 15)
    ids = rng.permutation(16)
    groups = [set(ids[4 * q : 4 * q + 4]) for q in range(4)]
    return X, ids[wedge], groups


def test_grouping_search_finds_the_planted_grouping():
    """16 clusters into (4, 4): 2.6 million partitions, searched, not sampled.

    Before the search, 64 random partitions were scored: the planted one
    (1 in 2,627,625) was never among them.
    """
    X, labels, planted = _planted_clusters()
    placements = group_clusters(
        labels,
        add_intercept(X),
        (4, 4),
        np.ones(X.shape[0]),
        np.random.RandomState(0),
        alpha=0.01,
        n_candidates=4,
    )
    leaf_to_cluster = np.argsort(placements[0])
    found = [set(leaf_to_cluster[4 * g : 4 * g + 4]) for g in range(4)]
    assert sorted(map(sorted, found)) == sorted(map(sorted, planted))
    for cluster_to_leaf in placements:
        assert sorted(cluster_to_leaf) == list(range(16))


def _tree_and_flat(hierarchy, seed):
    X, y = make_hme_regression(1500, 3, hierarchy, random_state=seed)
    # The k-means start without moves: the flat fit is then exactly the
    # tree's own flat start (split-and-merge moves act on the kept fit only).
    common = {"init_params": "kmeans", "split_merge": 0, "random_state": seed}
    tree = MixtureOfExpertsRegressor(hierarchy=hierarchy, **common).fit(X, y)
    flat = MixtureOfExpertsRegressor(n_experts=math.prod(hierarchy), **common).fit(X, y)
    return tree, flat


def test_tree_never_ends_below_its_flat_start(monkeypatch):
    """A (3, 3) tree whose 4 best placements end below its flat start.

    The flat start is the flat fit with the same random_state (the tree's
    start fits exactly that model first). The placements tried after the
    first 4 lift the tree above it; with the first 4 only it stays below.
    """
    tree, flat = _tree_and_flat((3, 3), seed=1)
    assert tree.log_likelihood_ >= flat.log_likelihood_
    monkeypatch.setattr(
        tree_start, "_FALLBACK_CANDIDATES", tree_start._PLACEMENT_CANDIDATES
    )
    first_only, flat = _tree_and_flat((3, 3), seed=1)
    assert first_only.log_likelihood_ < flat.log_likelihood_


@pytest.mark.parametrize(
    "params",
    [{"hierarchy": (3, 3)}, {"hierarchy": (2, 2), "routing": "topk"}],
    ids=["searched-grouping", "topk-tree"],
)
def test_tree_start_is_reproducible(params):
    """The grouping search and the soft start draw only from random_state."""
    X, y = make_hme_regression(400, 3, params["hierarchy"], random_state=0)
    a, b = (
        MixtureOfExpertsRegressor(random_state=0, **params).fit(X, y) for _ in range(2)
    )
    for coef_a, coef_b in zip(a.gate_.coef, b.gate_.coef, strict=True):
        np.testing.assert_array_equal(coef_a, coef_b)
    np.testing.assert_array_equal(a.objective_history_, b.objective_history_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_grouping_search_tolerates_clusters_without_rows():
    """Flat experts that win no row (their centroid undefined) still get a leaf."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    labels = np.where(X[:, 0] > 0, 0, 5)  # 14 of 16 clusters hold no row
    placements = group_clusters(
        labels,
        add_intercept(X),
        (4, 4),
        np.ones(300),
        np.random.RandomState(0),
        alpha=1.0,
        n_candidates=3,
    )
    assert len(placements) == 3
    for cluster_to_leaf in placements:
        assert sorted(cluster_to_leaf) == list(range(16))
