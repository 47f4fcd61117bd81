"""The state that ``partial_fit`` keeps between calls.

One object, held by the estimator in one attribute and dropped by
``fit``: the running statistics of stepwise EM (``_stepwise``), the rows
kept until the start is refitted, and the count of rows seen.
"""

import copy
from dataclasses import dataclass, field, replace

import numpy as np

from skmoe._stepwise import StepwiseEM

__all__ = ["OnlineState"]

# partial_fit fits its start on the first rows of the stream, up to this
# many: a start decides the basin EM converges to, and a small first batch
# can choose a poor one (a 2-expert classifier started on 1,000 rows stayed
# in a worse basin than from 2,000 or more: benchmarks/README.md,
# "Scale out" and "Measurements behind the code's choices"). The rows are
# kept until then, so memory stays bounded whatever the stream's length.
START_ROWS = 10_000


@dataclass
class OnlineState:
    """What ``partial_fit`` learned from the stream so far, besides the model.

    Attributes
    ----------
    stepwise : StepwiseEM or None
        The running statistics of stepwise EM; None until the first step
        after a start (a refitted start begins them afresh).
    start_rows : list of tuple or None
        The batches ``(X, y_encoded, sample_weight)`` kept to refit the
        start on the first rows of the stream; None once the start was
        refitted on enough rows, or when the model was fitted by ``fit``.
    n_samples_seen : int
        Rows seen by ``partial_fit`` (the estimator's ``n_samples_seen_``).
    """

    stepwise: object = None
    start_rows: list | None = field(default_factory=list)
    n_samples_seen: int = 0

    def copy(self):
        """Return a copy that a step may change (the kept rows are shared)."""
        return replace(
            self,
            stepwise=copy.deepcopy(self.stepwise),
            start_rows=None if self.start_rows is None else list(self.start_rows),
        )

    def rows_for_start(self, batch, *, limit=START_ROWS):
        """Keep ``batch``; return the rows to fit the start on now, or None.

        The start decides the basin that EM converges to, so it is fitted
        on the first batch, then refitted once on the first ``limit`` rows
        of the stream (a bounded buffer, dropped after that).

        Returns
        -------
        start : tuple or None
            None when the start stays; else ``(rows, n_batches)``: the kept
            batches concatenated, and how many batches they came in (the
            steps they count as). A new start ends the running statistics:
            stepwise EM begins afresh from it (:meth:`step`).
        """
        if self.start_rows is None:
            return None
        self.start_rows.append(batch)
        n_batches = len(self.start_rows)
        n_rows = sum(part[0].shape[0] for part in self.start_rows)
        start = None
        if n_batches == 1 or n_rows >= limit:
            # Stepwise EM starts afresh from the new start.
            self.stepwise = None
            rows = tuple(
                np.concat(parts) for parts in zip(*self.start_rows, strict=True)
            )
            start = rows, n_batches
        if n_rows >= limit:
            self.start_rows = None
        return start

    def step(self, gate, pool, batch, n_batches, *, regression, **options):
        """Take one stepwise-EM step on ``batch``; return its log-likelihood.

        After a start, stepwise EM begins afresh (its running statistics
        centred on the batch's weighted mean target for a ``regression``).
        ``n_batches`` counts the batches that ``batch`` came in: the start's
        rows count as the batches they came in, so the next batch gets the
        step size of its place in the stream, not the large one of a second
        step (a weight of 2 ** -0.6 on one batch of 1,000 rows made the test
        log-likelihood dip after the start's refit: ``benchmarks/README.md``,
        "Scale out"). ``options`` are
        :meth:`~skmoe._stepwise.StepwiseEM.step`'s.
        """
        if self.stepwise is None:
            offset = 0.0
            if regression:
                offset = float(np.average(batch[1], weights=batch[2]))
            self.stepwise = StepwiseEM(y_offset=offset)
            self.stepwise.n_steps = n_batches - 1
        return self.stepwise.step(gate, pool, *batch, **options)

    @classmethod
    def from_legacy_state(cls, state):
        """Move the loose partial_fit attributes of an older pickle into one state.

        Models pickled before this class kept ``_stepwise``,
        ``_start_rows_kept``, ``n_samples_seen_`` and ``n_steps_`` in their
        ``__dict__``. Returns ``state`` (a dict) with them replaced by
        ``_online``; unchanged when it has none.
        """
        names = ("_stepwise", "_start_rows_kept", "n_samples_seen_", "n_steps_")
        if not any(name in state for name in names):
            return state
        state = dict(state)
        state["_online"] = cls(
            stepwise=state.pop("_stepwise", None),
            start_rows=state.pop("_start_rows_kept", None),
            n_samples_seen=state.pop("n_samples_seen_", 0),
        )
        state.pop("n_steps_", None)
        return state
