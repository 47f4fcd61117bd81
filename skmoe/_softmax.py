"""Weighted softmax regression with soft targets, batched over problems.

Both the gates of a tree and multinomial logistic experts are softmax
regressions fitted with per-sample weights; each EM iteration needs many of
them at once (every gate of a level, every expert). This module holds them
as one batch: ``coef`` of shape (n_problems, p, n_classes), with targets and
weights per problem, so that a whole batch costs one GEMM per pass over X.
"""

import numpy as np

from skmoe._backend import (
    asarray_like,
    astype,
    batched_solve,
    device,
    get_namespace,
    log_softmax,
    reduce_sum,
)

__all__ = [
    "centred_trial",
    "line_search",
    "newton_direction",
    "newton_quadratic",
    "newton_step",
    "one_hot",
    "penalty_gradient",
    "quadratic_maximiser",
    "softmax_curvature_weights",
    "softmax_fit",
    "softmax_gradient",
    "softmax_hessian",
    "softmax_log_proba",
    "softmax_newton_step",
    "softmax_objective",
    "softmax_penalty",
    "softmax_statistics",
    "softmax_trial_fits",
    "uses_full_hessian",
]

# A full-Hessian Newton step costs b (b + 1) / 2 weighted Gram matrices per
# problem against b for the block-diagonal step, and a (b p) x (b p) solve:
# the full step is taken while both stay small, the block step above
# (docs/design.md §2.2: the full step gains more per step, the block step
# costs much less at large K; measured in benchmarks/README.md, "Design
# measurements", the gate's M-step).
_FULL_NEWTON_MAX_CLASSES = 8
_FULL_NEWTON_MAX_SIZE = 128
_MAX_HALVINGS = 30
# A step is accepted when it loses no more than rounding: near the optimum
# the exact objective change is below float64 resolution, and insisting on a
# strict gain would only halve the step thirty times for nothing.
_ROUNDING_SLACK = 1e-12


# ---------------------------------------------------------------------------
# Probabilities and objective
# ---------------------------------------------------------------------------


def softmax_log_proba(Xa, coef):
    """Return the log-probabilities of every class of every problem.

    Parameters
    ----------
    Xa : array of shape (n_samples, p)
        Features with a trailing column of ones.
    coef : array of shape (n_problems, p, n_classes)
        Coefficients, the intercept in the last row.

    Returns
    -------
    log_proba : array of shape (n_samples, n_problems, n_classes)
    """
    xp = get_namespace(Xa, coef)
    n_problems, p, n_classes = coef.shape
    flat = xp.reshape(xp.permute_dims(coef, (1, 0, 2)), (p, n_problems * n_classes))
    logits = xp.reshape(Xa @ flat, (Xa.shape[0], n_problems, n_classes))
    return log_softmax(logits, axis=-1)


def softmax_fit(log_proba, targets, weights):
    """Return each problem's weighted soft-target log-likelihood (a sum over rows)."""
    xp = get_namespace(log_proba)
    return xp.sum(weights * reduce_sum(targets * log_proba, axis=-1), axis=0)


def _scaled_slopes(coef, scale):
    """Return the non-intercept coefficients times their features' scales.

    ``scale`` (NumPy, shape (p - 1,)) or None for ones. The product is taken
    before any square, so that a feature of scale 1e-150 and its coefficient
    of 1e150 neither underflow nor overflow.
    """
    slopes = coef[:, :-1, :]
    if scale is None:
        return slopes
    return asarray_like(scale, slopes)[None, :, None] * slopes


def softmax_penalty(coef, alpha, scale=None):
    """Return each problem's L2 penalty on its non-intercept coefficients.

    ``alpha / 2`` times the squared norm of ``scale * slopes``: the ridge
    penalty of the problem on features divided by ``scale`` (standardized
    features, for a gate), written on the raw coefficients.
    """
    xp = get_namespace(coef)
    return 0.5 * alpha * xp.sum(_scaled_slopes(coef, scale) ** 2, axis=(1, 2))


def penalty_gradient(coef, alpha, scale=None):
    """Return the gradient of :func:`softmax_penalty` (zero for the intercepts).

    Returns
    -------
    gradient : array of shape (n_problems, p - 1, n_classes)
        For the non-intercept rows of ``coef``.
    """
    if scale is None:
        return alpha * coef[:, :-1, :]
    scaled = _scaled_slopes(coef, scale)
    return alpha * asarray_like(scale, scaled)[None, :, None] * scaled


def softmax_objective(log_proba, targets, weights, coef, alpha, scale=None):
    """Return each problem's weighted soft-target log-likelihood minus its penalty."""
    fit = softmax_fit(log_proba, targets, weights)
    return fit - softmax_penalty(coef, alpha, scale)


def softmax_gradient(Xa, proba, targets, weights):
    """Return the gradient of each problem's fit (unpenalised), a sum over rows.

    Returns
    -------
    gradient : array of shape (n_problems, p, n_classes)
    """
    xp = get_namespace(proba)
    residual = weights[:, :, None] * (targets - proba)
    n_samples, n_problems, n_classes = residual.shape
    gradient = Xa.T @ xp.reshape(residual, (n_samples, -1))
    return xp.permute_dims(
        xp.reshape(gradient, (Xa.shape[1], n_problems, n_classes)), (1, 0, 2)
    )


def uses_full_hessian(solver, n_classes, p):
    """Return whether ``solver`` takes full-Hessian steps.

    ``"auto"`` takes them while the number of classes and the size of the
    Hessian (``n_classes * p``, p counting the intercept) are small.
    """
    if solver == "auto":
        return (
            n_classes <= _FULL_NEWTON_MAX_CLASSES
            and n_classes * p <= _FULL_NEWTON_MAX_SIZE
        )
    return solver == "newton"


def softmax_curvature_weights(proba, weights, *, full):
    """Return the row weights whose weighted Gram matrices make the Hessians.

    The Hessian of problem j's negative log-likelihood has the blocks
    ``X.T diag(w_j p_r (delta_rc - p_c)) X``: one weighted Gram matrix per
    class pair (r <= c) with ``full=True``, per class (its diagonal blocks
    only) otherwise. The EM loop computes these Gram matrices in the same
    pass over X as the experts' (:func:`softmax_newton_step`'s ``gram``).

    Parameters
    ----------
    proba : array of shape (n_samples, n_problems, n_classes)
    weights : array of shape (n_samples, n_problems)
    full : bool

    Returns
    -------
    V : array of shape (n_samples, n_problems * n_blocks)
        Problem-major columns; ``n_blocks`` is ``b (b + 1) / 2`` or ``b``.
    """
    xp = get_namespace(proba)
    n_samples, n_problems, n_classes = proba.shape
    if not full:
        V = weights[:, :, None] * proba * (1.0 - proba)
        return xp.reshape(V, (n_samples, -1))
    rows, cols = np.triu_indices(n_classes)
    # Built class pair by class pair in a (problem, pair, sample) layout so
    # that every write is contiguous; the transposed view is what the Gram
    # GEMM reads.
    proba_t = xp.asarray(xp.permute_dims(proba, (1, 2, 0)), copy=True)
    weighted_t = xp.asarray(weights.T, copy=True)[:, None, :] * proba_t
    if xp is np:
        V = np.empty((n_problems, rows.shape[0], n_samples), dtype=proba.dtype)
        for pair, (r, c) in enumerate(zip(rows, cols, strict=True)):
            np.multiply(weighted_t[:, r], proba_t[:, c], out=V[:, pair])
            if r == c:
                np.subtract(weighted_t[:, r], V[:, pair], out=V[:, pair])
            else:
                np.negative(V[:, pair], out=V[:, pair])
    else:
        V = xp.stack(
            [
                weighted_t[:, r] - weighted_t[:, r] * proba_t[:, r]
                if r == c
                else -(weighted_t[:, r] * proba_t[:, c])
                for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
            ],
            axis=1,
        )
    return xp.reshape(V, (-1, n_samples)).T


def softmax_hessian(gram, n_problems, n_classes, *, full):
    """Assemble each problem's Hessian from its curvature Gram matrices.

    With ``full=True`` the whole (b p) x (b p) Hessian of a problem; otherwise
    only its b diagonal blocks (p x p), as a (n_problems, b, p, p) array.
    """
    xp = get_namespace(gram)
    p = gram.shape[-1]
    if not full:
        return xp.reshape(gram, (n_problems, n_classes, p, p))
    rows, cols = np.triu_indices(n_classes)
    gram = xp.reshape(gram, (n_problems, rows.shape[0], p, p))
    hessian = xp.zeros(
        (n_problems, n_classes, p, n_classes, p), dtype=gram.dtype, device=device(gram)
    )
    for pair, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        hessian[:, r, :, c, :] = gram[:, pair]
        hessian[:, c, :, r, :] = gram[:, pair]
    return xp.reshape(hessian, (n_problems, n_classes * p, n_classes * p))


def newton_direction(curvature, gradient, alpha, *, full, scale=None):
    """Solve the (penalised, jittered) Newton system for every problem.

    ``curvature`` is :func:`softmax_hessian`'s (the fit's, unpenalised) and
    ``gradient`` the penalised objective's; the penalty's curvature is
    added here. With ``scale`` (NumPy, shape (p - 1,)) the penalty is
    :func:`softmax_penalty`'s with that scale, and the system is solved on
    the features divided by ``scale``: there the penalty is ``alpha`` on
    every slope and the relative jitter means the same whatever the units
    of the features, so the step does not depend on them.
    """
    xp = get_namespace(curvature, gradient)
    # Solved in float64 whatever the data's precision: in float32 the jitter
    # below is lost, and the near-singular shift direction then gets a huge
    # step that costs the intercepts their precision.
    dtype = gradient.dtype
    curvature, gradient = astype(curvature, xp.float64), astype(gradient, xp.float64)
    n_problems, p, n_classes = gradient.shape
    penalty = xp.full((p,), alpha, dtype=gradient.dtype, device=device(gradient))
    penalty[-1] = 0.0  # the intercept is not penalised
    unit = xp.ones((p,), dtype=gradient.dtype, device=device(gradient))
    if scale is not None:
        unit[:-1] = asarray_like(scale, unit)
    if full:
        unit = xp.tile(unit, (n_classes,))
    # On standardized features: H / (s s^T), g / s; the step is z / s.
    if scale is not None:
        curvature = curvature / (unit[:, None] * unit[None, :])
    # Softmax is invariant to shifting all classes' coefficients alike, so
    # the Hessian is singular along the intercept shift (and along every
    # shift when alpha = 0): a tiny jitter keeps the solve defined without
    # changing the ascent direction.
    if full:
        g = xp.reshape(xp.permute_dims(gradient, (0, 2, 1)), (n_problems, -1))
        diag = xp.tile(penalty, (n_classes,))
        scale_mean = xp.mean(xp.linalg.diagonal(curvature), axis=1)
        jitter = 1e-10 * (scale_mean + 1.0)
        A = curvature + (diag[None, :] + jitter[:, None])[:, :, None] * xp.eye(
            n_classes * p, dtype=gradient.dtype, device=device(gradient)
        )
        step = batched_solve(A, g / unit) / unit
        step = xp.reshape(step, (n_problems, n_classes, p))
    else:
        g = xp.reshape(xp.permute_dims(gradient, (0, 2, 1)), (-1, p))
        blocks = xp.reshape(curvature, (-1, p, p))
        scale_mean = xp.mean(xp.linalg.diagonal(blocks), axis=1)
        jitter = 1e-10 * (scale_mean + 1.0)
        A = blocks + (penalty[None, :] + jitter[:, None])[:, :, None] * xp.eye(
            p, dtype=gradient.dtype, device=device(gradient)
        )
        step = batched_solve(A, g / unit) / unit
        step = xp.reshape(step, (n_problems, n_classes, p))
    return astype(xp.permute_dims(step, (0, 2, 1)), dtype)


def centred_trial(coef, step, step_size):
    """Return ``coef + step_size * step`` with its intercepts centred.

    The intercepts are unpenalised and defined only up to a common shift:
    centring them keeps repeated fits from drifting.
    """
    xp = get_namespace(coef)
    trial = coef + step_size * step
    trial[:, -1, :] -= xp.mean(trial[:, -1, :], axis=1, keepdims=True)
    return trial


def softmax_statistics(
    Xa, coef, targets, weights, *, log_proba=None, solver="auto", curvature=True
):
    """Return the Newton statistics of softmax problems on rows.

    Parameters
    ----------
    Xa : array of shape (n_samples, p)
        Features with a trailing column of ones.
    coef : array of shape (n_problems, p, n_classes)
    targets : array of shape (n_samples, n_problems or 1, n_classes)
    weights : array of shape (n_samples, n_problems)
    log_proba : array of shape (n_samples, n_problems, n_classes), default=None
        :func:`softmax_log_proba` at ``coef``, when the caller has it.
    solver : {"auto", "newton", "block"}, default="auto"
    curvature : bool, default=True
        Whether to compute the curvature weights (None otherwise).

    Returns
    -------
    fit : array of shape (n_problems,)
        :func:`softmax_fit` at ``coef``.
    gradient : array of shape (n_problems, p, n_classes)
        :func:`softmax_gradient` at ``coef``.
    curvature_weights : array of shape (n_samples, n_problems * n_blocks)
        :func:`softmax_curvature_weights` at ``coef``: their weighted Gram
        matrices make the Hessians.
    """
    xp = get_namespace(coef)
    full = uses_full_hessian(solver, coef.shape[2], Xa.shape[1])
    if log_proba is None:
        log_proba = softmax_log_proba(Xa, coef)
    proba = xp.exp(log_proba)
    return (
        softmax_fit(log_proba, targets, weights),
        softmax_gradient(Xa, proba, targets, weights),
        softmax_curvature_weights(proba, weights, full=full) if curvature else None,
    )


def softmax_trial_fits(Xa, trials, targets, weights):
    """Return the fit of every trial of every problem, shape (n_trials, P).

    ``trials`` has shape (n_trials, P, p, b): one coefficient set per trial
    step size, all evaluated in one product with the rows (a line search on
    data read in passes scores several step sizes per pass).
    """
    xp = get_namespace(trials)
    n_trials, n_problems, p, n_classes = trials.shape
    n_rows = Xa.shape[0]
    targets = xp.broadcast_to(targets, (n_rows, n_problems, n_classes))
    log_proba = softmax_log_proba(
        Xa, xp.reshape(trials, (n_trials * n_problems, p, n_classes))
    )
    # The formula of softmax_fit, so that every line search accepts the same
    # steps whatever scored them.
    fit = softmax_fit(
        log_proba,
        xp.reshape(
            xp.broadcast_to(targets[:, None], (n_rows, n_trials, *targets.shape[1:])),
            (n_rows, n_trials * n_problems, n_classes),
        ),
        xp.reshape(
            xp.broadcast_to(weights[:, None], (n_rows, n_trials, n_problems)),
            (n_rows, n_trials * n_problems),
        ),
    )
    return xp.reshape(fit, (n_trials, n_problems))


def newton_step(coef, fit, gradient, gram, alpha, *, scale=None, solver="auto"):
    """Return the objective and the Newton step of softmax problems.

    From their statistics at ``coef`` (:func:`softmax_statistics`, the
    curvature weights' Gram matrices in ``gram``), wherever these were
    summed: over whole arrays, cache-sized chunks or the blocks of a Dask
    array.

    Parameters
    ----------
    coef : array of shape (n_problems, p, n_classes)
    fit : array of shape (n_problems,)
    gradient : array of shape (n_problems, p, n_classes)
        Of the fit (unpenalised); not modified.
    gram : array of shape (n_problems * n_blocks, p, p)
    alpha : float
        L2 penalty on the non-intercept coefficients.
    scale : ndarray of shape (p - 1,), default=None
        The penalty's feature scales (:func:`softmax_penalty`).
    solver : {"auto", "newton", "block"}, default="auto"

    Returns
    -------
    objective : array of shape (n_problems,)
        The penalised objective at ``coef``.
    step : array of shape (n_problems, p, n_classes)
    penalty : tuple
        ``(alpha, scale)``, as :func:`line_search` scores trials.
    """
    xp = get_namespace(coef)
    n_problems, p, n_classes = coef.shape
    full = uses_full_hessian(solver, n_classes, p)
    gradient = astype(xp.asarray(gradient, copy=True), coef.dtype)
    gradient[:, :-1, :] -= penalty_gradient(coef, alpha, scale)
    curvature = softmax_hessian(
        astype(gram, coef.dtype), n_problems, n_classes, full=full
    )
    step = newton_direction(curvature, gradient, alpha, full=full, scale=scale)
    objective = fit - softmax_penalty(coef, alpha, scale)
    return objective, step, (alpha, scale)


def line_search(coefs, steps, score, *, trials_per_pass=1, accept=None):
    """Backtrack every problem of every batch; return the accepted steps.

    Each problem takes the largest halving of its Newton step whose
    objective loses no more than rounding (``_ROUNDING_SLACK``); problems
    that find none keep their coefficients. Generalised EM needs an
    improving step, not the optimum: the objective never decreases.

    Parameters
    ----------
    coefs : list of arrays of shape (P, p, b)
        Current coefficients of each batch of problems.
    steps : list of (objective, step, penalty)
        From :func:`newton_step`, per batch.
    score : callable
        ``score(trials, first)`` returns the trials' fits per batch, each of
        shape (n_trials, P); ``trials`` are per batch (n_trials, P, p, b),
        ``first`` is True on the first pass (the full step alone).
    trials_per_pass : int, default=1
        Step sizes scored per call of ``score`` after the first: more than
        one where every call is a pass over data read in blocks.
    accept : callable, default=None
        ``accept(batch, trial, improved)``, told which problems of a batch
        took the ``trial``-th trial of the last call of ``score``.

    Returns
    -------
    coefs : list of arrays
        The accepted coefficients.
    gains : list of arrays of shape (P,)
        Each problem's increase of its objective (0 where none was found).
    """
    xp = get_namespace(coefs[0])
    new_coefs = [xp.asarray(coef, copy=True) for coef in coefs]
    accepted = [
        xp.zeros((coef.shape[0],), dtype=xp.bool, device=device(coef)) for coef in coefs
    ]
    gains = [
        xp.zeros((coef.shape[0],), dtype=objective.dtype, device=device(coef))
        for coef, (objective, _, _) in zip(coefs, steps, strict=True)
    ]
    for first in (0, *range(1, _MAX_HALVINGS, trials_per_pass)):
        last = 1 if first == 0 else min(first + trials_per_pass, _MAX_HALVINGS)
        sizes = [0.5**h for h in range(first, last)]
        trials = [
            xp.stack([centred_trial(coef, step, size) for size in sizes])
            for coef, (_, step, _) in zip(coefs, steps, strict=True)
        ]
        fits = score(trials, first == 0)
        for j, (objective, _, penalty) in enumerate(steps):
            floor = objective - _ROUNDING_SLACK * xp.abs(objective)
            for t in range(len(sizes)):
                trial_objective = fits[j][t] - softmax_penalty(trials[j][t], *penalty)
                improved = (trial_objective >= floor) & ~accepted[j]
                if not bool(xp.any(improved)):
                    continue
                new_coefs[j][improved] = trials[j][t][improved]
                gains[j][improved] = (trial_objective - objective)[improved]
                accepted[j] |= improved
                if accept is not None:
                    accept(j, t, improved)
        if all(bool(xp.all(a)) for a in accepted):
            break
    return new_coefs, gains


def softmax_newton_step(
    design,
    coef,
    targets,
    weights,
    *,
    alpha,
    scale=None,
    solver="auto",
    log_proba=None,
    gram=None,
):
    """Take one monotone Newton-type step for every problem of a batch.

    Each problem ``j`` maximises the weighted soft-target log-likelihood
    ``sum_i weights[i, j] sum_c targets[i, j, c] log P_jc(x_i)`` minus
    ``alpha / 2`` times the squared norm of its non-intercept coefficients
    (each times its feature's ``scale``): :func:`newton_step` from the
    statistics of the whole arrays, then :func:`line_search`, each trial
    scored on them.

    Parameters
    ----------
    design : Design
        The features with a trailing column of ones (``design.X``).
    coef : array of shape (n_problems, p, n_classes)
        Current coefficients (intercept in the last row).
    targets : array of shape (n_samples, n_problems, n_classes)
        Soft targets; each row sums to one where its weight is positive.
    weights : array of shape (n_samples, n_problems)
        Non-negative sample weights of each problem.
    alpha : float
        L2 penalty on the non-intercept coefficients.
    scale : ndarray of shape (p - 1,), default=None
        Scale of every feature (None: ones): the penalty is ``alpha`` on the
        coefficients of the features divided by it (:func:`softmax_penalty`).
    solver : {"auto", "newton", "block"}, default="auto"
        ``"newton"`` uses each problem's full Hessian, ``"block"`` only its
        per-class diagonal blocks; ``"auto"`` picks by the Hessian's size
        (:func:`uses_full_hessian`).
    log_proba : array of shape (n_samples, n_problems, n_classes), default=None
        :func:`softmax_log_proba` at ``coef``, when the caller has it (the
        E-step computed it): it saves a pass over the data.
    gram : array of shape (n_problems * n_blocks, p, p), default=None
        The weighted Gram matrices of :func:`softmax_curvature_weights` at
        ``exp(log_proba)``, when the caller computed them (in the pass over
        X that also gives the experts' Gram matrices).

    Returns
    -------
    coef : array of shape (n_problems, p, n_classes)
        Updated coefficients, intercepts centred; a problem whose step found
        no improvement keeps its coefficients.
    gain : array of shape (n_problems,)
        Increase of each problem's objective (0 where the step was refused).
    log_proba : array of shape (n_samples, n_problems, n_classes)
        :func:`softmax_log_proba` at the returned ``coef``, for the next
        E-step or Newton step.
    """
    xp = get_namespace(coef)
    Xa = design.X
    if log_proba is None:
        log_proba = softmax_log_proba(Xa, coef)
    fit, gradient, V = softmax_statistics(
        Xa,
        coef,
        targets,
        weights,
        log_proba=log_proba,
        solver=solver,
        curvature=gram is None,
    )
    if gram is None:
        gram = design.gram(V)
    objective, step, penalty = newton_step(
        coef, fit, gradient, gram, alpha, scale=scale, solver=solver
    )
    # Every trial's log-probabilities are the next ones where it is taken:
    # the accepted trials' are kept, problem by problem.
    found = {"last": None, "new": log_proba}

    def score(trials, _):
        found["last"] = [softmax_log_proba(Xa, trial) for trial in trials[0]]
        return [xp.stack([softmax_fit(lp, targets, weights) for lp in found["last"]])]

    def accept(_, t, improved):
        if bool(xp.all(improved)):
            found["new"] = found["last"][t]
            return
        if found["new"] is log_proba:
            found["new"] = xp.asarray(log_proba, copy=True)
        found["new"][:, improved] = found["last"][t][:, improved]

    (new_coef,), (gain,) = line_search(
        [coef], [(objective, step, penalty)], score, accept=accept
    )
    return new_coef, gain, found["new"]


# ---------------------------------------------------------------------------
# Newton statistics of softmax problems, and their running quadratic model
# ---------------------------------------------------------------------------


def one_hot(y_index, n_classes, dtype):
    """Return class indices as one-hot targets of K problems, (n, 1, n_classes)."""
    return np.eye(n_classes, dtype=dtype)[y_index][:, None, :]


def _curvature_times(curvature, coef, *, full):
    """Return ``H theta`` in the layout of ``coef`` (P, p, b)."""
    n_problems, p, n_classes = coef.shape
    if full:
        flat = np.reshape(np.transpose(coef, (0, 2, 1)), (n_problems, -1))
        product = np.einsum("kij,kj->ki", curvature, flat)
        return np.transpose(np.reshape(product, (n_problems, n_classes, p)), (0, 2, 1))
    return np.einsum("kcij,kjc->kic", curvature, coef)


def newton_quadratic(coef, statistics, weight):
    """Return the per-unit-weight Newton model of softmax problems at ``coef``.

    ``statistics`` holds the problems' ``gradient`` and curvature ``gram``
    on a block of total weight ``weight``; the model is the curvature ``H``
    and ``H coef + gradient`` (on-line IRLS, ``_stepwise``).
    """
    n_problems, p, n_classes = coef.shape
    full = uses_full_hessian("auto", n_classes, p)
    curvature = softmax_hessian(statistics["gram"], n_problems, n_classes, full=full)
    rhs = _curvature_times(curvature, coef, full=full) + statistics["gradient"]
    return {"curvature": curvature / weight, "rhs": rhs / weight}


def quadratic_maximiser(quadratic, total, alpha, dtype, scale=None):
    """Return the coefficients that maximise a penalised running quadratic.

    ``quadratic`` is an average of :func:`newton_quadratic` models standing
    for the weight ``total``; the penalty is ``softmax_penalty``'s with
    ``alpha`` and ``scale``.
    """
    rhs = quadratic["rhs"]
    full = quadratic["curvature"].ndim == 3
    coef = newton_direction(
        total * quadratic["curvature"], total * rhs, alpha, full=full, scale=scale
    )
    # The intercepts are defined up to a common shift: centre them.
    coef[:, -1, :] -= np.mean(coef[:, -1, :], axis=1, keepdims=True)
    return coef.astype(dtype, copy=False)
