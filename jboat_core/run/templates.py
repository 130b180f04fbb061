"""The operator templates of ``jboat new-plugin``, one per family (data for
``jboat_core.run.scaffold``). Each is a working method written on the current contract
(keyword-only constructor, ``step(state)``, memory in ``state.memory`` and
``Result(memory=...)``) with public names only (``jboat_core.contract``,
``jboat_core.numerics``), and passes the conformance kit, correctness included, as
generated. Placeholders: ``{name}``, ``{summary}``, ``{hook}``, ``{imports}``,
``{fields}``; literal braces are doubled."""

from __future__ import annotations

HEAD = '''"""{name}: {summary}.

This module is the plugin: the entry point ``{module} = "{package}.{module}"`` names it,
it declares the contract version it is written for (``JBOAT_API_VERSION``) and registers
``{name}`` through ``{hook}``. Importing it does not import Jittor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import {imports}

JBOAT_API_VERSION = API_VERSION


class {name}Config(BaseModel):
    """Settings of {name} (the ``"{name}"`` section of a solver config)."""

    model_config = ConfigDict(extra="forbid")
{fields}
'''

UNROLLED = '''

class {name}(HyperGradient):
    r"""Reverse-mode hyper-gradient through the unrolled inner loop (a starting point).

    .. math:: g_x = \\frac{{d}}{{dx}} F\\big(x, y_K(x)\\big)

    The conformance kit checks it (``approximates = "unrolled"``) against the float64
    derivative of the unrolled map on its ridge problem.

    References
    ----------
    [1] Franceschi L. et al., "Forward and reverse gradient-based hyperparameter
    optimization", ICML 2017.
    """

    name = "{name}"
    stage = "gradient"
    order = 50
    role = "terminal"
    needs_trajectory = True     # the dynamics keep y_0..y_K in the graph
    approximates = "unrolled"   # the conformance kit checks it against the float64 value
    config_model = {name}Config
    summary = "{summary}"
    formula = "g_x = dF(x, y_K(x))/dx through the K inner steps"
    reference = "Franceschi et al., Forward and reverse gradient-based hyperparameter optimization, ICML 2017"

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import detach, grads, upper_at  # imports Jittor: only here

        y = state.ll_point()                  # y_K (or y_k* after PTT)
        F = upper_at(self, state.ul_feed, state.fmodel, y)
        n = len(self.ul_var)
        wrt = self.ul_var + (state.fmodel.parameters(time=0) if state.init_gradients else [])
        g = detach(grads(F, wrt, self.name, "dF/dx through the trajectory"))
        return result(self, F.detach(), g[:n], g[n:] or None)


@hookimpl
def jboat_register_hypergradients(register):
    register({name})
'''

IMPLICIT = '''

class {name}(HyperGradient):
    r"""Implicit hyper-gradient with its own linear solver (a starting point): conjugate
    gradient written as ``solve(matvec, b) -> x``, the JAXopt / TorchOpt design.

    .. math:: g_x = \\nabla_x F - \\nabla^2_{{xy}} f\\, v,\\qquad
              \\nabla^2_{{yy}} f\\, v = \\nabla_y F

    at the lower point y held constant. The conformance kit checks it
    (``approximates = "implicit"``) against the float64 IFT hyper-gradient at y*.

    References
    ----------
    [1] Pedregosa F., "Hyperparameter optimization with approximate gradient", ICML 2016.
    """

    name = "{name}"
    stage = "implicit"
    order = 50
    role = "terminal"
    approximates = "implicit"   # the conformance kit checks it against the float64 value
    config_model = {name}Config
    summary = "{summary}"
    formula = "g_x = grad_x F - d2f/dxdy v,  (d2f/dy2) v = grad_y F  (iters CG steps)"
    reference = "Pedregosa, Hyperparameter optimization with approximate gradient, ICML 2016"

    def solve(self, matvec, b):
        """Conjugate gradient for H x = b (``b``, ``x``: lists of Vars like y)."""
        from jboat_core.numerics import vdot  # imports Jittor: only here

        x = [bi * 0 for bi in b]
        r, p = list(b), list(b)
        rr = vdot(r, r)
        for _ in range(self.config.iters):
            Ap = matvec(p)
            alpha = rr / (vdot(p, Ap) + 1e-30)
            x = [xi + pi * alpha for xi, pi in zip(x, p)]
            r = [ri - ai * alpha for ri, ai in zip(r, Ap)]
            rr_next = vdot(r, r)
            p = [ri + pi * (rr_next / (rr + 1e-30)) for ri, pi in zip(r, p)]
            rr = rr_next
        return x

    def step(self, state: ChainState) -> Result:
        from jboat_core.numerics import implicit_step  # imports Jittor: only here

        return implicit_step(self, state, self.solve, self.config.damping)


@hookimpl
def jboat_register_hypergradients(register):
    register({name})
'''

DYNAMICS = '''

class {name}(DynamicalSystem):
    r"""Nesterov's accelerated gradient on the lower level, its own inner update (a
    starting point).

    .. math:: v_{{k+1}} = \\mu v_k - \\eta \\nabla_y f(x, y_k + \\mu v_k),\\qquad
              y_{{k+1}} = y_k + v_{{k+1}}

    The conformance kit checks that RAD (and PTT + RAD) differentiate exactly what these
    steps compute and that they descend f.

    References
    ----------
    [1] Nesterov Y., "A method of solving a convex programming problem with convergence
    rate O(1/k^2)", Soviet Mathematics Doklady, 1983.
    """

    name = "{name}"
    stage = "solve"
    order = 50
    role = "terminal"
    config_model = {name}Config
    summary = "{summary}"
    formula = "v <- mu v - eta grad_y f(x, y + mu v); y <- y + v"
    reference = "Nesterov, A method of solving a convex programming problem with convergence rate O(1/k^2), 1983"

    def step(self, state: DynamicsState) -> DynamicsState:
        import jittor as jt

        from jboat_core.numerics import check_scalar, constant  # imports Jittor: only here

        plan, fmodel, eta, mu = state.plan, state.fmodel, state.dopt.lr, self.config.mu
        v = [y.detach() * 0 for y in fmodel.parameters()]
        loss, upper = None, []
        for k in range(self.lower_iters):
            y = fmodel.parameters()
            ahead = [yi + vi * constant(mu, vi) for yi, vi in zip(y, v)]
            f = state.objective_at(k, self.ll_objective)  # f, or GDA's phi_alpha_k
            loss = check_scalar(f(state.ll_feed, self.ul_model, fmodel, params=ahead),
                                self.name, f"inner step {{k + 1}}")
            g = self.runtime.parallel.data_mean(list(jt.grad(loss, ahead)))
            if plan.stop_inner_grads or k < plan.truncate:  # FOA, RGT
                g = [gi.detach() for gi in g]
            v = [vi * constant(mu, vi) - gi * constant(eta, gi) for vi, gi in zip(v, g)]
            new = [yi + vi for yi, vi in zip(y, v)]
            if k < plan.truncate or not plan.track:
                new = [n.detach() for n in new]
            fmodel.update_params(new)
            if plan.pessimistic and k >= plan.truncate:  # PTT: F after each step
                upper.append(float(self.ul_objective(state.ul_feed, self.ul_model, fmodel,
                                                     params=new).item()))
        k_star = plan.truncate + 1 + upper.index(max(upper)) if upper else -1
        return state.replace(k_star=k_star,
                             lower_loss=loss.detach() if loss is not None else None,
                             ll_objective=state.objective_at(self.lower_iters - 1,
                                                             self.ll_objective))


@hookimpl
def jboat_register_dynamics(register):
    register({name})
'''

FIRST_ORDER = '''

class {name}(FirstOrderSolver):
    r"""A penalised first-order bilevel solver with a persistent auxiliary point z (a
    starting point):

    .. math::
        z \\leftarrow z - \\alpha_z \\nabla_z f(x, z)\\ (K \\text{{ times}}),\\qquad
        d = \\nabla \\big[F(x, y) + \\lambda (f(x, y) - f(x, z))\\big] / \\lambda

    d_y goes to the lower optimizer, d_x to the upper one; z is the operator's memory
    (kept across iterations and in checkpoints). As lambda grows, d_x tends to the
    hyper-gradient of F(x, y*(x)): the conformance kit checks its direction.

    References
    ----------
    [1] Kwon J. et al., "A fully first-order method for stochastic bilevel optimization",
    ICML 2023.
    """

    name = "{name}"
    stage = "solve"
    role = "terminal"
    config_model = {name}Config
    summary = "{summary}"
    formula = "z: K steps on f; d = grad [F(x, y) + lam (f(x, y) - f(x, z))] / lam"
    reference = "Kwon et al., A fully first-order method for stochastic bilevel optimization, ICML 2023"
    exact_settings = {{"lower_iters": 10}}  # the kit's check: z close to y*(x)

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, descend  # imports Jittor: only here

        pt, lam = Point(self, state), self.config.lam
        z = descend(pt, state.memory.get("z") or pt.y, self.config.z_lr, self.lower_iters)
        F_y, f_y = pt.F(pt.y), pt.f(pt.y)
        d_y, d_x = pt.grad_yx((F_y + (f_y - pt.f(z)) * lam) / lam, pt.y)
        return Result(upper_loss=F_y.detach(), lower_loss=f_y.detach(),
                      hyper_gradients=d_x, ll_gradients=d_y, memory={{"z": z}})


@hookimpl
def jboat_register_first_order(register):
    register({name})
'''

STOCHASTIC = '''

class {name}(FirstOrderSolver):
    r"""A single-loop stochastic bilevel solver (a starting point): joint minibatch steps
    on y, on v ~ -[grad^2_yy f]^-1 grad_y F and on x.

    .. math::
        D_y = \\nabla_y f_j,\\quad D_v = \\nabla^2_{{yy}} f_j\\, v + \\nabla_y F_i,\\quad
        D_x = \\nabla^2_{{xy}} f_j\\, v + \\nabla_x F_i,\\qquad v \\leftarrow v - \\rho D_v

    on a lower minibatch j and an upper minibatch i (``batch_size``, drawn from ``seed``
    and the outer iteration, so a resumed run draws the same). v is the operator's memory.
    The conformance kit checks that, x held, D_x settles along the exact hyper-gradient.

    References
    ----------
    [1] Dagreou M. et al., "A framework for bilevel optimization that enables stochastic
    and global variance reduction algorithms", NeurIPS 2022.
    """

    name = "{name}"
    stage = "solve"
    role = "terminal"
    config_model = {name}Config
    summary = "{summary}"
    formula = "D_y = grad_y f_j; D_v = H_j v + grad_y F_i; D_x = J_j v + grad_x F_i; v -= rho D_v"
    reference = "Dagreou et al., A framework for bilevel optimization that enables stochastic and global variance reduction algorithms, NeurIPS 2022"

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant  # imports Jittor: only here

        pt = Point(self, state)
        y = pt.y
        v = state.memory.get("v") or [p.detach() * 0 for p in y]
        rho = constant(self.config.v_lr or pt.lr, y[0])
        f, g_y, hv, jv = pt.f_products(y, v, pt.batch("lower"))
        F, gFy, gFx = pt.grad_F(y, pt.batch("upper"))
        v_new = [a - (b + c) * rho for a, b, c in zip(v, hv, gFy)]
        return Result(upper_loss=F, lower_loss=f, ll_gradients=g_y,
                      hyper_gradients=[a + b for a, b in zip(jv, gFx)],
                      memory={{"v": v_new}}, info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register({name})
'''

PRESET_MODULE = '''"""{name}: {summary}.

This module is the plugin: the entry point ``{module} = "{package}.{module}"`` names it,
it declares the contract version it is written for (``JBOAT_API_VERSION``) and registers
the preset ``{name}`` (a named solver config of registered operators) through
``jboat_register_presets``. Importing it does not import Jittor.
"""

from __future__ import annotations

from jboat_core.contract import API_VERSION, Preset, hookimpl

JBOAT_API_VERSION = API_VERSION

{name} = Preset(
    "{name}", "{summary}",
    "Pedregosa, Hyperparameter optimization with approximate gradient, ICML 2016",
    {{"gm_op": ["NGD"], "na_op": ["CG"], "lower_iters": 20, "CG": {{"k": 20}}}},
    notes="a twice-differentiable lower objective, strongly convex in y")


@hookimpl
def jboat_register_presets(register):
    register({name})
'''

OPERATOR_TEST = '''"""{name} through jboat's conformance kit (installed or not: the kit adds it to the
registry it composes in). Its math is checked by default, in float64."""

from jboat_core.testing.conformance import conformance_tests

from {package}.{module} import {name}

Test{name} = conformance_tests({name}, module="{package}.{module}")
'''

PRESET_TEST = '''"""The preset {name} through jboat's conformance kit: its declaration is valid and its
composition runs through ``Problem`` (each of its operators' math is checked by their
own kit)."""

from jboat_core.testing.conformance import preset_tests

from {package}.{module} import {name}

Test{name} = preset_tests({name}, module="{package}.{module}")
'''

_SCALE = ('    scale: float = Field(1.0, gt=0, description="unused example setting: add '
          'yours here")')

#: Family -> (kind, imports from jboat_core.contract, config fields, body, summary).
FAMILIES = {
    "hypergradient": ("hypergradient", "API_VERSION, ChainState, HyperGradient, Result, "
                      "hookimpl, result", _SCALE, UNROLLED,
                      "Reverse-mode hyper-gradient through the inner loop"),
    "implicit": ("hypergradient", "API_VERSION, ChainState, HyperGradient, Result, hookimpl",
                 '    iters: int = Field(20, ge=1, description="conjugate-gradient steps '
                 '(exact after as many as y has entries)")\n    damping: float = '
                 'Field(0.0, ge=0, description="lambda: solve (H + lambda I) v = grad_y F")',
                 IMPLICIT, "Implicit hyper-gradient with its own conjugate-gradient solve"),
    "dynamics": ("dynamics", "API_VERSION, DynamicalSystem, DynamicsState, hookimpl",
                 '    mu: float = Field(0.5, ge=0, lt=1, description="momentum mu")',
                 DYNAMICS, "Nesterov accelerated gradient on the lower level"),
    "first_order": ("first_order", "API_VERSION, FirstOrderSolver, Result, SolveState, "
                    "hookimpl",
                    '    lam: float = Field(10.0, gt=0, description="penalty multiplier '
                    'lambda")\n    z_lr: float = Field(0.1, gt=0, description="step size of '
                    'the K gradient steps on z")', FIRST_ORDER,
                    "Penalised first-order bilevel solver"),
    "stochastic": ("first_order", "API_VERSION, FirstOrderSolver, Result, SolveState, "
                   "hookimpl",
                   '    batch_size: int | None = Field(64, ge=1, description="examples per '
                   'minibatch, both levels (None: the whole feed)")\n    seed: int = '
                   'Field(0, ge=0, description="seed of the minibatch draws")\n    v_lr: '
                   'float | None = Field(None, gt=0, description="step size of v (None: the '
                   'lower learning rate)")', STOCHASTIC,
                   "Single-loop stochastic bilevel solver"),
    "preset": ("preset", "", "", None, "Implicit differentiation, CG, 20 inner steps"),
}
#: Other spellings of a family.
ALIASES = {"unrolled": "hypergradient"}
