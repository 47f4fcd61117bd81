"""Issue 15: how often each start strategy finds the best optimum.

A suite of multimodal problems with a known generating model (the truth),
each fitted from 10 seeds (``random_state`` 0-9; the data of a problem are
the same for every seed and strategy) by every strategy, a named dict of
estimator parameters:

* ``today``: the default of the base commit a8fb26a, run from a checkout of
  that commit (``--base``, default ``/work/wt/base``) in a subprocess with
  ``PYTHONPATH`` set to it, so that today's code is timed in the same run as
  the new code (imported, also in a subprocess, from the repository this
  script lives in);
* ``today_n_init10``, ``today_random``: ``n_init=10`` and the old
  ``init_params="random"`` (each row to the nearest of K random rows, which
  the new code calls ``"random_from_data"``), on the base commit;
* the new code's default and its strategies (``init_params="screen"``,
  ``"random"``, ``"random_from_data"``, ``n_init=10``, ``split_merge=``...).
  A strategy whose parameters the imported skmoe does not accept is skipped
  with a message.

Problems (``--problems``; ``name@size`` changes the training rows):

* ``curves``: two regression curves that cross (a line and a parabola,
  like flexmix's ``NPreg``), 150 rows, K=2, ``X = [x, x**2]``;
* ``classifier``: ``make_moe_classification``, 3 classes, 4 gated logistic
  experts, d=10, 20,000 rows, data seed 1 (a hard one: see ``PROBLEMS``);
  ``classifier0``: the same with data seed 0, an easy one (a control);
* ``tree44``, ``tree222``, ``tree33``: ``make_hme_regression`` with the
  trees (4, 4), (2, 2, 2), (3, 3), d=10, 1e5 rows;
* ``flat16``: ``make_moe_regression``, 16 experts, d=20, 2e4 rows;
* ``hard``: ``make_moe_regression``, 8 experts, d=5, 2e4 rows, fitted with
  ``routing="hard", train_routing="em"`` (classification EM, the
  start-sensitive training).

Every problem holds out 20,000 more rows drawn from the same model.

Measured per problem and strategy (paired by seed):

* **objective**: the fit's training log-likelihood per row,
  ``log_likelihood_`` (the gate's and variances' priors are left out: they
  are not defined for the truth and weigh ~1e-5 per row here); on
  ``hard``, classification EM's own objective, ``objective_history_[-1]``
  (its hard-routed likelihood is dominated by the few rows a sharp gate
  sends to a wrong expert: -17.9 per row against -1.07 on 4 experts). The
  best known of a problem is the highest over every strategy and seed of
  the run (loaded results included) or the truth's training
  log-likelihood, whichever is higher (the table says which; ``hard``: the
  runs' best only). A seed "finds" it when within 0.1% of it
  (``|best - objective| <= 1e-3 |best|``).
* **test log-likelihood** per row on the held-out rows, and its gap to the
  truth's in percent (``(truth - fit) / |truth|``; negative: better than
  the truth, i.e. within the noise). On ``hard`` it is the hard-routed
  fit's against the soft truth: the gap is huge and says little.
* **test accuracy** (classifier), in points against the truth's.
* **fit time**: CPU seconds (``time.process_time``) with BLAS/OpenMP
  capped at one thread (the machine is shared; see ``_common.timed``),
  and the median over seeds of the paired ratio to ``today`` on the same
  seed.

Budget: today's default costs ~10.5 CPU-minutes (one thread) for the
whole suite, with the trees at 1e5 rows ~23 s (4, 4), 12 s (2, 2, 2), 13 s
(3, 3) per fit: 10 seeds of them alone would be ~8 min per strategy, so
the default run fits them from ``--large-seeds`` (3) seeds and adds the
same trees at 2e4 rows from 10 seeds (``tree44@2e4``, ...).
Today plus two strategies of similar cost then take ~30 CPU-minutes.
``n_init=10`` costs 10x: run it with ``--seeds 3`` on the smaller problems.

JSON results (``--save``, written after every strategy; ``--load``,
repeatable) let the slow ``today`` fits be computed once: a loaded result
is reused when its problem, data digest, strategy and seed match, and the
output says which results came from which file. Run from the repository
root::

    python benchmarks/search.py --strategies today --save today.json
    python benchmarks/search.py --load benchmarks/search_today.json \\
        --strategies today,default,screen --save search_new.json
    python benchmarks/search.py --problems curves,classifier --seeds 3 \\
        --strategies today,default
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.special import logsumexp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The new code is the repository's (the data are drawn with its
# skmoe.datasets, in this process); the fits run in subprocesses, each with
# PYTHONPATH set to the code it fits with (a worker imports skmoe from there
# only).
if "--worker" not in sys.argv and REPO not in sys.path:
    sys.path.insert(0, REPO)

from _common import (  # noqa: E402
    _source_digest,
    describe_environment,
    format_size,
    markdown_table,
    median,
    thread_limit,
    timed,
)

N_TEST = 20_000
TOLERANCE = 1e-3  # "within 0.1% of the best objective known"

###############################################################################
# Problems: each returns train/test data and the truth's numbers.


class CurvesTruth:
    """Two crossing regression curves, chosen with probability 1/2 each.

    ``y = 5 x + e`` (a line) or ``y = 15 + 10 x - x**2 + e`` (a parabola),
    ``e ~ N(0, 3**2)``, ``x ~ U(0, 10)``; they cross at ``x = 7.1``. The
    features are ``X = [x, x**2]``. This is the set-up of flexmix's
    ``NPreg`` example (Leisch 2004), not its data.
    """

    noise_std = 3.0

    @staticmethod
    def means(X):
        x = X[:, 0]
        return np.column_stack([5.0 * x, 15.0 + 10.0 * x - x**2])

    def log_joint(self, X, y):
        """``log(g_k p_k(y | x))``, shape (n_samples, 2)."""
        resid = y[:, None] - self.means(X)
        return (
            np.log(0.5)
            - 0.5 * np.log(2 * np.pi * self.noise_std**2)
            - 0.5 * (resid / self.noise_std) ** 2
        )

    def log_likelihood(self, X, y):
        return logsumexp(self.log_joint(X, y), axis=1)


def _curves_data(n_train, seed):
    rng = np.random.RandomState(seed)
    n = n_train + N_TEST
    x = rng.uniform(0.0, 10.0, size=n)
    # Training rows: exactly half on each curve (as NPreg); test rows drawn.
    component = np.concatenate([np.arange(n_train) % 2, rng.randint(2, size=N_TEST)])
    X = np.column_stack([x, x**2])
    truth = CurvesTruth()
    mean = truth.means(X)[np.arange(n), component]
    y = mean + truth.noise_std * rng.standard_normal(n)
    return X, y, truth


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _moe_classifier_data(n_train, seed):
    from skmoe.datasets import make_moe_classification

    return make_moe_classification(
        n_train + N_TEST,
        10,
        4,
        n_classes=3,
        random_state=seed,
        return_truth=True,
    )


def _hme_data(hierarchy):
    def make(n_train, seed):
        from skmoe.datasets import make_hme_regression

        return make_hme_regression(
            n_train + N_TEST, 10, hierarchy, random_state=seed, return_truth=True
        )

    return make


def _moe_regression_data(n_features, n_experts):
    def make(n_train, seed):
        from skmoe.datasets import make_moe_regression

        return make_moe_regression(
            n_train + N_TEST,
            n_features,
            n_experts,
            random_state=seed,
            return_truth=True,
        )

    return make


# name: (data(n_train, seed) -> X, y, truth; default training rows; data
# seed; estimator parameters of the problem; classifier?). The classifier's
# data seed is 1: seed 0's problem is an easy one (today's default finds its
# optimum; kept as "classifier0"), while on data seeds 1-5 13 of 15 fits of
# today's default (3 seeds each) ended 5-7 points of test accuracy below the
# truth. "hard" has 8 experts: with 4 (d=5) classification EM reached the
# same objective from 6 seeds of 6; with 8, two of 6 ended ~25% lower.
PROBLEMS = {
    "curves": (_curves_data, 150, 0, {"n_experts": 2}, False),
    "classifier": (_moe_classifier_data, 20_000, 1, {"n_experts": 4}, True),
    "classifier0": (_moe_classifier_data, 20_000, 0, {"n_experts": 4}, True),
    "tree44": (_hme_data((4, 4)), 100_000, 0, {"hierarchy": (4, 4)}, False),
    "tree222": (_hme_data((2, 2, 2)), 100_000, 0, {"hierarchy": (2, 2, 2)}, False),
    "tree33": (_hme_data((3, 3)), 100_000, 0, {"hierarchy": (3, 3)}, False),
    "flat16": (_moe_regression_data(20, 16), 20_000, 0, {"n_experts": 16}, False),
    "hard": (
        _moe_regression_data(5, 8),
        20_000,
        0,
        {"n_experts": 8, "routing": "hard", "train_routing": "em"},
        False,
    ),
}

DEFAULT_PROBLEMS = (
    "curves,classifier,classifier0,tree44,tree222,tree33,tree44@2e4,tree222@2e4,"
    "tree33@2e4,flat16,hard"
)


def make_problem(spec):
    """Return the data and the truth's numbers of ``name`` or ``name@size``.

    The result is a dict: ``name``, ``n_train``, ``params`` (the estimator
    parameters the problem fixes), ``classifier``, the arrays ``X``, ``y``,
    ``X_test``, ``y_test``, ``digest`` (of the arrays), and the truth's
    ``truth_train`` (training log-likelihood per row, the objective's
    terms; None under hard routing), ``truth_test`` (test log-likelihood
    per row) and, for the classifier, ``truth_accuracy``.
    """
    name, _, size = spec.partition("@")
    if name not in PROBLEMS:
        raise SystemExit(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}")
    data, default_n, seed, params, classifier = PROBLEMS[name]
    n_train = int(float(size)) if size else default_n
    X, y, truth = data(n_train, seed)
    X_train, y_train, X_test, y_test = _split(X, y, n_train)
    hard = params.get("routing") == "hard"
    train_ll = truth.log_likelihood(X_train, y_train)
    test_ll = truth.log_likelihood(X_test, y_test)
    digest = hashlib.sha256()
    for array in (X_train, y_train, X_test, y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    problem = {
        "name": spec if size else name,
        "n_train": n_train,
        "params": params,
        "classifier": classifier,
        "X": X_train,
        "y": y_train,
        "X_test": X_test,
        "y_test": y_test,
        "digest": digest.hexdigest()[:12],
        # Under hard routing the objective is classification EM's (see
        # worker), which has no counterpart for the truth.
        "truth_train": None if hard else float(train_ll.mean()),
        "objective": "penalised_objective" if hard else "log_likelihood",
        "truth_test": float(test_ll.mean()),
    }
    if classifier:
        problem["truth_accuracy"] = float(np.mean(truth.predict(X_test) == y_test))
    return problem


###############################################################################
# Strategies: (code, parameters). "base" runs the base commit's checkout
# (--base), "new" this repository's code.

STRATEGIES = {
    "today": ("base", {}),
    "today_n_init10": ("base", {"n_init": 10}),
    "today_random": ("base", {"init_params": "random"}),
    # Many nearest-row starts on today's code: a best-known optimum for the
    # small problems (one seed; --reference-problems).
    "many_starts": ("base", {"init_params": "random", "n_init": 100}),
    "default": ("new", {}),
    "kmeans": ("new", {"init_params": "kmeans"}),
    "screen": ("new", {"init_params": "screen"}),
    "random": ("new", {"init_params": "random"}),
    "random_from_data": ("new", {"init_params": "random_from_data"}),
    "n_init10": ("new", {"n_init": 10}),
    "split_merge0": ("new", {"split_merge": 0}),
    "split_merge1": ("new", {"split_merge": 1}),
    "split_merge3": ("new", {"split_merge": 3}),
    "split_merge5": ("new", {"split_merge": 5}),
}

TODAY_STRATEGIES = "today,today_n_init10,today_random"


def parse_custom(items):
    """Parse ``NAME=JSON`` (new code) items into extra strategies."""
    extra = {}
    for item in items:
        name, _, params = item.partition("=")
        extra[name] = ("new", json.loads(params))
    return extra


###############################################################################
# Worker: fits one strategy on one problem for some seeds, in its own process.


def worker(job_path):
    """Fit the job's strategy for each of its seeds; print the records as JSON.

    Runs with ``PYTHONPATH`` set to the code under test; everything is
    timed inside ``threadpool_limits(1)`` after an untimed warm-up fit.
    """
    import skmoe
    from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

    with open(job_path) as file:
        job = json.load(file)
    data = np.load(job["data"])
    X, y, X_test, y_test = (data[k] for k in ("X", "y", "X_test", "y_test"))
    params = dict(job["params"])
    if "hierarchy" in params:
        params["hierarchy"] = tuple(params["hierarchy"])
    Estimator = (
        MixtureOfExpertsClassifier if job["classifier"] else MixtureOfExpertsRegressor
    )
    code = {
        "skmoe": os.path.dirname(os.path.abspath(skmoe.__file__)),
        "sources": _source_digest(),
    }
    unknown = sorted(set(params) - set(Estimator().get_params()))
    reason = None
    if unknown:
        reason = f"no parameter {', '.join(unknown)}"
    else:
        try:
            Estimator(**params)._validate_params()
        except (TypeError, ValueError) as error:
            reason = str(error).split("\n")[0]
    if reason is not None:
        print(json.dumps({"skipped": f"{code['skmoe']} refuses {params}: {reason}"}))
        return
    records = []
    with thread_limit(1):
        warm = slice(0, min(2000, X.shape[0]))
        # An untimed warm-up fit (the strategy's own max_iter is overridden).
        warm_up = Estimator(**{**params, "max_iter": 3, "random_state": 0})
        timed(warm_up.fit, X[warm], y[warm])
        for seed in job["seeds"]:
            model = Estimator(**{**params, "random_state": seed})
            wall, cpu, _ = timed(model.fit, X, y)
            record = {
                "seed": seed,
                "cpu": cpu,
                "wall": wall,
                "log_likelihood": float(model.log_likelihood_),
                "penalised_objective": float(model.objective_history_[-1]),
                "n_iter": int(model.n_iter_),
                "converged": bool(model.converged_),
                "n_runs": len(model.log_likelihood_histories_),
                "test_log_likelihood": float(
                    np.mean(model.log_likelihood(X_test, y_test))
                ),
            }
            if job["classifier"]:
                record["accuracy"] = float(model.score(X_test, y_test))
            records.append(record)
            print(
                f"  seed {seed}: log-likelihood {record['log_likelihood']:.5f}, test "
                f"{record['test_log_likelihood']:.5f}, {cpu:.2f} s CPU",
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps({"code": code, "records": records}))


def run_worker(problem, strategy, params, root, seeds, workdir):
    """Run :func:`worker` with ``PYTHONPATH=root``; return its JSON answer."""
    data = os.path.join(workdir, f"{problem['digest']}.npz")
    if not os.path.exists(data):
        np.savez(data, **{k: problem[k] for k in ("X", "y", "X_test", "y_test")})
    job = os.path.join(workdir, "job.json")
    with open(job, "w") as file:
        json.dump(
            {
                "data": data,
                "params": params,
                "classifier": problem["classifier"],
                "seeds": list(seeds),
            },
            file,
        )
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", job],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


###############################################################################
# Summary


def _key(record):
    return (record["problem"], record["digest"], record["strategy"], record["seed"])


def best_known(problem, records):
    """Return the best objective known for ``problem`` and where it is from."""
    mine = [r for r in records if r["digest"] == problem["digest"]]
    best, source = -np.inf, "none"
    if mine:
        key = problem["objective"]
        top = max(mine, key=lambda r: r[key])
        best, source = top[key], f"{top['strategy']}, seed {top['seed']}"
    if problem["truth_train"] is not None and problem["truth_train"] > best:
        best, source = problem["truth_train"], "truth"
    return best, source


def summarize(problem, strategy, records, today):
    """Return one table row of ``strategy`` on ``problem``."""
    best, key = problem["best"], problem["objective"]
    found = [abs(best - r[key]) <= TOLERANCE * abs(best) for r in records]
    gaps = [
        100
        * (problem["truth_test"] - r["test_log_likelihood"])
        / abs(problem["truth_test"])
        for r in records
    ]
    ratios = [r["cpu"] / today[r["seed"]]["cpu"] for r in records if r["seed"] in today]
    row = [
        problem["name"],
        format_size(problem["n_train"]),
        strategy,
        f"{sum(found)}/{len(found)}",
        f"{np.mean([r[key] for r in records]):.4f}",
        f"{np.mean([r['test_log_likelihood'] for r in records]):.4f}",
        f"{np.mean(gaps):.2f}",
        f"{np.max(gaps):.2f}",
    ]
    # Results recovered from a log may lack the accuracy.
    points = [
        100 * (r["accuracy"] - problem["truth_accuracy"])
        for r in records
        if r.get("accuracy") is not None
    ]
    if points:
        row.append(f"{np.mean(points):+.2f} ({np.min(points):+.2f})")
    else:
        row.append("n/a" if problem["classifier"] else "")
    row += [
        f"{median([r['cpu'] for r in records]):.2f}",
        f"{median(ratios):.2f}" if ratios else "n/a",
    ]
    return row


def save(path, records):
    """Write ``records`` (loaded ones too) and this run's command to ``path``."""
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python " + " ".join(sys.argv),
    }
    clean = [{k: v for k, v in r.items() if k != "loaded_from"} for r in records]
    with open(path + ".tmp", "w") as file:
        json.dump({"meta": meta, "records": clean}, file, indent=1)
    os.replace(path + ".tmp", path)


def main(argv=None):
    if argv is None and sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--problems",
        default=DEFAULT_PROBLEMS,
        help="comma-separated problems, each NAME or NAME@ROWS (e.g. tree44@2e4); "
        f"known: {', '.join(PROBLEMS)}",
    )
    parser.add_argument(
        "--strategies",
        default=TODAY_STRATEGIES,
        help=f"comma-separated strategies; known: {', '.join(STRATEGIES)}",
    )
    parser.add_argument(
        "--custom",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an extra strategy on the new code, e.g. "
        "'sm2={\"split_merge\": 2}' (add NAME to --strategies)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument(
        "--large-seeds",
        type=int,
        default=3,
        help="seeds for problems of at least --large-size training rows",
    )
    parser.add_argument("--large-size", type=float, default=5e4)
    parser.add_argument(
        "--reference-problems",
        default="curves",
        help="problems on which 'many_starts' (today's code, 100 nearest-row "
        "starts, seed 0) also runs, for the best-known objective",
    )
    parser.add_argument(
        "--base",
        default="/work/wt/base",
        help="checkout of the base commit a8fb26a ('today')",
    )
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        help="JSON results to reuse (repeatable); matching fits are not rerun",
    )
    parser.add_argument("--save", help="write every result (loaded ones too) here")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="fit nothing: tabulate the loaded results only",
    )
    args = parser.parse_args(argv)
    strategies = dict(STRATEGIES, **parse_custom(args.custom))
    chosen = [s for s in args.strategies.split(",") if s]
    for name in chosen:
        if name not in strategies:
            raise SystemExit(
                f"unknown strategy {name!r}; known: {', '.join(strategies)}"
            )
    roots = {"base": os.path.abspath(args.base), "new": REPO}

    records, origin = [], {}
    for path in args.load:
        with open(path) as file:
            saved = json.load(file)
        for record in saved["records"]:
            record["loaded_from"] = path
            records.append(record)
        origin[path] = saved["meta"]
    have = {_key(r) for r in records}

    print(describe_environment(1))
    print(f"- base ('today'): {roots['base']}; new: {REPO}")
    for path, meta in origin.items():
        print(f"- loaded {path}: {meta['date']}, `{meta['command']}`")
    print()
    skipped, problems = [], []
    reference = set(args.reference_problems.split(","))
    with tempfile.TemporaryDirectory() as workdir:
        for spec in [p for p in args.problems.split(",") if p]:
            problem = make_problem(spec)
            problems.append(problem)
            large = problem["n_train"] >= args.large_size
            seeds = range(min(args.seeds, args.large_seeds) if large else args.seeds)
            runs = [(s, seeds) for s in chosen]
            if spec in reference:
                runs.append(("many_starts", range(1)))
            for name, strategy_seeds in runs:
                code, params = strategies[name]
                todo = [
                    seed
                    for seed in strategy_seeds
                    if (problem["name"], problem["digest"], name, seed) not in have
                ]
                if not todo or args.report_only:
                    continue
                print(f"{problem['name']} / {name}: seeds {todo}", flush=True)
                started = time.perf_counter()
                answer = run_worker(
                    problem,
                    name,
                    {**problem["params"], **params},
                    roots[code],
                    todo,
                    workdir,
                )
                if "skipped" in answer:
                    skipped.append(f"{problem['name']} / {name}: {answer['skipped']}")
                    print(f"  skipped: {answer['skipped']}", flush=True)
                    continue
                for record in answer["records"]:
                    record.update(
                        problem=problem["name"],
                        n_train=problem["n_train"],
                        digest=problem["digest"],
                        strategy=name,
                        params=params,
                        code=code,
                        sources=answer["code"]["sources"],
                    )
                    records.append(record)
                print(f"  {time.perf_counter() - started:.0f} s", flush=True)
                if args.save:
                    # After every strategy: a long run stopped halfway
                    # keeps what it measured.
                    save(args.save, records)

    if args.save:
        save(args.save, records)
        print(f"saved {len(records)} results to {args.save}")

    print()
    reference_rows, rows = [], []
    for problem in problems:
        problem["best"], source = best_known(problem, records)
        truth_train = problem["truth_train"]
        reference_rows.append(
            [
                problem["name"],
                format_size(problem["n_train"]),
                problem["digest"],
                f"{problem['best']:.5f}",
                source,
                "n/a" if truth_train is None else f"{truth_train:.5f}",
                f"{problem['truth_test']:.5f}",
                f"{100 * problem['truth_accuracy']:.2f}"
                if problem["classifier"]
                else "",
            ]
        )
        mine = [r for r in records if r["digest"] == problem["digest"]]
        today = {r["seed"]: r for r in mine if r["strategy"] == "today"}
        for name in dict.fromkeys([*chosen, "many_starts"]):
            these = sorted(
                (r for r in mine if r["strategy"] == name), key=lambda r: r["seed"]
            )
            if these:
                rows.append(summarize(problem, name, these, today))
    print(
        markdown_table(
            [
                "problem",
                "n",
                "data",
                "best known objective",
                "from",
                "truth train",
                "truth test",
                "truth acc %",
            ],
            reference_rows,
        )
    )
    print()
    print(
        markdown_table(
            [
                "problem",
                "n",
                "strategy",
                "found",
                "mean objective",
                "mean test LL",
                "test LL gap % (mean)",
                "(worst)",
                "acc - truth, points (worst)",
                "CPU s (median)",
                "time / today",
            ],
            rows,
        )
    )
    print()
    print(
        "found: seeds within 0.1% of the best known objective (training "
        "log-likelihood per row); test LL gap: (truth - fit) / |truth| of the "
        "test log-likelihood per row; time / today: median over seeds of the "
        "paired CPU-time ratio (one thread)."
    )
    loaded = sorted(
        {(r["strategy"], r["loaded_from"]) for r in records if "loaded_from" in r}
    )
    for name, path in sorted(loaded):
        print(f"- {name}: loaded from {path}, not rerun")
    for line in skipped:
        print(f"- skipped {line}")


if __name__ == "__main__":
    main()
