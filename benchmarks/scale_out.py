"""Scale out: partial_fit over a stream and fit on a dask.array, against fit.

Three ways to fit the same mixture (d=10, K=4 linear experts, soft
routing) to rows drawn from one known model:

* ``memory``: ``fit`` on 1e6 rows in memory (the reference);
* ``stream``: ``partial_fit`` over 1e7 rows, drawn chunk by chunk and
  dropped after use, so that the process never holds more than a chunk;
* ``dask``: ``fit`` on a 1e7-row ``dask.array`` generated on the workers of
  a ``LocalCluster`` (two worker processes, one thread each): the client
  never holds the data.

Each runs in a fresh process, so that its peak resident memory (``ru_maxrss``
of that process: the client's, for Dask) is its own. All three are scored
on the same 1e5 held-out rows (mean log-likelihood); the table gives time
and memory as ratios to the in-memory fit of 1e6 rows, measured in the same
run.

    python benchmarks/scale_out.py                 # the issue's sizes
    python benchmarks/scale_out.py --rows 200000   # a quick smoke run
"""

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np

N_FEATURES, N_EXPERTS = 10, 4
TEST_ROWS = 100_000


def _truth():
    from skmoe.datasets import make_moe_regression

    return make_moe_regression(
        n_samples=1,
        n_features=N_FEATURES,
        n_experts=N_EXPERTS,
        random_state=0,
        return_truth=True,
    )[2]


def draw_rows(truth, n_rows, seed):
    """Draw ``n_rows`` rows (X, y) from the known mixture ``truth``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES))
    return X, draw_targets(X, truth, rng)


def draw_targets(X, truth, rng):
    gate = truth.predict_gate(X)
    cumulative = np.cumsum(gate, axis=1)
    expert = (rng.random((X.shape[0], 1)) > cumulative).sum(axis=1)
    expert = np.minimum(expert, gate.shape[1] - 1)
    mean = X @ truth.expert_coef.T + truth.expert_intercept
    rows = np.arange(X.shape[0])
    noise = truth.noise_std[expert] * rng.standard_normal(X.shape[0])
    return mean[rows, expert] + noise


def _block_targets(X, truth, block_info=None):
    """Targets of one block of a dask array, seeded by the block's place."""
    seed = 1_000 + block_info[0]["chunk-location"][0]
    return draw_targets(X, truth, np.random.default_rng(seed))


def _score(moe, truth):
    X_test, y_test = draw_rows(truth, TEST_ROWS, seed=1)
    return float(moe.log_likelihood(X_test, y_test).mean())


def run_memory(rows, chunk):
    from skmoe import MixtureOfExpertsRegressor

    truth = _truth()
    X, y = draw_rows(truth, rows, seed=2)
    start = time.perf_counter()
    moe = MixtureOfExpertsRegressor(n_experts=N_EXPERTS, random_state=0).fit(X, y)
    return time.perf_counter() - start, _score(moe, truth), {"n_iter": moe.n_iter_}


def run_stream(rows, chunk):
    from skmoe import MixtureOfExpertsRegressor

    truth = _truth()
    moe = MixtureOfExpertsRegressor(n_experts=N_EXPERTS, random_state=0)
    drawing = 0.0
    start = time.perf_counter()
    for i, first in enumerate(range(0, rows, chunk)):
        tick = time.perf_counter()
        X, y = draw_rows(truth, min(chunk, rows - first), seed=10_000 + i)
        drawing += time.perf_counter() - tick
        moe.partial_fit(X, y)
    # The time to draw the rows is the stream's, not the fit's.
    elapsed = time.perf_counter() - start - drawing
    return elapsed, _score(moe, truth), {"n_steps": moe.n_steps_}


def run_dask(rows, chunk):
    import dask.array as da
    from distributed import Client, LocalCluster

    from skmoe import MixtureOfExpertsRegressor

    truth = _truth()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        X = da.random.default_rng(3).standard_normal(
            (rows, N_FEATURES), chunks=(chunk, N_FEATURES)
        )
        y = X.map_blocks(_block_targets, truth, drop_axis=1, dtype=np.float64)
        X, y = X.persist(), y.persist()  # generated on the workers
        start = time.perf_counter()
        moe = MixtureOfExpertsRegressor(n_experts=N_EXPERTS, random_state=0).fit(X, y)
        elapsed = time.perf_counter() - start
    return elapsed, _score(moe, truth), {"n_iter": moe.n_iter_}


PHASES = {"memory": run_memory, "stream": run_stream, "dask": run_dask}


def _phase(name, rows, chunk):
    warnings.simplefilter("ignore")
    from threadpoolctl import threadpool_limits

    # One BLAS thread per process: the Dask workers get one core each, and
    # the in-memory and stream fits are measured on the same footing.
    with threadpool_limits(1):
        elapsed, log_lik, extra = PHASES[name](rows, chunk)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"time": elapsed, "log_lik": log_lik, "peak_mb": peak_mb, **extra})
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--memory-rows", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        rows = args.rows if args.phase != "memory" else args.memory_rows
        _phase(args.phase, rows, args.chunk)
        return
    memory_rows = args.memory_rows or args.rows // 10
    results = {}
    for name in ("memory", "stream", "dask"):
        command = [
            sys.executable,
            __file__,
            "--phase",
            name,
            "--rows",
            str(args.rows),
            "--memory-rows",
            str(memory_rows),
            "--chunk",
            str(args.chunk),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True)
        results[name] = json.loads(output.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    reference = results["memory"]
    print()
    print(
        f"rows: in memory {memory_rows:.0e}, stream and Dask {args.rows:.0e}; "
        f"chunks of {args.chunk:.0e}; d={N_FEATURES}, K={N_EXPERTS}"
    )
    print(
        f"{'fit':34s} {'time / memory fit':>17s} {'peak RSS / memory fit':>21s} "
        f"{'test log-lik':>12s} {'vs memory fit':>13s}"
    )
    labels = {
        "memory": f"fit, {memory_rows:.0e} rows in memory",
        "stream": f"partial_fit, {args.rows:.0e} rows streamed",
        "dask": f"fit, {args.rows:.0e}-row dask.array",
    }
    for name, label in labels.items():
        r = results[name]
        gap = (r["log_lik"] - reference["log_lik"]) / abs(reference["log_lik"])
        print(
            f"{label:34s} {r['time'] / reference['time']:17.2f} "
            f"{r['peak_mb'] / reference['peak_mb']:21.2f} {r['log_lik']:12.5f} "
            f"{gap:+13.3%}"
        )


if __name__ == "__main__":
    main()
