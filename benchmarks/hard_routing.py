"""Hard and top-k routing: how each way of training them predicts.

Soft mixtures against every training of hard and top-k routing
(``train_routing``), on data without mixture structure (one linear or
logistic model) and on data drawn from a mixture
(``make_moe_regression`` / ``make_moe_classification``, 4 experts):
test MSE and mean negative log-likelihood (regressor), test log-loss and
accuracy (classifier), mean ± sd over seeds. 1,000 training rows, 5,000
test rows, 5 features; 3 experts without structure, 4 with. Run by hand
(about two minutes on one core):

    python benchmarks/hard_routing.py [--seeds 5]

"hard, CEM from soft" is classification EM started from the soft fit
(``warm_start``), the second remedy the issue proposed; "CEM" is
``train_routing="em"``, the only training of hard routing before.
"""

import argparse
import copy
import warnings

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_classification, make_moe_regression

N_TRAIN, N_TEST, N_FEATURES = 1000, 5000, 5

VARIANTS = [
    ("soft", {"routing": "soft"}),
    ("hard, refit (default)", {"routing": "hard", "train_routing": "refit"}),
    ("hard, soft EM", {"routing": "hard", "train_routing": "soft"}),
    ("hard, CEM (before)", {"routing": "hard", "train_routing": "em"}),
    ("hard, CEM from soft", None),
    ("top-2, truncated EM from soft (default)", {"routing": "topk"}),
    ("top-2, truncated EM", {"routing": "topk", "train_routing": "em"}),
    ("top-2, soft EM", {"routing": "topk", "train_routing": "soft"}),
    ("top-2, refit", {"routing": "topk", "train_routing": "refit"}),
]


def make_data(kind, structured, seed):
    """Return X_train, y_train, X_test, y_test."""
    n = N_TRAIN + N_TEST
    if structured:
        make = make_moe_regression if kind == "regressor" else make_moe_classification
        X, y = make(n_samples=n, n_features=N_FEATURES, n_experts=4, random_state=seed)
    else:
        rng = np.random.RandomState(seed)
        X = rng.normal(size=(n, N_FEATURES))
        w = rng.normal(size=N_FEATURES)
        if kind == "regressor":
            y = X @ w + rng.normal(size=n)
        else:
            y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-0.5 * X @ w))).astype(int)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def scores(model, X, y, kind):
    """Return the two test scores of ``model``."""
    if kind == "regressor":
        nll = -np.mean(model.log_likelihood(X, y)) if hasattr(model, "gate_") else 0
        return mean_squared_error(y, model.predict(X)), nll
    proba = model.predict_proba(X)
    return log_loss(y, proba, labels=model.classes_), accuracy_score(
        y, model.classes_[np.argmax(proba, axis=1)]
    )


def run_case(kind, structured, seed):
    """Return {variant: (score, score)} for one data set."""
    X, y, X_test, y_test = make_data(kind, structured, seed)
    Estimator = (
        MixtureOfExpertsRegressor if kind == "regressor" else MixtureOfExpertsClassifier
    )
    n_experts = 4 if structured else 3
    baseline = LinearRegression() if kind == "regressor" else LogisticRegression()
    found = {"linear / logistic": scores(baseline.fit(X, y), X_test, y_test, kind)}
    soft = None
    for name, params in VARIANTS:
        if params is None:
            model = copy.deepcopy(soft).set_params(
                routing="hard", train_routing="em", warm_start=True
            )
            model.fit(X, y)
        else:
            model = Estimator(n_experts=n_experts, random_state=seed, **params)
            model.fit(X, y)
            if params["routing"] == "soft":
                soft = model
        found[name] = scores(model, X_test, y_test, kind)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    columns = {
        "regressor": ("test MSE", "test NLL"),
        "classifier": ("test log-loss", "accuracy"),
    }
    for kind in ("regressor", "classifier"):
        for structured in (False, True):
            runs = [run_case(kind, structured, seed) for seed in range(args.seeds)]
            data = "mixture (make_moe_" if structured else "one model (no mixture"
            data += "regression)" if structured and kind == "regressor" else ""
            data += "classification)" if structured and kind != "regressor" else ""
            data += ")" if not structured else ""
            first, second = columns[kind]
            print(f"\n{kind}, data from {data}, {args.seeds} seeds\n")
            print(f"| model | {first} | {second} |")
            print("|---|---|---|")
            for name in runs[0]:
                values = np.array([run[name] for run in runs])
                mean, sd = values.mean(axis=0), values.std(axis=0)
                cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(mean, sd, strict=True)]
                if kind == "regressor" and name == "linear / logistic":
                    cells[1] = "-"
                print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
