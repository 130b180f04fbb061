"""The one runner of a composition: what ``Problem``, ``hypergradient_step`` and the
conformance kit all call.

An outer iteration is either

* dynamics + hyper-gradient chain: a ``FunctionalModel`` of the lower model, the
  differentiable twin of the lower optimizer, the dynamics operators (NGD, GDA, DI, DM)
  stepping a ``DynamicsState`` in order, then the hyper-gradient chain stepping a
  ``ChainState`` (skipped when a dynamics operator such as DM returns the ``Result``
  itself); or
* one first-order solver (VFO...) stepping a ``SolveState``, on the real models.

Either way the outcome is a ``Result`` (``jboat_core.contract.protocol``), checked by
``sync_and_check`` in a single Jittor execution before anything is updated.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..contract.kinds import KINDS
from ..contract.protocol import OUTPUT_FIELDS, DynamicsPlan, DynamicsState, Result, SolveState
from ..errors import DivergedError, OperatorRuntimeError, PrecisionWarning
from ..numerics.diffopt import DifferentiableOptimizer
from ..numerics.functional import FunctionalModel
from ..numerics.tape import segment_length
from ..platform._jittor import jittor
from ..plugins.registry import Registry
from .sequential import SequentialHG, run_dynamics


@dataclass
class Evaluation:
    """One evaluation of a composition on one pair of feeds.

    Attributes
    ----------
    result : Result
        The terminal result.
    producer : str
        Name of the operator that produced it (for error messages).
    fmodel : FunctionalModel or None
        The functional lower model (None for first-order solvers).
    buffers : list or None
        Buffer values (BatchNorm statistics) right after the dynamics: what the real
        model receives if the solver adopts the inner loop's result.
    dopt : DifferentiableOptimizer or None
        The lower optimizer's twin after the dynamics (its state goes back to the real
        optimizer when the solver adopts y_K).
    lower_loss : jittor.Var or None
        f at the last inner step (``DynamicsState.lower_loss``), or the result's own.
    """

    result: Result
    producer: str
    fmodel: FunctionalModel | None = None
    buffers: list | None = None
    dopt: DifferentiableOptimizer | None = None
    lower_loss: Any = None


def evaluate_chain(dynamics, chain: SequentialHG | None, plan: DynamicsPlan, ll_model, ll_opt,
                   ll_feed_dict, ul_feed_dict, current_iter: int = 0, variables=None,
                   init_gradients: bool = False, reduce=None) -> Evaluation:
    """Dynamics then the hyper-gradient chain, on a new functional model of ``ll_model``.

    Parameters
    ----------
    dynamics : list of DynamicalSystem
    chain : SequentialHG or None
        None when the last dynamics operator provides the result (DM).
    variables : list of jittor.Var, optional
        The lower variables (default every trainable parameter of ``ll_model``).
    init_gradients : bool
        Ask the terminal operator for dF/dy_0 too (DI).
    reduce : callable, optional
        Applied to every inner step's lower gradient (the mean over processes).
    """
    fmodel = FunctionalModel(ll_model, track=plan.track and not plan.checkpoint_every,
                             variables=variables)
    dopt = DifferentiableOptimizer.from_optimizer(ll_opt, fmodel.parameters(time=0), reduce)
    out = run_dynamics(dynamics, DynamicsState(ll_feed_dict, ul_feed_dict, fmodel, dopt, plan,
                                               int(current_iter)))
    buffers = [b.clone() for b in fmodel.buffers()] or None
    if isinstance(out, Result):
        return Evaluation(out, type(dynamics[-1]).name, fmodel, buffers, dopt, out.lower_loss)
    if chain is None:
        raise OperatorRuntimeError(type(dynamics[-1]).name, "dynamics", "declares "
                                   "provides_hypergradient but returned no Result")
    res = chain.run(out.chain_state(dopt.lr, init_gradients))
    return Evaluation(res, chain.order[-1], fmodel, buffers, dopt,
                      out.lower_loss if out.lower_loss is not None else res.lower_loss)


@dataclass
class Composition:
    """The operator instances of a validated solver config, ready to evaluate.

    Every kind is built the same way, in one loop over ``KINDS``:
    ``cls.build(runtime)`` for each name of the kind's config key (already ordered and
    validated by ``SolverConfig``).

    Parameters
    ----------
    config : SolverConfig
    runtime : Runtime
        Handed to every operator (objectives, models, variables, optimizers, sections).
    registry : Registry
    record_loss : bool
        Keep the last inner step's lower objective (the solver's history).
    """

    config: Any
    runtime: Any
    registry: Registry
    record_loss: bool = False
    dynamics: list = field(default_factory=list)
    chain: SequentialHG | None = None
    first_order: Any = None
    plan: DynamicsPlan = field(default_factory=DynamicsPlan)

    def __post_init__(self):
        cfg, reg, rt = self.config, self.registry, self.runtime
        built = {kind.name: [reg.get(n, kind=kind.name).cls.build(rt)
                             for n in getattr(cfg, kind.config_key) or ()]
                 for kind in KINDS.values()}
        self.dynamics = built["dynamics"]
        self.first_order = (built["first_order"] or [None])[0]
        if self.first_order is not None:
            return
        if not type(self.dynamics[-1]).provides_hypergradient:
            self.chain = SequentialHG(built["hypergradient"], list(cfg.na_op))
        self.plan = (self.chain.dynamics_plan(self.record_loss) if self.chain
                     else DynamicsPlan(record_loss=self.record_loss))
        every = segment_length(getattr(cfg, "checkpoint_every", 0), cfg.lower_iters)
        if every and self.plan.track:
            self.plan = self.plan.replace(checkpoint_every=every)

    @property
    def operators(self) -> list:
        """Every operator instance, in execution order."""
        if self.first_order is not None:
            return [self.first_order]
        return self.dynamics + (self.chain.gradient_instances if self.chain else [])

    @property
    def adopts_inner_result(self) -> bool:
        """False when the lower variables must not be warm-started from y_K (an operator
        keeps the initialisation, or one provides its own lower update)."""
        ops = self.operators
        return not (self.first_order is not None
                    or any(type(op).keeps_initialisation for op in ops)
                    or any(getattr(type(op), "provides_hypergradient", False) for op in ops))

    def evaluate(self, ll_feed_dict, ul_feed_dict, current_iter: int = 0,
                 init_gradients: bool = False) -> Evaluation:
        """One evaluation on one pair of feeds (nothing is updated)."""
        if self.first_order is not None:
            res = self.first_order.step(SolveState(ll_feed_dict, ul_feed_dict,
                                                   int(current_iter)))
            if not isinstance(res, Result):
                raise OperatorRuntimeError(type(self.first_order).name, "result",
                                           f"step returned {type(res).__name__}, not a Result")
            return Evaluation(res, type(self.first_order).name, lower_loss=res.lower_loss)
        par = self.runtime.parallel
        return evaluate_chain(self.dynamics, self.chain, self.plan, self.runtime.ll_model,
                              self.runtime.ll_opt, ll_feed_dict, ul_feed_dict, current_iter,
                              variables=self.runtime.ll_var, init_gradients=init_gradients,
                              reduce=par.data_mean if par.active else None)


def _outputs(result) -> list:
    out = []
    for key in OUTPUT_FIELDS:
        out.extend(result.get(key) or ())
    return out


def sync_and_check(results, operators, extra=(), *, losses=(), producer: str | None = None,
                   current_iter: int | None = None, check: bool = True) -> list[float]:
    """Compute everything one iteration produced in a single Jittor execution, then check
    it before anything is updated.

    Order of the checks: each operator's own (``finite_checks`` / ``check_finite``; NGD
    names the first diverged inner step), then one probe over every output (NaN/Inf iff
    one of them is), then the upper losses. Each failure is a ``DivergedError``
    naming the operator and the outer iteration.

    Parameters
    ----------
    results : iterable of Result or dict
        Terminal results; their ``OUTPUT_FIELDS`` lists are computed and checked.
    operators : iterable
        Operator instances of the composition.
    extra : iterable of jittor.Var
        More Vars the caller will read.
    losses : iterable of jittor.Var
        One-element upper losses to read (and check) with the rest.
    producer : str, optional
        Operator named when a result or loss is not finite.
    check : bool
        False: compute only (``check_finite = false``).

    Returns
    -------
    list of float
        The values of ``losses``.
    """
    from ..numerics.autodiff import vdot

    jt = jittor()
    operators = list(operators)
    outputs = [v for r in results for v in _outputs(r)]
    probe = vdot(outputs, [0.0] * len(outputs)) if (check and outputs) else None
    checks = [v for op in operators for v in op.finite_checks()] if check else []
    losses = list(losses)
    jt.sync(outputs + checks + list(extra) + losses + ([probe] if probe is not None else []))
    values = [float(v.item()) for v in losses]
    if not check:
        return values
    for op in operators:  # before any update: a diverged iteration changes nothing
        try:
            op.check_finite()
        except OperatorRuntimeError as exc:
            raise exc.at(current_iter) from None
    where = f"outer iteration {current_iter}" if current_iter is not None else "result"
    name = producer or (type(operators[-1]).name if operators else "solver")
    if probe is not None and not math.isfinite(float(probe.item())):
        raise DivergedError(name, where, "the hyper-gradient or the update it computed is "
                            "NaN/Inf although the lower loop stayed finite; check F, the "
                            "operator's settings and the step sizes")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise DivergedError(name, where, f"the upper objective F is {bad[0]} while the "
                            "gradients are finite; check F (log of 0, division by 0...)")
    return values


def warn_lower_precision(variables, *, upper=None, lower=None) -> None:
    """A ``PrecisionWarning`` when the variables are float64 but F (``upper``) or f
    (``lower``, f at the last inner step) came out float32."""
    if not any(v.dtype == "float64" for v in variables):
        return
    low = [name for name, value in (("F (the upper objective)", upper),
                                    ("f (the lower objective)", lower))
           if value is not None and value.dtype in ("float32", "float16")]
    if low:
        warnings.warn(
            f"{' and '.join(low)} returned float32 for float64 "
            "variables: part of it computes in float32. Jittor gives a one-element Var "
            "combined with a Python number, or with another one-element Var, the precision "
            "of the left operand: `0.5 * v.sum()`, `1e-2 * s` and Python's `sum(...)` (it "
            "starts at the int 0) are float32. Write `v.sum() * 0.5`, `sum(terms[1:], "
            "terms[0])`, and numbers float32 does not hold as Vars: "
            "`jboat_core.constant(0.01, like=v)`", PrecisionWarning, stacklevel=4)
