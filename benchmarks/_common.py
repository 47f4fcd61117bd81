"""Helpers shared by the benchmark scripts: timing, thread limits, tables.

The benchmarks run on shared, noisy machines, so every script times the
estimators it compares in the same run, interleaved, and reports ratios next
to the seconds.
"""

import contextlib
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

import skmoe


def timed(func, *args, **kwargs):
    """Return ``(wall_seconds, cpu_seconds, result)`` of one call.

    Wall time is ``time.perf_counter``; CPU time is ``time.process_time``
    (all threads of this process). On a shared machine other processes
    stretch the wall time but not the CPU time, so with the thread pools
    capped at one thread the CPU time is the steadier measure; with more
    threads it also counts threads that spin while waiting.

    ``ConvergenceWarning`` is silenced: the scripts report convergence in
    their tables (``n_iter_``, ``converged_``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cpu_start = time.process_time()
        start = time.perf_counter()
        result = func(*args, **kwargs)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    return wall, cpu, result


def median(values):
    """Return the median of a non-empty sequence of numbers."""
    return statistics.median(values)


def thread_limit(n_threads):
    """Return a context that caps BLAS and OpenMP threads (None: no cap)."""
    if n_threads is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n_threads)


def _git_state():
    """Return the commit of the skmoe checkout and whether it has edits."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(skmoe.__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "skmoe"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted edits in skmoe/" if dirty else "")


def _source_digest():
    """Return a short hash of skmoe's source files: which code was timed."""
    package = os.path.dirname(os.path.abspath(skmoe.__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(package)):
        if name.endswith(".py"):
            with open(os.path.join(package, name), "rb") as source:
                digest.update(name.encode() + source.read())
    return digest.hexdigest()[:10]


def describe_environment(n_threads):
    """Return a few lines saying where and with what the benchmark ran."""
    pools = ", ".join(
        f"{pool['internal_api']} {pool.get('version') or ''} "
        f"({os.path.basename(pool['filepath'])}) x{pool['num_threads']}".replace(
            "  ", " "
        )
        for pool in threadpool_info()
    )
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return "\n".join(
        [
            f"- command: `python {' '.join(sys.argv)}`",
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"load average {load} at start",
            f"- python {platform.python_version()}, numpy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}, skmoe {skmoe.__version__} "
            f"(git {_git_state()}; sources {_source_digest()}, "
            f"{os.path.dirname(os.path.abspath(skmoe.__file__))})",
            f"- thread pools: {pools}; "
            f"cap: {'none' if n_threads is None else n_threads}",
        ]
    )


def markdown_table(headers, rows):
    """Return a markdown table; floats are printed by the caller."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def parse_sizes(text):
    """Parse ``"1e3,1e4"`` into ``[1000, 10000]``."""
    return [int(float(item)) for item in text.split(",") if item.strip()]


def format_size(n):
    """Format a sample count as ``1e5`` when it is a power of ten, else as is."""
    text = f"{n:.0e}".replace("e+0", "e").replace("e+", "e")
    return text if int(float(text)) == n else str(n)
