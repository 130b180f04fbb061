"""NGD: naive (unrolled) gradient-descent lower-level dynamics."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import (API_VERSION, Check, DivergedError, DynamicalSystem,
                                 DynamicsState, Optimality, hookimpl)

JBOAT_API_VERSION = API_VERSION


class NGDConfig(BaseModel):
    """Settings of NGD."""

    model_config = ConfigDict(extra="forbid")
    check_finite: bool = Field(True, description="raise if y_K or the hyper-gradient is "
                               "NaN/Inf, naming the first bad inner step (one reduction per "
                               "tensor, read with the results)")


class NGD(DynamicalSystem):
    r"""Naive gradient descent: K differentiable steps of the lower-level optimizer [1].

    .. math:: y_{k+1} = U\big(y_k, \nabla_y f(x, y_k)\big),\quad k = 0..K-1,

    with U the differentiable twin of the user's SGD/Adam. What the hyper-gradient chain
    asks for arrives as a ``DynamicsPlan``: ``track`` (keep y_0..y_K in the graph; with
    ``checkpoint_every`` = s, only every s-th state, the reverse pass recomputing each
    segment: ``jboat_core.numerics.tape``),
    ``stop_inner_grads`` (FOA: stopped inner gradients), ``truncate`` (RGT: the first T steps
    outside the graph, each at the current iterate) and ``pessimistic`` (PTT: evaluate
    F(x, y_k) after each step and return k* = argmax_k F over the differentiable steps
    k = T+1..K, so that PTT after RGT never picks a constant iterate). Returns the state with
    ``k_star`` (k* with PTT, else -1), ``lower_loss`` (with ``plan.record_loss``) and
    ``ll_objective``. After GDA, the steps descend phi_{alpha_k} and ``ll_objective`` is
    phi at the alpha of the evaluated point (for implicit operators).
    With ``check_finite`` (default) the state carries a ``Check``: one probe, NaN/Inf iff
    y_K or the last inner loss is, read by the solver with the results before any update;
    on failure it names the first bad inner step (found by replaying the loop outside the
    graph, only then).
    Its declared fixed point (``state.optimality``) is the gradient step
    T(x, y) = y - eta grad_y f(x, y), i.e. grad_y f = 0 (``Optimality.gradient()``, whatever
    the optimizer's momentum or Adam scaling: their fixed points are the same), which
    implicit operators differentiate with H = d2f/dy2.

    References
    ----------
    [1] Franceschi L. et al., "Bilevel programming for hyperparameter optimization and
    meta-learning", ICML 2018.
    """

    name = "NGD"
    stage = "solve"
    order = 10
    role = "either"
    followed_by = ("solve",)
    config_model = NGDConfig
    supports_checkpointing = True
    supports_forward_mode = True
    summary = "Unrolled gradient descent on the lower level (K differentiable steps)"
    formula = "y_{k+1} = y_k - eta grad_y f(x, y_k) (or the SGD-momentum / Adam update)"
    reference = "Franceschi et al., Bilevel programming for hyperparameter optimization and meta-learning, ICML 2018"

    def step(self, state: DynamicsState) -> DynamicsState:
        from jboat_core.numerics import Tangents, Tape, WorstIterate, check_scalar, flush

        plan, fmodel, opt = state.plan, state.fmodel, state.dopt
        last_loss, carried = [], self._carried(fmodel, opt)

        def inner_step(k, model, twin, detach):
            """Inner step k on ``model`` with ``twin`` (also what the tape recomputes)."""
            loss = check_scalar(state.objective_at(k, self.ll_objective)(
                state.ll_feed, self.ul_model, model, params=model.parameters()), self.name,
                f"inner step {k + 1}")
            last_loss[:] = [loss]
            return twin.step(model, loss, stop_grads=plan.stop_inner_grads, detach=detach,
                             op=self.name, where=f"inner step {k + 1}")

        tape = (Tape(fmodel, plan.checkpoint_every, inner_step, plan.truncate)
                if plan.checkpoint_every else None)
        tangents = (Tangents(self.ul_var or list(self.ul_model.parameters()),
                             fmodel.parameters(), "FMD", plan.forward_limit)
                    if plan.forward_mode else None)
        worst = WorstIterate(self, state)
        plain = (tape is None and tangents is None and not plan.pessimistic
                 and state.aggregate is None and opt.reduce is None
                 and opt.plain_lrs() is not None)
        if plain:  # every step is y - lr g: the loop without per-step generality
            last_loss[:] = [self._plain_loop(state, fmodel, opt, plan)]
        for k in range(0 if plain else self.lower_iters):
            if tape is not None:
                tape.save(k, opt)
            if tangents is not None:
                y, before = fmodel.parameters(), opt.snapshot()
            new = inner_step(k, fmodel, opt, k < plan.truncate)
            if tape is None:  # the tape executes its own segments
                flush(k, self.lower_iters, carried)
            if tangents is not None:
                tangents.advance(last_loss[0], y, opt, before, opt.n_step,
                                 stop_grads=plan.stop_inner_grads, detach=k < plan.truncate)
            worst.record(k, fmodel, new)  # PTT: F(y_k) on differentiable steps
        if tape is not None:
            tape.finish(self.lower_iters)
        loss = last_loss[0] if last_loss else None
        checks = state.checks
        if self.config.check_finite:
            checks = (*checks, self._check(state, fmodel, loss))
        k_star = worst.k_star()
        last = k_star if k_star > 0 else self.lower_iters
        return state.replace(
            k_star=k_star, tangents=tangents, checks=checks, optimality=Optimality.gradient(),
            ll_objective=state.objective_at(max(last - 1, 0), self.ll_objective),
            lower_loss=loss.detach() if plan.record_loss and loss is not None else None)

    def _plain_loop(self, state, fmodel, opt, plan):
        """The inner loop when the twin's every step is ``y - lr g`` (plain SGD) and nothing
        watches the steps (no tape, tangents, PTT, GDA or process reduction): the same
        iterates as ``twin.step`` (``test_inner_loop``), with the per-step work inlined;
        returns the last inner loss."""
        import jittor as jt

        from jboat_core.numerics import check_scalar, flush

        f, feed, ul = self.ll_objective, state.ll_feed, self.ul_model
        params, loss, carried = fmodel.parameters(), None, self._carried(fmodel, opt)
        untracked = not fmodel.track
        for k in range(self.lower_iters):
            loss = check_scalar(f(feed, ul, fmodel, params=params), self.name,
                                f"inner step {k + 1}")
            grads = jt.grad(loss, params)
            cut = k < plan.truncate
            if plan.stop_inner_grads or cut:
                grads = [g.detach() for g in grads]
            params = opt.plain_update(params, grads, cut or untracked)
            fmodel.update_params(params)
            flush(k, self.lower_iters, carried)
        opt.n_step += self.lower_iters
        return loss

    @staticmethod
    def _carried(fmodel, opt):
        """What an inner step hands to the next (``flush`` executes it): the iterate, the
        buffer copies and the twin's state."""
        return lambda: [*fmodel.parameters(), *fmodel.buffers(),
                        *(v for st in opt.state for v in st.values())]

    def _check(self, state, fmodel, loss) -> Check:
        """One number that is NaN/Inf iff y_K or the last inner loss is (the sum of
        ``0 * v`` over them: a reduction per tensor, computed with the results, nothing
        per inner step); on failure, the error naming the first bad inner step."""
        from jboat_core.numerics import vdot

        watched = [*fmodel.parameters(), *([loss] if loss is not None else [])]
        variables = fmodel.variables

        def explain() -> DivergedError:
            step, why = self._first_bad_step(state, variables)
            if step is None:
                return DivergedError(self.name, "result", "y_K is NaN/Inf although every "
                                     "replayed inner step was finite (non-deterministic f?)")
            return DivergedError(self.name, f"inner step {step}", why + "; lower the "
                                 "lower-level learning rate or check f")

        return Check(vdot(watched, [0.0] * len(watched)), explain)

    def _first_bad_step(self, state, variables) -> tuple[int | None, str]:
        """Replay the last run outside the graph: (step, reason) of the first NaN/Inf,
        or (None, "") if every loss and iterate is finite."""
        import numpy as np

        from jboat_core.numerics import FunctionalModel

        fmodel = FunctionalModel(self.ll_model, track=False, variables=variables)
        twin = state.dopt.fresh()
        for k in range(self.lower_iters):
            loss = state.objective_at(k, self.ll_objective)(
                state.ll_feed, self.ul_model, fmodel, params=fmodel.parameters())
            value = float(loss.item())
            if not np.isfinite(value):
                return k + 1, (f"the lower-level loss is {value} (NaN/Inf) after {k} "
                               "step(s)")
            new = twin.step(fmodel, loss, detach=True, op=self.name, where=f"inner step {k + 1}")
            if not all(np.all(np.isfinite(q.numpy())) for q in new):
                return k + 1, (f"the step from a finite loss ({value:.4g}) made the lower "
                               "variables NaN/Inf (overflow)")
        return None, ""


@hookimpl
def jboat_register_dynamics(register):
    register(NGD)
