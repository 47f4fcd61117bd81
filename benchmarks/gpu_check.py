"""GPU check of the torch backend: agreement with NumPy, and fit time on a GPU.

One short script for a machine with a CUDA device; it installs nothing and
imports skmoe from this checkout. It needs torch and array-api-compat (the
``torch`` extra); without them, or without a CUDA device, it says so and
exits with status 0. array-api-compat is pure Python: on a machine without
network, install the wheel that ``pip download array-api-compat`` fetches.

1. Agreement. NumPy and CUDA fits from the same start (same
   ``random_state``) on small data, in float64, with ``tol=0`` and a fixed
   number of EM iterations: the largest difference of the gate coefficients,
   of the experts' coefficients, of the log-likelihood history and of the
   predictions, each relative to the largest entry, for the regressor and
   the classifier, flat and ``(2, 2)``, every routing. Then float32 on CUDA
   against float64.
2. Speed. Data of n=1e7 rows, d=20, from a 16-expert mixture (drawn on the
   GPU; the CPU gets its first 1e6 rows as NumPy). For K=16 flat and the
   ``(4, 4)`` tree, with ``max_iter`` EM iterations and ``tol=0``:

   * "full fit": the whole ``fit`` (k-means start on the CPU, the tree's
     placement search, EM) of 1e7 rows on the GPU in float64, against
     NumPy's fit of 1e6 rows on the CPU (all cores). The tree's
     NumPy fit is skipped unless ``--full-cpu-tree``: its start scores
     about 80 gate placements by Newton fits on every row, minutes at 1e6
     rows on a CPU (39 s at 1e5 rows on one core of the development box);
   * "EM from a fitted start": ``warm_start=True`` continued for the same
     iterations from the model the GPU fitted, 1e7 rows on the GPU (float64
     and float32) against 1e6 rows with NumPy, so the tree's EM is compared
     too.

   Ratios: CPU seconds / GPU seconds, and the same per row (the GPU has
   ten times the rows).

Run from the repository root::

    python benchmarks/gpu_check.py               # about 2-3 min on an H200
    python benchmarks/gpu_check.py --device cpu --n-gpu 2e4 --n-cpu 2e3  # smoke

``--device cpu`` runs the same code on torch's CPU (sizes small), to check
the script itself without a GPU.
"""

import argparse
import copy
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _missing(message):
    print(f"gpu_check: {message}; nothing to check.")
    sys.exit(0)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n-gpu", type=float, default=1e7)
    parser.add_argument("--n-cpu", type=float, default=1e6)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--full-cpu-tree", action="store_true")
    return parser.parse_args()


def relative(actual, desired):
    """Largest absolute difference over the largest entry of ``desired``."""
    import torch

    if torch.is_tensor(actual):
        actual = actual.numpy(force=True)
    actual, desired = np.asarray(actual, float), np.asarray(desired, float)
    scale = max(float(np.max(np.abs(desired), initial=0.0)), 1e-300)
    return float(np.max(np.abs(actual - desired), initial=0.0)) / scale


def model_differences(a, b):
    """Return relative differences of the gate, experts and history."""
    gate = max(
        relative(cb, ca) for ca, cb in zip(a.gate_.coef, b.gate_.coef, strict=True)
    )
    experts = max(
        max(relative(eb.coef_, ea.coef_), relative(eb.intercept_, ea.intercept_))
        for ea, eb in zip(a.experts_, b.experts_, strict=True)
    )
    history = relative(b.log_likelihood_history_, a.log_likelihood_history_)
    return gate, experts, history


def check_agreement(device):
    import torch

    from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
    from skmoe.datasets import make_moe_classification, make_moe_regression

    print("## 1. NumPy against torch on", device, "(float64, same start)\n")
    print("| model | structure | routing | gate | experts | history | predictions |")
    print("|---|---|---|---:|---:|---:|---:|")
    Xr, yr = make_moe_regression(
        n_samples=2000, n_features=5, n_experts=4, noise=0.3, random_state=0
    )
    Xc, yc = make_moe_classification(
        n_samples=2000, n_features=5, n_experts=4, n_classes=3, random_state=0
    )
    worst = 0.0
    for name, cls, X, y in [
        ("regressor", MixtureOfExpertsRegressor, Xr, yr),
        ("classifier", MixtureOfExpertsClassifier, Xc, yc),
    ]:
        predict = "predict" if name == "regressor" else "predict_proba"
        for structure in [{"n_experts": 4}, {"hierarchy": (2, 2)}]:
            for routing in ["soft", "hard", "topk"]:
                params = {"random_state": 0, "max_iter": 20, "tol": 0.0}
                params.update(structure, routing=routing)
                a = cls(**params).fit(X, y)
                b = cls(backend="torch", device=device, **params).fit(X, y)
                out = getattr(b, predict)(torch.as_tensor(X, device=device))
                diffs = (
                    *model_differences(a, b),
                    relative(out, getattr(a, predict)(X)),
                )
                worst = max(worst, diffs[-1])
                label = "flat" if "n_experts" in structure else "(2, 2)"
                cells = " | ".join(f"{d:.1e}" for d in diffs)
                print(f"| {name} | {label} | {routing} | {cells} |")
    print(f"\nLargest relative difference of the predictions: {worst:.1e}")

    params = {"n_experts": 4, "random_state": 0, "max_iter": 20, "tol": 0.0}
    double = MixtureOfExpertsRegressor(**params).fit(Xr, yr).predict(Xr)
    X32 = torch.as_tensor(Xr, device=device, dtype=torch.float32)
    y32 = torch.as_tensor(yr, device=device, dtype=torch.float32)
    single = MixtureOfExpertsRegressor(backend="torch", device=device, **params)
    single = single.fit(X32, y32).predict(X32)
    print(
        f"float32 on {device} against float64 NumPy (regressor, flat, 20 "
        f"iterations): {relative(single, double):.1e} relative\n"
    )


def draw_mixture(n, d, k, device, seed=0):
    """Draw ``n`` rows from a softmax-gated mixture of ``k`` linear experts."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    X = torch.randn(n, d, generator=g, device=device, dtype=torch.float64)
    gate = torch.randn(d, k, generator=g, device=device, dtype=torch.float64)
    coef = torch.randn(d, k, generator=g, device=device, dtype=torch.float64)
    intercept = 3.0 * torch.randn(k, generator=g, device=device, dtype=torch.float64)
    uniform = torch.rand(n, k, generator=g, device=device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
    expert = torch.argmax(4.0 / math.sqrt(d) * (X @ gate) + gumbel, dim=1)
    mean = torch.gather(X @ coef, 1, expert[:, None])[:, 0] + intercept[expert]
    noise = torch.randn(n, generator=g, device=device, dtype=torch.float64)
    return X, mean + 0.5 * noise


def timed_fit(estimator, X, y, device):
    import torch

    synchronize = (
        torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    )
    synchronize()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    synchronize()
    return time.perf_counter() - start


def check_speed(args):
    import torch

    from skmoe import MixtureOfExpertsRegressor

    n_gpu, n_cpu, d = int(args.n_gpu), int(args.n_cpu), args.features
    print(f"## 2. Fit time: {n_gpu:.0e} rows on {args.device} against {n_cpu:.0e}")
    print(f"rows with NumPy on the CPU (d={d}, {args.max_iter} EM iterations)\n")
    X, y = draw_mixture(n_gpu, d, 16, args.device)
    X32, y32 = X.float(), y.float()
    X_cpu, y_cpu = X[:n_cpu].cpu().numpy(), y[:n_cpu].cpu().numpy()
    per_row = n_gpu / n_cpu
    cuda = args.device.startswith("cuda")

    def peak_memory():
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else math.nan

    rows = []
    for label, structure in [
        ("flat K=16", {"n_experts": 16}),
        ("(4, 4)", {"hierarchy": (4, 4)}),
    ]:
        params = {"random_state": 0, "max_iter": args.max_iter, "tol": 0.0, **structure}
        gpu = MixtureOfExpertsRegressor(backend="torch", device=args.device, **params)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t_gpu = timed_fit(gpu, X, y, args.device)
        memory = peak_memory()
        t_cpu = math.nan
        if "n_experts" in structure or args.full_cpu_tree:
            t_cpu = timed_fit(MixtureOfExpertsRegressor(**params), X_cpu, y_cpu, "cpu")
        rows.append((label, "full fit", t_cpu, t_gpu, math.nan, memory))
        print(f"- {label}: full fits done", flush=True)
        # EM from the fitted start: the GPU's model (NumPy attributes)
        # continued on the GPU in float64 and float32, and with NumPy.
        start = copy.deepcopy(gpu).set_params(warm_start=True)
        single, cpu = copy.deepcopy(start), copy.deepcopy(start)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t_gpu_em = timed_fit(start, X, y, args.device)
        memory = peak_memory()
        t_gpu32_em = timed_fit(single, X32, y32, args.device)
        cpu.set_params(backend="numpy", device=None)
        t_cpu_em = timed_fit(cpu, X_cpu, y_cpu, "cpu")
        rows.append(
            (label, "EM from a fitted start", t_cpu_em, t_gpu_em, t_gpu32_em, memory)
        )
        print(f"- {label}: EM from a fitted start done", flush=True)
    print()
    print(
        f"| model | what | NumPy {n_cpu:.0e} rows (s) | {args.device} float64 "
        f"{n_gpu:.0e} rows (s) | {args.device} float32 (s) | CPU / GPU | "
        "CPU / GPU per row | GPU peak memory (GiB) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, what, t_cpu, t_gpu, t_gpu32, memory in rows:
        ratio = t_cpu / t_gpu
        print(
            f"| {label} | {what} | {t_cpu:.2f} | {t_gpu:.2f} | {t_gpu32:.2f} | "
            f"{ratio:.2f} | {ratio * per_row:.1f} | {memory:.1f} |"
        )
    print(
        "\nnan: not run (the tree's NumPy full fit needs --full-cpu-tree; "
        "float32 is timed on EM only). Per row: the CPU / GPU ratio times the "
        "GPU's extra rows. Peak memory: of the float64 fit."
    )


def main():
    args = parse_args()
    try:
        import torch
    except ImportError:
        _missing("torch is not installed")
    try:
        import array_api_compat  # noqa: F401
    except ImportError:
        _missing('array-api-compat is not installed (pip install "skmoe[torch]")')
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        _missing("no CUDA device is available (--device cpu runs a smoke test)")
    import skmoe

    name = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else "torch CPU"
    )
    print(f"# skmoe GPU check: {name}\n")
    print(
        f"skmoe {skmoe.__file__}, torch {torch.__version__}, numpy "
        f"{np.__version__}; matmul TF32: "
        f"{torch.backends.cuda.matmul.allow_tf32}\n"
    )
    # The fits run a fixed number of iterations (tol=0) on purpose.
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.perf_counter()
    check_agreement(args.device)
    check_speed(args)
    print(f"\nTotal: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
