"""The matplotlib displays: computed arrays, drawn artists, errors."""

import importlib.util
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import skmoe.plot  # noqa: E402
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor  # noqa: E402
from skmoe.datasets import (  # noqa: E402
    make_hme_regression,
    make_moe_classification,
    make_moe_regression,
)
from skmoe.plot import (  # noqa: E402
    EMCurveDisplay,
    ExpertsDisplay,
    GateRegionsDisplay,
    GateTreeDisplay,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def regression_1d():
    X, y = make_moe_regression(n_samples=300, n_features=1, n_experts=3, random_state=0)
    return MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y), X, y


@pytest.fixture(scope="module")
def regression_2d():
    X, y = make_moe_regression(n_samples=300, n_features=2, n_experts=3, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=3, n_init=3, random_state=0)
    return moe.fit(X, y), X, y


@pytest.fixture(scope="module")
def hme_2d():
    X, y = make_hme_regression(
        n_samples=300, n_features=2, hierarchy=(2, 2), random_state=0
    )
    return MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0).fit(X, y), X, y


@pytest.fixture(scope="module")
def classifier_2d():
    X, y = make_moe_classification(
        n_samples=300, n_features=2, n_experts=3, random_state=0
    )
    return MixtureOfExpertsClassifier(n_experts=3, random_state=0).fit(X, y), X, y


# Gate regions ----------------------------------------------------------------


@pytest.mark.parametrize("fitted", ["regression_2d", "classifier_2d", "hme_2d"])
def test_gate_regions_match_the_estimator(fitted, request):
    moe, X, _ = request.getfixturevalue(fitted)
    display = GateRegionsDisplay.from_estimator(moe, X, grid_resolution=40, eps=0.3)

    assert display.xx0.shape == display.xx1.shape == (40, 40)
    assert display.xx0.min() == pytest.approx(X[:, 0].min() - 0.3)
    assert display.xx1.max() == pytest.approx(X[:, 1].max() + 0.3)
    grid = np.column_stack([display.xx0.ravel(), display.xx1.ravel()])
    np.testing.assert_array_equal(display.expert.ravel(), moe.apply(grid))
    np.testing.assert_allclose(
        display.confidence.ravel(), moe.predict_gate(grid).max(axis=1)
    )
    n_experts = moe.n_experts_
    assert np.all(display.confidence >= 1 / n_experts - 1e-12)
    assert np.all(display.confidence <= 1 + 1e-12)
    assert display.surface_.get_array().shape == (40, 40, 3)
    legend = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert legend == [f"expert {k}" for k in np.unique(display.expert)]
    assert display.figure_ is display.ax_.figure


def test_gate_regions_plot_on_given_axes(regression_2d):
    moe, X, _ = regression_2d
    _, (ax_left, ax_right) = plt.subplots(1, 2)
    display = GateRegionsDisplay.from_estimator(moe, X, grid_resolution=20, ax=ax_left)
    assert display.ax_ is ax_left
    assert display.plot(ax=ax_right, cmap="viridis", legend=False) is display
    assert display.ax_ is ax_right
    assert ax_right.get_legend() is None


def test_gate_regions_keep_feature_names(regression_2d):
    pd = pytest.importorskip("pandas")
    _, X, y = regression_2d
    frame = pd.DataFrame(X, columns=["age", "dose"])
    moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        display = GateRegionsDisplay.from_estimator(moe, frame, grid_resolution=10)
    assert display.ax_.get_xlabel() == "age"
    assert display.ax_.get_ylabel() == "dose"


def test_gate_regions_need_two_columns(regression_1d, regression_2d):
    moe, X, _ = regression_1d
    with pytest.raises(ValueError, match="exactly 2 columns"):
        GateRegionsDisplay.from_estimator(moe, X)
    # Three columns, all seen by the gate: which two to plot is not clear.
    _, X, y = regression_2d
    X3 = np.column_stack([X, X[:, 0] - X[:, 1]])
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X3, y)
    with pytest.raises(ValueError, match=r"exactly 2 \(gate_features\)"):
        GateRegionsDisplay.from_estimator(moe, X3)


@pytest.fixture(scope="module")
def gate_on_two_of_three():
    X, y = make_moe_regression(n_samples=300, n_features=3, n_experts=3, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=3, gate_features=[0, 2], random_state=0)
    return moe.fit(X, y), X, y


def test_gate_regions_of_a_gate_on_two_of_three_columns(gate_on_two_of_three):
    moe, X, _ = gate_on_two_of_three
    display = GateRegionsDisplay.from_estimator(moe, X, grid_resolution=30, eps=0.2)

    # The axes are the gate's columns 0 and 2, in X's units.
    assert display.ax_.get_xlabel() == "feature 0"
    assert display.ax_.get_ylabel() == "feature 2"
    assert display.xx0.min() == pytest.approx(X[:, 0].min() - 0.2)
    assert display.xx1.max() == pytest.approx(X[:, 2].max() + 0.2)
    # Column 1, which the gate does not read, is held at its median.
    grid = np.column_stack(
        [
            display.xx0.ravel(),
            np.full(display.xx0.size, np.median(X[:, 1])),
            display.xx1.ravel(),
        ]
    )
    np.testing.assert_array_equal(display.expert.ravel(), moe.apply(grid))
    np.testing.assert_allclose(
        display.confidence.ravel(), moe.predict_gate(grid).max(axis=1)
    )


# Pipelines ---------------------------------------------------------------------


def test_displays_accept_a_pipeline_in_the_units_of_x(regression_2d):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, X, y = regression_2d
    X = X * np.array([1e3, 1e-3])  # units far from the scaler's output
    pipe = make_pipeline(
        StandardScaler(), MixtureOfExpertsRegressor(n_experts=3, random_state=0)
    ).fit(X, y)
    scaler, moe = pipe[0], pipe[-1]

    display = GateRegionsDisplay.from_estimator(pipe, X, grid_resolution=20, eps=0)
    assert display.xx0.min() == pytest.approx(X[:, 0].min())
    assert display.xx1.max() == pytest.approx(X[:, 1].max())
    grid = np.column_stack([display.xx0.ravel(), display.xx1.ravel()])
    np.testing.assert_array_equal(
        display.expert.ravel(), moe.apply(scaler.transform(grid))
    )

    tree = GateTreeDisplay.from_estimator(pipe, X)
    np.testing.assert_allclose(
        tree.share, moe.decision_path(scaler.transform(X)).mean(axis=0)
    )
    curves = EMCurveDisplay.from_estimator(pipe)
    np.testing.assert_array_equal(
        curves.histories[curves.kept], moe.log_likelihood_history_
    )

    x = X[:, :1]
    pipe_1d = make_pipeline(
        StandardScaler(), MixtureOfExpertsRegressor(n_experts=3, random_state=0)
    ).fit(x, y)
    experts = ExpertsDisplay.from_estimator(pipe_1d, x, y)
    assert experts.x_grid.min() == x.min() and experts.x_grid.max() == x.max()
    mean, std = pipe_1d.predict(experts.x_grid[:, None], return_std=True)
    np.testing.assert_allclose(experts.mean, mean)
    np.testing.assert_allclose(experts.std, std)
    scaled_grid = pipe_1d[0].transform(experts.x_grid[:, None])
    for k, expert in enumerate(pipe_1d[-1].experts_):
        np.testing.assert_allclose(
            experts.expert_predictions[:, k], expert.predict(scaled_grid)
        )


def test_gate_regions_of_a_pipeline_find_the_gate_columns_by_name(
    gate_on_two_of_three,
):
    pd = pytest.importorskip("pandas")
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, X, y = gate_on_two_of_three
    frame = pd.DataFrame(X * np.array([1e3, 1.0, 1e-3]), columns=["a", "b", "c"])
    pipe = make_pipeline(
        StandardScaler(),
        MixtureOfExpertsRegressor(n_experts=3, gate_features=[0, 2], random_state=0),
    ).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fitted with feature names" warning
        display = GateRegionsDisplay.from_estimator(pipe, frame, grid_resolution=15)
    assert (display.ax_.get_xlabel(), display.ax_.get_ylabel()) == ("a", "c")
    assert display.xx0.max() == pytest.approx(frame["a"].max() + 0.5)
    points = pd.DataFrame(
        {
            "a": display.xx0.ravel(),
            "b": np.median(frame["b"]),
            "c": display.xx1.ravel(),
        }
    )
    np.testing.assert_array_equal(
        display.expert.ravel(), pipe[-1].apply(pipe[0].transform(points))
    )

    # A step that mixes the columns loses their names: a clear error.
    mixing = make_pipeline(
        PCA(n_components=3),
        MixtureOfExpertsRegressor(n_experts=2, gate_features=[0, 1], random_state=0),
    ).fit(X, y)
    with pytest.raises(ValueError, match="cannot tell which columns"):
        GateRegionsDisplay.from_estimator(mixing, X)


# Legends -----------------------------------------------------------------------


def test_legends_name_only_the_experts_drawn():
    # Expert 1 owns no part of the plane and never passes the threshold.
    xx0, xx1 = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 4))
    regions = GateRegionsDisplay(
        xx0=xx0,
        xx1=xx1,
        expert=np.where(xx0 < 0.5, 0, 2),
        confidence=np.full(xx0.shape, 0.9),
        n_experts=3,
    ).plot()
    legend = [t.get_text() for t in regions.ax_.get_legend().get_texts()]
    assert legend == ["expert 0", "expert 2"]

    x_grid = np.linspace(0, 1, 5)
    gate = np.column_stack([1 - x_grid, np.full(5, 0.2), x_grid])
    gate /= gate.sum(axis=1, keepdims=True)
    experts = ExpertsDisplay(
        x_grid=x_grid,
        expert_predictions=np.column_stack([x_grid, -x_grid, 2 * x_grid]),
        gate=gate,
        mean=x_grid,
        std=np.ones(5),
    ).plot()
    legend = [t.get_text() for t in experts.ax_.get_legend().get_texts()]
    assert legend == ["mean ± 2 std", "mixture mean", "expert 0", "expert 2"]
    assert len(experts.expert_lines_) == 3


# Experts -----------------------------------------------------------------------


def test_experts_display(regression_1d):
    moe, X, y = regression_1d
    display = ExpertsDisplay.from_estimator(moe, X, y, threshold=0.4, n_std=1.5)

    n_grid = display.x_grid.shape[0]
    assert display.x_grid.min() == X.min() and display.x_grid.max() == X.max()
    assert display.expert_predictions.shape == (n_grid, 3)
    assert display.gate.shape == (n_grid, 3)
    grid = display.x_grid[:, None]
    for k, expert in enumerate(moe.experts_):
        np.testing.assert_allclose(
            display.expert_predictions[:, k], expert.predict(grid)
        )
    np.testing.assert_allclose(display.gate, moe.predict_gate(grid))
    mean, std = moe.predict(grid, return_std=True)
    np.testing.assert_allclose(display.mean, mean)
    np.testing.assert_allclose(display.std, std)

    # Each expert's line exists exactly where its gate weight passes.
    for k, line in enumerate(display.expert_lines_):
        drawn = np.isfinite(np.asarray(line.get_ydata(), dtype=float))
        np.testing.assert_array_equal(drawn, display.gate[:, k] >= 0.4)
    assert np.any(
        [np.any(np.isfinite(line.get_ydata())) for line in display.expert_lines_]
    )

    # The band spans mean +- n_std * std: its height is 2 * n_std * std.
    vertices = display.band_.get_paths()[0].vertices
    height = [
        np.ptp(vertices[np.isclose(vertices[:, 0], x), 1]) for x in display.x_grid
    ]
    np.testing.assert_allclose(height, 2 * 1.5 * display.std, atol=1e-8)
    np.testing.assert_allclose(display.mean_line_.get_ydata(), display.mean)
    assert display.scatter_.get_offsets().shape == (X.shape[0], 2)


def test_experts_display_plot_on_given_axes(regression_1d):
    moe, X, y = regression_1d
    _, ax = plt.subplots()
    display = ExpertsDisplay.from_estimator(moe, X, y, ax=ax)
    assert display.ax_ is ax and display.figure_ is ax.figure
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "y"


def test_experts_display_errors(regression_2d, classifier_2d):
    moe, X, y = regression_2d
    with pytest.raises(ValueError, match="exactly 1 column"):
        ExpertsDisplay.from_estimator(moe, X, y)
    classifier, X, y = classifier_2d
    with pytest.raises(TypeError, match="not a regressor"):
        ExpertsDisplay.from_estimator(classifier, X[:, :1], y)


# EM curves ---------------------------------------------------------------------


def test_em_curve_one_line_per_restart(regression_2d):
    moe, _, _ = regression_2d
    display = EMCurveDisplay.from_estimator(moe)

    assert len(display.histories) == moe.n_init == len(display.lines_)
    np.testing.assert_array_equal(
        display.histories[display.kept], moe.log_likelihood_history_
    )
    kept_line = display.lines_[display.kept]
    assert "kept" in kept_line.get_label()
    assert all(
        kept_line.get_linewidth() > line.get_linewidth()
        for i, line in enumerate(display.lines_)
        if i != display.kept
    )
    for line, history in zip(display.lines_, display.histories, strict=True):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(len(history)))
        np.testing.assert_array_equal(line.get_ydata(), history)
    assert display.ax_.get_xlabel() == "EM iteration"


def test_em_curve_draws_every_restart_over_the_kept_one():
    # Restarts 1 and 2 reach the kept run's values: they must not hide under it.
    long_run = np.linspace(-3.0, -1.0, 40)
    histories = [np.array([-3.0, -1.5, -1.0]), np.array([-2.0, -1.0]), long_run]
    display = EMCurveDisplay(histories=histories, kept=0).plot()

    kept, others = display.lines_[0], display.lines_[1:]
    assert all(line.get_zorder() > kept.get_zorder() for line in others)
    assert len({line.get_linestyle() for line in others}) == len(others)
    assert len({line.get_color() for line in others}) == len(others)
    # A marker at every iteration of a short run, at the last of a long one.
    assert all(line.get_marker() not in (None, "None", "") for line in others)
    assert others[0].get_markevery() is None
    assert others[1].get_markevery() == [len(long_run) - 1]
    labels = [line.get_label() for line in display.lines_]
    assert labels == ["restart 0 (kept)", "restart 1", "restart 2"]


def test_em_curve_single_run_on_given_axes(regression_1d):
    moe, _, _ = regression_1d
    _, ax = plt.subplots()
    display = EMCurveDisplay.from_estimator(moe, ax=ax)
    assert display.ax_ is ax
    assert display.kept == 0
    assert [line.get_label() for line in display.lines_] == ["kept"]


# Tree of gates ---------------------------------------------------------------


def test_gate_tree_with_shares(hme_2d):
    moe, X, _ = hme_2d
    display = GateTreeDisplay.from_estimator(moe, X)
    tree = moe.gate_

    assert display.positions.shape == (tree.n_nodes, 2)
    # The root is on top, the leaves at the bottom in expert order.
    assert display.positions[0, 1] == display.positions[:, 1].max()
    leaves = display.positions[tree.leaves]
    assert np.all(leaves[:, 1] == display.positions[:, 1].min())
    assert np.all(np.diff(leaves[:, 0]) > 0)
    assert len(display.edges_) == tree.n_nodes - 1

    assert display.share.shape == (tree.n_nodes,)
    assert display.share[0] == pytest.approx(1.0)
    assert display.share[tree.leaves].sum() == pytest.approx(1.0)
    for node in range(tree.n_nodes):
        children = tree.children(node)
        if children.size:
            assert display.share[children].sum() == pytest.approx(display.share[node])
    labels = [label.get_text() for label in display.labels_]
    assert labels[0].startswith("gate 0") and "100.0%" in labels[0]
    assert labels[tree.leaves[2]].startswith("expert 2")
    assert display.bubbles_ is not None


def test_gate_tree_without_data(regression_1d):
    moe, _, _ = regression_1d
    _, ax = plt.subplots()
    display = GateTreeDisplay.from_estimator(moe, ax=ax)
    assert display.ax_ is ax
    assert display.share is None and display.bubbles_ is None
    assert display.positions.shape == (moe.gate_.n_nodes, 2)
    assert [label.get_text() for label in display.labels_] == [
        "gate 0",
        "expert 0",
        "expert 1",
        "expert 2",
    ]
    # The root sits above the middle of its children.
    assert display.positions[0, 0] == pytest.approx(1.0)


# Optional dependency -----------------------------------------------------------


def test_module_imports_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    # A fresh copy of the module, executed while matplotlib cannot be imported.
    spec = importlib.util.spec_from_file_location("_plot_copy", skmoe.plot.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "GateRegionsDisplay" in module.__all__


def test_clear_error_without_matplotlib(regression_1d, monkeypatch):
    moe, X, y = regression_1d
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "skmoe\[plot\]"'):
        ExpertsDisplay.from_estimator(moe, X, y)


def test_all_is_public():
    assert sorted(skmoe.plot.__all__) == [
        "EMCurveDisplay",
        "ExpertsDisplay",
        "GateRegionsDisplay",
        "GateTreeDisplay",
    ]
