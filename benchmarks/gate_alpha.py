"""How strong should the gates' default L2 penalty be? (``gate_alpha``)

The gates' penalty acts on standardized gate features, ``alpha / 2`` times
the squared norm of ``scale * beta`` (``gate_.penalty_scale``), against a
log-likelihood summed over the rows. It must keep gates finite where the
experts separate the data (a gate that can split perfectly drives its
weights to infinity without it), and it should not blur sharp boundaries:
a gate that must be steep to place a boundary pays for its steepness.

This script fits every data set below at several ``gate_alpha`` values
and seeds (data and fit), and prints the test score (R^2 or accuracy), the
test mean log-likelihood, and what went wrong: non-finite outputs,
non-converged fits (in ``max_iter=200``), pruned experts, and the largest
standardized gate coefficient (``|scale * beta|``, which diverges where
nothing holds a separable gate).

    python benchmarks/gate_alpha.py [--seeds 5] [--alphas 0 0.01 0.1 1 10]

The data sets, hardest first: sharp (step) boundaries between linear
pieces, with 4 and 8 experts; the same with 150 training rows (small n,
where the penalty weighs most against the likelihood); a (2, 2) tree on a
tree's data; decision-tree experts; a classifier whose classes the experts
separate (XOR quadrants, a separable gate problem); and data drawn from
the smooth mixtures of ``skmoe.datasets``.
"""

import argparse
import warnings

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import (
    make_hme_regression,
    make_moe_classification,
    make_moe_regression,
)

N_TEST = 5_000


def steps(n, seed, n_pieces):
    """Linear pieces of x0 with jumps at equally spaced steps; 2 features."""
    rs = np.random.RandomState(seed)
    X = rs.uniform(-2.0, 2.0, size=(n, 2))
    piece = np.minimum(((X[:, 0] + 2.0) / 4.0 * n_pieces).astype(int), n_pieces - 1)
    slopes = rs.uniform(-2.0, 2.0, size=n_pieces)
    levels = rs.uniform(-3.0, 3.0, size=n_pieces)
    y = levels[piece] + slopes[piece] * X[:, 1] + 0.1 * rs.normal(size=n)
    return X, y


def quadrants(n, seed):
    """Two linear pieces per sign of x0 * x1 (XOR), for a (2, 2) tree."""
    rs = np.random.RandomState(seed)
    X = rs.uniform(-2.0, 2.0, size=(n, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0) * np.where(X[:, 1] > 0, 2.0, 0.5) * X[
        :, 1
    ] + 0.1 * rs.normal(size=n)
    return X, y


def xor_classes(n, seed):
    """Classes by the sign of x0 * x1 with 5% labels flipped."""
    rs = np.random.RandomState(seed)
    X = rs.uniform(-2.0, 2.0, size=(n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    flip = rs.uniform(size=n) < 0.05
    return X, np.where(flip, 1 - y, y)


def cases():
    """Return (name, estimator class, params, data(n, seed), n_train)."""

    def moe_regression(n, seed):
        return make_moe_regression(
            n_samples=n, n_features=5, n_experts=4, random_state=seed
        )

    def hme(n, seed):
        return make_hme_regression(
            n_samples=n, n_features=4, hierarchy=(2, 2), random_state=seed
        )

    def moe_classification(n, seed):
        return make_moe_classification(
            n_samples=n, n_features=5, n_experts=3, n_classes=3, random_state=seed
        )

    R, C = MixtureOfExpertsRegressor, MixtureOfExpertsClassifier
    return [
        (
            "steps, 4 pieces, K=4",
            R,
            {"n_experts": 4},
            lambda n, s: steps(n, s, 4),
            1000,
        ),
        (
            "steps, 8 pieces, K=8",
            R,
            {"n_experts": 8},
            lambda n, s: steps(n, s, 8),
            2000,
        ),
        (
            "steps, 4 pieces, K=4, n=150",
            R,
            {"n_experts": 4},
            lambda n, s: steps(n, s, 4),
            150,
        ),
        ("quadrants, (2, 2) tree", R, {"hierarchy": (2, 2)}, quadrants, 1000),
        (
            "steps, 4 pieces, tree experts",
            R,
            {"n_experts": 4, "estimator": DecisionTreeRegressor(max_depth=2)},
            lambda n, s: steps(n, s, 4),
            1000,
        ),
        ("XOR classes, K=4 (classifier)", C, {"n_experts": 4}, xor_classes, 1000),
        ("XOR classes, K=4, n=150", C, {"n_experts": 4}, xor_classes, 150),
        ("make_moe_regression K=4, d=5", R, {"n_experts": 4}, moe_regression, 1000),
        ("make_hme_regression (2, 2)", R, {"hierarchy": (2, 2)}, hme, 1000),
        ("make_moe_classification K=3", C, {"n_experts": 3}, moe_classification, 1000),
    ]


def fit_one(estimator_class, params, data, n_train, seed, alpha):
    """Return the test score, test log-likelihood and fit diagnostics."""
    X, y = data(n_train + N_TEST, seed)[:2]
    X_train, y_train, X_test, y_test = (
        X[:n_train],
        y[:n_train],
        X[n_train:],
        y[n_train:],
    )
    model = estimator_class(
        gate_alpha=alpha, max_iter=200, random_state=seed, **params
    ).fit(X_train, y_train)
    if estimator_class is MixtureOfExpertsClassifier:
        score = accuracy_score(y_test, model.predict(X_test))
        outputs = model.predict_proba(X_test)
    else:
        score = r2_score(y_test, model.predict(X_test))
        outputs = model.predict(X_test)
    log_lik = float(np.mean(model.log_likelihood(X_test, y_test)))
    scale = model.gate_.penalty_scale[:, None]
    steepest = max(
        float(np.max(np.abs(scale * c[:, :-1, :]))) for c in model.gate_.coef
    )
    finite = bool(np.all(np.isfinite(outputs)) and np.isfinite(log_lik))
    return {
        "score": score,
        "log_lik": log_lik,
        "finite": finite,
        "converged": bool(model.converged_),
        "pruned": model.n_pruned_experts_,
        "steepest": steepest,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--alphas", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0, 10.0]
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(
        "| data set | gate_alpha | score (mean, min) | test log-lik (mean, min) "
        "| non-finite | not converged | pruned | max abs(scale * beta) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, estimator_class, params, data, n_train in cases():
        for alpha in args.alphas:
            runs = [
                fit_one(estimator_class, params, data, n_train, seed, alpha)
                for seed in range(args.seeds)
            ]
            scores = [r["score"] for r in runs]
            log_liks = [r["log_lik"] for r in runs]
            print(
                f"| {name} | {alpha:g} "
                f"| {np.mean(scores):.3f}, {np.min(scores):.3f} "
                f"| {np.mean(log_liks):.3f}, {np.min(log_liks):.3f} "
                f"| {sum(not r['finite'] for r in runs)} "
                f"| {sum(not r['converged'] for r in runs)} "
                f"| {sum(r['pruned'] for r in runs)} "
                f"| {max(r['steepest'] for r in runs):.3g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
