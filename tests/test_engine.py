"""The EM engine: one loop, given options (never the estimator) and a source.

The fits through the estimator are tested in ``test_em``; here the loop is
run directly, on whole arrays and on summed blocks of the same rows.
"""

import copy
import dataclasses
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe._backend import DesignCache
from skmoe._blockwise import ArrayBlocks
from skmoe._engine import (
    ArrayRows,
    EMOptions,
    EMRun,
    SummedRows,
    prune_starving,
    run_em,
)
from skmoe._gating import GateTree
from skmoe._split_merge import Trial
from skmoe.datasets import make_moe_regression

OPTIONS = EMOptions(routing="soft", top_k=2, gate_alpha=0.01, tol=1e-8)


@pytest.fixture(scope="module")
def started():
    """Rows and a start one EM iteration in (no split-and-merge moves)."""
    X, y = make_moe_regression(n_samples=400, n_features=2, n_experts=3, random_state=0)
    moe = MixtureOfExpertsRegressor(
        n_experts=3, init_params="kmeans", max_iter=1, split_merge=0, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.fit(X, y)
    return X, y, moe


def _run(started, kind, options=OPTIONS, *, max_iter=30, init=None):
    X, y, moe = started
    gate, pool = copy.deepcopy(moe.gate_), copy.deepcopy(moe._expert_pool)
    weight = np.ones(y.shape[0])
    if kind == "arrays":
        source = ArrayRows(DesignCache(X), y, weight)
    else:
        source = SummedRows(ArrayBlocks(X, y, weight, block_rows=150))
    return run_em(gate, pool, source, options, max_iter=max_iter, init=init)


@pytest.mark.parametrize("kind", ["arrays", "blocks"])
def test_run_em_climbs_until_tol(started, kind, assert_never_decreases):
    run = _run(started, kind, max_iter=300)
    assert isinstance(run, EMRun)
    assert len(run.objectives) == len(run.log_likelihoods) == run.n_iter + 1
    assert_never_decreases(run.objectives)
    assert run.converged
    assert abs(run.objectives[-1] - run.objectives[-2]) < OPTIONS.tol
    if kind == "arrays":
        assert run.responsibilities.shape == (400, 3)
    else:
        assert run.responsibilities is None  # blocks keep none


def test_whole_arrays_and_blocks_give_the_same_run(started):
    # The same iterations: the sums differ only in their order.
    arrays = _run(started, "arrays", max_iter=8)
    blocks = _run(started, "blocks", max_iter=8)
    np.testing.assert_allclose(blocks.objectives, arrays.objectives, rtol=1e-10)
    for a, b in zip(arrays.gate.coef, blocks.gate.coef, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-8, atol=1e-10)


def test_whole_arrays_evaluate_the_experts_once(started, monkeypatch):
    # Each E-step takes the model's log-likelihoods from the M-step that
    # computed them on its way: the experts are evaluated by the first
    # E-step alone.
    pool_type = type(started[2]._expert_pool)
    calls = []
    original = pool_type.log_likelihood

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pool_type, "log_likelihood", counted)
    run = _run(started, "arrays", max_iter=5)
    assert run.n_iter == 5
    assert len(calls) == 1


def test_verbose_prints_every_iteration(started, capsys):
    options = dataclasses.replace(OPTIONS, verbose=2)
    run = _run(started, "arrays", options, max_iter=3, init=7)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == run.n_iter == 3
    assert lines[0].startswith("Initialization 7, iteration 1: log-likelihood ")
    _run(started, "arrays", options, max_iter=1)
    assert capsys.readouterr().out.startswith("candidate start, iteration 1: ")


def test_a_hopeless_trial_stops_before_convergence(started):
    options = dataclasses.replace(OPTIONS, tol=1e-12)
    full = _run(started, "arrays", options, max_iter=300)
    assert full.converged
    # A target the run cannot reach: judged hopeless once its increments
    # fall below the trial's tolerance (far above the run's own here).
    trial = Trial(0, ("merge", 0, 1), full.objectives[-1] + 1.0, 1e-6)
    stopped = _run(started, "arrays", options, max_iter=300, init=trial)
    assert stopped.n_iter < 0.7 * full.n_iter
    assert trial.hopeless(stopped.objectives)
    np.testing.assert_array_equal(
        stopped.objectives, full.objectives[: stopped.n_iter + 1]
    )


def test_pruning_marks_starving_experts_once():
    gate = GateTree((3,), 2, np.arange(2))
    mass = np.array([5.0, 0.5, 3.0])
    assert prune_starving(gate, mass)
    assert gate.pruned.tolist() == [False, True, False]
    assert not prune_starving(gate, mass)  # already pruned


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        OPTIONS.tol = 0.0
