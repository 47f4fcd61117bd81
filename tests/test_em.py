"""EM as properties: monotone objective, restarts, warm start, reproducibility."""

import pickle

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression

import skmoe._fitting
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._experts import _LOGISTIC_MAX_NEWTON, LogisticExperts
from skmoe.datasets import make_hme_classification, make_hme_regression


@pytest.mark.parametrize("routing", ["hard", "topk"])
@pytest.mark.parametrize("hierarchy", [(4,), (2, 2)])
def test_monotonic_objective_with_truncated_routing(
    routing, hierarchy, assert_never_decreases
):
    """Classification EM and top-k EM raise their bound at every iteration."""
    X, y = make_hme_regression(
        n_samples=600, n_features=3, hierarchy=hierarchy, random_state=0
    )
    moe = MixtureOfExpertsRegressor(
        hierarchy=hierarchy,
        routing=routing,
        train_routing="em",
        max_iter=30,
        tol=0.0,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning):
        moe.fit(X, y)
    assert_never_decreases(moe.objective_history_)
    Xc, yc = make_hme_classification(
        n_samples=600, n_features=3, hierarchy=hierarchy, random_state=0
    )
    clf = MixtureOfExpertsClassifier(
        hierarchy=hierarchy,
        routing=routing,
        train_routing="em",
        max_iter=15,
        tol=0.0,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning):
        clf.fit(Xc, yc)
    assert_never_decreases(clf.objective_history_)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("hierarchy", [(3,), (2, 2), (3, 2), (2, 2, 2)])
def test_monotonic_objective_regressor(seed, hierarchy, assert_never_decreases):
    X, y = make_hme_regression(
        n_samples=600, n_features=3, hierarchy=hierarchy, random_state=seed
    )
    # EM's own iterations (an accepted split-and-merge move appends more;
    # tests/test_split_merge.py checks that history).
    moe = MixtureOfExpertsRegressor(
        hierarchy=hierarchy, max_iter=40, tol=0.0, split_merge=0, random_state=seed
    )
    with pytest.warns(ConvergenceWarning):
        moe.fit(X, y)
    assert moe.n_iter_ == 40
    assert_never_decreases(moe.objective_history_)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("hierarchy", [(3,), (2, 2), (3, 2), (2, 2, 2)])
def test_monotonic_objective_classifier(seed, hierarchy, assert_never_decreases):
    X, y = make_hme_classification(
        n_samples=600, n_features=3, hierarchy=hierarchy, n_classes=3, random_state=seed
    )
    moe = MixtureOfExpertsClassifier(
        hierarchy=hierarchy, max_iter=25, tol=0.0, random_state=seed
    )
    with pytest.warns(ConvergenceWarning):
        moe.fit(X, y)
    assert_never_decreases(moe.objective_history_)


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_monotonic_objective_with_sample_weight(
    moe_regression, init_params, assert_never_decreases
):
    X, y, _ = moe_regression
    weights = np.random.default_rng(0).uniform(0.1, 3.0, size=len(y))
    moe = MixtureOfExpertsRegressor(
        n_experts=3, init_params=init_params, random_state=0, tol=1e-8, max_iter=200
    ).fit(X, y, sample_weight=weights)
    assert_never_decreases(moe.objective_history_)


def test_history_and_final_e_step_agree(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    assert moe.converged_
    assert len(moe.log_likelihood_history_) == moe.n_iter_ + 1
    # The last history entry is the log-likelihood of the returned model.
    assert moe.log_likelihood_ == pytest.approx(
        np.mean(moe.log_likelihood(X, y)), rel=1e-12
    )


def test_restarts_choose_the_maximum(moe_regression, monkeypatch):
    """The kept run is the best of the restarts, whichever comes first."""
    X, y, _ = moe_regression
    finals = []
    original = skmoe._fitting.run_em_on_rows

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        finals.append(result.objectives[-1])
        return result

    monkeypatch.setattr(skmoe._fitting, "run_em_on_rows", recording)
    moe = MixtureOfExpertsRegressor(
        n_experts=3, init_params="random", n_init=5, split_merge=0, random_state=3
    ).fit(X, y)
    assert len(finals) == 5
    assert moe.objective_history_[-1] == max(finals)
    assert len(moe.log_likelihood_histories_) == 5
    assert any(
        np.array_equal(h, moe.log_likelihood_history_)
        for h in moe.log_likelihood_histories_
    )


def test_warm_start_continues(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3, max_iter=2, tol=0.0, warm_start=True, random_state=0
    )
    with pytest.warns(ConvergenceWarning):
        moe.fit(X, y)
    first = moe.objective_history_[-1]
    coef = [c.copy() for c in moe.gate_.coef]
    gate = moe.gate_
    with pytest.warns(ConvergenceWarning):
        moe.fit(X, y)
    # The continued fit works on a copy: the previous gate is left as it was
    # (a failed continuation must not damage it).
    assert moe.gate_ is not gate
    for before, after in zip(coef, gate.coef, strict=True):
        np.testing.assert_array_equal(before, after)
    # The continued run starts where the first stopped.
    assert moe.objective_history_[0] == pytest.approx(first, rel=1e-12)
    assert moe.objective_history_[-1] >= first


def test_warm_start_cannot_change_the_tree(moe_regression):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, warm_start=True, random_state=0)
    moe.fit(X, y)
    moe.set_params(n_experts=4)
    with pytest.raises(ValueError, match="warm_start=True cannot change"):
        moe.fit(X, y)


def test_convergence_warning(moe_regression):
    X, y, _ = moe_regression
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        moe = MixtureOfExpertsRegressor(n_experts=3, max_iter=1, split_merge=0)
        moe.fit(X, y)
    assert not moe.converged_
    assert moe.n_iter_ == 1


@pytest.mark.parametrize(
    "Estimator, fixture",
    [
        (MixtureOfExpertsRegressor, "moe_regression"),
        (MixtureOfExpertsClassifier, "moe_classification"),
    ],
)
def test_same_random_state_same_fit_and_pickle(Estimator, fixture, request):
    X, y, _ = request.getfixturevalue(fixture)
    first = Estimator(n_experts=3, init_params="random", random_state=7).fit(X, y)
    second = Estimator(n_experts=3, init_params="random", random_state=7).fit(X, y)
    np.testing.assert_array_equal(first.objective_history_, second.objective_history_)
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(X), first.predict(X))
    np.testing.assert_array_equal(restored.predict_gate(X), first.predict_gate(X))


def test_verbose_1_prints_a_line_per_initialisation_and_a_closing_line(
    moe_regression, capsys
):
    X, y, _ = moe_regression
    # EM's lines (tests/test_split_merge.py checks the moves').
    moe = MixtureOfExpertsRegressor(
        n_experts=3, n_init=2, split_merge=0, verbose=1, random_state=0
    ).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert sorted(line.split(":")[0] for line in lines[:2]) == [
        "Initialization 0",
        "Initialization 1",
    ]
    assert lines[2].startswith("Fit done: kept initialization")
    kept = int(lines[2].split("kept initialization ")[1].split()[0])
    np.testing.assert_array_equal(
        moe.log_likelihood_histories_[kept], moe.log_likelihood_history_
    )
    assert f"of 2, objective {moe.objective_history_[-1]:.6f}" in lines[2]
    assert f"{moe.n_iter_} iterations" in lines[2]


def test_verbose_2_adds_a_line_per_iteration(moe_regression, capsys):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(
        n_experts=3, split_merge=0, verbose=2, random_state=0
    ).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    iterations = [line for line in lines if line.startswith("Initialization 0, ")]
    assert len(iterations) == moe.n_iter_
    assert lines[-2].startswith("Initialization 0: ")
    assert lines[-1].startswith("Fit done")


def test_verbose_2_prints_the_runs_of_a_trees_start(moe_regression, capsys):
    X, y, _ = moe_regression
    MixtureOfExpertsRegressor(
        hierarchy=(2, 2), max_iter=5, verbose=2, random_state=0
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "candidate start, iteration 1:" in out
    # verbose=1 prints none of them.
    MixtureOfExpertsRegressor(
        hierarchy=(2, 2), max_iter=5, verbose=1, random_state=0
    ).fit(X, y)
    assert "iteration" not in capsys.readouterr().out.replace(" iterations", "")


@pytest.mark.parametrize("routing", ["soft", "hard", "topk"])
def test_vectorized_linear_experts_equal_generic(moe_regression, routing):
    """The batched least squares equals refitting LinearRegression clones."""
    X, y, _ = moe_regression
    common = {"routing": routing, "max_iter": 15, "tol": 0.0, "random_state": 0}
    with pytest.warns(ConvergenceWarning):
        fast = MixtureOfExpertsRegressor(n_experts=3, **common).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        generic = MixtureOfExpertsRegressor([LinearRegression()] * 3, **common).fit(
            X, y
        )
    np.testing.assert_allclose(
        fast.log_likelihood_history_, generic.log_likelihood_history_, rtol=1e-8
    )
    np.testing.assert_allclose(fast.noise_variance_, generic.noise_variance_, rtol=1e-8)
    for a, b in zip(fast.experts_, generic.experts_, strict=True):
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fast.predict(X), generic.predict(X), rtol=1e-8)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_vectorized_logistic_experts_equal_generic(n_classes, monkeypatch):
    """The batched Newton solver equals refitting LogisticRegression clones."""
    # EM takes one Newton step per M-step (a generalised EM); to convergence,
    # each M-step is the weighted MLE that a refit clone finds.
    monkeypatch.setattr(LogisticExperts, "em_newton_steps", _LOGISTIC_MAX_NEWTON)
    X, y = make_hme_classification(
        n_samples=400, n_features=3, hierarchy=(2,), n_classes=n_classes, random_state=0
    )
    # EM's M-steps compared: no split-and-merge moves (their starts are
    # fitted by each pool's own solver, to its own precision).
    common = {
        "n_experts": 2,
        "max_iter": 8,
        "tol": 0.0,
        "split_merge": 0,
        "random_state": 0,
    }
    with pytest.warns(ConvergenceWarning):
        fast = MixtureOfExpertsClassifier(LogisticRegression(C=0.5), **common).fit(X, y)
    exact = LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-14, max_iter=500)
    with pytest.warns(ConvergenceWarning):
        generic = MixtureOfExpertsClassifier([exact] * 2, **common).fit(X, y)
    np.testing.assert_allclose(
        fast.log_likelihood_history_, generic.log_likelihood_history_, rtol=1e-8
    )
    for a, b in zip(fast.experts_, generic.experts_, strict=True):
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        fast.predict_proba(X), generic.predict_proba(X), rtol=1e-8
    )


# ---------------------------------------------------------------------------
# Degenerate fits: an expert that starves is pruned
# ---------------------------------------------------------------------------


def test_starving_expert_is_pruned_with_a_warning(
    moe_regression, assert_never_decreases
):
    """An expert the gate has shut out is pruned, counted, and never NaN."""
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    assert moe.n_pruned_experts_ == 0
    # Shut expert 2 out: its gate intercept far below the others'.
    moe.gate_.coef[0][0, -1, 2] -= 1e3
    moe.set_params(warm_start=True, max_iter=5, tol=0.0)
    with pytest.warns(UserWarning, match=r"Expert\(s\) \[2\].*pruned"):
        with pytest.warns(ConvergenceWarning):
            moe.fit(X, y)
    assert moe.n_pruned_experts_ == 1
    assert moe.gate_.pruned.tolist() == [False, False, True]
    gate = moe.predict_gate(X)
    np.testing.assert_array_equal(gate[:, 2], 0.0)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0)
    np.testing.assert_allclose(
        moe.decision_path(X)[:, moe.gate_.leaves], gate, atol=1e-12
    )
    mean, std = moe.predict(X, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    assert np.all(np.isfinite(moe.log_likelihood(X, y)))
    # After the pruning iteration EM climbs again.
    assert_never_decreases(moe.objective_history_[1:])


@pytest.mark.parametrize("routing", ["hard", "topk"])
def test_pruned_expert_under_truncated_routing_stays_finite(moe_regression, routing):
    X, y, _ = moe_regression
    moe = MixtureOfExpertsRegressor(n_experts=3, routing=routing, random_state=0)
    moe.fit(X, y)
    moe.gate_.coef[0][0, -1, 0] -= 1e3
    moe.set_params(warm_start=True, max_iter=3, tol=0.0)
    with pytest.warns(UserWarning, match="pruned"), pytest.warns(ConvergenceWarning):
        moe.fit(X, y)
    assert moe.n_pruned_experts_ == 1
    assert np.all(np.isfinite(moe.predict(X)))
    assert np.all(np.isfinite(moe.objective_history_))


# ---------------------------------------------------------------------------
# Pruning warnings: once per fit, about the model that is kept
# ---------------------------------------------------------------------------


def _record_pruning(monkeypatch):
    """Count the prunings of every EM run (kept or not) of the fits to come."""
    import skmoe._engine

    events = []
    prune = skmoe._engine.prune_starving

    def recording(gate, mass):
        pruned = prune(gate, mass)
        events.append(pruned)
        return pruned

    monkeypatch.setattr(skmoe._engine, "prune_starving", recording)
    return events


def _pruning_warnings(record):
    return [w for w in record if "pruned" in str(w.message)]


def test_discarded_start_runs_that_prune_do_not_warn(monkeypatch, recwarn):
    """A tree's start runs prune, the kept model does not: no warning."""
    from skmoe.datasets import make_moe_regression

    X, y = make_moe_regression(n_samples=60, n_features=2, n_experts=2, random_state=2)
    events = _record_pruning(monkeypatch)
    moe = MixtureOfExpertsRegressor(hierarchy=(2, 2), max_iter=30, random_state=2)
    moe.fit(X, y)
    assert any(events), "the start runs of this fit should prune an expert"
    assert moe.n_pruned_experts_ == 0
    assert _pruning_warnings(recwarn) == []


def test_a_kept_pruned_expert_warns_once_at_the_users_line(monkeypatch, recwarn):
    from skmoe.datasets import make_moe_regression

    X, y = make_moe_regression(n_samples=40, n_features=2, n_experts=2, random_state=0)
    events = _record_pruning(monkeypatch)
    moe = MixtureOfExpertsRegressor(
        hierarchy=(2, 2),
        n_init=3,
        init_params="random_from_data",
        split_merge=0,
        max_iter=30,
        random_state=0,
    )
    moe.fit(X, y)
    assert sum(events) > 1, "several runs of this fit should prune"
    assert moe.n_pruned_experts_ > 0
    (warning,) = _pruning_warnings(recwarn)
    pruned = np.flatnonzero(moe.gate_.pruned).tolist()
    assert f"Expert(s) {pruned} received" in str(warning.message)
    assert warning.filename == __file__


def test_a_grid_search_warns_at_most_once_per_fit(monkeypatch, recwarn):
    from sklearn.model_selection import GridSearchCV

    from skmoe.datasets import make_moe_regression

    X, y = make_moe_regression(n_samples=80, n_features=2, n_experts=2, random_state=0)
    events = _record_pruning(monkeypatch)
    search = GridSearchCV(
        MixtureOfExpertsRegressor(max_iter=30, random_state=0),
        {"hierarchy": [(2, 2), (4,)], "n_init": [2]},
        cv=2,
    )
    search.fit(X, y)
    n_fits = 2 * 2 + 1
    warned = _pruning_warnings(recwarn)
    assert sum(events) > n_fits, "runs of this search should prune more often"
    assert len(warned) <= n_fits
    # Each points at the user's call, through scikit-learn's frames.
    assert all(w.filename == __file__ for w in warned)


# ---------------------------------------------------------------------------
# Top-k routing starts its truncated EM from a soft fit
# ---------------------------------------------------------------------------


def test_topk_default_continues_a_soft_fit(moe_classification):
    """train_routing="auto" for top-k is truncated EM from the soft fit.

    The same as fitting the soft mixture, then continuing it by truncated EM
    (warm_start): the start is the soft fit, not the k-means partition.
    """
    X, y, _ = moe_classification
    auto = MixtureOfExpertsClassifier(
        n_experts=3, routing="topk", top_k=2, split_merge=0, random_state=0
    ).fit(X, y)
    continued = MixtureOfExpertsClassifier(
        n_experts=3, split_merge=0, random_state=0
    ).fit(X, y)
    continued.set_params(routing="topk", top_k=2, train_routing="em", warm_start=True)
    continued.fit(X, y)
    np.testing.assert_allclose(
        auto.objective_history_, continued.objective_history_, rtol=1e-12
    )
    np.testing.assert_allclose(
        auto.predict_proba(X), continued.predict_proba(X), rtol=1e-9, atol=1e-12
    )


def test_topk_default_history_is_the_truncated_em(
    moe_classification, assert_never_decreases
):
    """The recorded history is the truncated EM's bound, never decreasing;
    it starts at the soft fit, whose own history is not recorded."""
    X, y, _ = moe_classification
    common = {"n_experts": 3, "routing": "topk", "top_k": 2, "random_state": 0}
    auto = MixtureOfExpertsClassifier(**common).fit(X, y)
    assert_never_decreases(auto.objective_history_)
    assert len(auto.log_likelihood_histories_) == 1
    from_kmeans = MixtureOfExpertsClassifier(train_routing="em", **common).fit(X, y)
    # Both histories are of the same truncated bound: comparable.
    assert auto.log_likelihood_history_[-1] >= from_kmeans.log_likelihood_history_[-1]
