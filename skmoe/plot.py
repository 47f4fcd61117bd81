"""Matplotlib displays of a fitted mixture of experts.

Four views in scikit-learn's Display style (a ``from_estimator`` class
method computes, ``plot`` draws): where the gate sends each input
(:class:`GateRegionsDisplay`), the experts of a 1-D regression
(:class:`ExpertsDisplay`), the EM log-likelihood of every restart
(:class:`EMCurveDisplay`) and the tree of gates (:class:`GateTreeDisplay`).

matplotlib is the optional ``plot`` extra (``pip install "skmoe[plot]"``);
it is imported when something is drawn, so this module imports without it.
The displays read only the estimators' public attributes and methods.
"""

import numpy as np
from sklearn.base import is_regressor
from sklearn.utils import check_array, check_X_y
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "EMCurveDisplay",
    "ExpertsDisplay",
    "GateRegionsDisplay",
    "GateTreeDisplay",
]

# Points of the 1-D grid on which ExpertsDisplay evaluates the model.
_EXPERTS_GRID_POINTS = 200
# Colour strength of the least confident gate (probability 1/K): the region
# stays faintly visible instead of fading to white.
_MIN_COLOR_STRENGTH = 0.15
# Bubble diameter of a node that all the data reaches, in units of the
# spacing between levels (and between leaves): bubbles of one level do not
# reach the next.
_BUBBLE_DIAMETER = 0.9
# Share of white mixed into the experts' colours behind black label text.
_LABEL_WHITENING = 0.45
# Dash patterns of EMCurveDisplay's restarts, so that restarts on one curve
# stay apart: dashed, dash-dot, dotted, long dash.
_RESTART_DASHES = ["--", "-.", ":", (0, (6, 2))]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _import_pyplot(caller):
    """Return ``matplotlib.pyplot``, or raise an ImportError that says how."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib, the optional 'plot' extra of skmoe; "
            'install it with: pip install "skmoe[plot]"'
        ) from exc
    return plt


def _get_axes(ax, caller):
    """Return ``ax``, or the axes of a new figure when ``ax`` is None."""
    plt = _import_pyplot(caller)
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _expert_colors(cmap, n_experts):
    """Return one RGBA colour per expert, shape (n_experts, 4).

    A qualitative colormap (``"tab10"``) gives its colours in order; a
    continuous one is sampled evenly.
    """
    import matplotlib as mpl

    if isinstance(cmap, str):
        cmap = mpl.colormaps[cmap]
    if isinstance(cmap, mpl.colors.ListedColormap) and cmap.N <= 20:
        return cmap(np.arange(n_experts) % cmap.N)
    return cmap(np.linspace(0.0, 1.0, n_experts))


def _feature_names(estimator, X, n_features):
    """Return names of the input columns for axis labels."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        names = getattr(X, "columns", None)
    if names is None or len(names) != n_features:
        return [f"feature {j}" for j in range(n_features)]
    return [str(name) for name in names]


def _estimator_input(estimator, grid):
    """Return grid points as the estimator expects them (named columns if fit so).

    An estimator fitted on a DataFrame warns on unnamed input.
    """
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return grid
    try:
        import pandas as pd
    except ImportError:  # fitted on another dataframe library
        return grid
    return pd.DataFrame(grid, columns=names)


def _unwrap(estimator):
    """Return the mixture and the transform that turns input X into its input.

    A :class:`~sklearn.pipeline.Pipeline` whose last step is a mixture is
    unwrapped into that step and the transform of the steps before it, so
    that a display's axes stay in the units of the X the user passes (as
    :class:`~sklearn.inspection.DecisionBoundaryDisplay` does). Any other
    estimator is returned with the identity.
    """
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return estimator, lambda X: X
    check_is_fitted(estimator)
    if len(estimator.steps) == 1:
        return estimator[-1], lambda X: X
    return estimator[-1], estimator[:-1].transform


def _check_mixture(estimator, *attributes):
    check_is_fitted(estimator)
    missing = [name for name in attributes if not hasattr(estimator, name)]
    if missing:
        raise TypeError(
            f"{type(estimator).__name__} is not a fitted skmoe mixture of "
            f"experts: it has no {', '.join(missing)}."
        )


def _gate_columns(estimator, mixture, n_columns):
    """Return the two columns of the input X that GateRegionsDisplay plots.

    X's own two columns when it has two; otherwise the two columns the gate
    sees (``gate_.feature_indices``), mapped back through a pipeline's steps
    by name.
    """
    if n_columns == 2:
        return [0, 1]
    gate_columns = np.asarray(mixture.gate_.feature_indices)
    if gate_columns.size != 2:
        raise ValueError(
            "GateRegionsDisplay draws gates on 2-D inputs: X must have exactly "
            f"2 columns, or the gate must see exactly 2 (gate_features); got X "
            f"with {n_columns} columns and a gate on {gate_columns.size}."
        )
    if mixture is estimator:
        return gate_columns.tolist()
    # The gate's columns are columns of the transformed X: find them in the
    # input X by name, which column-wise steps (scalers) keep.
    names_in = getattr(estimator, "feature_names_in_", None)
    if names_in is None:
        names_in = [f"x{j}" for j in range(n_columns)]
    names_in = [str(name) for name in names_in]
    try:
        names_out = np.asarray(estimator[:-1].get_feature_names_out(), dtype=str)
        gate_names = names_out[gate_columns].tolist()
        return [names_in.index(name) for name in gate_names]
    except (AttributeError, IndexError, ValueError) as exc:
        raise ValueError(
            "GateRegionsDisplay cannot tell which columns of X the gate sees: "
            "the pipeline's steps before the mixture do not keep the columns' "
            "names (get_feature_names_out). Pass X with the two columns to "
            "plot, or a pipeline whose steps act column by column."
        ) from exc


# ---------------------------------------------------------------------------
# Gate regions
# ---------------------------------------------------------------------------


class GateRegionsDisplay:
    """Gate regions of a mixture of experts on 2-D inputs.

    Colours the plane by the most probable expert (``apply``); the colour is
    strong where the gate is sure (its largest probability near one) and
    fades towards white where it hesitates (near ``1 / n_experts``). Black
    lines mark the boundaries between the experts' regions.

    Use :meth:`GateRegionsDisplay.from_estimator` to create one. All
    parameters are stored as attributes.

    Parameters
    ----------
    xx0 : ndarray of shape (grid_resolution, grid_resolution)
        First coordinate of the grid (from :func:`numpy.meshgrid`).
    xx1 : ndarray of shape (grid_resolution, grid_resolution)
        Second coordinate of the grid.
    expert : ndarray of shape (grid_resolution, grid_resolution)
        Most probable expert at every grid point.
    confidence : ndarray of shape (grid_resolution, grid_resolution)
        Largest gate probability at every grid point, in
        ``[1 / n_experts, 1]``.
    n_experts : int, default=None
        Number of experts. None means ``expert.max() + 1``.
    xlabel : str, default=None
        Label of the x-axis.
    ylabel : str, default=None
        Label of the y-axis.

    Attributes
    ----------
    surface_ : matplotlib AxesImage
        The coloured regions.
    boundaries_ : list of matplotlib contour sets
        The boundary lines, one set per expert.
    ax_ : matplotlib Axes
        Axes with the regions.
    figure_ : matplotlib Figure
        Figure containing the regions.

    See Also
    --------
    GateTreeDisplay : The tree of gates and the data reaching each node.
    sklearn.inspection.DecisionBoundaryDisplay : Decision boundaries of a
        classifier.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_moe_regression
    >>> from skmoe.plot import GateRegionsDisplay
    >>> X, y = make_moe_regression(
    ...     n_samples=300, n_features=2, n_experts=3, random_state=0
    ... )
    >>> moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    >>> display = GateRegionsDisplay.from_estimator(moe, X, grid_resolution=50)
    >>> display.expert.shape
    (50, 50)
    >>> _ = display.ax_.scatter(X[:, 0], X[:, 1], s=4, c="k")
    """

    def __init__(
        self, *, xx0, xx1, expert, confidence, n_experts=None, xlabel=None, ylabel=None
    ):
        self.xx0 = xx0
        self.xx1 = xx1
        self.expert = expert
        self.confidence = confidence
        self.n_experts = n_experts
        self.xlabel = xlabel
        self.ylabel = ylabel

    @classmethod
    def from_estimator(
        cls, estimator, X, *, grid_resolution=200, eps=0.5, ax=None, cmap="tab10"
    ):
        """Compute and plot the gate regions of a fitted mixture.

        Parameters
        ----------
        estimator : MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or \
                Pipeline
            A fitted mixture of experts, or a fitted
            :class:`~sklearn.pipeline.Pipeline` whose last step is one; the
            axes are then in the units of ``X``, before the pipeline's
            transforms.
        X : array-like of shape (n_samples, n_features)
            Input data; its range, widened by ``eps``, sets the plotted area.
            Two columns are the two axes. More columns are accepted when the
            gate sees exactly two of them (``gate_features``): those two are
            the axes, and every other column is held at its median over
            ``X`` (the gate does not read them, so they change nothing but
            the input the pipeline's steps see). Behind a pipeline, the
            gate's two columns are found by name
            (``get_feature_names_out`` of the steps before the mixture), so
            the steps must keep the columns' names, as scalers do.
        grid_resolution : int, default=200
            Number of grid points along each axis.
        eps : float, default=0.5
            Margin added around the range of ``X``.
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.
        cmap : str or matplotlib Colormap, default="tab10"
            Colormap of the experts.

        Returns
        -------
        display : GateRegionsDisplay
            The display, with the plot drawn.
        """
        _import_pyplot(f"{cls.__name__}.from_estimator")
        mixture, transform = _unwrap(estimator)
        _check_mixture(mixture, "predict_gate", "apply", "gate_")
        X_array = check_array(X)
        columns = _gate_columns(estimator, mixture, X_array.shape[1])
        lower = X_array[:, columns].min(axis=0) - eps
        upper = X_array[:, columns].max(axis=0) + eps
        xx0, xx1 = np.meshgrid(
            np.linspace(lower[0], upper[0], grid_resolution),
            np.linspace(lower[1], upper[1], grid_resolution),
        )
        points = np.tile(np.median(X_array, axis=0), (xx0.size, 1))
        points[:, columns] = np.column_stack([xx0.ravel(), xx1.ravel()])
        grid = transform(_estimator_input(estimator, points))
        gate = mixture.predict_gate(grid)
        expert = mixture.apply(grid)
        names = _feature_names(estimator, X, X_array.shape[1])
        xlabel, ylabel = names[columns[0]], names[columns[1]]
        display = cls(
            xx0=xx0,
            xx1=xx1,
            expert=expert.reshape(xx0.shape),
            confidence=gate.max(axis=1).reshape(xx0.shape),
            n_experts=gate.shape[1],
            xlabel=xlabel,
            ylabel=ylabel,
        )
        return display.plot(ax=ax, cmap=cmap)

    def plot(self, ax=None, *, cmap="tab10", legend=True):
        """Plot the gate regions.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.
        cmap : str or matplotlib Colormap, default="tab10"
            Colormap of the experts.
        legend : bool, default=True
            Whether to add a legend naming the experts that own part of the
            plotted area (the others are not drawn).

        Returns
        -------
        display : GateRegionsDisplay
            The display, with ``ax_``, ``figure_``, ``surface_`` and
            ``boundaries_`` set.
        """
        from matplotlib.patches import Patch

        ax = _get_axes(ax, f"{type(self).__name__}.plot")
        n_experts = (
            int(self.expert.max()) + 1 if self.n_experts is None else self.n_experts
        )
        colors = _expert_colors(cmap, n_experts)[:, :3]
        # Sureness rescaled from [1/K, 1] to [0, 1] (a single expert is sure).
        floor = 1.0 / n_experts
        sureness = np.clip((self.confidence - floor) / max(1.0 - floor, 1e-12), 0, 1)
        strength = _MIN_COLOR_STRENGTH + (1.0 - _MIN_COLOR_STRENGTH) * sureness
        rgb = 1.0 - strength[..., None] * (1.0 - colors[self.expert])
        extent = (self.xx0.min(), self.xx0.max(), self.xx1.min(), self.xx1.max())
        self.surface_ = ax.imshow(
            rgb,
            origin="lower",
            extent=extent,
            aspect="auto",
            interpolation="nearest",
        )
        # One contour per expert of its indicator: every boundary is found,
        # also between experts whose indices are not adjacent.
        self.boundaries_ = [
            ax.contour(
                self.xx0,
                self.xx1,
                (self.expert == k).astype(float),
                levels=[0.5],
                colors="k",
                linewidths=0.8,
            )
            for k in np.unique(self.expert)
        ]
        if legend:
            # Only the experts that own part of the plotted area.
            handles = [
                Patch(facecolor=colors[k], edgecolor="k", label=f"expert {k}")
                for k in np.unique(self.expert)
            ]
            ax.legend(handles=handles, loc="upper right", framealpha=0.9)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title("Gate regions (paler where the gate is less sure)")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


# ---------------------------------------------------------------------------
# Experts of a 1-D regression
# ---------------------------------------------------------------------------


class ExpertsDisplay:
    """Experts of a mixture-of-experts regression on a single feature.

    Draws the data, each expert's prediction where its gate weight reaches
    ``threshold`` (so each expert shows where it is trusted), and the
    mixture's mean with a band of ``n_std`` predictive standard deviations.

    Use :meth:`ExpertsDisplay.from_estimator` to create one. All parameters
    are stored as attributes.

    Parameters
    ----------
    x_grid : ndarray of shape (n_grid,)
        Input values on which the model was evaluated.
    expert_predictions : ndarray of shape (n_grid, n_experts)
        Prediction of every expert on ``x_grid``.
    gate : ndarray of shape (n_grid, n_experts)
        Gate probability of every expert on ``x_grid``.
    mean : ndarray of shape (n_grid,)
        Predictive mean of the mixture.
    std : ndarray of shape (n_grid,)
        Predictive standard deviation of the mixture.
    x_data : ndarray of shape (n_samples,), default=None
        Input of the data points to scatter; None draws no data.
    y_data : ndarray of shape (n_samples,), default=None
        Targets of the data points.
    threshold : float, default=0.5
        Smallest gate weight at which an expert's line is drawn.
    n_std : float, default=2.0
        Half-width of the band around the mean, in standard deviations.
    xlabel : str, default=None
        Label of the x-axis.
    ylabel : str, default=None
        Label of the y-axis.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection or None
        The data points.
    expert_lines_ : list of matplotlib Line2D
        One line per expert, broken where its gate weight is below
        ``threshold``.
    mean_line_ : matplotlib Line2D
        The mixture's mean.
    band_ : matplotlib PolyCollection
        The band of ``n_std`` standard deviations around the mean.
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.

    See Also
    --------
    GateRegionsDisplay : Where the gate sends 2-D inputs.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_moe_regression
    >>> from skmoe.plot import ExpertsDisplay
    >>> X, y = make_moe_regression(
    ...     n_samples=300, n_features=1, n_experts=3, random_state=0
    ... )
    >>> moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    >>> display = ExpertsDisplay.from_estimator(moe, X, y)
    >>> display.expert_predictions.shape
    (200, 3)
    """

    def __init__(
        self,
        *,
        x_grid,
        expert_predictions,
        gate,
        mean,
        std,
        x_data=None,
        y_data=None,
        threshold=0.5,
        n_std=2.0,
        xlabel=None,
        ylabel=None,
    ):
        self.x_grid = x_grid
        self.expert_predictions = expert_predictions
        self.gate = gate
        self.mean = mean
        self.std = std
        self.x_data = x_data
        self.y_data = y_data
        self.threshold = threshold
        self.n_std = n_std
        self.xlabel = xlabel
        self.ylabel = ylabel

    @classmethod
    def from_estimator(cls, estimator, X, y, *, threshold=0.5, n_std=2.0, ax=None):
        """Compute and plot the experts of a fitted 1-D mixture regression.

        Parameters
        ----------
        estimator : MixtureOfExpertsRegressor or Pipeline
            A fitted mixture-of-experts regressor with one input feature, or
            a fitted :class:`~sklearn.pipeline.Pipeline` whose last step is
            one; the x-axis is then in the units of ``X``, before the
            pipeline's transforms, and the experts are evaluated on the
            transformed grid.
        X : array-like of shape (n_samples, 1)
            Input data; its range sets the evaluation grid.
        y : array-like of shape (n_samples,)
            Targets, drawn as points.
        threshold : float, default=0.5
            Smallest gate weight at which an expert's line is drawn.
        n_std : float, default=2.0
            Half-width of the band around the mean, in predictive standard
            deviations.
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.

        Returns
        -------
        display : ExpertsDisplay
            The display, with the plot drawn.
        """
        _import_pyplot(f"{cls.__name__}.from_estimator")
        if not is_regressor(estimator):
            raise TypeError(
                "ExpertsDisplay shows regression experts; got "
                f"{type(estimator).__name__}, which is not a regressor. "
                "GateRegionsDisplay works for classifiers too."
            )
        mixture, transform = _unwrap(estimator)
        _check_mixture(mixture, "experts_", "predict_gate")
        X_array, y_array = check_X_y(X, y, y_numeric=True)
        if X_array.shape[1] != 1:
            raise ValueError(
                "ExpertsDisplay draws a 1-D regression: X must have exactly 1 "
                f"column, got {X_array.shape[1]}."
            )
        x_grid = np.linspace(
            X_array[:, 0].min(), X_array[:, 0].max(), _EXPERTS_GRID_POINTS
        )
        grid = transform(_estimator_input(estimator, x_grid[:, None]))
        # The experts were fitted on arrays, the mixture maybe on named columns.
        expert_predictions = np.column_stack(
            [
                np.asarray(e.predict(np.asarray(grid))).reshape(-1)
                for e in mixture.experts_
            ]
        )
        gate = mixture.predict_gate(grid)
        mean, std = mixture.predict(grid, return_std=True)
        display = cls(
            x_grid=x_grid,
            expert_predictions=expert_predictions,
            gate=gate,
            mean=mean,
            std=std,
            x_data=X_array[:, 0],
            y_data=y_array,
            threshold=threshold,
            n_std=n_std,
            xlabel=_feature_names(estimator, X, 1)[0],
            ylabel=str(getattr(y, "name", None) or "y"),
        )
        return display.plot(ax=ax)

    def plot(self, ax=None, *, cmap="tab10", legend=True):
        """Plot the data, the experts and the mixture.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.
        cmap : str or matplotlib Colormap, default="tab10"
            Colormap of the experts.
        legend : bool, default=True
            Whether to add a legend. It names only the experts drawn: one
            whose gate weight never reaches ``threshold`` on the grid has no
            line and no entry.

        Returns
        -------
        display : ExpertsDisplay
            The display, with ``ax_``, ``figure_`` and the artists set.
        """
        ax = _get_axes(ax, f"{type(self).__name__}.plot")
        n_experts = self.expert_predictions.shape[1]
        colors = _expert_colors(cmap, n_experts)
        self.scatter_ = None
        if self.x_data is not None:
            self.scatter_ = ax.scatter(
                self.x_data,
                self.y_data,
                s=8,
                color="0.6",
                alpha=0.6,
                linewidths=0,
                label="data",
            )
        self.band_ = ax.fill_between(
            self.x_grid,
            self.mean - self.n_std * self.std,
            self.mean + self.n_std * self.std,
            color="0.2",
            alpha=0.12,
            linewidth=0,
            label=f"mean ± {self.n_std:g} std",
        )
        (self.mean_line_,) = ax.plot(
            self.x_grid, self.mean, color="k", linewidth=1.5, label="mixture mean"
        )
        # NaN breaks each line where the gate does not trust its expert.
        shown = np.where(self.gate >= self.threshold, self.expert_predictions, np.nan)
        # An expert never drawn keeps its (empty) line but no legend entry:
        # matplotlib leaves out labels that start with an underscore.
        drawn = np.any(np.isfinite(shown), axis=0)
        self.expert_lines_ = [
            ax.plot(
                self.x_grid,
                shown[:, k],
                color=colors[k],
                linewidth=2.5,
                label=f"expert {k}" if drawn[k] else f"_expert {k}",
            )[0]
            for k in range(n_experts)
        ]
        if legend:
            ax.legend(loc="best", fontsize="small")
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(f"Experts, drawn where their gate weight ≥ {self.threshold:g}")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


# ---------------------------------------------------------------------------
# EM log-likelihood curves
# ---------------------------------------------------------------------------


def _kept_run(histories, kept_history):
    """Return the index of the kept run among the restarts' histories."""
    for i, history in enumerate(histories):
        if history.shape == kept_history.shape and np.array_equal(
            history, kept_history
        ):
            return i
    # Not found (histories from another fit): the best final log-likelihood.
    return int(np.argmax([history[-1] for history in histories]))


class EMCurveDisplay:
    """Log-likelihood of every EM restart, iteration by iteration.

    One line per initialisation (``n_init`` of them). The run the estimator
    kept is a wide, pale band labelled "kept"; the other restarts are drawn
    on top of it, thin, each in its own colour and dash pattern with a
    marker at its last iteration, so that a restart that ends on (or
    follows) the kept curve stays visible. EM never decreases its penalised
    objective, so flat tails mean convergence and the spread of the final
    values shows how much the restarts matter.

    Use :meth:`EMCurveDisplay.from_estimator` to create one. All parameters
    are stored as attributes.

    Parameters
    ----------
    histories : list of ndarray
        Mean per-sample log-likelihood after the initialisation (iteration
        0) and after every EM iteration, one array per restart.
    kept : int
        Index in ``histories`` of the run the estimator kept.

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        One line per restart, in the order of ``histories``.
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure containing the curves.

    See Also
    --------
    GateTreeDisplay : The tree of gates that was fitted.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_moe_regression
    >>> from skmoe.plot import EMCurveDisplay
    >>> X, y = make_moe_regression(n_samples=300, n_experts=2, random_state=0)
    >>> moe = MixtureOfExpertsRegressor(n_experts=2, n_init=2, random_state=0)
    >>> display = EMCurveDisplay.from_estimator(moe.fit(X, y))
    >>> len(display.lines_)
    2
    """

    def __init__(self, *, histories, kept):
        self.histories = histories
        self.kept = kept

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot the EM log-likelihood curves of a fitted mixture.

        Parameters
        ----------
        estimator : MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or \
                Pipeline
            A fitted mixture of experts, or a fitted
            :class:`~sklearn.pipeline.Pipeline` whose last step is one.
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.

        Returns
        -------
        display : EMCurveDisplay
            The display, with the plot drawn.
        """
        _import_pyplot(f"{cls.__name__}.from_estimator")
        mixture, _ = _unwrap(estimator)
        _check_mixture(mixture, "log_likelihood_history_")
        kept_history = np.asarray(mixture.log_likelihood_history_)
        histories = [
            np.asarray(history)
            for history in getattr(mixture, "log_likelihood_histories_", [kept_history])
        ]
        display = cls(histories=histories, kept=_kept_run(histories, kept_history))
        return display.plot(ax=ax)

    def plot(self, ax=None, *, legend=True):
        """Plot the log-likelihood curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.
        legend : bool, default=True
            Whether to add a legend naming the restarts.

        Returns
        -------
        display : EMCurveDisplay
            The display, with ``ax_``, ``figure_`` and ``lines_`` set.
        """
        from matplotlib.ticker import MaxNLocator

        ax = _get_axes(ax, f"{type(self).__name__}.plot")
        self.lines_ = []
        others = 0
        for i, history in enumerate(self.histories):
            iterations = np.arange(len(history))
            if len(self.histories) == 1:
                label = "kept"
            else:
                label = f"restart {i} (kept)" if i == self.kept else f"restart {i}"
            if i == self.kept:
                # Beneath the others: restarts that reach the same values are
                # drawn over it instead of hidden under it.
                style = {
                    "color": "0.2",
                    "alpha": 0.35,
                    "linewidth": 6.0,
                    "solid_capstyle": "round",
                    "zorder": 2,
                }
            else:
                style = {
                    "color": f"C{others % 10}",
                    "linestyle": _RESTART_DASHES[others % len(_RESTART_DASHES)],
                    "linewidth": 1.3,
                    "marker": "o",
                    "markersize": 4,
                    # Every iteration of a short run, the last of a long one.
                    "markevery": None if len(history) < 30 else [len(history) - 1],
                    "zorder": 3,
                }
                others += 1
            (line,) = ax.plot(iterations, history, label=label, **style)
            self.lines_.append(line)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("mean log-likelihood")
        ax.set_title("EM log-likelihood per restart")
        if legend:
            ax.legend(loc="lower right", fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


# ---------------------------------------------------------------------------
# Tree of gates
# ---------------------------------------------------------------------------


def _tree_positions(parent, depth, leaves):
    """Return (x, y) of every node: leaves evenly spaced, the root on top.

    A leaf's x is its expert index; a gate sits above the middle of its
    children; y is ``max depth - depth``.
    """
    n_nodes = parent.shape[0]
    x = np.zeros(n_nodes)
    x[leaves] = np.arange(len(leaves))
    is_leaf = np.zeros(n_nodes, dtype=bool)
    is_leaf[leaves] = True
    # Deepest gates first, so that children are placed before their parent.
    for node in sorted(np.flatnonzero(~is_leaf), key=lambda n: -depth[n]):
        x[node] = x[parent == node].mean()
    return np.column_stack([x, depth.max() - depth]).astype(float)


class GateTreeDisplay:
    """The tree of gates of a (hierarchical) mixture of experts.

    Nodes are placed by depth (the root on top) and leaf order; edges join
    each gate to its children. Leaves are the experts ("expert k"), the
    other nodes the softmax gates ("gate j", ``j`` the node id of
    ``gate_``). Given data, each node shows its share: the mean probability
    of reaching it, as a percentage, and a bubble of area proportional to
    it.

    Use :meth:`GateTreeDisplay.from_estimator` to create one. All parameters
    are stored as attributes.

    Parameters
    ----------
    positions : ndarray of shape (n_nodes, 2)
        Coordinates ``(x, y)`` of every node.
    parent : ndarray of shape (n_nodes,)
        Parent of every node, ``-1`` for the root.
    leaves : ndarray of shape (n_experts,)
        Node ids of the leaves, in expert order.
    share : ndarray of shape (n_nodes,), default=None
        Mean probability of reaching every node; None draws no shares.

    Attributes
    ----------
    edges_ : list of matplotlib Line2D
        One line per edge, parent to child.
    labels_ : list of matplotlib Text
        The label of every node, in node order.
    bubbles_ : matplotlib PathCollection or None
        Bubbles of area proportional to ``share``, when drawn.
    ax_ : matplotlib Axes
        Axes with the tree.
    figure_ : matplotlib Figure
        Figure containing the tree.

    See Also
    --------
    GateRegionsDisplay : Where the gate sends 2-D inputs.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_hme_regression
    >>> from skmoe.plot import GateTreeDisplay
    >>> X, y = make_hme_regression(
    ...     n_samples=300, n_features=2, hierarchy=(2, 2), random_state=0
    ... )
    >>> hme = MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0)
    >>> display = GateTreeDisplay.from_estimator(hme.fit(X, y), X)
    >>> display.positions.shape
    (7, 2)
    >>> float(display.share[0])
    1.0
    """

    def __init__(self, *, positions, parent, leaves, share=None):
        self.positions = positions
        self.parent = parent
        self.leaves = leaves
        self.share = share

    @classmethod
    def from_estimator(cls, estimator, X=None, *, ax=None):
        """Plot the tree of gates of a fitted mixture.

        Parameters
        ----------
        estimator : MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or \
                Pipeline
            A fitted mixture of experts; a flat one is a tree of depth 1. Or
            a fitted :class:`~sklearn.pipeline.Pipeline` whose last step is
            one.
        X : array-like of shape (n_samples, n_features), default=None
            Data whose share reaching each node (the mean of
            ``decision_path(X)``) annotates the nodes; behind a pipeline, X
            before its transforms. None shows the tree alone.
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.

        Returns
        -------
        display : GateTreeDisplay
            The display, with the plot drawn.
        """
        _import_pyplot(f"{cls.__name__}.from_estimator")
        mixture, transform = _unwrap(estimator)
        _check_mixture(mixture, "gate_", "decision_path")
        tree = mixture.gate_
        parent = np.asarray(tree.parent)
        leaves = np.asarray(tree.leaves)
        share = None
        if X is not None:
            share = mixture.decision_path(transform(X)).mean(axis=0)
        display = cls(
            positions=_tree_positions(parent, np.asarray(tree.depth), leaves),
            parent=parent,
            leaves=leaves,
            share=share,
        )
        return display.plot(ax=ax)

    def plot(self, ax=None, *, cmap="tab10", scale_by_share=True):
        """Plot the tree of gates.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on. None means a new figure and axes.
        cmap : str or matplotlib Colormap, default="tab10"
            Colormap of the experts, as in the other displays.
        scale_by_share : bool, default=True
            Whether to draw behind each node a bubble of area proportional
            to its share of the data (only when ``share`` is known).

        Returns
        -------
        display : GateTreeDisplay
            The display, with ``ax_``, ``figure_`` and the artists set.
        """
        n_nodes, n_leaves = self.positions.shape[0], len(self.leaves)
        if ax is None:
            plt = _import_pyplot(f"{type(self).__name__}.plot")
            # Wide enough that the leaves' labels do not overlap.
            _, ax = plt.subplots(figsize=(max(6.4, 1.0 + 0.9 * n_leaves), 4.8))
        colors = np.tile([0.55, 0.55, 0.55, 1.0], (n_nodes, 1))
        colors[self.leaves] = _expert_colors(cmap, n_leaves)
        # Light boxes: gates near white, experts their colour whitened.
        box_colors = 1.0 - (1.0 - colors) * (1.0 - _LABEL_WHITENING)
        box_colors[:, 3] = 1.0
        is_gate = np.ones(n_nodes, dtype=bool)
        is_gate[self.leaves] = False
        box_colors[is_gate, :3] = 0.93
        expert_of = {leaf: k for k, leaf in enumerate(self.leaves.tolist())}
        x, y = self.positions[:, 0], self.positions[:, 1]

        self.edges_ = [
            ax.plot(
                [x[p], x[node]], [y[p], y[node]], color="0.4", linewidth=1.2, zorder=1
            )[0]
            for node, p in enumerate(self.parent)
            if p >= 0
        ]
        # Room for the labels' boxes and the root's bubble.
        ax.set_xlim(x.min() - 0.6, x.max() + 0.6)
        ax.set_ylim(y.min() - 0.5, y.max() + 0.5)
        self.bubbles_ = None
        if self.share is not None and scale_by_share:
            # Marker areas are in points squared: convert the layout unit.
            box = ax.get_window_extent()
            points_per_unit = (72.0 / ax.figure.dpi) * min(
                box.width / np.ptp(ax.get_xlim()), box.height / np.ptp(ax.get_ylim())
            )
            full_area = (_BUBBLE_DIAMETER * points_per_unit) ** 2
            self.bubbles_ = ax.scatter(
                x,
                y,
                s=full_area * np.clip(self.share, 0, 1),
                color=colors,
                alpha=0.3,
                linewidths=0,
                zorder=2,
            )
        self.labels_ = []
        for node in range(n_nodes):
            if node in expert_of:
                text = f"expert {expert_of[node]}"
            else:
                text = f"gate {node}"
            if self.share is not None:
                text += f"\n{100 * self.share[node]:.1f}%"
            self.labels_.append(
                ax.text(
                    x[node],
                    y[node],
                    text,
                    ha="center",
                    va="center",
                    fontsize="small",
                    zorder=3,
                    bbox={
                        "boxstyle": "round,pad=0.4",
                        "facecolor": box_colors[node],
                        "edgecolor": "0.2",
                    },
                )
            )
        ax.set_axis_off()
        title = "Tree of gates"
        if self.share is not None:
            title += " (share of the data reaching each node)"
        ax.set_title(title)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self
