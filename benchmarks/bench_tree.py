"""Cost of a tree of gates against the flat mixture with as many experts.

For every hierarchy, data are drawn from a mixture with that tree of gates
(``make_hme_regression``; ``make_moe_regression`` for a flat ``(K,)``),
``--n-samples`` rows for training and a quarter as many (20% of all rows)
held out, and two soft mixtures of linear experts are fitted on the same
training rows, back to back, from the same ``random_state``:

* the tree, ``MixtureOfExpertsRegressor(hierarchy=h)``;
* the flat mixture of the same leaf count,
  ``MixtureOfExpertsRegressor(n_experts=prod(h))``.

A tree's fit starts from a fitted flat mixture with as many leaves (full
EM), tries a few placements of its experts at the leaves with a short EM
run each, and only then runs its own EM loop: its ``n_iter_`` counts that
last loop only, so ``fit / n_iter_`` is not a time per iteration. The time
per EM iteration is therefore measured directly: each fitted model is
continued with ``set_params(warm_start=True, max_iter=--iter-sample,
tol=0.0)`` (exactly that many EM iterations, from where the fit stopped)
and that continuation's time is divided by ``--iter-sample``. It carries
the per-fit overhead (input validation, the design cache, one extra
E-step), spread over the sampled iterations, for both models alike.

Reported per hierarchy: total fit seconds of each model and their ratio
(the tree's includes its start), ``n_iter_`` of each, seconds per EM
iteration of each and their ratio, in wall and CPU time, and the mean
log-likelihood of the tree, the flat mixture and the generating model on
the training rows (the fits' ``log_likelihood_``, before the continuation)
and on the held-out rows. Ratios tree/flat come from measurements taken
back to back in the same run (the median of the paired ratios with
``--repeats``); with ``--threads 1`` the CPU time is the steadier clock on
a shared machine (see ``_common.timed``). The ``(4,)`` row compares two
identical computations: its distance from 1.00 shows the timing noise.

Run from the repository root::

    python benchmarks/bench_tree.py
    python benchmarks/bench_tree.py --hierarchies "4;2,2" --n-samples 1e4
"""

import argparse
import math

from _common import (
    describe_environment,
    markdown_table,
    median,
    thread_limit,
    timed,
)
from sklearn.model_selection import train_test_split

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_regression, make_moe_regression

N_FEATURES = 10
TEST_FRACTION = 0.2


def parse_hierarchies(text):
    """Parse ``"4;2,2"`` into ``[(4,), (2, 2)]``."""
    return [tuple(int(b) for b in item.split(",")) for item in text.split(";") if item]


def make_data(hierarchy, n_samples, seed):
    """Return ``X, y, truth`` drawn from a mixture with this tree of gates."""
    if len(hierarchy) == 1:
        return make_moe_regression(
            n_samples, N_FEATURES, hierarchy[0], random_state=seed, return_truth=True
        )
    return make_hme_regression(
        n_samples, N_FEATURES, hierarchy, random_state=seed, return_truth=True
    )


def measure(model, X, y, X_test, y_test, iter_sample):
    """Fit ``model``, then continue it ``iter_sample`` EM iterations.

    Returns the fit's numbers (taken before the continuation) and the
    continuation's seconds per iteration. Times are pairs ``(wall, cpu)``;
    see ``_common.timed`` (which also silences the ``ConvergenceWarning``
    that a continuation with ``tol=0`` always raises).
    """
    settings = model.get_params()
    fit_wall, fit_cpu, _ = timed(model.fit, X, y)
    result = {
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        "train_log_likelihood": model.log_likelihood_,
        "test_log_likelihood": float(model.log_likelihood(X_test, y_test).mean()),
        "wall_fit": fit_wall,
        "cpu_fit": fit_cpu,
    }
    model.set_params(warm_start=True, max_iter=iter_sample, tol=0.0)
    iter_wall, iter_cpu, _ = timed(model.fit, X, y)
    if model.n_iter_ != iter_sample:
        raise RuntimeError(
            f"the continuation ran {model.n_iter_} EM iterations, not {iter_sample}"
        )
    model.set_params(**settings)
    result["wall_per_iter"] = iter_wall / iter_sample
    result["cpu_per_iter"] = iter_cpu / iter_sample
    return result


def bench_hierarchy(hierarchy, *, n_samples, max_iter, tol, seed, repeats, iter_sample):
    """Fit the tree and its flat counterpart, interleaved, ``repeats`` times.

    Returns the tree's and the flat mixture's measurements of every repeat
    and the generating model's mean log-likelihood on the training and on
    the held-out rows.
    """
    n_total = round(n_samples / (1 - TEST_FRACTION))
    X, y, truth = make_data(hierarchy, n_total, seed)
    X, X_test, y, y_test = train_test_split(
        X, y, train_size=n_samples, random_state=seed
    )
    n_leaves = math.prod(hierarchy)
    common = {"max_iter": max_iter, "tol": tol, "random_state": seed}
    # An untimed warm-up keeps first-call costs (lazy imports, thread pools,
    # allocator growth) out of whichever model would be timed first.
    measure(
        MixtureOfExpertsRegressor(hierarchy=hierarchy, **common),
        X[:2000],
        y[:2000],
        X_test[:500],
        y_test[:500],
        2,
    )
    trees, flats = [], []
    for repeat in range(repeats):
        tree = MixtureOfExpertsRegressor(hierarchy=hierarchy, **common)
        flat = MixtureOfExpertsRegressor(n_experts=n_leaves, **common)
        # Alternate which model goes first, so that a drift in the machine's
        # load does not always favour the same one.
        pair = [(trees, tree), (flats, flat)]
        for results, model in pair[::-1] if repeat % 2 else pair:
            results.append(measure(model, X, y, X_test, y_test, iter_sample))
    truth_log_likelihood = {
        "train": float(truth.log_likelihood(X, y).mean()),
        "test": float(truth.log_likelihood(X_test, y_test).mean()),
    }
    return trees, flats, truth_log_likelihood


def _median(results, key):
    return median([r[key] for r in results])


def _ratio(trees, flats, key):
    """Median over repeats of the paired ratio tree / flat of ``key``."""
    return median([t[key] / f[key] for t, f in zip(trees, flats, strict=True)])


def _iterations(result):
    return f"{result['n_iter']}" + ("" if result["converged"] else "*")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--hierarchies",
        default="4;2,2;2,2,2;4,4",
        help='semicolon-separated trees, e.g. "4;2,2;2,2,2;4,4"',
    )
    parser.add_argument(
        "--n-samples",
        type=float,
        default=1e5,
        help="training rows; a quarter as many more are held out (20%% of all)",
    )
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument(
        "--iter-sample",
        type=int,
        default=10,
        help="EM iterations of the warm continuation that times one iteration",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="cap BLAS / OpenMP threads (threadpoolctl); default: no cap",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fits of each model, interleaved; medians are reported",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_samples = int(args.n_samples)

    timing_rows, quality_rows = [], []
    with thread_limit(args.threads):
        print(describe_environment(args.threads))
        print(
            f"- n={n_samples} training rows (+{TEST_FRACTION:.0%} of all held "
            f"out), d={N_FEATURES}, max_iter={args.max_iter}, tol={args.tol}, "
            f"iter_sample={args.iter_sample}, repeats={args.repeats}, "
            f"random_state={args.seed}"
        )
        print()
        for hierarchy in parse_hierarchies(args.hierarchies):
            trees, flats, truth_ll = bench_hierarchy(
                hierarchy,
                n_samples=n_samples,
                max_iter=args.max_iter,
                tol=args.tol,
                seed=args.seed,
                repeats=args.repeats,
                iter_sample=args.iter_sample,
            )
            tree, flat = trees[-1], flats[-1]
            gap = tree["train_log_likelihood"] - flat["train_log_likelihood"]
            name = str(hierarchy).replace(" ", "")
            timing_rows.append(
                [
                    name,
                    f"flat {math.prod(hierarchy)}",
                    f"{_median(trees, 'wall_fit'):.2f}",
                    f"{_median(flats, 'wall_fit'):.2f}",
                    f"{_ratio(trees, flats, 'wall_fit'):.2f}",
                    f"{_ratio(trees, flats, 'cpu_fit'):.2f}",
                    _iterations(tree),
                    _iterations(flat),
                    f"{_median(trees, 'wall_per_iter'):.3f}",
                    f"{_median(flats, 'wall_per_iter'):.3f}",
                    f"{_ratio(trees, flats, 'wall_per_iter'):.2f}",
                    f"{_ratio(trees, flats, 'cpu_per_iter'):.2f}",
                ]
            )
            quality_rows.append(
                [
                    name,
                    f"{tree['train_log_likelihood']:.4f}",
                    f"{flat['train_log_likelihood']:.4f}",
                    f"{truth_ll['train']:.4f}",
                    f"{gap:+.4f}",
                    f"{tree['test_log_likelihood']:.4f}",
                    f"{flat['test_log_likelihood']:.4f}",
                    f"{truth_ll['test']:.4f}",
                ]
            )
            print(f"done {name}", flush=True)
    print()
    print(
        markdown_table(
            [
                "tree",
                "flat",
                "tree fit s",
                "flat fit s",
                "fit ratio",
                "CPU fit ratio",
                "tree n_iter_",
                "flat n_iter_",
                "tree s/iter",
                "flat s/iter",
                "s/iter ratio",
                "CPU s/iter ratio",
            ],
            timing_rows,
        )
    )
    print()
    print(
        "`*`: not converged within max_iter. A tree's fit includes its start "
        "(flat pre-fit and placement runs), which its n_iter_ does not count; "
        f"s/iter: a warm continuation of {args.iter_sample} EM iterations."
    )
    print()
    print(
        markdown_table(
            [
                "tree",
                "tree train log-lik",
                "flat train log-lik",
                "truth train log-lik",
                "tree - flat (train)",
                "tree test log-lik",
                "flat test log-lik",
                "truth test log-lik",
            ],
            quality_rows,
        )
    )


if __name__ == "__main__":
    main()
