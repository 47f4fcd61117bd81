"""Tree starts: how close a tree's fit gets to the truth, against today's code.

For each hierarchy and seed, data from ``make_hme_regression`` (d=10;
``--n-samples`` training rows and a quarter as many held out, split as
``bench_tree.py`` does), and three fits from the same ``random_state``:
the flat mixture with as many experts, the tree with this checkout's
start, and the tree with the start of another checkout (``--base``, run
in a subprocess with ``PYTHONPATH`` set to it). Reported: training and
test mean log-likelihood of each and of the generating model, the test
gap to the truth's in percent, and fit CPU seconds (one thread).

    python benchmarks/tree_starts.py --hierarchies "4,4;2,2,2;3,3" \\
        --n-samples 2e4 --seeds 0,1,2 --base /work/wt/base
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
import warnings

from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_regression


def fit_one(hierarchy, n_samples, seed, flat):
    X, y, truth = make_hme_regression(
        round(n_samples / 0.8), 10, hierarchy, random_state=seed, return_truth=True
    )
    X, X_test, y, y_test = train_test_split(
        X, y, train_size=n_samples, random_state=seed
    )
    shape = {"n_experts": math.prod(hierarchy)} if flat else {"hierarchy": hierarchy}
    model = MixtureOfExpertsRegressor(max_iter=200, random_state=seed, **shape)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.process_time()
        model.fit(X, y)
        seconds = time.process_time() - started
    return {
        "train": float(model.log_likelihood_),
        "test": float(model.log_likelihood(X_test, y_test).mean()),
        "seconds": seconds,
        "truth_train": float(truth.log_likelihood(X, y).mean()),
        "truth_test": float(truth.log_likelihood(X_test, y_test).mean()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hierarchies", default="4,4;2,2,2;3,3")
    parser.add_argument("--n-samples", type=float, default=2e4)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--base", default=None, help="checkout of the code to compare")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    n_samples = int(args.n_samples)
    if args.one:  # a single tree fit, for the base's subprocess
        hierarchy, seed = json.loads(args.one)
        print(json.dumps(fit_one(tuple(hierarchy), n_samples, seed, flat=False)))
        return
    print(
        "| tree | seed | truth train | flat train | tree train | base train "
        "| truth test | flat test | tree test (gap) | base test (gap) "
        "| flat s | tree s | base s | tree s / base s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for text in args.hierarchies.split(";"):
        hierarchy = tuple(int(b) for b in text.split(","))
        for seed in (int(s) for s in args.seeds.split(",")):
            flat = fit_one(hierarchy, n_samples, seed, flat=True)
            tree = fit_one(hierarchy, n_samples, seed, flat=False)
            base = None
            if args.base:
                output = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--n-samples",
                        str(n_samples),
                        "--one",
                        json.dumps([hierarchy, seed]),
                    ],
                    env={**os.environ, "PYTHONPATH": args.base},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                base = json.loads(output.splitlines()[-1])

            def gap(run):
                return 100 * (run["test"] - run["truth_test"]) / abs(run["truth_test"])

            cells = [
                text,
                seed,
                f"{tree['truth_train']:.4f}",
                f"{flat['train']:.4f}",
                f"{tree['train']:.4f}",
                f"{base['train']:.4f}" if base else "-",
                f"{tree['truth_test']:.4f}",
                f"{flat['test']:.4f}",
                f"{tree['test']:.4f} ({gap(tree):+.2f}%)",
                f"{base['test']:.4f} ({gap(base):+.2f}%)" if base else "-",
                f"{flat['seconds']:.1f}",
                f"{tree['seconds']:.1f}",
                f"{base['seconds']:.1f}" if base else "-",
                f"{tree['seconds'] / base['seconds']:.2f}" if base else "-",
            ]
            print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
