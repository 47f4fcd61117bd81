"""One fit of a soft mixture of linear experts, to run under a profiler.

The data are generated before the fit, so that a profile of this script
shows the data generation, the imports and the fit as separate entries.

Run from the repository root::

    python -m cProfile -s cumtime benchmarks/profile_fit.py | head -40
    python -m cProfile -s cumtime benchmarks/profile_fit.py --hierarchy 2,2,2
"""

import argparse
import math

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_regression, make_moe_regression


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=float, default=1e5)
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument(
        "--hierarchy", default="4", help='tree of gates, e.g. "4" (flat) or "2,2"'
    )
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    hierarchy = tuple(int(b) for b in args.hierarchy.split(","))
    n_samples = int(args.n_samples)
    if len(hierarchy) == 1:
        X, y = make_moe_regression(
            n_samples, args.n_features, hierarchy[0], random_state=args.seed
        )
        model = MixtureOfExpertsRegressor(n_experts=hierarchy[0])
    else:
        X, y = make_hme_regression(
            n_samples, args.n_features, hierarchy, random_state=args.seed
        )
        model = MixtureOfExpertsRegressor(hierarchy=hierarchy)
    model.set_params(max_iter=args.max_iter, random_state=args.seed).fit(X, y)
    print(
        f"n={n_samples} d={args.n_features} experts={math.prod(hierarchy)} "
        f"hierarchy={hierarchy}: n_iter_={model.n_iter_}, "
        f"converged_={model.converged_}, "
        f"log_likelihood_={model.log_likelihood_:.4f}"
    )


if __name__ == "__main__":
    main()
