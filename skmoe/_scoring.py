"""Scorers for model selection: held-out log-likelihood, BIC and ICL.

All follow scikit-learn's scorer protocol ``scorer(estimator, X, y)`` with
greater-is-better values, so they plug into ``GridSearchCV(scoring=...)``.
A ``Pipeline`` ending in a mixture of experts is scored through its final
step, on the data transformed by the steps before it.
"""

from sklearn.pipeline import Pipeline

__all__ = ["bic_scorer", "icl_scorer", "log_likelihood_scorer"]


def _final_step(estimator, X):
    """Return the mixture and X as the mixture sees it."""
    if isinstance(estimator, Pipeline):
        return estimator[-1], estimator[:-1].transform(X)
    return estimator, X


def log_likelihood_scorer(estimator, X, y):
    """Return the mean per-sample log-likelihood of ``y`` given ``X``.

    Parameters
    ----------
    estimator : estimator
        A fitted mixture of experts, or a ``Pipeline`` ending in one.
    X : array-like of shape (n_samples, n_features)
        Input samples (before the pipeline's transforms).
    y : array-like of shape (n_samples,)
        Targets.

    Returns
    -------
    score : float
        Mean ``log p(y | x)``; greater is better.
    """
    moe, Xt = _final_step(estimator, X)
    # .mean() rather than np.mean: a tensor input gives a tensor, maybe on a GPU.
    return float(moe.log_likelihood(Xt, y).mean())


def bic_scorer(estimator, X, y):
    """Return minus the BIC of the model on ``(X, y)`` (greater is better).

    The BIC is computed on the data given: in a cross-validated search, the
    held-out fold, with ``log(n_samples)`` of that fold in the penalty (as
    in scikit-learn's Gaussian-mixture model selection).

    Parameters
    ----------
    estimator : estimator
        A fitted mixture of experts, or a ``Pipeline`` ending in one.
    X : array-like of shape (n_samples, n_features)
        Input samples (before the pipeline's transforms).
    y : array-like of shape (n_samples,)
        Targets.

    Returns
    -------
    score : float
        ``-bic(X, y)``.
    """
    moe, Xt = _final_step(estimator, X)
    return -moe.bic(Xt, y)


def icl_scorer(estimator, X, y):
    """Return minus the ICL of the model on ``(X, y)`` (greater is better).

    The integrated completed likelihood is the BIC plus twice the entropy of
    the experts' posterior responsibilities: it also penalises experts that
    overlap, and so prefers fewer, clearly separated experts (Biernacki,
    Celeux & Govaert 2000). Computed on the data given, as
    :func:`bic_scorer`.

    Parameters
    ----------
    estimator : estimator
        A fitted mixture of experts, or a ``Pipeline`` ending in one.
    X : array-like of shape (n_samples, n_features)
        Input samples (before the pipeline's transforms).
    y : array-like of shape (n_samples,)
        Targets.

    Returns
    -------
    score : float
        ``-icl(X, y)``.
    """
    moe, Xt = _final_step(estimator, X)
    return -moe.icl(Xt, y)
