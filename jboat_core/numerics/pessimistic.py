"""PTT's bookkeeping inside a dynamics operator: the upper loss after each differentiable
inner step and the worst step k*.

Pessimistic trajectory truncation (Liu et al., "Towards gradient-based bilevel
optimization with non-convex followers and beyond", NeurIPS 2021) evaluates the
hyper-gradient at y_{k*}, k* = argmax_k F(x, y_k) over the steps the chain
differentiates (k = T+1..K after RGT's truncation T), F averaged over processes.
"""

from __future__ import annotations


class WorstIterate:
    """Record F(x, y_k) after each inner step of ``op``'s dynamics when the plan asks
    for it (``plan.pessimistic``, PTT) and give k* (``-1`` when it does not).

    Use in a dynamics operator's ``step``::

        worst = WorstIterate(self, state)
        for k in range(self.lower_iters):
            new = ...                         # the step's new iterate
            worst.record(k, state.fmodel, new)
        return state.replace(k_star=worst.k_star(), ...)

    Parameters
    ----------
    op : Operator
        The dynamics operator (its ``ul_objective``, ``ul_model`` and ``runtime``).
    state : DynamicsState
        What ``step`` received (its ``plan`` and ``ul_feed``).
    """

    def __init__(self, op, state):
        self.op, self.state, self.values = op, state, []
        self.active = bool(state.plan.pessimistic)

    def record(self, k: int, fmodel, params) -> None:
        """F(x, y_{k+1}) at ``params`` (the iterate after step ``k``, 0-based), detached,
        when ``k`` is a differentiable step (``k >= plan.truncate``); the lower model's
        buffers are frozen (an F evaluation is not a lower step)."""
        if not self.active or k < self.state.plan.truncate:
            return
        op = self.op
        with fmodel.frozen_buffers():
            self.values.append(op.ul_objective(self.state.ul_feed, op.ul_model, fmodel,
                                               params=params).detach().reshape(1))

    def k_star(self) -> int:
        """k* = T + 1 + argmax over the recorded F (1-based, the process mean under MPI),
        or -1 without PTT."""
        if not self.active or not self.values:
            return -1
        import jittor as jt

        values = self.op.runtime.parallel.data_mean1(jt.concat(self.values))
        return self.state.plan.truncate + 1 + int(values.argmax(0)[0].item())
