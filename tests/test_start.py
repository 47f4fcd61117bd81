"""The start (skmoe._start, skmoe._init.start_rows) driven by plain callables."""

import numpy as np
import pytest

from skmoe._backend import DesignCache
from skmoe._engine import EMRun
from skmoe._init import _INIT_GATE_MAX_ROWS, screen_kinds, start_rows
from skmoe._start import (
    _SCREEN_CANDIDATES,
    _SCREEN_ITERATIONS,
    Starter,
    StartOptions,
    starts_soft,
)


def _starter(objectives, calls, **options):
    """A Starter whose models are tokens and whose EM runs return ``objectives``."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 2))
    y = X[:, 0] + rng.normal(size=60)
    models = iter(range(100))

    def new_model(hierarchy, gate_idx, rs, scale):
        return f"gate{next(models)}", "pool"

    def run_em(gate, pool, **how):
        calls.append((gate, how))
        return EMRun([objectives[len(calls) - 1]], [0.0], False, 1, gate, pool)

    defaults = {
        "init_params": "screen",
        "classifier": False,
        "gate_alpha": 0.01,
        "max_iter": 100,
        "routing": "hard",
        "soft_first": False,
        "split_merge": 2,
        "tol": 1e-4,
        "verbose": 0,
    }
    return Starter(
        StartOptions(**{**defaults, **options}),
        DesignCache(X, host=X),
        y,
        np.ones(60),
        new_model=new_model,
        m_step=lambda gate, pool, resp, **how: None,
        fit_experts=lambda pool, weights: None,
        run_em=run_em,
        target_columns=lambda y: y[:, None],
    )


def test_the_screen_continues_its_best_candidate_without_an_estimator():
    """Short runs of the start's routing; the first of equal objectives wins."""
    calls = []
    starter = _starter([1.0, 3.0, 3.0, 2.0], calls)
    gate, _pool, kind = starter.flat((3,), np.arange(2), np.random.RandomState(0), 1, 0)
    assert len(calls) == _SCREEN_CANDIDATES
    assert all(
        how == {"max_iter": _SCREEN_ITERATIONS, "routing": "hard"} for _, how in calls
    )
    assert gate == "gate1"
    assert kind == f"screen:{screen_kinds(_SCREEN_CANDIDATES, False)[1]}"


def test_other_starts_run_no_em():
    calls = []
    starter = _starter([], calls, init_params="kmeans")
    *_, kind = starter.flat((3,), np.arange(2), np.random.RandomState(0), 1, 1)
    assert kind == "kmeans_resampled" and not calls


@pytest.mark.parametrize(
    ("routing", "train_routing", "top_k", "expected"),
    [
        ("topk", "auto", 2, True),
        ("topk", "auto", 4, False),  # top_k keeps every expert: soft EM
        ("topk", "em", 2, False),
        ("hard", "auto", 2, False),
    ],
)
def test_starts_soft(routing, train_routing, top_k, expected):
    assert starts_soft(routing, train_routing, top_k, 4) is expected


def test_start_rows_subsample_large_fits_and_scale_the_penalty():
    rs = np.random.RandomState(0)
    assert start_rows(_INIT_GATE_MAX_ROWS, rs, 0.5) == (None, 0.5)
    n_samples = 3 * _INIT_GATE_MAX_ROWS
    rows, alpha = start_rows(n_samples, rs, 0.5)
    assert rows.shape == (_INIT_GATE_MAX_ROWS,)
    assert np.all(np.diff(rows) > 0) and rows[-1] < n_samples
    assert alpha == pytest.approx(0.5 / 3, rel=1e-15)
