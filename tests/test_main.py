"""Tests for the command line, ``python -m skmoe`` (skmoe/__main__.py)."""

import io
import math
import subprocess
import sys

import pytest

from skmoe import __main__ as cli

REGRESSION_MODELS = [
    "MoE soft (K={k})",
    "MoE hard (K={k})",
    "MoE top-2 (K={k})",
    "LinearRegression",
    "HistGradientBoosting",
]
CLASSIFICATION_MODELS = [
    "MoE soft (K=3)",
    "MoE hard (K=3)",
    "MoE top-2 (K=3)",
    "LogisticRegression",
    "HistGradientBoosting",
]


@pytest.fixture(scope="module")
def quick_demo():
    """Run the quick demo once; return its tables and printed text."""
    out = io.StringIO()
    regression, classification = cli.demo(quick=True, random_state=0, file=out)
    return regression, classification, out.getvalue()


def test_demo_rows(quick_demo):
    regression, classification, _ = quick_demo
    synthetic = [r for r in regression if r.dataset.startswith("moe-synthetic")]
    diabetes = [r for r in regression if r.dataset.startswith("diabetes")]
    assert len(synthetic) + len(diabetes) == len(regression)
    assert [r.model for r in synthetic] == [
        "true mixture (K=4)",
        *(name.format(k=4) for name in REGRESSION_MODELS),
    ]
    assert [r.model for r in diabetes] == [
        name.format(k=3) for name in REGRESSION_MODELS
    ]
    assert [r.model for r in classification] == CLASSIFICATION_MODELS
    assert all(r.dataset.startswith("breast_cancer") for r in classification)


def test_demo_numbers_are_finite(quick_demo):
    regression, classification, _ = quick_demo
    for row in regression + classification:
        assert math.isfinite(row.score), row
        assert math.isfinite(row.log_likelihood), row
        if row.model.startswith("true"):
            assert row.fit_time is None
        else:
            assert row.fit_time >= 0, row
    for row in classification:
        assert 0 <= row.score <= 1, row
        assert row.log_likelihood <= 0, row


def test_demo_true_model_and_soft_mixture_beat_linear(quick_demo):
    """On data from a known mixture, the soft mixture comes close to the truth."""
    regression, _, _ = quick_demo
    rows = {r.model: r for r in regression if r.dataset.startswith("moe-synthetic")}
    truth, soft = rows["true mixture (K=4)"], rows["MoE soft (K=4)"]
    linear = rows["LinearRegression"]
    assert soft.score > linear.score
    assert soft.log_likelihood > linear.log_likelihood
    assert truth.log_likelihood > soft.log_likelihood - 0.5


def test_demo_prints_one_line_per_row(quick_demo):
    regression, classification, text = quick_demo
    lines = text.splitlines()
    for header in ["test R^2", "accuracy"]:
        assert sum(header in line and "fit (s)" in line for line in lines) == 1
    for row in regression + classification:
        assert sum(row.dataset in line and row.model in line for line in lines) == 1


def test_format_table_aligns_columns():
    rows = [
        cli.Result("a", "model one", 0.5, -1.25, 1.0),
        cli.Result("bb", "m", -0.123456, -10.0, None),
    ]
    lines = cli.format_table(rows, score_name="score").splitlines()
    assert len(lines) == 4
    assert len({len(line) for line in lines}) == 1
    assert lines[2].split() == ["a", "model", "one", "0.500", "-1.250", "1.00"]
    assert lines[3].split() == ["bb", "m", "-0.123", "-10.000", "-"]


def test_main_dispatches_demo(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "demo", lambda **kwargs: calls.append(kwargs))
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "--quick", "--seed", "3", "--threads", "0"]) == 0
    assert calls == [
        {"quick": False, "random_state": 0, "n_threads": 1},
        {"quick": True, "random_state": 3, "n_threads": None},
    ]


def test_main_without_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "usage: python -m skmoe" in capsys.readouterr().out


def test_python_dash_m_prints_usage():
    result = subprocess.run(
        [sys.executable, "-m", "skmoe"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: python -m skmoe" in result.stdout
    assert "demo" in result.stdout
