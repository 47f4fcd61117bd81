"""Fit time with the default thread pools against one thread (issue 14).

For every size n, the default regressor (``MixtureOfExpertsRegressor(
n_experts=4)``, d=10, data from ``make_moe_regression``) and, at the
classifier sizes, the default classifier are fitted twice per repeat, back
to back, alternating which goes first: once as a user calls ``fit`` (the
thread pools as the process has them) and once inside
``threadpool_limits(limits=1)``, which pins BLAS and OpenMP to one thread.
Reported: the median wall seconds of each, the median (and range) of the
paired wall-time ratios default / pinned (target: at most 1.05, a default
fit never slower than a pinned one) and the median paired ratio of CPU
time, which counts threads that spin while waiting and moves less with the
load of other processes, and the CPU seconds that threads other than the
caller's used during a default fit (Linux): zero when the fit runs on one
thread.

``--busy`` starts competing processes (one per core by default,
``--burners``), each a pure-Python spin loop, for the whole run: the case
of a machine whose cores are used by something else, where threads that
wait for each other spin instead of working.

``--n-features`` sets d (10). ``--products 10,100,400`` times, instead of
fits, single products of EM's shapes at those d with one and two BLAS
threads (best and median of 25 runs, alternated): ``_fused``'s GEMM of a
chunk's packed products by its weight rows, X @ W (1e5 x (d+1) by
(d+1) x 4, the E-step's and the predictions' product) and the weighted
Gram matrix X.T @ (w X) at n=1e5 (the whole-array M-step's).

``--backend torch`` fits with ``backend="torch", device="cpu"``; its pinned
fits also set torch's CPU threads to one (``torch.set_num_threads``).

To time the code before a change, run the same script against another
checkout: ``PYTHONPATH=/path/to/other/checkout python benchmarks/threads.py``
(the header names the skmoe sources that were timed).

Run from the repository root::

    python benchmarks/threads.py
    python benchmarks/threads.py --busy
    python benchmarks/threads.py --sizes 1e4,1e5 --classifier-sizes 1e4 --repeats 5
"""

import argparse
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time

import numpy as np
from _common import (
    describe_environment,
    format_size,
    markdown_table,
    median,
    parse_sizes,
    timed,
)
from threadpoolctl import ThreadpoolController, threadpool_limits

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_classification, make_moe_regression

N_EXPERTS = 4


def _spin():
    """Use one core until terminated (no BLAS, no threads of its own)."""
    count = 0
    while True:
        count += 1


def start_burners(n_burners):
    """Start ``n_burners`` spinning processes; return them."""
    burners = [
        multiprocessing.Process(target=_spin, daemon=True) for _ in range(n_burners)
    ]
    for burner in burners:
        burner.start()
    return burners


def make_data(kind, n, seed, n_features):
    # On one thread: threaded OpenBLAS workers spin for a while after a
    # call, and would steal the core from the first fit timed after it.
    with threadpool_limits(limits=1):
        return _make_data(kind, n, seed, n_features)


def _make_data(kind, n, seed, n_features):
    if kind == "regressor":
        X, y = make_moe_regression(
            n_samples=n, n_features=n_features, n_experts=N_EXPERTS, random_state=seed
        )
        return X, y, MixtureOfExpertsRegressor
    X, y = make_moe_classification(
        n_samples=n, n_features=n_features, n_experts=N_EXPERTS, random_state=seed
    )
    return X, y, MixtureOfExpertsClassifier


@contextlib.contextmanager
def torch_threads(n_threads):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_of_other_threads():
    """Return CPU seconds used so far by this process's threads but this one.

    Linux only (``/proc``); None elsewhere. Threaded BLAS, OpenMP and torch
    do their work, and spin, in threads other than the caller's.
    """
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        return None
    me = str(threading.get_native_id())
    ticks = 0
    for task in os.listdir(tasks):
        if task == me:
            continue
        try:
            with open(f"{tasks}/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def time_pair(estimator_class, X, y, seed, pinned_first, backend):
    """Return the (wall, cpu, other threads' cpu) of a default and a pinned fit.

    The two are fitted back to back. CPU time counts every thread of this
    process, spinning ones included.
    """
    seconds = {}
    for pinned in (pinned_first, not pinned_first):
        model = estimator_class(n_experts=N_EXPERTS, random_state=seed)
        if backend == "torch":
            model.set_params(backend="torch", device="cpu")
        with contextlib.ExitStack() as stack:
            if pinned:
                stack.enter_context(threadpool_limits(limits=1))
                if backend == "torch":
                    stack.enter_context(torch_threads(1))
            others = cpu_of_other_threads()
            wall, cpu, _ = timed(model.fit, X, y)
            if others is not None:
                others = cpu_of_other_threads() - others
            seconds[pinned] = wall, cpu, others
    return seconds[False], seconds[True]


def time_products(widths, repeats=25):
    """Print the best and median seconds of EM's products, 1 and 2 threads."""
    controller = ThreadpoolController()
    rng = np.random.default_rng(0)
    rows = []
    for d in widths:
        p = d + 1
        n_pairs = d * (d + 1) // 2
        chunk = min(1024, max(512, (1 << 21) // (p * (p + 1) // 2 * 8)))
        packed = rng.standard_normal((n_pairs, chunk))
        weights = rng.standard_normal((10, chunk))
        X = rng.standard_normal((100_000, p))
        W = rng.standard_normal((p, N_EXPERTS))
        wX = X * rng.random((100_000, 1))
        products = [
            (f"packed ({n_pairs} x {chunk}) @ ({chunk} x 10)", packed, weights.T),
            (f"X @ W (1e5 x {p}) @ ({p} x 4)", X, W),
            (f"X.T @ (w X), 1e5 x {p}", X.T, wX),
        ]
        for name, left, right in products:
            seconds = {1: [], 2: []}
            for r in range(repeats):
                for n_threads in (1, 2) if r % 2 else (2, 1):
                    with controller.limit(limits=n_threads, user_api="blas"):
                        start = time.perf_counter()
                        left @ right
                        seconds[n_threads].append(time.perf_counter() - start)
            best = min(seconds[2]) / min(seconds[1])
            typical = median(seconds[2]) / median(seconds[1])
            rows.append(
                [
                    d,
                    name,
                    f"{min(seconds[1]) * 1e3:.3f}",
                    f"{best:.2f}",
                    f"{typical:.2f}",
                ]
            )
            print(" ".join(str(cell) for cell in rows[-1]), flush=True)
    headers = ["d", "product", "1 thread ms (best)", "2 / 1 best", "2 / 1 median"]
    print("\n" + markdown_table(headers, rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1e4,1e5,1e6"))
    parser.add_argument(
        "--classifier-sizes", type=parse_sizes, default=parse_sizes("1e4,1e5")
    )
    # Even repeats: each variant goes first in half the pairs (under load,
    # the first fit of a pair was seen 10% slower or faster).
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument(
        "--large-repeats", type=int, default=2, help="repeats from --large-size on"
    )
    parser.add_argument("--large-size", type=float, default=1e6)
    parser.add_argument("--busy", action="store_true", help="start CPU burners")
    parser.add_argument("--burners", type=int, default=os.cpu_count())
    parser.add_argument("--n-features", type=int, default=10)
    parser.add_argument("--products", type=parse_sizes, default=None)
    parser.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # A terminated run stops its burners too (``finally`` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    burners = start_burners(args.burners) if args.busy else []
    try:
        print(describe_environment(None))
        print(
            f"- burners: {len(burners)}; backend: {args.backend}; "
            f"d={args.n_features}\n",
            flush=True,
        )
        if args.products:
            time_products(args.products)
            return
        cases = [("regressor", n) for n in args.sizes]
        cases += [("classifier", n) for n in args.classifier_sizes]
        # Untimed warm-up: imports, the threadpool controller, first calls.
        for kind in {kind for kind, _ in cases}:
            X, y, estimator_class = make_data(kind, 2000, args.seed, args.n_features)
            time_pair(estimator_class, X, y, args.seed, False, args.backend)
        rows = []
        for kind, n in cases:
            X, y, estimator_class = make_data(kind, n, args.seed, args.n_features)
            repeats = args.large_repeats if n >= args.large_size else args.repeats
            pairs = [
                time_pair(estimator_class, X, y, args.seed, r % 2 == 1, args.backend)
                for r in range(repeats)
            ]
            wall = [default[0] / pinned[0] for default, pinned in pairs]
            cpu = [default[1] / pinned[1] for default, pinned in pairs]
            rows.append(
                [
                    kind,
                    format_size(n),
                    repeats,
                    f"{median([default[0] for default, _ in pairs]):.2f}",
                    f"{median([pinned[0] for _, pinned in pairs]):.2f}",
                    f"{median(wall):.2f} ({min(wall):.2f}-{max(wall):.2f})",
                    f"{median(cpu):.2f}",
                    "n/a"
                    if pairs[0][0][2] is None
                    else f"{median([default[2] for default, _ in pairs]):.2f}",
                ]
            )
            print(" ".join(str(cell) for cell in rows[-1]), flush=True)
        try:
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        except OSError:
            load = "n/a"
        print(f"\nload average at the end: {load}\n")
        print(
            markdown_table(
                [
                    "model",
                    "n",
                    "repeats",
                    "default s",
                    "pinned s",
                    "wall default / pinned (range)",
                    "CPU default / pinned",
                    "default: CPU s of other threads",
                ],
                rows,
            )
        )
    finally:
        for burner in burners:
            burner.terminate()
            burner.join()


if __name__ == "__main__":
    main()
