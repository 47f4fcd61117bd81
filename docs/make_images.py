"""Regenerate the pictures shown in the README from skmoe's own displays.

Run from the repository root: ``python docs/make_images.py``. Needs the
``plot`` extra (matplotlib).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_hme_regression, make_moe_regression
from skmoe.plot import ExpertsDisplay, GateRegionsDisplay, GateTreeDisplay

IMAGES = Path(__file__).parent / "images"


def experts_and_gate():
    """Draw soft and hard mixtures on 1-D data: experts, gate, predictive band."""
    X, y = make_moe_regression(n_samples=600, n_features=1, n_experts=3, random_state=0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, routing in zip(axes, ["soft", "hard"], strict=True):
        moe = MixtureOfExpertsRegressor(n_experts=3, routing=routing, random_state=0)
        ExpertsDisplay.from_estimator(moe.fit(X, y), X, y, ax=ax)
        ax.set_title(f"{routing} routing")
    fig.tight_layout()
    fig.savefig(IMAGES / "experts.png", dpi=110)


def tree_of_gates():
    """Draw a (2, 2) hierarchical mixture: gate regions and the tree of gates."""
    X, y = make_hme_regression(
        n_samples=3000, n_features=2, hierarchy=(2, 2), random_state=0
    )
    moe = MixtureOfExpertsRegressor(hierarchy=(2, 2), random_state=0).fit(X, y)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    GateRegionsDisplay.from_estimator(moe, X, ax=axes[0])
    axes[0].set_title("gate regions: which expert, how sure")
    GateTreeDisplay.from_estimator(moe, X, ax=axes[1])
    axes[1].set_title("tree of gates, share of the data")
    fig.tight_layout()
    fig.savefig(IMAGES / "tree.png", dpi=110)


if __name__ == "__main__":
    IMAGES.mkdir(parents=True, exist_ok=True)
    experts_and_gate()
    tree_of_gates()
    print(f"wrote {sorted(p.name for p in IMAGES.glob('*.png'))}")
