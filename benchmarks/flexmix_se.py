"""Standard errors of skmoe's ``summary`` against R's flexmix ``refit()``.

One data set (a flat K=2 mixture of linear experts, 1000 rows, two
features, ``gate_scale=2``) is fitted by flexmix (``FLXPmultinom``
concomitant gate, best of 5 starts, tolerance 1e-10) and by skmoe without
penalties (``gate_alpha=0``, ``reg_variance=0``: the plain MLE, as
flexmix's), and the standard errors of ``refit()`` and
``summary(method="observed")`` are compared coefficient by coefficient.
flexmix reports its gate as component 2 against component 1; the
components are matched to skmoe's experts by their intercepts.

    python benchmarks/flexmix_se.py      # needs Rscript and r-cran-flexmix
"""

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_moe_regression

R_SCRIPT = """
suppressMessages(library(flexmix))
d <- read.csv("{folder}/data.csv")
set.seed(1)
best <- NULL
for (i in 1:5) {{
  m <- flexmix(y ~ x0 + x1, data = d, k = 2,
               concomitant = FLXPmultinom(~ x0 + x1),
               control = list(tolerance = 1e-10, iter.max = 2000))
  if (is.null(best) || logLik(m) > logLik(best)) best <- m
}}
cat("flexmix log-likelihood", logLik(best), "\\n")
r <- refit(best)
s <- summary(r)
for (k in 1:2) write.csv(s@components[[1]][[k]], paste0("{folder}/comp", k, ".csv"))
g <- r@concomitant[[1]]
write.csv(matrix(g@.Data, 3, 4, dimnames = list(c("(Intercept)", "x0", "x1"),
          c("Estimate", "Std. Error", "z value", "Pr(>|z|)"))),
          "{folder}/gate.csv")
"""
TERMS = [("(Intercept)", "intercept"), ("x0", "x0"), ("x1", "x1")]


def main():
    X, y = make_moe_regression(
        n_samples=1000, n_features=2, n_experts=2, gate_scale=2.0, random_state=0
    )
    folder = Path(tempfile.mkdtemp())
    pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "y": y}).to_csv(
        folder / "data.csv", index=False
    )
    (folder / "fit.R").write_text(R_SCRIPT.format(folder=folder))
    print(
        subprocess.run(
            ["Rscript", str(folder / "fit.R")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    model = MixtureOfExpertsRegressor(
        n_experts=2,
        gate_alpha=0.0,
        reg_variance=0.0,
        tol=1e-12,
        max_iter=5000,
        random_state=0,
    ).fit(X, y)
    print("skmoe log-likelihood", model.log_likelihood(X, y).sum())
    ours = model.summary(X, y).to_frame()
    rows = []
    for c in (1, 2):
        theirs = pd.read_csv(folder / f"comp{c}.csv", index_col=0)
        k = min(
            range(2),
            key=lambda k: abs(
                ours.loc[(f"expert {k}", "intercept"), "coef"]
                - theirs.loc["(Intercept)", "Estimate"]
            ),
        )
        for name, term in TERMS:
            rows.append(
                (
                    f"component {c} = expert {k}",
                    term,
                    theirs.loc[name, "Estimate"],
                    ours.loc[(f"expert {k}", term), "coef"],
                    theirs.loc[name, "Std. Error"],
                    ours.loc[(f"expert {k}", term), "std_err"],
                )
            )
    gate = pd.read_csv(folder / "gate.csv", index_col=0)
    block = "gate 0: expert 1 vs expert 0"
    # flexmix's component 2 is skmoe's expert 0 here: its gate is minus ours.
    sign = -1.0 if rows[0][0].endswith("expert 1") else 1.0
    for name, term in TERMS:
        rows.append(
            (
                "gate",
                term,
                sign * gate.loc[name, "Estimate"],
                ours.loc[(block, term), "coef"],
                gate.loc[name, "Std. Error"],
                ours.loc[(block, term), "std_err"],
            )
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "block",
            "term",
            "flexmix coef",
            "skmoe coef",
            "flexmix se",
            "skmoe se",
        ],
    )
    table["se ratio"] = table["skmoe se"] / table["flexmix se"]
    print(table.to_string(index=False, float_format="%.6f"))
    print(
        "se ratio: min",
        np.round(table["se ratio"].min(), 5),
        "max",
        np.round(table["se ratio"].max(), 5),
    )


if __name__ == "__main__":
    main()
