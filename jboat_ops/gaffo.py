"""GAFFO: gap-function first-order meta-update (BOAT's definition)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from jboat_core.contract import API_VERSION, FirstOrderSolver, Result, SolveState, hookimpl

JBOAT_API_VERSION = API_VERSION


class GAFFOConfig(BaseModel):
    """Settings of GAFFO (BOAT section ``"GAFFO"``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    gap_lambda: float = Field(1.0, gt=0, validation_alias=AliasChoices("gap_lambda", "lambda"),
                              description="lambda: weight 1/lambda of grad_y F (key 'lambda' "
                              "as BOAT spells it, or 'gap_lambda')")
    sigma: float = Field(0.01, description="step of the finite-difference probe along grad f")
    lower_step_size: float | None = Field(None, gt=0, description="lower step size s "
                                          "(default: the lower learning rate eta)")
    use_sign_lower_step: bool = Field(False, description="lower step along sign(grad f)")
    maximize: bool = Field(True, description="negate the meta-gradient (BOAT's code default; "
                           "its meta-learning config sets false)")
    sync_lower_from_upper: bool = Field(True, description="start the lower step from the "
                                        "upper variables' values (y <- x)")


class GAFFO(FirstOrderSolver):
    r"""Gap-function first-order meta-update, as BOAT 1.1.1 defines GAFFO [1].

    The lower and upper variables are distinct lists of pairwise equal shapes
    (meta-learning: x is the initialisation, y the adapted weights). One outer iteration:

    .. math::
        y_0 &= x \ (\text{if sync\_lower\_from\_upper, else } y),\quad
        y_1 = y_0 - s\,\nabla_y f(x, y_0)\ (\text{or } s\,\mathrm{sign}(\cdot)),\\
        b &= \nabla_y f(x, y_1),\quad v = \nabla_y f(x, y_1 + \sigma b),\quad
        a = \nabla_y F(x, y_1)/\lambda - (v - b),\\
        g_x &= -a \ (\text{maximize}) \ \text{or}\ a, \qquad y \leftarrow y_1,

    where :math:`v - b \approx \sigma \nabla^2_{yy} f\, \nabla_y f` is a finite-difference
    probe of the regularised gap's gradient. This is BOAT's simplified first-order update
    for an unconstrained lower level, not the paper's BiC-GAFFA algorithm for constrained
    ones. Note (kept from BOAT, not "fixed"): with ``maximize=false`` descending g_x lowers
    F but raises the gap term, with ``maximize=true`` it raises F.

    References
    ----------
    [1] Yao W., Yin H., Zeng S., Zhang J., "Overcoming lower-level constraints in bilevel
    optimization: a novel approach with regularized gap functions", ICLR 2025
    (arXiv:2406.01992).
    """

    name = "GAFFO"
    stage = "solve"
    role = "terminal"
    config_model = GAFFOConfig
    summary = "Gap-function first-order meta-update (BOAT's GAFFO; ll/ul of equal shapes)"
    formula = ("y1 = x - s grad f(x); b = grad f(y1); v = grad f(y1 + sigma b); "
               "g_x = +-(grad F(y1)/lambda - (v - b)); y <- y1")
    reference = ("Yao et al., Overcoming lower-level constraints in bilevel optimization: a "
                 "novel approach with regularized gap functions, ICLR 2025")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_shapes(self.ll_var, self.ul_var)

    def _check_shapes(self, ll_var, ul_var) -> None:
        from jboat_core.contract import ConfigError

        if len(ll_var) != len(ul_var):
            raise ConfigError([f"GAFFO: needs one upper variable per lower variable of the "
                               f"same shape; got {len(ll_var)} lower and {len(ul_var)} upper"])
        for i, (a, b) in enumerate(zip(ll_var, ul_var)):
            if a is b:
                raise ConfigError([f"GAFFO: ll_var[{i}] is ul_var[{i}]: the two levels must "
                                   "be distinct variables (e.g. two copies of the model)"])
            if list(a.shape) != list(b.shape):
                raise ConfigError([f"GAFFO: ll_var[{i}] has shape {list(a.shape)} but "
                                   f"ul_var[{i}] has {list(b.shape)}; GAFFO needs the two "
                                   "levels to have the same structure"])

    def step(self, state: SolveState) -> Result:
        import jittor as jt

        from jboat_core.numerics import Point, axpy, constant, detach

        cfg, pt = self.config, Point(self, state)
        step = cfg.lower_step_size if cfg.lower_step_size is not None else pt.lr
        y0 = detach(pt.x if cfg.sync_lower_from_upper else pt.y)
        g0 = pt.grad_y(pt.f(y0), y0, "grad f(y_0)")
        if cfg.use_sign_lower_step:
            g0 = [jt.sign(g) for g in g0]
        y1 = detach(axpy(-step, g0, y0))
        f1 = pt.f(y1, "f(x, y_1)")
        b = pt.grad_y(f1, y1, "grad f(y_1)")
        probe = detach(axpy(cfg.sigma, b, y1))
        v = pt.grad_y(pt.f(probe, "f at the probe"), probe, "grad f(probe)")
        F1 = pt.F(y1, "F(x, y_1)")
        r = pt.grad_y(F1, y1, "grad F(y_1)")
        lam = constant(max(cfg.gap_lambda, 1e-8), y1[0])
        a = [ri / lam - (vi - bi) for ri, vi, bi in zip(r, v, b)]
        return Result(upper_loss=F1.detach(), lower_loss=f1.detach(),
                      hyper_gradients=[-ai if cfg.maximize else ai for ai in a],
                      ll_update=y1)


@hookimpl
def jboat_register_first_order(register):
    register(GAFFO)
