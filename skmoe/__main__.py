"""Command line of skmoe: ``python -m skmoe demo``.

The demo fits soft, hard and top-k mixtures of experts next to linear and
gradient-boosting baselines, on data drawn from a known mixture (whose true
model gives the best attainable scores) and on scikit-learn's bundled
diabetes and breast cancer data, then prints one table per task: test score,
mean test log-likelihood and fit time of every model.
"""

import argparse
import sys
import time
from typing import NamedTuple

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import resample
from threadpoolctl import threadpool_limits

from skmoe import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    __version__,
    log_likelihood_scorer,
)
from skmoe.datasets import make_moe_regression

__all__ = ["Result", "demo", "format_table", "main"]

# Rows of the synthetic regression data (train and test together): enough
# that four experts are well identified, small enough for a demo.
_N_SAMPLES = 8000
# --quick: fewer synthetic rows and a subsample of the classification data.
_N_SAMPLES_QUICK = 1000
_N_CLASSIFICATION_QUICK = 300
# Size of the true mixture and of the fitted ones; top-k keeps two experts.
_N_EXPERTS = 4
_TOP_K = 2
# The bundled data sets are small: fewer experts keep each one identifiable.
_N_EXPERTS_SMALL = 3
_TEST_SIZE = 0.25


class Result(NamedTuple):
    """One row of the demo's tables.

    Attributes
    ----------
    dataset : str
        Name of the data set.
    model : str
        Name of the model.
    score : float
        Test R^2 (regression) or test accuracy (classification).
    log_likelihood : float
        Mean per-sample log-likelihood of the test targets.
    fit_time : float or None
        Seconds spent in ``fit``; None for the true model, which is not fitted.
    """

    dataset: str
    model: str
    score: float
    log_likelihood: float
    fit_time: float | None


###############################################################################
# Models


def _mixtures(estimator_class, n_experts, random_state):
    """Return (name, estimator) pairs: a soft, a hard and a top-k mixture."""
    labels = {"soft": "soft", "hard": "hard", "topk": f"top-{_TOP_K}"}
    return [
        (
            f"MoE {label} (K={n_experts})",
            estimator_class(
                n_experts=n_experts,
                routing=routing,
                top_k=_TOP_K,
                random_state=random_state,
            ),
        )
        for routing, label in labels.items()
    ]


def _task_models(mixture_class, linear_class, boosting_class, n_experts, random_state):
    """Return one task's models of the demo, each after a StandardScaler.

    The mixtures come first, then the linear and gradient-boosting baselines.
    """
    models = [
        *_mixtures(mixture_class, n_experts, random_state),
        (linear_class.__name__, linear_class()),
        ("HistGradientBoosting", boosting_class(random_state=random_state)),
    ]
    return [(name, make_pipeline(StandardScaler(), model)) for name, model in models]


def _regressors(n_experts, random_state):
    """Return the regression models of the demo, each after a StandardScaler."""
    return _task_models(
        MixtureOfExpertsRegressor,
        LinearRegression,
        HistGradientBoostingRegressor,
        n_experts,
        random_state,
    )


def _classifiers(n_experts, random_state):
    """Return the classification models of the demo, each after a StandardScaler."""
    return _task_models(
        MixtureOfExpertsClassifier,
        LogisticRegression,
        HistGradientBoostingClassifier,
        n_experts,
        random_state,
    )


###############################################################################
# Scores


def _timed_fit(model, X, y):
    """Fit ``model`` and return the seconds it took."""
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def _gaussian_log_likelihood(y, mean, variance):
    """Return the mean log density of ``y`` under ``N(mean, variance)``."""
    return float(
        np.mean(-0.5 * (np.log(2 * np.pi * variance) + (y - mean) ** 2 / variance))
    )


def _regression_log_likelihood(model, X_train, y_train, X_test, y_test):
    """Return the mean test log-likelihood of a fitted regression pipeline.

    A mixture has its own predictive density. A point predictor is given a
    Gaussian around its prediction with the variance of its training
    residuals.
    """
    if isinstance(model[-1], MixtureOfExpertsRegressor):
        return log_likelihood_scorer(model, X_test, y_test)
    variance = np.mean((y_train - model.predict(X_train)) ** 2)
    return _gaussian_log_likelihood(y_test, model.predict(X_test), variance)


def _class_log_likelihood(model, X, y):
    """Return the mean log-probability a classifier gives the true class."""
    proba = model.predict_proba(X)
    columns = np.searchsorted(model.classes_, y)
    return float(np.mean(np.log(proba[np.arange(len(y)), columns])))


###############################################################################
# Experiments


def _split(X, y, random_state, *, stratify=False):
    """Return a seeded train / test split."""
    return train_test_split(
        X,
        y,
        test_size=_TEST_SIZE,
        random_state=random_state,
        stratify=y if stratify else None,
    )


def _evaluate_regressors(dataset, models, X_train, X_test, y_train, y_test):
    """Fit and score every regression model; return one Result each."""
    results = []
    for name, model in models:
        fit_time = _timed_fit(model, X_train, y_train)
        log_likelihood = _regression_log_likelihood(
            model, X_train, y_train, X_test, y_test
        )
        score = r2_score(y_test, model.predict(X_test))
        results.append(Result(dataset, name, score, log_likelihood, fit_time))
    return results


def _synthetic_regression(*, n_samples, random_state):
    """Fit the regressors on data drawn from a known mixture of 4 experts.

    The true model comes first: its scores are the best attainable ones.
    """
    X, y, truth = make_moe_regression(
        n_samples=n_samples,
        n_features=5,
        n_experts=_N_EXPERTS,
        random_state=random_state,
        return_truth=True,
    )
    X_train, X_test, y_train, y_test = _split(X, y, random_state)
    dataset = f"moe-synthetic (n={n_samples})"
    true_model = Result(
        dataset,
        f"true mixture (K={_N_EXPERTS})",
        r2_score(y_test, truth.predict(X_test)),
        float(np.mean(truth.log_likelihood(X_test, y_test))),
        None,
    )
    models = _regressors(_N_EXPERTS, random_state)
    return [
        true_model,
        *_evaluate_regressors(dataset, models, X_train, X_test, y_train, y_test),
    ]


def _diabetes_regression(*, random_state):
    """Fit the regressors on scikit-learn's diabetes data."""
    X, y = load_diabetes(return_X_y=True)
    models = _regressors(_N_EXPERTS_SMALL, random_state)
    dataset = f"diabetes (n={len(y)})"
    return _evaluate_regressors(dataset, models, *_split(X, y, random_state))


def _breast_cancer_classification(*, n_samples, random_state):
    """Fit the classifiers on scikit-learn's breast cancer data.

    ``n_samples`` rows are drawn, stratified, when it is not None.
    """
    X, y = load_breast_cancer(return_X_y=True)
    if n_samples is not None:
        X, y = resample(
            X,
            y,
            n_samples=n_samples,
            replace=False,
            stratify=y,
            random_state=random_state,
        )
    dataset = f"breast_cancer (n={len(y)})"
    X_train, X_test, y_train, y_test = _split(X, y, random_state, stratify=True)
    results = []
    for name, model in _classifiers(_N_EXPERTS_SMALL, random_state):
        fit_time = _timed_fit(model, X_train, y_train)
        score = accuracy_score(y_test, model.predict(X_test))
        log_likelihood = _class_log_likelihood(model, X_test, y_test)
        results.append(Result(dataset, name, score, log_likelihood, fit_time))
    return results


###############################################################################
# Output


def format_table(results, *, score_name):
    """Return the results as an aligned plain-text table.

    Parameters
    ----------
    results : list of Result
        The rows.
    score_name : str
        Header of the score column, e.g. ``"test R^2"``.

    Returns
    -------
    table : str
        One line per row under a header line, without a final newline.
    """
    header = ("dataset", "model", score_name, "test log-lik", "fit (s)")
    rows = [
        (
            r.dataset,
            r.model,
            f"{r.score:.3f}",
            f"{r.log_likelihood:.3f}",
            "-" if r.fit_time is None else f"{r.fit_time:.2f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        text = [cell.ljust(w) for cell, w in zip(cells[:2], widths[:2], strict=True)]
        text += [cell.rjust(w) for cell, w in zip(cells[2:], widths[2:], strict=True)]
        return "  ".join(text)

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, rows)])


def _run_experiments(quick, random_state, file):
    """Fit and score every model; print each table when it is complete."""
    regression = _synthetic_regression(
        n_samples=_N_SAMPLES_QUICK if quick else _N_SAMPLES,
        random_state=random_state,
    )
    regression += _diabetes_regression(random_state=random_state)
    print(format_table(regression, score_name="test R^2"), end="\n\n", file=file)

    classification = _breast_cancer_classification(
        n_samples=_N_CLASSIFICATION_QUICK if quick else None,
        random_state=random_state,
    )
    print(format_table(classification, score_name="accuracy"), end="\n\n", file=file)
    return regression, classification


def demo(*, quick=False, random_state=0, n_threads=1, file=None):
    """Run the demo: fit every model, print two tables and return their rows.

    Parameters
    ----------
    quick : bool, default=False
        Use 1,000 rather than 8,000 synthetic rows and 300 of the 569 breast
        cancer rows: a smoke test that runs in seconds.
    random_state : int, default=0
        Seed of the data, the splits and every model.
    n_threads : int or None, default=1
        BLAS and OpenMP threads of the fits; None leaves the libraries'
        defaults. The fits are small, so extra threads gain little, and on a
        busy machine they can wait on each other for tens of seconds.
    file : file-like, default=None
        Where to print; None means ``sys.stdout``.

    Returns
    -------
    regression : list of Result
        Rows of the regression table: R^2 and Gaussian log-likelihood.
    classification : list of Result
        Rows of the classification table: accuracy and log-likelihood.
    """
    file = sys.stdout if file is None else file
    print(
        f"skmoe {__version__} demo (random_state={random_state}, "
        f"threads={n_threads or 'default'})\n",
        file=file,
    )
    with threadpool_limits(limits=n_threads):
        regression, classification = _run_experiments(quick, random_state, file)
    print(
        "test log-lik: mean log p(y | x) over the test rows (greater is better).\n"
        "LinearRegression and HistGradientBoosting get a Gaussian with the "
        "variance of\ntheir training residuals; a hard mixture's density is "
        "its chosen expert's alone.",
        file=file,
    )
    return regression, classification


###############################################################################
# Command line


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m skmoe",
        description="Mixture-of-experts estimators for scikit-learn.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", metavar="command")
    demo_parser = commands.add_parser(
        "demo",
        help="compare soft, hard and top-k mixtures with baselines",
        description=(
            "Fit soft, hard and top-k mixtures of experts next to linear and "
            "gradient-boosting baselines and print test scores, test "
            "log-likelihoods and fit times."
        ),
    )
    demo_parser.add_argument(
        "--quick", action="store_true", help="smaller data: a smoke test in seconds"
    )
    demo_parser.add_argument(
        "--seed", type=int, default=0, help="seed of data and models (default: 0)"
    )
    demo_parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads of the fits; 0 for the libraries' default "
        "(default: 1)",
    )
    return parser


def main(argv=None):
    """Run the command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None means ``sys.argv[1:]``.

    Returns
    -------
    status : int
        Exit status, 0 on success.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(
            quick=args.quick,
            random_state=args.seed,
            n_threads=args.threads or None,
        )
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
