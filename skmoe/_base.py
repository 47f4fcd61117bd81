"""BaseMixtureOfExperts: parameter rules and the fit, around the EM engine.

The base checks the data, resolves its parameters into a
:class:`~skmoe._fitting.FitPlan` and keeps the best of the runs that
``_fitting`` returns (docs/design.md §4): the start (``_start``), the EM
engine (``_engine``), the restart driver (``_restarts``) and the input
validators (``_validation``) never see the estimator. Its inspection
methods are in ``_inspection``; the subclasses in ``_estimators`` say how
targets are encoded, which expert pool to build, and how the combination
turns expert outputs into predictions.
"""

import copy
import functools
import math
import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import has_fit_parameter

from skmoe._backend import (
    DesignCache,
    asarray_like,
    move_to,
    resolve_device,
    target_like,
    to_numpy,
)
from skmoe._dask import encode_labels, is_dask_array, unique_labels
from skmoe._engine import EMOptions
from skmoe._fitting import (
    FitPlan,
    fit_blocks,
    fit_rows,
    fit_start,
)
from skmoe._inspection import InspectionMixin
from skmoe._online import OnlineState
from skmoe._restarts import print_fit_summary, restart_seeds
from skmoe._routing import ROUTINGS, resolve_train_routing
from skmoe._start import StartOptions, expert_templates, starts_soft
from skmoe._threads import limits_threads
from skmoe._validation import (
    check_continuation,
    check_dask_features,
    check_dask_fit,
    check_structure,
    mean_weight,
    relative_weights,
    resolve_gate_features,
    resolve_hierarchy,
    same_parameters,
    validate_dask_fit_data,
    validate_fit_data,
)
from skmoe._warnings import warn_host_experts, warn_not_converged, warn_pruned

__all__ = ["BaseMixtureOfExperts"]


def _keeps_state_on_failure(fit_method):
    """Make a fit method all or nothing: a failed fit leaves the estimator as it was.

    The estimator's attributes are restored on any exception (a
    ``KeyboardInterrupt`` too) and the exception re-raised, so a first fit
    that fails leaves no fitted attribute, and a failed refit leaves the
    previous model intact (scikit-learn's estimators behave so). The
    attributes are restored as references: a fit must never change in
    place a fitted object it found (continuing fits work on copies).
    """

    @functools.wraps(fit_method)
    def fit(self, *args, **kwargs):
        state = dict(self.__dict__)
        try:
            return fit_method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise

    return fit


# ---------------------------------------------------------------------------
# The estimator base
# ---------------------------------------------------------------------------


class BaseMixtureOfExperts(InspectionMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the mixture-of-experts estimators.

    Do not use it directly: use :class:`~skmoe.MixtureOfExpertsRegressor` or
    :class:`~skmoe.MixtureOfExpertsClassifier`.
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), list, None],
        "n_experts": [Interval(Integral, 1, None, closed="left"), None],
        "hierarchy": [tuple, list, None],
        "routing": [StrOptions(set(ROUTINGS))],
        "top_k": [Interval(Integral, 1, None, closed="left")],
        "train_routing": [StrOptions({"auto", "refit", "soft", "em"})],
        "gate_features": ["array-like", None],
        "gate_alpha": [Interval(Real, 0, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "random_from_data", "screen"})],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "split_merge": [Interval(Integral, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "backend": [StrOptions({"numpy", "torch"})],
        # A torch.device cannot be named here without importing torch:
        # resolve_device checks the value when the fit needs it.
        "device": "no_validation",
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    # Hooks of the subclasses -----------------------------------------------

    @abstractmethod
    def _encode_targets(self, y, *, reset):
        """Validate ``y`` and return the form the experts' likelihood uses."""

    @abstractmethod
    def _init_target_columns(self, y_encoded):
        """Return the target as clustering columns for the k-means start."""

    @abstractmethod
    def _make_expert_pool(self, estimators, y_encoded, sample_weight):
        """Return a fresh expert pool for cloned ``estimators``."""

    @abstractmethod
    def _supports_vectorized(self, estimator):
        """Return whether ``estimator`` is served by a vectorized expert pool."""

    @abstractmethod
    def _check_expert(self, estimator):
        """Raise if ``estimator`` cannot serve as an expert."""

    # Parameters --------------------------------------------------------------

    def _is_classifier(self):
        return False

    def _check_sample_weight_support(self, estimator):
        if not has_fit_parameter(estimator, "sample_weight"):
            raise TypeError(
                f"{type(estimator).__name__} does not support sample_weight in "
                "fit; experts are refit with the responsibilities as sample "
                "weights, so every expert must accept sample_weight."
            )

    def _fit_plan(self, shape, continue_fit):
        """Return the :class:`~skmoe._fitting.FitPlan` of a fit on ``shape`` rows.

        The tree and the gate's columns are checked against the data (and
        against the fitted model, for a ``continue_fit``).
        """
        hierarchy, gate_idx = check_structure(
            shape,
            hierarchy=self.hierarchy,
            n_experts=self.n_experts,
            gate_features=self.gate_features,
            feature_names=getattr(self, "feature_names_in_", None),
            top_k=self.top_k if self.routing == "topk" else None,
        )
        if continue_fit:
            self._check_continuation(hierarchy, gate_idx, "warm_start=True")
        em_routing = self._em_routing()
        soft_first = starts_soft(
            self.routing, self.train_routing, self.top_k, math.prod(hierarchy)
        )
        start = StartOptions(
            init_params=self.init_params,
            classifier=self._is_classifier(),
            gate_alpha=self.gate_alpha,
            max_iter=self.max_iter,
            # Soft where routed EM starts from a soft fit, else that of the
            # fit's own EM: a tree's flat fit and placement runs then are
            # that soft fit.
            routing="soft" if soft_first else em_routing,
            soft_first=soft_first,
            split_merge=self.split_merge,
            tol=self.tol,
            verbose=self.verbose,
        )
        em = EMOptions(
            routing=em_routing,
            top_k=self.top_k,
            gate_alpha=self.gate_alpha,
            tol=self.tol,
            verbose=self.verbose,
        )
        return FitPlan(
            hierarchy=hierarchy,
            gate_idx=gate_idx,
            em=em,
            start=start,
            routing=self.routing,
            top_k=self.top_k,
            refit=self._resolved_train_routing() == "refit",
            new_pool=self._new_pool,
            target_columns=self._init_target_columns,
        )

    def _new_pool(self, n_experts, rs, y_encoded, sample_weight):
        """Return a fresh expert pool, its experts' seeds drawn from ``rs``."""
        templates = expert_templates(
            self.estimator,
            n_experts,
            rs,
            default=self._default_expert(),
            check=self._check_expert,
        )
        return self._make_expert_pool(templates, y_encoded, sample_weight)

    # Fitting -----------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=False)
    @_keeps_state_on_failure
    @limits_threads
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture of experts by EM.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Training data. A tensor that requires grad is detached (the fit
            is not differentiable). A ``dask.array`` (the ``dask`` extra,
            vectorized experts only) is fitted block by block where Dask
            holds it: on the workers of a ``dask.distributed`` cluster when a
            client is active, the client never receiving the data. Its start
            is fitted in memory on a random sample of at most 50,000 rows.
        y : array-like or dask array of shape (n_samples,)
            Target values.
        sample_weight : array-like or dask array of shape (n_samples,), \
                default=None
            Sample weights; None gives every sample weight one. Only
            relative weights matter: they are divided by their mean (a copy),
            so that multiplying them all by a constant changes nothing, and
            the penalties (``gate_alpha``, the experts' penalties and
            ``reg_variance``) count in rows of average weight, as if every
            row had weight one.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        started = time.perf_counter()
        # A new fit ends any stepwise learning (partial_fit) in progress, and
        # with it the count of what partial_fit has seen.
        self.__dict__.pop("_online", None)
        on_blocks = is_dask_array(X)
        # A training a dask array cannot have is refused before any work.
        self._resolved_train_routing(in_memory=not on_blocks)
        continue_fit = self.warm_start and hasattr(self, "gate_")
        fit = self._fit_blocks if on_blocks else self._fit_rows
        pruned_before = self.gate_.pruned.copy() if continue_fit else None
        result = fit(X, y, sample_weight, continue_fit)
        self._set_fitted(result, fit_started=started, pruned_before=pruned_before)
        return self

    def _fit_rows(self, X, y, sample_weight, continue_fit):
        """Fit on in-memory rows; return the :class:`~skmoe._fitting.Fit`."""
        device = resolve_device(self.backend, self.device)
        X, y, sample_weight = validate_fit_data(
            self, X, y, sample_weight, reset=not continue_fit
        )
        # Only relative weights matter (a copy: the user's array is kept).
        self._weight_scale = mean_weight(sample_weight)
        sample_weight = relative_weights(sample_weight, self._weight_scale)
        y_encoded = self._encode_targets(y, reset=not continue_fit)
        plan = self._fit_plan(X.shape, continue_fit)
        host = X if isinstance(X, np.ndarray) else None
        if device is not None:
            X = move_to(X, device)
            y_encoded = target_like(y_encoded, X)
            sample_weight = asarray_like(sample_weight, X)
        # Designs (and their packed products) are built once per fit and
        # dropped with it.
        rows = (DesignCache(X, host=host), y_encoded, sample_weight)
        continued = self._continued_model(like=X) if continue_fit else None
        result = fit_rows(
            plan,
            rows,
            self._restart_seeds(continue_fit),
            n_jobs=self.n_jobs,
            continued=continued,
        )
        pool = result.restarts.runs[0].pool
        if device is not None and pool.runs_on_host:
            warn_host_experts(pool, device)
        return result

    def _fit_blocks(self, X, y, sample_weight, continue_fit):
        """Fit on a dask array: EM on its blocks, where Dask holds them.

        The start is fitted in memory on a sample of the rows
        (:func:`~skmoe._fitting.fit_blocks`).
        """
        vectorized = self._has_vectorized_experts()
        check_dask_fit(self.backend, None if vectorized else self._expert_description())
        X, y, sample_weight, self._weight_scale = validate_dask_fit_data(
            X, y, sample_weight, classifier=self._is_classifier()
        )
        check_dask_features(self, X, reset=not continue_fit)
        if self._is_classifier():
            self._encode_targets(unique_labels(y), reset=not continue_fit)
            y = encode_labels(y, self.classes_)
        plan = self._fit_plan(X.shape, continue_fit)
        continued = self._continued_model() if continue_fit else None
        return fit_blocks(
            plan,
            X,
            y,
            sample_weight,
            self._restart_seeds(continue_fit),
            continued=continued,
        )

    def _continued_model(self, like=None):
        """Return copies of the fitted gate and experts for a continued fit.

        Copies, so that a continued fit that fails leaves the fitted model
        as it was (:func:`_keeps_state_on_failure`), on the device of
        ``like`` (None: NumPy). ``reg_variance`` is the current
        parameter's: a continued fit honours a changed prior.
        """
        gate = copy.deepcopy(self.gate_)
        pool = copy.deepcopy(self._expert_pool)
        if hasattr(pool, "reg_variance"):
            pool.reg_variance = self.reg_variance
        if like is not None and not isinstance(like, np.ndarray):
            gate.map_arrays(lambda a: asarray_like(a, like))
            pool.map_arrays(lambda a: asarray_like(a, like))
        return gate, pool

    def _check_continuation(self, hierarchy, gate_idx, how):
        """Refuse to continue a fit whose structure the parameters changed.

        A continued fit (``how``: warm_start or partial_fit) keeps the tree
        (``hierarchy``), the gate's columns (``gate_idx``) and the fitted
        experts (:func:`~skmoe._validation.check_continuation`).
        """

        def template(estimator):
            return self._default_expert() if estimator is None else estimator

        fitted = self.__dict__.get("_fitted_estimator", self.estimator)
        changed = not same_parameters(template(fitted), template(self.estimator))
        check_continuation(self.gate_, hierarchy, gate_idx, changed, how)

    def _restart_seeds(self, continue_fit):
        """Return one random state per initialisation (None: a continued fit).

        A continued fit continues the fitted model as it is: its one run
        draws no random numbers (no start, no split-and-merge moves).
        """
        if continue_fit:
            return [None]
        return restart_seeds(check_random_state(self.random_state), self.n_init)

    def _set_fitted(self, result, *, fit_started=None, pruned_before=None):
        """Set the fitted attributes from a :class:`~skmoe._fitting.Fit`'s kept run.

        ``fit_started`` (the ``perf_counter`` of a ``fit``) asks for the
        fit's warnings and closing line; None for partial_fit's start, whose
        step sets ``log_likelihood_`` next and warns after it.
        """
        hierarchy, restarts = result.hierarchy, result.restarts
        best = restarts.best
        gate, pool = best.gate, best.pool
        # Fitted attributes are NumPy whatever the backend: a model fitted on
        # a GPU pickles, loads without torch and predicts anywhere.
        gate.map_arrays(to_numpy)
        pool.map_arrays(to_numpy)
        if fit_started is not None and not best.converged:
            warn_not_converged(len(restarts.runs), self.max_iter)
        self.gate_ = gate
        self._expert_pool = pool
        self._fitted_estimator = clone(self.estimator, safe=False)
        self.experts_ = pool.to_estimators(self.n_features_in_)
        self.hierarchy_ = hierarchy
        self.n_experts_ = math.prod(hierarchy)
        self.n_iter_ = best.n_iter
        self.n_pruned_experts_ = int(gate.pruned.sum())
        self.converged_ = best.converged
        self.objective_history_ = np.asarray(best.objectives)
        self.log_likelihood_history_ = np.asarray(best.log_likelihoods)
        self.log_likelihood_histories_ = restarts.histories
        self.init_starts_ = list(restarts.starts)
        if self.routing == "soft" or result.log_likelihood is None:
            # Soft EM's bound is the likelihood: the last E-step computed it.
            self.log_likelihood_ = best.log_likelihoods[-1]
        else:
            self.log_likelihood_ = result.log_likelihood(gate, pool)
        self._after_fit(pool)
        if fit_started is not None:
            if self.verbose:
                print_fit_summary(restarts, fit_started)
            warn_pruned(gate, pruned_before)

    # Online learning -----------------------------------------------------------

    def _learns_online(self):
        """Raise unless the experts can learn from mini-batches (partial_fit)."""
        if not self._has_vectorized_experts():
            raise AttributeError(
                "partial_fit needs experts whose M-step works on running "
                "sufficient statistics: LinearRegression or Ridge (regressor), "
                "LogisticRegression (classifier), or the default; got "
                f"{self._expert_description()}, which cannot learn online."
            )
        return True

    @property
    def n_samples_seen_(self):
        """Rows seen by ``partial_fit`` (its state's count)."""
        return self._online_state("n_samples_seen_").n_samples_seen

    @property
    def n_steps_(self):
        """Stepwise-EM steps taken by ``partial_fit``."""
        return self._online_state("n_steps_").stepwise.n_steps

    def _online_state(self, name):
        # Set by partial_fit only: a model fitted by fit has neither count.
        if "_online" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            )
        return self._online

    @_keeps_state_on_failure
    def _partial_fit(self, X, y, sample_weight, classes=None):
        """Learn from one mini-batch by stepwise EM (see ``_stepwise``).

        The first call fits a start on its batch as ``fit`` would (the
        ``init_params`` start, EM to convergence); every call then takes one
        stepwise-EM step on its batch. The rows of the first calls are kept
        until ``_online.START_ROWS`` are seen, and the start refitted on them
        once, then stepwise EM starts again from it
        (:class:`~skmoe._online.OnlineState`). On a model fitted by ``fit``,
        partial_fit continues from the fitted parameters.
        """
        if self.backend != "numpy":
            raise ValueError(
                "partial_fit learns with NumPy: use backend='numpy' (got "
                f"backend={self.backend!r})."
            )
        self._resolved_train_routing(in_memory=False)  # refuses "refit"
        first_call = not hasattr(self, "gate_")
        X, y, sample_weight = validate_fit_data(
            self, X, y, sample_weight, reset=first_call
        )
        # Every batch is divided by one scale, the mean weight of the rows
        # the model was first fitted on (by fit, or the first batch), frozen
        # afterwards: a batch's weights keep their meaning relative to the
        # others' (they add to the total weight that the penalties are
        # weighed against), and rescaling the whole stream changes nothing.
        if first_call or "_weight_scale" not in self.__dict__:
            self._weight_scale = mean_weight(sample_weight)
        sample_weight = relative_weights(sample_weight, self._weight_scale)
        if self._is_classifier():
            y_encoded = self._encode_partial_fit_targets(y, classes)
        else:
            y_encoded = self._encode_targets(y, reset=first_call)
        if first_call:
            online = OnlineState()
            pruned_before = None
        else:
            names = getattr(self, "feature_names_in_", None)
            self._check_continuation(
                resolve_hierarchy(self.hierarchy, self.n_experts),
                resolve_gate_features(self.gate_features, X.shape[1], names),
                "partial_fit",
            )
            # The step changes the model and the running statistics in
            # place: it works on copies, so that a failed call leaves the
            # model as it was (_keeps_state_on_failure).
            self.gate_, self._expert_pool = self._continued_model()
            pruned_before = self.gate_.pruned
            # After fit, no rows are kept: the start is fit's.
            online = self.__dict__.get("_online", OnlineState(start_rows=None)).copy()
        self._online = online
        batch, n_batches = (X, y_encoded, sample_weight), 1
        start = online.rows_for_start(batch)
        if start is not None:
            batch, n_batches = start
            plan = self._fit_plan(batch[0].shape, False)
            rows = (DesignCache(batch[0], host=batch[0]), *batch[1:])
            rs = check_random_state(self.random_state)
            self._set_fitted(fit_start(plan, rows, rs))
        self._check_top_k(self.gate_.n_leaves)
        self.log_likelihood_ = online.step(
            self.gate_,
            self._expert_pool,
            batch,
            n_batches,
            regression=not self._is_classifier(),
            routing=self._em_routing(),
            top_k=self.top_k,
            alpha=self.gate_alpha,
        )
        online.n_samples_seen += X.shape[0]
        self.n_pruned_experts_ = int(self.gate_.pruned.sum())
        self.experts_ = self._expert_pool.to_estimators(X.shape[1])
        self._after_fit(self._expert_pool)
        warn_pruned(self.gate_, pruned_before)
        return self

    def _has_vectorized_experts(self):
        """Return whether the experts are one vectorized pool (not generic)."""
        if isinstance(self.estimator, list):
            return False
        return self._supports_vectorized(
            self._default_expert() if self.estimator is None else self.estimator
        )

    def _expert_description(self):
        if isinstance(self.estimator, list):
            return "a list of estimators"
        return type(self.estimator).__name__

    def _after_fit(self, pool):
        """Set estimator-specific fitted attributes."""

    def _resolved_train_routing(self, *, in_memory=True):
        """Return how a fit trains: :func:`~skmoe._routing.resolve_train_routing`."""
        return resolve_train_routing(
            self.routing, self.train_routing, in_memory=in_memory
        )

    def _em_routing(self):
        """Return the routing of the E-step (soft unless trained by routed EM)."""
        return self.routing if self._resolved_train_routing() == "em" else "soft"

    def __getstate__(self):
        # scikit-learn stamps the pickles of its own estimators only (their
        # module starts with "sklearn."): skmoe's carry the stamp too, so
        # that a pickle loaded under another scikit-learn warns, as
        # scikit-learn's do (the experts and the fit depend on its version).
        return {**super().__getstate__(), "_sklearn_version": sklearn.__version__}

    def __setstate__(self, state):
        state = OnlineState.from_legacy_state(dict(state))
        version = state.pop("_sklearn_version", None)
        if version is not None and version != sklearn.__version__:
            warnings.warn(
                InconsistentVersionWarning(
                    estimator_name=type(self).__name__,
                    current_sklearn_version=sklearn.__version__,
                    original_sklearn_version=version,
                ),
                stacklevel=2,
            )
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.non_deterministic = False
        return tags
