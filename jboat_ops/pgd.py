"""PGD: proximal / projected gradient lower-level dynamics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import (API_VERSION, DynamicalSystem, DynamicsState, Optimality,
                                 OperatorRuntimeError, find_component, hookimpl)

JBOAT_API_VERSION = API_VERSION


class PGDConfig(BaseModel):
    """Settings of PGD."""

    model_config = ConfigDict(extra="forbid")
    prox: str = Field("l1", description="the registered prox map or projection (`jboat "
                      "list-ops`: l1, weighted_l1, elastic_net, group_l1, nonneg, box, "
                      "simplex, l1_ball, l2_ball, or a plugin's)")
    strength: Literal["exp", "identity", "softplus", "constant"] = Field(
        "exp", description="the penalty strength lambda from the upper variable "
        "ul_var[strength_var]: exp(x) (log-parametrised, the default), x, softplus(x); "
        "or `constant` (lambda = `value`, not learned)")
    strength_var: int = Field(0, ge=0, description="index in ul_var of the upper variable "
                              "lambda comes from (one element: one lambda; the lower "
                              "variable's shape: one weight per coordinate)")
    value: float = Field(1.0, ge=0, description="lambda when strength = `constant`")
    options: dict[str, float] = Field({}, description="options of the "
                                      "prox map (e.g. l1_ratio, group_size, lower, upper, "
                                      "radius); `jboat show-op <prox>` lists them")


class PGD(DynamicalSystem):
    r"""Proximal (or projected) gradient descent on the lower level [1, 2].

    .. math:: y_{k+1} = T(x, y_k) = \mathrm{prox}_{\eta\lambda(x) g}
              \big(y_k - \eta \nabla_y f(x, y_k)\big),\quad k = 0..K-1,

    for the composite lower problem min_y f(x, y) + lambda(x) g(y) (f smooth: the user's
    lower objective; g the prox map chosen by name, e.g. the L1 norm for the Lasso) or the
    constrained problem min_{y in C} f(x, y) (a projection). eta is the lower optimizer's
    learning rate (PGD takes its own steps; momentum or Adam settings are not used).
    lambda(x) comes from one upper variable (``strength``: exp(x) by default, so that a
    vector x of the lower variable's shape gives the weighted Lasso's one weight per
    coordinate). The prox map is applied to every lower variable.

    It declares its fixed point (``Optimality.fixed_point``, not symmetric): implicit
    operators (CG/NS with ``linear_solver = "gmres"``, ``"bicgstab"``, ``"normal_cg"``,
    ``"dense"`` or ``"neumann"``) solve (I - d_y T)^T v = grad_y F and return
    grad_x F + (d_x T)^T v, which at a converged Lasso equals the closed form on the
    support [2]. Unrolled chains (RAD, checkpointed RAD, FMD) differentiate through the
    K steps, the prox's derivative taken with the conventions at the kinks stated in
    ``jboat_ops.prox`` (the inactive side).

    Design: one operator with a ``prox`` field (rather than one operator per prox) because
    the dynamics are the same loop and the same fixed point whatever the prox; the prox
    maps are components found through entry points (``jboat_register_prox_maps``), so a
    third party adds one without writing dynamics. With PTT (``plan.pessimistic``) F is
    evaluated after each differentiable step and k* = argmax_k F(x, y_k) is returned, as
    NGD does.

    References
    ----------
    [1] Parikh N., Boyd S., "Proximal algorithms", Found. Trends Optim., 2014.
    [2] Bertrand Q. et al., "Implicit differentiation of Lasso-type models for
    hyperparameter optimization", ICML 2020.
    """

    name = "PGD"
    stage = "solve"
    order = 20
    role = "either"
    followed_by = ("solve",)
    config_model = PGDConfig
    supports_checkpointing = True
    supports_forward_mode = True
    summary = "Proximal / projected gradient descent (Lasso, elastic net, simplex, box...)"
    formula = "y_{k+1} = prox_{eta lambda(x) g}(y_k - eta grad_y f(x, y_k))"
    reference = ("Bertrand et al., Implicit differentiation of Lasso-type models for "
                 "hyperparameter optimization, ICML 2020")

    def _strength(self):
        """lambda(x) as a Var (or a float for ``constant``)."""
        import jittor as jt

        cfg = self.config
        if cfg.strength == "constant":
            return float(cfg.value)
        if cfg.strength_var >= len(self.ul_var):
            raise OperatorRuntimeError(self.name, "config", f"strength_var={cfg.strength_var} "
                                       f"but there are {len(self.ul_var)} upper variables")
        x = self.ul_var[cfg.strength_var]
        return {"exp": jt.exp, "identity": lambda v: v,
                "softplus": jt.nn.softplus}[cfg.strength](x)

    def _map(self, state: DynamicsState, eta: float, k: int):
        """``T(model, y, detach_grad) -> (new y, loss)``: one proximal step at y."""
        import jittor as jt

        from jboat_core import constant
        from jboat_core.numerics import check_scalar

        spec = find_component(self.runtime, "prox_map", self.config.prox)
        prox = spec.load()
        options = dict(self.config.options)
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            raise OperatorRuntimeError(self.name, "config", f"prox {spec.name!r} has no option "
                                       f"{unknown[0]!r}; its options: "
                                       f"{', '.join(spec.options) or '(none)'}")
        for key, (default, _) in spec.options.items():
            options[key] = type(default)(options.get(key, default))
        lam = self._strength()
        objective = state.objective_at(k, self.ll_objective)

        def T(model, y, stop_grads=False):
            loss = check_scalar(objective(state.ll_feed, self.ul_model, model, params=y),
                                self.name, f"inner step {k + 1}")
            g = jt.grad(loss, y)
            g = list(g) if isinstance(g, (list, tuple)) else [g]
            if stop_grads:
                g = [v.detach() for v in g]
            new = []
            for yi, gi in zip(y, g):
                e = constant(eta, yi)
                t = None if spec.projection else lam * e
                if t is not None and hasattr(t, "shape") and t.numel() > 1 \
                        and list(t.shape) != list(yi.shape):
                    raise OperatorRuntimeError(self.name, "strength", f"lambda has shape "
                                               f"{list(t.shape)} but the lower variable has "
                                               f"{list(yi.shape)}: one lambda, or one per "
                                               "coordinate")
                new.append(prox(yi - gi * e, t, **options))
            return new, loss

        return T, spec

    def step(self, state: DynamicsState) -> DynamicsState:
        from jboat_core.numerics import Tangents, Tape, WorstIterate, flush

        plan, fmodel = state.plan, state.fmodel
        eta = float(state.dopt.lr)
        last, worst = [], WorstIterate(self, state)

        def inner_step(k, model, twin, detach):
            T, _ = self._map(state, eta, k)
            new, loss = T(model, model.parameters(), plan.stop_inner_grads)
            last[:] = [loss]
            if detach or not model.track:
                new = [v.detach() for v in new]
            model.update_params(new)
            return new

        tape = (Tape(fmodel, plan.checkpoint_every, inner_step, plan.truncate)
                if plan.checkpoint_every else None)
        tangents = (Tangents(self.ul_var or list(self.ul_model.parameters()),
                             fmodel.parameters(), "FMD", plan.forward_limit)
                    if plan.forward_mode else None)
        carried = lambda: [*fmodel.parameters(), *fmodel.buffers()]  # noqa: E731
        for k in range(self.lower_iters):
            if tape is not None:
                tape.save(k, state.dopt)
            if tangents is not None:
                T, _ = self._map(state, eta, k)
                tangents.advance_map(lambda y: T(fmodel, y, plan.stop_inner_grads)[0],
                                     fmodel.parameters(), detach=k < plan.truncate)
            new = inner_step(k, fmodel, state.dopt, k < plan.truncate)
            if tape is None:
                flush(k, self.lower_iters, carried)
            worst.record(k, fmodel, new)  # PTT: F(y_k) on differentiable steps
        if tape is not None:
            tape.finish(self.lower_iters)
        loss = last[0] if last else None
        k_star = worst.k_star()
        at = (k_star if k_star > 0 else self.lower_iters) - 1
        T_final, spec = self._map(state, eta, max(at, 0))
        optimality = Optimality.fixed_point(
            lambda y: T_final(fmodel, y)[0], symmetric=False,
            name=f"PGD prox {spec.name}")
        return state.replace(
            k_star=k_star, optimality=optimality, tangents=tangents,
            ll_objective=state.objective_at(max(at, 0), self.ll_objective),
            lower_loss=loss.detach() if plan.record_loss and loss is not None else None)


@hookimpl
def jboat_register_dynamics(register):
    register(PGD)
