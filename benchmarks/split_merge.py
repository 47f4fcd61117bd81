"""Split-and-merge EM: how often it finds the best optimum, and what it costs.

Every problem is fitted with the default start and ``split_merge`` 0 (off)
and the values given, each seed in turn (the settings interleaved, so that
a noisy machine slows them alike). For each setting: the fraction of seeds
whose objective is within 0.1% of the best any setting reached on that
seed, the mean objective, and the median ratio of fit time to
``split_merge=0``'s on the same seed.

Problems:

- ``crossing``: a line and a parabola that cross (flexmix's NPreg
  example), 150 rows, K=2, features ``[x, x^2]``; the true partition is
  not gate-separable.
- ``easy``: ``make_moe_regression``, 2,000 rows, d=10, K=4.
- ``k16``: ``make_moe_regression``, 20,000 rows, d=20, K=16.
- ``classifier``: ``make_moe_classification``, 20,000 rows, d=10, 4
  experts, 3 classes.

Run by hand (minutes per problem on one core):

    python benchmarks/split_merge.py --problems crossing,easy --seeds 10 \\
        --split-merge 1,2,4
"""

import argparse
import warnings

import numpy as np
from _common import timed

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_classification, make_moe_regression


def crossing_curves(seed, n_samples=150):
    """A line and a parabola that cross, as flexmix's NPreg: ``[x, x^2], y``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n_samples)
    line = rng.integers(0, 2, n_samples) == 0
    y = np.where(line, 5 * x, 15 + 10 * x - x**2) + rng.normal(0, 3, n_samples)
    return np.column_stack([x, x**2]), y


def problem(name, seed):
    """Return ``(estimator class, X, y, parameters)`` of a problem."""
    if name == "crossing":
        X, y = crossing_curves(seed)
        return MixtureOfExpertsRegressor, X, y, {"n_experts": 2}
    if name == "easy":
        X, y = make_moe_regression(2000, n_features=10, n_experts=4, random_state=seed)
        return MixtureOfExpertsRegressor, X, y, {"n_experts": 4}
    if name == "k16":
        X, y = make_moe_regression(
            20000, n_features=20, n_experts=16, random_state=seed
        )
        return MixtureOfExpertsRegressor, X, y, {"n_experts": 16}
    if name == "classifier":
        X, y = make_moe_classification(
            20000, n_features=10, n_experts=4, n_classes=3, random_state=seed
        )
        return MixtureOfExpertsClassifier, X, y, {"n_experts": 4}
    raise ValueError(f"Unknown problem {name!r}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="crossing,easy")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--split-merge", default="1,2,4")
    args = parser.parse_args()
    settings = [0] + [int(v) for v in args.split_merge.split(",")]
    print(
        "| problem | split_merge | seeds at the best (0.1%) | mean objective "
        "| time ratio (median, max) |"
    )
    print("|---|---|---|---|---|")
    for name in args.problems.split(","):
        objectives = np.zeros((args.seeds, len(settings)))
        seconds = np.zeros_like(objectives)
        for seed in range(args.seeds):
            estimator, X, y, params = problem(name, seed)
            for s, split_merge in enumerate(settings):
                model = estimator(**params, split_merge=split_merge, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # pruning
                    seconds[seed, s], _, model = timed(model.fit, X, y)
                objectives[seed, s] = model.objective_history_[-1]
        best = objectives.max(axis=1, keepdims=True)
        at_best = objectives >= best - 1e-3 * np.abs(best)
        ratio = seconds / seconds[:, :1]
        for s, split_merge in enumerate(settings):
            print(
                f"| {name} | {split_merge} | {at_best[:, s].sum()}/{args.seeds} "
                f"| {objectives[:, s].mean():.4f} "
                f"| {np.median(ratio[:, s]):.2f}, {ratio[:, s].max():.2f} |"
            )


if __name__ == "__main__":
    main()
