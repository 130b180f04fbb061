"""Autodiff helpers on lists of Jittor Vars, shared by the operators (and open to plugins).

Import this module only inside operator methods: it imports Jittor.

Every vector-Jacobian product here treats its cotangent as a constant (it is detached
first). Jittor has no ``grad_outputs``; upstream emulated ``J^T v`` as ``grad(<T(y), v>, y)``
with a live ``v``, which adds ``(dv/dy)^T T(y)`` and made its CG/NS hyper-gradients wrong.

Numbers in float64 arithmetic go through :func:`constant`: Jittor stores a Python number
as a float32 constant, so ``v64 * 0.1`` is off by 1.5e-8 relative (``jboat_core.numerics``
computes in the dtype of the variables it is given).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..platform._jittor import jittor
from ..errors import OperatorRuntimeError

jt = jittor()

Vars = list  # a list of jittor.Var, one per variable


def check_scalar(value, op: str, step: str):
    """Raise ``OperatorRuntimeError`` unless ``value`` is a one-element Var."""
    if value.__class__ is not jt.Var and not isinstance(value, jt.Var):  # once per step
        raise OperatorRuntimeError(op, step, f"the objective returned {type(value).__name__}; "
                                   "it must return a scalar jittor.Var")
    if value.numel() != 1:
        raise OperatorRuntimeError(op, step, f"the objective returned shape {list(value.shape)}; "
                                   "it must return a scalar (reduce it with .mean() or .sum())")
    return value


def grads(value, targets: Sequence, op: str = "", step: str = "") -> Vars:
    """d value / d targets as a list (zeros for targets the value does not reach)."""
    check_scalar(value, op, step)
    out = jt.grad(value, list(targets))
    return list(out) if isinstance(out, (list, tuple)) else [out]


def detach(xs: Sequence) -> Vars:
    """The Vars ``xs`` as constants: each ``x.detach()``, same values, no graph.

    Hold a point fixed while differentiating elsewhere (the lower point y in an implicit
    hyper-gradient, a cotangent of a vector-Jacobian product), or end a loop's graph so
    its memory is freed."""
    return [x.detach() for x in xs]


#: A long loop is executed every this many steps (``flush``).
FLUSH_EVERY = 16


def flush(k: int, steps: int, values) -> None:
    """After step ``k`` (0-based) of a loop of ``steps`` steps, execute the ``values`` it
    carries (a list of Vars, or a callable returning one, called only then) every
    ``FLUSH_EVERY`` steps, never after the last one (the iteration's sync runs it).

    Jittor is lazy: otherwise every step waits for that one sync. A loop of detached
    values then holds every step's graph at once (O(steps) memory for O(1) values); a
    differentiable loop keeps its graph for the reverse pass either way, but one huge
    pending graph is slow to run (measured: benchmarks/results/HISTORY.md, "Long inner
    horizons")."""
    if (k + 1) % FLUSH_EVERY == 0 and k + 1 < steps:
        jt.sync(list(values() if callable(values) else values))


def vdot(xs: Sequence, ys: Sequence):
    """Sum over tensors of <x, y>, a one-element Var."""
    total = None
    for x, y in zip(xs, ys):
        term = (x * y).sum()
        total = term if total is None else total + term
    return total


def constant(value, like):
    """``value`` as a factor for Vars of ``like``'s dtype, exactly.

    Jittor turns a Python number into a float32 constant (the other operand's dtype wins,
    but the value is rounded to float32 first: ``v64 * 0.1`` multiplies by
    0.10000000149). For a float64 ``like`` a number that float32 does not hold exactly
    becomes a one-element float64 Var; otherwise (float32 Vars, exact numbers such as 0.5
    or 2, a Var already) ``value`` is returned as it is.
    """
    if isinstance(value, jt.Var) or like.dtype != "float64":
        return value
    v = float(value)
    if float(np.float32(v)) == v:
        return v
    return jt.array(np.array([v]), "float64")


def axpy(a, xs: Sequence, ys: Sequence) -> Vars:
    """a * x + y, elementwise over the lists (``a`` exact in the Vars' dtype)."""
    if not xs:
        return []
    a = constant(a, xs[0])
    return [x * a + y for x, y in zip(xs, ys)]


def vjp(outputs: Sequence, inputs: Sequence, cotangent: Sequence) -> Vars:
    """(d outputs / d inputs)^T cotangent, with the cotangent held constant."""
    return grads(vdot(outputs, detach(cotangent)), inputs)


def linear_operator(outputs: Sequence, inputs: Sequence) -> Callable[[Vars], Vars]:
    """``v -> J^T v`` for J = d outputs / d inputs; with ``outputs = grad f`` this is the
    Hessian-vector product ``v -> H v``. Results are detached (one HVP each)."""
    def matvec(v: Sequence) -> Vars:
        return detach(vjp(outputs, inputs, v))
    return matvec


def sync_floats(*values) -> list[float]:
    """Execute and read one-element Vars with a single sync."""
    jt.sync(list(values))
    return [float(v.item()) for v in values]


def upper_at(op, ul_feed_dict, auxiliary_model, params, step: str = "upper objective"):
    """F(x, y) at lower-level weights ``params``, checked to be a scalar."""
    return check_scalar(op.ul_objective(ul_feed_dict, op.ul_model, auxiliary_model,
                                        params=params), type(op).name, step)


def lower_at(op, ll_feed_dict, auxiliary_model, params, step: str = "lower objective",
             objective=None):
    """f(x, y) (or ``objective``, e.g. GDA's phi) at lower-level weights ``params``,
    checked to be a scalar."""
    objective = objective or op.ll_objective
    return check_scalar(objective(ll_feed_dict, op.ul_model, auxiliary_model, params=params),
                        type(op).name, step)


def trajectory_grads(value, targets: Sequence, fmodel, op: str = "", step: str = "") -> Vars:
    """d value / d targets through the inner loop that ran on ``fmodel``: ``grads`` when
    the trajectory is in the graph, the checkpointed reverse pass when the loop kept only
    checkpoints (``fmodel.tape``; ``checkpoint_every`` in the solver config)."""
    tape = getattr(fmodel, "tape", None)
    if tape is None:
        return grads(value, targets, op, step)
    return tape.grads(value, targets, op, step)


def init_gradients(op, ul_feed_dict, auxiliary_model, y, wanted: bool, upper=None):
    """dF(x, y)/dy_0 through the trajectory (DI's gradient), or None when not ``wanted``.
    Zero when the trajectory is not tracked (y does not depend on y_0 then)."""
    if not wanted:
        return None
    if getattr(auxiliary_model, "tape", None) is not None:
        F = upper if upper is not None else upper_at(op, ul_feed_dict, auxiliary_model, y)
        return detach(trajectory_grads(F, auxiliary_model.parameters(time=0), auxiliary_model,
                                       type(op).name, "DI gradient"))
    if not getattr(auxiliary_model, "track", True):
        return [jt.zeros(v.shape, v.dtype) for v in auxiliary_model.parameters(time=0)]
    F = upper if upper is not None else upper_at(op, ul_feed_dict, auxiliary_model, y)
    return detach(grads(F, auxiliary_model.parameters(time=0), type(op).name, "DI gradient"))


def terminal_result(op, state, upper, gradients, y, wrt=None):
    """The end of a terminal hyper-gradient step: ``gradients`` (with respect to ``wrt``,
    default ``op.ul_var``) in ``op.ul_var``'s order, F detached, and DI's dF/dy_0 when
    ``state.init_gradients`` asks for it (at the lower point ``y``); a checked ``Result``."""
    from ..contract.protocol import result, to_upper

    g0 = init_gradients(op, state.ul_feed, state.fmodel, y, state.init_gradients)
    grads_up = to_upper(op, wrt, gradients) if wrt is not None else list(gradients)
    return result(op, upper.detach(), grads_up, g0)
