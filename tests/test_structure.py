"""The architecture as tests: import direction between modules, public docs."""

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import skmoe

PACKAGE = Path(skmoe.__file__).parent

# DESIGN.md §4, top to bottom: a module may import only modules below it.
LAYERS = [
    {"__main__"},
    {"__init__"},
    {"_estimators", "_scoring"},
    {"_base"},
    {"_validation"},
    {"_blockwise", "_dask", "_stepwise", "_tree_start"},
    {"_statistics", "_fused", "_inference"},
    {"_gating", "_experts", "_routing", "_init", "_split_merge"},
    {"_softmax", "_threads", "_restarts"},
    {"_backend", "_summary", "_engine", "_online"},
]
STANDALONE = {"datasets"}  # public helpers that need nothing of the internals


def _layer(module):
    return next(i for i, layer in enumerate(LAYERS) if module in layer)


def _skmoe_imports(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            name = node.module
        elif isinstance(node, ast.Import):
            name = node.names[0].name
        else:
            continue
        if name == "skmoe" or name.startswith("skmoe."):
            imported.add(name.removeprefix("skmoe").lstrip(".") or "__init__")
    return imported


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_imports_point_down(path):
    module = path.stem
    for target in _skmoe_imports(path):
        if module in STANDALONE:
            pytest.fail(f"{module} should not import skmoe internals ({target})")
        if target in STANDALONE:
            continue
        assert _layer(target) > _layer(module), f"{module} imports {target}"


@pytest.mark.parametrize(
    ("owner", "imports"),
    [
        # DESIGN.md §5: torch and array-api-compat are imported in _backend.
        ("_backend", ["import torch", "array_api_compat"]),
        # The dask extra is optional: one module imports it, lazily.
        ("_dask", ["import dask", "from dask"]),
    ],
    ids=["torch", "dask"],
)
def test_only_one_module_imports_an_optional_dependency(owner, imports):
    for path in PACKAGE.glob("*.py"):
        if path.stem == owner:
            continue
        text = path.read_text()
        for statement in imports:
            assert statement not in text, path.name


def test_torch_is_not_imported_by_the_numpy_path():
    code = (
        "import sys\n"
        "from skmoe import MixtureOfExpertsRegressor\n"
        "from skmoe.datasets import make_moe_regression\n"
        "X, y = make_moe_regression(n_samples=200, n_experts=2, random_state=0)\n"
        "moe = MixtureOfExpertsRegressor(n_experts=2, max_iter=5, random_state=0)\n"
        "moe.fit(X, y).predict(X)\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'array_api_compat' not in sys.modules\n"
        "assert 'dask' not in sys.modules\n"
    )
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        check=True,
        cwd=PACKAGE.parent,
    )


PUBLIC = [
    skmoe.MixtureOfExpertsRegressor,
    skmoe.MixtureOfExpertsClassifier,
    skmoe.GateTree,
    skmoe.MixtureSummary,
    skmoe.bic_scorer,
    skmoe.icl_scorer,
    skmoe.log_likelihood_scorer,
]


def _public_objects():
    for obj in PUBLIC:
        yield obj
        if inspect.isclass(obj):
            for name, member in vars(obj).items():
                if not name.startswith("_") and inspect.isfunction(member):
                    yield member
    datasets = importlib.import_module("skmoe.datasets")
    for name in datasets.__all__:
        yield getattr(datasets, name)
    plot = importlib.import_module("skmoe.plot")
    for name in plot.__all__:
        display = getattr(plot, name)
        yield from (display, display.from_estimator, display.plot)


# Checks scikit-learn itself does not enforce on every docstring.
IGNORED = {"GL08", "ES01", "SA01", "EX01", "RT02", "PR02", "SS05", "GL02", "GL03"}


@pytest.mark.parametrize(
    "obj", list(_public_objects()), ids=lambda o: getattr(o, "__qualname__", str(o))
)
def test_numpydoc(obj):
    validate = pytest.importorskip("numpydoc.validate")
    errors = [
        f"{code}: {message}"
        for code, message in validate.validate(f"{obj.__module__}.{obj.__qualname__}")[
            "errors"
        ]
        if code not in IGNORED
    ]
    assert not errors, "\n".join(errors)
