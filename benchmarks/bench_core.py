"""Fit time of a soft mixture of linear experts against single-model baselines.

For every size n, data are drawn from a 4-expert mixture of linear experts
(``make_moe_regression``, d=10), 20% are held out, and three regressors are
fitted on the same training rows, interleaved within each repeat:

* ``MixtureOfExpertsRegressor(n_experts=4)``: soft routing, the default
  (vectorized linear) experts, k-means initialisation, EM;
* ``LinearRegression``: one linear model (a lower bound on the cost of a
  single M-step of one expert);
* ``HistGradientBoostingRegressor``: a strong nonlinear baseline.

Reported: median fit seconds over the repeats, the mixture's EM iterations,
the median over repeats of the paired ratios MoE/LR and MoE/HGB (each ratio
from fits timed back to back, which cancels most of a noisy machine's
drift) in wall time and in CPU time (the steadier one with ``--threads 1``,
see ``_common.timed``), and the test R^2 of every model and of the generating mixture's
mean (the best R^2 a model can expect on these data).

Run from the repository root::

    python benchmarks/bench_core.py
    python benchmarks/bench_core.py --sizes 1e3,1e4 --repeats 3 --threads 1
"""

import argparse

from _common import (
    describe_environment,
    markdown_table,
    median,
    parse_sizes,
    thread_limit,
    timed,
)
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression

N_FEATURES = 10
N_EXPERTS = 4


def make_models(seed):
    """Return the regressors to compare, by name, freshly constructed."""
    return {
        "moe": MixtureOfExpertsRegressor(n_experts=N_EXPERTS, random_state=seed),
        "lr": LinearRegression(),
        "hgb": HistGradientBoostingRegressor(random_state=seed),
    }


def paired_ratio(times, baseline):
    """Return the median over repeats of the mixture's time over a baseline's."""
    pairs = zip(times["moe"], times[baseline], strict=True)
    return median([moe / base for moe, base in pairs])


def bench_size(n_samples, *, repeats, seed):
    """Time every model ``repeats`` times on one data set; return a table row."""
    X, y, truth = make_moe_regression(
        n_samples, N_FEATURES, N_EXPERTS, random_state=seed, return_truth=True
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=seed
    )
    seconds = {name: [] for name in make_models(seed)}
    cpu_seconds = {name: [] for name in make_models(seed)}
    fitted = {}
    # An untimed warm-up keeps first-call costs (lazy imports, thread pools)
    # out of the timings.
    for model in make_models(seed).values():
        timed(model.fit, X_train[:500], y_train[:500])
    for _ in range(repeats):
        for name, model in make_models(seed).items():
            wall, cpu, fitted[name] = timed(model.fit, X_train, y_train)
            seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
    moe = fitted["moe"]
    r2 = {name: model.score(X_test, y_test) for name, model in fitted.items()}
    r2["truth"] = r2_score(y_test, truth.predict(X_test))
    iterations = f"{moe.n_iter_}" + ("" if moe.converged_ else " (not converged)")
    return [
        f"{n_samples:.0e}".replace("e+0", "e"),
        f"{median(seconds['moe']):.3f}",
        iterations,
        f"{median(seconds['lr']):.4f}",
        f"{median(seconds['hgb']):.3f}",
        f"{paired_ratio(seconds, 'lr'):.0f}",
        f"{paired_ratio(seconds, 'hgb'):.2f}",
        f"{paired_ratio(cpu_seconds, 'lr'):.0f}",
        f"{paired_ratio(cpu_seconds, 'hgb'):.2f}",
        f"{r2['moe']:.4f}",
        f"{r2['lr']:.4f}",
        f"{r2['hgb']:.4f}",
        f"{r2['truth']:.4f}",
        f"{repeats}",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="1e3,1e4,1e5", help="comma-separated sample counts"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="repeats below --large-size (the median is reported)",
    )
    parser.add_argument(
        "--large-repeats",
        type=int,
        default=3,
        help="repeats at and above --large-size",
    )
    parser.add_argument("--large-size", type=float, default=1e5)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="cap BLAS / OpenMP threads (threadpoolctl); default: no cap",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    headers = [
        "n",
        "MoE fit s",
        "MoE iterations",
        "LinearRegression s",
        "HGB s",
        "MoE/LR ratio",
        "MoE/HGB ratio",
        "MoE/LR CPU ratio",
        "MoE/HGB CPU ratio",
        "MoE test R^2",
        "LR test R^2",
        "HGB test R^2",
        "truth test R^2",
        "repeats",
    ]
    rows = []
    with thread_limit(args.threads):
        print(describe_environment(args.threads))
        print()
        for n_samples in parse_sizes(args.sizes):
            repeats = (
                args.repeats if n_samples < args.large_size else args.large_repeats
            )
            rows.append(bench_size(n_samples, repeats=repeats, seed=args.seed))
            print(f"done n={n_samples}", flush=True)
    print()
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
