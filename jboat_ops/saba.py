"""SABA: SOBA with SAGA variance reduction over the samples of both levels."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from jboat_core.contract import (API_VERSION, FirstOrderSolver, Result, Rows, SolveState,
                                 hookimpl)

JBOAT_API_VERSION = API_VERSION

#: The SAGA tables: level -> the quantities tabulated per block of that level.
TABLES = {"lower": ("g_y", "hv", "jv"), "upper": ("gFy", "gFx")}
#: Each table's rows are shaped like these variables (H v like y, J v like x).
ROW_SHAPES = {"g_y": "lower", "hv": "lower", "jv": "upper", "gFy": "lower", "gFx": "upper"}


class SABAConfig(BaseModel):
    """Settings of SABA (the ``"SABA"`` section)."""

    model_config = ConfigDict(extra="forbid")
    batch_size: int | None = Field(64, ge=1, description="examples per block of the SAGA "
                                   "tables, both levels (1: the paper's one row per sample; "
                                   "None or >= n: one block, deterministic)")
    seed: int = Field(0, ge=0, description="seed of the block partition and of the block "
                      "draws (with the outer iteration: a resumed run draws the same)")
    v_lr: float | None = Field(None, gt=0, description="step size rho of v (None: the "
                               "lower optimizer's learning rate)")


class SABA(FirstOrderSolver):
    r"""SABA: stochastic average bilevel algorithm, SOBA's directions variance-reduced by
    SAGA over the finite sums of both levels [1].

    The lower feed is cut once into m fixed blocks B_1..B_m (the upper into m'), each
    quantity has a table of its last value on every block, and at each step one lower
    block j and one upper block i are drawn (probability |B|/n):

    .. math::
        \hat q = q_j(x, y, v) - T^q_j + \textstyle\sum_k \frac{|B_k|}{n} T^q_k,
        \qquad T^q_j \leftarrow q_j(x, y, v),

    for :math:`q \in \{\nabla_y f, \nabla^2_{yy} f\, v, \nabla^2_{xy} f\, v\}` (lower
    tables) and :math:`\{\nabla_y F, \nabla_x F\}` (upper tables); then SOBA's steps with
    the estimates:
    :math:`D_y = \widehat{\nabla_y f}`, :math:`D_v = \widehat{H v} + \widehat{\nabla_y F}`,
    :math:`D_x = \widehat{J v} + \widehat{\nabla_x F}`; y and x through the lower and upper
    optimizers (SGD: the paper's steps rho, gamma), v a plain step of ``v_lr``.

    Memory: five tables, one row per block: m x (2 d_y + d_x) floats for the lower level
    and m' x (d_y + d_x) for the upper, with m = ceil(n / batch_size). The paper's
    per-sample tables (``batch_size=1``) hold one gradient per sample: n x d floats per
    table, e.g. ijcnn1 (n = 49,990, d_y = d_x = 22) 4.4 MB per table in float32 (17.6 MB for
    the five with n' = n), data cleaning on MNIST (n = 20,000 training examples, d_y =
    7,850, d_x = 20,000: the cross-derivative table alone would be 1.6 GB per-sample, 25 MB
    with blocks of 64). Tables are operator state (in checkpoints).

    Choices the paper leaves open: blocks of ``batch_size`` examples instead of single
    samples (the cost per step is one minibatch, as in the paper's experiments); the
    tables are filled at the first step by one pass over all blocks at (x_0, y_0, v_0 = 0)
    (costing one epoch of both levels); constant step sizes (the paper's theorem).
    Draw order per step: lower block j, upper block i. Under MPI each rank holds the
    tables of its shard (``state_per_rank``): ``jboat run`` refuses ``--checkpoint-every``
    and ``--resume`` under ``mpirun`` with SABA rather than keep rank 0's tables only.
    ``lower_iters`` is not used.

    References
    ----------
    [1] Dagreou M., Ablin P., Vaiter S., Moreau T., "A framework for bilevel optimization
    that enables stochastic and global variance reduction algorithms", NeurIPS 2022.
    [2] Defazio A., Bach F., Lacoste-Julien S., "SAGA: a fast incremental gradient method
    with support for non-strongly convex composite objectives", NeurIPS 2014.
    """

    name = "SABA"
    state_per_rank = True  # tables of each rank's shard: no checkpoints under mpirun
    stage = "solve"
    role = "terminal"
    config_model = SABAConfig
    summary = "SOBA with SAGA variance reduction over both levels' samples (linear rate)"
    formula = ("q_hat = q_j - T_j + mean_k T_k for grad_y f, H v, J v, grad_y F, grad_x F; "
               "y -= rho D_y, v -= rho D_v, x -= gamma D_x")
    reference = ("Dagreou et al., A framework for bilevel optimization that enables "
                 "stochastic and global variance reduction algorithms, NeurIPS 2022")

    @classmethod
    def memory_schema(cls, lower: tuple, upper: tuple) -> dict:
        """v like the lower variables; each table one row per block of its level (the
        lower tables share the lower block count, the upper ones the upper's)."""
        like = {"lower": lower, "upper": upper}
        schema = {"v": list(lower)}
        for level, names in TABLES.items():
            for key in names:
                schema[key] = [Rows(s, f"{level} blocks") for s in like[ROW_SHAPES[key]]]
        return schema

    def _lower(self, pt, y, v, feed):
        _, g_y, hv, jv = pt.f_products(y, v, feed)
        return [g_y, hv, jv]

    def _upper(self, pt, y, feed):
        _, gFy, gFx = pt.grad_F(y, feed)
        return [gFy, gFx]

    def _filled(self, memory, pt, y, v) -> dict:
        """The tables: the memory's, or every block evaluated now (first step)."""
        if memory.get("g_y") is not None:
            return {k: memory[k] for names in TABLES.values() for k in names}
        import jittor as jt

        tables = {}
        for level, names in TABLES.items():
            _, feeds = pt.blocks(level)
            rows = [self._lower(pt, y, v, fd) if level == "lower" else
                    self._upper(pt, y, fd) for fd in feeds]
            for q, key in enumerate(names):
                tables[key] = [jt.stack([r[q][p] for r in rows]) for p in range(len(rows[0][q]))]
        return tables

    def step(self, state: SolveState) -> Result:
        from jboat_core.numerics import Point, constant, saga

        pt = Point(self, state)
        y = pt.y
        v = state.memory.get("v") or [p.detach() * 0 for p in y]
        rho = constant(self.config.v_lr or pt.lr, y[0])
        tables = self._filled(state.memory, pt, y, v)
        j, low, w_low = pt.block("lower")
        f, g_y, hv, jv = pt.f_products(y, v, low)
        i, up, w_up = pt.block("upper")
        F, gFy, gFx = pt.grad_F(y, up)
        est, new = {}, {}
        for key, value, j_, w in (("g_y", g_y, j, w_low), ("hv", hv, j, w_low),
                                  ("jv", jv, j, w_low), ("gFy", gFy, i, w_up),
                                  ("gFx", gFx, i, w_up)):
            est[key], new[key] = saga(tables[key], w, j_, value)
        v_new = [a - (b + c) * rho for a, b, c in zip(v, est["hv"], est["gFy"])]
        return Result(upper_loss=F, lower_loss=f, ll_gradients=est["g_y"],
                      hyper_gradients=[a + b for a, b in zip(est["jv"], est["gFx"])],
                      memory={"v": v_new, **new}, info=pt.info())


@hookimpl
def jboat_register_first_order(register):
    register(SABA)
