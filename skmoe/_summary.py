"""The table that ``summary`` returns: estimates, standard errors, tests.

Display only: the numbers come from :mod:`skmoe._inference`.
"""

import numpy as np

__all__ = ["MixtureSummary"]


class MixtureSummary:
    """Coefficients of every gate and expert with standard errors and tests.

    Returned by the ``summary`` method of the mixture-of-experts estimators;
    not meant to be built by hand. Rows are the free parameters: for every
    gate node, the log-odds of each child against the node's first child
    (one coefficient per gate feature and an intercept); for every expert,
    its coefficients (and, for a regressor, its noise variance). Printing
    it gives a statsmodels-like text table.

    Parameters
    ----------
    block : list of str
        The gate or expert each row belongs to.
    term : list of str
        The feature (or ``"intercept"``, ``"variance"``) of each row.
    coef : ndarray of shape (n_parameters,)
        Estimates.
    covariance : ndarray of shape (n_parameters, n_parameters)
        Their estimated covariance.
    ci : ndarray of shape (n_parameters, 2)
        Confidence intervals.
    statistics : dict
        Model-level numbers: ``log_likelihood``, ``aic``, ``bic``, ``icl``,
        ``n_samples``, ``n_parameters``.
    method : str
        How the covariance was estimated.
    alpha : float
        One minus the intervals' confidence level.
    notes : list of str
        Lines printed under the table (parametrisation, penalties).
    title : str
        First line of the printed table.

    Attributes
    ----------
    std_err : ndarray of shape (n_parameters,)
        Standard errors, the square roots of the covariance's diagonal.
    z : ndarray of shape (n_parameters,)
        ``coef / std_err`` (NaN for variances, which are not tested
        against 0).
    p_value : ndarray of shape (n_parameters,)
        Two-sided p-values of ``z`` under the standard normal.
    log_likelihood, aic, bic, icl : float
        Of the model on the data given to ``summary``.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.datasets import make_moe_regression
    >>> X, y = make_moe_regression(
    ...     n_samples=300, n_features=2, n_experts=2, random_state=0
    ... )
    >>> model = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> table = model.summary(X, y)
    >>> table.coef.shape == table.std_err.shape
    True
    """

    def __init__(
        self,
        block,
        term,
        coef,
        covariance,
        ci,
        statistics,
        method,
        alpha,
        notes,
        title,
    ):
        from scipy.stats import norm

        self.block = list(block)
        self.term = list(term)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.covariance = np.asarray(covariance, dtype=np.float64)
        self.std_err = np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))
        tested = np.array([t != "variance" for t in self.term])
        with np.errstate(divide="ignore", invalid="ignore"):
            self.z = np.where(tested, self.coef / self.std_err, np.nan)
        self.p_value = 2.0 * norm.sf(np.abs(self.z))
        self.ci = np.asarray(ci, dtype=np.float64)
        self.statistics = dict(statistics)
        for name in ("log_likelihood", "aic", "bic", "icl"):
            setattr(self, name, self.statistics[name])
        self.method = method
        self.alpha = alpha
        self.notes = list(notes)
        self.title = title

    def to_frame(self):
        """Return the table as a pandas DataFrame (pandas is optional).

        Returns
        -------
        frame : pandas.DataFrame
            Indexed by (block, term); columns ``coef``, ``std_err``, ``z``,
            ``p_value``, ``ci_lower``, ``ci_upper``.
        """
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError(
                "to_frame needs pandas (pip install pandas); the table's "
                "arrays (coef, std_err, z, p_value, ci) need nothing."
            ) from error
        index = pd.MultiIndex.from_arrays(
            [self.block, self.term], names=["block", "term"]
        )
        return pd.DataFrame(
            {
                "coef": self.coef,
                "std_err": self.std_err,
                "z": self.z,
                "p_value": self.p_value,
                "ci_lower": self.ci[:, 0],
                "ci_upper": self.ci[:, 1],
            },
            index=index,
        )

    def __str__(self):
        width = 78
        stats = self.statistics
        level = 1.0 - self.alpha
        lines = [self.title.center(width), "=" * width]
        lines.append(
            f"Log-likelihood: {stats['log_likelihood']:.4f}    "
            f"Rows: {stats['n_samples']:g}    Parameters: {stats['n_parameters']}"
        )
        lines.append(
            f"AIC: {stats['aic']:.4f}    BIC: {stats['bic']:.4f}    "
            f"ICL: {stats['icl']:.4f}"
        )
        lines.append(f"Covariance: {self.method}")
        term_width = max(12, *(len(t) for t in self.term)) if self.term else 12
        term_width = min(term_width, 24)
        low, high = f"[{self.alpha / 2:.3g}", f"{1 - self.alpha / 2:.3g}]"
        header = (
            f"{'':<{term_width}} {'coef':>10} {'std err':>10} {'z':>8} "
            f"{'P>|z|':>7} {low:>10} {high:>10}"
        )
        current = None
        for i, (block, term) in enumerate(zip(self.block, self.term, strict=True)):
            if block != current:
                lines.extend(["=" * width, block, header, "-" * width])
                current = block
            z = "" if np.isnan(self.z[i]) else f"{self.z[i]:.3f}"
            p = "" if np.isnan(self.p_value[i]) else f"{self.p_value[i]:.3f}"
            lines.append(
                f"{term[:term_width]:<{term_width}} {self.coef[i]:>10.4g} "
                f"{self.std_err[i]:>10.4g} {z:>8} {p:>7} "
                f"{self.ci[i, 0]:>10.4g} {self.ci[i, 1]:>10.4g}"
            )
        lines.append("=" * width)
        lines.append(f"Intervals: {level:.0%} confidence.")
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self):
        return self.__str__()
