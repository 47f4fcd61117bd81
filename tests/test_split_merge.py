"""Split-and-merge EM: the criteria, the moves, and the driver's guarantees."""

import numpy as np
import pytest
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._split_merge import (
    Trial,
    candidate_responsibilities,
    extrapolated_limit,
    merge_criterion,
    ranked_candidates,
    split_criterion,
    split_sides,
)
from skmoe._start import Starter
from skmoe.datasets import make_moe_regression


def crossing_curves(seed, n_samples=150):
    """A line and a parabola that cross (flexmix's NPreg), features [x, x^2].

    The true partition is not gate-separable: a gate on x can only learn a
    constant share, and the k-means start of [X, y] lands in the basin
    where each expert takes one side of the crossing.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n_samples)
    line = rng.integers(0, 2, n_samples) == 0
    y = np.where(line, 5 * x, 15 + 10 * x - x**2) + rng.normal(0, 3, n_samples)
    return np.column_stack([x, x**2]), y


# ---------------------------------------------------------------------------
# Criteria
# ---------------------------------------------------------------------------


def test_merge_criterion_is_the_weighted_cosine_of_posteriors():
    resp = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    overlap = merge_criterion(resp, np.ones(3))
    np.testing.assert_allclose(np.diag(overlap), 1.0)
    assert overlap[0, 1] == pytest.approx(1.0)  # the same posterior
    assert overlap[0, 2] == 0.0  # no row in common
    np.testing.assert_allclose(overlap, overlap.T)
    # The weights enter the inner product: weighing the shared row more
    # raises the overlap of two experts that share only it.
    resp = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    light = merge_criterion(resp, np.array([1.0, 1.0, 1.0]))[0, 1]
    heavy = merge_criterion(resp, np.array([1.0, 10.0, 1.0]))[0, 1]
    assert light == pytest.approx(0.25 / 1.25)
    assert heavy > light


def test_merge_criterion_of_an_empty_expert_is_zero():
    resp = np.array([[1.0, 0.0], [1.0, 0.0]])
    overlap = merge_criterion(resp, np.ones(2))
    np.testing.assert_allclose(overlap, [[1.0, 0.0], [0.0, 0.0]], rtol=1e-15)


def test_split_criterion_is_the_mean_negative_log_likelihood_on_own_rows():
    resp = np.zeros((10, 3))
    resp[:5, 0] = resp[5:, 1] = 1.0
    resp[0, 2] = 1e-3  # too little mass to split
    log_expert = np.column_stack(
        [np.full(10, -1.0), np.full(10, -3.0), np.full(10, -np.inf)]
    )
    deficit = split_criterion(resp, log_expert, np.ones(10))
    np.testing.assert_allclose(deficit[:2], [1.0, 3.0])
    assert deficit[2] == -np.inf
    # Rows an expert gives no weight do not count, even at -inf.
    log_expert[5:, 0] = -np.inf
    assert split_criterion(resp, log_expert, np.ones(10))[0] == 1.0


def test_ranked_candidates_follow_the_overlap_then_the_deficit():
    overlap = np.array(
        [[1.0, 0.1, 0.9, 0.2], [0.1, 1, 0.3, 0.0], [0.9, 0.3, 1, 0.0], [0.2, 0, 0, 1]]
    )
    deficit = np.array([1.0, 2.0, 0.5, 3.0])
    active = np.ones(4, dtype=bool)
    moves = ranked_candidates(overlap, deficit, active=active, n_candidates=4)
    # The most overlapping pair (0, 2) merges; the worst other expert, 3,
    # splits. Then the pair exchanges halves; then the next pair, (1, 2).
    assert moves == [
        ("merge-split", 0, 2, 3),
        ("exchange", 0, 2),
        ("merge-split", 1, 2, 3),
        ("exchange", 1, 2),
    ]
    assert len(ranked_candidates(overlap, deficit, active=active, n_candidates=1)) == 1
    # A pruned expert takes no part in any move.
    active[3] = False
    moves = ranked_candidates(overlap, deficit, active=active, n_candidates=10)
    assert all(3 not in move[1:] for move in moves)
    assert moves[0] == ("merge-split", 0, 2, 1)


def test_two_experts_can_only_exchange():
    moves = ranked_candidates(
        np.eye(2), np.ones(2), active=np.ones(2, dtype=bool), n_candidates=5
    )
    assert moves == [("exchange", 0, 1)]
    # An expert too small to split gives no move.
    moves = ranked_candidates(
        np.eye(2),
        np.array([1.0, -np.inf]),
        active=np.ones(2, dtype=bool),
        n_candidates=5,
    )
    assert moves == []


def test_split_sides_of_a_regressor_are_above_and_below():
    residual = np.array([[-2.0], [1.0], [3.0], [100.0]])
    weights = np.array([1.0, 1.0, 1.0, 0.0])  # the last row is not the expert's
    # Centred on the weighted mean (2/3).
    np.testing.assert_array_equal(
        split_sides(residual, weights), [False, True, True, True]
    )


def test_split_sides_of_a_classifier_follow_the_principal_axis():
    # Residuals of one-hot classes: two groups apart along (1, -1, 0).
    residual = np.array(
        [[0.5, -0.5, 0.0], [0.6, -0.6, 0.0], [-0.5, 0.5, 0.0], [-0.4, 0.4, 0.0]]
    )
    sides = split_sides(residual, np.ones(4))
    assert sides[0] == sides[1] != sides[2] == sides[3]


def test_split_sides_of_two_classes_do_not_depend_on_rounding():
    """With two classes the axis is (1, -1) / sqrt(2): its sign is fixed by
    its first entry, not by which of two equal entries rounding makes larger
    (the classifier's fit then changed with the units of X)."""
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50)
    residual = np.column_stack([p, 1.0 - p]) - np.eye(2)[rng.integers(0, 2, 50)]
    weights = rng.uniform(size=50)
    sides = split_sides(residual, weights)
    assert 0 < sides.sum() < 50
    for ulps in (-2, 2):
        nudged = residual * (1.0 + ulps * np.finfo(float).eps * np.array([1.0, 0.0]))
        np.testing.assert_array_equal(split_sides(nudged, weights), sides)
    # The positive side holds the rows whose first class is under-predicted.
    assert np.all(residual[sides, 0] > residual[~sides, 0].max())


def test_candidate_responsibilities_merge_split_and_exchange():
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(4), size=20)
    resp[:, 3] = 0.0  # pruned
    resp /= resp.sum(axis=1, keepdims=True)
    active = np.array([True, True, True, False])
    sides = rng.random((20, 4)) < 0.5
    merged = candidate_responsibilities(
        resp, ("merge-split", 0, 1, 2), sides, active=active, smoothing=0.0
    )
    np.testing.assert_allclose(merged[:, 0], resp[:, 0] + resp[:, 1])
    np.testing.assert_allclose(merged[:, 1], np.where(sides[:, 2], resp[:, 2], 0))
    np.testing.assert_allclose(merged[:, 2], np.where(sides[:, 2], 0, resp[:, 2]))
    swapped = candidate_responsibilities(
        resp, ("exchange", 0, 2), sides, active=active, smoothing=0.0
    )
    np.testing.assert_allclose(swapped[:, 1], resp[:, 1])
    np.testing.assert_allclose(swapped[:, 0] + swapped[:, 2], resp[:, 0] + resp[:, 2])
    smoothed = candidate_responsibilities(
        resp, ("exchange", 0, 2), sides, active=active, smoothing=0.03
    )
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert np.all(smoothed[:, :3] >= 0.01) and np.all(smoothed[:, 3] == 0)
    with pytest.raises(ValueError, match="Unknown split-and-merge move"):
        candidate_responsibilities(
            resp, ("swap", 0, 1), sides, active=active, smoothing=0
        )


def test_extrapolated_limit_of_a_geometric_climb():
    # l_t = 1 - 0.5 ** t climbs to 1 with increments halving: Aitken's
    # extrapolation is exact.
    history = [1 - 0.5**t for t in range(6)]
    assert extrapolated_limit(history) == pytest.approx(1.0, rel=1e-12)
    # Unknown while too short, or while the increments do not shrink.
    assert extrapolated_limit(history[:3]) == np.inf
    assert extrapolated_limit([0.0, 0.1, 0.3, 0.6]) == np.inf
    assert extrapolated_limit([0.0, 0.1, 0.1, 0.1]) == np.inf


def test_a_trial_is_hopeless_only_near_convergence_and_below_its_target():
    tol = 1e-4
    # Increments halving down to 5e-5: the limit is 0.5.
    slow = [0.5 - 8e-4 * 0.5**t for t in range(-2, 5)]
    assert Trial(0, ("exchange", 0, 1), 0.6, tol).hopeless(slow)
    # Below its target now, but its limit (0.5) is not.
    assert not Trial(0, ("exchange", 0, 1), 0.49999, tol).hopeless(slow)
    # Far from convergence (increments above 10 tol) the run goes on,
    # whatever the extrapolation says.
    fast = [0.5 - 8e-2 * 0.5**t for t in range(-2, 5)]
    assert not Trial(0, ("exchange", 0, 1), 0.6, tol).hopeless(fast)
    assert str(Trial(2, ("exchange", 0, 1), 0.6, tol)) == (
        "2, split-and-merge ('exchange', 0, 1)"
    )


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


def test_split_and_merge_escapes_the_crossing_basin(assert_never_decreases):
    X, y = crossing_curves(0)
    plain = MixtureOfExpertsRegressor(
        init_params="kmeans", n_experts=2, split_merge=0, random_state=0
    )
    plain.fit(X, y)
    moved = MixtureOfExpertsRegressor(
        init_params="kmeans", n_experts=2, split_merge=1, random_state=0
    )
    moved.fit(X, y)
    # The k-means start ends with each expert on one side of the crossing
    # (mean log-likelihood -3.64); exchanging the experts' halves above
    # and below their lines finds the line and the parabola (-3.14).
    assert moved.log_likelihood_ > plain.log_likelihood_ + 0.3
    # The accepted move's history continues the first run's, upwards.
    history = moved.objective_history_
    n_first = plain.objective_history_.shape[0]
    np.testing.assert_array_equal(history[:n_first], plain.objective_history_)
    assert history[n_first] > history[n_first - 1]
    assert_never_decreases(history)
    assert moved.n_iter_ == history.shape[0] - 1
    assert moved.log_likelihood_history_.shape == history.shape


def test_merge_split_escapes_a_crowded_basin(assert_never_decreases):
    # The k-means start of this mixture of 4 experts ends with two experts
    # on one true expert and one expert on two (objective -2.12); merging
    # the first two and splitting the third finds the truth's optimum.
    X, y = make_moe_regression(2000, n_features=10, n_experts=4, random_state=4)
    plain = MixtureOfExpertsRegressor(
        init_params="kmeans", n_experts=4, split_merge=0, random_state=4
    )
    plain.fit(X, y)
    moved = MixtureOfExpertsRegressor(
        init_params="kmeans", n_experts=4, split_merge=1, random_state=4
    )
    moved.fit(X, y)
    assert moved.objective_history_[-1] > plain.objective_history_[-1] + 0.5
    assert_never_decreases(moved.objective_history_)


def test_a_warm_start_continues_without_moves(capsys):
    X, y = crossing_curves(0)
    model = MixtureOfExpertsRegressor(
        init_params="kmeans",
        n_experts=2,
        split_merge=1,
        warm_start=True,
        verbose=1,
        random_state=0,
    ).fit(X, y)
    assert "accepted" in capsys.readouterr().out
    model.fit(X, y)
    assert "split-and-merge" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "make, params",
    [
        ("regression", {"hierarchy": (2, 2)}),
        ("regression", {"n_experts": 3, "routing": "hard"}),
        ("regression", {"n_experts": 3, "routing": "topk"}),
        (
            "regression",
            {"n_experts": 3, "estimator": DecisionTreeRegressor(max_depth=2)},
        ),
        ("classification", {"n_experts": 3}),
    ],
)
def test_split_and_merge_never_lowers_the_objective(
    make, params, moe_regression, moe_classification, assert_never_decreases
):
    X, y, _ = moe_regression if make == "regression" else moe_classification
    X, y = X[:300], y[:300]
    estimator = (
        MixtureOfExpertsRegressor
        if make == "regression"
        else MixtureOfExpertsClassifier
    )
    plain = estimator(**params, split_merge=0, random_state=0).fit(X, y)
    moved = estimator(**params, split_merge=2, random_state=0).fit(X, y)
    assert moved.objective_history_[-1] >= plain.objective_history_[-1]
    if "estimator" not in params:  # EM is monotone for linear experts only
        assert_never_decreases(moved.objective_history_)


@pytest.mark.filterwarnings("ignore:Expert\\(s\\) \\[3\\]:UserWarning")
def test_split_and_merge_skips_pruned_experts(moe_regression, monkeypatch):
    X, y, _ = moe_regression
    moves = []
    original = Starter.split_merge_moves

    def recording(self, gate, *args):
        gate.pruned = np.array([False, False, False, True])
        found = original(self, gate, *args)
        moves.extend(move for move, _ in found)
        return found

    monkeypatch.setattr(Starter, "split_merge_moves", recording)
    model = MixtureOfExpertsRegressor(n_experts=4, split_merge=3, random_state=0)
    model.fit(X[:300], y[:300])
    assert moves and all(3 not in move[1:] for move in moves)


def test_split_and_merge_is_repeatable():
    X, y = crossing_curves(1)
    fits = [
        MixtureOfExpertsRegressor(n_experts=3, split_merge=2, random_state=3).fit(X, y)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*(f.objective_history_ for f in fits))
    np.testing.assert_array_equal(*(f.gate_.coef[0] for f in fits))
    np.testing.assert_array_equal(*(f._expert_pool.coef_ for f in fits))


@pytest.mark.parametrize("value", [-1, 1.5, "2"])
def test_split_merge_is_validated(value):
    X, y = crossing_curves(0, n_samples=20)
    with pytest.raises(ValueError, match="split_merge"):
        MixtureOfExpertsRegressor(split_merge=value).fit(X, y)


def test_split_and_merge_prints_its_moves(capsys):
    X, y = crossing_curves(0)
    MixtureOfExpertsRegressor(
        init_params="kmeans", n_experts=2, split_merge=1, verbose=1, random_state=0
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "split-and-merge ('exchange', 0, 1)" in out and "accepted" in out


def test_split_and_merge_on_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    X, y = crossing_curves(0)
    fits = [
        MixtureOfExpertsRegressor(
            n_experts=2, split_merge=1, backend=backend, random_state=0
        ).fit(torch.asarray(X) if backend == "torch" else X, y)
        for backend in ("numpy", "torch")
    ]
    # Same moves, same basin: the objective agrees to EM's tolerance.
    assert fits[1].objective_history_[-1] == pytest.approx(
        fits[0].objective_history_[-1], abs=1e-3
    )
