"""Benchmark suite: speed, quality, throughput and memory of the regressor.

Every figure is measured in the same run, on the same data, so that ratios
between them mean something on a shared, noisy machine. For every size n,
number of features d, number of experts K and structure (flat,
``n_experts=K``, or a tree of gates, ``hierarchy=(r, r)`` with r*r = K:
(2, 2) for K=4, (4, 4) for K=16), n training rows and n/4 held-out rows
(20% of all) are drawn from a known mixture of that shape
(``make_moe_regression`` / ``make_hme_regression``) and the script reports:

* the main target row first: n=1e6, d=10, K=4, flat, soft routing,
  tol=1e-6: the time of a fresh fit (start included) and its iterations;
* the grid: fit seconds (wall and CPU), ``n_iter_`` and seconds per EM
  iteration of ``MixtureOfExpertsRegressor(routing="soft", tol=1e-6,
  max_iter=200)``; seconds per iteration are timed on a warm continuation
  (``set_params(warm_start=True, max_iter=10, tol=0.0)``, refit, divide by
  the iterations run), as in ``bench_tree.py``;
* test RMSE of the mixture against ``LinearRegression`` and
  ``HistGradientBoostingRegressor`` (and the generating model), with their
  fit seconds and the paired ratios of fit times;
* the vectorized expert pool (``estimator=None``) against the generic path
  (``estimator=[LinearRegression() for _ in range(K)]``, cloned scikit-learn
  experts) from the same ``random_state``: seconds per iteration, their
  ratio, and the relative difference of the final log-likelihoods;
* achieved GFLOP/s of the experts' M-step against NumPy's own float64
  matmul rate measured in the same run (``time_expert_m_step``);
* scaling: time(1e6) / time(1e5) per EM iteration and for a whole fit of a
  fixed number of iterations (``tol=0``);
* peak memory of a fit, measured in a fresh subprocess with ``tracemalloc``
  (and, as a cross-check, the growth of the resident set).

Large fits are slow today: see ``--large-max-iter``,
``--many-experts-max-iter`` and ``--large-structures`` (capped rows are
marked) and ``--full``. Progress goes to stderr, tables to stdout.

Run from the repository root::

    python benchmarks/run.py --quick
    python benchmarks/run.py
    python benchmarks/run.py --sizes 1e6 --dims 10 --experts 4 --structures flat
"""

import argparse
import copy
import functools
import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from _common import (
    describe_environment,
    format_size,
    markdown_table,
    median,
    parse_sizes,
    thread_limit,
    timed,
)
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

import skmoe
from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_regression, make_moe_regression

TEST_FRACTION = 0.2
TOL = 1e-6
MAIN_TARGET = (1_000_000, 10, 4, "flat")
QUICK = {"sizes": "1e3,1e4,1e5", "dims": "10", "experts": "4"}
FULL = {"sizes": "1e3,1e4,1e5,1e6", "dims": "10,20", "experts": "4,16"}


# ---------------------------------------------------------------------------
# Data and models
# ---------------------------------------------------------------------------


def tree_for(n_experts):
    """Return the square tree ``(r, r)`` with ``n_experts`` leaves, or None."""
    r = math.isqrt(n_experts)
    return (r, r) if r >= 2 and r * r == n_experts else None


def make_split(n_samples, n_features, n_experts, structure, seed):
    """Return ``X, X_test, y, y_test, truth``: n training rows, n/4 held out.

    Arrays are float64 and C-contiguous (``train_test_split`` copies), as
    the estimator uses them.
    """
    n_total = round(n_samples / (1 - TEST_FRACTION))
    if structure == "flat":
        X, y, truth = make_moe_regression(
            n_total, n_features, n_experts, random_state=seed, return_truth=True
        )
    else:
        X, y, truth = make_hme_regression(
            n_total,
            n_features,
            tree_for(n_experts),
            random_state=seed,
            return_truth=True,
        )
    X, X_test, y, y_test = train_test_split(
        X, y, train_size=n_samples, random_state=seed
    )
    return X, X_test, y, y_test, truth


def make_moe(n_experts, structure, *, max_iter, seed, tol=TOL, estimator=None):
    """Return the benchmarked mixture: soft routing, linear experts."""
    shape = (
        {"n_experts": n_experts}
        if structure == "flat"
        else {"hierarchy": tree_for(n_experts)}
    )
    return MixtureOfExpertsRegressor(
        estimator,
        routing="soft",
        tol=tol,
        max_iter=max_iter,
        random_state=seed,
        **shape,
    )


def rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


def per_iteration(model, X, y, iter_sample):
    """Continue a fitted model ``iter_sample`` EM iterations; time per iteration.

    Returns ``(wall, cpu)`` seconds per iteration of the continuation (it
    carries the per-fit overhead: validation, design cache, one E-step);
    the model's parameters are restored afterwards, its fit moved on.
    """
    settings = model.get_params()
    model.set_params(warm_start=True, max_iter=iter_sample, tol=0.0)
    wall, cpu, _ = timed(model.fit, X, y)
    n_iter = max(model.n_iter_, 1)
    model.set_params(**settings)
    return wall / n_iter, cpu / n_iter


def iterations(model):
    return f"{model.n_iter_}" + ("" if model.converged_ else "*")


def paired(first, second):
    """Median over repeats of the paired ratio first / second."""
    return median([a / b for a, b in zip(first, second, strict=True)])


# ---------------------------------------------------------------------------
# Expert M-step throughput (internal API: adapt here if it changes)
# ---------------------------------------------------------------------------


def time_pool_m_step(model, X, y, *, generic=False, repeats=3, clock="cpu"):
    """Best-of-``repeats`` seconds (``clock``: "cpu" or "wall") of an M-step.

    Internal API, as ``fit`` uses it outside the fused EM iteration (where
    the M-step's sums share the E-step's pass): a copy of
    ``model._expert_pool`` is refitted to ``W = sample_weight[:, None] *
    resp``, here ``resp = model.predict_gate(X)`` with unit sample weights,
    on ``designs = skmoe._backend.DesignCache(X)``. The vectorized pool by
    ``skmoe._fused.fit_linear_experts(pool, designs, y, W)`` (the weighted
    Gram matrices and moments in one pass over chunks, the batched solve,
    the squared residuals in a second pass); the generic pool by its
    ``m_step`` (a weighted refit of each cloned scikit-learn estimator,
    then the variances). One untimed call first (it builds the transposed
    design, cached in ``designs``).
    """
    from skmoe._backend import DesignCache
    from skmoe._fused import fit_linear_experts

    W = model.predict_gate(X)
    pool, designs = copy.deepcopy(model._expert_pool), DesignCache(X)
    if generic:
        step = pool.m_step
    else:
        step = functools.partial(fit_linear_experts, pool)
    step(designs, y, W)
    index = 1 if clock == "cpu" else 0
    return min(timed(step, designs, y, W)[index] for _ in range(repeats))


def time_expert_m_step(model, X, y, repeats=3):
    """Best-of-``repeats`` wall seconds of the vectorized experts' M-step.

    :func:`time_pool_m_step` on float64 copies of the data. Returns
    ``(seconds, None)``, or ``(None, reason)`` when the internal API no
    longer fits this call.
    """
    try:
        X = np.ascontiguousarray(X, dtype=np.float64)
        y = np.ascontiguousarray(y, dtype=np.float64)
        return time_pool_m_step(model, X, y, repeats=repeats, clock="wall"), None
    except Exception as error:  # report it, do not stop the suite
        return None, f"{type(error).__name__}: {error}"


def gram_flops(n_samples, n_features, n_experts):
    """Useful flops of one M-step: the K weighted Gram matrices (upper half)."""
    p = n_features + 1
    return 2.0 * n_samples * n_experts * p * (p + 1) / 2


def matmul_gflops(size, seed, repeats=3):
    """Best-of-``repeats`` GFLOP/s of a square float64 ``A @ A``."""
    A = np.random.default_rng(seed).standard_normal((size, size))
    A @ A  # untimed: first-call costs
    best = min(timed(np.matmul, A, A)[0] for _ in range(repeats))
    return 2.0 * size**3 / best / 1e9


# ---------------------------------------------------------------------------
# Peak memory, in a fresh process
# ---------------------------------------------------------------------------


def _status_bytes(field):
    """A ``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in bytes, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _reset_peak_rss():
    """Reset the peak resident set (``VmHWM``) to the current one (Linux).

    ``ru_maxrss`` cannot serve: Linux carries it over from the parent
    across fork and exec, so a child of a large process starts with the
    parent's peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return _status_bytes("VmHWM") is not None
    except OSError:
        return False


def _peak_rss():
    """Peak resident set of this process so far, in bytes."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_child(spec):
    """Run in a fresh process: draw the data, then measure one fit's memory.

    ``tracemalloc`` is started after the data are drawn, so its peak counts
    what the fit allocated on top of them (NumPy reports its buffers to
    tracemalloc). The growth of the resident set, its peak during the fit
    (``VmHWM``, reset just before) minus its size before, is a cross-check:
    it also sees memory that tracemalloc does not (BLAS, OpenMP buffers) and
    misses pages allocated but never touched. Where the peak cannot be
    reset (not Linux) it is ``ru_maxrss``, an upper bound (``rss_bound``).
    """
    cfg = json.loads(spec)
    with thread_limit(cfg["threads"]):
        X, _, y, _, _ = make_split(
            cfg["n"], cfg["d"], cfg["k"], cfg["structure"], cfg["seed"]
        )
        model = make_moe(
            cfg["k"],
            cfg["structure"],
            max_iter=cfg["max_iter"],
            seed=cfg["seed"],
            tol=0.0,
        )
        reset = _reset_peak_rss()
        rss_before = _status_bytes("VmRSS") or _peak_rss()
        tracemalloc.start()
        wall, _, _ = timed(model.fit, X, y)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak_rss = _peak_rss()
    print(
        json.dumps(
            {
                "x_nbytes": X.nbytes,
                "peak": peak,
                "retained": current,
                "rss_growth": peak_rss - rss_before,
                "rss_bound": not reset,
                "seconds": wall,
            }
        )
    )


def measure_memory(n, d, k, structure, *, args):
    """Run :func:`memory_child` in a subprocess; return its dict or an error."""
    spec = json.dumps(
        {
            "n": n,
            "d": d,
            "k": k,
            "structure": structure,
            "seed": args.seed,
            "threads": args.threads,
            "max_iter": args.memory_max_iter,
        }
    )
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {completed.returncode}: {tail}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------


def row_max_iter(n, d, k, structure, args):
    """The max_iter of one grid row, after the caps for slow rows."""
    if (n, d, k, structure) == MAIN_TARGET:
        return args.max_iter
    cap = args.max_iter
    if n >= args.large_size:
        cap = min(cap, args.large_max_iter)
    if k >= 16 and n >= args.many_experts_size:
        cap = min(cap, args.many_experts_max_iter)
    return cap


def bench_config(n, d, k, structure, args, extras):
    """Fit one grid configuration; return its measurements.

    ``extras`` says which further measurements use these data: the generic
    path, the M-step throughput and the whole-fit scaling fits.
    """
    X, X_test, y, y_test, truth = make_split(n, d, k, structure, args.seed)
    max_iter = row_max_iter(n, d, k, structure, args)
    run_hgb = not (args.skip_large_hgb and n >= args.large_size)
    times = {key: [] for key in ("moe", "lr", "hgb")}
    cpu = {key: [] for key in ("moe", "lr", "hgb")}
    per_iter, cpu_per_iter = [], []
    for _ in range(args.repeats):
        moe = make_moe(k, structure, max_iter=max_iter, seed=args.seed)
        wall, cpu_s, _ = timed(moe.fit, X, y)
        times["moe"].append(wall)
        cpu["moe"].append(cpu_s)
        lr = LinearRegression()
        wall, cpu_s, _ = timed(lr.fit, X, y)
        times["lr"].append(wall)
        cpu["lr"].append(cpu_s)
        if run_hgb:
            hgb = HistGradientBoostingRegressor(random_state=args.seed)
            wall, cpu_s, _ = timed(hgb.fit, X, y)
            times["hgb"].append(wall)
            cpu["hgb"].append(cpu_s)
        # Scores before the continuation moves the fit on.
        scores = {
            "moe": rmse(moe, X_test, y_test),
            "lr": rmse(lr, X_test, y_test),
            "hgb": rmse(hgb, X_test, y_test) if run_hgb else None,
            "truth": float(np.sqrt(np.mean((truth.predict(X_test) - y_test) ** 2))),
        }
        n_iter = iterations(moe)
        wall, cpu_s = per_iteration(moe, X, y, args.iter_sample)
        per_iter.append(wall)
        cpu_per_iter.append(cpu_s)
    result = {
        "max_iter": max_iter,
        "n_iter": n_iter,
        "fit": median(times["moe"]),
        "cpu_fit": median(cpu["moe"]),
        "per_iter": median(per_iter),
        "cpu_per_iter": median(cpu_per_iter),
        "lr": median(times["lr"]),
        "hgb": median(times["hgb"]) if run_hgb else None,
        "moe/lr": paired(times["moe"], times["lr"]),
        "moe/lr cpu": paired(cpu["moe"], cpu["lr"]),
        "moe/hgb": paired(times["moe"], times["hgb"]) if run_hgb else None,
        "moe/hgb cpu": paired(cpu["moe"], cpu["hgb"]) if run_hgb else None,
        "rmse": scores,
    }
    if "mstep" in extras:
        seconds, error = time_expert_m_step(moe, X, y)
        result["mstep"] = {"seconds": seconds, "error": error}
    if "generic" in extras:
        result["generic"] = bench_generic(X, y, k, args)
    if "scaling" in extras:
        fits, cpu_fits = [], []
        for _ in range(args.repeats):
            model = make_moe(
                k, structure, max_iter=args.scaling_iter, seed=args.seed, tol=0.0
            )
            wall, cpu_s, _ = timed(model.fit, X, y)
            fits.append(wall)
            cpu_fits.append(cpu_s)
        result["scaling"] = {"fit": median(fits), "cpu_fit": median(cpu_fits)}
    return result


def bench_generic(X, y, k, args):
    """Vectorized pool against cloned LinearRegression experts, same start."""
    runs = {"vec": [], "gen": []}
    for repeat in range(args.repeats):
        order = ["vec", "gen"] if repeat % 2 == 0 else ["gen", "vec"]
        for name in order:
            estimator = (
                None if name == "vec" else [LinearRegression() for _ in range(k)]
            )
            model = make_moe(
                k,
                "flat",
                max_iter=args.generic_iter,
                seed=args.seed,
                tol=0.0,
                estimator=estimator,
            )
            wall, cpu_s, _ = timed(model.fit, X, y)
            log_lik = model.log_likelihood_
            iter_wall, iter_cpu = per_iteration(model, X, y, args.iter_sample)
            runs[name].append(
                {
                    "fit": wall,
                    "cpu_fit": cpu_s,
                    "per_iter": iter_wall,
                    "cpu_per_iter": iter_cpu,
                    "log_lik": log_lik,
                    "m_step": time_pool_m_step(model, X, y, generic=name == "gen"),
                }
            )

    def series(name, key):
        return [r[key] for r in runs[name]]

    vec_ll, gen_ll = runs["vec"][-1]["log_lik"], runs["gen"][-1]["log_lik"]
    return {
        "vec fit": median(series("vec", "fit")),
        "gen fit": median(series("gen", "fit")),
        "vec per_iter": median(series("vec", "per_iter")),
        "gen per_iter": median(series("gen", "per_iter")),
        "ratio": paired(series("gen", "per_iter"), series("vec", "per_iter")),
        "vec m_step": median(series("vec", "m_step")),
        "gen m_step": median(series("gen", "m_step")),
        "m_step ratio": paired(series("gen", "m_step"), series("vec", "m_step")),
        "cpu ratio": paired(
            series("gen", "cpu_per_iter"), series("vec", "cpu_per_iter")
        ),
        "vec ll": vec_ll,
        "gen ll": gen_ll,
        "rel diff": abs(gen_ll - vec_ll) / max(abs(vec_ll), 1e-300),
    }


def parse_configs(text, with_structure):
    """Parse ``"20,16;10,4"`` (or ``"10,4,flat"``) into tuples."""
    configs = []
    for item in text.split(";"):
        parts = [part.strip() for part in item.split(",") if part.strip()]
        if not parts:
            continue
        config = (int(parts[0]), int(parts[1]))
        if with_structure:
            config += (parts[2] if len(parts) > 2 else "flat",)
        configs.append(config)
    return configs


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _mb(nbytes):
    return f"{nbytes / 2**20:.1f}"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except the unset ones that --quick resolves."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=_HelpFormatter
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="cap BLAS / OpenMP threads (threadpoolctl; 0: no cap). One thread "
        "by default: on a small shared machine threaded BLAS and OpenMP spin "
        "instead of working and the timings measure the machine's load "
        "(benchmarks/README.md); with one thread CPU time is the steady clock",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help=f"comma-separated training sizes (default {FULL['sizes']}; "
        f"--quick: {QUICK['sizes']})",
    )
    parser.add_argument(
        "--dims",
        default=None,
        help=f"comma-separated feature counts d (default {FULL['dims']}; "
        f"--quick: {QUICK['dims']})",
    )
    parser.add_argument(
        "--experts",
        default=None,
        help=f"comma-separated expert counts K (default {FULL['experts']}; "
        f"--quick: {QUICK['experts']}); trees need a square K",
    )
    parser.add_argument("--structures", default="flat,tree", help="flat, tree or both")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small subset (sizes up to 1e5, d=10, K=4): ~1.5 min here",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="no caps: max_iter for every row, trees at every size (hours today)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fits per configuration, the models interleaved; medians of "
        "paired ratios are reported",
    )
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument(
        "--iter-sample",
        type=int,
        default=10,
        help="EM iterations of the warm continuation that times one iteration",
    )
    parser.add_argument(
        "--large-size",
        type=float,
        default=1e6,
        help="sizes from which --large-max-iter, --large-structures and "
        "--skip-large-hgb apply",
    )
    parser.add_argument(
        "--large-max-iter",
        type=int,
        default=10,
        help="max_iter of rows at --large-size and above, except the main "
        "target row (n=1e6, d=10, K=4, flat), which is always a full fit",
    )
    parser.add_argument(
        "--large-structures",
        default="flat",
        help="structures fitted at --large-size and above",
    )
    parser.add_argument(
        "--many-experts-size",
        type=float,
        default=1e5,
        help="sizes from which --many-experts-max-iter caps rows with K >= 16",
    )
    parser.add_argument("--many-experts-max-iter", type=int, default=30)
    parser.add_argument(
        "--skip-large-hgb",
        action="store_true",
        help="no HistGradientBoostingRegressor at --large-size and above",
    )
    parser.add_argument(
        "--no-generic",
        action="store_true",
        help="skip the vectorized-vs-generic expert comparison",
    )
    parser.add_argument(
        "--generic-size",
        type=float,
        default=1e5,
        help="n of the vectorized-vs-generic comparison (d=10, flat, each K)",
    )
    parser.add_argument(
        "--generic-iter",
        type=int,
        default=20,
        help="EM iterations (tol=0) of both fits of that comparison",
    )
    parser.add_argument(
        "--mstep-configs",
        default="20,16;10,4",
        help='"d,K;d,K": flat configurations whose expert M-step is timed',
    )
    parser.add_argument(
        "--mstep-size",
        type=float,
        default=None,
        help="n of the M-step throughput (default: the largest size)",
    )
    parser.add_argument(
        "--matmul-size", type=int, default=2000, help="side of the A @ A reference"
    )
    parser.add_argument(
        "--scaling-sizes",
        default=None,
        help="small,large sizes of the scaling ratios (default 1e5,1e6; "
        "--quick: 1e4,1e5)",
    )
    parser.add_argument(
        "--scaling-configs",
        default="10,4,flat",
        help='"d,K,structure;...": configurations fitted with tol=0, '
        "--scaling-iter iterations at both scaling sizes",
    )
    parser.add_argument("--scaling-iter", type=int, default=20)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--memory-sizes",
        default="1e5,1e6",
        help="sizes whose configurations get a peak-memory subprocess",
    )
    parser.add_argument(
        "--memory-large-configs",
        default="10,4,flat",
        help='"d,K,structure;...": the configurations measured at '
        '--large-size and above ("all": every one)',
    )
    parser.add_argument(
        "--memory-max-iter",
        type=int,
        default=3,
        help="EM iterations (tol=0) of the measured fit; the peak does not "
        "grow with them",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser


def resolve(args):
    """Fill the defaults that depend on --quick and --full."""
    preset = QUICK if args.quick else FULL
    for key in ("sizes", "dims", "experts"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.scaling_sizes is None:
        args.scaling_sizes = "1e4,1e5" if args.quick else "1e5,1e6"
    if args.full:
        args.large_max_iter = args.max_iter
        args.many_experts_max_iter = args.max_iter
        args.large_structures = "flat,tree"
    args.threads = None if args.threads == 0 else args.threads
    args.sizes = parse_sizes(args.sizes)
    args.dims = [int(d) for d in args.dims.split(",") if d.strip()]
    args.experts = [int(k) for k in args.experts.split(",") if k.strip()]
    args.structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    args.large_structures = [
        s.strip() for s in args.large_structures.split(",") if s.strip()
    ]
    args.mstep_size = int(args.mstep_size or max(args.sizes))
    args.generic_size = int(args.generic_size)
    args.scaling_sizes = parse_sizes(args.scaling_sizes)
    args.memory_sizes = parse_sizes(args.memory_sizes)
    return args


def grid(args):
    """Yield the grid's configurations ``(n, d, K, structure)`` in run order."""
    for n in args.sizes:
        for d in args.dims:
            for k in args.experts:
                for structure in args.structures:
                    if structure == "tree" and tree_for(k) is None:
                        continue
                    if n >= args.large_size and structure not in args.large_structures:
                        continue
                    yield n, d, k, structure


def label(d, k, structure):
    shape = "flat" if structure == "flat" else str(tree_for(k)).replace(" ", "")
    return [f"{d}", f"{k}", shape]


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    args = resolve(args)
    start = time.perf_counter()

    def progress(text):
        print(
            f"[{time.perf_counter() - start:7.1f} s] {text}",
            file=sys.stderr,
            flush=True,
        )

    mstep_configs = parse_configs(args.mstep_configs, with_structure=False)
    scaling_configs = parse_configs(args.scaling_configs, with_structure=True)
    results = {}
    with thread_limit(args.threads):
        header = describe_environment(args.threads)
        # An untimed warm-up keeps first-call costs (imports, thread pools)
        # out of the first timed fits.
        X, _, y, _, _ = make_split(2000, 5, 4, "flat", args.seed)
        for structure in ("flat", "tree"):
            timed(make_moe(4, structure, max_iter=5, seed=args.seed).fit, X, y)
        timed(HistGradientBoostingRegressor(max_iter=10).fit, X, y)
        matmul = matmul_gflops(args.matmul_size, args.seed)
        progress(f"numpy matmul {args.matmul_size}: {matmul:.1f} GFLOP/s")
        for n, d, k, structure in grid(args):
            extras = set()
            if structure == "flat" and n == args.mstep_size and (d, k) in mstep_configs:
                extras.add("mstep")
            if (
                not args.no_generic
                and structure == "flat"
                and n == args.generic_size
                and d == 10
            ):
                extras.add("generic")
            if (
                n in args.scaling_sizes
                and set(args.scaling_sizes) <= set(args.sizes)
                and (d, k, structure) in scaling_configs
            ):
                extras.add("scaling")
            results[n, d, k, structure] = bench_config(n, d, k, structure, args, extras)
            r = results[n, d, k, structure]
            progress(
                f"n={format_size(n)} d={d} K={k} {structure}: fit {r['fit']:.2f} s, "
                f"{r['n_iter']} iterations, {r['per_iter']:.4f} s/iter"
                + (f" (+{', '.join(sorted(extras))})" if extras else "")
            )
        memory = {}
        if not args.no_memory:
            large_all = args.memory_large_configs.strip() == "all"
            large_configs = (
                []
                if large_all
                else parse_configs(args.memory_large_configs, with_structure=True)
            )
            for n, d, k, structure in results:
                if n not in args.memory_sizes:
                    continue
                if n >= args.large_size and not (
                    large_all or (d, k, structure) in large_configs
                ):
                    continue
                memory[n, d, k, structure] = measure_memory(
                    n, d, k, structure, args=args
                )
                progress(f"memory n={format_size(n)} d={d} K={k} {structure}")
    total = time.perf_counter() - start

    print(header)
    checkout = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "skmoe"
    )
    imported = os.path.dirname(os.path.abspath(skmoe.__file__))
    if os.path.realpath(imported) != os.path.realpath(checkout):
        print(
            f"- note: skmoe imported from {imported}, not from this checkout "
            "(`PYTHONPATH=. python benchmarks/run.py` times the working tree)"
        )
    print(
        f"- settings: soft routing, tol={TOL}, max_iter={args.max_iter} "
        f"(capped rows: see max_iter column), iter_sample={args.iter_sample}, "
        f"repeats={args.repeats}, seed={args.seed}; n training rows, "
        f"n/4 more held out"
    )
    print(f"- total run time {total:.0f} s")
    print()
    report(results, memory, matmul, mstep_configs, scaling_configs, args)


def report(results, memory, matmul, mstep_configs, scaling_configs, args):
    """Print every table."""
    main_key = MAIN_TARGET
    if main_key not in results:
        candidates = [key for key in results if key[1:] == MAIN_TARGET[1:]]
        main_key = max(candidates) if candidates else None
    print("### Main target (n=1e6, d=10, K=4, flat, soft, tol=1e-6)")
    print()
    if main_key is None:
        print("not run (needs d=10, K=4, flat in the grid)")
    else:
        r = results[main_key]
        note = "" if main_key == MAIN_TARGET else " (n=1e6 not run)"
        print(
            markdown_table(
                ["n", "fit s", "CPU fit s", "n_iter_", "s/iter", "CPU s/iter"],
                [
                    [
                        format_size(main_key[0]) + note,
                        f"{r['fit']:.2f}",
                        f"{r['cpu_fit']:.2f}",
                        r["n_iter"],
                        f"{r['per_iter']:.3f}",
                        f"{r['cpu_per_iter']:.3f}",
                    ]
                ],
            )
        )
    print()

    print("### Fit time and time per EM iteration")
    print()
    rows = []
    for (n, d, k, structure), r in results.items():
        rows.append(
            [
                format_size(n),
                *label(d, k, structure),
                r["max_iter"],
                f"{r['fit']:.3f}",
                f"{r['cpu_fit']:.3f}",
                r["n_iter"],
                f"{r['per_iter']:.4f}",
                f"{r['cpu_per_iter']:.4f}",
            ]
        )
    print(
        markdown_table(
            [
                "n",
                "d",
                "K",
                "structure",
                "max_iter",
                "fit s",
                "CPU fit s",
                "n_iter_",
                "s/iter",
                "CPU s/iter",
            ],
            rows,
        )
    )
    print()
    print(
        "`*`: not converged within max_iter (rows below 200 are capped to keep "
        "the run short). A tree's fit includes its start (a flat pre-fit and "
        "placement runs), which its n_iter_ does not count. s/iter: a warm "
        f"continuation of {args.iter_sample} EM iterations, divided by them."
    )
    print()

    print("### Test RMSE and fit time against single models")
    print()
    rows = []
    for (n, d, k, structure), r in results.items():
        s = r["rmse"]
        rows.append(
            [
                format_size(n),
                *label(d, k, structure),
                f"{s['moe']:.4f}",
                f"{s['lr']:.4f}",
                _fmt(s["hgb"], ".4f"),
                f"{s['truth']:.4f}",
                f"{r['fit']:.3f}",
                f"{r['lr']:.4f}",
                _fmt(r["hgb"], ".3f"),
                f"{r['moe/lr']:.0f}",
                _fmt(r["moe/hgb"], ".2f"),
                f"{r['moe/lr cpu']:.0f}",
                _fmt(r["moe/hgb cpu"], ".2f"),
            ]
        )
    print(
        markdown_table(
            [
                "n",
                "d",
                "K",
                "structure",
                "MoE RMSE",
                "LR RMSE",
                "HGB RMSE",
                "truth RMSE",
                "MoE s",
                "LR s",
                "HGB s",
                "MoE/LR",
                "MoE/HGB",
                "MoE/LR CPU",
                "MoE/HGB CPU",
            ],
            rows,
        )
    )
    print()

    generic = {key: r["generic"] for key, r in results.items() if "generic" in r}
    if generic:
        print(
            "### Vectorized experts (estimator=None) against the generic path "
            "(a list of LinearRegression)"
        )
        print()
        rows = []
        for (n, d, k, _), g in generic.items():
            rows.append(
                [
                    format_size(n),
                    d,
                    k,
                    f"{g['vec fit']:.2f}",
                    f"{g['gen fit']:.2f}",
                    f"{g['vec per_iter']:.4f}",
                    f"{g['gen per_iter']:.4f}",
                    f"{g['ratio']:.2f}",
                    f"{g['cpu ratio']:.2f}",
                    f"{g['vec m_step']:.4f}",
                    f"{g['gen m_step']:.4f}",
                    f"{g['m_step ratio']:.1f}",
                    f"{g['vec ll']:.6f}",
                    f"{g['gen ll']:.6f}",
                    f"{g['rel diff']:.1e}",
                ]
            )
        print(
            markdown_table(
                [
                    "n",
                    "d",
                    "K",
                    "vectorized fit s",
                    "generic fit s",
                    "vectorized s/iter",
                    "generic s/iter",
                    "generic/vectorized",
                    "CPU ratio",
                    "vectorized M-step CPU s",
                    "generic M-step CPU s",
                    "M-step ratio",
                    "vectorized log-lik",
                    "generic log-lik",
                    "relative difference",
                ],
                rows,
            )
        )
        print()
        print(
            f"Both fits: same data and random_state, tol=0, max_iter="
            f"{args.generic_iter} (same iterations); fit s includes the start; "
            "s/iter and its ratio: whole EM iterations (E-step, gate and experts); "
            "M-step: the experts' M-step alone (best of 3, CPU), each pool refitted "
            "to the fitted gate's probabilities; log-lik: mean log-likelihood of "
            "the fit on the training rows."
        )
        print()

    print("### Expert M-step throughput")
    print()
    rows = []
    for d, k in mstep_configs:
        r = results.get((args.mstep_size, d, k, "flat"))
        if r is None or "mstep" not in r:
            continue
        m = r["mstep"]
        flops = gram_flops(args.mstep_size, d, k)
        if m["seconds"] is None:
            rows.append(
                [format_size(args.mstep_size), d, k, d + 1, m["error"], "", "", ""]
            )
            continue
        rate = flops / m["seconds"] / 1e9
        rows.append(
            [
                format_size(args.mstep_size),
                d,
                k,
                d + 1,
                f"{m['seconds']:.4f}",
                f"{flops / 1e9:.2f}",
                f"{rate:.2f}",
                f"{rate / matmul:.1%}",
            ]
        )
    print(
        f"NumPy float64 matmul ({args.matmul_size} x {args.matmul_size}, best "
        f"of 3, same thread cap): {matmul:.1f} GFLOP/s."
    )
    print()
    if rows:
        print(
            markdown_table(
                [
                    "n",
                    "d",
                    "K",
                    "p = d+1",
                    "M-step s (best of 3)",
                    "useful GFLOP",
                    "GFLOP/s",
                    "of matmul",
                ],
                rows,
            )
        )
        print()
        print(
            "Useful flops: 2 n K p(p+1)/2, the K weighted Gram matrices (upper "
            "half). The M-step time also covers the right-hand sides, the "
            "solves, the predictions and the variances."
        )
    else:
        print("no M-step configuration in this run (--mstep-configs, --mstep-size)")
    print()

    small, large = args.scaling_sizes
    rows = []
    for (n, d, k, structure), r in results.items():
        big = results.get((large, d, k, structure))
        if n != small or big is None:
            continue
        scaled = "scaling" in r and "scaling" in big
        rows.append(
            [
                *label(d, k, structure),
                f"{r['per_iter']:.4f}",
                f"{big['per_iter']:.4f}",
                f"{big['per_iter'] / r['per_iter']:.1f}",
                f"{big['cpu_per_iter'] / r['cpu_per_iter']:.1f}",
                f"{r['scaling']['fit']:.2f}" if scaled else "-",
                f"{big['scaling']['fit']:.2f}" if scaled else "-",
                f"{big['scaling']['fit'] / r['scaling']['fit']:.1f}" if scaled else "-",
                f"{big['scaling']['cpu_fit'] / r['scaling']['cpu_fit']:.1f}"
                if scaled
                else "-",
            ]
        )
    print(f"### Scaling from n={format_size(small)} to n={format_size(large)}")
    print()
    if rows:
        print(
            markdown_table(
                [
                    "d",
                    "K",
                    "structure",
                    f"s/iter {format_size(small)}",
                    f"s/iter {format_size(large)}",
                    "s/iter ratio",
                    "CPU s/iter ratio",
                    f"fit s {format_size(small)}",
                    f"fit s {format_size(large)}",
                    "fit ratio",
                    "CPU fit ratio",
                ],
                rows,
            )
        )
        print()
        print(
            f"Whole fits: tol=0, max_iter={args.scaling_iter} at both sizes "
            f"(same iterations), start included; {large / small:.0f}x the rows "
            "gives a ratio of that much for linear cost."
        )
    else:
        print("no configuration at both sizes in this run")
    print()

    if memory:
        print("### Peak memory of a fit (fresh process)")
        print()
        rows = []
        for (n, d, k, structure), m in memory.items():
            if "error" in m:
                rows.append(
                    [format_size(n), *label(d, k, structure), m["error"]] + [""] * 5
                )
                continue
            rows.append(
                [
                    format_size(n),
                    *label(d, k, structure),
                    _mb(m["x_nbytes"]),
                    _mb(m["peak"]),
                    f"{m['peak'] / m['x_nbytes']:.1f}",
                    ("<= " if m["rss_bound"] else "") + _mb(m["rss_growth"]),
                    f"{m['rss_growth'] / m['x_nbytes']:.1f}",
                    _mb(m["retained"]),
                ]
            )
        print(
            markdown_table(
                [
                    "n",
                    "d",
                    "K",
                    "structure",
                    "X MiB",
                    "tracemalloc peak MiB",
                    "peak / X",
                    "RSS growth MiB",
                    "RSS growth / X",
                    "kept after fit MiB",
                ],
                rows,
            )
        )
        print()
        print(
            "Peak: tracemalloc's peak over the fit (started after the data were "
            f"drawn), tol=0, max_iter={args.memory_max_iter}; X: the training "
            "rows (float64). RSS growth: peak resident set during the fit "
            "(VmHWM, reset before it) minus the resident set before it "
            "(`<=`: ru_maxrss, an upper bound, where VmHWM is unavailable)."
        )


if __name__ == "__main__":
    main()
