"""Golden fits: record fits before a refactor, compare after it.

A refactor that moves code without changing the maths must leave every
fit as it was. This script fits a fixed set of models (flat and tree,
every routing, regressor and classifier, float32 and float64, sample
weights, ``partial_fit``, Dask arrays and the torch backend when they
are installed) and records their objective histories, parameters and
predictions::

    python benchmarks/golden.py --record /tmp/golden_before.npz
    # ... change the code ...
    python benchmarks/golden.py --compare /tmp/golden_before.npz

``--compare`` prints the largest relative difference of every recorded
array and exits 1 when one exceeds its tolerance: 1e-10 in float64, 1e-4
in float32 (where a different order of the same sums already moves the
last digits). Run both on the same machine: EM amplifies rounding, so a
file recorded on another CPU (another BLAS kernel) is no reference. It is
a hand-run check, not a test, for that reason.
"""

import argparse
import os
import sys
import warnings

import numpy as np

# The checkout's skmoe, not an installed copy: a script run by its path has
# its own folder first on sys.path, and an installed skmoe would be compared
# with itself.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import skmoe
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_classification, make_hme_regression

_TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def _cases():
    """Yield ``(name, estimator, X, y, sample_weight)``."""
    X, y = make_hme_regression(
        n_samples=600, n_features=3, hierarchy=(4,), random_state=0
    )
    Xt, yt = make_hme_regression(
        n_samples=600, n_features=3, hierarchy=(2, 2), random_state=1
    )
    Xc, yc = make_hme_classification(
        n_samples=600, n_features=3, hierarchy=(3,), n_classes=3, random_state=2
    )
    weights = np.random.default_rng(3).uniform(0.2, 2.0, size=600)
    reg = {"n_experts": 3, "random_state": 0, "max_iter": 40}
    tree = {"hierarchy": (2, 2), "random_state": 0, "max_iter": 40}
    clf = {"n_experts": 3, "random_state": 0, "max_iter": 40}
    yield "reg_soft", MixtureOfExpertsRegressor(**reg), X, y, None
    yield "reg_weights", MixtureOfExpertsRegressor(**reg), X, y, weights
    yield "reg_hard", MixtureOfExpertsRegressor(routing="hard", **reg), X, y, None
    yield (
        "reg_hard_em",
        MixtureOfExpertsRegressor(routing="hard", train_routing="em", **reg),
        X,
        y,
        None,
    )
    yield (
        "reg_topk",
        MixtureOfExpertsRegressor(routing="topk", top_k=2, **reg),
        X,
        y,
        None,
    )
    yield "reg_n_init", MixtureOfExpertsRegressor(n_init=2, **reg), X, y, None
    yield (
        "reg_float32",
        MixtureOfExpertsRegressor(**reg),
        X.astype(np.float32),
        y.astype(np.float32),
        None,
    )
    yield "tree_soft", MixtureOfExpertsRegressor(**tree), Xt, yt, None
    yield "tree_weights", MixtureOfExpertsRegressor(**tree), Xt, yt, weights
    yield (
        "tree_topk",
        MixtureOfExpertsRegressor(routing="topk", top_k=2, **tree),
        Xt,
        yt,
        None,
    )
    yield "clf_soft", MixtureOfExpertsClassifier(**clf), Xc, yc, None
    yield "clf_weights", MixtureOfExpertsClassifier(**clf), Xc, yc, weights
    yield "clf_hard", MixtureOfExpertsClassifier(routing="hard", **clf), Xc, yc, None
    yield (
        "clf_tree",
        MixtureOfExpertsClassifier(hierarchy=(2, 2), random_state=0, max_iter=40),
        Xc,
        yc,
        None,
    )
    yield (
        "clf_float32",
        MixtureOfExpertsClassifier(**clf),
        Xc.astype(np.float32),
        yc,
        None,
    )
    yield "reg_partial_fit", _Batches(MixtureOfExpertsRegressor(**reg)), X, y, None
    yield (
        "clf_partial_fit",
        _Batches(MixtureOfExpertsClassifier(**clf)),
        Xc,
        yc,
        None,
    )
    try:
        import dask.array as da
    except ImportError:
        pass
    else:
        yield (
            "reg_dask",
            _Dask(MixtureOfExpertsRegressor(**reg), da),
            X,
            y,
            weights,
        )
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    yield "reg_torch", MixtureOfExpertsRegressor(backend="torch", **reg), X, y, None
    yield "clf_torch", MixtureOfExpertsClassifier(backend="torch", **clf), Xc, yc, None


class _Batches:
    """Fit by ``partial_fit`` on three batches, twice over."""

    def __init__(self, model):
        self.model = model

    def fit(self, X, y, sample_weight=None):
        extra = {}
        if isinstance(self.model, MixtureOfExpertsClassifier):
            extra["classes"] = np.unique(y)
        for _ in range(2):
            for rows in np.array_split(np.arange(len(X)), 3):
                self.model.partial_fit(X[rows], y[rows], **extra)
        return self.model


class _Dask:
    """Fit on Dask arrays (the blockwise engine), on the local scheduler."""

    def __init__(self, model, da):
        self.model, self.da = model, da

    def fit(self, X, y, sample_weight=None):
        return self.model.fit(
            self.da.from_array(X, chunks=(250, X.shape[1])),
            self.da.from_array(y, chunks=250),
            sample_weight=self.da.from_array(sample_weight, chunks=250),
        )


def _record(name, model, X, y, sample_weight):
    """Return the arrays that describe the fit, keyed ``name/what``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = model.fit(X, y, sample_weight=sample_weight)
    out = {
        "objective_history": model.objective_history_,
        "log_likelihood": [model.log_likelihood_],
        "gate": model.predict_gate(X),
    }
    if isinstance(model, MixtureOfExpertsClassifier):
        out["predict_proba"] = model.predict_proba(X)
    else:
        mean, std = model.predict(X, return_std=True)
        out["predict"], out["predict_std"] = mean, std
    for index, coef in enumerate(model.gate_.coef):
        out[f"gate_coef{index}"] = coef
    dtype = np.asarray(X).dtype
    return {
        f"{name}/{key}": np.asarray(
            value.cpu().numpy() if hasattr(value, "cpu") else value, dtype=dtype
        )
        for key, value in out.items()
    }


def _difference(before, after):
    """Largest relative difference, scaled by the array's largest entry."""
    if before.shape != after.shape:
        return np.inf
    scale = max(np.max(np.abs(before), initial=0.0), np.finfo(before.dtype).tiny)
    return float(np.max(np.abs(before - after), initial=0.0) / scale)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", help="write the golden fits to this .npz")
    group.add_argument("--compare", help="compare against this .npz")
    args = parser.parse_args(argv)
    print(f"skmoe from {os.path.dirname(skmoe.__file__)}")
    arrays = {}
    for case in _cases():
        arrays.update(_record(*case))
    if args.record:
        np.savez(args.record, **arrays)
        print(f"recorded {len(arrays)} arrays to {args.record}")
        return 0
    reference = dict(np.load(args.compare))
    failed = 0
    for key in sorted(set(reference) | set(arrays)):
        if key not in reference or key not in arrays:
            print(f"{key:36s} only in {'now' if key in arrays else 'reference'}")
            failed += 1
            continue
        before = reference[key]
        difference = _difference(before, arrays[key])
        tolerance = _TOLERANCE[before.dtype.type]
        flag = "ok" if difference <= tolerance else "DIFFERS"
        failed += flag != "ok"
        print(f"{key:36s} {difference:10.3e}  {flag}")
    print(f"{failed} of {len(reference)} arrays differ beyond their tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
