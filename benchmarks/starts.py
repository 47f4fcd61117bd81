"""Issue 15: starts, restarts and screening, measured on three problems.

Problems (each over ``--seeds`` seeds, data drawn from a known truth):

- ``crossing``: two crossing regression curves (a line and a parabola, as
  flexmix's NPreg example), 150 rows, K=2, features ``[x, x**2]``. The
  objective is the training penalised log-likelihood; "best" is the best
  any fit of the run reached on that seed (every strategy, and a 40-restart
  random fit).
- ``classifier``: a 3-class classifier over 4 gated logistic experts
  (``make_moe_classification``, 20,000 training rows, d=10, 5,000 test
  rows): test accuracy and test log-likelihood against the truth's.
- ``easy``: ``make_moe_regression`` (2,000 rows, K=4), for the cost.

For every strategy: fraction of seeds within 0.1% of the best objective,
mean test log-likelihood (classifier: gap to the truth's, relative), test
accuracy gap in points, and fit time as a ratio to today's default
(k-means, ``n_init=1``) in the same run.

``--kinds`` instead fits every single kind of start (``n_init=1``) on the
classifier, to choose a classifier's starts.

    python benchmarks/starts.py --seeds 10            # ~several minutes here
    python benchmarks/starts.py --kinds --seeds 5
"""

import argparse
import time
import warnings
from unittest import mock

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import skmoe._base
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._init import START_KINDS
from skmoe.datasets import make_moe_classification, make_moe_regression


def crossing_curves(seed, n_samples=150, noise=3.0):
    """Return X, y, the truth's mean log-likelihood (a line and a parabola)."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(0, 10, n_samples)
    line = rng.rand(n_samples) < 0.5
    mean_line, mean_parabola = 5 * x, 15 + 10 * x - x**2
    y = np.where(line, mean_line, mean_parabola) + noise * rng.randn(n_samples)
    density = 0.5 * np.exp(-0.5 * ((y - mean_line) / noise) ** 2) + 0.5 * np.exp(
        -0.5 * ((y - mean_parabola) / noise) ** 2
    )
    truth = np.mean(np.log(density / (noise * np.sqrt(2 * np.pi))))
    return np.column_stack([x, x**2]), y, truth


def fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        started = time.perf_counter()
        estimator.fit(X, y)
        return time.perf_counter() - started


def problem(name, seed):
    """Return (make_estimator(**params), X, y, X_test, y_test, truth)."""
    if name == "crossing":
        X, y, truth = crossing_curves(seed)
        return (
            lambda **p: MixtureOfExpertsRegressor(n_experts=2, **p),
            X,
            y,
            None,
            None,
            truth,
        )
    if name == "classifier":
        X, y, truth = make_moe_classification(
            n_samples=25_000,
            n_features=10,
            n_classes=3,
            n_experts=4,
            random_state=seed,
            return_truth=True,
        )
        return (
            lambda **p: MixtureOfExpertsClassifier(n_experts=4, **p),
            X[:20_000],
            y[:20_000],
            X[20_000:],
            y[20_000:],
            truth,
        )
    X, y, truth = make_moe_regression(
        n_samples=2_500,
        n_features=10,
        n_experts=4,
        random_state=seed,
        return_truth=True,
    )
    return (
        lambda **p: MixtureOfExpertsRegressor(n_experts=4, **p),
        X[:2_000],
        y[:2_000],
        X[2_000:],
        y[2_000:],
        truth,
    )


STRATEGIES = {
    "today (kmeans)": {"init_params": "kmeans"},
    "kmeans n_init=5": {"init_params": "kmeans", "n_init": 5},
    "random": {"init_params": "random"},
    "random n_init=5": {"init_params": "random", "n_init": 5},
    "random_from_data n_init=5": {"init_params": "random_from_data", "n_init": 5},
    "screen": {"init_params": "screen"},
    "screen n_init=2": {"init_params": "screen", "n_init": 2},
}


def run_strategies(names, seeds, strategies):
    for name in names:
        rows = {s: [] for s in strategies}
        for seed in seeds:
            make, X, y, Xt, yt, truth = problem(name, seed)
            results = {}
            for label, params in strategies.items():
                est = make(random_state=seed, **params)
                seconds = fit(est, X, y)
                record = {
                    "time": seconds,
                    "objective": est.objective_history_[-1],
                    "starts": est.init_starts_,
                }
                if Xt is not None:
                    record["test_ll"] = float(np.mean(est.log_likelihood(Xt, yt)))
                    record["truth_ll"] = float(np.mean(truth.log_likelihood(Xt, yt)))
                    if name == "classifier":
                        record["acc"] = float(np.mean(est.predict(Xt) == yt))
                        record["truth_acc"] = float(np.mean(truth.predict(Xt) == yt))
                results[label] = record
            best = max(r["objective"] for r in results.values())
            if name == "crossing":
                ref = make(random_state=seed, init_params="random", n_init=40)
                fit(ref, X, y)
                best = max(best, ref.objective_history_[-1])
            for label, r in results.items():
                r["within"] = r["objective"] >= best - 1e-3 * abs(best)
                r["ratio"] = r["time"] / results["today (kmeans)"]["time"]
                rows[label].append(r)
        print(f"\n### {name} ({len(seeds)} seeds)\n")
        print(
            "| strategy | within 0.1% | objective (mean) | test LL gap | "
            "acc gap (pts) | time ratio (median, max) | s (median) |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, rs in rows.items():
            within = sum(r["within"] for r in rs)
            obj = np.mean([r["objective"] for r in rs])
            ll = acc = "-"
            if "test_ll" in rs[0]:
                gaps = [(r["test_ll"] - r["truth_ll"]) / abs(r["truth_ll"]) for r in rs]
                ll = f"{np.mean(gaps) * 100:+.2f}%"
            if "acc" in rs[0]:
                gaps = [(r["acc"] - r["truth_acc"]) * 100 for r in rs]
                acc = f"{np.mean(gaps):+.2f}"
            ratios = [r["ratio"] for r in rs]
            print(
                f"| {label} | {within}/{len(rs)} | {obj:.4f} | {ll} | {acc} | "
                f"{np.median(ratios):.2f}, {np.max(ratios):.2f} | "
                f"{np.median([r['time'] for r in rs]):.2f} |"
            )


KINDS = list(START_KINDS)


def run_kinds(seeds):
    print("| kind | seed | test acc gap (pts) | test LL gap | objective | s |")
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        make, X, y, Xt, yt, truth = problem("classifier", seed)
        truth_acc = np.mean(truth.predict(Xt) == yt)
        truth_ll = np.mean(truth.log_likelihood(Xt, yt))
        for kind in KINDS:
            est = make(random_state=seed, init_params="kmeans")

            def fixed_kind(init_params, restart, kind=kind):
                return kind

            with mock.patch.object(skmoe._base, "restart_kind", fixed_kind):
                seconds = fit(est, X, y)
            acc = np.mean(est.predict(Xt) == yt)
            ll = np.mean(est.log_likelihood(Xt, yt))
            print(
                f"| {kind} | {seed} | {(acc - truth_acc) * 100:+.2f} | "
                f"{(ll - truth_ll) / abs(truth_ll) * 100:+.2f}% | "
                f"{est.objective_history_[-1]:.4f} | {seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--kinds", action="store_true")
    parser.add_argument("--problems", default="crossing,classifier,easy")
    parser.add_argument(
        "--strategies",
        default=None,
        help="comma-separated labels of STRATEGIES (all by default)",
    )
    args = parser.parse_args()
    strategies = STRATEGIES
    if args.strategies:
        labels = ["today (kmeans)", *args.strategies.split(",")]
        strategies = {label: STRATEGIES[label] for label in dict.fromkeys(labels)}
    if args.kinds:
        run_kinds(range(args.seeds))
    else:
        run_strategies(args.problems.split(","), range(args.seeds), strategies)
