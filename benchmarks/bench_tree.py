"""Cost of a tree of gates against the flat mixture with as many experts.

For every hierarchy, data are drawn from a mixture with that tree of gates
(``make_hme_regression``; ``make_moe_regression`` for a flat ``(K,)``), and
two soft mixtures of linear experts are fitted on the same rows, back to
back, from the same ``random_state``:

* the tree, ``MixtureOfExpertsRegressor(hierarchy=h)``;
* the flat mixture of the same leaf count,
  ``MixtureOfExpertsRegressor(n_experts=prod(h))``.

For each model: total fit seconds, EM iterations (``n_iter_``), seconds per
iteration as ``fit / n_iter_`` and, without the initialisation, as
``(fit - fit_1) / (n_iter_ - 1)`` where ``fit_1`` is a fit with
``max_iter=1`` (k-means start, initial M-step and one EM iteration), and
the final mean training log-likelihood next to that of the generating model.
The ratios tree/flat come from fits timed back to back in the same run (the
median of the paired ratios with ``--repeats``), in wall time and in CPU
time; with ``--threads 1`` the CPU time is the steadier of the two on a
shared machine (see ``_common.timed``). The ``(4,)`` row compares two
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

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_regression, make_moe_regression

N_FEATURES = 10


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


def measure(model, X, y):
    """Fit ``model`` twice (max_iter=1, then in full); return its numbers.

    Times are pairs ``(wall, cpu)``; see ``_common.timed``.
    """
    max_iter = model.max_iter
    first_wall, first_cpu, _ = timed(model.set_params(max_iter=1).fit, X, y)
    wall, cpu, _ = timed(model.set_params(max_iter=max_iter).fit, X, y)
    n_iter = model.n_iter_
    result = {
        "n_iter": n_iter,
        "converged": model.converged_,
        "log_likelihood": model.log_likelihood_,
    }
    for clock, seconds, first in (("wall", wall, first_wall), ("cpu", cpu, first_cpu)):
        result[f"{clock}_fit"] = seconds
        result[f"{clock}_first"] = first
        result[f"{clock}_per_iter"] = seconds / n_iter
        result[f"{clock}_per_iter_excl"] = (
            (seconds - first) / (n_iter - 1) if n_iter > 1 else float("nan")
        )
    return result


def bench_hierarchy(hierarchy, *, n_samples, max_iter, tol, seed, repeats):
    """Fit the tree and its flat counterpart, interleaved, ``repeats`` times.

    Returns the tree's and the flat mixture's measurements of every repeat
    and the generating model's mean log-likelihood on the training rows.
    """
    X, y, truth = make_data(hierarchy, n_samples, seed)
    n_leaves = math.prod(hierarchy)
    common = {"max_iter": max_iter, "tol": tol, "random_state": seed}
    # An untimed warm-up keeps first-call costs (lazy imports, thread pools,
    # allocator growth) out of whichever model would be timed first.
    MixtureOfExpertsRegressor(hierarchy=hierarchy, **common).fit(X[:2000], y[:2000])
    trees, flats = [], []
    for repeat in range(repeats):
        tree = MixtureOfExpertsRegressor(hierarchy=hierarchy, **common)
        flat = MixtureOfExpertsRegressor(n_experts=n_leaves, **common)
        # Alternate which model goes first, so that a drift in the machine's
        # load does not always favour the same one.
        if repeat % 2:
            flats.append(measure(flat, X, y))
            trees.append(measure(tree, X, y))
        else:
            trees.append(measure(tree, X, y))
            flats.append(measure(flat, X, y))
    truth_log_likelihood = float(truth.log_likelihood(X, y).mean())
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
    parser.add_argument("--n-samples", type=float, default=1e5)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4)
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
            f"- n={n_samples}, d={N_FEATURES}, max_iter={args.max_iter}, "
            f"tol={args.tol}, random_state={args.seed}"
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
            )
            tree, flat = trees[-1], flats[-1]
            name = str(hierarchy).replace(" ", "")
            flat_name = f"flat {math.prod(hierarchy)}"
            timing_rows.append(
                [
                    name,
                    flat_name,
                    f"{_median(trees, 'wall_fit'):.2f}",
                    f"{_median(flats, 'wall_fit'):.2f}",
                    f"{_ratio(trees, flats, 'wall_fit'):.2f}",
                    _iterations(tree),
                    _iterations(flat),
                    f"{tree['n_iter'] / flat['n_iter']:.2f}",
                    f"{_median(trees, 'wall_per_iter'):.3f}",
                    f"{_median(flats, 'wall_per_iter'):.3f}",
                    f"{_ratio(trees, flats, 'wall_per_iter'):.2f}",
                    f"{_ratio(trees, flats, 'wall_per_iter_excl'):.2f}",
                    f"{_ratio(trees, flats, 'cpu_per_iter'):.2f}",
                    f"{_ratio(trees, flats, 'cpu_per_iter_excl'):.2f}",
                    f"{_median(trees, 'wall_first'):.2f}",
                    f"{_median(flats, 'wall_first'):.2f}",
                    f"{_ratio(trees, flats, 'cpu_first'):.2f}",
                ]
            )
            quality_rows.append(
                [
                    name,
                    f"{tree['log_likelihood']:.4f}",
                    f"{flat['log_likelihood']:.4f}",
                    f"{tree['log_likelihood'] - flat['log_likelihood']:+.4f}",
                    f"{truth_ll:.4f}",
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
                "tree iters",
                "flat iters",
                "iters ratio",
                "tree s/iter",
                "flat s/iter",
                "s/iter ratio",
                "s/iter ratio excl. init",
                "CPU s/iter ratio",
                "CPU s/iter ratio excl. init",
                "tree init+1 iter s",
                "flat init+1 iter s",
                "CPU init+1 iter ratio",
            ],
            timing_rows,
        )
    )
    print()
    print("`*`: not converged within max_iter.")
    print()
    print(
        markdown_table(
            [
                "tree",
                "tree train log-lik",
                "flat train log-lik",
                "tree - flat",
                "generating model log-lik",
            ],
            quality_rows,
        )
    )


if __name__ == "__main__":
    main()
