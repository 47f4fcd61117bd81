"""The restart driver: every run kept in order, the best chosen, lines printed."""

import numpy as np
import pytest

from skmoe._engine import EMRun
from skmoe._restarts import fit_restarts, restart_seeds

FINAL_OBJECTIVES = [-2.0, -1.0, -3.0, -1.0]


def _start(init, random_state):
    return f"gate {init}", f"pool {init}", f"kind {init}"


def _run_em(gate, pool, init, random_state):
    objective = FINAL_OBJECTIVES[init]
    return EMRun(
        objectives=[objective - 1.0, objective],
        log_likelihoods=[objective - 1.5, objective - 0.5],
        converged=True,
        n_iter=1,
        gate=gate,
        pool=pool,
    )


@pytest.mark.parametrize("in_parallel", [True, False])
def test_the_first_of_the_best_runs_is_kept(in_parallel):
    restarts = fit_restarts(
        _start, _run_em, [None] * 4, n_jobs=2, in_parallel=in_parallel
    )
    assert [run.gate for run in restarts.runs] == [f"gate {i}" for i in range(4)]
    assert restarts.starts == [f"kind {i}" for i in range(4)]
    assert restarts.kept == 1  # -1.0 twice: the first wins
    assert restarts.best is restarts.runs[1]
    np.testing.assert_array_equal(restarts.histories[2], [-4.5, -3.5])


def test_verbose_prints_one_line_per_run_naming_its_start(capsys):
    fit_restarts(_start, _run_em, [None] * 2, in_parallel=False, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(", ")[0] for line in lines] == [
        "Initialization 0: start kind 0",
        "Initialization 1: start kind 1",
    ]
    assert "objective -2.000000" in lines[0]


def test_restart_seeds_are_drawn_up_front():
    rs = np.random.RandomState(0)
    assert restart_seeds(rs, 1) == [rs]
    first = [s.randint(1000) for s in restart_seeds(np.random.RandomState(0), 3)]
    again = [s.randint(1000) for s in restart_seeds(np.random.RandomState(0), 3)]
    assert first == again
    assert len(set(first)) == 3
