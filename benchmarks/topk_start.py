"""Top-k routing: truncated EM from the k-means start or from a soft fit.

``train_routing="em"`` runs truncated (top-k) EM from the k-means start,
the default before issue 15; ``"auto"`` now runs soft EM to convergence
first and truncated EM from that fit. For each problem and seed: the
truncated EM's final bound (the mean of ``log sum_{k in top-k} g_k p_k``
on the training rows, ``log_likelihood_history_[-1]``), the test negative
log-likelihood under top-k prediction, the test MSE (regressor) or log-loss
(classifier), and the fit time as a ratio to ``"em"``'s. Mean ± sd over
seeds, and the number of seeds where the soft start's bound is at least
the k-means start's. Run by hand:

    python benchmarks/topk_start.py [--seeds 5]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.metrics import log_loss, mean_squared_error

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_classification, make_moe_regression

# (name, kind, rows, features, experts of the data and the model, top_k)
PROBLEMS = [
    ("regression, K=4, top-2, n=1000", "regressor", 1000, 5, 4, 2),
    ("regression, K=8, top-2, n=5000", "regressor", 5000, 10, 8, 2),
    ("classification, K=4, top-2, n=1000", "classifier", 1000, 5, 4, 2),
    ("classification, K=8, top-3, n=5000", "classifier", 5000, 10, 8, 3),
]
N_TEST = 5000


def run(problem, seed):
    _, kind, n, d, k, top_k = problem
    make = make_moe_regression if kind == "regressor" else make_moe_classification
    X, y = make(n + N_TEST, d, k, random_state=seed)
    X, X_test, y, y_test = X[:n], X[n:], y[:n], y[n:]
    Estimator = (
        MixtureOfExpertsRegressor if kind == "regressor" else MixtureOfExpertsClassifier
    )
    found = {}
    for training in ("em", "auto"):
        model = Estimator(
            n_experts=k,
            routing="topk",
            top_k=top_k,
            train_routing=training,
            random_state=seed,
        )
        started = time.process_time()
        model.fit(X, y)
        seconds = time.process_time() - started
        nll = -float(model.log_likelihood(X_test, y_test).mean())
        if kind == "regressor":
            error = mean_squared_error(y_test, model.predict(X_test))
        else:
            error = log_loss(y_test, model.predict_proba(X_test), labels=model.classes_)
        found[training] = (model.log_likelihood_history_[-1], nll, error, seconds)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(
        "| problem | training | train bound | test NLL | test MSE / log-loss "
        "| fit time / em's | bound >= em's |"
    )
    print("|---|---|---|---|---|---|---|")
    for problem in PROBLEMS:
        runs = [run(problem, seed) for seed in range(args.seeds)]
        for training, label in (
            ("em", "em from k-means (before)"),
            ("auto", "em from soft (auto)"),
        ):
            values = np.array([r[training][:3] for r in runs])
            ratio = np.median([r[training][3] / r["em"][3] for r in runs])
            wins = sum(r["auto"][0] >= r["em"][0] - 1e-9 for r in runs)
            cells = [
                f"{m:.3f} ± {s:.3f}"
                for m, s in zip(values.mean(0), values.std(0), strict=True)
            ]
            last = f"{wins}/{len(runs)}" if training == "auto" else ""
            cells += [f"{ratio:.2f}", last]
            print(f"| {problem[0]} | {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
