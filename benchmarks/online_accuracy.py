"""partial_fit against fit: test log-likelihood on the same data.

1e5 training rows streamed in chunks of 1e3 through ``partial_fit``, and
fitted at once by ``fit``; both scored on 1e4 held-out rows. Prints one
row per model (the issue's acceptance figure is "within 1%").

    python benchmarks/online_accuracy.py
"""

import time
import warnings

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import (
    make_hme_regression,
    make_moe_classification,
    make_moe_regression,
)

N_TRAIN, N_TEST, CHUNK = 100_000, 10_000, 1_000


def main():
    warnings.simplefilter("ignore")
    n = N_TRAIN + N_TEST
    cases = [
        (
            "regressor K=4, d=5",
            MixtureOfExpertsRegressor,
            {"n_experts": 4},
            make_moe_regression(n_samples=n, n_features=5, n_experts=4, random_state=0),
            {},
        ),
        (
            "regressor (2,2) tree, d=4",
            MixtureOfExpertsRegressor,
            {"hierarchy": (2, 2)},
            make_hme_regression(
                n_samples=n, n_features=4, hierarchy=(2, 2), random_state=0
            ),
            {},
        ),
        (
            "classifier K=2, 2 classes, d=3",
            MixtureOfExpertsClassifier,
            {"n_experts": 2},
            make_moe_classification(
                n_samples=n, n_features=3, n_experts=2, n_classes=2, random_state=0
            ),
            {"classes": [0, 1]},
        ),
        (
            "classifier K=3, 3 classes, d=5",
            MixtureOfExpertsClassifier,
            {"n_experts": 3},
            make_moe_classification(
                n_samples=n, n_features=5, n_experts=3, n_classes=3, random_state=0
            ),
            {"classes": [0, 1, 2]},
        ),
    ]
    print(
        f"{'model':34s} {'fit LL':>9s} {'partial_fit LL':>14s} {'rel. diff':>9s} "
        f"{'time ratio':>10s}"
    )
    for name, cls, params, (X, y), extra in cases:
        X_train, y_train, X_test, y_test = (
            X[:N_TRAIN],
            y[:N_TRAIN],
            X[N_TRAIN:],
            y[N_TRAIN:],
        )
        start = time.perf_counter()
        batch = cls(random_state=0, **params).fit(X_train, y_train)
        batch_time = time.perf_counter() - start
        start = time.perf_counter()
        online = cls(random_state=0, **params)
        for i in range(0, N_TRAIN, CHUNK):
            online.partial_fit(X_train[i : i + CHUNK], y_train[i : i + CHUNK], **extra)
        online_time = time.perf_counter() - start
        batch_ll = batch.log_likelihood(X_test, y_test).mean()
        online_ll = online.log_likelihood(X_test, y_test).mean()
        print(
            f"{name:34s} {batch_ll:9.4f} {online_ll:14.4f} "
            f"{(online_ll - batch_ll) / abs(batch_ll):+9.2%} "
            f"{online_time / batch_time:10.2f}"
        )


if __name__ == "__main__":
    main()
