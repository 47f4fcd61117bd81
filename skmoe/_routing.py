"""Routing: soft, hard and top-k transforms of per-expert log-weights.

One transform serves both places where routing matters (docs/design.md §1):

* at prediction, it is applied to the gate's log-probabilities and the
  combination weights the experts by the result;
* in the E-step of routed EM (``train_routing="em"``), it is applied to the
  log joint ``log g_k + log p_k``, which gives soft EM (``"soft"``),
  classification EM (``"hard"``) or top-k truncated posteriors
  (``"topk"``); other trainings run soft EM and route at prediction (and in
  the final refit of the experts, ``"refit"``).

The result is always normalised log-weights: entries that are routed away
are ``-inf`` and the others sum to one in probability space.
"""

from skmoe._backend import (
    device,
    get_namespace,
    log_softmax,
    logsumexp,
    top_k_mask,
)

__all__ = [
    "ROUTINGS",
    "log_posterior",
    "resolve_train_routing",
    "route_log_weights",
    "routed_log_joint",
]

ROUTINGS = ("soft", "hard", "topk")


def route_log_weights(log_weights, *, routing="soft", top_k=2):
    """Normalise and route per-expert log-weights.

    Parameters
    ----------
    log_weights : array of shape (n_samples, n_experts)
        Unnormalised log-weights (log gate probabilities, or the log joint
        ``log g_k(x) + log p_k(y | x)`` in the E-step).
    routing : {"soft", "hard", "topk"}, default="soft"
        ``"soft"`` keeps every expert, ``"hard"`` only the largest weight,
        ``"topk"`` the ``top_k`` largest, renormalised.
    top_k : int, default=2
        Number of experts kept by ``"topk"``; ignored otherwise.

    Returns
    -------
    log_routed : array of shape (n_samples, n_experts)
        Log-weights that sum to one per row (``-inf`` where routed away).
    """
    xp = get_namespace(log_weights)
    n_experts = log_weights.shape[1]
    if routing == "soft" or (routing == "topk" and top_k >= n_experts):
        return log_softmax(log_weights, axis=1)
    if routing == "hard":
        winner = xp.argmax(log_weights, axis=1)
        experts = xp.arange(n_experts, device=device(log_weights))
        keep = experts[None, :] == winner[:, None]
        return xp.where(keep, _scalar(0.0, log_weights), _scalar(-xp.inf, log_weights))
    if routing == "topk":
        # Ties at the k-th value are broken by column order, so exactly
        # top_k experts are kept on every row.
        keep = top_k_mask(log_weights, top_k)
        masked = xp.where(keep, log_weights, _scalar(-xp.inf, log_weights))
        return log_softmax(masked, axis=1)
    raise ValueError(
        f"routing must be one of {ROUTINGS}, got {routing!r}."
    )  # pragma: no cover - validated by the estimators


def routed_log_joint(gate, pool, X, y, *, routing, top_k):
    """Return the routed log gate plus the experts' log-likelihoods.

    ``log w_k(x) + log p_k(y | x)``, ``w`` the gate's probabilities routed
    as at prediction: its ``logsumexp`` over the experts is the model's
    log-likelihood of a row, its softmax the posterior.

    Parameters
    ----------
    gate : GateTree
    pool : expert pool
    X : array of shape (n_samples, n_features)
    y : array of shape (n_samples,)
        The encoded target.
    routing : {"soft", "hard", "topk"}
    top_k : int

    Returns
    -------
    log_joint : array of shape (n_samples, n_experts)
    """
    log_gate = route_log_weights(gate.log_proba(X), routing=routing, top_k=top_k)
    return log_gate + pool.log_likelihood(X, y)


def log_posterior(log_joint, *, routing="soft", top_k=2):
    """Return the E-step's bound and log-responsibilities for a routing.

    The bound is what EM maximises: ``log sum_{k in S_i} g_k p_k`` over the
    support ``S_i`` that the routing keeps of the joint posterior (every
    expert for soft EM, the top k for truncated EM, the best for
    classification EM). Keeping the k largest terms is the best k-sparse
    E-step, so each E-step and M-step raises it (for soft routing it is the
    log-likelihood itself).

    Parameters
    ----------
    log_joint : array of shape (n_samples, n_experts)
        ``log g_k(x_i) + log p_k(y_i | x_i)``, with a normalised gate.
    routing : {"soft", "hard", "topk"}, default="soft"
    top_k : int, default=2

    Returns
    -------
    log_bound : array of shape (n_samples,)
    log_resp : array of shape (n_samples, n_experts)
        Log-responsibilities, ``-inf`` where routed away.
    """
    xp = get_namespace(log_joint)
    if routing == "soft":
        # The gate is already normalised: one logsumexp gives both the
        # likelihood and the posterior.
        log_bound = logsumexp(log_joint, axis=1)
        return log_bound, log_joint - log_bound[:, None]
    log_resp = route_log_weights(log_joint, routing=routing, top_k=top_k)
    # At any kept entry, log_joint - log_resp is the log-sum over the kept
    # support.
    kept = xp.argmax(log_resp, axis=1)[:, None]
    log_bound = (
        xp.take_along_axis(log_joint, kept, axis=1)[:, 0]
        - xp.take_along_axis(log_resp, kept, axis=1)[:, 0]
    )
    return log_bound, log_resp


def resolve_train_routing(routing, train_routing, *, in_memory=True):
    """Return how a fit trains for its routing: "soft", "refit" or "em".

    From the ``routing`` and ``train_routing`` parameters. ``"auto"`` is
    ``"refit"`` for hard routing on in-memory data (soft EM, then the
    experts refit to the gate's choices: measured in benchmarks/README.md,
    "Hard routing", the only variant whose probabilities stay calibrated on
    data without mixture structure), soft EM for hard routing on a Dask
    array or in ``partial_fit`` (which cannot refit: they never hold all
    the rows; "refit" is an error there), and truncated EM (``"em"``) for
    top-k routing, started from a soft fit
    (:func:`~skmoe._start.starts_soft`: soft EM to convergence from the
    start, then truncated EM from there; measured in benchmarks/README.md,
    "Top-k from a soft fit": on classification a higher truncated bound on
    every seed and a lower test log-loss than from the k-means start, on
    regression the same within the seeds' spread).
    ``train_routing="em"`` runs truncated EM from the start itself.
    """
    if routing == "soft":
        return "soft"
    if train_routing == "auto":
        if routing == "topk":
            return "em"
        return "refit" if in_memory else "soft"
    if train_routing == "refit" and not in_memory:
        raise ValueError(
            "train_routing='refit' refits the experts to the gate's choices "
            "on all rows held in memory; a dask array and partial_fit "
            "train by soft EM ('soft', what 'auto' gives hard routing there) "
            "or routed EM ('em')."
        )
    return train_routing


def _scalar(value, like):
    """Return ``value`` as a 0-d array of ``like``'s dtype and device.

    Two Python scalars in ``where`` would give torch's default dtype.
    """
    return get_namespace(like).asarray(value, dtype=like.dtype, device=device(like))
