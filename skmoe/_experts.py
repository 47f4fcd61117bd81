"""Expert pools: the experts of a mixture and their weighted M-step.

An expert pool holds all K experts of a mixture and answers three questions
for the EM loop: the log-likelihood of every expert at every sample
(``log p_k(y_i | x_i)``, an (n, K) array), a refit given per-expert sample
weights (the M-step), and the experts' predictions for the combination.

* :class:`LinearGaussianExperts` fits K linear experts at once: every
  expert's weighted Gram matrix from one pass over the data, then a batched
  solve (docs/design.md §6). It serves ``LinearRegression`` and ``Ridge``.
* :class:`LogisticExperts` fits K multinomial logistic experts at once with
  the batched softmax-regression Newton solver that also fits the gates.
  It serves ``LogisticRegression`` with an L2 (or no) penalty.
* :class:`GenericRegressionExperts` and :class:`GenericClassificationExperts`
  hold cloned scikit-learn estimators refit with ``sample_weight``, in
  parallel through joblib when asked.

Regression experts carry a Gaussian noise variance each, estimated as a MAP
value under a weak inverse-gamma prior (``reg_variance`` pseudo-samples at
the data's variance), which keeps it away from zero when an expert
interpolates a few points; :class:`GaussianNoise` holds that state and its
rules for both regression pools.

Each vectorized pool owns its maths for every source of rows: the
statistics of a block (``block_statistics``), its update from their sums
(``solve_sums``) or from running averages (``running_statistics``,
``update_from_running``); the EM loops call these, never asking which pool
they hold.
"""

import numbers

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from skmoe._backend import (
    add_intercept,
    asarray_like,
    batched_solve,
    device,
    get_namespace,
    numpy_dtype,
    reduce_sum,
    to_device,
    to_numpy,
)
from skmoe._softmax import (
    newton_quadratic,
    one_hot,
    quadratic_maximiser,
    softmax_log_proba,
    softmax_newton_step,
    softmax_statistics,
)

__all__ = [
    "GaussianNoise",
    "GenericClassificationExperts",
    "GenericRegressionExperts",
    "LinearGaussianExperts",
    "LogisticExperts",
    "count_expert_parameters",
    "floor_variance",
    "gaussian_log_likelihood",
    "map_variance",
    "noise_variance_map",
    "supports_vectorized_linear",
    "supports_vectorized_logistic",
    "weighted_squared_residuals",
]

# Probabilities of classifier experts are floored here (then renormalised):
# a class an expert never saw must not make the likelihood zero.
PROBA_FLOOR = 1e-10
# Below this total responsibility an expert is not refit (it keeps its
# parameters): a weighted fit on (almost) no mass is undefined.
MIN_EXPERT_WEIGHT = 1e-8
# Newton iterations of a fresh fit of the logistic experts (a start, the
# refit to the routing; EM's M-step takes ``em_newton_steps``): Newton
# converges in a few steps, and the fit is then the weighted MLE, as with a
# refit scikit-learn estimator. An expert whose rows are separable has no
# finite MLE (its unpenalised intercept diverges, as with
# LogisticRegression); the cap bounds the work spent on it.
_LOGISTIC_MAX_NEWTON = 10
_LOGISTIC_GAIN_TOL = 1e-12


def floor_proba(proba):
    """Floor class probabilities at ``PROBA_FLOOR`` and renormalise the last axis."""
    xp = get_namespace(proba)
    proba = xp.maximum(proba, PROBA_FLOOR)
    return proba / reduce_sum(proba, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------
# Gaussian noise model
# ---------------------------------------------------------------------------


def gaussian_log_likelihood(y, means, variance):
    """Return ``log N(y_i; means[i, k], variance[k])``, shape (n, K)."""
    xp = get_namespace(means)
    residual = y[:, None] - means
    return -0.5 * (
        xp.log(2.0 * xp.pi * variance)[None, :] + residual**2 / variance[None, :]
    )


def noise_variance_map(y, means, weights, *, reg_variance, prior_variance):
    """Return each expert's MAP noise variance.

    The weighted mean squared residual, shrunk towards ``prior_variance`` by
    ``reg_variance`` pseudo-samples: the mode of an inverse-gamma posterior.

    Parameters
    ----------
    y : array of shape (n_samples,)
    means : array of shape (n_samples, n_experts)
    weights : array of shape (n_samples, n_experts)
    reg_variance : float
        Prior strength, in samples.
    prior_variance : float
        Prior guess of the variance (the data's variance).

    Returns
    -------
    variance : array of shape (n_experts,)
    """
    xp = get_namespace(means)
    return map_variance(
        weighted_squared_residuals(y, means, weights),
        xp.sum(weights, axis=0),
        reg_variance=reg_variance,
        prior_variance=prior_variance,
    )


def weighted_squared_residuals(y, means, weights):
    """Return ``sum_i weights[i, k] (y_i - means[i, k])^2``, shape (n_experts,)."""
    xp = get_namespace(means)
    return xp.sum(weights * (y[:, None] - means) ** 2, axis=0)


def map_variance(ssr, mass, *, reg_variance, prior_variance):
    """Return the MAP noise variances from weighted sums of squared residuals.

    The mode of the inverse-gamma posterior: ``ssr`` shrunk towards
    ``prior_variance`` by ``reg_variance`` pseudo-samples, floored by
    :func:`floor_variance`. Every path that updates a noise variance (whole
    arrays, summed blocks, running statistics) ends here.

    Parameters
    ----------
    ssr : array of shape (n_experts,)
        Weighted sums of squared residuals.
    mass : array of shape (n_experts,)
        Total weight of each expert.
    reg_variance, prior_variance : float
        As in :func:`noise_variance_map`.

    Returns
    -------
    variance : array of shape (n_experts,)
    """
    variance = (ssr + reg_variance * prior_variance) / (mass + reg_variance)
    return floor_variance(variance, prior_variance)


def floor_variance(variance, prior_variance):
    """Return ``variance`` floored at the rounding error of the target's scale.

    An expert that fits its rows exactly (a piecewise-constant target) has
    a zero residual; without a prior (``reg_variance=0``) its variance
    would be zero and its log-likelihood NaN. The floor, ``eps *
    prior_variance`` in the variance's precision (``prior_variance`` is the
    target's variance, itself floored), is below any residual the data can
    resolve, so it changes no fit that has a variance to estimate.
    """
    xp = get_namespace(variance)
    floor = float(np.finfo(numpy_dtype(variance.dtype)).eps) * prior_variance
    return xp.where(variance > floor, variance, xp.full_like(variance, floor))


def gaussian_log_prior(variance, *, reg_variance, prior_variance):
    """Return the log of the variance prior (up to a constant), summed."""
    xp = get_namespace(variance)
    return float(
        -0.5 * reg_variance * xp.sum(xp.log(variance) + prior_variance / variance)
    )


class GaussianNoise:
    """The Gaussian noise of regression experts: its state and its rules.

    A mixin for regression pools (vectorized linear and generic experts):
    a variance per expert (``variance_``), its inverse-gamma prior
    (``reg_variance`` pseudo-samples at ``prior_variance``), the MAP update
    from weighted sums of squared residuals, the log-prior and the
    log-likelihood. The one place that holds them, whatever path (whole
    arrays, fused chunks, Dask blocks, running statistics) computed the
    sums.
    """

    def _init_noise(self, *, reg_variance, prior_variance):
        self.reg_variance = reg_variance
        self.prior_variance = prior_variance
        self.variance_ = np.full(self.n_experts, prior_variance)

    def update_variance(self, ssr, mass, refit=None):
        """Set the noise variances from weighted sums of squared residuals.

        The MAP value of :func:`map_variance`. Only the experts in ``refit``
        (default: those whose ``mass`` exceeds ``MIN_EXPERT_WEIGHT``) are
        updated; the others keep theirs.
        """
        variance = map_variance(
            ssr,
            mass,
            reg_variance=self.reg_variance,
            prior_variance=self.prior_variance,
        )
        if refit is None:
            refit = mass > MIN_EXPERT_WEIGHT
        self.variance_[refit] = variance[refit]

    def log_prior(self):
        """Return the log-prior of the noise variances."""
        return gaussian_log_prior(
            self.variance_,
            reg_variance=self.reg_variance,
            prior_variance=self.prior_variance,
        )


# ---------------------------------------------------------------------------
# Vectorized linear-Gaussian experts
# ---------------------------------------------------------------------------


def supports_vectorized_linear(estimator):
    """Return whether ``estimator`` can be fitted by :class:`LinearGaussianExperts`."""
    if estimator is None:
        return True
    if type(estimator) is LinearRegression:
        return not estimator.positive
    if type(estimator) is Ridge:
        return not estimator.positive and isinstance(estimator.alpha, numbers.Real)
    return False


class _ExpertPool:
    """What every expert pool shares: where its arrays live.

    The EM loop moves a pool's parameter arrays (``_arrays``) to the fit's
    device with :meth:`map_arrays`, and back to NumPy once fitted, so that
    a fitted model holds NumPy arrays only. Pools that ``runs_on_host`` fit
    on the CPU with NumPy whatever the backend.
    """

    _arrays = ()
    runs_on_host = False
    # Which chunked source runs an EM iteration of the pool on NumPy rows:
    # "linear" (``_fused``), "logistic" (``_fused_logistic``), or None
    # (whole arrays).
    fused_kind = None
    # The likelihood of the pool's parameter vector for standard errors
    # (``_inference``): "gaussian", "logistic", or None where the experts
    # have no parameter vector of ours.
    parameter_kind = None
    # Newton steps of an EM iteration's M-step, for pools fitted by Newton's
    # method (``max_steps`` of their ``m_step``); None where the M-step is
    # exact (closed form, or the experts' own ``fit``).
    em_newton_steps = None

    def gram_design(self, designs):
        """Return the design whose Gram matrices the M-step takes, or None.

        None (the default): the pool computes what it needs itself (each
        logistic Newton step needs Gram matrices of its own; scikit-learn
        experts fit from the data).
        """
        return None

    def solve_sums(self, statistics, mass):
        """Return None: no closed-form update from summed statistics.

        Pools that have one (:class:`LinearGaussianExperts`) override it.
        """
        return None

    def target_shift(self, offset):
        """Return the shift of regression targets in stepwise EM: 0 (none)."""
        return 0.0

    def map_arrays(self, function):
        """Replace every parameter array by ``function`` of it."""
        for name in self._arrays:
            if getattr(self, name) is not None:
                setattr(self, name, function(getattr(self, name)))
        return self


class LinearGaussianExperts(GaussianNoise, _ExpertPool):
    """K linear experts with Gaussian noise, fitted together.

    The family's maths, whatever the source of rows: the statistics of a
    block (weighted Gram matrices, moments, sums of squares;
    :meth:`block_statistics`), the coefficients from summed or averaged
    statistics (:meth:`solve`), the weighted squared residuals at new
    coefficients, from a pass over rows (:meth:`block_squared_residuals`)
    or from sums (:meth:`expanded_squared_residuals`), then the noise
    variances (:class:`GaussianNoise`).

    Parameters
    ----------
    template : LinearRegression or Ridge
        Expert template; its ``fit_intercept`` and ``alpha`` are honoured.
    n_experts : int
    reg_variance, prior_variance : float
        Variance prior (see :func:`noise_variance_map`).
    """

    # An EM iteration of these experts on NumPy rows is one pass over
    # cache-sized chunks (``_fused``).
    fused_kind = "linear"
    parameter_kind = "gaussian"

    def __init__(self, template, n_experts, *, reg_variance, prior_variance):
        self.template = template
        self.n_experts = n_experts
        self.fit_intercept = template.fit_intercept
        self.alpha = float(getattr(template, "alpha", 0.0))
        self._init_noise(reg_variance=reg_variance, prior_variance=prior_variance)
        self.coef_ = None
        self.intercept_ = None

    _arrays = ("coef_", "intercept_", "variance_")

    @staticmethod
    def _means(X, coef, intercept):
        return X @ coef.T + intercept[None, :]

    def predict(self, X):
        """Return every expert's prediction, shape (n_samples, n_experts)."""
        coef, intercept = asarray_like(self.coef_, X), asarray_like(self.intercept_, X)
        return self._means(X, coef, intercept)

    def log_likelihood(self, X, y):
        """Return ``log p_k(y_i | x_i)``, shape (n_samples, n_experts)."""
        means = self.predict(X)
        return gaussian_log_likelihood(y, means, asarray_like(self.variance_, means))

    def gram_design(self, designs):
        """Return the design whose weighted Gram matrices the M-step needs."""
        return designs.get(intercept=self.fit_intercept)

    def m_step(self, designs, y, weights, *, gram=None):
        """Refit every expert by weighted least squares, then its variance.

        ``gram``, when given, holds the Gram matrices of ``weights`` on
        :meth:`gram_design`, computed in a pass over X shared with the gate.
        Returns the refitted experts' log-likelihood on the training rows
        (what the next E-step needs), from the predictions the variance
        update already made.
        """
        design = self.gram_design(designs)
        if gram is None:
            gram = design.gram(weights)
        xp = get_namespace(weights)
        mass = xp.sum(weights, axis=0)
        self.solve(gram, self.moment(design, y, weights), mass)
        means = self.predict(designs.source)
        self.update_variance(weighted_squared_residuals(y, means, weights), mass)
        return gaussian_log_likelihood(y, means, self.variance_)

    @staticmethod
    def moment(design, y, weights):
        """Return ``X.T @ (weights[:, k] * y)`` for every expert, shape (K, p)."""
        return (design.X.T @ (weights * y[:, None])).T

    def block_statistics(self, designs, y, weights, *, gram=None):
        """Return the sums the M-step needs from a block of rows.

        Parameters
        ----------
        designs : DesignCache
            The block's designs.
        y : array of shape (n_rows,)
        weights : array of shape (n_rows, n_experts)
            Each expert's weights on the block (responsibilities times
            sample weights).
        gram : array of shape (n_experts, p, p), default=None
            The Gram matrices of ``weights`` on :meth:`gram_design`, when a
            pass shared with the gate computed them.

        Returns
        -------
        statistics : dict
            ``gram`` (K, p, p), ``moment`` (K, p) and ``squares`` (K,), the
            weighted sum of ``y ** 2``.
        """
        design = self.gram_design(designs)
        if gram is None:
            gram = design.gram(weights)
        return {
            "gram": gram,
            "moment": self.moment(design, y, weights),
            "squares": weights.T @ (y * y),
        }

    def solve(self, gram, moment, mass):
        """Set the coefficients from weighted Gram matrices and moments.

        The statistics may come from one array (the M-step), be summed over
        blocks of rows (a Dask fit) or averaged over mini-batches (stepwise
        EM): the solution is the weighted (ridge) least squares of their
        rows. Experts whose ``mass`` is below ``MIN_EXPERT_WEIGHT`` keep
        their coefficients.

        Parameters
        ----------
        gram : array of shape (K, p, p)
            Weighted Gram matrices of the design (intercept column last).
        moment : array of shape (K, p)
        mass : array of shape (K,)
            Total weight of each expert.
        """
        xp = get_namespace(gram)
        p = gram.shape[-1]
        n_features = p - int(self.fit_intercept)
        penalty = xp.full((p,), self.alpha, dtype=gram.dtype, device=device(gram))
        if self.fit_intercept:
            penalty[-1] = 0.0
        gram = gram + penalty[None, :, None] * xp.eye(
            p, dtype=gram.dtype, device=device(gram)
        )
        solution = batched_solve(gram, moment)
        refit = mass > MIN_EXPERT_WEIGHT
        if self.coef_ is None:
            shape = (self.n_experts, n_features)
            self.coef_ = xp.zeros(shape, dtype=moment.dtype, device=device(gram))
            self.intercept_ = xp.zeros(
                shape[:1], dtype=moment.dtype, device=device(gram)
            )
            self.variance_ = asarray_like(self.variance_, moment)
        self.coef_[refit] = solution[refit, :n_features]
        if self.fit_intercept:
            self.intercept_[refit] = solution[refit, n_features]

    def solve_sums(self, statistics, mass):
        """Set the coefficients from :meth:`block_statistics` summed over blocks.

        Returns ``(coef, intercept)``, at which the M-step's next pass
        computes the squared residuals (:meth:`block_squared_residuals`)
        for :meth:`update_variance`.
        """
        self.solve(statistics["gram"], statistics["moment"], mass)
        return self.coef_, self.intercept_

    def block_squared_residuals(self, X, y, weights, coef):
        """Return each expert's weighted squared residuals on a block of rows.

        ``coef`` is ``(coef, intercept)``, the coefficients of
        :meth:`solve_sums` (the pool may still hold those of the E-step).
        """
        return weighted_squared_residuals(y, self._means(X, *coef), weights)

    def design_coef(self, coef=None, intercept=None):
        """Return a copy of the coefficients on the design, (K, p).

        The intercepts are the last column when the design has a row of
        ones. Default: the pool's own.
        """
        coef = self.coef_ if coef is None else coef
        if not self.fit_intercept:
            return np.array(coef)
        intercept = self.intercept_ if intercept is None else intercept
        return np.concatenate([coef, intercept[:, None]], axis=1)

    @staticmethod
    def expanded_squared_residuals(squares, moment, gram, step):
        """Return weighted squared residuals at shifted coefficients, from sums.

        With ``e`` the residuals at some coefficients ``b`` and ``d`` the
        shift to new ones (both on the design), ``sum W (e - x d)^2 = sum W
        e^2 - 2 d.(sum W e x) + d' G d``: ``squares`` is ``sum W e^2``,
        ``moment`` ``sum W e x`` and ``gram`` G, per expert. Around ``b =
        0`` (``e = y``) they are the running statistics of stepwise EM;
        around the E-step's coefficients, sums of the fused pass whose terms
        are of the size of residuals, so that nothing cancels. Floored at 0
        (rounding).
        """
        ssr = (
            squares
            - 2.0 * np.einsum("kp,kp->k", step, moment)
            + np.einsum("kp,kpq,kq->k", step, gram, step)
        )
        return np.maximum(ssr, 0.0)

    def target_shift(self, offset):
        """Return the shift of the targets the running statistics are kept at.

        ``offset`` (the first batch's mean) when the experts have an
        intercept, which then absorbs it: the same model on ``y - offset``
        keeps the running sums of squares from cancelling. 0 otherwise.
        """
        return offset if self.fit_intercept else 0.0

    def running_statistics(self, statistics, weight):
        """Return a block's statistics per unit weight, for stepwise EM."""
        return {
            name: statistics[name] / weight for name in ("gram", "moment", "squares")
        }

    def update_from_running(self, statistics, mass, total):
        """Set the experts to the maximiser of running statistics (stepwise EM).

        ``statistics`` are averages of :meth:`running_statistics` and
        ``total`` the weight they stand for: the update is exact.
        """
        gram, moment = total * statistics["gram"], total * statistics["moment"]
        self.solve(gram, moment, mass)
        ssr = self.expanded_squared_residuals(
            total * statistics["squares"], moment, gram, self.design_coef()
        )
        self.update_variance(ssr, mass)

    @property
    def n_parameters(self):
        """Coefficients, intercepts and variances of all experts."""
        return self.n_experts * (self.coef_.shape[1] + self.fit_intercept + 1)

    def to_estimators(self, n_features_in):
        """Return the experts as fitted scikit-learn estimators."""
        experts = []
        for k in range(self.n_experts):
            expert = clone(self.template)
            expert.coef_ = np.array(self.coef_[k])
            expert.intercept_ = float(self.intercept_[k])
            expert.n_features_in_ = n_features_in
            experts.append(expert)
        return experts


# ---------------------------------------------------------------------------
# Vectorized multinomial logistic experts
# ---------------------------------------------------------------------------


def _label_log_proba(log_proba, y_index):
    """Return the floored ``log P_k(y_i | x_i)`` from softmax log-probabilities.

    ``log_proba`` of shape (n_samples, n_experts, n_classes); the
    probabilities are floored as :meth:`LogisticExperts.predict_proba`'s.
    """
    xp = get_namespace(log_proba)
    proba = floor_proba(xp.exp(log_proba))
    rows = xp.arange(log_proba.shape[0], device=device(log_proba))
    return xp.log(proba[rows, :, to_device(y_index, log_proba)])


def supports_vectorized_logistic(estimator):
    """Return whether ``estimator`` can be fitted by :class:`LogisticExperts`."""
    if estimator is None:
        return True
    if type(estimator) is not LogisticRegression:
        return False
    return (
        estimator.fit_intercept
        and estimator.class_weight is None
        and estimator.solver != "liblinear"
        and estimator.penalty in ("deprecated", "l2", None)
        and not estimator.l1_ratio
    )


class LogisticExperts(_ExpertPool):
    """K multinomial logistic experts, fitted together.

    The M-step improves the experts' weighted, L2-penalised softmax
    regressions by batched, line-searched Newton steps
    (:meth:`newton_steps`): one step per EM iteration
    (``em_newton_steps``) on every source of rows (whole arrays, NumPy or
    torch; summed statistics, the NumPy fast path and Dask), to
    convergence where experts are fitted afresh (the starts, the refit to
    the routing), with the penalty of
    ``LogisticRegression``: ``||W||^2 / (2 C)`` on the coefficients of a
    multinomial model and ``||w||^2 / (2 C)`` on the single coefficient
    vector of a binary one (a symmetric softmax with twice the strength).

    Parameters
    ----------
    template : LogisticRegression
        Expert template; its ``C`` and ``penalty`` are honoured.
    n_experts : int
    classes : ndarray of shape (n_classes,)
        The mixture's class labels.
    """

    fused_kind = "logistic"
    parameter_kind = "logistic"

    def __init__(self, template, n_experts, classes):
        self.template = template
        self.n_experts = n_experts
        self.classes = classes
        n_classes = classes.shape[0]
        if template.penalty is None or np.isinf(template.C):
            self.alpha = 0.0
        else:
            self.alpha = (2.0 if n_classes == 2 else 1.0) / template.C
        self.coef_ = None

    _arrays = ("coef_",)
    # One line-searched Newton step per EM iteration is a generalised EM
    # step (the objective still never decreases); measured against steps to
    # convergence it reaches the same objective in as many iterations at
    # less than half the cost, on summed statistics and on whole arrays
    # (benchmarks/README.md, "Classifier speed (issue 16)").
    em_newton_steps = 1

    def predict_proba(self, X):
        """Return P_k(c | x), shape (n_samples, n_experts, n_classes)."""
        xp = get_namespace(X)
        coef = asarray_like(self.coef_, X)
        return floor_proba(xp.exp(softmax_log_proba(add_intercept(X), coef)))

    def log_likelihood(self, X, y_index):
        """Return ``log P_k(y_i | x_i)`` for class indices ``y_index``."""
        coef = asarray_like(self.coef_, X)
        return _label_log_proba(softmax_log_proba(add_intercept(X), coef), y_index)

    def m_step(self, designs, y_index, weights, *, max_steps=None):
        """Improve every expert given its weights, by :meth:`newton_steps`.

        Each step from the statistics of the whole arrays
        (:func:`~skmoe._softmax.softmax_newton_step`), at most
        ``max_steps`` (None: to convergence, as a fresh expert's fit needs;
        an EM iteration takes ``em_newton_steps``). Returns the new
        experts' log-likelihood on the training rows.
        """
        X = designs.source
        xp = get_namespace(X)
        design = designs.get(intercept=True)
        n_classes = self.classes.shape[0]
        if self.coef_ is None:
            self.coef_ = xp.zeros(
                (self.n_experts, design.X.shape[1], n_classes),
                dtype=X.dtype,
                device=device(X),
            )
        targets = xp.take(
            xp.eye(n_classes, dtype=X.dtype, device=device(X)), y_index, axis=0
        )[:, None, :]
        refit = xp.sum(weights, axis=0) > MIN_EXPERT_WEIGHT
        refit_weights = weights[:, refit]

        found = {}

        def take_step(coef, log_proba, last):
            coef, gain, found["log_proba"] = softmax_newton_step(
                design,
                coef,
                targets,
                refit_weights,
                alpha=self.alpha,
                log_proba=log_proba,
            )
            return coef, gain, found["log_proba"]

        self.coef_[refit] = self.newton_steps(
            take_step, self.coef_[refit], float(xp.sum(weights)), max_steps=max_steps
        )
        if not bool(xp.all(refit)):
            return self.log_likelihood(X, y_index)
        # The last step's log-probabilities are those of the new
        # coefficients: the log-likelihood needs no pass of its own.
        return _label_log_proba(found["log_proba"], y_index)

    def block_statistics(self, designs, y_index, weights, *, gram=None, coef=None):
        """Return the experts' Newton statistics on a block of rows (NumPy).

        At ``coef`` (default: the experts' own), for the responsibilities in
        ``weights``: ``fit`` (K,), ``gradient`` (K, p, n_classes) and
        ``gram``, the Gram matrices of the curvature weights. ``gram`` is
        unused: the curvature's Gram matrices depend on the coefficients.
        """
        coef = self.coef_ if coef is None else coef
        design = designs.get(intercept=True)
        targets = one_hot(y_index, coef.shape[2], designs.source.dtype)
        fit, gradient, V = softmax_statistics(design.X, coef, targets, weights)
        return {"fit": fit, "gradient": gradient, "gram": design.gram(V)}

    def running_statistics(self, statistics, weight):
        """Return a block's Newton model per unit weight, for stepwise EM."""
        return newton_quadratic(self.coef_, statistics, weight)

    def update_from_running(self, statistics, mass, total):
        """Set the experts to the maximiser of the running Newton models."""
        refit = mass > MIN_EXPERT_WEIGHT
        coef = quadratic_maximiser(statistics, total, self.alpha, self.coef_.dtype)
        self.coef_[refit] = coef[refit]

    def newton_steps(self, take_step, coef, total_weight, *, max_steps=None):
        """Return the coefficients of the experts' M-step rule.

        Line-searched Newton steps on the experts' weighted, penalised
        softmax regressions (:func:`~skmoe._softmax.line_search`: the
        objective never decreases), at most ``max_steps``, until no refit
        expert gains more than ``_LOGISTIC_GAIN_TOL`` per unit of weight.
        Wherever the statistics are summed (whole arrays, chunks, blocks),
        EM takes its logistic experts' M-step here: ``em_newton_steps``
        steps, and to convergence for a fresh fit.

        Parameters
        ----------
        take_step : callable
            ``take_step(coef, state, last)`` takes one step from ``coef``
            and returns ``(coef, gain, state)``, ``gain`` the increase of
            every refit expert's objective; ``state`` is what the caller
            keeps between steps (None at the first), ``last`` says whether
            no other step follows.
        coef : array of shape (n, p, n_classes)
        total_weight : float
            The sum of the experts' weights.
        max_steps : int, default=None
            At most this many steps (None: ``_LOGISTIC_MAX_NEWTON``).
        """
        xp = get_namespace(coef)
        max_steps = _LOGISTIC_MAX_NEWTON if max_steps is None else max_steps
        state = None
        for n_steps in range(1, max_steps + 1):
            coef, gain, state = take_step(coef, state, n_steps == max_steps)
            largest_gain = float(xp.max(gain)) if gain.shape[0] else 0.0
            if max(largest_gain, 0.0) <= _LOGISTIC_GAIN_TOL * (1.0 + total_weight):
                break
        return coef

    def log_prior(self):
        """Return the log of the coefficients' Gaussian prior (the L2 penalty)."""
        xp = get_namespace(self.coef_)
        return -0.5 * self.alpha * float(xp.sum(self.coef_[:, :-1, :] ** 2))

    @property
    def n_parameters(self):
        """``(n_classes - 1) * (n_features + 1)`` per expert."""
        n_experts, p, n_classes = self.coef_.shape
        return n_experts * (n_classes - 1) * p

    def to_estimators(self, n_features_in):
        """Return the experts as fitted ``LogisticRegression`` estimators."""
        experts = []
        for k in range(self.n_experts):
            expert = clone(self.template)
            coef = np.asarray(self.coef_[k])
            if self.classes.shape[0] == 2:
                expert.coef_ = (coef[:-1, 1] - coef[:-1, 0])[None, :]
                expert.intercept_ = np.array([coef[-1, 1] - coef[-1, 0]])
            else:
                expert.coef_ = coef[:-1, :].T.copy()
                expert.intercept_ = coef[-1, :].copy()
            expert.classes_ = self.classes
            expert.n_features_in_ = n_features_in
            expert.n_iter_ = np.array([0], dtype=np.int32)
            experts.append(expert)
        return experts


# ---------------------------------------------------------------------------
# Generic scikit-learn experts
# ---------------------------------------------------------------------------


def _fit_one(estimator, X, y, weight, *, keep_all_rows):
    """Fit ``estimator`` with ``sample_weight``; zero-weight rows are dropped.

    Dropping them is exact (a zero weight means "absent") and makes hard
    routing cost one fit on each expert's own rows. ``keep_all_rows`` keeps
    them where dropping would leave a classifier a single class.
    """
    if not keep_all_rows:
        rows = weight > 0
        X, y, weight = X[rows], y[rows], weight[rows]
    return estimator.fit(X, y, sample_weight=weight)


def _checked_output(expert, output):
    """Return a generic expert's predictions, refusing NaN or infinity.

    A NaN from one expert would spread through the E-step to every
    probability and log-likelihood of the mixture, silently.
    """
    output = np.asarray(output)
    if not np.all(np.isfinite(output)):
        method = "predict_proba" if output.ndim == 2 else "predict"
        raise ValueError(
            f"The expert {type(expert).__name__} returned NaN or infinite "
            f"values from {method}; a mixture of experts needs finite "
            "predictions from every expert."
        )
    return output


class _GenericExperts(_ExpertPool):
    """Cloned scikit-learn experts refit with responsibilities as weights.

    They run on the CPU with NumPy whatever the backend: device arrays are
    copied to NumPy on the way in (X once per fit, through
    ``DesignCache.host``) and results copied back on the way out.
    """

    runs_on_host = True

    def __init__(self, estimators, *, n_jobs=None):
        self.estimators = estimators
        self.n_experts = len(estimators)
        self.n_jobs = n_jobs
        self.fitted = np.zeros(self.n_experts, dtype=bool)

    def _keep_all_rows(self, y, weight):
        return False

    def _fit_experts(self, X, y, weights):
        mass = weights.sum(axis=0)
        refit = [
            k
            for k in range(self.n_experts)
            if mass[k] > MIN_EXPERT_WEIGHT or not self.fitted[k]
        ]
        # An expert never fitted and given no rows (a pruned expert in a
        # split-and-merge move's start) is fitted to all rows alike: a
        # placeholder, as its gate probability is zero, where a fit on no
        # rows would fail. (A copy only then: this runs every M-step.)
        starved = ~(mass > MIN_EXPERT_WEIGHT) & ~np.asarray(self.fitted)
        if np.any(starved):
            weights = weights.copy()
            weights[:, starved] = 1.0
        # Threads by default: the experts' fits release the GIL in their
        # numerical cores and share X without copies; a joblib backend set
        # by the user (processes, Dask) takes precedence.
        fitted = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(_fit_one)(
                self.estimators[k],
                X,
                y,
                weights[:, k],
                keep_all_rows=self._keep_all_rows(y, weights[:, k]),
            )
            for k in refit
        )
        for k, estimator in zip(refit, fitted, strict=True):
            self.estimators[k] = estimator
            self.fitted[k] = True
        return refit

    @property
    def n_parameters(self):
        return sum(count_expert_parameters(e) for e in self.estimators)

    def to_estimators(self, n_features_in):
        return list(self.estimators)


class GenericRegressionExperts(GaussianNoise, _GenericExperts):
    """Generic regressors with a Gaussian noise variance each."""

    def __init__(self, estimators, *, reg_variance, prior_variance, n_jobs=None):
        super().__init__(estimators, n_jobs=n_jobs)
        self._init_noise(reg_variance=reg_variance, prior_variance=prior_variance)

    def _predict(self, X):
        return np.stack(
            [_checked_output(e, e.predict(X)) for e in self.estimators], axis=1
        ).astype(X.dtype, copy=False)

    def predict(self, X):
        """Return every expert's prediction, shape (n_samples, n_experts)."""
        return to_device(self._predict(to_numpy(X)), X)

    def log_likelihood(self, X, y):
        """Return ``log p_k(y_i | x_i)``, shape (n_samples, n_experts)."""
        means = self._predict(to_numpy(X))
        return to_device(gaussian_log_likelihood(to_numpy(y), means, self.variance_), X)

    def m_step(self, designs, y, weights):
        """Refit every expert with its weights, then its noise variance.

        Returns the refitted experts' log-likelihood on the training rows.
        """
        X, y, weights = designs.host(), to_numpy(y), to_numpy(weights)
        refit = self._fit_experts(X, y, weights)
        self.variance_ = self.variance_.astype(X.dtype, copy=False)
        means = self._predict(X)
        self.update_variance(
            weighted_squared_residuals(y, means, weights),
            np.sum(weights, axis=0),
            refit=refit,
        )
        log_likelihood = gaussian_log_likelihood(y, means, self.variance_)
        return to_device(log_likelihood, designs.source)

    @property
    def n_parameters(self):
        return super().n_parameters + self.n_experts


class GenericClassificationExperts(_GenericExperts):
    """Generic probabilistic classifiers, aligned to the mixture's classes."""

    def __init__(self, estimators, classes, *, n_jobs=None):
        super().__init__(estimators, n_jobs=n_jobs)
        self.classes = classes

    def _keep_all_rows(self, y, weight):
        return np.unique(y[weight > 0]).shape[0] < 2

    def predict_proba(self, X):
        """Return P_k(c | x), shape (n_samples, n_experts, n_classes).

        Columns follow the mixture's ``classes``; classes an expert did not
        see get the floor probability, and rows are renormalised.
        """
        return to_device(self._predict_proba(to_numpy(X)), X)

    def _predict_proba(self, X):
        proba = np.zeros(
            (X.shape[0], self.n_experts, self.classes.shape[0]), dtype=X.dtype
        )
        for k, expert in enumerate(self.estimators):
            columns = np.searchsorted(self.classes, expert.classes_)
            proba[:, k, columns] = _checked_output(expert, expert.predict_proba(X))
        return floor_proba(proba)

    def log_likelihood(self, X, y_index):
        """Return ``log P_k(y_i | x_i)`` for class indices ``y_index``."""
        return to_device(self._log_likelihood(to_numpy(X), to_numpy(y_index)), X)

    def _log_likelihood(self, X, y_index):
        proba = self._predict_proba(X)
        return np.log(proba[np.arange(X.shape[0]), :, y_index])

    def m_step(self, designs, y_index, weights):
        """Refit every expert with its weights, on the original labels.

        The EM loop works with class indices; the experts are fitted on the
        labels themselves so that ``experts_`` predict the user's classes.
        Returns the refitted experts' log-likelihood on the training rows.
        """
        X, y_index = designs.host(), to_numpy(y_index)
        self._fit_experts(X, self.classes[y_index], to_numpy(weights))
        return to_device(self._log_likelihood(X, y_index), designs.source)

    def log_prior(self):
        """Return 0: generic classifiers carry no prior of ours."""
        return 0.0


# ---------------------------------------------------------------------------
# Parameter counts (for BIC / AIC)
# ---------------------------------------------------------------------------


def count_expert_parameters(estimator):
    """Return the number of free parameters of a fitted linear expert.

    Parameters
    ----------
    estimator : fitted estimator
        A linear model (``coef_`` and ``intercept_``).

    Returns
    -------
    n_parameters : int

    Raises
    ------
    TypeError
        If the estimator has no parameter count (not a linear model).
    """
    if not hasattr(estimator, "coef_"):
        raise TypeError(
            f"{type(estimator).__name__} has no parameter count: BIC and AIC "
            "are defined here for linear and logistic experts only."
        )
    coef = np.atleast_2d(estimator.coef_)
    fit_intercept = bool(getattr(estimator, "fit_intercept", True))
    n_intercepts = np.size(getattr(estimator, "intercept_", 0.0)) * fit_intercept
    if isinstance(estimator, LogisticRegression) and coef.shape[0] > 1:
        # Multinomial softmax: one row of coefficients is redundant.
        return (coef.shape[0] - 1) * (coef.shape[1] + fit_intercept)
    return coef.size + n_intercepts
