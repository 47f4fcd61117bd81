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

# docs/design.md §4.2, top to bottom: a module may import only modules below it.
LAYERS = [
    {"__main__"},
    {"__init__"},
    {"_estimators", "_scoring"},
    {"_base"},
    {"_fitting", "_inspection"},
    {"_start", "_validation", "_online", "_warnings"},
    {"_engine"},
    {"_blockwise", "_dask", "_stepwise", "_tree_start", "_fused_logistic"},
    {"_statistics", "_fused", "_inference"},
    {"_gating", "_experts", "_routing", "_init", "_split_merge"},
    {"_softmax", "_threads", "_restarts"},
    {"_backend", "_summary"},
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


# Modules below _base that still reach the estimator, and why; the list
# only shrinks.
REACHES_THE_ESTIMATOR = {
    # A decorator of the estimator's own methods: it reads the estimator
    # it wraps, as the method would.
    "_threads",
}


# The names under which lower layers have taken the estimator.
ESTIMATOR_NAMES = {"estimator", "model", "moe"}


def _estimator_private_uses(tree):
    """Return the lines where a name of the estimator reaches a private member."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ESTIMATOR_NAMES
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def _below_base():
    base = next(i for i, layer in enumerate(LAYERS) if "_base" in layer)
    return sorted(module for layer in LAYERS[base + 1 :] for module in layer)


@pytest.mark.parametrize(
    "module", [m for m in _below_base() if m not in REACHES_THE_ESTIMATOR]
)
def test_lower_layers_do_not_reach_the_estimator(module):
    """Below _base, modules take options and values, never the estimator.

    An import of ``_base`` would show in the import test; a call of an
    estimator's private method on an argument would not.
    """
    path = PACKAGE / f"{module}.py"
    assert "_base" not in _skmoe_imports(path)
    assert _estimator_private_uses(ast.parse(path.read_text())) == []


def test_the_reach_check_sees_a_private_call():
    source = "def run(estimator):\n    return estimator._fit_once(max_iter=1)\n"
    assert _estimator_private_uses(ast.parse(source)) == [2]
    # The names summary's numerics once took the estimator under.
    source = "def f(model, moe):\n    model.gate_\n    model._pool\n    moe._tol\n"
    assert _estimator_private_uses(ast.parse(source)) == [3, 4]
    assert _estimator_private_uses(ast.parse("estimator.__class__")) == []
    assert _estimator_private_uses(ast.parse("self._pool, mixture._pool")) == []


def test_the_engine_takes_no_estimator():
    tree = ast.parse((PACKAGE / "_engine.py").read_text())
    parameters = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)
    }
    assert not parameters & ESTIMATOR_NAMES
    assert _estimator_private_uses(tree) == []


def test_no_module_switches_on_the_type_of_an_expert_pool():
    """Each family owns its maths: outside ``_experts`` code calls a pool's
    methods (statistics, update, noise) and never asks which pool it holds."""
    experts = importlib.import_module("skmoe._experts")
    pools = {
        name
        for name, obj in vars(experts).items()
        if inspect.isclass(obj) and issubclass(obj, experts._ExpertPool)
    }
    for path in PACKAGE.glob("*.py"):
        if path.stem == "_experts":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
            ):
                continue
            named = {
                getattr(part, "id", getattr(part, "attr", None))
                for part in ast.walk(node.args[1])
            }
            assert not named & pools, f"{path.name}:{node.lineno}"


@pytest.mark.parametrize(
    ("owner", "imports"),
    [
        # docs/design.md §4.2: torch and array-api-compat are imported in _backend.
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
