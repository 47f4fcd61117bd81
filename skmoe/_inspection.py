"""What a fitted mixture tells about itself: its gate, likelihood and criteria.

:class:`InspectionMixin` gives the estimators the methods that read a fitted
model without refitting it: the gate's probabilities and choices
(``predict_gate``, ``apply``, ``decision_path``), the routed
log-likelihood of labelled rows (``log_likelihood``), the information
criteria (``aic``, ``bic``, ``icl``) and the table of standard errors
(``summary``, computed by :mod:`skmoe._inference`). Every method takes
NumPy, torch or Dask input, as prediction does.
"""

import copy
import warnings
from functools import partial

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from skmoe._backend import (
    as_input_kind,
    get_namespace,
    logsumexp,
    target_like,
    tensor_to_numpy,
    to_numpy,
)
from skmoe._dask import is_dask_array, map_method
from skmoe._inference import (
    FittedMixture,
    check_summary_support,
    information_criteria,
    posterior_entropy,
    summarize,
)
from skmoe._routing import route_log_weights, routed_log_joint
from skmoe._threads import limits_threads
from skmoe._validation import check_dask_features, validate_predict_data

__all__ = ["InspectionMixin"]


class InspectionMixin:
    """The inspection methods of a fitted mixture of experts.

    A mixin of :class:`~skmoe._base.BaseMixtureOfExperts`: it reads the
    fitted ``gate_`` and expert pool, the ``routing`` and ``top_k``
    parameters, and the estimator's target encoding.
    """

    def _validate_X(self, X, y=None):
        """Return ``X`` (and ``y``) validated and ready for the backend."""
        return validate_predict_data(self, X, y)

    def _map_dask(self, method, X, *rows, **options):
        """Apply a prediction method block by block to a dask array ``X``."""
        check_is_fitted(self)
        check_dask_features(self, X, reset=False)
        return map_method(self, method, X, *rows, **options)

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
        """Return the fitted gate's log-probabilities of ``X``, routed."""
        self._check_top_k(self.gate_.n_leaves)
        return route_log_weights(
            self.gate_.log_proba(X), routing=self.routing, top_k=self.top_k
        )

    def _from_gate(self, X, method, transform, **dask_options):
        """Return ``transform(Xb)`` for a validated ``X``, as the input's kind.

        A dask ``X`` is mapped block by block (``method`` on each block).
        """
        if is_dask_array(X):
            return self._map_dask(method, X, **dask_options)
        Xb = self._validate_X(X)
        return as_input_kind(transform(Xb), X)

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
        return self._from_gate(
            X,
            "predict_gate",
            lambda Xb: get_namespace(Xb).exp(self.gate_.log_proba(Xb)),
            n_columns=self.n_experts_,
        )

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
        return self._from_gate(
            X,
            "apply",
            lambda Xb: get_namespace(Xb).argmax(self.gate_.log_proba(Xb), axis=1),
            dtype=np.intp,
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
        return self._from_gate(
            X,
            "decision_path",
            lambda Xb: get_namespace(Xb).exp(self.gate_.log_reach(Xb)),
            n_columns=self.gate_.n_nodes,
        )

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
        log_lik = logsumexp(self._log_joint(Xb, y_encoded), axis=1)
        return as_input_kind(log_lik, X)

    def _validate_X_targets(self, X, y):
        """Return checked ``X`` and encoded ``y``, on ``X``'s device."""
        Xb, y = self._validate_X(X, y)
        y_encoded = self._encode_targets(y, reset=False)
        if not isinstance(Xb, np.ndarray):
            y_encoded = target_like(y_encoded, Xb)
        return Xb, y_encoded

    def _log_joint(self, Xb, y_encoded):
        """Return the fitted model's routed log joint of validated rows."""
        self._check_top_k(self.gate_.n_leaves)
        return routed_log_joint(
            self.gate_,
            self._expert_pool,
            Xb,
            y_encoded,
            routing=self.routing,
            top_k=self.top_k,
        )

    def _routed_log_joint(self, X, y):
        """Return the routed log gate plus the experts' log-likelihoods (NumPy)."""
        return to_numpy(self._log_joint(*self._validate_X_targets(X, y)))

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
        n_parameters = self.gate_.n_parameters + self._expert_pool.n_parameters
        criteria = information_criteria(
            float(log_lik.sum()), n_parameters, len(log_lik), entropy
        )
        return {name: float(value) for name, value in criteria.items()}

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
        check_is_fitted(self)
        mixture = self._fitted_mixture()
        check_summary_support(mixture, method, alpha)
        X, y, y_encoded, sample_weight, log_joint = self._summary_rows(
            X, y, sample_weight
        )
        return summarize(
            mixture,
            X,
            y_encoded,
            sample_weight,
            log_joint,
            method=method,
            alpha=alpha,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
            n_jobs=n_jobs,
            refit=partial(self._refit_from_here, X, y),
        )

    def _fitted_mixture(self):
        """Return the fitted mixture as :mod:`skmoe._inference` reads it."""
        return FittedMixture(
            gate=self.gate_,
            pool=self._expert_pool,
            gate_alpha=self.gate_alpha,
            tol=self.tol,
            routing=self.routing,
            classes=self.classes_ if self._is_classifier() else None,
            feature_names_in=getattr(self, "feature_names_in_", None),
            expert_description=self._expert_description(),
            estimator_name=type(self).__name__,
        )

    def _summary_rows(self, X, y, sample_weight):
        """Return ``summary``'s rows in NumPy float64 and their routed log joint.

        ``(X, y, y_encoded, sample_weight, log_joint)``: ``y`` as validated
        (a refit takes it), ``y_encoded`` as the likelihood takes it.
        """
        # The model's own routed likelihood, on the data as given (their
        # feature names checked against the fit's).
        log_joint = self._routed_log_joint(X, y)
        X, y = validate_data(
            self,
            tensor_to_numpy(X),
            tensor_to_numpy(y),
            reset=False,
            dtype=np.float64,
            y_numeric=not self._is_classifier(),
        )
        sample_weight = _check_sample_weight(
            tensor_to_numpy(sample_weight),
            X,
            dtype=np.float64,
            ensure_non_negative=True,
        )
        y_encoded = self._encode_targets(y, reset=False)
        if not self._is_classifier():
            y_encoded = np.asarray(y_encoded, dtype=np.float64)
        return X, y, y_encoded, sample_weight, log_joint

    def _refit_from_here(self, X, y, sample_weight):
        """Return the fitted mixture of a copy refitted from this fit.

        ``summary``'s bootstrap refit: the copy starts from this fit's
        parameters (``warm_start``) on rows weighted by resampled counts;
        its warnings are the bootstrap's to ignore.
        """
        refit = copy.deepcopy(self)
        refit.set_params(warm_start=True, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            refit.fit(X, y, sample_weight=sample_weight)
        return refit._fitted_mixture()
