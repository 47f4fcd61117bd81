"""The default classifier's speed, before and after issue 16, in one run.

The default ``MixtureOfExpertsClassifier(n_experts=4)`` on
``make_moe_classification(20000, 10, n_experts=4, n_classes=3)`` (the
issue's case), fitted over several seeds by two versions of the code: the
base commit 929be37 (``--base``, a checkout of it, default
``/work/wt/base16``) and this repository. Every fit runs in a subprocess
with ``PYTHONPATH`` set to its code, the two versions alternating seed by
seed, so that both see the same load on the machine. The regressor's time
per row and iteration (the default ``MixtureOfExpertsRegressor`` on
``make_moe_regression`` of the same shape, this repository's code) is the
yardstick of the issue's second target.

Per fit: the wall time, the EM iterations of every run in it (the start's
runs, the restarts and the split-and-merge moves, counted where every EM run
passes), the time per row and iteration (wall time / rows / iterations),
the final objective (``objective_history_[-1]``, the mean penalised
log-likelihood EM maximises: higher is better) and the mean log-likelihood
of as many held-out rows of the same model (higher is better).
``--kind regressor`` pairs the two versions on the regressor instead (the
fused path's target), and ``--params`` gives both versions the same
parameters.

Run from the repository root::

    python benchmarks/classifier_speed.py
    python benchmarks/classifier_speed.py --seeds 0,1,2,3,4 --threads 1
    python benchmarks/classifier_speed.py --params '{"split_merge": 2}'
    python benchmarks/classifier_speed.py --kind regressor --n-samples 100000
    python benchmarks/classifier_speed.py --base /tmp/before --seeds 0,1,2 \
        --params '{"backend": "torch", "device": "cpu"}'

``--params`` with ``"backend": "torch"`` fits on torch tensors (the
whole-array EM); ``--threads`` then limits torch's threads too.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._base import BaseMixtureOfExperts
from skmoe.datasets import make_moe_classification, make_moe_regression

kind, seed, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
params = json.loads(sys.argv[5])
iterations = [0]
# Every EM run goes through one function: the estimator's _fit_once before
# issue 16 finished, _fitting.run_em_on_rows after.
if hasattr(BaseMixtureOfExperts, "_fit_once"):
    owner, name = BaseMixtureOfExperts, "_fit_once"
else:
    import skmoe._fitting as owner

    name = "run_em_on_rows"
fit_once = getattr(owner, name)


def counted(*args, **kwargs):
    run = fit_once(*args, **kwargs)
    iterations[0] += run[3]  # n_iter, by position in every version
    return run


setattr(owner, name, counted)
if kind == "classifier":
    X, y = make_moe_classification(
        n_samples=n, n_features=10, n_experts=4, n_classes=3, random_state=1
    )
    model = MixtureOfExpertsClassifier(n_experts=4, random_state=seed, **params)
else:
    X, y = make_moe_regression(n, 10, 4, random_state=1)[:2]
    model = MixtureOfExpertsRegressor(n_experts=4, random_state=seed, **params)
limits = {} if threads == "all" else {"limits": int(threads)}
if params.get("backend") == "torch" and threads != "all":
    import torch  # its own thread pool, which threadpoolctl does not limit

    torch.set_num_threads(int(threads))
with threadpool_limits(**limits):
    started = time.perf_counter()
    model.fit(X, y)
    elapsed = time.perf_counter() - started
found = {
    "time": elapsed,
    "iterations": iterations[0],
    "n_iter": int(model.n_iter_),
    "objective": float(model.objective_history_[-1]),
}
if kind == "classifier":
    # Held-out rows: rows n to 2n of the same generator (the model is drawn
    # first, then X row by row, then the labels), which the fit never saw.
    Xt, yt = make_moe_classification(
        n_samples=2 * n, n_features=10, n_experts=4, n_classes=3, random_state=1
    )
    proba = model.predict_proba(Xt[n:])
    found["test_log_lik"] = float(np.mean(np.log(proba[np.arange(n), yt[n:]])))
print(json.dumps(found))
"""


def run(root, kind, seed, n, threads, params="{}"):
    """Return the worker's answer for one fit with ``PYTHONPATH=root``."""
    env = dict(os.environ, PYTHONPATH=root)
    # Run from ``root``: ``python -c`` puts the working directory first on
    # the path, before PYTHONPATH.
    out = subprocess.run(
        [sys.executable, "-c", WORKER, kind, str(seed), str(n), threads, params],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    found["us_per_row_iter"] = 1e6 * found["time"] / n / max(found["iterations"], 1)
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="/work/wt/base16")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument(
        "--kind",
        default="classifier",
        choices=["classifier", "regressor"],
        help="the model both versions fit (the regressor: make_moe_regression)",
    )
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--threads", default="1", help='BLAS threads, or "all"')
    parser.add_argument(
        "--params",
        default="{}",
        help="JSON of the classifier's parameters, the same for both versions "
        "(e.g. '{\"split_merge\": 2}' where the default changed between them)",
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    roots = {"before": os.path.abspath(args.base), "after": REPO}
    print(
        f"{args.kind}, n={args.n_samples}, d=10, 3 classes, K=4; "
        f"BLAS threads {args.threads}; "
        f"parameters {args.params}"
    )
    print(f"before: {roots['before']}; after: {roots['after']}")
    print()
    print(
        "| seed | before s | after s | speed-up | before iters | after iters "
        "| before us/row/iter | after us/row/iter | before objective "
        "| after objective | before test log-lik | after test log-lik |"
    )
    print("|" + "---|" * 12)
    totals = {"before": 0.0, "after": 0.0}
    per_row = {"before": [], "after": []}
    for seed in seeds:
        found = {
            name: run(root, args.kind, seed, args.n_samples, args.threads, args.params)
            for name, root in roots.items()
        }
        for name in roots:
            totals[name] += found[name]["time"]
            per_row[name].append(found[name]["us_per_row_iter"])
        b, a = found["before"], found["after"]
        print(
            f"| {seed} | {b['time']:.2f} | {a['time']:.2f} "
            f"| {b['time'] / a['time']:.2f}x | {b['iterations']} "
            f"| {a['iterations']} | {b['us_per_row_iter']:.2f} "
            f"| {a['us_per_row_iter']:.2f} | {b['objective']:.8f} "
            f"| {a['objective']:.8f} | {b.get('test_log_lik', np.nan):.8f} "
            f"| {a.get('test_log_lik', np.nan):.8f} |",
            flush=True,
        )
    regressor = []
    if args.kind == "classifier":
        regressor = [
            run(REPO, "regressor", seed, args.n_samples, args.threads) for seed in seeds
        ]
    print()
    print(
        f"total: before {totals['before']:.1f} s, after {totals['after']:.1f} s, "
        f"speed-up {totals['before'] / totals['after']:.2f}x"
    )
    for name in roots:
        values = sorted(per_row[name])
        print(f"{args.kind} {name}: median {values[len(values) // 2]:.2f} us/row/iter")
    if regressor:
        values = sorted(found["us_per_row_iter"] for found in regressor)
        print(f"regressor (after): median {values[len(values) // 2]:.2f} us/row/iter")


if __name__ == "__main__":
    main()
