"""Starts of EM (skmoe._init): kinds of start, restarts that differ, screening."""

import numpy as np
import pytest

import skmoe._fitting
import skmoe._start
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._init import (
    START_KINDS,
    kmeans_labels,
    random_labels,
    screen_kinds,
    standardize,
    start_labels,
)
from skmoe._start import screen_iterations


def crossing_curves(seed=0, n_samples=150, noise=3.0):
    """A line and a parabola that cross (flexmix's NPreg example), K=2."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(0, 10, n_samples)
    line = rng.rand(n_samples) < 0.5
    y = np.where(line, 5 * x, 15 + 10 * x - x**2) + noise * rng.randn(n_samples)
    return np.column_stack([x, x**2]), y


@pytest.mark.parametrize("kind", START_KINDS)
def test_every_kind_partitions_the_rows(kind):
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3)
    y = rng.randint(3, size=200)
    labels = start_labels(
        kind, X, np.eye(3)[y], y, 4, np.ones(200), np.random.RandomState(0)
    )
    assert labels.shape == (200,)
    assert labels.min() >= 0 and labels.max() < 4


def test_the_first_kmeans_start_is_kmeans_on_the_weighted_inputs_and_target():
    """n_init=1 starts as it always did: k-means on standardized [X, y]."""
    rng = np.random.RandomState(0)
    X, y, w = rng.randn(300, 5), rng.randn(300), rng.uniform(0.5, 2, 300)
    labels = start_labels("kmeans", X, y[:, None], y, 3, w, np.random.RandomState(4))
    target = standardize(y[:, None], w) * np.sqrt(5)
    Z = np.hstack([standardize(X, w), target])
    expected = kmeans_labels(Z, 3, w, np.random.RandomState(4))
    np.testing.assert_array_equal(labels, expected)


def test_random_labels_spread_the_rows_evenly():
    labels = random_labels(3000, 3, np.random.RandomState(0))
    counts = np.bincount(labels, minlength=3)
    # Binomial(3000, 1/3): standard deviation 26 rows.
    assert np.all(np.abs(counts - 1000) < 130)


def test_screens_mix_kinds():
    assert len(set(screen_kinds(4, classifier=False))) >= 3
    assert "random" in screen_kinds(4, classifier=False)
    assert "tree_leaves" in screen_kinds(4, classifier=True)
    assert screen_kinds(4, classifier=True)[0] == "kmeans"


def test_kmeans_restarts_explore_the_crossing_curves():
    """10 k-means restarts reach at least 3 optima, the best among them.

    The default screen (one restart) reaches the best one too.

    Before resampling, every restart of k-means on [X, y] found the same
    clusters and ended in one basin.
    """
    X, y = crossing_curves()
    moe = MixtureOfExpertsRegressor(
        n_experts=2, init_params="kmeans", n_init=10, split_merge=0, random_state=0
    ).fit(X, y)
    finals = np.array([h[-1] for h in moe.log_likelihood_histories_])
    assert len(np.unique(np.round(finals, 3))) >= 3
    reference = MixtureOfExpertsRegressor(
        n_experts=2, init_params="random", n_init=20, random_state=1
    ).fit(X, y)
    best = reference.objective_history_[-1]
    assert moe.objective_history_[-1] >= best - 1e-3 * abs(best)
    assert moe.init_starts_ == ["kmeans"] + ["kmeans_resampled"] * 9
    screened = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    assert screened.objective_history_[-1] >= best - 1e-3 * abs(best)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("init_params", ["random", "random_from_data", "screen"])
def test_init_starts_name_every_restart(moe_regression, init_params):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3, init_params=init_params, n_init=2, max_iter=5, random_state=0
    ).fit(X, y)
    assert len(moe.init_starts_) == 2
    for start in moe.init_starts_:
        if init_params == "screen":
            assert start.removeprefix("screen:") in screen_kinds(4, False)
        else:
            assert start == init_params


@pytest.mark.parametrize(
    "Estimator, data",
    [
        (MixtureOfExpertsRegressor, "moe_regression"),
        (MixtureOfExpertsClassifier, "moe_classification"),
    ],
)
def test_screening_continues_the_best_candidate(Estimator, data, request, monkeypatch):
    """The kept run starts where the best short run stopped."""
    X, y, _ = request.getfixturevalue(data)
    short_runs = []
    original = skmoe._fitting.run_em_on_rows

    def recording(plan, *args, **kwargs):
        result = original(plan, *args, **kwargs)
        short = screen_iterations(plan.start.classifier, plan.start.max_iter)
        if kwargs["max_iter"] == short:
            short_runs.append(result.objectives[-1])
        return result

    monkeypatch.setattr(skmoe._fitting, "run_em_on_rows", recording)
    moe = Estimator(n_experts=3, init_params="screen", random_state=0).fit(X, y)
    assert len(short_runs) == skmoe._start._SCREEN_CANDIDATES
    # Its first E-step recomputes the best candidate's last one.
    assert moe.objective_history_[0] == pytest.approx(max(short_runs), rel=1e-10)
    assert moe.objective_history_[-1] >= max(short_runs)


def test_verbose_names_the_start_of_every_restart(moe_regression, capsys):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3,
        init_params="screen",
        n_init=2,
        split_merge=0,
        verbose=1,
        random_state=0,
    ).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for init, start in enumerate(moe.init_starts_):
        assert start.startswith("screen:")
        prefix = f"Initialization {init}: start {start}, "
        assert any(line.startswith(prefix) for line in lines)


def test_screening_a_trees_flat_start(hme_regression):
    X, y, _ = hme_regression
    moe = MixtureOfExpertsRegressor(
        hierarchy=(2, 2), init_params="screen", max_iter=20, random_state=0
    ).fit(X, y)
    assert moe.init_starts_[0].startswith("screen:")
    assert np.isfinite(moe.log_likelihood_)


@pytest.mark.parametrize("init_params", ["random", "screen"])
def test_partial_fit_starts_with_any_init_params(moe_regression, init_params):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3, init_params=init_params, max_iter=10, random_state=0
    )
    moe.partial_fit(X[:500], y[:500])
    assert len(moe.init_starts_) == 1
    assert moe.init_starts_[0].startswith(init_params)
