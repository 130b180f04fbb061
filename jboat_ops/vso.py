"""VSO: value-function-based sequential minimization (BVFIM / BVFSM)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class VSOConfig(BaseModel):
    """Settings of VSO (upstream section ``"VSO"``)."""

    model_config = ConfigDict(extra="forbid")
    z_loop: int = Field(5, ge=0, description="steps T_z of the value-function estimate z "
                        "(lower learning rate eta)")
    z_lr: float = Field(0.01, gt=0, description="step size of the barrier sub-problem loop "
                        "on u (lower_iters steps)")
    ll_l2_reg: float = Field(0.1, ge=0, description="mu_0: regulariser mu ||z||^2 of the "
                             "value function")
    ul_l2_reg: float = Field(0.01, ge=0, description="theta_0: regulariser theta ||u||^2")
    ul_ln_reg: float = Field(10.0, ge=0, description="tau_0: weight of the log barrier")
    reg_decay: float = Field(1.0, ge=0, description="r: the three weights are divided by "
                             "c_t = r t + 1 (upstream's true = 1.0)",
                             json_schema_extra={"bool_is_number": True})

    @field_validator("reg_decay", mode="before")
    @classmethod
    def _bool_is_number(cls, value):
        return float(value) if isinstance(value, bool) else value


class VSO(FirstOrderSolver):
    r"""Value-function-based sequential minimization [1, 2].

    With c_t = r t + 1 and mu, theta, tau = (mu_0, theta_0, tau_0) / c_t, one outer iteration:

    .. math::
        z &\leftarrow T_z \text{ steps } z - \eta(\nabla_y f(x, z) + 2\mu z),\ z_0 = y,
           \qquad \ell_z = f(x, z) + \mu\|z\|^2 \ (\text{constant}),\\
        u &\leftarrow K \text{ steps } u - \alpha_u\big(\nabla_y F(x,u) + 2\theta u
           + \tfrac{\tau}{\ell_z}\nabla_y f(x,u)\big),\ u_0 = z,\\
        g_x &= \nabla_x F(x,u) + \tfrac{\tau}{\ell_z}\big(\nabla_x f(x,u) - \nabla_x f(x,z)\big),
        \qquad y \leftarrow z,

    the gradient of :math:`F(x,u) + \theta\|u\|^2 - \tau\log(\ell_z + \mathrm{sg}[f(x,u)]
    - f(x,u))` (the authors' shifted log barrier, whose argument is always
    :math:`\ell_z > 0`: f must be positive, as losses are). The lower variables end at z.

    Every term of the barrier stays in the graph, so the barrier contributes to g_x and to
    the u steps; u takes exactly K steps.

    References
    ----------
    [1] Liu R., Liu X., Yuan X., Zeng S., Zhang J., "A value-function-based interior-point
    method for non-convex bi-level optimization", ICML 2021.
    [2] Liu R., Liu X., Zeng S., Zhang J., Zhang Y., "Value-function-based sequential
    minimization for bi-level optimization", IEEE TPAMI 2023.
    """

    name = "VSO"
    #: the kit's correctness check (direction along grad F(x, y*(x)), x held): the
    #: settings of tests/test_first_order.py's convergence run (measured cosine 0.9995).
    exact_settings = {"lower_iters": 50, "z_loop": 30, "z_lr": 0.05, "ll_l2_reg": 0.0,
                      "ul_l2_reg": 0.0, "ul_ln_reg": 3.0, "reg_decay": 0.0}
    stage = "solve"
    role = "terminal"
    config_model = VSOConfig
    summary = "Value-function-based sequential minimization with a log barrier (BVFIM)"
    formula = ("z: T_z steps on f + mu|z|^2; u: K steps on F + theta|u|^2 - tau log(l_z + "
               "sg[f(u)] - f(u)); g_x = grad_x F(u) + tau/l_z (grad_x f(u) - grad_x f(z)); y <- z")
    reference = ("Liu et al., A value-function-based interior-point method for non-convex "
                 "bi-level optimization, ICML 2021")

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, axpy, constant, descend, flush, vdot

        cfg, pt = self.config, Point(self, state)
        c = cfg.reg_decay * state.current_iter + 1.0
        mu, theta, tau = cfg.ll_l2_reg / c, cfg.ul_l2_reg / c, cfg.ul_ln_reg / c
        z = descend(pt, pt.y, pt.lr, cfg.z_loop,
                    lambda v, s: pt.f(v, s) + vdot(v, v) * constant(mu, v[0]),
                    "value function z")
        f_z = pt.f(z, "f(x, z)").detach()
        l_z = f_z + vdot(z, z).detach() * constant(mu, f_z)
        scale = constant(tau, l_z) / l_z
        u = list(z)
        for k in range(self.lower_iters):
            gF = pt.grad_y(pt.F(u), u, f"barrier step {k + 1}")
            gf = pt.grad_y(pt.f(u), u, f"barrier step {k + 1}")
            d = [a + b * constant(2 * theta, b) + g * scale for a, b, g in zip(gF, u, gf)]
            u = [v.detach() for v in axpy(-cfg.z_lr, d, u)]
            flush(k, self.lower_iters, u)
        F_u = pt.F(u)
        gx = pt.grad_x(F_u, "grad_x F(u)")
        fx_u, fx_z = pt.grad_x(pt.f(u), "grad_x f(u)"), pt.grad_x(pt.f(z), "grad_x f(z)")
        g = [a + (b - c_) * scale for a, b, c_ in zip(gx, fx_u, fx_z)]
        return Result(upper_loss=F_u.detach(), lower_loss=f_z, hyper_gradients=g,
                      ll_update=z)


@hookimpl
def jboat_register_first_order(register):
    register(VSO)
