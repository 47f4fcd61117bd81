"""Persistence helpers: what a fitted skmoe model needs to load with skops.

``skops.io`` refuses to load any type it does not trust. scikit-learn's own
estimators and numpy types are trusted by default; skmoe's estimators, the
gate tree and the expert pools they hold are not, and must be named.
"""

__all__ = ["get_trusted_types"]

# Derived empirically with skops 0.16.0: the union of
# ``skops.io.get_untrusted_types(file=...)`` over regressor and classifier
# models (2 and 3 classes, integer and string labels) fitted flat and as
# trees ((2,), (3,), (2, 2), (2, 3), (3, 2), (2, 2, 2)), with every routing,
# with and without ``gate_features``, on float64, float32 and DataFrame input,
# with the default experts, LinearRegression, Ridge and LogisticRegression
# (vectorized pools) and with lists of them or variants such as
# ``Ridge(positive=True)`` (generic pools), and models trained by
# ``partial_fit``. tests/test_persistence.py checks
# that these names suffice. Experts that are not scikit-learn estimators, or
# whose fitted state skops does not trust (a DecisionTreeRegressor's
# ``sklearn.tree._tree.Tree``), need their own types added.
_TRUSTED_TYPES = (
    "skmoe._estimators.MixtureOfExpertsClassifier",
    "skmoe._estimators.MixtureOfExpertsRegressor",
    "skmoe._experts.GenericClassificationExperts",
    "skmoe._experts.GenericRegressionExperts",
    "skmoe._experts.LinearGaussianExperts",
    "skmoe._experts.LogisticExperts",
    "skmoe._gating.GateTree",
    # The state of partial_fit and its running statistics (a model trained
    # online keeps them, to continue learning after loading).
    "skmoe._online.OnlineState",
    "skmoe._stepwise.StepwiseEM",
)


def get_trusted_types():
    """Return the skmoe types to trust when loading a fitted model with skops.

    ``skops.io.load`` only builds the types it is told to trust. Pass this
    list as ``trusted`` to load any skmoe estimator whose experts are
    scikit-learn linear models (the defaults, ``LinearRegression``,
    ``Ridge``, ``LogisticRegression``), flat or hierarchical, fitted by
    ``fit`` or trained by ``partial_fit``. Types of other
    experts' fitted state (for a decision tree, ``sklearn.tree._tree.Tree``)
    must be added; ``skops.io.get_untrusted_types`` lists what a file needs.

    Returns
    -------
    trusted_types : list of str
        Fully qualified names of skmoe's estimator, gate, expert-pool and
        online-state classes.

    See Also
    --------
    skops.io.load : Load a model, building only trusted types.
    skops.io.get_untrusted_types : List the types a file would build.

    Examples
    --------
    >>> from skmoe.persistence import get_trusted_types
    >>> "skmoe._gating.GateTree" in get_trusted_types()
    True

    With skops installed::

        import skops.io as sio
        sio.dump(moe, "moe.skops")
        moe = sio.load("moe.skops", trusted=get_trusted_types())
    """
    return list(_TRUSTED_TYPES)
