"""Do skmoe's 95% intervals cover the true parameters 95% of the time?

For three known mixtures (a flat regressor with K=2 linear experts, a
(2, 2) tree of linear experts, a flat classifier with K=2 logistic experts
over 3 classes), each drawn once by ``skmoe.datasets`` (``gate_scale=2``),
this script draws ``--sets`` fresh data sets of ``n`` rows from the same
model, fits each (``tol=1e-8``, ``n_init=2``; the classifier: from the
truth, by Newton steps on the exact Hessian, see ``fit_from_truth``), and
counts how often the intervals of ``summary`` cover the true parameters,
per coefficient group (gate slopes, gate intercepts, expert slopes,
expert intercepts, noise variances), for ``method="observed"`` and ``"sandwich"``, and
``"bootstrap"`` on the first ``--bootstrap-sets`` sets of the flat
regressor. The fitted experts are matched to the true ones by their
posteriors on the data (Hungarian algorithm within each gate,
``skmoe._inference.align_to_reference``), and the true gates are written in
the fitted model's reference (each gate's first child), so that estimate
and truth are the same parameter. It also times ``summary`` as a ratio to
the fit.

    python benchmarks/coverage.py [--sets 200] [--bootstrap-sets 30]
    python benchmarks/coverage.py --problems "3-class classifier, K=2" \
        --rows 20000 [--unpenalised]

``--rows`` replaces every chosen problem's rows per set, ``--truth-seed``
the seed of the true models (0); ``--unpenalised``
fits with ``gate_alpha=0`` (and unpenalised logistic experts): the maximum
likelihood estimate, free of the penalties' bias.

A coverage far below 95% means intervals too narrow (or biased estimates:
the fits' penalties, a wrong mode); the binomial standard error of a
coverage from 200 sets is about 1.5 points, so 93-97% is what well
calibrated intervals give.
"""

import argparse
import time
import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._inference import (
    align_to_reference,
    fitted_layout,
    mixture_derivatives,
    mixture_log_likelihood_rows,
    model_penalty,
    pack,
    permute_gate,
    unpack,
)
from skmoe.datasets import (
    make_hme_classification,
    make_hme_regression,
    make_moe_regression,
)

PROBLEMS = {
    "flat K=2 regressor": {
        "make": lambda seed: make_moe_regression(
            n_samples=10,
            n_features=2,
            n_experts=2,
            gate_scale=2.0,
            random_state=seed,
            return_truth=True,
        ),
        "estimator": lambda seed: MixtureOfExpertsRegressor(
            n_experts=2, tol=1e-8, max_iter=2000, n_init=2, random_state=seed
        ),
        "n_samples": 1000,
    },
    "(2, 2) tree regressor": {
        "make": lambda seed: make_hme_regression(
            n_samples=10,
            n_features=3,
            hierarchy=(2, 2),
            gate_scale=2.0,
            random_state=seed,
            return_truth=True,
        ),
        "estimator": lambda seed: MixtureOfExpertsRegressor(
            hierarchy=(2, 2), tol=1e-8, max_iter=2000, n_init=2, random_state=seed
        ),
        "n_samples": 2000,
    },
    "3-class classifier, K=2": {
        "make": lambda seed: make_hme_classification(
            n_samples=10,
            n_features=2,
            hierarchy=(2,),
            n_classes=3,
            gate_scale=2.0,
            expert_scale=2.0,
            random_state=seed,
            return_truth=True,
        ),
        # LogisticRegression's default C=1 shrinks the experts' coefficients
        # by about one row's worth: a bias that intervals of the penalised
        # estimate do not cover. C=100 leaves the truth to the data.
        "estimator": lambda seed: MixtureOfExpertsClassifier(
            LogisticRegression(C=100.0),
            n_experts=2,
            tol=1e-8,
            max_iter=2000,
            n_init=2,
            random_state=seed,
        ),
        "n_samples": 2000,
        # Mixtures of multinomial logits have many modes: EM starts from the
        # truth, so that coverage measures the intervals, not EM's search.
        "start_at_truth": True,
    },
}


def fit_from_truth(model, truth, X, y):
    """Fit ``model`` from the true parameters by Newton steps on its objective.

    EM needs 300-2000 iterations on a mixture of multinomial logits; the
    exact Hessian of ``summary`` (``skmoe._inference``) reaches the same
    maximum of the fit's penalised log-likelihood in ~10 steps. Far from
    the maximum that Hessian can be indefinite (the gate of this truth is
    weakly identified), so the steps are scipy's ``trust-exact`` trust
    region. The maximum is written back into the model, centred (the
    minimal-norm softmax coefficients, as the fit stores them).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(max_iter=1).fit(X, y)
    model.gate_.coef = [
        np.concatenate([c, i[:, None, :]], axis=1)
        for c, i in zip(truth.gate_coef, truth.gate_intercept, strict=True)
    ]
    coef = np.concatenate(
        [truth.expert_coef, truth.expert_intercept[:, :, None]], axis=2
    )
    model._expert_pool.coef_ = np.ascontiguousarray(np.swapaxes(coef, 1, 2))
    mixture = model._fitted_mixture()
    layout, theta, Xg, Xe = fitted_layout(mixture, X)
    y_enc = model._encode_targets(y, reset=False)
    weights = np.ones(X.shape[0])
    penalty = model_penalty(mixture, layout, theta, 1.0)
    cache = {}

    def derivatives(theta):
        key = theta.tobytes()
        if key not in cache:
            cache.clear()
            scores, hessian, _ = mixture_derivatives(
                layout, theta, Xg, Xe, y_enc, weights
            )
            gradient = scores.sum(axis=0) - penalty @ theta
            cache[key] = (-gradient, penalty - hessian)
        return cache[key]

    def objective(theta):
        rows = mixture_log_likelihood_rows(layout, theta, Xg, Xe, y_enc)
        return 0.5 * theta @ penalty @ theta - rows.sum()

    result = minimize(
        objective,
        theta,
        jac=lambda theta: derivatives(theta)[0],
        hess=lambda theta: derivatives(theta)[1],
        method="trust-exact",
        options={"gtol": 1e-6, "maxiter": 200},
    )
    if not result.success:
        # trust-exact also stops when rounding hides any further gain at the
        # maximum; accept a point whose Newton step is below 1e-3 SE.
        gradient, information = derivatives(result.x)
        try:
            inverse = np.linalg.inv(information)
            step = np.abs(inverse @ gradient) / np.sqrt(np.diag(inverse))
        except (np.linalg.LinAlgError, FloatingPointError):
            step = np.array([np.inf])
        if not np.all(np.isfinite(step)) or step.max() > 1e-3:
            raise ValueError(f"Newton from the truth: {result.message}")
    gate, (coef,) = unpack(layout, result.x)
    model.gate_.coef = [g - g.mean(axis=-1, keepdims=True) for g in gate]
    model._expert_pool.coef_ = coef - coef.mean(axis=-1, keepdims=True)
    return model


def draw(truth, n_samples, rng):
    """Draw a data set from the true model (X standard normal, as datasets)."""
    n_features = truth.gate_coef[0].shape[1]
    X = rng.standard_normal((n_samples, n_features))
    gate = truth.predict_gate(X)
    expert = (gate.cumsum(axis=1) > rng.uniform(size=(n_samples, 1))).argmax(axis=1)
    rows = np.arange(n_samples)
    if truth.classes is None:
        mean = X @ truth.expert_coef.T + truth.expert_intercept
        noise = truth.noise_std[expert] * rng.standard_normal(n_samples)
        return X, mean[rows, expert] + noise
    logits = np.einsum("nd,kcd->nkc", X, truth.expert_coef) + truth.expert_intercept
    proba = np.exp(log_softmax(logits, axis=2))[rows, expert]
    y = (proba.cumsum(axis=1) > rng.uniform(size=(n_samples, 1))).argmax(axis=1)
    return X, truth.classes[y]


def true_log_joint(truth, X, y):
    """log g_k(x) + log f_k(y | x) of the true model, (n, K)."""
    log_gate = np.log(truth.predict_gate(X))
    if truth.classes is None:
        mean = X @ truth.expert_coef.T + truth.expert_intercept
        sd = truth.noise_std
        return (
            log_gate
            - 0.5 * (((y[:, None] - mean) / sd) ** 2)
            - np.log(np.sqrt(2 * np.pi) * sd)
        )
    logits = np.einsum("nd,kcd->nkc", X, truth.expert_coef) + truth.expert_intercept
    log_proba = log_softmax(logits, axis=2)
    index = np.searchsorted(truth.classes, y)
    return log_gate + log_proba[np.arange(X.shape[0]), :, index]


def true_parameters(truth, layout, model, X, y):
    """The true parameters in the fitted model's order and reference."""
    from skmoe._inference import (
        _expert_log_likelihood,
        _level_log_probas,
        _log_gate,
        unpack,
    )

    _, theta, Xg, Xe = fitted_layout(model._fitted_mixture(), X)
    gate_coef, params = unpack(layout, theta)
    y_enc = model._encode_targets(y, reset=False)
    log_joint = _log_gate(layout, _level_log_probas(Xg, gate_coef))
    log_joint = log_joint + _expert_log_likelihood(layout, Xe, y_enc, params)
    fitted = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    true = true_log_joint(truth, X, y)
    true = np.exp(true - logsumexp(true, axis=1, keepdims=True))
    # For each fitted node, the true node it matches.
    node_maps = align_to_reference(layout.hierarchy, fitted, true)
    gate = [
        np.concatenate([c, i[:, None, :]], axis=1)
        for c, i in zip(truth.gate_coef, truth.gate_intercept, strict=True)
    ]
    gate = permute_gate(gate, layout.hierarchy, node_maps)
    leaves = node_maps[-1]
    if truth.classes is None:
        coef = np.column_stack([truth.expert_coef, truth.expert_intercept])[leaves]
        expert = (coef, truth.noise_std[leaves] ** 2)
    else:
        coef = np.concatenate(
            [truth.expert_coef, truth.expert_intercept[:, :, None]], axis=2
        )
        expert = (np.swapaxes(coef, 1, 2)[leaves],)
    return pack(layout, gate, expert)


def groups(table):
    """Coefficient group of every row of a summary table."""
    names = []
    for block, term in zip(table.block, table.term, strict=True):
        kind = "gate" if block.startswith("gate") else "expert"
        if term == "variance":
            names.append("noise variances")
        elif term == "intercept":
            names.append(f"{kind} intercepts")
        else:
            names.append(f"{kind} slopes")
    return np.array(names)


def run(
    name,
    problem,
    n_sets,
    n_bootstrap_sets,
    n_bootstrap,
    seed,
    report_every,
    unpenalised=False,
    save=None,
):
    _, _, truth = problem["make"](problem["truth_seed"])
    rng = np.random.default_rng(seed)
    methods = ["observed", "sandwich"]
    covered = {m: [] for m in [*methods, "bootstrap"]}
    fit_seconds, summary_seconds, failures = [], [], 0
    labels, reported = None, 0
    z_scores = []
    quantile = norm.ppf(0.975)
    for s in range(n_sets):
        X, y = draw(truth, problem["n_samples"], rng)
        model = problem["estimator"](s)
        if unpenalised:
            # The maximum-likelihood estimate, whose intervals are centred
            # on the truth only asymptotically, without a penalty's bias.
            model.set_params(gate_alpha=0.0)
            if problem.get("start_at_truth"):
                model.set_params(estimator=LogisticRegression(C=np.inf))
        start = time.perf_counter()
        try:
            if problem.get("start_at_truth"):
                fit_from_truth(model, truth, X, y)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(X, y)
        except ValueError as error:
            failures += 1
            print(f"  set {s}: {error}"[:200])
            continue
        fit_seconds.append(time.perf_counter() - start)
        layout = fitted_layout(model._fitted_mixture(), X)[0]
        try:
            truth_theta = true_parameters(truth, layout, model, X, y)
            for method in methods:
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    table = model.summary(X, y, method=method)
                if method == "observed":
                    summary_seconds.append(time.perf_counter() - start)
                    z_scores.append((table.coef - truth_theta) / table.std_err)
                covered[method].append(
                    np.abs(table.coef - truth_theta) <= quantile * table.std_err
                )
            if s < n_bootstrap_sets:
                table = model.summary(
                    X, y, method="bootstrap", n_bootstrap=n_bootstrap, random_state=s
                )
                covered["bootstrap"].append(
                    (table.ci[:, 0] <= truth_theta) & (truth_theta <= table.ci[:, 1])
                )
        except (ValueError, TypeError) as error:
            failures += 1
            fit_seconds.pop()
            print(f"  set {s}: {error}"[:200])
            continue
        labels = groups(table)
        if (s + 1) % report_every == 0:
            reported = s + 1
            report(
                name,
                problem,
                s + 1,
                failures,
                labels,
                covered,
                z_scores,
                fit_seconds,
                summary_seconds,
            )
    if labels is not None and reported < n_sets:
        report(
            name,
            problem,
            n_sets,
            failures,
            labels,
            covered,
            z_scores,
            fit_seconds,
            summary_seconds,
        )
    if save and labels is not None:
        np.savez(
            save,
            z=np.array(z_scores),
            block=np.array(table.block),
            term=np.array(table.term),
        )


def report(
    name,
    problem,
    n_sets,
    failures,
    labels,
    covered,
    z_scores,
    fit_seconds,
    summary_seconds,
):
    """Print the coverage of every group and method after ``n_sets`` sets.

    With the coverages, the standard deviation over sets of every
    parameter's z = (estimate - truth) / SE (observed), the group's range:
    about 1 where the normal approximation holds.
    """
    print(
        f"\n{name}: n = {problem['n_samples']} rows per set, "
        f"truth seed {problem['truth_seed']}, "
        f"{len(covered['observed'])} of {n_sets} sets summarised "
        f"({failures} failed), {len(labels)} parameters"
    )
    header = f"{'group':<18}" + "".join(f"{m:>11}" for m in covered if covered[m])
    header += "   sd of z (observed)"
    z_sd = np.std(np.array(z_scores), axis=0)
    print(header)
    for group in dict.fromkeys(labels):
        rows = labels == group
        cells = []
        for hits in covered.values():
            if hits:
                cells.append(f"{100 * np.mean(np.array(hits)[:, rows]):>10.1f}%")
        spread = f"   {z_sd[rows].min():.2f}-{z_sd[rows].max():.2f}"
        print(f"{group:<18}" + "".join(cells) + spread)
    all_cells = "".join(
        f"{100 * np.mean(hits):>10.1f}%" for hits in covered.values() if hits
    )
    print(f"{'all':<18}" + all_cells)
    counts = {m: len(h) for m, h in covered.items() if h}
    print(f"sets per method: {counts}")
    ratio = np.median(np.array(summary_seconds) / np.array(fit_seconds))
    print(
        f"time: fit median {np.median(fit_seconds):.3f} s, summary(observed) "
        f"median {np.median(summary_seconds):.4f} s, ratio {ratio:.3f}",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--bootstrap-sets", type=int, default=30)
    parser.add_argument("--n-bootstrap", type=int, default=100)
    parser.add_argument("--problems", nargs="*", default=list(PROBLEMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-every", type=int, default=1000)
    parser.add_argument(
        "--rows", type=int, default=None, help="rows per set (default: per problem)"
    )
    parser.add_argument(
        "--unpenalised",
        action="store_true",
        help="gate_alpha=0 and unpenalised logistic experts (the MLE)",
    )
    parser.add_argument(
        "--save", default=None, help="an .npz file for the z of every set"
    )
    parser.add_argument(
        "--truth-seed", type=int, default=0, help="random_state of the true models"
    )
    args = parser.parse_args()
    for name in args.problems:
        problem = dict(PROBLEMS[name], truth_seed=args.truth_seed)
        if args.rows is not None:
            problem["n_samples"] = args.rows
        bootstrap_sets = args.bootstrap_sets if name == "flat K=2 regressor" else 0
        run(
            name,
            problem,
            args.sets,
            bootstrap_sets,
            args.n_bootstrap,
            args.seed,
            args.report_every,
            args.unpenalised,
            args.save,
        )


if __name__ == "__main__":
    main()
