"""EM of vectorized linear experts on cache-sized chunks of transposed rows.

The in-memory EM (:class:`~skmoe._engine.ArrayRows`) holds its arrays as
(n_samples, K). Each NumPy operation on them is a pass over main memory,
and a broadcast over their short last axis runs one short inner loop per
row: the same operations along the rows of transposed arrays are several
times faster, and faster again on a chunk that fits in cache
(``benchmarks/README.md``, "Design measurements", the fused pass's layout).

This module computes the same EM iteration on chunks of a few thousand rows
held transposed: the design as (p, n_samples), the experts' and gates'
arrays as (K, rows). Every operation then runs along the rows and every
array of a chunk stays in cache. An iteration is one pass over the chunks
(see :class:`FusedRows`): the E-step at the model and every sum the M-step
needs, one set of packed products per chunk giving the experts' weighted
Gram matrices and every gate's curvature in one GEMM; the experts' new
variances follow from those sums, and the pass that scores the gates' full
Newton step is also the next E-step.

:class:`FusedRows` is a source of statistics for the EM engine
(:func:`~skmoe._engine.run_em`), like the row blocks of a Dask array.
It returns the same sums as :mod:`skmoe._statistics`, so the M-step rules
are the same, and so is the fit, to rounding. :func:`fit_linear_experts` is
the experts' M-step alone, for a start's given responsibilities.
"""

import copy
import functools

import numpy as np

from skmoe._backend import logsumexp, packed_products_into, unpack_gram
from skmoe._routing import log_posterior
from skmoe._softmax import uses_full_hessian

__all__ = ["FusedRows", "fit_linear_experts", "supports_fused"]

# Bytes of one chunk's packed products (n_pairs x rows). With them, the
# chunk's (K, rows) arrays and its curvature weights, a chunk stays within
# the 2 MiB L2 cache of the machine it was tuned on.
_CHUNK_BYTES = 1 << 21
_MIN_CHUNK_ROWS = 512
_MAX_CHUNK_ROWS = 16384
# Rows of one GEMM against a chunk's packed products (see _GramSums.add).
_GEMM_ROWS = 1024


def _chunk_rows(design):
    """Return the rows per chunk of a transposed design: see ``_CHUNK_BYTES``."""
    p = design.shape[0]
    rows = _CHUNK_BYTES // (p * (p + 1) // 2 * design.itemsize)
    return int(np.clip(rows, _MIN_CHUNK_ROWS, _MAX_CHUNK_ROWS))


def _chunks(n_rows, chunk_rows):
    for start in range(0, n_rows, chunk_rows):
        yield slice(start, min(start + chunk_rows, n_rows))


def supports_fused(X, pool):
    """Return whether the EM of ``pool`` on ``X`` can run on :class:`FusedRows`.

    NumPy input and a pool whose ``fused_kind`` is "linear": vectorized
    linear-Gaussian experts (the default regressor, ``LinearRegression``
    and ``Ridge`` experts).
    """
    return isinstance(X, np.ndarray) and pool.fused_kind == "linear"


# ---------------------------------------------------------------------------
# Transposed numerics: arrays of shape (..., rows), reductions over classes
# ---------------------------------------------------------------------------


def _transposed_coef(coef):
    """Return (P, p, b) softmax coefficients as (P * b, p) rows of classes."""
    n_problems, p, n_classes = coef.shape
    return np.ascontiguousarray(
        np.transpose(coef, (0, 2, 1)).reshape(n_problems * n_classes, p)
    )


def _softmax_levels(levels, x, *, with_proba=True):
    """Return every level's (log-probabilities, probabilities) on a chunk.

    Both of shape (P_l, b_l, rows); the probabilities reuse the softmax's
    exponentials instead of exponentiating the log-probabilities again
    (None without ``with_proba``).
    """
    found = []
    for coef_t, n_problems in levels:
        logits = (coef_t @ x).reshape(n_problems, -1, x.shape[1])
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        norm = proba.sum(axis=1, keepdims=True)
        if with_proba:
            proba *= 1.0 / norm
        logits -= np.log(norm)
        found.append((logits, proba if with_proba else None))
    return found


def _leaf_log_proba(level_log_probas, pruned):
    """Return the leaves' log gate probabilities, (K, rows), pruned renormalised."""
    reach = level_log_probas[0][0]
    for log_proba in level_log_probas[1:]:
        reach = (reach[:, None, :] + log_proba).reshape(-1, log_proba.shape[-1])
    if not np.any(pruned):
        return reach
    reach = np.where(pruned[:, None], -np.inf, reach)
    return reach - logsumexp(reach, axis=0)


def _node_posteriors(weighted_resp, hierarchy, *, with_root=True):
    """Return the weighted posterior of reaching every node, per level.

    (P_l, rows) per level, root first (unless not ``with_root``: a gate's
    fit needs its children's only), leaves last: sums of the leaves' (K,
    rows) weighted responsibilities over the leaves below each node.
    """
    posteriors = [weighted_resp]
    for branching in reversed(hierarchy[int(not with_root) :]):
        below = posteriors[0]
        posteriors.insert(0, below.reshape(-1, branching, below.shape[1]).sum(axis=1))
    return posteriors


@functools.cache
def _class_pairs(n_classes):
    """Return the class pairs r < c, as two index arrays."""
    return np.triu_indices(n_classes, 1)


def _curvature_rows_into(out, weighted, proba, *, full):
    """Write the curvature row weights of softmax problems on a chunk.

    ``weighted`` (P, b, rows) is ``w p_r``, each problem's weight times its
    probabilities, ``proba`` (P, b, rows) the probabilities; ``out`` is a
    (P, n_blocks, rows) view. With ``full``, the off-diagonal products
    ``w p_r p_c`` (r < c) in the order of :func:`_class_pairs`, from which
    :func:`_full_curvature` completes the Hessian. Otherwise the diagonal
    blocks' weights ``w p_r (1 - p_r)``, in
    :func:`~skmoe._softmax.softmax_curvature_weights` order.
    """
    if not full:
        np.multiply(weighted, proba, out=out)
        np.subtract(weighted, out, out=out)
        return
    n_classes, start = proba.shape[1], 0
    for r in range(n_classes - 1):
        stop = start + n_classes - 1 - r
        np.multiply(weighted[:, r : r + 1], proba[:, r + 1 :], out=out[:, start:stop])
        start = stop


def _full_curvature(off_diagonal, n_problems, n_classes):
    """Return the Gram matrices of every class pair (r <= c) of softmax problems.

    The Hessian block of classes r != c is ``-X.T diag(w p_r p_c) X``, and
    since the probabilities sum to one, ``w p_r (1 - p_r) = sum_{c != r} w
    p_r p_c``: a diagonal block is the sum of its row's off-diagonal ones.
    So b (b - 1) / 2 Gram matrices per problem give all b (b + 1) / 2 (6 of
    10 at b = 4), in :func:`~skmoe._softmax.softmax_curvature_weights`
    order.
    """
    p = off_diagonal.shape[-1]
    off_diagonal = off_diagonal.reshape(n_problems, -1, p, p)
    index = {
        (r, c): i for i, (r, c) in enumerate(zip(*_class_pairs(n_classes), strict=True))
    }
    blocks = []
    for r, c in zip(*np.triu_indices(n_classes), strict=True):
        if r != c:
            blocks.append(-off_diagonal[:, index[r, c]])
        else:
            others = [index[min(r, o), max(r, o)] for o in range(n_classes) if o != r]
            blocks.append(off_diagonal[:, others].sum(axis=1))
    return np.stack(blocks, axis=1).reshape(-1, p, p)


def softmax_chunk_sums(log_proba, proba, children, reach, x, curvature_out, *, full):
    """Return the fit and gradient of softmax problems on a chunk.

    The sums of :func:`~skmoe._softmax.softmax_statistics` over a chunk,
    transposed; the curvature row weights are written to ``curvature_out``
    (see :func:`_curvature_rows_into`), for the chunk's Gram GEMM.

    Parameters
    ----------
    log_proba, proba : ndarray of shape (P, b, rows)
        The problems' log-probabilities and probabilities on the chunk.
    children : ndarray of shape (P, b, rows)
        The weighted targets: each problem's weight times its soft targets.
    reach : ndarray of shape (P, rows)
        Each problem's weights.
    x : ndarray of shape (p, rows)
    curvature_out : ndarray of shape (P * n_blocks, rows)
    full : bool

    Returns
    -------
    fit : ndarray of shape (P,)
    gradient : ndarray of shape (P * b, p)
        Problem-major rows of classes (:func:`softmax_sums` reorders them).
    """
    n_problems, n = log_proba.shape[0], x.shape[1]
    fit = np.einsum("pbr,pbr->p", children, log_proba)
    weighted_proba = reach[:, None, :] * proba
    gradient = np.subtract(children, weighted_proba).reshape(-1, n) @ x.T
    _curvature_rows_into(
        curvature_out.reshape(n_problems, -1, n), weighted_proba, proba, full=full
    )
    return fit, gradient


def softmax_sums(shape, fit, gradient, gram, *, full):
    """Return summed :func:`softmax_chunk_sums` as Newton statistics.

    The ``fit``, ``gradient`` and ``gram`` of softmax problems of coefficient
    ``shape`` (P, p, b), as :func:`~skmoe._softmax.newton_step` takes them.
    """
    n_problems, p, n_classes = shape
    return {
        "fit": fit,
        "gradient": np.transpose(gradient.reshape(n_problems, n_classes, p), (0, 2, 1)),
        "gram": _full_curvature(gram, n_problems, n_classes) if full else gram,
    }


# ---------------------------------------------------------------------------
# The source of statistics
# ---------------------------------------------------------------------------


class FusedRows:
    """The rows of an in-memory fit, chunked and transposed for EM's passes.

    A source of statistics for the EM engine (:func:`~skmoe._engine.run_em`),
    which asks, per iteration, for the E-step's statistics at the model
    (:meth:`em_statistics`), then for the line search's trials and the new
    experts' squared residuals (:meth:`trial_statistics`).

    One pass per iteration serves both. The squared residuals at the new
    coefficients follow from sums the E-step's pass already made (see
    :meth:`_squared_residuals`). And the pass that scores the gates' full
    Newton step, which the line search nearly always accepts, also computes
    the next E-step at the model that accepting it gives; the next call of
    :meth:`em_statistics` returns that when the model is indeed the one it
    was computed for (compared exactly), and makes a pass otherwise.

    Parameters
    ----------
    designs : DesignCache
        The fit's designs (NumPy source); the transposed designs are cached
        there, so that every EM run of the fit shares them.
    y : ndarray of shape (n_samples,)
    sample_weight : ndarray of shape (n_samples,)
    gate : GateTree
    pool : LinearGaussianExperts
    """

    def __init__(self, designs, y, sample_weight, *, gate, pool):
        self.gate_x = designs.transposed(columns=gate.feature_indices)
        self.expert_x = designs.transposed(intercept=pool.fit_intercept)
        self.fit_intercept = pool.fit_intercept
        self.y = y
        self.sample_weight = sample_weight
        self.n_rows = y.shape[0]
        self.chunk_rows = _chunk_rows(self.gate_x)
        # The responsibilities of the last E-step (for the trials, and for
        # the caller), and a buffer for those of a speculative one.
        self.resp = np.empty((pool.n_experts, self.n_rows), dtype=self.gate_x.dtype)
        self._next_resp = None
        self._residuals = None  # the last E-step's sums for _squared_residuals
        self._speculation = None

    def _chunks(self):
        return _chunks(self.n_rows, self.chunk_rows)

    def responsibilities(self):
        """Return the last E-step's responsibilities, (n_samples, n_experts)."""
        return self.resp.T

    # The statistics -----------------------------------------------------------

    def em_statistics(self, *, gate, pool, routing, top_k):
        """Return the E-step at the model and the M-step's sums.

        The sums of :func:`~skmoe._statistics.em_statistics` over the rows
        (but ``squares``, which EM on linear experts does not use); the
        responsibilities are kept for :meth:`trial_statistics`.
        """
        speculation, self._speculation = self._speculation, None
        if speculation is not None and _same_model(speculation["model"], gate, pool):
            self.resp, self._next_resp = self._next_resp, self.resp
            self._residuals = speculation["residuals"]
            return speculation["statistics"]
        statistics, self._residuals, _ = self._pass(
            gate, pool, routing, top_k, out=self.resp
        )
        return statistics

    def trial_statistics(
        self,
        *,
        gate,
        pool,
        routing,
        top_k,
        gate_trials=None,
        linear_coef=None,
        **unsupported,
    ):
        """Return the line searches' and the variance update's sums.

        Those of :func:`~skmoe._statistics.trial_statistics`, scored on the
        responsibilities of the last :meth:`em_statistics` (``gate`` and
        ``pool`` are the model the M-step started from).
        """
        if unsupported.get("expert_trials") is not None:
            raise TypeError("FusedRows fits linear experts only.")
        statistics = {}
        if linear_coef is not None:
            statistics["squared_residuals"] = self._squared_residuals(
                pool, *linear_coef
            )
        if not gate_trials:
            return statistics
        if linear_coef is not None and all(t.shape[0] == 1 for t in gate_trials):
            # The line search's first pass: the full steps alone. Speculate.
            model = _next_model(
                gate,
                pool,
                gate_trials,
                linear_coef,
                squared_residuals=statistics["squared_residuals"],
                mass=self._residuals[-1],
            )
            if self._next_resp is None:
                self._next_resp = np.empty_like(self.resp)
            found, residuals, fits = self._pass(
                *model, routing, top_k, out=self._next_resp, trials=gate_trials
            )
            self._speculation = {
                "model": model,
                "statistics": found,
                "residuals": residuals,
            }
            statistics["gates"] = fits
            return statistics
        statistics["gates"] = self._trial_pass(gate, gate_trials)
        return statistics

    def _squared_residuals(self, pool, coef, intercept):
        """Return each expert's weighted squared residuals at new coefficients.

        From sums the E-step's pass made at the coefficients it was given
        (:meth:`~skmoe._experts.LinearGaussianExperts.expanded_squared_residuals`
        around them): no pass is needed, and the terms are of the size of
        residuals, not of y, so nothing cancels catastrophically, as it
        would in ``sum W y^2 - ...``.
        """
        squares, moment, gram, old, _ = self._residuals
        step = pool.design_coef(coef, intercept) - old
        return pool.expanded_squared_residuals(squares, moment, gram, step)

    # Passes over the chunks ---------------------------------------------------

    def _pass(self, gate, pool, routing, top_k, *, out, trials=None):
        """Return the E-step's statistics at a model, from one pass.

        Writes the responsibilities to ``out``. Also returns the sums of
        :meth:`_squared_residuals` at the model's coefficients and, given
        one trial per gate problem, that trial gate's fit on the
        responsibilities in ``self.resp`` (the gate of the model is then
        that trial: its log-probabilities serve both).
        """
        levels = [(_transposed_coef(coef), coef.shape[0]) for coef in gate.coef]
        full = [
            uses_full_hessian("auto", coef.shape[2], coef.shape[1])
            for coef in gate.coef
        ]
        shared = self.gate_x is self.expert_x
        n_experts = pool.n_experts
        coef = pool.design_coef()
        scale = -0.5 / pool.variance_[:, None]
        offset = -0.5 * np.log(2.0 * np.pi * pool.variance_)[:, None]
        # Columns of the chunk's one GEMM against the gate's packed
        # products: the experts' weights when they share the gate's design,
        # then every level's curvature rows.
        n_columns = [n_experts] if shared else []
        for level_coef, is_full in zip(gate.coef, full, strict=True):
            n_problems, b = level_coef.shape[0], level_coef.shape[2]
            n_columns.append(n_problems * (b * (b - 1) // 2 if is_full else b))
        bounds = np.cumsum([0, *n_columns])
        V = np.empty((bounds[-1], self.chunk_rows), dtype=self.gate_x.dtype)
        gate_sums = _GramSums(self.gate_x, bounds[-1], self.chunk_rows, intercept=True)
        if not shared:
            expert_sums = _GramSums(
                self.expert_x, n_experts, self.chunk_rows, intercept=self.fit_intercept
            )
        bound, mass = 0.0, np.zeros(n_experts)
        residual_moment = np.zeros((n_experts, self.expert_x.shape[0]))
        squares = np.zeros(n_experts)
        fits = [np.zeros(level_coef.shape[0]) for level_coef in gate.coef]
        trial_fits = [np.zeros(level_coef.shape[0]) for level_coef in gate.coef]
        gradients = [
            np.zeros((level_coef.shape[0] * level_coef.shape[2], level_coef.shape[1]))
            for level_coef in gate.coef
        ]

        for rows in self._chunks():
            x, y, w = self.gate_x[:, rows], self.y[rows], self.sample_weight[rows]
            expert_x = self.expert_x[:, rows]
            n = x.shape[1]
            softmax = _softmax_levels(levels, x)
            if trials is not None:
                previous = _node_posteriors(
                    self.resp[:, rows] * w, gate.hierarchy, with_root=False
                )
                for level, (log_proba, _) in enumerate(softmax):
                    trial_fits[level] += np.einsum(
                        "pbr,pbr->p",
                        previous[level].reshape(log_proba.shape),
                        log_proba,
                    )
            residual = np.subtract(y, coef @ expert_x)
            log_joint = np.square(residual)
            log_joint *= scale
            log_joint += offset
            log_joint += _leaf_log_proba([lp for lp, _ in softmax], gate.pruned)
            log_bound = self._posterior(log_joint, out[:, rows], routing, top_k)
            weighted = np.multiply(
                out[:, rows], w, out=V[:n_experts, :n] if shared else None
            )
            bound += float(w @ log_bound)
            mass += weighted.sum(axis=1)
            weighted_residual = residual * weighted
            residual_moment += weighted_residual @ expert_x.T
            squares += np.einsum("kr,kr->k", weighted_residual, residual)

            posteriors = _node_posteriors(weighted, gate.hierarchy)
            for level, (log_proba, proba) in enumerate(softmax):
                first = level + int(shared)
                fit, gradient = softmax_chunk_sums(
                    log_proba,
                    proba,
                    posteriors[level + 1].reshape(log_proba.shape),
                    posteriors[level],
                    x,
                    V[bounds[first] : bounds[first + 1], :n],
                    full=full[level],
                )
                fits[level] += fit
                gradients[level] += gradient
            gate_sums.add(x, V[:, :n])
            if not shared:
                expert_sums.add(expert_x, weighted)

        grams = np.split(gate_sums.grams(), bounds[1:-1], axis=0)
        if shared:
            expert_gram, *gate_grams = grams
        else:
            expert_gram = expert_sums.grams()
            gate_grams = grams
        # sum W y x = sum W e x + G b: a sum, so nothing cancels, and it
        # saves the pass a product per chunk.
        moment = residual_moment + np.einsum("kpq,kq->kp", expert_gram, coef)
        statistics = {
            "n_rows": self.n_rows,
            "weight": float(np.sum(self.sample_weight, dtype=np.float64)),
            "bound": bound,
            "mass": mass,
            "gates": [
                softmax_sums(level_coef.shape, fit, gradient, gram, full=is_full)
                for level_coef, fit, gradient, gram, is_full in zip(
                    gate.coef, fits, gradients, gate_grams, full, strict=True
                )
            ],
            "experts": {"gram": expert_gram, "moment": moment},
        }
        residuals = (squares, residual_moment, expert_gram, coef, mass)
        return statistics, residuals, [fit[None, :] for fit in trial_fits]

    def _posterior(self, log_joint, resp, routing, top_k):
        """Return the chunk's log-bound; write its responsibilities to ``resp``."""
        if routing != "soft":
            log_bound, log_resp = log_posterior(
                log_joint.T, routing=routing, top_k=top_k
            )
            np.exp(log_resp.T, out=resp)
            return log_bound
        # The leaves' gate is normalised: the logsumexp over the experts is
        # the likelihood, and the exponentials it sums give the posterior.
        # At least one leaf is not pruned: every row's maximum is finite.
        top = log_joint.max(axis=0)
        log_joint -= top
        np.exp(log_joint, out=log_joint)
        total = log_joint.sum(axis=0)
        np.multiply(log_joint, 1.0 / total, out=resp)
        return np.log(total) + top

    def _trial_pass(self, gate, gate_trials):
        """Return the fits of several trials per gate problem, (n_trials, P)."""
        levels = [
            (
                _transposed_coef(trials.reshape(-1, *trials.shape[2:])),
                trials.shape[0] * trials.shape[1],
            )
            for trials in gate_trials
        ]
        fits = [np.zeros(trials.shape[:2]) for trials in gate_trials]
        for rows in self._chunks():
            x, w = self.gate_x[:, rows], self.sample_weight[rows]
            posteriors = _node_posteriors(self.resp[:, rows] * w, gate.hierarchy)
            softmax = _softmax_levels(levels, x, with_proba=False)
            for level, ((log_proba, _), trials) in enumerate(
                zip(softmax, gate_trials, strict=True)
            ):
                n_trials, n_problems, _, b = trials.shape
                children = posteriors[level + 1].reshape(n_problems, b, -1)
                fits[level] += np.einsum(
                    "pbr,tpbr->tp",
                    children,
                    log_proba.reshape(n_trials, n_problems, b, -1),
                )
        return fits


def _next_model(gate, pool, gate_trials, linear_coef, *, squared_residuals, mass):
    """Return the model an M-step gives if the gates take their full steps.

    ``gate`` and ``pool`` are the model the M-step started from; the
    experts' variances are updated by ``LinearGaussianExperts``' own rule,
    from the same sums as the M-step's, so that the parameters are equal
    to the last bit when the line search accepts the full steps.
    """
    next_gate = copy.deepcopy(gate)
    next_gate.coef = [trials[0] for trials in gate_trials]
    next_pool = copy.deepcopy(pool)
    next_pool.coef_, next_pool.intercept_ = (np.array(a) for a in linear_coef)
    next_pool.update_variance(squared_residuals, mass)
    return next_gate, next_pool


def _same_model(model, gate, pool):
    """Return whether ``gate`` and ``pool`` hold exactly the model's parameters."""
    next_gate, next_pool = model
    return (
        np.array_equal(next_gate.pruned, gate.pruned)
        and all(
            np.array_equal(a, b) for a, b in zip(next_gate.coef, gate.coef, strict=True)
        )
        and all(
            np.array_equal(getattr(next_pool, name), getattr(pool, name))
            for name in ("coef_", "intercept_", "variance_")
        )
    )


class _GramSums:
    """Weighted Gram matrices of a transposed design, summed over chunks.

    Each chunk forms the packed products ``x_a x_b`` (a <= b) of its rows
    once, in a buffer that stays in cache, and one GEMM against the chunk's
    weight rows adds all the Gram matrices. When the design's last row is
    its intercept (ones), the products with it are the design itself: they
    are taken by a GEMM with the chunk, not formed (11 of 66 products at
    p = 11, whose forming costs as much as the GEMM that reads them).

    Parameters
    ----------
    design : ndarray of shape (p, n_samples)
    n_columns : int
        Weight rows per chunk (Gram matrices).
    chunk_rows : int
    intercept : bool
        Whether the design's last row is ones.
    """

    def __init__(self, design, n_columns, chunk_rows, *, intercept):
        self.p = design.shape[0]
        self.n_formed = self.p - int(intercept)
        n_pairs = self.n_formed * (self.n_formed + 1) // 2
        self.buffer = np.empty((n_pairs, chunk_rows), dtype=design.dtype)
        self.products = np.zeros((n_pairs, n_columns))
        self.linear = np.zeros((self.p, n_columns)) if intercept else None

    def add(self, x, V):
        """Add the Gram matrices of a chunk ``x`` (p, rows) for weights V (m, rows)."""
        n = x.shape[1]
        products = packed_products_into(x[: self.n_formed], self.buffer[:, :n])
        # OpenBLAS reduces over a few hundred rows at a time far faster than
        # over thousands for these thin products (benchmarks/README.md,
        # "Measurements behind the code's choices", _GEMM_ROWS).
        for start in range(0, n, _GEMM_ROWS):
            rows = slice(start, min(start + _GEMM_ROWS, n))
            self.products += products[:, rows] @ V[:, rows].T
            if self.linear is not None:
                self.linear += x[:, rows] @ V[:, rows].T

    def grams(self):
        """Return the sums as symmetric Gram matrices, (m, p, p), float64."""
        packed = self.products
        if self.linear is not None:
            packed = np.concatenate([packed, self.linear])[_intercept_order(self.p)]
        return unpack_gram(packed, self.p)


@functools.cache
def _intercept_order(p):
    """Return where each packed pair of p columns is in [formed, linear] rows.

    The formed products are the packed pairs of the first p - 1 columns; the
    linear rows are the sums ``x_a * 1`` for every column a (the last: the
    sum of the weights), that is the pairs (a, p - 1).
    """
    formed = {
        pair: i for i, pair in enumerate(zip(*np.triu_indices(p - 1), strict=True))
    }
    n_formed = len(formed)
    return np.array(
        [
            n_formed + a if b == p - 1 else formed[a, b]
            for a, b in zip(*np.triu_indices(p), strict=True)
        ]
    )


def fit_linear_experts(pool, designs, y, weights):
    """Refit linear experts to given weights, in two passes over chunks.

    What ``LinearGaussianExperts.m_step`` computes (but the log-likelihood
    it returns): the weighted Gram matrices and moments of all experts in
    one pass, the batched solve, then the squared residuals at the new
    coefficients for the variances. For a start's M-step, whose weights are
    given rather than computed by an E-step.

    Parameters
    ----------
    pool : LinearGaussianExperts
        Updated in place.
    designs : DesignCache
        The fit's designs (NumPy source).
    y : ndarray of shape (n_samples,)
    weights : ndarray of shape (n_samples, n_experts)
        Each expert's sample weights.
    """
    design = designs.transposed(intercept=pool.fit_intercept)
    p, n_experts = design.shape[0], weights.shape[1]
    chunk_rows = _chunk_rows(design)
    sums = _GramSums(design, n_experts, chunk_rows, intercept=pool.fit_intercept)
    moment = np.zeros((n_experts, p))
    mass = np.zeros(n_experts)
    for rows in _chunks(design.shape[1], chunk_rows):
        x, chunk_weights = design[:, rows], np.ascontiguousarray(weights[rows].T)
        mass += chunk_weights.sum(axis=1)
        moment += (chunk_weights * y[rows]) @ x.T
        sums.add(x, chunk_weights)
    # In the data's precision, as the in-memory M-step solves.
    pool.solve(sums.grams().astype(design.dtype), moment.astype(design.dtype), mass)
    coef = pool.design_coef()
    ssr = np.zeros(n_experts)
    for rows in _chunks(design.shape[1], chunk_rows):
        residual = np.subtract(y[rows], coef @ design[:, rows])
        np.square(residual, out=residual)
        ssr += np.einsum("rk,kr->k", weights[rows], residual)
    pool.update_variance(ssr, mass)
