"""SOLVED: the user's own lower-level solver, differentiated implicitly."""

from __future__ import annotations

from jboat_core.contract import (API_VERSION, DynamicalSystem, DynamicsState, EmptyConfig,
                                 Optimality, OperatorRuntimeError, hookimpl)

JBOAT_API_VERSION = API_VERSION


class SOLVED(DynamicalSystem):
    r"""The lower level solved by the user's function, by any means [1].

    .. math:: y_K = \mathrm{solve}(x, y_0),\qquad G(x, y_K) = 0 \ \text{or}\
              y_K = T(x, y_K) \ \text{(declared)}

    The problem's ``ll_solver`` (``jboat_core.custom_root`` /
    ``custom_fixed_point``) returns y*(x) from NumPy arrays (a closed form, scikit-learn,
    a coordinate-descent loop); jboat writes it into the lower model and declares its
    optimality condition, so that the implicit operators (CG, NS with any
    ``linear_solver``) return the implicit hyper-gradient, through ``Problem`` and
    ``jboat run`` like any other dynamics. Nothing differentiates through the solver:
    unrolled chains (RAD, FMD...) are refused. The solver receives x and y_0 as lists of
    float64 arrays and the lower feed as given; the condition is evaluated at y* in the
    lower variables' dtype.

    References
    ----------
    [1] Blondel M. et al., "Efficient and modular implicit differentiation", NeurIPS 2022.
    """

    name = "SOLVED"
    stage = "solve"
    order = 30
    role = "either"
    followed_by = ("solve",)
    config_model = EmptyConfig
    requires_runtime = ("ll_solver",)
    differentiable = False   # solved outside the graph: implicit chains only
    summary = "The user's own lower solver (NumPy, scikit-learn...) with its optimality condition"
    formula = "y_K = solve(x, y_0); implicit chains differentiate G(x, y) = 0 or y = T(x, y)"
    reference = ("Blondel et al., Efficient and modular implicit differentiation, "
                 "NeurIPS 2022")

    def step(self, state: DynamicsState) -> DynamicsState:
        import numpy as np

        from jboat_core import import_jittor

        jt = import_jittor()
        plan, fmodel, solver = state.plan, state.fmodel, self.runtime.ll_solver
        if plan.track or plan.forward_mode or plan.pessimistic:
            raise OperatorRuntimeError(self.name, "plan", "the user's solver is not "
                                       "differentiable: use an implicit operator (CG, NS) "
                                       "after SOLVED, not an unrolled one")
        upper = self.ul_var or list(self.ul_model.parameters())
        x = [np.asarray(v.numpy(), np.float64) for v in upper]
        y0 = [np.asarray(v.numpy(), np.float64) for v in fmodel.parameters()]
        y = list(solver(x, y0, state.ll_feed))
        if len(y) != len(y0) or any(np.shape(a) != b.shape for a, b in zip(y, y0)):
            raise OperatorRuntimeError(self.name, "ll_solver", f"returned shapes "
                                       f"{[list(np.shape(a)) for a in y]} for lower "
                                       f"variables {[list(b.shape) for b in y0]}")
        new = [jt.array(np.asarray(a, np.float64), str(v.dtype)).stop_grad()
               for a, v in zip(y, fmodel.parameters())]
        fmodel.update_params(new)
        if solver.form == "gradient":
            optimality = Optimality.gradient("SOLVED: grad_y f = 0")
        else:
            feed, ul = state.ll_feed, self.ul_model

            def condition(params):
                return list(solver.condition(feed, ul, fmodel, params=params))

            optimality = Optimality(solver.form, condition, solver.symmetric,
                                    f"SOLVED ({solver.form})")
        loss = None
        if plan.record_loss:
            loss = self.ll_objective(state.ll_feed, self.ul_model, fmodel,
                                     params=fmodel.parameters()).detach()
        return state.replace(optimality=optimality, lower_loss=loss,
                             ll_objective=self.ll_objective)


@hookimpl
def jboat_register_dynamics(register):
    register(SOLVED)
