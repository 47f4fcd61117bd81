"""The public estimators: MixtureOfExpertsRegressor and MixtureOfExpertsClassifier."""

from numbers import Real

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.utils._param_validation import Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets

from skmoe._backend import (
    as_input_kind,
    asarray_like,
    einsum,
    get_namespace,
    logsumexp,
    reduce_sum,
    to_numpy,
)
from skmoe._base import BaseMixtureOfExperts
from skmoe._dask import is_dask_array
from skmoe._experts import (
    GenericClassificationExperts,
    GenericRegressionExperts,
    LinearGaussianExperts,
    LogisticExperts,
    supports_vectorized_linear,
    supports_vectorized_logistic,
)
from skmoe._threads import limits_threads

__all__ = ["MixtureOfExpertsClassifier", "MixtureOfExpertsRegressor"]

# The variance prior is centred on the target's variance; a constant target
# has none, and a floor keeps the noise variance positive: this absolute
# value, or the rounding error of a target far from zero (a few ulps of its
# mean) when larger. A floor relative to mean**2 itself would swamp a target
# such as 1e8 + O(1), whose rounding error is 1e-8 (tests/RELIABILITY.md).
_MIN_PRIOR_VARIANCE = 1e-12
_ROUNDING_ULPS = 16

_SHARED_PARAMETERS = """
    n_experts : int, default=None
        Number of experts of a flat mixture. None means 3 experts, or the
        number of leaves of ``hierarchy`` when it is given (an explicit value
        must then equal that number).

    hierarchy : tuple of int, default=None
        Branching factors of a tree of gates (a hierarchical mixture of
        experts, Jordan & Jacobs 1994): ``(2, 2)`` is a binary tree of depth
        2 with 4 experts. ``(K,)`` is the flat mixture of K experts; ``(1,)``
        is one expert, as ``n_experts=1``. Every factor of a deeper tree must
        be at least 2 (a gate with a single child is refused). None means a
        flat mixture of ``n_experts``.

    routing : {"soft", "hard", "topk"}, default="soft"
        How the gate combines the experts at prediction. ``"soft"`` weights
        every expert by its gate probability; ``"hard"`` uses only the most
        probable expert of each input; ``"topk"`` keeps the ``top_k`` most
        probable experts and renormalises their weights. How a hard or
        top-k mixture is trained is ``train_routing``'s choice.

    top_k : int, default=2
        Number of experts kept by ``routing="topk"``; at most the number of
        experts (checked by ``fit``, and at prediction after ``set_params``).

    train_routing : {"auto", "refit", "soft", "em"}, default="auto"
        How a hard or top-k mixture is trained (ignored for soft routing):

        - ``"refit"``: soft EM, then every expert refitted once to the
          weights the routed gate gives it (hard: the training rows whose
          most probable expert it is), the gate kept. Each expert is then
          fitted to the rows it predicts, whatever their labels.
        - ``"soft"``: soft EM; the routing applies at prediction only.
        - ``"em"``: EM with the routing in the E-step: classification EM
          for hard routing, truncated top-k posteriors for top-k.
          Classification EM gives each training row to the expert that
          explains its own target best, so on rows the gate cannot tell
          apart the experts split along the noise and their probabilities
          are overconfident.
        - ``"auto"``: ``"refit"`` for hard routing (``"soft"`` on a dask
          array and in ``partial_fit``, which cannot refit), ``"em"`` for
          top-k routing, started from a soft fit: soft EM to convergence,
          then truncated EM from that fit (``"em"`` itself starts from the
          k-means partition). The choices measured best in
          ``benchmarks/README.md`` ("Hard routing", "Top-k from a soft
          fit"). The soft fit that starts top-k's EM is not in the
          histories: they record the truncated EM, whose objective (the
          bound over the top-k experts) is another one.

    gate_features : array-like of int, str or bool, default=None
        Columns the gate sees: indices, feature names or a boolean mask.
        Repeats are dropped and the columns taken in ``X``'s order (indices
        and names alike). None means every column. The experts always see
        every column.

    gate_alpha : float, default=0.01
        L2 penalty on the gates' coefficients of standardized features:
        ``gate_alpha / 2`` times the sum of ``(s_j * beta_j) ** 2``, with
        ``s_j`` the weighted standard deviation of gate feature ``j`` on the
        training rows (``gate_.penalty_scale``; a constant feature gets its
        magnitude) and the intercepts unpenalised, against the
        log-likelihood summed over the rows. The fit thus does not depend on
        the units of the features, as with a StandardScaler in front. It
        keeps the gate weights finite once the experts separate the data;
        larger values blur sharp boundaries between experts (measured on
        piecewise-linear data with jumps in ``benchmarks/README.md``, "The
        gate's penalty"). The scales are those of the start's rows:
        ``fit``'s, or the first ``partial_fit`` batches';
        ``warm_start`` and later ``partial_fit`` calls keep them. The
        experts' own penalties (``Ridge``'s ``alpha``,
        ``LogisticRegression``'s ``C``) act on raw coefficients, as in
        scikit-learn.
"""

_SHARED_FIT_PARAMETERS = """
    init_params : {"kmeans", "random", "random_from_data", "screen"}, \
            default="screen"
        How each initialisation starts: a partition of the rows, smoothed
        into responsibilities (a tree starts from the flat mixture with as
        many experts, fitted from that partition).

        - ``"kmeans"``: k-means on the standardized ``[X, y]`` (the target
          weighted as much as all features together). Every restart after
          the first clusters a resampled view of the data (random row
          weights and column scales), so that restarts land in different
          basins; ``n_init=1`` is plain k-means.
        - ``"random"``: every row to a uniformly random expert (flexmix's
          start): each expert starts near the global fit and EM breaks the
          symmetry; it finds optima k-means misses (crossing regression
          curves), but more often needs several restarts.
        - ``"random_from_data"``: every row to the nearest of ``n_experts``
          randomly chosen rows of ``[X, y]``.
        - ``"screen"``: 4 candidate starts of mixed kinds (k-means, random,
          nearest-row partitions; for a classifier also the leaves of a
          small decision tree of ``y`` on ``X`` and resampled k-means), 10
          EM iterations from each (30 for a classifier, at most
          ``max_iter``), and EM continues from the best to convergence
          (Biernacki, Celeux & Govaert 2003). About 2-3 times the cost of
          one k-means start (``benchmarks/README.md``, "Starts").

        ``init_starts_`` names the start every restart used. ``partial_fit``
        and dask arrays start in memory (on the first rows, on a sample)
        with the same options.

    n_init : int, default=1
        Number of initialisations; the fit with the best penalised
        log-likelihood is kept. With ``init_params="screen"`` each of them
        screens its own candidates.

    split_merge : int, default=2
        Number of split-and-merge moves tried after EM (Ueda, Nakano,
        Ghahramani & Hinton 2000); 0 turns it off. A move merges the two
        experts whose posteriors overlap most and splits the expert that
        fits its rows worst (the largest mean negative log-likelihood on
        them) into the freed expert, its rows divided by the sign of its
        residual; with two experts, it splits both and swaps a half of
        each. EM runs from every move's start, and the first move that
        raises the penalised objective by more than ``tol`` is kept; moves
        are then ranked again from the new model, until none of
        ``split_merge`` moves improves (at most ``n_experts`` accepted
        moves). The objective never decreases: a move that does not raise
        it is thrown away, its EM run stopped once it cannot (a fraction
        of a fit; the cost on a problem the start already solves is
        measured in ``benchmarks/README.md``, "Split-and-merge"). After an
        accepted move, ``objective_history_`` continues with the accepted
        run's iterations above the model it replaced, ``n_iter_`` counts
        the iterations in the history and ``converged_`` is the last
        accepted run's. Applied to every
        initialisation (one that reached ``max_iter`` too; each move's run
        has ``max_iter`` iterations), not to a ``warm_start`` continuation
        (which continues the fitted model as it is). Ignored for dask
        arrays and by ``partial_fit`` (their EM keeps no responsibilities
        to move). The classifier's default is 5, the regressor's 2: on a
        gated 3-class classifier 5 moves reached the best known optimum
        from more than twice as many seeds as 2 moves, at less than twice
        the cost, where a regressor's screen already finds it
        (``benchmarks/README.md``, "Search").

    max_iter : int, default=100
        Maximum number of EM iterations per initialisation.

    tol : float, default=1e-4
        EM stops when the mean per-sample penalised log-likelihood changes by
        less than ``tol``.

    backend : {"numpy", "torch"}, default="numpy"
        Array library of the numerics. ``"torch"`` (the ``torch`` extra:
        ``pip install "skmoe[torch]"``) runs the E-step, every gate of the
        tree, the routing and the vectorized linear and logistic experts on
        ``device``, in the input's precision (float32 or float64). Generic
        scikit-learn experts still run on the CPU with NumPy: their inputs
        and outputs are copied every EM iteration, with a warning once per
        fit. The k-means start runs on the CPU. ``X`` may be a NumPy array
        or a torch tensor on any device, with either backend (the numpy
        backend copies a tensor to NumPy); prediction methods compute where
        ``backend`` and ``device`` say and return arrays of the input's
        kind: a tensor on the input's device for a tensor, NumPy otherwise.
        Fitted attributes are NumPy arrays whatever the backend, so a model
        fitted on a GPU pickles, loads without torch and predicts with
        either backend.

    device : str, torch.device or None, default=None
        Where ``backend="torch"`` computes: ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, a ``torch.device``. None means ``"cuda"`` when a CUDA
        device is available, else ``"cpu"``. The numpy backend accepts only
        None or ``"cpu"``.

    n_jobs : int, default=None
        Number of joblib jobs for two things: the ``n_init`` restarts of
        ``fit``, run in parallel, and, inside every EM iteration, the fits
        of generic scikit-learn experts. Threads, unless a joblib backend is
        configured (``joblib.parallel_config``, e.g. Dask's). None means 1;
        -1 means all CPUs. It does not set the threads of the numerical
        libraries: with vectorized experts (linear, ridge, logistic, the
        defaults) and up to 400 features, ``fit``, ``partial_fit`` and the
        prediction methods run with one BLAS, one OpenMP and, for
        ``backend="torch"`` on the CPU, one torch thread, set for the call
        and restored after (their products are too thin for threads to
        pay, and threads waiting on busy cores made a fit several times
        slower); generic experts and wider designs use the libraries'
        threads as set outside the call (e.g. by
        ``threadpoolctl.threadpool_limits``).

    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation.

    warm_start : bool, default=False
        Continue from the previous fit (one initialisation), rather than
        start afresh. A continued fit cannot change ``n_experts``,
        ``hierarchy``, ``gate_features`` or ``estimator`` (the gates are
        sized by them and the experts are the fitted ones): it raises a
        ``ValueError`` (a new but equal ``estimator`` is accepted). It
        honours ``routing``, ``top_k``, ``gate_alpha``, ``reg_variance``,
        ``max_iter`` and ``tol``. The new data must have the fitted
        features (and classes). ``partial_fit`` after ``fit`` follows the
        same rules.

    verbose : int, default=0
        0 prints nothing. 1 prints a line per initialisation when it ends
        (iterations, convergence, log-likelihood, objective, seconds) and a
        closing line for the fit (the initialisation kept, its objective and
        iterations, the total time), and a line per split-and-merge move
        tried (its objective, accepted or rejected). 2 adds a line per EM iteration (the
        log-likelihood and the objective's change), including the runs that
        build a tree's start (``candidate start``).
"""

_SHARED_ATTRIBUTES = """
    experts_ : list of estimators
        The fitted experts, in leaf order.

    gate_ : GateTree
        The fitted tree of softmax gates (``gate_.coef``, ``gate_.parent``,
        ``gate_.node_coef(node)``, ``gate_.describe()``;
        ``gate_.penalty_scale``, the feature scales of ``gate_alpha``).

    hierarchy_ : tuple of int
        The tree of gates that was fitted (``(n_experts,)`` when flat).

    n_experts_ : int
        Number of experts.

    n_iter_ : int
        Number of EM iterations of the kept initialisation. A tree's start
        (a fitted flat mixture and short runs that place its experts at the
        leaves) is not counted. After an accepted split-and-merge move
        (``split_merge``), the iterations in ``objective_history_``: those
        of the first run, then those of each accepted move's run above the
        model it replaced (rejected moves are not counted).

    n_pruned_experts_ : int
        Number of experts pruned because they starved: an expert whose
        responsibility mass fell below one sample's worth is pruned. One
        ``UserWarning`` per fit names the experts the kept model pruned
        (runs that are thrown away, such as a tree's start-up runs and the
        restarts not kept, do not warn). Its gate probability is zero from then on (the
        others are renormalised) and it takes no part in predictions; it
        stays in ``experts_`` with its last parameters, and ``gate_.pruned``
        marks it. The objective may drop by at most the pruned expert's
        share at the iteration that prunes it.

    converged_ : bool
        Whether the kept initialisation converged (after an accepted
        split-and-merge move, whether the last accepted move's run did).

    log_likelihood_ : float
        Mean (sample-weighted) per-sample log-likelihood of the fitted model
        on the training data, ``mean(log_likelihood(X, y))``. The per-sample
        values on any data (what ``score_samples`` gives for density
        estimators) are ``log_likelihood(X, y)``.

    log_likelihood_history_ : ndarray of shape (n_iter_ + 1,)
        The quantity EM maximises, after the initialisation and after every
        EM iteration: the mean log-likelihood for soft EM (soft routing, and
        hard or top-k routing trained by ``train_routing="refit"`` or
        ``"soft"``: the history of the soft EM, before any refit); for
        ``train_routing="em"`` (and top-k's ``"auto"``), the mean of
        ``log sum_k g_k p_k`` over the experts kept by the truncated E-step
        (the bound that classification EM and top-k EM raise). The EM runs
        of a start are not recorded: a tree's flat fit and placement runs,
        top-k's soft fit; a tree's history starts where its start
        converged.

    log_likelihood_histories_ : list of ndarray
        The same history for every initialisation (``n_init`` of them), in
        the order they ran; the kept one is ``log_likelihood_history_``.

    init_starts_ : list of str
        The start of every initialisation, in the same order: ``"kmeans"``,
        ``"kmeans_resampled"`` (a k-means restart after the first),
        ``"random"``, ``"random_from_data"``, ``"screen:<kind>"`` (the kind
        of the screened candidate kept, one of those or ``"tree_leaves"``),
        or ``"continued"`` for a ``warm_start`` fit.

    objective_history_ : ndarray of shape (n_iter_ + 1,)
        The same with the log-priors (gate penalty, variance prior) added:
        the quantity EM never decreases with linear or logistic experts.
        An accepted split-and-merge move's run starts below the model it
        replaces and climbs above it: only its iterations above that
        model are appended, so the history never decreases there either.

    n_samples_seen_ : int
        Rows seen by ``partial_fit`` (set by it only; ``fit`` removes it, as
        it ends the stepwise learning).

    n_steps_ : int
        Stepwise-EM steps taken by ``partial_fit``, one per call (set by it
        only, removed by ``fit``; the start is refitted once, on the first
        10,000 rows of the stream, whose batches then count as steps). After
        ``partial_fit``, ``log_likelihood_`` is the last batch's mean
        log-likelihood under the model before its step.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X has string column names.
"""


class MixtureOfExpertsRegressor(RegressorMixin, BaseMixtureOfExperts):
    __doc__ = (
        """Mixture-of-experts regressor trained by EM.

    A softmax gating network (optionally a tree of gates) weighs, for every
    input, the predictions of several regression experts, each with its own
    Gaussian noise:

        p(y | x) = sum_k g_k(x) N(y; f_k(x), s_k^2).

    Read more in the README and the teaching notebooks.

    Parameters
    ----------
    estimator : regressor or list of regressors, default=None
        Template of the experts, cloned once per expert; it must accept
        ``sample_weight`` in ``fit``. A list gives one estimator per expert.
        None means ``LinearRegression()``. ``LinearRegression`` and ``Ridge``
        experts are fitted together by a vectorized weighted least squares.
"""
        + _SHARED_PARAMETERS
        + """
    reg_variance : float, default=0.1
        Strength, in pseudo-samples, of the inverse-gamma prior on each
        expert's noise variance (centred on the variance of y). It keeps an
        expert that interpolates a few points from a zero variance. Whatever
        its value (0 too), a variance is never below ``eps * var(y)`` (the
        rounding of the target's scale), so no NaN comes of an exact fit.
"""
        + _SHARED_FIT_PARAMETERS
        + """
    Attributes
    ----------
    noise_variance_ : ndarray of shape (n_experts_,)
        Each expert's Gaussian noise variance.
"""
        + _SHARED_ATTRIBUTES
        + """
    See Also
    --------
    MixtureOfExpertsClassifier : The classification counterpart.
    sklearn.mixture.GaussianMixture : A mixture of densities without inputs.

    References
    ----------
    .. [1] R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton,
       "Adaptive mixtures of local experts", Neural Computation 3(1), 1991.
    .. [2] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 181-214, 1994.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_moe_regression
    >>> X, y = make_moe_regression(n_samples=500, n_experts=2, random_state=0)
    >>> moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> moe.predict(X[:3]).shape
    (3,)
    >>> moe.predict_gate(X[:3]).shape
    (3, 2)
    """
    )

    _parameter_constraints: dict = {
        **BaseMixtureOfExperts._parameter_constraints,
        "reg_variance": [Interval(Real, 0, None, closed="left")],
    }

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
        reg_variance=0.1,
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
        self.reg_variance = reg_variance

    @available_if(BaseMixtureOfExperts._learns_online)
    @_fit_context(prefer_skip_nested_validation=False)
    @limits_threads
    def partial_fit(self, X, y, sample_weight=None):
        """Learn from one mini-batch by stepwise (online) EM.

        The first call fits a start on its batch as ``fit`` does; each call
        then moves running averages of the sufficient statistics towards
        the batch's and re-estimates the model from them (Cappé & Moulines
        2009), so memory does not grow with the rows seen. Available for
        ``LinearRegression`` and ``Ridge`` experts (the default).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A mini-batch of training data.
        y : array-like of shape (n_samples,)
            Its targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Its sample weights; None gives every sample weight one. Every
            batch's weights are divided by one constant, the mean weight of
            the rows the model was first fitted on (by ``fit`` or the first
            ``partial_fit`` calls): weights keep their meaning across
            batches, and multiplying every batch's weights by the same
            constant changes nothing (see ``fit``).

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._partial_fit(X, y, sample_weight)

    # Hooks -------------------------------------------------------------------

    def _default_expert(self):
        return LinearRegression()

    def _check_expert(self, estimator):
        self._check_sample_weight_support(estimator)

    def _supports_vectorized(self, estimator):
        return supports_vectorized_linear(estimator)

    def _encode_targets(self, y, *, reset):
        return y.astype(np.float64 if y.dtype.kind != "f" else y.dtype, copy=False)

    def _init_target_columns(self, y_encoded):
        return y_encoded[:, None]

    def _make_expert_pool(self, estimators, y, sample_weight):
        mean = np.average(y, weights=sample_weight)
        variance = float(np.average((y - mean) ** 2, weights=sample_weight))
        rounding = _ROUNDING_ULPS * np.finfo(y.dtype).eps * abs(mean)
        prior_variance = max(variance, _MIN_PRIOR_VARIANCE, rounding**2)
        template = estimators[0]
        if not isinstance(self.estimator, list) and supports_vectorized_linear(
            template
        ):
            return LinearGaussianExperts(
                template,
                len(estimators),
                reg_variance=self.reg_variance,
                prior_variance=prior_variance,
            )
        return GenericRegressionExperts(
            estimators,
            reg_variance=self.reg_variance,
            prior_variance=prior_variance,
            n_jobs=self.n_jobs,
        )

    def _after_fit(self, pool):
        self.noise_variance_ = np.array(pool.variance_, dtype=np.float64)

    # Prediction --------------------------------------------------------------

    @limits_threads
    def predict(self, X, return_std=False):
        """Predict with the mixture: the gate-weighted mean of the experts.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.
        return_std : bool, default=False
            Also return the predictive standard deviation of the mixture,
            ``sqrt(sum_k g_k (s_k^2 + f_k^2) - mean^2)``.

        Returns
        -------
        y_mean : ndarray or tensor of shape (n_samples,)
            Predicted mean; a tensor on the input's device for a tensor input.
        y_std : ndarray or tensor of shape (n_samples,)
            Predictive standard deviation; only when ``return_std=True``.
        """
        if is_dask_array(X):
            if not return_std:
                return self._map_dask("predict", X)
            return tuple(
                self._map_dask("predict", X, part=part, return_std=True)
                for part in (0, 1)
            )
        Xb = self._validate_X(X)
        xp = get_namespace(Xb)
        weights = xp.exp(self._routed_log_gate(Xb))
        means = self._expert_pool.predict(Xb)
        mean = reduce_sum(weights * means, axis=1)
        if not return_std:
            return as_input_kind(mean, X)
        # Deviations from the mixture mean, not raw second moments: E[f^2] -
        # mean^2 cancels catastrophically when the target is far from zero.
        noise = asarray_like(self._expert_pool.variance_, means)
        variance = reduce_sum(
            weights * (noise[None, :] + (means - mean[:, None]) ** 2), axis=1
        )
        return as_input_kind(mean, X), as_input_kind(xp.sqrt(variance), X)


class MixtureOfExpertsClassifier(ClassifierMixin, BaseMixtureOfExperts):
    __doc__ = (
        """Mixture-of-experts classifier trained by EM.

    A softmax gating network (optionally a tree of gates) weighs, for every
    input, the class probabilities of several probabilistic classifiers:

        P(c | x) = sum_k g_k(x) P_k(c | x).

    Parameters
    ----------
    estimator : classifier or list of classifiers, default=None
        Template of the experts, cloned once per expert; it must accept
        ``sample_weight`` in ``fit`` and have ``predict_proba``. A list gives
        one estimator per expert. None means ``LogisticRegression()``.
        ``LogisticRegression`` experts with an L2 (or no) penalty are fitted
        together by a batched Newton solver.
"""
        + _SHARED_PARAMETERS
        + _SHARED_FIT_PARAMETERS.replace(
            "split_merge : int, default=2", "split_merge : int, default=5"
        )
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
"""
        + _SHARED_ATTRIBUTES
        + """
    See Also
    --------
    MixtureOfExpertsRegressor : The regression counterpart.

    References
    ----------
    .. [1] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 181-214, 1994.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsClassifier
    >>> from skmoe.datasets import make_moe_classification
    >>> X, y = make_moe_classification(n_samples=500, n_experts=2, random_state=0)
    >>> moe = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    >>> moe.predict_proba(X[:3]).shape
    (3, 2)
    """
    )

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
        split_merge=5,
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

    @available_if(BaseMixtureOfExperts._learns_online)
    @_fit_context(prefer_skip_nested_validation=False)
    @limits_threads
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Learn from one mini-batch by stepwise (online) EM.

        The first call fits a start on its batch as ``fit`` does; each call
        then moves running averages of the sufficient statistics towards
        the batch's and re-estimates the model from them (Cappé & Moulines
        2009), so memory does not grow with the rows seen. Available for
        ``LogisticRegression`` experts (the default).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A mini-batch of training data.
        y : array-like of shape (n_samples,)
            Its class labels.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole stream. Required on the first call (a
            batch may miss some classes), optional afterwards.
        sample_weight : array-like of shape (n_samples,), default=None
            Its sample weights; None gives every sample weight one. Every
            batch's weights are divided by one constant, the mean weight of
            the rows the model was first fitted on (by ``fit`` or the first
            ``partial_fit`` calls): weights keep their meaning across
            batches, and multiplying every batch's weights by the same
            constant changes nothing (see ``fit``).

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._partial_fit(X, y, sample_weight, classes=classes)

    def _encode_partial_fit_targets(self, y, classes):
        """Set ``classes_`` from ``classes`` (first call); return y's indices."""
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            check_classification_targets(classes)
            if hasattr(self, "classes_") and not np.array_equal(self.classes_, classes):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call to "
                    f"partial_fit, was: {self.classes_!r}"
                )
            if classes.shape[0] < 2:
                raise ValueError(
                    f"The classifier needs at least 2 classes, got classes={classes!r}."
                )
            self.classes_ = classes
        elif not hasattr(self, "classes_"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._encode_targets(y, reset=False)

    # Hooks -------------------------------------------------------------------

    def _is_classifier(self):
        return True

    def _default_expert(self):
        return LogisticRegression()

    def _check_expert(self, estimator):
        self._check_sample_weight_support(estimator)
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(
                f"{type(estimator).__name__} has no predict_proba; classifier "
                "experts must give class probabilities (for SVC, set "
                "probability=True)."
            )

    def _supports_vectorized(self, estimator):
        return supports_vectorized_logistic(estimator)

    def _encode_targets(self, y, *, reset):
        """Return class indices (the likelihood's column of each sample)."""
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y)
            if self.classes_.shape[0] < 2:
                raise ValueError(
                    "The classifier needs samples of at least 2 classes in the "
                    f"data, but the data contains only one class: "
                    f"{self.classes_[0]!r}."
                )
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, self.classes_.shape[0] - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not seen in fit: {np.unique(y[unknown])!r}."
            )
        return index

    def _init_target_columns(self, y_encoded):
        return np.eye(self.classes_.shape[0])[y_encoded]

    def _make_expert_pool(self, estimators, y_encoded, sample_weight):
        if not isinstance(self.estimator, list) and supports_vectorized_logistic(
            estimators[0]
        ):
            return LogisticExperts(estimators[0], len(estimators), self.classes_)
        return GenericClassificationExperts(
            estimators, self.classes_, n_jobs=self.n_jobs
        )

    # Prediction --------------------------------------------------------------

    @limits_threads
    def predict_proba(self, X):
        """Return the mixture's class probabilities.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.

        Returns
        -------
        proba : ndarray or tensor of shape (n_samples, n_classes)
            Columns follow ``classes_``; a tensor on the input's device for a
            tensor input.
        """
        if is_dask_array(X):
            n_classes = self.classes_.shape[0]
            return self._map_dask("predict_proba", X, n_columns=n_classes)
        return as_input_kind(self._predict_proba(self._validate_X(X)), X)

    @limits_threads
    def predict_log_proba(self, X):
        """Return the log of the mixture's class probabilities.

        Computed in log space, ``logsumexp_k(log g_k(x) + log P_k(c | x))``,
        not as the log of :meth:`predict_proba`: a gate probability that
        underflows in ``predict_proba`` stays finite here. The per-sample
        log-likelihood of the observed labels is :meth:`log_likelihood`.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.

        Returns
        -------
        log_proba : ndarray or tensor of shape (n_samples, n_classes)
            Columns follow ``classes_``; a tensor on the input's device for a
            tensor input.
        """
        if is_dask_array(X):
            n_classes = self.classes_.shape[0]
            return self._map_dask("predict_log_proba", X, n_columns=n_classes)
        Xb = self._validate_X(X)
        xp = get_namespace(Xb)
        log_gate = self._routed_log_gate(Xb)
        # Expert probabilities are floored (never zero): their log is finite.
        log_expert = xp.log(self._expert_pool.predict_proba(Xb))
        return as_input_kind(logsumexp(log_gate[:, :, None] + log_expert, axis=1), X)

    def _predict_proba(self, X):
        """Return the class probabilities of a validated ``X``, on its device."""
        weights = get_namespace(X).exp(self._routed_log_gate(X))
        proba = self._expert_pool.predict_proba(X)
        return einsum("nk,nkc->nc", weights, proba)

    @limits_threads
    def predict(self, X):
        """Return the most probable class of every sample.

        Parameters
        ----------
        X : array-like, torch tensor or dask array of shape \
                (n_samples, n_features)
            Input samples. A dask array gives a lazy dask array, computed
            block by block where Dask holds the blocks.

        Returns
        -------
        y_pred : ndarray or tensor of shape (n_samples,)
            The class of highest mixture probability, from ``classes_``. A
            tensor on the input's device for a tensor input, unless the
            classes are strings (a NumPy array then).
        """
        if is_dask_array(X):
            return self._map_dask("predict", X, dtype=self.classes_.dtype)
        proba = self._predict_proba(self._validate_X(X))
        index = to_numpy(get_namespace(proba).argmax(proba, axis=1))
        return as_input_kind(self.classes_[index], X)
