"""BaseMixtureOfExperts: parameter rules, starts and restarts around EM.

The base composes the lower layers (docs/design.md §4): a :class:`GateTree`
from ``_gating``, an expert pool from ``_experts`` and the routing transform
from ``_routing``, fitted by the EM engine (``_engine``), to which it gives
options and a source of the rows. The subclasses in ``_estimators`` say how
targets are encoded, which expert pool to build, and how the combination
turns expert outputs into predictions.
"""

import copy
import functools
import math
import os
import sys
import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning, InconsistentVersionWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from skmoe._backend import (
    DesignCache,
    as_input_kind,
    asarray_like,
    get_namespace,
    logsumexp,
    move_to,
    resolve_device,
    to_device,
    to_numpy,
)
from skmoe._dask import is_dask_array
from skmoe._engine import (
    MIN_EFFECTIVE_SAMPLES,
    ArrayRows,
    EMOptions,
    SummedRows,
    array_m_step,
    run_em,
)
from skmoe._fused import fit_linear_experts, supports_fused
from skmoe._fused_logistic import fused_rows
from skmoe._gating import GateTree
from skmoe._inference import information_criteria, posterior_entropy, summarize
from skmoe._init import start_rows
from skmoe._online import OnlineState
from skmoe._restarts import Restarts, fit_restarts, print_fit_summary, restart_seeds
from skmoe._routing import ROUTINGS, route_log_weights
from skmoe._start import Starter, StartOptions, expert_templates, starts_soft
from skmoe._statistics import likelihood_statistics
from skmoe._stepwise import StepwiseEM
from skmoe._threads import limits_threads
from skmoe._validation import (
    check_dask_features,
    mean_weight,
    relative_weights,
    same_parameters,
    validate_dask_fit_data,
    validate_fit_data,
    validate_predict_data,
)

__all__ = ["BaseMixtureOfExperts"]

# partial_fit fits its start on the first rows of the stream, up to this
# many: a start decides the basin EM converges to, and a small first batch
# can choose a poor one (measured: a 2-expert classifier started on 1,000
# rows reached a test log-likelihood of -0.339, on 2,000 or more -0.23 to
# -0.24, as the batch fit). The rows are kept until then, so memory stays
# bounded whatever the stream's length.
_ONLINE_START_ROWS = 10_000


# Frames of these packages are skipped when a warning points at the user's
# line: the fit is reached through skmoe's own calls and, in a search or a
# cross-validation, through scikit-learn's and joblib's.
_LIBRARY_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (sklearn.__file__, joblib.__file__, __file__)
)


def _user_stacklevel():
    """Return the ``stacklevel`` that points a warning at the user's line.

    Counted from the caller of this function: the first frame outside
    skmoe, scikit-learn and joblib (the outermost frame when there is none,
    as in a joblib worker).
    """
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(
        _LIBRARY_DIRS
    ):
        frame, level = frame.f_back, level + 1
    return level


def _warn_pruned(gate, pruned_before):
    """Warn once about the experts the kept model pruned in this fit.

    Pruning is recorded in ``gate.pruned`` as EM goes (in the runs that
    place a tree's experts, the kept run and its restarts alike); only the
    model that is kept is reported, so discarded runs never warn.
    """
    pruned = np.flatnonzero(gate.pruned & ~pruned_before)
    if pruned.size == 0:
        return
    warnings.warn(
        f"Expert(s) {pruned.tolist()} received less than "
        f"{MIN_EFFECTIVE_SAMPLES:g} sample's worth of responsibility and were "
        "pruned (their gate probability is now zero); "
        f"{int(gate.pruned.sum())} of {gate.n_leaves} experts are pruned. "
        "Fewer experts, another init_params or more n_init may fit better.",
        UserWarning,
        stacklevel=_user_stacklevel(),
    )


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


def _fit_experts(pool, designs, y_encoded, weights):
    """Fit every expert to its column of ``weights`` (the gate untouched).

    Linear experts on NumPy data are fitted in chunks (``_fused``), any
    other pool by its own M-step.
    """
    if supports_fused(designs.source, pool):
        fit_linear_experts(pool, designs, y_encoded, weights)
    else:
        pool.m_step(designs, y_encoded, weights)


# ---------------------------------------------------------------------------
# The estimator base
# ---------------------------------------------------------------------------


def _fresh_start(
    estimator,
    designs,
    y_encoded,
    sample_weight,
    hierarchy,
    gate_idx,
    init,
    random_state,
    **options,
):
    """Return a fresh start ``(gate, pool, kind)`` (the restart driver's ``start``)."""
    info = {}
    gate, pool = estimator._initialize(
        designs,
        y_encoded,
        sample_weight,
        hierarchy,
        gate_idx,
        random_state,
        restart=init,
        info=info,
        **options,
    )
    return gate, pool, info["start"]


def _continued_start(gate, pool, init, random_state):
    """Return a fitted model's copies as the start of a continued fit."""
    return gate, pool, "continued"


def _in_memory_em(
    estimator, designs, y_encoded, sample_weight, gate, pool, init, random_state
):
    """Run EM on in-memory data (the restart driver's ``run_em``)."""
    return estimator._run_em(
        gate, pool, designs, y_encoded, sample_weight, init, random_state
    )


class BaseMixtureOfExperts(BaseEstimator, metaclass=ABCMeta):
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

    @abstractmethod
    def __init__(
        self,
        estimator=None,
        *,
        n_experts=None,
        hierarchy=None,
        routing="soft",
        top_k=2,
        train_routing="auto",
        gate_features=None,
        gate_alpha=0.01,
        init_params="screen",
        n_init=1,
        split_merge=2,
        max_iter=100,
        tol=1e-4,
        backend="numpy",
        device=None,
        n_jobs=None,
        random_state=None,
        warm_start=False,
        verbose=0,
    ):
        self.estimator = estimator
        self.n_experts = n_experts
        self.hierarchy = hierarchy
        self.routing = routing
        self.top_k = top_k
        self.train_routing = train_routing
        self.gate_features = gate_features
        self.gate_alpha = gate_alpha
        self.init_params = init_params
        self.n_init = n_init
        self.split_merge = split_merge
        self.max_iter = max_iter
        self.tol = tol
        self.backend = backend
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

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

    def _resolve_hierarchy(self):
        """Return the tree of gates as a tuple of branching factors."""
        if self.hierarchy is None:
            n_experts = 3 if self.n_experts is None else self.n_experts
            return (n_experts,)
        hierarchy = tuple(self.hierarchy)
        # (1,) is one expert, as n_experts=1 (a grid over hierarchy may
        # include it). A 1 inside a deeper tree would be a gate with a single
        # child, which decides nothing: refused rather than silently dropped,
        # so that hierarchy_ is always the tree asked for.
        if hierarchy != (1,) and (
            len(hierarchy) == 0
            or not all(
                isinstance(b, Integral) and not isinstance(b, bool) and b >= 2
                for b in hierarchy
            )
        ):
            raise ValueError(
                "hierarchy must be (1,) (one expert) or a non-empty tuple of "
                "integers >= 2 (the branching factor of each level; a level "
                "of 1 would be a gate with a single child), got "
                f"{self.hierarchy!r}."
            )
        n_leaves = math.prod(hierarchy)
        if self.n_experts is not None and self.n_experts != n_leaves:
            raise ValueError(
                f"n_experts={self.n_experts} does not match hierarchy="
                f"{hierarchy}, which has {n_leaves} leaves; leave n_experts "
                "unset (None) or set it to the number of leaves."
            )
        return hierarchy

    def _check_sample_weight_support(self, estimator):
        if not has_fit_parameter(estimator, "sample_weight"):
            raise TypeError(
                f"{type(estimator).__name__} does not support sample_weight in "
                "fit; experts are refit with the responsibilities as sample "
                "weights, so every expert must accept sample_weight."
            )

    def _resolve_gate_features(self, n_features):
        """Return the column indices the gate sees."""
        if self.gate_features is None:
            return np.arange(n_features)
        features = np.asarray(self.gate_features)
        if features.ndim != 1:
            raise ValueError(
                "gate_features must be a 1-d list of column indices, names or "
                f"a boolean mask, got an array of shape {features.shape}."
            )
        if features.dtype == bool:
            if features.shape[0] != n_features:
                raise ValueError(
                    f"gate_features is a boolean mask of length "
                    f"{features.shape[0]}, but X has {n_features} features."
                )
            return np.flatnonzero(features)
        if features.shape[0] == 0:
            return np.arange(0)
        if features.dtype.kind in "OUS":
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    "gate_features names columns, but X has no feature names; "
                    "pass a DataFrame or give column indices."
                )
            known = set(names)
            missing = [str(f) for f in features if f not in known]
            if missing:
                raise ValueError(
                    f"gate_features {missing} are not feature names seen in fit."
                )
            # Sorted and without repeats, as integer indices are.
            return np.unique([np.flatnonzero(names == f)[0] for f in features])
        if features.dtype.kind not in "iu":
            raise ValueError(
                "gate_features must hold integer indices, feature names or "
                f"booleans, got dtype {features.dtype}."
            )
        if features.min() < -n_features or features.max() >= n_features:
            raise ValueError(
                f"gate_features indices must lie in [0, {n_features}), got "
                f"{features.tolist()}."
            )
        return np.unique(features % n_features)

    # Fitting -----------------------------------------------------------------

    def _fit_device(self, X, y_encoded, sample_weight, device):
        """Return the fit's arrays on ``device`` (None: NumPy, unchanged)."""
        if device is None:
            return X, y_encoded, sample_weight
        X = move_to(X, device)
        return X, self._target_like(y_encoded, X), asarray_like(sample_weight, X)

    @staticmethod
    def _target_like(y_encoded, X):
        """Return the encoded target on X's device.

        A float target takes X's dtype too: torch does not promote in matrix
        products. Class indices stay integers.
        """
        move = asarray_like if y_encoded.dtype.kind == "f" else to_device
        return move(y_encoded, X)

    def _is_classifier(self):
        return False

    def _starter(self, designs, y_encoded, sample_weight):
        """Return the fit's :class:`~skmoe._start.Starter`.

        The start's options, its rows and the estimator's hooks it calls
        (a new model, the M-step, the experts' refit, an EM run), so that
        the start never reaches the estimator.
        """
        soft_first = starts_soft(
            self.routing,
            self.train_routing,
            self.top_k,
            math.prod(self._resolve_hierarchy()),
        )
        options = StartOptions(
            init_params=self.init_params,
            classifier=self._is_classifier(),
            gate_alpha=self.gate_alpha,
            max_iter=self.max_iter,
            # Soft where routed EM starts from a soft fit, else that of the
            # fit's own EM: a tree's flat fit and placement runs then are
            # that soft fit.
            routing="soft" if soft_first else self._em_routing(),
            soft_first=soft_first,
            split_merge=self.split_merge,
            tol=self.tol,
            verbose=self.verbose,
        )
        rows = (designs, y_encoded, sample_weight)
        return Starter(
            options,
            *rows,
            new_model=lambda *model: self._new_model(*rows, *model),
            m_step=lambda gate, pool, resp, **how: self._m_step(
                gate, pool, *rows, resp, **how
            ),
            fit_experts=lambda pool, weights: _fit_experts(
                pool, designs, y_encoded, weights
            ),
            run_em=lambda gate, pool, **how: self._fit_once(gate, pool, *rows, **how),
            target_columns=self._init_target_columns,
        )

    def _new_model(
        self, designs, y_encoded, sample_weight, hierarchy, gate_idx, rs, scale
    ):
        """Return an unfitted gate tree and expert pool.

        ``scale`` is the gate's ``penalty_scale``; the experts' seeds are
        drawn from ``rs`` (:func:`~skmoe._start.expert_templates`).
        """
        gate = GateTree(hierarchy, len(gate_idx), gate_idx, penalty_scale=scale)
        gate.map_arrays(lambda coef: asarray_like(coef, designs.source))
        templates = expert_templates(
            self.estimator,
            gate.n_leaves,
            rs,
            default=self._default_expert(),
            check=self._check_expert,
        )
        pool = self._make_expert_pool(
            templates, to_numpy(y_encoded), to_numpy(sample_weight)
        )
        return gate, pool

    def _start(
        self, designs, y_encoded, sample_weight, hierarchy, gate_idx, rs, resp, scale
    ):
        """Return a model fitted to starting responsibilities ``resp``.

        ``scale`` is the gate's ``penalty_scale``
        (:meth:`~skmoe._start.Starter.fit_to`).
        """
        starter = self._starter(designs, y_encoded, sample_weight)
        return starter.fit_to(hierarchy, gate_idx, rs, resp, scale)

    def _start_rows(self, n_samples, rs):
        """Return the rows a start's gate fits are made on, and their penalty.

        :func:`~skmoe._init.start_rows` with ``gate_alpha``.
        """
        return start_rows(n_samples, rs, self.gate_alpha)

    def _initialize(
        self,
        designs,
        y_encoded,
        sample_weight,
        hierarchy,
        gate_idx,
        rs,
        *,
        scale=None,
        restart=0,
        info=None,
    ):
        """Return a gate tree and an expert pool fitted to a fresh start.

        :meth:`~skmoe._start.Starter.initialize`: ``scale`` is the gate's
        ``penalty_scale`` (None: that of the rows at hand), ``restart``
        numbers the restart; the kind of start is stored in
        ``info["start"]`` when ``info`` is a dict.
        """
        starter = self._starter(designs, y_encoded, sample_weight)
        gate, pool, kind = starter.initialize(
            hierarchy, gate_idx, rs, scale=scale, restart=restart
        )
        if info is not None:
            info["start"] = kind
        return gate, pool

    def _m_step(
        self,
        gate,
        pool,
        designs,
        y_encoded,
        sample_weight,
        resp,
        *,
        gate_steps=1,
        level_log_probas=None,
    ):
        """Refit the experts and improve the gates given responsibilities.

        :func:`~skmoe._engine.array_m_step` with the estimator's penalty.
        """
        return array_m_step(
            gate,
            pool,
            designs,
            y_encoded,
            sample_weight,
            resp,
            alpha=self.gate_alpha,
            gate_steps=gate_steps,
            level_log_probas=level_log_probas,
        )

    def _log_joint(self, gate, pool, X, y_encoded):
        """Return log gate probabilities and experts' log-likelihoods."""
        return gate.log_proba(X), pool.log_likelihood(X, y_encoded)

    def _em_options(self, routing=None):
        """Return the :class:`~skmoe._engine.EMOptions` of this estimator's EM.

        ``routing`` is the E-step's (None: :meth:`_em_routing`; the start's
        runs pass theirs, ``StartOptions.routing``).
        """
        return EMOptions(
            routing=self._em_routing() if routing is None else routing,
            top_k=self.top_k,
            gate_alpha=self.gate_alpha,
            tol=self.tol,
            verbose=self.verbose,
        )

    def _fit_once(
        self,
        gate,
        pool,
        designs,
        y_encoded,
        sample_weight,
        *,
        max_iter,
        init=None,
        routing=None,
    ):
        """Run EM from a start; return its :class:`~skmoe._engine.EMRun`.

        ``init`` numbers the initialisation in verbose output; None marks a
        run of the start. ``routing`` is the E-step's (None:
        :meth:`_em_routing`; the start's runs pass theirs,
        ``StartOptions.routing``).
        """
        rows = fused_rows(designs, y_encoded, sample_weight, gate=gate, pool=pool)
        if rows is not None:
            # Vectorized experts on NumPy data: the same EM iterations, each
            # a pass over cache-sized chunks of rows (docs/design.md §6).
            source = SummedRows(rows, responsibilities=rows.responsibilities)
        else:
            source = ArrayRows(designs, y_encoded, sample_weight)
        return run_em(
            gate,
            pool,
            source,
            self._em_options(routing),
            max_iter=max_iter,
            init=init,
        )

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
        # A training a dask array cannot have is refused before any work.
        self._resolved_train_routing(in_memory=not is_dask_array(X))
        if is_dask_array(X):
            return self._fit_dask(X, y, sample_weight, started)
        continue_fit = self.warm_start and hasattr(self, "gate_")
        device = resolve_device(self.backend, self.device)
        X, y, sample_weight = validate_fit_data(
            self, X, y, sample_weight, reset=not continue_fit
        )
        # Only relative weights matter (a copy: the user's array is kept).
        self._weight_scale = mean_weight(sample_weight)
        sample_weight = relative_weights(sample_weight, self._weight_scale)
        y_encoded = self._encode_targets(y, reset=not continue_fit)
        hierarchy, gate_idx = self._check_structure(X.shape, continue_fit)

        host = X if isinstance(X, np.ndarray) else None
        X, y_encoded, sample_weight = self._fit_device(
            X, y_encoded, sample_weight, device
        )
        # Designs (and their packed products) are built once per fit and
        # dropped with it.
        data = (DesignCache(X, host=host), y_encoded, sample_weight)

        def routed_log_likelihood(gate, pool):
            log_lik = self._log_likelihood(gate, pool, X, y_encoded)
            return float(sample_weight @ log_lik) / float(sample_weight.sum())

        return self._fit_restarts(
            functools.partial(_fresh_start, self, *data, hierarchy, gate_idx),
            functools.partial(_in_memory_em, self, *data),
            routed_log_likelihood,
            hierarchy=hierarchy,
            continue_fit=continue_fit,
            started=started,
            in_parallel=True,
            device=device,
            like=X,
        )

    def _fit_restarts(
        self,
        fresh_start,
        run_em,
        routed_log_lik,
        *,
        hierarchy,
        continue_fit,
        started,
        in_parallel,
        device=None,
        like=None,
    ):
        """Run the restarts of a fit (or continue the fitted model); set the best.

        ``fresh_start`` and ``run_em`` are the restart driver's callables
        (:func:`~skmoe._restarts.fit_restarts`); a continued fit starts from
        copies of the fitted model, moved to ``device`` like ``like``.
        ``routed_log_lik`` is :meth:`_set_fitted`'s.
        """
        if continue_fit:
            gate, pool = self._continued_model()
            pruned_before = gate.pruned
            if device is not None:
                gate.map_arrays(lambda a: asarray_like(a, like))
                pool.map_arrays(lambda a: asarray_like(a, like))
            start = functools.partial(_continued_start, gate, pool)
        else:
            pruned_before = np.zeros(math.prod(hierarchy), dtype=bool)
            start = fresh_start
        restarts = fit_restarts(
            start,
            run_em,
            self._restart_seeds(continue_fit),
            n_jobs=self.n_jobs,
            in_parallel=in_parallel and not continue_fit,
            verbose=self.verbose,
        )
        if device is not None and restarts.runs[0].pool.runs_on_host:
            warnings.warn(
                f"{type(restarts.runs[0].pool.estimators[0]).__name__} experts "
                "are generic scikit-learn estimators: they are fitted on the "
                "CPU with NumPy whatever the backend, so every EM iteration "
                f"copies their weights and outputs between {device} and "
                "NumPy arrays. Only the gate, the E-step and the routing run "
                "on the device; LinearRegression, Ridge and LogisticRegression "
                "experts run there too.",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )
        self._set_fitted(
            restarts,
            hierarchy,
            self.n_features_in_,
            routed_log_lik,
            fit_started=started,
            pruned_before=pruned_before,
        )
        return self

    def _continued_model(self):
        """Return copies of the fitted gate and experts for a continued fit.

        Copies, so that a continued fit that fails leaves the fitted model
        as it was (:func:`_keeps_state_on_failure`). ``reg_variance`` is
        the current parameter's: a continued fit honours a changed prior.
        """
        gate = copy.deepcopy(self.gate_)
        pool = copy.deepcopy(self._expert_pool)
        if hasattr(pool, "reg_variance"):
            pool.reg_variance = self.reg_variance
        return gate, pool

    def _check_continuation(self, hierarchy, gate_idx, how):
        """Refuse to continue a fit whose structure the parameters changed.

        The gates' coefficients are sized by the tree and the gate's columns,
        and the experts are the fitted ones: a continued fit (``how``:
        warm_start or partial_fit) cannot change either.
        """
        if tuple(self.gate_.hierarchy) != hierarchy:
            raise ValueError(
                f"{how} cannot change the number of experts or the "
                f"hierarchy (fitted {self.gate_.hierarchy}, asked {hierarchy}); "
                "fit afresh (warm_start=False) to change them."
            )
        if not np.array_equal(self.gate_.feature_indices, gate_idx):
            raise ValueError(
                f"{how} cannot change gate_features (fitted columns "
                f"{self.gate_.feature_indices.tolist()}, asked "
                f"{gate_idx.tolist()}); fit afresh (warm_start=False) to "
                "change them."
            )

        def template(estimator):
            return self._default_expert() if estimator is None else estimator

        if "_fitted_estimator" in self.__dict__ and not same_parameters(
            template(self._fitted_estimator), template(self.estimator)
        ):
            raise ValueError(
                f"{how} cannot change estimator: the experts are the fitted "
                "ones; fit afresh (warm_start=False) to change them."
            )

    def _restart_seeds(self, continue_fit):
        """Return one random state per initialisation (None: a continued fit).

        A continued fit continues the fitted model as it is: its one run
        draws no random numbers (no start, no split-and-merge moves).
        """
        if continue_fit:
            return [None]
        return restart_seeds(check_random_state(self.random_state), self.n_init)

    def _run_em(
        self, gate, pool, designs, y_encoded, sample_weight, init, random_state
    ):
        """Run EM from a start; return its :class:`~skmoe._engine.EMRun`.

        The run is then improved by split-and-merge EM (``split_merge``),
        its moves' starts seeded by ``random_state``; None (a warm-start
        continuation, which continues the fitted model as it is) runs EM
        alone.
        """
        run = self._fit_once(
            gate,
            pool,
            designs,
            y_encoded,
            sample_weight,
            max_iter=self.max_iter,
            init=init,
        )
        # A run that reached max_iter is moved too: on a 3-class classifier
        # (20,000 rows, 4 experts) EM stopped at 100 iterations at -0.563,
        # a move reached -0.454 (the truth: -0.452), not by more iterations.
        if self.split_merge and random_state is not None:
            run = self._split_and_merge(
                run, designs, y_encoded, sample_weight, random_state, init
            )
        gate, pool = run.gate, run.pool
        self._refit_to_routing(gate, pool, designs, y_encoded, sample_weight)
        return run

    def _split_and_merge(self, run, designs, y_encoded, sample_weight, rs, init):
        """Improve a run by split-and-merge EM.

        :meth:`~skmoe._start.Starter.split_and_merge`: ``run`` is an
        :class:`~skmoe._engine.EMRun`, the moves' starts are seeded by
        ``rs`` and ``init`` numbers the initialisation in verbose output.
        """
        starter = self._starter(designs, y_encoded, sample_weight)
        return starter.split_and_merge(run, rs, init)

    def _check_structure(self, shape, continue_fit):
        """Return the hierarchy and gate columns, checked against the data."""
        n_samples, n_features = shape
        hierarchy = self._resolve_hierarchy()
        n_leaves = math.prod(hierarchy)
        if self.routing == "topk" and self.top_k > n_leaves:
            raise ValueError(
                f"top_k={self.top_k} is larger than the number of experts ({n_leaves})."
            )
        if n_samples < n_leaves:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_experts={n_leaves}: "
                "every expert needs at least one sample."
            )
        gate_idx = self._resolve_gate_features(n_features)
        if continue_fit:
            self._check_continuation(hierarchy, gate_idx, "warm_start=True")
        return hierarchy, gate_idx

    def _set_fitted(
        self,
        restarts,
        hierarchy,
        n_features,
        routed_log_lik=None,
        *,
        fit_started=None,
        pruned_before=None,
    ):
        """Set the fitted attributes from the kept run of ``restarts``.

        ``routed_log_lik(gate, pool)`` returns the mean log-likelihood of the
        training data under the prediction's routing (needed when it is not
        the E-step's bound, i.e. unless routing is soft). ``fit_started``
        (the ``perf_counter`` of a ``fit``) asks for the fit's warnings and
        closing line; None for partial_fit's start, whose step sets
        ``log_likelihood_`` next and warns after it.
        """
        best = restarts.best
        gate, pool = best.gate, best.pool
        # Fitted attributes are NumPy whatever the backend: a model fitted on
        # a GPU pickles, loads without torch and predicts anywhere.
        gate.map_arrays(to_numpy)
        pool.map_arrays(to_numpy)
        if fit_started is not None and not best.converged:
            warnings.warn(
                f"The best of {len(restarts.runs)} EM run(s) did not converge in "
                f"{self.max_iter} iterations; increase max_iter or tol, or "
                "check the data.",
                ConvergenceWarning,
                stacklevel=_user_stacklevel(),
            )
        self.gate_ = gate
        self._expert_pool = pool
        self._fitted_estimator = clone(self.estimator, safe=False)
        self.experts_ = pool.to_estimators(n_features)
        self.hierarchy_ = hierarchy
        self.n_experts_ = math.prod(hierarchy)
        self.n_iter_ = best.n_iter
        self.n_pruned_experts_ = int(gate.pruned.sum())
        self.converged_ = best.converged
        self.objective_history_ = np.asarray(best.objectives)
        self.log_likelihood_history_ = np.asarray(best.log_likelihoods)
        self.log_likelihood_histories_ = restarts.histories
        self.init_starts_ = list(restarts.starts)
        if self.routing == "soft" or routed_log_lik is None:
            # Soft EM's bound is the likelihood: the last E-step computed it.
            self.log_likelihood_ = best.log_likelihoods[-1]
        else:
            self.log_likelihood_ = routed_log_lik(gate, pool)
        self._after_fit(pool)
        if fit_started is not None:
            if self.verbose:
                print_fit_summary(restarts, fit_started)
            _warn_pruned(gate, pruned_before)

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

    def _fit_online_start(self, X, y_encoded, sample_weight):
        """Fit the start of stepwise EM on in-memory rows, as ``fit`` does."""
        hierarchy, gate_idx = self._check_structure(X.shape, False)
        designs = DesignCache(X, host=X)
        gate, pool, kind = _fresh_start(
            self,
            designs,
            y_encoded,
            sample_weight,
            hierarchy,
            gate_idx,
            0,
            check_random_state(self.random_state),
        )
        run = self._fit_once(
            gate, pool, designs, y_encoded, sample_weight, max_iter=self.max_iter
        )
        self._set_fitted(Restarts([run], [kind], 0), hierarchy, X.shape[1])

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
        until ``_ONLINE_START_ROWS`` are seen, and the start refitted on them
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
            self._check_continuation(
                self._resolve_hierarchy(),
                self._resolve_gate_features(X.shape[1]),
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
        batch, batches_in_start = (X, y_encoded, sample_weight), 1
        start = online.rows_for_start(batch, limit=_ONLINE_START_ROWS)
        if start is not None:
            batch, batches_in_start = start
            self._fit_online_start(*batch)
            # Stepwise EM starts afresh from the new start.
            online.stepwise = None
        self._check_top_k(self.gate_.n_leaves)
        if online.stepwise is None:
            offset = 0.0
            if not self._is_classifier():
                offset = float(np.average(batch[1], weights=batch[2]))
            online.stepwise = StepwiseEM(y_offset=offset)
            # The start's rows count as the batches they came in: the next
            # batch then gets the step size of its place in the stream, not
            # the large one of a second step (measured: a test log-likelihood
            # that fell from -1.0474 to -1.0559 after the start's refit,
            # which a weight of 2 ** -0.6 on one batch of 1,000 rows caused).
            online.stepwise.n_steps = batches_in_start - 1
        self.log_likelihood_ = online.stepwise.step(
            self.gate_,
            self._expert_pool,
            *batch,
            routing=self._em_routing(),
            top_k=self.top_k,
            alpha=self.gate_alpha,
        )
        online.n_samples_seen += X.shape[0]
        self.n_pruned_experts_ = int(self.gate_.pruned.sum())
        self.experts_ = self._expert_pool.to_estimators(X.shape[1])
        self._after_fit(self._expert_pool)
        if pruned_before is None:
            pruned_before = np.zeros_like(self.gate_.pruned)
        _warn_pruned(self.gate_, pruned_before)
        return self

    # Dask arrays ---------------------------------------------------------------

    def _fit_dask(self, X, y, sample_weight, started):
        """Fit on a dask array: EM on its blocks, where Dask holds them.

        The start is fitted in memory on a random sample of at most
        ``_INIT_GATE_MAX_ROWS`` rows (all rows when there are no more); EM
        then runs on all rows by :func:`~skmoe._engine.run_em` on its blocks,
        whose iterations are those of the in-memory EM.
        """
        from skmoe._dask import (
            DaskBlocks,
            encode_labels,
            gate_penalty_scale,
            sample_rows,
            unique_labels,
        )

        if self.backend != "numpy":
            raise ValueError(
                "A dask array is fitted on its blocks with NumPy: use "
                f"backend='numpy' (got backend={self.backend!r})."
            )
        if not self._has_vectorized_experts():
            raise TypeError(
                "Fitting a dask array needs experts whose M-step works on "
                "sufficient statistics: LinearRegression or Ridge (regressor), "
                "LogisticRegression (classifier), or the default; got "
                f"{self._expert_description()}. Fit generic experts on an "
                "in-memory array (joblib's Dask backend can run their fits "
                "on the cluster)."
            )
        continue_fit = self.warm_start and hasattr(self, "gate_")
        X, y, sample_weight, self._weight_scale = validate_dask_fit_data(
            X, y, sample_weight, classifier=self._is_classifier()
        )
        check_dask_features(self, X, reset=not continue_fit)
        if self._is_classifier():
            labels = unique_labels(y)
            self._encode_targets(labels, reset=not continue_fit)
            y_encoded = encode_labels(y, self.classes_)
        else:
            y_encoded = y
        hierarchy, gate_idx = self._check_structure(X.shape, continue_fit)
        blocks = DaskBlocks(X, y_encoded, sample_weight)
        # The gate's penalty scales are those of all rows, as in memory,
        # though each start is fitted on a sample.
        scale = None if continue_fit else gate_penalty_scale(X, sample_weight, gate_idx)

        def fresh_start(init, rs):
            rows, _ = self._start_rows(X.shape[0], rs)
            Xs, ys, ws = sample_rows(rows, X, y_encoded, sample_weight)
            designs = DesignCache(Xs, host=Xs)
            return _fresh_start(
                self, designs, ys, ws, hierarchy, gate_idx, init, rs, scale=scale
            )

        def run_on_blocks(gate, pool, init, rs):
            return run_em(
                gate,
                pool,
                SummedRows(blocks),
                self._em_options(),
                max_iter=self.max_iter,
                init=init,
            )

        def routed_log_likelihood(gate, pool):
            found = blocks.sum(
                likelihood_statistics,
                gate=gate,
                pool=pool,
                routing=self.routing,
                top_k=self.top_k,
            )
            return float(found["log_likelihood"]) / float(found["weight"])

        # Restarts run in turn: every pass of each already runs on the blocks.
        return self._fit_restarts(
            fresh_start,
            run_on_blocks,
            routed_log_likelihood,
            hierarchy=hierarchy,
            continue_fit=continue_fit,
            started=started,
            in_parallel=False,
        )

    def _map_dask(self, method, X, *rows, **options):
        """Apply a prediction method block by block to a dask array ``X``."""
        from skmoe._dask import map_method

        check_is_fitted(self)
        check_dask_features(self, X, reset=False)
        return map_method(self, method, X, *rows, **options)

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

    # Inspection --------------------------------------------------------------

    def _validate_X(self, X, y=None):
        """Return ``X`` (and ``y``) validated and ready for the backend."""
        return validate_predict_data(self, X, y)

    def _route(self, log_weights):
        self._check_top_k(log_weights.shape[1])
        return route_log_weights(log_weights, routing=self.routing, top_k=self.top_k)

    def _resolved_train_routing(self, *, in_memory=True):
        """Return how a fit trains for its routing: "soft", "refit" or "em".

        ``"auto"`` is ``"refit"`` for hard routing on in-memory data (soft
        EM, then the experts refit to the gate's choices: measured in
        benchmarks/README.md, "Hard routing", the only variant whose
        probabilities stay calibrated on data without mixture structure),
        soft EM for hard routing on a Dask array or in ``partial_fit``
        (which cannot refit: they never hold all the rows; "refit" is an
        error there), and truncated EM (``"em"``) for top-k routing,
        started from a soft fit (:func:`~skmoe._start.starts_soft`: soft EM to
        convergence from the start, then truncated EM from there; measured
        in benchmarks/README.md, "Top-k from a soft fit": on classification
        a higher truncated bound on every seed and a test log-loss of 0.45
        against 0.52 from the k-means start, on regression the same within
        the seeds' spread). ``train_routing="em"`` runs truncated EM from
        the start itself, as before.
        """
        if self.routing == "soft":
            return "soft"
        if self.train_routing == "auto":
            if self.routing == "topk":
                return "em"
            return "refit" if in_memory else "soft"
        if self.train_routing == "refit" and not in_memory:
            raise ValueError(
                "train_routing='refit' refits the experts to the gate's choices "
                "on all rows held in memory; a dask array and partial_fit "
                "train by soft EM ('soft', what 'auto' gives hard routing there) "
                "or routed EM ('em')."
            )
        return self.train_routing

    def _em_routing(self):
        """Return the routing of the E-step (soft unless trained by routed EM)."""
        return self.routing if self._resolved_train_routing() == "em" else "soft"

    def _refit_to_routing(self, gate, pool, designs, y_encoded, sample_weight):
        """Refit the experts to the routed gate weights (``"refit"``), gate kept.

        After soft EM, each expert is refitted with the weights that the
        prediction gives it (hard: the rows whose most probable expert it
        is; top-k: its renormalised top-k weight), which depend on x only.
        The experts' probabilities are then those of the rows they will
        predict, not of the rows whose label they explained best.
        """
        if self._resolved_train_routing() != "refit":
            return
        log_gate = gate.log_proba(designs.source)
        xp = get_namespace(log_gate)
        weights = sample_weight[:, None] * xp.exp(self._route(log_gate))
        # An expert the routed gate gives fewer rows' worth (the weights have
        # mean one) than X has columns, plus one, keeps its soft-EM fit: a
        # refit would be underdetermined. All pools keep an expert whose
        # weights are zero.
        enough = xp.sum(weights, axis=0) >= designs.source.shape[1] + 1
        if not bool(xp.any(enough)):
            return
        weights = xp.where(enough[None, :], weights, xp.zeros_like(weights))
        _fit_experts(pool, designs, y_encoded, weights)

    def _check_top_k(self, n_experts):
        """Raise if ``routing="topk"`` asks for more experts than there are.

        ``fit`` checks it too; this catches ``set_params`` on a fitted model.
        """
        if self.routing == "topk" and self.top_k > n_experts:
            raise ValueError(
                f"top_k={self.top_k} is larger than the number of experts "
                f"({n_experts}) of the fitted model; set top_k to at most "
                f"{n_experts}."
            )

    def _routed_log_gate(self, X):
        return self._route(self.gate_.log_proba(X))

    @limits_threads
    def predict_gate(self, X):
        """Return the gate's probability of every expert.

        These are the gating network's soft probabilities (the product of
        the gate probabilities along each root-to-leaf path), before
        routing; ``predict`` combines the experts with the routed weights.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.

        Returns
        -------
        gate : ndarray or tensor of shape (n_samples, n_experts)
            Rows sum to one; columns in expert (leaf) order. A tensor on the
            input's device for a tensor input.
        """
        if is_dask_array(X):
            return self._map_dask("predict_gate", X, n_columns=self.n_experts_)
        Xb = self._validate_X(X)
        return as_input_kind(get_namespace(Xb).exp(self.gate_.log_proba(Xb)), X)

    @limits_threads
    def apply(self, X):
        """Return the index of the most probable expert for every sample.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.

        Returns
        -------
        expert : ndarray or tensor of shape (n_samples,)
            Leaf index in ``[0, n_experts_)``; a tensor for a tensor input.
        """
        if is_dask_array(X):
            return self._map_dask("apply", X, dtype=np.intp)
        Xb = self._validate_X(X)
        return as_input_kind(
            get_namespace(Xb).argmax(self.gate_.log_proba(Xb), axis=1), X
        )

    @limits_threads
    def decision_path(self, X):
        """Return the probability of reaching every node of the gate tree.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.

        Returns
        -------
        reach : ndarray or tensor of shape (n_samples, n_nodes)
            Node ids as in ``gate_`` (breadth first: the root, then each
            level; the leaves last, in expert order). A tensor for a tensor
            input.
        """
        if is_dask_array(X):
            return self._map_dask("decision_path", X, n_columns=self.gate_.n_nodes)
        Xb = self._validate_X(X)
        return as_input_kind(get_namespace(Xb).exp(self.gate_.log_reach(Xb)), X)

    @limits_threads
    def log_likelihood(self, X, y):
        """Return the log-likelihood ``log p(y | x)`` of every sample.

        The routing applies: with ``routing="hard"`` the density is the
        chosen expert's, with ``"topk"`` the renormalised top-k mixture's.
        This is the per-sample access that density estimators call
        ``score_samples``; a conditional density needs ``y``, so it has its
        own name.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.
        y : array-like or torch tensor of shape (n_samples,)
            Targets.

        Returns
        -------
        log_likelihood : ndarray or tensor of shape (n_samples,)
            A tensor on the input's device for a tensor ``X``.
        """
        if is_dask_array(X):
            return self._map_dask("log_likelihood", X, y)
        Xb, y_encoded = self._validate_X_targets(X, y)
        log_lik = self._log_likelihood(self.gate_, self._expert_pool, Xb, y_encoded)
        return as_input_kind(log_lik, X)

    def _validate_X_targets(self, X, y):
        """Return checked ``X`` and encoded ``y``, on ``X``'s device."""
        Xb, y = self._validate_X(X, y)
        y_encoded = self._encode_targets(y, reset=False)
        if not isinstance(Xb, np.ndarray):
            y_encoded = self._target_like(y_encoded, Xb)
        return Xb, y_encoded

    def _routed_log_joint_of(self, gate, pool, X, y_encoded):
        """Return the routed log gate plus the experts' log-likelihoods."""
        log_gate, log_expert = self._log_joint(gate, pool, X, y_encoded)
        return self._route(log_gate) + log_expert

    def _log_likelihood(self, gate, pool, X, y_encoded):
        """Return the model's per-sample log-likelihood (routed gate)."""
        log_joint = self._routed_log_joint_of(gate, pool, X, y_encoded)
        return logsumexp(log_joint, axis=1)

    def _n_parameters(self):
        return self.gate_.n_parameters + self._expert_pool.n_parameters

    def bic(self, X, y):
        """Return the Bayesian information criterion on ``(X, y)``.

        ``-2 * sum log p(y_i | x_i) + n_parameters * log(n_samples)``; lower
        is better. The parameter count covers every gate of the tree and
        every expert; it exists for linear and logistic experts only.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        bic : float
        """
        return self._criteria(self.log_likelihood(X, y))["bic"]

    def aic(self, X, y):
        """Return the Akaike information criterion on ``(X, y)``.

        ``-2 * sum log p(y_i | x_i) + 2 * n_parameters``; lower is better.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        aic : float
        """
        return self._criteria(self.log_likelihood(X, y))["aic"]

    def icl(self, X, y):
        """Return the integrated completed likelihood criterion on ``(X, y)``.

        ``bic(X, y) + 2 * sum_i entropy(r_i)``, with ``r_i`` the posterior
        responsibilities of the experts (under the model's routing); lower
        is better. It adds to the BIC the cost of the experts' overlap, so
        it prefers mixtures whose experts take clearly separated rows
        (Biernacki, Celeux & Govaert 2000).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        icl : float
        """
        # One pass gives both the likelihood and the posterior.
        log_joint = self._routed_log_joint(X, y)
        log_lik = logsumexp(log_joint, axis=1)
        return self._criteria(log_lik, posterior_entropy(log_joint))["icl"]

    def _criteria(self, log_lik, entropy=0.0):
        """Return AIC, BIC and ICL from per-row log-likelihoods (floats)."""
        criteria = information_criteria(
            float(log_lik.sum()), self._n_parameters(), len(log_lik), entropy
        )
        return {name: float(value) for name, value in criteria.items()}

    def _routed_log_joint(self, X, y):
        """Return the routed log gate plus the experts' log-likelihoods (NumPy)."""
        Xb, y_encoded = self._validate_X_targets(X, y)
        return to_numpy(
            self._routed_log_joint_of(self.gate_, self._expert_pool, Xb, y_encoded)
        )

    @limits_threads
    def summary(
        self,
        X,
        y,
        sample_weight=None,
        *,
        method="observed",
        alpha=0.05,
        n_bootstrap=200,
        random_state=None,
        n_jobs=None,
    ):
        """Return standard errors, tests and intervals for every parameter.

        For every gate node and every expert, each coefficient's estimate,
        standard error, z statistic, p-value and confidence interval, the
        regression experts' noise variances, and the model's log-likelihood,
        AIC, BIC and ICL. Gates (and multinomial logistic experts) are
        reported against their first child (class), whose coefficients are
        fixed at 0: a softmax is identifiable only up to that reference.
        Linear and logistic experts only; computed in NumPy float64 on the
        host whatever the backend.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training data (the data the model was fitted to).
        y : array-like of shape (n_samples,)
            The training targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: a row of weight 2 counts as two rows.
        method : {"observed", "sandwich", "bootstrap"}, default="observed"
            ``"observed"``: the inverse of the observed information, the
            exact Hessian of the log-likelihood (Louis' identity) plus the
            Hessian of the fit's penalties. ``"sandwich"``: the robust
            (Huber-White) covariance ``A^-1 B A^-1``, ``B`` the sum of the
            rows' outer products of scores, for misspecified experts.
            ``"bootstrap"``: ``n_bootstrap`` refits on resampled rows, each
            started from this fit and matched to its experts by their
            posteriors; percentile intervals.
        alpha : float, default=0.05
            One minus the intervals' confidence level.
        n_bootstrap : int, default=200
            Refits of ``method="bootstrap"``.
        random_state : int, RandomState instance or None, default=None
            Resampling of ``method="bootstrap"``.
        n_jobs : int, default=None
            Parallel refits of ``method="bootstrap"`` (joblib).

        Returns
        -------
        summary : MixtureSummary
            Prints as a table; its arrays (``coef``, ``std_err``, ``z``,
            ``p_value``, ``ci``, ``covariance``) and ``to_frame()`` (pandas)
            give the numbers.

        Raises
        ------
        TypeError
            For experts other than linear and logistic ones.
        ValueError
            For a model with pruned experts, a singular information matrix,
            or (except ``method="bootstrap"``) a routing other than soft.

        References
        ----------
        .. [1] T. A. Louis, "Finding the observed information matrix when
           using the EM algorithm", JRSS B 44(2), 226-233, 1982.
        """
        if is_dask_array(X) or is_dask_array(y):
            raise TypeError(
                "summary needs the training rows in memory (its information "
                "matrix sums over them in NumPy); pass X.compute() and "
                "y.compute(), or a sample of them."
            )
        return summarize(
            self,
            X,
            y,
            sample_weight,
            method=method,
            alpha=alpha,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
            n_jobs=n_jobs,
        )

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
